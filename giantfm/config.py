"""Run-time settings of giantfm, as an astropy configuration namespace.

Change them for a session with ``giantfm.conf.batch_size = 4096`` or for good
in ``~/.astropy/config/giantfm.cfg``.
"""
from astropy import config as _config

__all__ = ["Conf", "conf"]


class Conf(_config.ConfigNamespace):
    """Configuration parameters for `giantfm`."""

    device = _config.ConfigItem(
        "auto",
        "Where the network runs: 'auto' (CUDA when available, else CPU), 'cpu', "
        "'cuda', 'cuda:N' or 'mps'.",
        cfgtype="string",
    )
    batch_size = _config.ConfigItem(
        0,
        "Stars per network call; 0 picks a size suited to the device.",
        cfgtype="integer",
    )
    progress = _config.ConfigItem(
        "auto",
        "Progress bars: 'auto' (on for large inputs when tqdm is installed), 'on' or 'off'.",
        cfgtype="string",
    )
    model = _config.ConfigItem(
        "bundled",
        "The model used by predict: 'bundled' or the path of a saved model.",
        cfgtype="string",
    )


conf = Conf()
