"""Training data: tiles of labelled wafers, synthetic pastes, torch ``Dataset`` + augmentation, splits.

Modules: ``labels`` (classes, instances), ``samples`` (writing samples and ``manifest.json``),
``tiles``, ``synth``, ``transforms``, ``torch_dataset``, ``build`` (whole dataset from simulated wafers).
Submodules are imported on demand so that light users do not pay for torch.
"""

from sectionseg.datasets.labels import CLASS_IDS, CLASSES

__all__ = ["CLASSES", "CLASS_IDS"]
