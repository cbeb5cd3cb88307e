"""giantfm's warning and error classes.

giantfm warns with `GiantfmWarning` (an astropy user warning: filter all of
giantfm's with ``warnings.filterwarnings("ignore", category=GiantfmWarning)``).
The one warning of another class is the CUDA out-of-memory retry of
`giantfm.model.TrainedModel.request`, a `RuntimeWarning` about the machine
rather than the data.

Bad input raises `ValueError` or `TypeError`, never `KeyError`, `IndexError`
or `AttributeError`. A name that is not known -- a token, a magnitude, an
experiment, a hyperparameter -- or a column that an input lacks raises
`InvalidNameError`, a `ValueError` (giantfm 0.1 raised `KeyError`). A saved
model (or its label model) whose files cannot be read -- cut short, corrupt,
written by two different saves, not fitting their configuration -- or that
cannot be saved where it was asked to go raises `ModelFileError`, a
`ValueError` whose message names the file, the cause and the fix; a disk that
fills during a save stays an `OSError`, with a plain message.
"""
from astropy.utils.exceptions import AstropyUserWarning

__all__ = ["GiantfmWarning", "InvalidNameError", "ModelFileError"]


class GiantfmWarning(AstropyUserWarning):
    """A warning of giantfm about the data or the results."""


class InvalidNameError(ValueError):
    """A name giantfm does not know, or a column that an input lacks (bad input)."""


class ModelFileError(ValueError):
    """A model folder or one of its files that cannot be read or written as a model.

    The message names the file, says what is wrong with it (truncated,
    corrupt, weights that do not fit the configuration, a file where a folder
    should be) and what to do about it.
    """
