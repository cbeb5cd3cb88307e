"""Run-time settings of giantfm, as an astropy configuration namespace.

Change them for a session with ``giantfm.conf.batch_size = 4096`` or for good
in ``~/.astropy/config/giantfm.cfg``.
"""
from astropy import config as _config

__all__ = ["Conf", "conf", "resolve_batch_size"]


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
        "Progress bars (with tqdm): 'auto' (shown when a call runs longer than 2 s), 'on' or "
        "'off'.",
        cfgtype="string",
    )
    model = _config.ConfigItem(
        "bundled",
        "The model used by predict: 'bundled' or the path of a saved model.",
        cfgtype="string",
    )
    threads = _config.ConfigItem(
        0,
        "CPU threads of one call (the network's batches, the label model); 0: the "
        "OMP_NUM_THREADS environment variable when set (a Dask worker sets 1), else the "
        "cores this process may run on.",
        cfgtype="integer",
    )


conf = Conf()


def resolve_batch_size(batch_size=None):
    """Stars per network call: ``batch_size``, or ``conf.batch_size`` when None.

    Returns
    -------
    int or None
        None for 0 (the device chooses).

    Raises
    ------
    ValueError
        For anything but an integer >= 0.
    """
    batch_size = conf.batch_size if batch_size is None else batch_size
    try:
        valid = not isinstance(batch_size, bool) and int(batch_size) == batch_size >= 0
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"batch_size must be a positive integer (or 0 for automatic), "
                         f"got {batch_size!r}")
    return int(batch_size) or None
