"""The generative verbs: complete XP spectra (`inpaint`) and turn labels into spectra.

The network answers requests for *any* token from *any* other, and the XP
coefficients are tokens like the labels (`giantfm.vocab`). So the model that
predicts labels from spectra also

* completes a spectrum: `inpaint` asks for the coefficients a star lacks (a
  band that is absent, orders beyond ``*_n_relevant_bases``, coefficients the
  user hides or masks) given the ones it has, its colours and any labels;
* generates one: `generate_spectrum` asks for all 110 coefficients given
  labels (Teff, log g, [M/H], ... and the K-band extinction) and samples them
  on a wavelength grid with the DR3 design matrices.

Each requested coefficient comes with the network's predictive standard
deviation. The network answers each request on its own, so these are
*marginal* uncertainties: the flux uncertainties propagate them as independent
(the correlations between the coefficients of one star are not predicted).
How well both verbs work on the real test split is measured by
``python -m giantfm.train.evaluation.generative`` (see the "Inpainting and generation"
page of the documentation).
"""
import warnings

import numpy as np
from astropy import units as u
from astropy.table import QTable

from . import results, tokens, vocab
from .exceptions import GiantfmWarning, InvalidNameError
from .flags import REASONS
from .prediction import answer, get_model
from .results import add_status, finish, model_meta
from .vocab import XP_NAMES
from .xp.basis import DEFAULT_WAVELENGTH
from .xp.coefficients import ARCHIVE_MAGNITUDES
from .xp.sampling import coefficients_to_flux

__all__ = ["inpaint", "generate_spectrum", "XP_NAMES", "RELATIVE_FLUX_UNIT",
           "ABSOLUTE_FLUX_UNIT"]

_N = vocab.N_COEFFICIENTS

#: Unit of XP sampled flux (as `giantfm.xp.coefficients_to_flux` returns it).
ABSOLUTE_FLUX_UNIT = u.W / u.m**2 / u.nm
#: Unit of a generated spectrum without a G magnitude: flux per unit G-band flux
#: (the coefficients' token scale, `giantfm.tokens.g_flux`, in e-/s).
RELATIVE_FLUX_UNIT = ABSOLUTE_FLUX_UNIT / (u.electron / u.s)


# ---------------------------------------------------------------------------- inpainting
def _hidden_masks(hide, n):
    """``hide`` as two boolean (n, 55) arrays, True where a coefficient is to be hidden."""
    masks = {"bp": np.zeros((n, _N), bool), "rp": np.zeros((n, _N), bool)}
    if hide is None:
        return masks
    if isinstance(hide, dict):
        unknown = set(hide) - set(masks)
        if unknown:
            raise InvalidNameError(f"hide has unknown key(s) {sorted(unknown)}; expected 'bp' "
                                   "and/or 'rp'")
        for band, mask in hide.items():
            mask = np.asarray(mask)
            if mask.dtype != bool:
                raise TypeError(f"hide[{band!r}] must be a boolean array (True = hide), "
                                f"got dtype {mask.dtype}")
            try:
                masks[band] |= np.broadcast_to(mask, (n, _N))
            except ValueError:
                raise ValueError(f"hide[{band!r}] has shape {mask.shape}, which does not "
                                 f"broadcast to ({n}, {_N})") from None
        return masks
    names = [hide] if isinstance(hide, str) else hide
    if not isinstance(names, (list, tuple, set, np.ndarray)) \
            or not all(isinstance(name, str) for name in names):
        raise TypeError(f"hide must be 'bp', 'rp', a coefficient name such as 'rp40', a list "
                        f"of these, or {{'bp': mask, 'rp': mask}} with boolean masks; got "
                        f"{hide!r}")
    for name in names:
        if name in masks:
            masks[name][:] = True
            continue
        vocab.token_id(name)  # unknown names raise InvalidNameError here
        if name not in XP_NAMES:
            raise ValueError(f"hide names XP coefficients ('bp', 'rp', 'bp0'..'rp54'); "
                             f"{name!r} is not one (labels are simply left out of `labels`)")
        band, index = name[:2], int(name[2:])
        masks[band][:, index] = True
    return masks


