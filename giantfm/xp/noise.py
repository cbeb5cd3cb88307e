"""Gaia DR3 XP noise at any magnitude, learned from real DR3 sources; faint copies of stars.

The training library stops at G = 15, while Gaia XP goes to G = 17.65. This
module says how noisy the coefficients of a star of a given brightness are,
and makes *faint copies*: a star moved to a fainter G, with the errors, the
noise and the truncation that the Gaia archive would give it there.

**Coefficient errors** (`XPNoiseModel.median_errors`, `XPNoiseModel.draw_errors`).
The error of coefficient ``i`` of a band follows the band's own flux, read off
its zeroth coefficient ``c0`` (e-/s): ``log10 e_i = p_i(log10 c0) + r_i``, with
``p_i`` a cubic fitted by least squares to the 2,000 real DR3 sources of
``xp_continuous_first2000.fits`` (G 7-20, mostly 14-17.7). Using the band's
flux rather than G makes the errors depend on colour where that matters: a red
giant's BP flux is a small part of its G flux, and its BP coefficients are
noisier than a blue star's of the same G. Without ``r`` it is the *default
error model* (`XPNoiseModel.median_errors`), used for a star whose table gives
no coefficient errors. The residuals ``r`` of a real source (MAD-std
0.03-0.11 dex per coefficient about the cubic) carry what the flux does not
say: more or fewer transits, the structure across coefficients.

**Truncation and the rest of a real source** (`XPNoiseModel.draw_sources`).
The archive's ``n_relevant_bases`` depends on more than the coefficients'
significance (for 15-17 % of the sources it keeps tens of bases beyond the
last significant one), so it is not modelled but taken from real sources: a
copy takes the residual pattern ``r`` and the BP and RP ``n_relevant_bases``
of one of the 10 real sources nearest to it in G and colour
(``log10(rp0 / bp0)``, scaled by 0.5 mag and 0.1 dex), drawn at random. The
library giants are redder than most of those sources (median colour 0.23
against 0.08): the reddest real sources stand in for the reddest giants.

**Correlations** (`XPNoiseModel.draw_noise`). Only four real sources with full
correlation matrices are shared with the project (the archive's
``XP_CONTINUOUS_RAW`` files: three with BP, four with RP). Their matrices
differ from source to source (the correlation of coefficients 0 and 1 runs
from -0.13 to 0.72), so they are not averaged: each copy takes one of them at
random, and its noise is drawn with that correlation.

**Photometry** (`photometric_errors`). Gaia BP and RP magnitudes get the
error of their band's zeroth coefficient (``1.0857 / (S/N of c0)``) with a
3 mmag floor, G a 1 mmag floor. 2MASS magnitudes follow the 2MASS Point Source
Catalog's background-limited sensitivity (Skrutskie et al. 2006: S/N = 10 at
J = 15.8, H = 15.1, Ks = 14.3) with a 0.02 mag floor; a band with S/N below 5
is not detected (absent). These are documented approximations, not fits.

`faint_copy` puts it together. The model's arrays are in
``giantfm/data/xp_noise.npz``, made by ``tools/make_xp_noise.py`` from the
shared DR3 files; the datasheet compares real and simulated errors against G.
"""
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from ..vocab import N_COEFFICIENTS
from .coefficients import XPCoefficients
from .photometry import MAG_PER_FRACTION

__all__ = ["XPNoiseModel", "load_noise_model", "faint_copy", "photometric_errors",
           "TWOMASS_LIMITS"]

#: 2MASS PSC magnitudes at S/N = 10 (Skrutskie et al. 2006), by short name.
TWOMASS_LIMITS = {"j": 15.8, "h": 15.1, "k": 14.3}
# Below this S/N a 2MASS band counts as not detected.
_TWOMASS_MIN_SNR = 5.0
_TWOMASS_FLOOR = 0.02
_GAIA_FLOORS = {"g": 0.001, "bp": 0.003, "rp": 0.003}
# A copy's real sources: the nearest in (G / 0.5 mag, colour / 0.1 dex), this many.
_NEIGHBOUR_SCALE = np.array([0.5, 0.1])
_NEIGHBOURS = 10


