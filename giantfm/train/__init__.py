"""Training-side tools: the training set, its label model, training and evaluation.

- `giantfm.train.sources`: downloads and readers of the inputs (the XP x APOGEE
  library from PyPI, the shared seismic and [C/N] catalogues, the DistMass VAC).
- `giantfm.train.labelmodel`: the DistMass-like label model, APOGEE labels ->
  mass and age, calibrated on asteroseismology.
- `giantfm.train.dataset`: the training-set builder (``python -m
  giantfm.train.dataset``) and its readers `~giantfm.train.dataset.load_dataset`
  / `~giantfm.train.dataset.load_arrays`.

The submodules are imported explicitly (``from giantfm.train import dataset``):
they need optional packages (h5py, xgboost) that ``import giantfm`` must not.
"""
