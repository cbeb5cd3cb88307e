"""Training-side tools, one room per step of making a model:

- `giantfm.train.sources`: downloads and readers of the inputs (the XP x APOGEE
  library from PyPI, the shared seismic and [C/N] catalogues, the DistMass VAC).
- `giantfm.train.seismic`: the seismic calibration set and the label model fitted
  to it (APOGEE labels -> mass, age and evolutionary state).
- `giantfm.train.dataset`: the training set: its builder (``giantfm
  build-dataset``), its file format and the faint copies training shows.
- `giantfm.train.trainer`: the training driver (``giantfm train``) around
  `giantfm.model.train`.
- `giantfm.train.evaluation`: the scores of a model on the test split (``giantfm
  evaluate``: labels, magnitudes, states, asteroseismology, generation), the
  XGBoost baseline (``giantfm baseline``) and the evidence for `giantfm.finetune`.
- `giantfm.train.bundling`: what a model records for the verbs, measured on the
  validation stars (``giantfm bundle``).

The submodules are imported explicitly (``from giantfm.train.dataset import build``):
they need optional packages (h5py, xgboost) that ``import giantfm`` must not.
"""