def inpaint(data, *, hide=None, labels=None, photometry=None, truncate=None, spectrum=False,
            wavelength=None, device=None, batch_size=None, progress=None, model=None):
    """Fill in the XP coefficients a star lacks, with uncertainties.

    Missing coefficients are those that are NaN or masked in ``data`` (a
    band the archive does not have, say), those beyond Gaia's
    ``*_n_relevant_bases`` when ``truncate`` is on, and those named in
    ``hide``. They are predicted from the star's other coefficients, its
    colours and any ``labels``; the coefficients given are returned
    unchanged, as given.

    Parameters
    ----------
    data : table, path or `specutils.Spectrum`
        Anything `giantfm.xp.read_xp` reads (an archive XP_CONTINUOUS table,
        GaiaXPy CSV, flattened ``bp_coeff_0..54`` columns, ...), with
        ``phot_g_mean_mag`` (needed to normalise the coefficients) and any
        other Gaia/2MASS magnitudes.
    hide : str, sequence of str or dict, optional
        Coefficients to treat as missing: ``'bp'`` or ``'rp'`` (a whole band),
        token names such as ``'rp40'``, or ``{'bp': mask, 'rp': mask}`` with
        boolean masks broadcastable to (n_stars, 55), True = hide.
    labels : dict or `~astropy.table.Table`, optional
        Labels known for the stars, used as extra inputs (as in
        `giantfm.tokenize`), e.g. ``{'teff': teff, 'logg': logg}``.
    photometry : table, optional
        Magnitudes for the stars (see `giantfm.tokenize`).
    truncate : bool, optional
        Treat coefficients beyond ``*_n_relevant_bases`` as missing: they are
        replaced by the model's. None (default): as the model reads them, as
        `predict` does (`giantfm.metadata.ModelMetadata.truncate`; the bundled
        model reads every coefficient given).
    spectrum : bool, optional
        Also return the completed spectra as a `specutils.Spectrum`.
    wavelength : `~astropy.units.Quantity` or array, optional
        Grid of that spectrum (nm if plain numbers); default 336-1020 nm, 2 nm.
    device, batch_size, progress, model
        As for `giantfm.predict`.

    Returns
    -------
    table : `~astropy.table.QTable`
        One row per input star, in order: ``source_id``, ``bp_coefficients``,
        ``bp_coefficient_errors``, ``rp_coefficients``,
        ``rp_coefficient_errors`` (n, 55 each, the archive's units),
        ``bp_inpainted``/``rp_inpainted`` (n, 55 booleans, True where the
        value is the model's), the input magnitudes under their archive
        names, ``ood_score``, ``flag``, ``flags`` and ``reason``, as
        `giantfm.predict` gives them (`giantfm.results.finish`). A row the model
        cannot read (no coefficients) keeps its input values, is flagged and
        says why. The table has no ``*_n_relevant_bases`` columns, so reading
        it back uses every coefficient.
    spectrum : `specutils.Spectrum`, only with ``spectrum=True``
        Flux (n_stars, n_wavelength) in W m^-2 nm^-1 with a
        `~astropy.nddata.StdDevUncertainty` from the given coefficients'
        errors and the predicted ones' standard deviations (propagated as
        independent); rows without coefficients are masked.

    Examples
    --------
    >>> import giantfm
    >>> stars = giantfm.examples.load()[:2]
    >>> completed = giantfm.inpaint(stars, hide="rp")
    >>> bool(completed["rp_inpainted"].all()), bool(completed["bp_inpainted"].any())
    (True, False)
    """
    xp, mags, labels = tokens.read_inputs(data, photometry, labels)
    n = len(xp)
    hidden = _hidden_masks(hide, n)
    net = get_model(device=device, model=model)
    truncate = net.metadata.truncation(truncate)
    given, inputs = {}, {}
    for band, coeffs, nrel in (("bp", xp.bp, xp.bp_n_relevant), ("rp", xp.rp, xp.rp_n_relevant)):
        keep = np.isfinite(coeffs) & ~hidden[band]
        if truncate:
            nrel = np.where(nrel > 0, nrel, _N)
            keep &= np.arange(_N)[None, :] < nrel[:, None]
        given[band] = keep
        inputs[band] = np.where(keep, coeffs, np.nan)
    batch = tokens.from_arrays(bp=inputs["bp"], rp=inputs["rp"], bp_err=xp.bp_err,
                               rp_err=xp.rp_err, mags=mags, labels=labels, truncate=False,
                               source_id=xp.source_id, reason=xp.reason, notes=xp.notes,
                               flags=xp.flags)
    _, mean, std, embedded = answer(net, batch, XP_NAMES, batch_size=batch_size,
                                    progress=progress)
    answered = np.all(np.isfinite(mean), axis=1)
    ok = batch.ok & answered
    flux_scale = tokens.g_flux(batch.g_mag)[:, None]   # the G they were normalised with

    result = results.Result()
    result["source_id"] = xp.source_id
    out = {}
    for k, (band, coeffs, errors) in enumerate((("bp", xp.bp, xp.bp_err),
                                                ("rp", xp.rp, xp.rp_err))):
        fill = ~given[band] & ok[:, None]
        columns = slice(k * _N, (k + 1) * _N)
        value = np.where(fill, mean[:, columns] * flux_scale, coeffs)
        error = np.where(fill, std[:, columns] * flux_scale, errors)
        out[band] = (value, error)
        result[f"{band}_coefficients"] = value
        result[f"{band}_coefficient_errors"] = error
        result[f"{band}_inpainted"] = fill
    for short, name in ARCHIVE_MAGNITUDES.items():  # so that it reads back as the input did
        if short in mags:
            result[name] = mags[short] * u.mag
    add_status(result, batch, answered)
    finish(result, batch, net.metadata, embedding=embedded)
    result.meta.update(model_meta(net))
    result.meta["hidden"] = "" if hide is None else repr(hide) if not isinstance(hide, dict) \
        else "boolean masks"
    if not spectrum:
        return result
    return result, _xp_spectrum(out["bp"], out["rp"], wavelength, ABSOLUTE_FLUX_UNIT,
                                meta={"source_id": xp.source_id, **model_meta(net)})


