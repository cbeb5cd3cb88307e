"""The token-set transformer (the only part of giantfm that imports torch).

- `ModelConfig`, `TokenSetTransformer`: the network and its sizes;
- `Normalisation`: per-token standardisation from the training set;
- `TrainedModel`, `load_model`: inference (`TrainedModel.request`) and persistence;
- `TrainConfig`, `train`: training (also ``python -m giantfm.model.training``);
- `select_device`: the device rules shared by all of the above.
"""
from .core import BUNDLED_MODEL_DIR, TrainedModel, load_model
from .device import available_devices, select_device
from .network import PRESETS, ModelConfig, TokenSetTransformer
from .normalisation import Normalisation

__all__ = ["ModelConfig", "TokenSetTransformer", "PRESETS", "Normalisation", "TrainedModel",
           "load_model", "BUNDLED_MODEL_DIR", "TrainConfig", "train", "select_device",
           "available_devices"]


def __getattr__(name):
    # The training module is imported on first use, so that running it as
    # ``python -m giantfm.model.training`` does not find it already imported.
    if name in ("TrainConfig", "train"):
        from . import training
        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
