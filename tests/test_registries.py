"""The registries of input layouts and table formats, used from outside the package: a new
column layout, a new kind of input and a new file format are each one registration call,
which every verb then follows, and what is not right is refused when it is registered."""
import numpy as np
import pytest
from astropy.table import Table

import giantfm
from giantfm.exceptions import InvalidNameError
from giantfm.io import tables
from giantfm.xp import readers
from giantfm.xp.coefficients import find_column

#: The columns of the example layout: another catalogue's names for the DR3 coefficients.
OTHER_NAMES = {"bp_coefficients": "xp_bp", "bp_coefficient_errors": "xp_bp_error",
               "rp_coefficients": "xp_rp", "rp_coefficient_errors": "xp_rp_error"}


def read_other_band(table, band, n, correlations, notes):
    """One band of the ``xp_bp`` / ``xp_bp_error`` layout, or None without its columns."""
    name = find_column(table.colnames, (f"xp_{band}",))
    if name is None:
        return None
    values = np.asarray(table[name], dtype=float)
    error = find_column(table.colnames, (f"xp_{band}_error",))
    errors = np.asarray(table[error], dtype=float) if error else np.full_like(values, np.nan)
    return values, errors, None


@pytest.fixture(scope="module")
def stars():
    return giantfm.examples.load()


@pytest.fixture
def other_layout():
    entry = readers.register_column_layout("other-catalogue", "xp_bp, xp_rp and their "
                                           "*_error columns", read_other_band)
    yield entry
    readers.COLUMN_LAYOUTS.unregister("other-catalogue")


def test_a_column_layout_registered_from_outside_is_read_by_predict(stars, other_layout):
    table = stars[:6].copy()
    table.rename_columns(list(OTHER_NAMES), list(OTHER_NAMES.values()))
    assert readers.COLUMN_LAYOUTS.names[-1] == "other-catalogue" and other_layout.name in \
        readers.COLUMN_LAYOUTS
    xp = giantfm.xp.read_xp(table)
    np.testing.assert_array_equal(xp.bp, np.asarray(stars["bp_coefficients"][:6]))
    np.testing.assert_array_equal(xp.rp_err, np.asarray(stars["rp_coefficient_errors"][:6]))
    result = giantfm.predict(table, progress=False)
    expected = giantfm.predict(stars[:6], progress=False)
    assert result["source_id"].tolist() == expected["source_id"].tolist()
    for name in ("teff", "logg", "m_h", "mass"):
        np.testing.assert_allclose(result[name].unmasked.value, expected[name].unmasked.value)


def test_priority_orders_the_layouts(stars):
    def plus_one(table, band, n, correlations, notes):
        name = find_column(table.colnames, (f"{band}_coefficients",))
        return None if name is None else (np.asarray(table[name], dtype=float) + 1,
                                          np.full((n, 55), np.nan), None)
    readers.register_column_layout("first", "the archive's columns, plus one", plus_one,
                                   priority=5)
    readers.register_column_layout("last", "the archive's columns, plus one", plus_one,
                                   priority=-5)
    try:
        assert readers.COLUMN_LAYOUTS.names == ["first", "archive", "flattened", "last"]
        assert readers.COLUMN_LAYOUTS.priority("first") == 5
        xp = giantfm.xp.read_xp(stars[:2])  # the archive's columns: "first" reads them first
        np.testing.assert_array_equal(xp.bp, np.asarray(stars["bp_coefficients"][:2]) + 1)
    finally:
        readers.COLUMN_LAYOUTS.unregister("first")
        readers.COLUMN_LAYOUTS.unregister("last")
    assert readers.COLUMN_LAYOUTS.names == ["archive", "flattened"]


def test_replacing_an_entry_keeps_its_place():
    archive = readers.COLUMN_LAYOUTS["archive"]
    replacement = readers.register_column_layout("archive", "a stand-in", read_other_band,
                                                 replace=True)
    try:
        assert readers.COLUMN_LAYOUTS.names == ["archive", "flattened"]
        assert readers.COLUMN_LAYOUTS["archive"] is replacement
    finally:
        readers.register_column_layout("archive", archive.description, archive.read_band,
                                       replace=True)
    assert readers.COLUMN_LAYOUTS["archive"].read_band is archive.read_band


def _two_args(table, band):
    return None


@pytest.mark.parametrize("name, description, read_band, priority, error, match", [
    ("archive", "again", read_other_band, 0, ValueError, "registered already"),
    ("", "no name", read_other_band, 0, TypeError, "name of a column layout"),
    ("x", None, read_other_band, 0, TypeError, "description of column layout 'x'"),
    ("x", "not a function", "read_band", 0, TypeError, "read_band of column layout 'x' must "
     r"be a function read_band\(table, band, n, correlations, notes\)"),
    ("x", "too few arguments", _two_args, 0, TypeError, "cannot be called so"),
    ("x", "a text priority", read_other_band, "high", TypeError, "must be an integer"),
    ("x", "a bool priority", read_other_band, True, TypeError, "must be an integer"),
])
def test_column_layout_refusals(name, description, read_band, priority, error, match):
    with pytest.raises(error, match=match):
        readers.register_column_layout(name, description, read_band, priority=priority)
    assert readers.COLUMN_LAYOUTS.names == ["archive", "flattened"]  # nothing half-registered