def _xp_spectrum(bp, rp, wavelength, unit, meta, shape=None):
    """`specutils.Spectrum` of coefficients (value, error) per band on ``wavelength``."""
    from astropy.nddata import StdDevUncertainty
    from specutils import Spectrum  # seconds to import: only when a spectrum is made

    grid = DEFAULT_WAVELENGTH if wavelength is None else wavelength
    grid = grid.to_value(u.nm, u.spectral()) if isinstance(grid, u.Quantity) \
        else np.asarray(grid, dtype=float)
    # rows with no usable band would be all NaN: give coefficients_to_flux zeros and mask them
    usable = np.isfinite(bp[0]).all(axis=1) | np.isfinite(rp[0]).all(axis=1)
    flux, flux_err = coefficients_to_flux(bp[0], rp[0], bp[1], rp[1], wavelength=grid)
    mask = ~np.isfinite(flux) | ~usable[:, None]
    flux, flux_err = np.where(mask, np.nan, flux), np.where(mask, np.nan, flux_err)
    if shape is not None:
        flux, flux_err, mask = (a.reshape(shape + (len(grid),)) for a in (flux, flux_err, mask))
    return Spectrum(flux=flux * unit, spectral_axis=grid * u.nm,
                    uncertainty=StdDevUncertainty(flux_err), mask=mask, meta=meta)


