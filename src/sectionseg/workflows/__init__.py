"""Workflows: what a command of ``sectionseg`` does, as functions a script or notebook can call.

Each spans several stages (reading, detection, datasets, training, evaluation, outputs); the command
line modules (:mod:`sectionseg.cli`) only parse arguments, check them and call these.

- :func:`adapt_to_wafer` (``sectionseg finetune``): adapt a model to a new wafer from a dozen
  hand-labelled sections; :func:`prepare_adaptation_data` builds its training data alone
  (:mod:`.finetune`);
- :func:`run_demo` (``sectionseg demo``): a simulated wafer, detected and compared with its ground
  truth (:mod:`.demo`);
- :func:`train_model` (``sectionseg train``): training from a config name or file, optionally from
  a model's weights (:mod:`.train`);
- :func:`write_tile_set` (``sectionseg tiles``) and :func:`write_synthetic_set` (``sectionseg
  synth``): training data from one labelled wafer image (:mod:`.labelled`);
- :func:`convert_annotations` (``sectionseg convert``): section annotations from one format to
  another, keeping what a ``.magc`` carries (:mod:`.convert`);
- :func:`order_bead_folder` (``sectionseg order``): the serial order of a folder of bead images
  (:mod:`.order`).

Detecting one wafer's files is :func:`sectionseg.batch.wafer.detect_files` (``sectionseg detect``),
many wafers :func:`sectionseg.batch.run.run_batch` (``detect-batch``). Importing this package loads
neither torch nor the detection stage.
"""

from sectionseg.workflows.convert import Converted, convert_annotations
from sectionseg.workflows.demo import DemoResult, run_demo
from sectionseg.workflows.finetune import adapt_to_wafer, prepare_adaptation_data
from sectionseg.workflows.labelled import write_synthetic_set, write_tile_set
from sectionseg.workflows.order import order_bead_folder
from sectionseg.workflows.train import train_model

__all__ = [
    "Converted",
    "convert_annotations",
    "DemoResult",
    "adapt_to_wafer",
    "order_bead_folder",
    "prepare_adaptation_data",
    "run_demo",
    "train_model",
    "write_synthetic_set",
    "write_tile_set",
]