@dataclass(frozen=True)
class XPNoiseModel:
    """Gaia DR3 XP coefficient errors as a function of each band's flux (see the module).

    Attributes
    ----------
    polynomials : dict
        ``{'bp': (55, 4), 'rp': (55, 4)}``: for each coefficient the cubic (lowest
        order first) giving ``log10(error)`` from ``log10(c0)``.
    domains : dict
        ``{'bp': (low, high), 'rp': ...}``: the ``log10(c0)`` range of the fit;
        outside it the cubic continues as its tangent.
    residuals : ndarray (n_sources, 110)
        ``log10`` error residuals of the real sources (BP then RP).
    correlations : dict
        ``{'bp': (k, 55, 55), 'rp': ...}``: real correlation matrices.
    source_g, source_colour : ndarray (n_sources,)
        The real sources' synthetic G and ``log10(rp0 / bp0)``.
    source_n_relevant : ndarray (n_sources, 2)
        Their BP and RP ``n_relevant_bases``.
    """

    polynomials: dict
    domains: dict
    residuals: np.ndarray
    correlations: dict
    source_g: np.ndarray
    source_colour: np.ndarray
    source_n_relevant: np.ndarray

    def __post_init__(self):
        from scipy.spatial import cKDTree

        # Cholesky factors of the correlation matrices, once (they are positive definite).
        factors = {band: np.linalg.cholesky(np.asarray(m, dtype=float))
                   for band, m in self.correlations.items()}
        object.__setattr__(self, "_cholesky", factors)
        points = np.column_stack([self.source_g, self.source_colour]) / _NEIGHBOUR_SCALE
        object.__setattr__(self, "_tree", cKDTree(points))

    def _log_errors(self, band, c0):
        """Median ``log10`` errors (n, 55) of ``band`` for zeroth coefficients ``c0`` (n,)."""
        poly = self.polynomials[band]
        low, high = self.domains[band]
        with np.errstate(invalid="ignore", divide="ignore"):
            x = np.log10(np.where(np.asarray(c0, dtype=float) > 0, c0, np.nan))
        inside = np.clip(x, low, high)
        powers = inside[:, None] ** np.arange(4)[None, :]                  # (n, 4)
        slope_powers = np.arange(1, 4)[None, :] * inside[:, None] ** np.arange(3)[None, :]
        value = powers @ poly.T                                            # (n, 55)
        slope = slope_powers @ poly[:, 1:].T
        return value + slope * (x - inside)[:, None]

    def median_errors(self, c0_bp, c0_rp):
        """The default error model: typical errors (e-/s) for the bands' zeroth coefficients.

        Parameters
        ----------
        c0_bp, c0_rp : array (n,)
            Zeroth BP and RP coefficients in the archive's units (e-/s).

        Returns
        -------
        bp_err, rp_err : arrays (n, 55)
            NaN where a ``c0`` is not positive (no flux to scale from).
        """
        return self.band_errors("bp", c0_bp), self.band_errors("rp", c0_rp)

    def band_errors(self, band, c0):
        """`median_errors` of one band (``'bp'`` or ``'rp'``) for its zeroth coefficients ``c0``."""
        return 10.0 ** self._log_errors(band, np.atleast_1d(c0))

    def draw_sources(self, g, colour, rng):
        """For each star, one of the real sources nearest in G and colour (see the module).

        Parameters
        ----------
        g, colour : arrays (n,)
            G magnitude and ``log10(rp0 / bp0)``.

        Returns
        -------
        int array (n,)
            Indices into the real sources (``residuals``, ``source_n_relevant``).
        """
        points = np.column_stack([g, colour]) / _NEIGHBOUR_SCALE
        points = np.where(np.isfinite(points), points, 0.0)
        _, nearest = self._tree.query(points, k=_NEIGHBOURS)
        return nearest[np.arange(len(points)), rng.integers(_NEIGHBOURS, size=len(points))]

    def draw_errors(self, c0_bp, c0_rp, sources):
        """Errors of real-looking sources: the median errors times real sources' patterns.

        ``sources`` (n,) are indices of real sources (`draw_sources`). Returns
        ``bp_err, rp_err`` (n, 55).
        """
        bp, rp = (np.log10(e) for e in self.median_errors(c0_bp, c0_rp))
        pattern = self.residuals[sources].astype(float)
        return (10.0 ** (bp + pattern[:, :N_COEFFICIENTS]),
                10.0 ** (rp + pattern[:, N_COEFFICIENTS:]))

    def draw_noise(self, band, sigma, rng):
        """Correlated Gaussian noise with standard deviations ``sigma`` (n, 55).

        Each star's correlation is one of the real matrices, drawn at random.
        """
        sigma = np.asarray(sigma, dtype=float)
        factors = self._cholesky[band]
        which = rng.integers(len(factors), size=len(sigma))
        z = rng.standard_normal(sigma.shape)
        correlated = np.einsum("nij,nj->ni", factors[which], z)
        return sigma * correlated


