"""Table columns as plain arrays: the one reading of a column as floats in a unit, and APOGEE ids.

`floats` is what every room reads a numeric column with -- the readers of XP
tables (`giantfm.xp.readers`), label columns (`giantfm.tokens`, `giantfm.finetune`)
and the training catalogues (`giantfm.train`) -- so that masks, byte order,
sentinels and units are handled one way.
"""
import numpy as np
from astropy import units as u

__all__ = ["floats", "value_in_unit", "ids"]


def floats(column, unit=None, what="column", missing=None):
    """A column as a float64 array in native byte order, in ``unit``, NaN where masked.

    Parameters
    ----------
    column : column, `~astropy.units.Quantity`, masked array or array-like
        An astropy Column or MaskedColumn, a (masked) Quantity, a numpy
        (masked) array or a list. FITS columns are big-endian, which XGBoost
        rejects with a misleading message: the result is always native.
    unit : `~astropy.units.Unit`, optional
        Convert a column that has a unit to this one (logarithmic units too),
        refusing one that does not convert; a column without a unit, or
        dimensionless, is taken to be in ``unit`` already. None: the values
        as they are.
    what : str, optional
        What the column is, for the error message.
    missing : float, optional
        A catalogue's sentinel for absent values (APOKASC-2 and Miglio et al.
        write -9999): values ``<= missing + 1`` become NaN.

    Raises
    ------
    astropy.units.UnitConversionError
        A unit that does not convert to ``unit`` (``what`` says which column).
    ValueError, TypeError
        Values that are not numbers.
    """
    data = getattr(column, "unmasked", None)     # astropy's Masked (a masked Quantity)
    if data is not None:
        values = np.where(np.asarray(column.mask), np.nan,
                          np.asarray(getattr(data, "value", data), dtype=np.float64))
    else:
        values = np.ma.filled(np.ma.asarray(getattr(column, "value", column), dtype=np.float64),
                              np.nan)
    values = values.astype(np.float64, copy=False)
    if missing is not None:
        values = np.where(values <= missing + 1, np.nan, values)
    have = getattr(column, "unit", None)
    if unit is None or have is None or u.Unit(have) == u.dimensionless_unscaled:
        return values
    return value_in_unit(values * u.Unit(have), unit, what)


def value_in_unit(value, unit, name):
    """``value`` as a float array (at least 1-D) in ``unit``.

    A `~astropy.units.Quantity` is converted (logarithmic units too, e.g.
    ``dex(cm s-2)``); plain numbers are taken to be in ``unit`` already.

    Raises
    ------
    astropy.units.UnitConversionError
        A Quantity whose unit does not convert to ``unit`` (``name`` says which).
    """
    if isinstance(value, u.Quantity):
        try:
            return np.atleast_1d(value.to_value(unit, equivalencies=u.logarithmic()))
        except u.UnitConversionError:
            raise u.UnitConversionError(f"{name} is in {value.unit}, which cannot be converted "
                                        f"to {unit}") from None
    return np.atleast_1d(np.asarray(value, dtype=float))


def ids(column):
    """APOGEE IDs as stripped Python strings."""
    values = np.asarray(column)
    if values.dtype.kind == "S":
        values = np.char.decode(values, "ascii")
    return np.char.strip(values.astype(str))
