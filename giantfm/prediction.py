"""The user-facing verbs: `predict` labels of giants, and `request` any token from any other.

This is the last step of the flow inputs -> tokens -> network -> results: it
turns a `~giantfm.tokens.TokenBatch` and the network's answers (token scale,
plain arrays) into an astropy `~astropy.table.QTable` with units, keeping the
input's rows, order and ``source_id``. A row that cannot be predicted comes
back masked with its reason in the ``reason`` column, never dropped.
"""
import numpy as np
from astropy import units as u
from astropy.table import QTable
from astropy.utils.masked import Masked

from . import tokens, vocab
from .config import conf

__all__ = ["predict", "request", "get_model", "GIANT_DOMAIN", "PREDICTED_LABELS"]

#: The labels `predict` returns, in this order.
PREDICTED_LABELS = ("teff", "logg", "m_h", "alpha_m", "mass", "age")

#: Fallback domain of the mass and age labels when a model does not record the
#: calibration domain of the label model that made its training labels.
GIANT_DOMAIN = {"logg": (0.0, 3.5), "teff": (3500.0, 5500.0)}

# Stars per call above which a progress bar is worth showing (progress='auto').
_PROGRESS_THRESHOLD = 20_000

_MODELS = {}


def get_model(device=None, model=None):
    """The model `predict` uses: loaded on first use and cached per device.

    Parameters
    ----------
    device : str, optional
        Defaults to ``giantfm.conf.device`` ('auto': CUDA when available, else CPU).
    model : str, path or `giantfm.model.TrainedModel`, optional
        Defaults to ``giantfm.conf.model`` ('bundled': the model shipped in the package).
    """
    from .model import load_model  # torch is imported here, at first use only

    if model is not None and not isinstance(model, (str, bytes)) and hasattr(model, "request"):
        return model
    name = conf.model if model is None else model
    device = conf.device if device is None else device
    key = (str(name), None if device == "auto" else device)
    if key not in _MODELS:
        _MODELS[key] = load_model(None if name == "bundled" else name, device=key[1])
    return _MODELS[key]


def _progress(progress, n):
    if progress is None:
        progress = conf.progress
    if isinstance(progress, str):
        if progress not in ("auto", "on", "off"):
            raise ValueError("progress must be True, False, 'auto', 'on' or 'off', "
                             f"got {progress!r}")
        return n >= _PROGRESS_THRESHOLD if progress == "auto" else progress == "on"
    return bool(progress)


def _batch_size(batch_size):
    batch_size = conf.batch_size if batch_size is None else batch_size
    if int(batch_size) != batch_size or batch_size < 0:
        raise ValueError(f"batch_size must be a positive integer (or 0 for automatic), "
                         f"got {batch_size!r}")
    return int(batch_size) or None


def _results_table(batch, names, mean, std, meta):
    """Token-scale answers -> QTable in vocabulary units, masked where not predicted."""
    result = QTable()
    if (batch.source_id >= 0).any():
        result["source_id"] = batch.source_id
    reason = np.array(batch.reason, dtype=object)
    reason[(reason == "") & ~np.all(np.isfinite(mean), axis=1)] = (
        "no prediction: none of the star's tokens is an input of this model, or the network "
        "returned a non-finite value")
    for k, name in enumerate(names):
        value, error = tokens.from_token_scale(name, mean[:, k], std[:, k])
        unit = vocab.VOCABULARY[vocab.token_id(name)].unit
        bad = ~np.isfinite(value) | (reason != "")
        result[name] = Masked(np.where(bad, np.nan, value) * unit, mask=bad)
        result[f"{name}_err"] = Masked(np.where(bad, np.nan, error) * unit, mask=bad)
    result["flag"] = reason != ""
    result["reason"] = reason.astype(str)
    result.meta.update(meta)
    return result


