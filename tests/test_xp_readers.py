"""read_xp on every form of Gaia XP data, on the real shared archive samples."""
import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.table import MaskedColumn, QTable, Table

from giantfm.xp.readers import PHOTOMETRY_ALIASES, XPCoefficients, read_photometry, read_xp

DATALINK = "datalink_XP_CONTINUOUS_5937083312263887616"
DATALINK_ID = 5937083312263887616


def _cells(column):
    """An archive array column's rows as float arrays, read independently of giantfm."""
    rows = []
    for cell in column:
        if isinstance(cell, str):
            rows.append(np.array([float(v) for v in cell.strip("()").split(",")]))
        else:
            rows.append(np.ma.filled(np.ma.asarray(cell, dtype=float), np.nan))
    return np.array(rows)


@pytest.mark.parametrize("suffix", ["ecsv", "xml"])
def test_datalink_product_as_path_and_table(xp_data, suffix):
    path = xp_data / f"{DATALINK}.{suffix}"
    raw = Table.read(path)
    for data in (path, str(path), raw):
        xp = read_xp(data)
        assert isinstance(xp, XPCoefficients) and len(xp) == 1
        assert xp.source_id.tolist() == [DATALINK_ID]
        np.testing.assert_array_equal(xp.bp, _cells(raw["bp_coefficients"]))
        np.testing.assert_array_equal(xp.rp_err, _cells(raw["rp_coefficient_errors"]))
        assert xp.bp_n_relevant.tolist() == [int(raw["bp_n_relevant_bases"][0])]
        assert xp.bp_corr.shape == (1, 55, 55) and xp.reason.tolist() == [""]


def test_ecsv_and_votable_agree(xp_data):
    a = read_xp(xp_data / f"{DATALINK}.ecsv")
    b = read_xp(xp_data / f"{DATALINK}.xml")
    for name in ("bp", "rp", "bp_err", "rp_err", "bp_corr", "rp_corr", "bp_standard_deviation"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-7)


def test_gaiaxpy_csv_strings(xp_data):
    raw = Table.read(xp_data / "XP_CONTINUOUS_RAW.csv")
    xp = read_xp(xp_data / "XP_CONTINUOUS_RAW.csv")
    assert len(xp) == 2 and xp.source_id.tolist() == list(raw["source_id"])
    np.testing.assert_array_equal(xp.bp, _cells(raw["bp_coefficients"]))
    np.testing.assert_array_equal(xp.rp_err, _cells(raw["rp_coefficient_errors"]))
    np.testing.assert_array_equal(xp.rp_n_relevant, raw["rp_n_relevant_bases"])


def test_correlations_unpacked_as_gaiaxpy_does(xp_data):
    xp = read_xp(xp_data / "XP_CONTINUOUS_RAW.csv")
    raw = Table.read(xp_data / "XP_CONTINUOUS_RAW.csv")
    with warnings.catch_warnings():
        # importing GaiaXPy under pandas 3 raises Pandas4Warning (a pandas option it sets)
        warnings.simplefilter("ignore")
        generic = pytest.importorskip("gaiaxpy.core.generic_functions",
                                      reason="GaiaXPy (test extra) is the reference")
    for i in range(len(xp)):
        packed = _cells(raw["bp_coefficient_correlations"])[i]
        np.testing.assert_array_equal(xp.bp_corr[i],
                                      generic.array_to_symmetric_matrix(packed, 55))


def test_real_correlations_are_correlation_matrices(xp_data):
    for name in (f"{DATALINK}.xml", "XP_CONTINUOUS_RAW.csv"):
        xp = read_xp(xp_data / name)
        for corr in (*xp.bp_corr, *xp.rp_corr):
            np.testing.assert_array_equal(corr, corr.T)
            np.testing.assert_array_equal(np.diag(corr), 1.0)
            assert np.linalg.eigvalsh(corr).min() > 0