def test_registries_are_not_lists():
    with pytest.raises(TypeError, match=r"add one with giantfm.xp.readers.register_column_"):
        readers.COLUMN_LAYOUTS.append(readers.COLUMN_LAYOUTS[0])
    with pytest.raises(TypeError, match=r"register_table_format"):
        tables.TABLE_FORMATS[0] = tables.TABLE_FORMATS[1]
    with pytest.raises(TypeError):
        tables.FORMATS[".xyz"] = "fits"
    with pytest.raises(InvalidNameError, match="no reader named 'nope'.*registered: "
                       "coefficients, spectrum, table"):
        readers.READERS.unregister("nope")


# ---------------------------------------------------------------------------- readers

class Catalogue:
    """A kind of input giantfm does not know: a table behind an object of its own."""

    def __init__(self, table):
        self.table = table


def test_a_reader_registered_from_outside_is_read_by_predict(stars):
    calls = []

    def read(data, correlations):
        calls.append(correlations)
        return giantfm.xp.read_xp(data.table, correlations=correlations)
    readers.register_reader("catalogue", "a Catalogue object", lambda data: isinstance(
        data, Catalogue), read)
    try:
        assert readers.READERS.names == ["coefficients", "spectrum", "catalogue", "table"]
        result = giantfm.predict(Catalogue(stars[:3]), progress=False)
    finally:
        readers.READERS.unregister("catalogue")
    assert calls and result["source_id"].tolist() == stars["source_id"][:3].tolist()
    assert not result["teff"].mask.any()
    with pytest.raises(TypeError, match="cannot read XP coefficients from a Catalogue"):
        giantfm.xp.read_xp(Catalogue(stars[:3]))


@pytest.mark.parametrize("accepts, read, priority, error, match", [
    ("yes", lambda data, correlations: None, 0, TypeError, r"accepts of reader 'x' must be a "
     r"function accepts\(data\) -> bool"),
    (lambda data: True, lambda data: None, 0, TypeError, r"read of reader 'x' must be a "
     r"function read\(data, correlations\) -> XPCoefficients.*cannot be called so"),
    (lambda data: True, lambda data, correlations: None, -100, ValueError,
     "would never be tried"),
    (lambda data: True, lambda data, correlations: None, 1.5, TypeError, "must be an integer"),
])
def test_reader_refusals(accepts, read, priority, error, match):
    with pytest.raises(error, match=match):
        readers.register_reader("x", "a reader", accepts, read, priority=priority)
    with pytest.raises(ValueError, match="reader named 'table' is registered already"):
        readers.register_reader("table", "again", accepts=lambda data: True,
                                read=lambda data, correlations: None)
    assert readers.READERS.names == ["coefficients", "spectrum", "table"]


# ---------------------------------------------------------------------------- table formats

def test_a_higher_priority_format_takes_an_extension_over(tmp_path, stars):
    path = tmp_path / "stars.fits"
    giantfm.write_table(stars[:3], path)
    read = []

    def read_fits_differently(path):
        read.append(path)
        return Table(stars[:2])
    with pytest.raises(ValueError, match=r"extension '.fits' is table format 'fits''s already "
                       r"\(priority 0\): give 'my-fits' a higher priority"):
        tables.register_table_format("my-fits", ".fits", "FITS, my way",
                                     read=read_fits_differently)
    tables.register_table_format("my-fits", (".fits", ".myfits"), "FITS, my way",
                                 read=read_fits_differently, priority=1)
    try:
        assert tables.FORMATS[".fits"] == "my-fits" and tables.table_format(path) == "my-fits"
        assert len(giantfm.read_table(path)) == 2 and read == [path]
        assert tables.TABLE_FORMATS.names[0] == "my-fits"
    finally:
        tables.TABLE_FORMATS.unregister("my-fits")
    assert tables.FORMATS[".fits"] == "fits" and ".myfits" not in tables.FORMATS
    assert len(giantfm.read_table(path)) == 3


@pytest.mark.parametrize("name, extensions, options, error, match", [
    ("fits", ".fts2", {"read": len}, ValueError, "table format named 'fits' is registered"),
    ("x", "xyz", {"read": len}, ValueError, r"extension 'xyz' .* start with a dot, as '.xyz'"),
    ("x", ".XYZ", {"read": len}, ValueError, r"must be lower case .* as '.xyz'"),
    ("x", ".gz", {"read": len}, ValueError, "read as the extension before .gz"),
    ("x", (), {"read": len}, ValueError, "needs at least one file extension"),
    ("x", 3, {"read": len}, TypeError, "must be a string or a sequence of strings"),
    ("x", ".xyz", {}, ValueError, "astropy has no reader of a table format named 'x'"),
    ("x", ".xyz", {"read": "read"}, TypeError, r"read of table format 'x' must be a function "
     r"read\(path\) -> Table"),
    ("x", ".xyz", {"read": len, "chunks": len}, TypeError, r"chunks\(path, rows\)"),
    ("x", ".xyz", {"read": len, "write_options": ["overwrite"]}, TypeError,
     "write_options of table format 'x' must be a dict"),
    ("x", ".xyz", {"read": len, "needs": 3}, TypeError, "needs .* must be a non-empty string"),
    ("x", ".xyz", {"read": len, "priority": "1"}, TypeError, "must be an integer"),
])
def test_table_format_refusals(name, extensions, options, error, match):
    before = tables.TABLE_FORMATS.names
    with pytest.raises(error, match=match):
        tables.register_table_format(name, extensions, "a format", **options)
    assert tables.TABLE_FORMATS.names == before and ".xyz" not in tables.FORMATS