def request(inputs, outputs, *, photometry=None, device=None, batch_size=None, progress=None,
            truncate=True, model=None):
    """Any tokens in, any tokens out: the general form of `predict`.

    Parameters
    ----------
    inputs : table, `specutils.Spectrum`, dict or `~giantfm.tokens.TokenBatch`
        Anything `giantfm.tokens.tokenize` accepts (a Gaia XP table, a
        flattened table, a Spectrum, a path), a `TokenBatch`, or a mapping of
        token names to values (Quantities are converted to the vocabulary
        unit; ``name_err`` entries give errors), e.g.
        ``{'teff': [4500, 4800] * u.K, 'logg': [2.4, 2.9], 'm_h': [0.0, -0.3]}``.
    outputs : str or sequence of str
        Token names to predict (see `giantfm.vocab.vocabulary_table`).
    photometry, truncate
        Passed to `giantfm.tokens.tokenize` for table and spectrum inputs.
    device, batch_size, progress, model
        See `predict`.

    Returns
    -------
    `~astropy.table.QTable`
        One row per input star, in input order: ``source_id`` when known,
        each output and ``<name>_err`` in vocabulary units (masked where not
        predicted), ``flag`` and ``reason``.
    """
    names = [outputs] if isinstance(outputs, str) else list(outputs)
    if not names:
        raise ValueError("outputs is empty: name at least one token to predict")
    vocab.token_ids(names)  # unknown names raise here, before any work
    batch = _as_batch(inputs, photometry=photometry, truncate=truncate)
    net = get_model(device=device, model=model)
    mean, std = net.request(batch, names, batch_size=_batch_size(batch_size),
                            progress=_progress(progress, len(batch)))
    metadata = getattr(net, "metadata", {}) or {}
    meta = {"giantfm_model": metadata.get("name", "custom"),
            "giantfm_model_version": metadata.get("version", "unknown"),
            "device": str(getattr(net, "device", "unknown")),
            "inputs": _describe_inputs(batch)}
    return _results_table(batch, names, np.asarray(mean), np.asarray(std), meta)


def predict(data, *, photometry=None, device=None, batch_size=None, progress=None, truncate=True,
            model=None):
    """Teff, log g, [M/H], [alpha/M], mass and age of red giants from Gaia XP spectra.

    Parameters
    ----------
    data : `~astropy.table.Table`, `specutils.Spectrum`, str or path
        A Gaia DR3 ``xp_continuous_mean_spectrum`` table (array columns
        ``bp_coefficients``... as the archive or astroquery return it, or the
        flattened ``bp_coeff_0..54`` form) with ``phot_g_mean_mag`` (needed to
        normalise the coefficients) and, when present, the BP, RP and 2MASS
        magnitudes; a `specutils.Spectrum` (one star or a 2-D batch); or the
        path of such a table.
    photometry : `~astropy.table.Table`, optional
        Magnitudes for the same stars when ``data`` lacks them (same row
        order, or matched on ``source_id``).
    device : str, optional
        'cpu', 'cuda', 'cuda:1', 'mps'; defaults to ``giantfm.conf.device``.
    batch_size : int, optional
        Stars per network call; defaults to ``giantfm.conf.batch_size``
        (0: chosen for the device).
    progress : bool or str, optional
        Progress bar (needs tqdm); default 'auto' shows one for large inputs.
    truncate : bool, optional
        Leave out coefficients beyond ``bp/rp_n_relevant_bases`` (default True).
    model : str, path or `giantfm.model.TrainedModel`, optional
        Another model than the bundled one.

    Returns
    -------
    `~astropy.table.QTable`
        One row per input star, in input order: ``source_id`` (when known),
        ``teff`` [K], ``logg`` [dex(cm s-2)], ``m_h`` [dex], ``alpha_m`` [dex],
        ``mass`` [solMass], ``age`` [Gyr], each with ``<name>_err`` (1-sigma,
        the network's predictive uncertainty); ``flag`` (True where something
        was not predicted) and ``reason``. Rows that could not be predicted
        are masked. Mass and age are masked for stars whose predicted labels
        fall outside the calibration domain of the label model behind the
        training masses and ages (recorded with the model; ``meta['label_domain']``),
        and their errors include that label model's scatter against
        asteroseismology (``meta['label_floor']``), so they are uncertainties
        on the asteroseismic (APOKASC-2) scale. ``meta`` also records the
        model, its version, the device and the inputs used.
    """
    net = get_model(device=device, model=model)
    result = request(data, PREDICTED_LABELS, photometry=photometry, device=device,
                     batch_size=batch_size, progress=progress, truncate=truncate, model=net)
    metadata = getattr(net, "metadata", {}) or {}
    _mask_outside_label_domain(result, metadata.get("label_domain", GIANT_DOMAIN))
    _add_label_floor(result, metadata.get("label_floor"))
    return result


