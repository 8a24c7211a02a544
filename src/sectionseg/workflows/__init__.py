"""Workflows: what a command of ``sectionseg`` does, as functions a script or notebook can call.

Each spans several stages (reading, detection, datasets, training, evaluation, outputs); the command
line modules (:mod:`sectionseg.cli`) only parse arguments, check them and call these.

- :func:`adapt_to_wafer` (``sectionseg finetune``): adapt a model to a new wafer from a dozen
  hand-labelled sections; :func:`prepare_adaptation_data` builds its training data alone
  (:mod:`.finetune`);
- :func:`run_demo` (``sectionseg demo``): a simulated wafer, detected and compared with its ground
  truth (:mod:`.demo`).

Detecting one wafer's files is :func:`sectionseg.batch.wafer.detect_files` (``sectionseg detect``),
many wafers :func:`sectionseg.batch.run.run_batch` (``detect-batch``). Importing this package loads
neither torch nor the detection stage.
"""
from sectionseg.workflows.demo import DemoResult, run_demo
from sectionseg.workflows.finetune import adapt_to_wafer, prepare_adaptation_data

__all__ = ["DemoResult", "adapt_to_wafer", "prepare_adaptation_data", "run_demo"]
