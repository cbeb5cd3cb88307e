"""giantfm's warning and error classes.

giantfm warns with `GiantfmWarning` (an astropy user warning: filter all of
giantfm's with ``warnings.filterwarnings("ignore", category=GiantfmWarning)``).
The one warning of another class is the CUDA out-of-memory retry of
`giantfm.model.TrainedModel.request`, a `RuntimeWarning` about the machine
rather than the data.

Bad input raises `ValueError` or `TypeError`, never `KeyError`, `IndexError`
or `AttributeError`. A name that is not known -- a token, a magnitude, an
experiment, a hyperparameter -- or a column that an input lacks raises
`InvalidNameError`, a `ValueError` (giantfm 0.1 raised `KeyError`).
"""
from astropy.utils.exceptions import AstropyUserWarning

__all__ = ["GiantfmWarning", "InvalidNameError"]


class GiantfmWarning(AstropyUserWarning):
    """A warning of giantfm about the data or the results."""


class InvalidNameError(ValueError):
    """A name giantfm does not know, or a column that an input lacks (bad input)."""