def _mask_outside_label_domain(result, domain):
    """Mask mass and age of stars whose predicted labels lie outside ``domain``.

    The mass and age labels the network learned come from a label model
    calibrated on asteroseismic giants in this domain; elsewhere (dwarfs,
    upper giant branch, metal-poor stars) they are extrapolations.
    """
    inside = np.ones(len(result), dtype=bool)
    for name, (lo, hi) in domain.items():
        if name not in result.colnames:
            continue
        value = result[name].unmasked.value
        with np.errstate(invalid="ignore"):
            inside &= (value >= lo) & (value <= hi)
    outside = ~inside & ~result["flag"]
    for name in ("mass", "age"):
        for col in (name, f"{name}_err"):
            result[col].mask |= outside
    reason = result["reason"].astype(object)
    reason[outside] = ("outside the mass-age label domain (predicted "
                       + ", ".join(f"{lo:.4g} <= {n} <= {hi:.4g}" for n, (lo, hi) in domain.items())
                       + " not met): mass and age masked")
    result["reason"] = reason.astype(str)
    result["flag"] |= outside
    result.meta["label_domain"] = {k: list(v) for k, v in domain.items()}


def _add_label_floor(result, floor):
    """Add the label model's scatter against asteroseismology to mass and age errors.

    The network predicts the label model's mass and age, and its own error
    says how well it does that; the label model itself scatters around the
    seismic values (measured by cross-validation). Their quadrature sum is the
    uncertainty on the asteroseismic scale that users ask for.
    """
    if not floor:
        return
    mass, age = result["mass"], result["age"]
    result["mass_err"] = np.hypot(result["mass_err"], floor["mass_fractional"] * mass)
    result["age_err"] = np.hypot(result["age_err"], np.log(10) * floor["log10_age"] * age)
    result.meta["label_floor"] = dict(floor)


def _as_batch(inputs, *, photometry, truncate):
    if isinstance(inputs, tokens.TokenBatch):
        return inputs
    if isinstance(inputs, dict):
        return _batch_from_mapping(inputs)
    return tokens.tokenize(inputs, photometry=photometry, truncate=truncate)


def _batch_from_mapping(mapping):
    labels = {}
    for name, value in mapping.items():
        if name.endswith("_err"):
            if name[:-4] not in mapping:
                raise KeyError(f"{name!r} is given without {name[:-4]!r}")
            continue
        unit = vocab.VOCABULARY[vocab.token_id(name)].unit
        error = mapping.get(f"{name}_err")
        labels[name] = (_in_unit(value, unit, name),
                        None if error is None else _in_unit(error, unit, f"{name}_err"))
    if not labels:
        raise ValueError("inputs is empty: give at least one token, e.g. {'teff': 4500 * u.K}")
    return tokens.from_arrays(labels=labels)


def _in_unit(value, unit, name):
    if isinstance(value, u.Quantity):
        try:
            return np.atleast_1d(value.to_value(unit, equivalencies=u.logarithmic()))
        except u.UnitConversionError:
            raise u.UnitConversionError(f"{name} is in {value.unit}, which cannot be converted "
                                        f"to {unit}") from None
    return np.atleast_1d(np.asarray(value, dtype=float))


def _describe_inputs(batch):
    present = np.unique(batch.ids[batch.ids != vocab.PAD_ID])
    names = [vocab.NAMES[i] for i in present]
    n_bp = sum(n.startswith("bp") and n[2:].isdigit() for n in names)
    n_rp = sum(n.startswith("rp") and n[2:].isdigit() for n in names)
    other = [n for n in names if not (n[:2] in ("bp", "rp") and n[2:].isdigit())]
    return f"{n_bp} BP and {n_rp} RP coefficient tokens; " + ", ".join(other)
