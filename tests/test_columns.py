"""One reading of a column as floats in a unit (giantfm.utils._columns.floats), for every room."""
import numpy as np
import pytest
from astropy import units as u
from astropy.table import Column, MaskedColumn
from astropy.utils.masked import Masked

from giantfm import tokens
from giantfm.utils._columns import floats, value_in_unit
from giantfm.xp import readers


def test_floats_native_byte_order_masks_and_sentinels():
    big = np.array([1.5, -9999.0, 3.0], dtype=">f8")     # as FITS columns come back
    values = floats(big)
    assert values.dtype == np.float64 and values.dtype.isnative
    np.testing.assert_array_equal(floats(big, missing=-9999), [1.5, np.nan, 3.0])
    masked = MaskedColumn([1, 2, 3], mask=[False, True, False])
    np.testing.assert_array_equal(floats(masked), [1.0, np.nan, 3.0])
    np.testing.assert_array_equal(floats(np.array(["1.5", "2"])), [1.5, 2.0])


def test_floats_in_a_unit():
    np.testing.assert_array_equal(floats(MaskedColumn([1.0, 2.0], mask=[False, True], unit="Gyr"),
                                         u.Myr, "age"), [1000.0, np.nan])
    ages = Masked([1.0, 2.0, 3.0] * u.Myr, mask=[False, True, False])
    np.testing.assert_allclose(floats(ages, u.Gyr, "age"), [0.001, np.nan, 0.003])
    np.testing.assert_array_equal(floats(Column([4500.0]), u.K, "teff"), [4500.0])  # no unit
    np.testing.assert_array_equal(floats([1.0, 2.0] * u.Gyr), [1.0, 2.0])          # no unit asked
    with pytest.raises(u.UnitConversionError, match="teff is in Gyr"):
        floats([1.0] * u.Gyr, u.K, "teff")
    np.testing.assert_allclose(value_in_unit(2.5 * u.dex(u.cm / u.s**2),
                                             u.dex(u.cm / u.s**2), "logg"), [2.5])


def test_the_rooms_read_columns_with_it():
    assert tokens.column_in_unit is floats and tokens.value_in_unit is value_in_unit
    notes = np.full(3, "", dtype=object)
    column = Column(["12.5", "x", ""], name="phot_g_mean_mag")
    np.testing.assert_array_equal(readers._float_column(column, "g magnitude", 3, notes),
                                  [12.5, np.nan, np.nan])
    assert "not a number" in notes[1] and notes[2] == ""
    assert readers.note_flags(notes).tolist() == [0, 16, 0]      # bad_value's bit
