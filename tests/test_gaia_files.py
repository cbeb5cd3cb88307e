"""Gaia's own XP files as they come (no photometry: G, BP and RP synthesised from the
coefficients), and the one reading path every verb reads files through."""
import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table

import giantfm
from giantfm import cli, scale, vocab
from giantfm.io import tables
from giantfm.utils._stats import mad_std
from giantfm.xp.photometry import SYNTHETIC_OFFSET, SYNTHETIC_SCATTER, synthetic_photometry

GAIA_MAGNITUDES = ("phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag")


@pytest.fixture(scope="module")
def stars():
    return giantfm.examples.load()


def test_synthetic_photometry_constants_hold_on_real_giants(stars):
    """The offset and scatter, measured on the training split, hold on the test-split giants
    bundled as examples (measured Gaia photometry against the coefficients' own)."""
    synthetic, _ = synthetic_photometry(np.asarray(stars["bp_coefficients"]),
                                        np.asarray(stars["rp_coefficients"]))
    for short, column in zip(("g", "bp", "rp"), GAIA_MAGNITUDES):
        diff = synthetic[short] - np.asarray(stars[column].value)
        assert abs(np.median(diff) - SYNTHETIC_OFFSET[short]) < 0.002, short
        assert mad_std(diff) < 2 * SYNTHETIC_SCATTER[short] + 0.001, short


def test_a_table_without_photometry_is_answered_as_with_it(stars):
    measured = giantfm.predict(stars, progress=False)
    bare = stars.copy()
    bare.remove_columns(GAIA_MAGNITUDES)
    synthetic = giantfm.predict(bare, progress=False)
    assert len(synthetic) == len(stars) and not synthetic["teff"].mask.any()
    bit = giantfm.flags.REASONS["synthetic_photometry"].value
    assert all(f & bit for f in synthetic["flags"]) and not any(f & bit for f in measured["flags"])
    assert all("synthesised from the XP coefficients (no measured value): phot_g_mean_mag, "
               "phot_bp_mean_mag and phot_rp_mean_mag" in r for r in synthetic["reason"])
    # the same stars, the same labels to well within their uncertainties
    for name, tolerance in (("teff", 0.25), ("logg", 0.25), ("m_h", 0.25)):
        shift = (synthetic[name].value - measured[name].value) / measured[f"{name}_err"].value
        assert np.median(np.abs(shift)) < tolerance, name
    # the photometric check of the spectrum has nothing to compare with: no false alarm
    assert not synthetic["flag"].any()


def test_synthesised_colours_carry_the_scatter_in_their_errors(stars):
    bare = stars[:5].copy()
    bare.remove_columns(GAIA_MAGNITUDES)
    batch = giantfm.tokenize(bare)
    _, colour_err = batch.value_of("bp_rp")
    assert np.all(colour_err >= np.hypot(SYNTHETIC_SCATTER["bp"], SYNTHETIC_SCATTER["rp"]) * 0.999)
    assert np.all(np.isnan(batch.consistency))
    np.testing.assert_allclose(batch.g_mag, synthetic_photometry(
        np.asarray(bare["bp_coefficients"]), np.asarray(bare["rp_coefficients"]))[0]["g"]
        - SYNTHETIC_OFFSET["g"])