def test_missing_bp_source_keeps_its_row_with_rp(xp_data):
    xp = read_xp(xp_data / "XP_CONTINUOUS_RAW_with_missing_BP.csv")
    assert len(xp) == 3
    assert np.isnan(xp.bp[1]).all() and np.isnan(xp.bp_err[1]).all()
    assert np.isnan(xp.bp_corr[1]).all() and np.isfinite(xp.rp_corr[1]).all()
    assert np.isfinite(xp.rp[1]).all() and xp.bp_n_relevant[1] == -1
    assert xp.reason.tolist() == ["", "", ""]  # one band is enough
    full = read_xp(xp_data / "XP_CONTINUOUS_RAW.csv")
    np.testing.assert_array_equal(xp.bp[[0, 2]], full.bp)


def test_flattened_columns_with_errors(xp_data):
    path = xp_data / "xp_continuous_first2000.fits"
    raw = Table.read(path)
    xp = read_xp(path)
    assert len(xp) == 2000 and xp.bp_corr is None
    np.testing.assert_array_equal(xp.source_id, raw["source_id"])
    np.testing.assert_array_equal(xp.bp[:, 17], raw["bp_coeff_17"])
    np.testing.assert_array_equal(xp.rp_err[:, 54], raw["e_rp_coeff_54"])
    np.testing.assert_array_equal(xp.bp_n_relevant, raw["bp_n_relevant_bases"])
    assert (xp.reason == "").all()


def test_plain_table_and_qtable_with_2d_columns(xp_data):
    ref = read_xp(xp_data / "XP_CONTINUOUS_RAW.csv")
    table = Table({"SOURCE_ID": ref.source_id, "bp_coefficients": ref.bp,
                   "rp_coefficients": ref.rp, "bp_coefficient_errors": ref.bp_err,
                   "rp_coefficient_errors": ref.rp_err})
    for data in (table, QTable(table)):
        xp = read_xp(data)
        np.testing.assert_array_equal(xp.bp, ref.bp)
        np.testing.assert_array_equal(xp.rp_err, ref.rp_err)
        assert xp.source_id.tolist() == ref.source_id.tolist()


def test_load_data_dictionary_and_dataframe(xp_data):
    one = Table.read(xp_data / f"{DATALINK}.xml")
    xp = read_xp({f"XP_CONTINUOUS-Gaia DR3 {DATALINK_ID}.xml": [one],
                  "XP_CONTINUOUS-Gaia DR3 2.xml": [Table.read(xp_data / f"{DATALINK}.ecsv")]})
    assert len(xp) == 2 and (xp.source_id == DATALINK_ID).all()
    np.testing.assert_array_equal(xp.bp[0], xp.bp[1])
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_csv(xp_data / "XP_CONTINUOUS_RAW.csv")
    np.testing.assert_array_equal(read_xp(frame).rp, read_xp(xp_data / "XP_CONTINUOUS_RAW.csv").rp)


def test_photometry_names_and_aliases():
    table = QTable({"gaiaedr3_phot_g_mean_mag": [10.0, 11.0] * u.mag,
                    "phot_bp_mean_mag": [10.5, 11.6], "RP": [9.4, 10.3],
                    "j": [8.0, 9.0], "H_M": [7.5, 8.4], "Ks": [7.4, 8.2]})
    mags = read_photometry(table)
    assert sorted(mags) == sorted(PHOTOMETRY_ALIASES)
    np.testing.assert_array_equal(mags["g"], [10.0, 11.0])
    np.testing.assert_array_equal(mags["k"], [7.4, 8.2])
    with pytest.raises(ValueError, match="unit Jy, expected magnitudes"):
        read_photometry(QTable({"phot_g_mean_mag": [1.0] * u.Jy}))


def test_photometry_next_to_coefficients(xp_data):
    table = Table.read(xp_data / "XP_CONTINUOUS_RAW.csv")
    table["phot_g_mean_mag"] = MaskedColumn([9.0, 12.0], mask=[False, True])
    xp = read_xp(table)
    assert xp.mags["g"][0] == 9.0 and np.isnan(xp.mags["g"][1])


