"""Training-side tools: the training set, its label model, training and evaluation.

- `giantfm.train.sources`: downloads and readers of the inputs (the XP x APOGEE
  library from PyPI, the shared seismic and [C/N] catalogues, the DistMass VAC).
- `giantfm.train.labelmodel`: the DistMass-like label model, APOGEE labels ->
  mass and age, calibrated on asteroseismology.
- `giantfm.train.dataset`: the training-set builder (``giantfm build-dataset``);
  the file it writes is `giantfm.train.datafile`.
- `giantfm.train.trainer`: the training driver (``giantfm train``) around
  `giantfm.model.train`.
- `giantfm.train.baseline`: the XGBoost baseline (``giantfm baseline``).
- `giantfm.train.evaluate`, `giantfm.train.generative`: the evaluation of the
  labels (``giantfm evaluate``) and of inpainting and generation;
  `giantfm.train.magnitudes` and `giantfm.train.states` score the labels and
  the evolutionary state against magnitude.
- `giantfm.train.finetune_evidence`: the evidence for `giantfm.finetune` (a new
  label taught against XGBoost from scratch) and for the embeddings.

The submodules are imported explicitly (``from giantfm.train import dataset``):
they need optional packages (h5py, xgboost) that ``import giantfm`` must not.
"""
