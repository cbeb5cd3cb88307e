"""The one progress bar of giantfm: predictions, spectra and files alike."""
import sys
import warnings

from ..config import conf
from ..exceptions import GiantfmWarning
from ._optional import HAS_TQDM, install_hint

__all__ = ["progress_bar", "check_progress", "AUTO_DELAY"]

#: Seconds a call runs before progress='auto' shows its bar: a call that ends sooner
#: shows none, a longer one (10,000 stars take about 11 s on a 2-core CPU) always does.
AUTO_DELAY = 2.0

_CHOICES = ("auto", "on", "off")


def check_progress(progress):
    """``progress`` as one of 'auto', 'on', 'off' (None: ``giantfm.conf.progress``).

    Raises
    ------
    ValueError
        For anything but True, False, None, 'auto', 'on' or 'off'.
    """
    if progress is None:
        progress = conf.progress
    if isinstance(progress, (bool, int)) and not isinstance(progress, str):
        return "on" if progress else "off"
    if progress not in _CHOICES:
        raise ValueError(f"progress must be True, False, 'auto', 'on' or 'off', got {progress!r}")
    return progress


def progress_bar(total, *, progress=None, unit="star", desc="giantfm"):
    """A tqdm progress bar over ``total`` items on standard error, or None for none.

    Parameters
    ----------
    total : int
    progress : bool or {'auto', 'on', 'off'}, optional
        'auto' shows the bar once the call has run `AUTO_DELAY` seconds (so
        every call that takes longer than that has one, whatever its size);
        True or 'on' at once; False or 'off' never. None:
        ``giantfm.conf.progress``.
    unit, desc : str
        What is counted, and the bar's label.

    Without tqdm there is no bar; asked for explicitly ('on'), that is said
    with a `~giantfm.exceptions.GiantfmWarning`.
    """
    progress = check_progress(progress)
    if progress == "off":
        return None
    if not HAS_TQDM:
        if progress == "on":
            warnings.warn(f"no progress bar: it needs tqdm ({install_hint('tqdm')})",
                          GiantfmWarning, stacklevel=3)
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, desc=desc, leave=False, file=sys.stderr,
                delay=AUTO_DELAY if progress == "auto" else 0)