@lru_cache(maxsize=1)
def load_noise_model():
    """The noise model shipped with giantfm (``giantfm/data/xp_noise.npz``)."""
    with resources.files("giantfm.data").joinpath("xp_noise.npz").open("rb") as f:
        with np.load(f) as data:
            arrays = {key: data[key] for key in data.files}
    return XPNoiseModel(
        polynomials={band: arrays[f"{band}_polynomials"] for band in ("bp", "rp")},
        domains={band: tuple(arrays[f"{band}_domain"]) for band in ("bp", "rp")},
        residuals=arrays["residuals"],
        correlations={band: arrays[f"{band}_correlations"] for band in ("bp", "rp")},
        source_g=arrays["source_g"], source_colour=arrays["source_colour"],
        source_n_relevant=arrays["source_n_relevant"])


def photometric_errors(mags, xp_snr=None):
    """Magnitude errors of the photometry giantfm reads, from the documented models.

    Parameters
    ----------
    mags : dict
        ``{short name: array (n,)}`` (``g``, ``bp``, ``rp``, ``j``, ``h``, ``k``).
    xp_snr : dict, optional
        ``{'bp': array, 'rp': array}``: signal-to-noise of each band's zeroth
        XP coefficient, which sets the BP and RP errors; without it they get
        their floors.

    Returns
    -------
    errors : dict
        The same keys, errors in mag (NaN where the magnitude is NaN).
    detected : dict
        ``{short name: bool array}``: False for 2MASS bands below S/N 5.
    """
    errors, detected = {}, {}
    for name, m in mags.items():
        m = np.asarray(m, dtype=float)
        if name in TWOMASS_LIMITS:
            snr = 10.0 * 10.0 ** (-0.4 * (m - TWOMASS_LIMITS[name]))
            errors[name] = np.hypot(_TWOMASS_FLOOR, MAG_PER_FRACTION / snr)
            detected[name] = snr >= _TWOMASS_MIN_SNR
        else:
            floor = _GAIA_FLOORS.get(name, 0.003)
            snr = None if xp_snr is None else xp_snr.get(name)
            errors[name] = np.full_like(m, floor)
            if snr is not None:
                snr = np.asarray(snr, dtype=float)
                with np.errstate(divide="ignore", invalid="ignore"):
                    errors[name] = np.where(np.isfinite(snr) & (snr > 0),
                                            np.hypot(floor, MAG_PER_FRACTION / snr), floor)
            detected[name] = np.isfinite(m)
        errors[name] = np.where(np.isfinite(m), errors[name], np.nan)
    return errors, detected


