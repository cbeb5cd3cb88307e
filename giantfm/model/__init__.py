"""The token-set transformer (the only part of giantfm that imports torch).

- `ModelConfig`, `TokenSetTransformer`: the network and its sizes;
- `Normalisation`: per-token standardisation from the training set;
- `TrainedModel`, `load_model`: inference (`TrainedModel.request`) and persistence;
- `TrainConfig`, `train`: the training loop (its command-line driver is
  ``giantfm train``, `giantfm.train.trainer`);
- `select_device`: the device rules shared by all of the above.
"""
from .core import BUNDLED_MODEL_DIR, TrainedModel, load_model
from .device import available_devices, select_device
from .network import PRESETS, ModelConfig, TokenSetTransformer
from .normalisation import Normalisation
from .training import TrainConfig, train

__all__ = ["ModelConfig", "TokenSetTransformer", "PRESETS", "Normalisation", "TrainedModel",
           "load_model", "BUNDLED_MODEL_DIR", "TrainConfig", "train", "select_device",
           "available_devices"]