# ---------------------------------------------------------------------------- generation
def generate_spectrum(teff=None, logg=None, m_h=None, alpha_m=None, mass=None, age=None,
                      extinction=None, *, phot_g_mean_mag=None, wavelength=None, device=None,
                      batch_size=None, progress=None, model=None, **other_tokens):
    """Gaia XP spectra of stars with the given labels, with uncertainties.

    The network predicts all 110 DR3 XP coefficients from the labels given
    (any subset; the others are marginalised over as in the training set)
    and they are sampled on ``wavelength`` with the DR3 design matrices.

    Parameters
    ----------
    teff, logg, m_h, alpha_m, mass, age, extinction : float, array or `~astropy.units.Quantity`
        Labels, broadcast against each other: Teff [K], log g [dex(cm s-2)],
        [M/H] and [alpha/M] [dex], mass [solMass], age [Gyr] and the K-band
        extinction A_K [mag] (the ``a_k`` token, APOGEE's targeting
        extinction, on which the model was trained). Plain numbers are in
        these units; NaN leaves a label out for that star. Labels left out
        are averaged over as in the training set: give ``extinction``
        (0 for none), or the spectrum is an average over the extinctions of
        the training stars with those labels, which change with Teff (with the
        bundled model the blue-to-red flux ratio of a log g 2.5 giant then
        barely changes from 4450 to 4750 K, while at fixed A_K it rises 17 %).
    phot_g_mean_mag : float, array or Quantity, optional
        Gaia G magnitude (broadcast like the labels). Given: absolute flux in
        W m^-2 nm^-1; otherwise flux per unit G-band flux (`RELATIVE_FLUX_UNIT`,
        the flux of a star of G = `giantfm.tokens.G_ZERO_POINT`).
    wavelength : `~astropy.units.Quantity` or array, optional
        Sampling grid inside 330-1050 nm (nm if plain numbers); default
        336-1020 nm in 2 nm steps.
    device, batch_size, progress, model
        As for `giantfm.predict`.
    **other_tokens
        Other vocabulary tokens to condition on (colours such as ``j_k``,
        ``bp_rp`` [mag]). Unknown names raise `~giantfm.exceptions.InvalidNameError`
        (a `ValueError`).

    Returns
    -------
    `specutils.Spectrum`
        Flux of shape ``broadcast shape + (n_wavelength,)`` with a
        `~astropy.nddata.StdDevUncertainty` (the predicted coefficients'
        standard deviations propagated as independent). ``meta`` holds
        ``labels`` (a QTable of the conditions, one row per spectrum),
        ``flag``, ``flags`` and ``reason`` (per spectrum, flattened; a spectrum
        is flagged where a label given was left out as no label, or lies
        outside the training labels), the coefficients
        (``bp_coefficients`` ...) and the model's name.

    Warns
    -----
    `~giantfm.exceptions.GiantfmWarning`
        When labels lie outside the model's training labels (ranges, or an
        empty part of the Kiel diagram); such spectra are extrapolations and
        are flagged in ``meta['flag']`` with the reason.

    Examples
    --------
    >>> import astropy.units as u
    >>> import giantfm
    >>> spec = giantfm.generate_spectrum(teff=[4500, 4900] * u.K, logg=2.5, m_h=0.0)
    >>> spec.flux.shape
    (2, 343)
    """
    given = {"teff": teff, "logg": logg, "m_h": m_h, "alpha_m": alpha_m, "mass": mass,
             "age": age, "a_k": extinction}
    for name, value in other_tokens.items():
        vocab.token_id(name)  # unknown names raise InvalidNameError, naming the name
        if name in XP_NAMES or name == "[pad]":
            raise ValueError(f"{name!r} cannot be a condition of generate_spectrum; to "
                             "complete partly known coefficients use giantfm.inpaint")
        given[name] = value
    given = {name: value for name, value in given.items() if value is not None}
    if not given:
        raise ValueError("give at least one label, e.g. generate_spectrum(teff=4800 * u.K, "
                         "logg=2.5, m_h=0.0)")
    shapes = {name: np.shape(value) for name, value in given.items()}
    if phot_g_mean_mag is not None:
        shapes["phot_g_mean_mag"] = np.shape(phot_g_mean_mag)
    try:
        shape = np.broadcast_shapes(*shapes.values())
    except ValueError:
        raise ValueError("the labels do not broadcast against each other: shapes "
                         + ", ".join(f"{k}={v}" for k, v in shapes.items())) from None
    n = int(np.prod(shape, dtype=int))
    if n == 0:
        raise ValueError("the labels are empty arrays: nothing to generate")

    def flat_in_unit(value, unit, name):
        value = tokens.value_in_unit(value, unit, name).reshape(shapes[name])
        return np.broadcast_to(value, shape).reshape(n).astype(float)

    flat = {name: flat_in_unit(value, vocab.token_unit(name), name)
            for name, value in given.items()}

    batch = tokens.from_arrays(labels=flat)
    net = get_model(device=device, model=model)
    _, mean, std, embedded = answer(net, batch, XP_NAMES, batch_size=batch_size,
                                    progress=progress)
    status = QTable()
    add_status(status, batch)
    finish(status, batch, net.metadata, embedding=embedded)
    flags = np.asarray(status["flags"])
    # a condition left out (not a label: NaN, inf, -9999) makes it another spectrum than asked
    status["flag"] |= (flags & REASONS["bad_value"].value) != 0
    outside = np.asarray(status["flag"])
    if outside.any():
        first = np.flatnonzero(outside)[0]
        warnings.warn(f"{int(outside.sum())} of {n} requested label sets lie outside the labels "
                      f"the model was trained on (e.g. spectrum {first}: "
                      f"{status['reason'][first]}); their spectra are extrapolations, flagged in "
                      "meta['flag']", GiantfmWarning, stacklevel=2)
    if phot_g_mean_mag is None:
        scale, unit = np.ones((n, 1)), RELATIVE_FLUX_UNIT
    else:
        g_mag = flat_in_unit(phot_g_mean_mag, u.mag, "phot_g_mean_mag")
        scale, unit = tokens.g_flux(g_mag)[:, None], ABSOLUTE_FLUX_UNIT
    coefficients = mean * scale
    errors = std * scale
    bp = (coefficients[:, :_N], errors[:, :_N])
    rp = (coefficients[:, _N:], errors[:, _N:])
    labels = QTable({name: value * vocab.token_unit(name) for name, value in flat.items()})
    meta = {"labels": labels, "flag": np.asarray(status["flag"]),
            "flags": np.asarray(status["flags"]), "reason": np.asarray(status["reason"]),
            "bp_coefficients": bp[0], "bp_coefficient_errors": bp[1],
            "rp_coefficients": rp[0], "rp_coefficient_errors": rp[1], **model_meta(net)}
    return _xp_spectrum(bp, rp, wavelength, unit, meta, shape=shape)