def test_missing_columns_list_what_was_expected():
    with pytest.raises(ValueError, match=r"no XP coefficient columns found.*'bp_coefficients'"
                                         r".*'bp_coeff_0'.*columns: source_id, teff"):
        read_xp(Table({"source_id": [1], "teff": [4500.0]}))


def test_dr4_coefficient_counts_are_refused_by_name():
    with pytest.raises(ValueError, match="'bp_coefficients' has \\[51\\] values.*DR4"):
        read_xp(Table({"bp_coefficients": np.ones((2, 51)), "rp_coefficients": np.ones((2, 55))}))
    flat = Table({f"bp_coeff_{i}": [1.0] for i in range(51)})
    with pytest.raises(ValueError, match="found 51 flattened BP.*DR4"):
        read_xp(flat)
    npar = Table({"bp_coefficients": np.ones((1, 55)), "bp_n_parameters": [51]})
    with pytest.raises(ValueError, match="'bp_n_parameters' is 51 in row 0.*DR4"):
        read_xp(npar)
    ragged = Table({"rp_coefficients": np.array([np.ones(55), np.ones(60)], dtype=object)})
    with pytest.raises(ValueError, match=r"has \[60\] values in row\(s\) \[1\], expected 55"):
        read_xp(ragged)


def test_empty_table_unreadable_path_and_wrong_type(tmp_path):
    with pytest.raises(ValueError, match="the table is empty"):
        read_xp(Table({"bp_coefficients": np.ones((0, 55))}))
    with pytest.raises(FileNotFoundError, match="nothing.ecsv' does not exist"):
        read_xp(tmp_path / "nothing.ecsv")
    (tmp_path / "junk.fits").write_bytes(b"not a table")
    with pytest.raises(ValueError, match="cannot read .*junk.fits' as fits: the file is corrupt"):
        read_xp(tmp_path / "junk.fits")
    with pytest.raises(TypeError, match="cannot read XP coefficients from a list"):
        read_xp([1, 2, 3])


def test_nan_and_masked_stars_keep_rows_with_a_reason(xp_data):
    table = Table.read(xp_data / "XP_CONTINUOUS_RAW_with_missing_BP.csv")
    table["rp_coefficients"] = MaskedColumn(table["rp_coefficients"], mask=[False, True, False])
    xp = read_xp(table)
    assert len(xp) == 3
    assert xp.reason[0] == "" and xp.reason[2] == ""
    assert "no XP coefficients" in xp.reason[1]  # BP missing in the file, RP masked here
    flat = Table.read(xp_data / "xp_continuous_first2000.fits")[:4]
    for name in flat.colnames:
        if "coeff" in name:
            flat[name][2] = np.nan
    xp = read_xp(flat)
    assert [bool(r) for r in xp.reason] == [False, False, True, False]
    assert xp.source_id[2] == flat["source_id"][2]


def test_a_new_column_layout_is_one_more_entry():
    """A layout read_xp does not know becomes readable by registering one column layout."""
    from giantfm.xp import readers

    table = Table({"source_id": [7, 8], "phot_g_mean_mag": [12.0, 13.0],
                   "bp_xp": np.ones((2, 55)), "rp_xp": np.full((2, 55), 2.0)})
    with pytest.raises(ValueError, match="no XP coefficient columns"):
        read_xp(table)

    def read_band(table, band, n, correlations, notes):
        if f"{band}_xp" not in table.colnames:
            return None
        values = np.asarray(table[f"{band}_xp"], dtype=float)
        return values, np.full_like(values, np.nan), None
    readers.register_column_layout("example", "one array column per band, *_xp", read_band)
    try:
        xp = read_xp(table)
    finally:
        readers.COLUMN_LAYOUTS.unregister("example")
    assert xp.source_id.tolist() == [7, 8] and (xp.rp == 2.0).all()
    assert xp.mags["g"].tolist() == [12.0, 13.0]
    assert [reader.name for reader in readers.READERS] == ["coefficients", "spectrum", "table"]
    with pytest.raises(ValueError, match="no XP coefficient columns"):  # unregistered: gone
        read_xp(table)