def test_gaias_bulk_file_comes_back_answered(xp_data, tmp_path):
    """2,000 real DR3 sources with coefficients and no photometry, as the archive's
    xp_continuous_mean_spectrum and its bulk files come: predict, the CLI and predict_files."""
    path = xp_data / "xp_continuous_first2000.fits"
    result = giantfm.predict(path, progress=False)
    n = len(result)
    assert n == 2000 and (~result["teff"].mask).sum() == n
    np.testing.assert_array_equal(result["source_id"], Table.read(path)["source_id"])
    assert (~result["mass"].mask).sum() > 20           # the giants among them get a mass
    assert result["flag"].mean() < 0.05
    out = tmp_path / "labels.fits"
    assert cli.main(["predict", str(path), "-o", str(out), "--no-progress"]) == cli.EXIT_OK
    written = giantfm.read_table(out)
    np.testing.assert_allclose(written["teff"], result["teff"].value, rtol=1e-6)
    manifest = scale.predict_files([path, xp_data / "XP_CONTINUOUS_RAW.csv",
                                    xp_data / "XP_CONTINUOUS_RAW_with_missing_BP.csv"],
                                   tmp_path / "files", client="sync", progress=False)
    assert list(manifest["status"]) == ["done"] * 3
    assert list(manifest["rows_out"]) == [2000, 2, 3]


@pytest.mark.parametrize("name", ["XP_CONTINUOUS_RAW.csv", "XP_CONTINUOUS_RAW_with_missing_BP.csv",
                                  "datalink_XP_CONTINUOUS_5937083312263887616.ecsv",
                                  "datalink_XP_CONTINUOUS_5937083312263887616.xml"])
def test_archive_layouts_are_answered_without_photometry(xp_data, name):
    result = giantfm.predict(xp_data / name, progress=False)
    answered = ~result["teff"].mask
    # the source without a BP solution has no G to synthesise: its row says so
    for row in np.flatnonzero(~answered):
        assert "no G magnitude" in result["reason"][row]
    assert answered.sum() == len(result) - (name == "XP_CONTINUOUS_RAW_with_missing_BP.csv")


# ---------------------------------------------------------------------------- one reading path

@pytest.fixture
def new_format(stars):
    """A format giantfm did not know, added by one registration call."""
    reads = []

    def read(path):
        reads.append(path)
        return Table(stars[:4])
    tables.register_table_format("giantfm-test", ".xyz", "a format added in a test", read=read)
    assert tables.FORMATS[".xyz"] == "giantfm-test"
    yield reads
    tables.TABLE_FORMATS.unregister("giantfm-test")


def test_a_new_format_is_one_entry_for_every_verb(new_format, tmp_path):
    (tmp_path / "in").mkdir()
    path = tmp_path / "in" / "stars.xyz"
    path.write_text("read by the entry")
    assert len(giantfm.predict(path, progress=False)) == 4
    assert len(giantfm.request(path, ["teff"], progress=False)) == 4
    assert len(giantfm.inpaint(path, hide="rp")) == 4
    assert cli.main(["predict", str(path), "-o", str(tmp_path / "out.ecsv"),
                     "--no-progress"]) == cli.EXIT_OK
    manifest = scale.predict_files(tmp_path / "in", tmp_path / "o", client="sync",
                                   progress=False)
    assert list(manifest["rows_out"]) == [4]
    assert len(new_format) == 5


def test_unknown_extensions_are_guessed_or_refused_clearly(tmp_path, stars):
    giantfm.write_table(stars[:3], tmp_path / "stars.fits")
    guessed = (tmp_path / "stars.fits").rename(tmp_path / "stars.dat")  # FITS, by its contents
    assert len(giantfm.predict(guessed, progress=False)) == 3
    (tmp_path / "notes.txt").write_text("not a table")
    with pytest.raises(ValueError, match=r"reads the extensions .*\.ecsv"):
        giantfm.predict(tmp_path / "notes.txt")


def test_units_of_the_synthesised_magnitudes(stars):
    """Synthetic G is on the measured scale to the offset: the tokens' G-flux normalisation
    of a bare table equals that of the measured table to the scatter (a few mmag)."""
    bare = stars[:10].copy()
    bare.remove_columns(GAIA_MAGNITUDES)
    with_g = giantfm.tokenize(stars[:10])
    without = giantfm.tokenize(bare)
    delta = without.g_mag - with_g.g_mag
    assert np.median(np.abs(delta)) < 0.01
    assert vocab.token_unit("bp_rp") == u.mag
