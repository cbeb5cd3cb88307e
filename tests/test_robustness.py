"""Property-based tests of predict's promises on corrupted tables (hypothesis).

For real example stars with random corruptions in random rows -- non-finite
values, survey sentinels, impossible values, masked cells, cells of the wrong
type -- `giantfm.predict` must answer every row, in order, leave every clean row
exactly as a clean run gives it, and give every row with a bad value a reason.
"""
import numpy as np
import pytest
from astropy import units as u
from astropy.table import MaskedColumn

import giantfm

hypothesis = pytest.importorskip("hypothesis", reason="the property tests need hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

pytest.importorskip("torch", reason="prediction needs torch")

MAGNITUDES = ("phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag", "j_m", "h_m", "ks_m")
ARRAYS = ("bp_coefficients", "rp_coefficients", "bp_coefficient_errors",
          "rp_coefficient_errors")
# corruption -> (value, whether the row must carry a reason)
BAD = {"nan": (np.nan, False), "inf": (np.inf, True), "-inf": (-np.inf, True),
       "99": (99.0, True), "-99": (-99.0, True), "9999": (9999.0, True),
       "-9999": (-9999.0, True), "huge": (1e30, True)}


@pytest.fixture(scope="module")
def stars():
    table = giantfm.examples.load()
    keep = [name for name in table.colnames if not name.startswith(("apogee", "labelmodel"))]
    return table[keep]


@pytest.fixture(scope="module")
def clean(stars):
    return giantfm.predict(stars, progress=False)


corruption = st.tuples(
    st.integers(0, 23),                                        # row
    st.sampled_from(MAGNITUDES + ARRAYS + ("masked",)),        # where
    st.sampled_from(sorted(BAD)),                              # what
    st.integers(0, 54))                                        # coefficient index


def _cell(row, where, index):
    if where == "masked":
        return row, MAGNITUDES[index % len(MAGNITUDES)], None
    return row, where, None if where in MAGNITUDES else index


def _corrupt(stars, corruptions):
    table = stars.copy()
    needs_reason, touched = set(), set()
    # one corruption per cell: a later one would overwrite what an earlier one expects
    first = {}
    for corruption in corruptions:
        first.setdefault(_cell(corruption[0], corruption[1], corruption[3]), corruption)
    for row, where, what, index in first.values():
        value, bad = BAD[what]
        touched.add(row)
        if where == "masked":
            column = MAGNITUDES[index % len(MAGNITUDES)]
            if not isinstance(table[column], MaskedColumn):
                table[column] = MaskedColumn(table[column])
            table[column].mask[row] = True
            if column == "phot_g_mean_mag":
                needs_reason.add(row)              # no G: nothing can be normalised
            continue
        if where in MAGNITUDES:
            table[where][row] = value * u.mag if hasattr(table[where], "unit") else value
            if bad or where == "phot_g_mean_mag":
                needs_reason.add(row)
        else:
            table[where][row, index] = value
            # Coefficients of any sign and size are measurements (99 e-/s is one), but not
            # infinite ones, a non-positive zeroth one (no star's), or 1e30, which no G
            # agrees with (ood_score). Errors must be finite and positive. A NaN
            # coefficient is an absent one, a NaN error gets the default error model.
            if where.endswith("errors"):
                reasoned = what in ("inf", "-inf", "-99", "-9999")
            else:
                reasoned = what in ("inf", "-inf", "huge") or (index == 0 and value < 0)
            if reasoned:
                needs_reason.add(row)
    return table, needs_reason, touched


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(corruption, min_size=1, max_size=4))
def test_predict_keeps_every_row_and_explains_bad_ones(stars, clean, corruptions):
    table, needs_reason, touched = _corrupt(stars, corruptions)
    result = giantfm.predict(table, progress=False)
    assert len(result) == len(table)
    np.testing.assert_array_equal(result["source_id"], table["source_id"])
    for row in range(len(table)):
        if row in needs_reason:
            assert result["reason"][row], (row, corruptions)
        if row not in touched:
            for name in ("teff", "teff_err", "logg", "m_h", "alpha_m", "mass", "age_err"):
                a, b = result[name][row], clean[name][row]
                assert bool(np.ma.getmask(a)) == bool(np.ma.getmask(b)), (row, name)
                assert np.array_equal(np.ma.getdata(a), np.ma.getdata(b)), (row, name)
            assert result["reason"][row] == clean["reason"][row]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 23), st.sampled_from(["abc", "", "12.5x", "--"]),
       st.sampled_from(MAGNITUDES))
def test_cells_of_the_wrong_type(stars, clean, row, text, column):
    """A magnitude column read as text (a CSV cell 'abc'): parsed where it is a number,
    refused by name in its own row where not, every other row as in a clean run."""
    table = stars.copy()
    values = np.array([f"{v:.17g}" for v in np.asarray(table[column].value)], dtype=object)
    values[row] = text
    table[column] = values.astype(str)
    result = giantfm.predict(table, progress=False)
    assert len(result) == len(table)
    if text in ("abc", "12.5x"):
        assert column in result["reason"][row] and repr(text) in result["reason"][row]
    others = np.arange(len(table)) != row
    np.testing.assert_array_equal(np.asarray(result["teff"].unmasked.value)[others],
                                  np.asarray(clean["teff"].unmasked.value)[others])


def test_messages_name_what_to_fix(stars, tmp_path):
    """Errors a user can cause name the value or file and say what to do."""
    from specutils import Spectrum

    from giantfm.exceptions import GiantfmWarning
    from giantfm.xp.basis import DEFAULT_WAVELENGTH
    from giantfm.xp.sampling import coefficients_to_flux

    # a source_id written as Gaia does is read; one that is not a source_id is named
    table = stars[:3].copy()
    table["source_id"] = np.array(["Gaia DR3 123", "456", "not an id"], dtype=object)
    result = giantfm.predict(table, progress=False)
    assert result["source_id"].tolist()[:2] == [123, 456]
    assert "'not an id'" in result["reason"][2] and "source_id" in result["reason"][2]
    # coefficients as an array column of text: read as numbers
    text = stars[:3].copy()
    text["bp_coefficients"] = np.asarray(stars["bp_coefficients"][:3]).astype(str)
    assert np.allclose(giantfm.predict(text, progress=False)["teff"].unmasked,
                       giantfm.predict(stars[:3], progress=False)["teff"].unmasked)
    # a truncated file is called truncated
    path = tmp_path / "stars.fits"
    giantfm.write_table(stars, path)
    data = path.read_bytes()
    cut = tmp_path / "cut.fits"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        giantfm.predict(cut)
    with pytest.raises(TypeError, match="hide must be 'bp', 'rp'"):
        giantfm.inpaint(stars[:2], hide=5)
    # a spectrum without a unit: taken as W m-2 nm-1, with a warning
    flux, _ = coefficients_to_flux(np.asarray(stars["bp_coefficients"][:1]),
                                   np.asarray(stars["rp_coefficients"][:1]))
    with pytest.warns(GiantfmWarning, match="no unit"):
        out = giantfm.predict(Spectrum(flux=flux[0] * u.one,
                                       spectral_axis=DEFAULT_WAVELENGTH * u.nm), progress=False)
    assert len(out) == 1 and not out["teff"].mask[0]
