"""Catalogue columns as plain arrays: the training inputs' floats and APOGEE identifiers."""
import numpy as np

__all__ = ["floats", "ids"]


def floats(column, missing=None):
    """A float64 array in native byte order, NaN where masked (and where ``<= missing + 1``).

    FITS columns are big-endian, which XGBoost rejects with a misleading
    message. ``missing`` is a catalogue's sentinel for absent values
    (APOKASC-2 and Miglio et al. write -9999).
    """
    values = np.ma.filled(np.ma.asarray(column, dtype=float), np.nan).astype(float)
    if missing is not None:
        values = np.where(values <= missing + 1, np.nan, values)
    return values


def ids(column):
    """APOGEE IDs as stripped Python strings."""
    values = np.asarray(column)
    if values.dtype.kind == "S":
        values = np.char.decode(values, "ascii")
    return np.char.strip(values.astype(str))