def faint_copy(xp, target_g, *, rng=None, model=None):
    """A copy of stars as Gaia DR3 would have observed them at a fainter G.

    Coefficients and every magnitude are scaled to ``target_g``; the errors
    are drawn from the noise model (`XPNoiseModel.draw_errors`) at the copy's
    band fluxes, the noise that the fainter star has beyond its own (scaled)
    noise is drawn with a real correlation matrix, ``n_relevant_bases`` are
    those of a real source like the copy (`XPNoiseModel.draw_sources`), and
    the magnitudes get the noise of
    `photometric_errors` (2MASS bands below detection become NaN). A star is
    never made brighter: where ``target_g`` is brighter than its G, the copy
    is the star itself.

    Parameters
    ----------
    xp : `giantfm.xp.XPCoefficients`
        The stars, with their G magnitude in ``xp.mags['g']`` and both bands.
    target_g : float or array (n,)
        The G magnitude of the copies.
    rng : `numpy.random.Generator` or int, optional
        Random numbers (a seed makes copies repeatable).
    model : `XPNoiseModel`, optional
        Default: `load_noise_model`.

    Returns
    -------
    `giantfm.xp.XPCoefficients`
        The copies, in the same order, with ``bp_n_relevant``, ``rp_n_relevant``
        and magnitudes set; it carries no magnitude errors (tokenisation gives
        them from `photometric_errors` of the copy's magnitudes).

    Raises
    ------
    ValueError
        If ``xp`` has no G magnitude, or ``target_g`` does not match the stars.

    Examples
    --------
    >>> import giantfm
    >>> from giantfm.xp import read_xp
    >>> from giantfm.xp.noise import faint_copy
    >>> stars = read_xp(giantfm.examples.load())
    >>> faint = faint_copy(stars[:3], 17.0, rng=1)
    >>> [round(float(g), 2) for g in faint.mags["g"]]
    [17.0, 17.0, 17.0]
    """
    rng = np.random.default_rng(rng)
    model = load_noise_model() if model is None else model
    if "g" not in xp.mags:
        raise ValueError("faint_copy needs the stars' G magnitude (xp.mags['g'])")
    g = xp.mags["g"]
    n = len(xp)
    target = np.broadcast_to(np.asarray(target_g, dtype=float), (n,)) if np.ndim(target_g) == 0 \
        else np.asarray(target_g, dtype=float)
    if target.shape != (n,):
        raise ValueError(f"target_g has {target.size} values for {n} stars")
    shift = np.where(np.isfinite(target) & (target > g), target - g, 0.0)
    scale = 10.0 ** (-0.4 * shift)
    bands = {}
    for band in ("bp", "rp"):
        c = getattr(xp, band) * scale[:, None]
        e0 = np.where(np.isfinite(getattr(xp, f"{band}_err")), getattr(xp, f"{band}_err"), 0.0)
        bands[band] = (c, e0 * scale[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        colour = np.log10(bands["rp"][0][:, 0] / bands["bp"][0][:, 0])
    sources = model.draw_sources(np.where(shift > 0, target, g), colour, rng)
    bp_err, rp_err = model.draw_errors(bands["bp"][0][:, 0], bands["rp"][0][:, 0], sources)
    out = {}
    for k, (band, drawn) in enumerate((("bp", bp_err), ("rp", rp_err))):
        c, e0 = bands[band]
        # a copy is at least as noisy as the star itself, scaled
        err = np.where(shift[:, None] > 0, np.fmax(drawn, e0), e0)
        extra = np.sqrt(np.clip(err ** 2 - e0 ** 2, 0.0, None))
        noisy = c + model.draw_noise(band, np.nan_to_num(extra), rng)
        nrel = np.where(shift > 0, model.source_n_relevant[sources, k],
                        getattr(xp, f"{band}_n_relevant"))
        # a star left at its own G keeps its errors as given, unknown ones included
        err = np.where(shift[:, None] > 0, err, getattr(xp, f"{band}_err"))
        out[band], out[f"{band}_err"], out[f"{band}_n_relevant"] = noisy, err, nrel
    mags = {name: np.where(np.isfinite(m), m + shift, m) for name, m in xp.mags.items()}
    snr = {band: np.abs(out[band][:, 0]) / out[f"{band}_err"][:, 0] for band in ("bp", "rp")}
    old_errors, _ = photometric_errors(xp.mags, {band: np.abs(getattr(xp, band)[:, 0]) /
                                                 getattr(xp, f"{band}_err")[:, 0]
                                                 for band in ("bp", "rp")})
    new_errors, detected = photometric_errors(mags, snr)
    for name in mags:
        extra = np.sqrt(np.clip(new_errors[name] ** 2 - np.nan_to_num(old_errors[name]) ** 2,
                                0.0, None))
        noisy = mags[name] + np.where(shift > 0, rng.standard_normal(n) * np.nan_to_num(extra), 0)
        if name != "g":  # G is what the copy is defined by
            mags[name] = np.where(detected[name] | (shift == 0), noisy, np.nan)
    mags["g"] = np.where(shift > 0, target, g)
    # the copy keeps the star's reasons and notes, with their bits
    return XPCoefficients(source_id=xp.source_id, mags=mags, reason=xp.reason, notes=xp.notes,
                          flags=xp.flags, **out)
