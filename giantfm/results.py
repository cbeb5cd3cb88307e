"""The last step of the flow: the network's answers as an astropy `~astropy.table.QTable`.

The network answers in token scale, as plain arrays (`giantfm.vocab`); a
result has one row per input star, in input order, with ``source_id``, each
requested quantity and ``<name>_err`` in vocabulary units, ``flag`` and
``reason``. A row that cannot be predicted comes back masked with its reason,
never dropped. For `giantfm.predict`, mass and age are then masked outside
the label domain of the model that made the training masses and ages, and
their errors include that label model's scatter (`mask_outside_label_domain`,
`add_label_floor`). `giantfm.scale` writes the same columns as plain values
(`PREDICTION_COLUMNS`, `prediction_units`).
"""
import numpy as np
from astropy.table import QTable
from astropy.utils.masked import Masked

from . import vocab
from .tokens import from_token_scale

__all__ = ["results_table", "mask_outside_label_domain", "add_label_floor", "model_meta",
           "describe_inputs", "empty_result", "prediction_units", "PREDICTION_COLUMNS",
           "GIANT_DOMAIN", "NO_PREDICTION"]

#: The columns `giantfm.predict` returns for each star (besides ``source_id``), in order.
PREDICTION_COLUMNS = tuple(c for name in vocab.LABEL_NAMES
                           for c in (name, f"{name}_err")) + ("flag", "reason")

#: Fallback domain of the mass and age labels when a model does not record the
#: calibration domain of the label model that made its training labels.
GIANT_DOMAIN = {"logg": (0.0, 3.5), "teff": (3500.0, 5500.0)}

#: The reason of a usable star that got no answer.
NO_PREDICTION = ("no prediction: none of the star's tokens is an input of this model, or the "
                 "network returned a non-finite value")


def model_meta(net):
    """Which model answered: ``giantfm_model`` (its name) and ``giantfm_model_version``."""
    metadata = getattr(net, "metadata", {}) or {}
    return {"giantfm_model": metadata.get("name", "custom"),
            "giantfm_model_version": metadata.get("version", "unknown")}


def describe_inputs(batch):
    """The tokens the stars of ``batch`` bring, in words (for ``meta['inputs']``)."""
    present = np.unique(batch.ids[batch.ids != vocab.PAD_ID])
    names = [vocab.NAMES[i] for i in present]
    xp = set(vocab.XP_NAMES)
    n_bp = sum(name in xp and name.startswith("bp") for name in names)
    n_rp = sum(name in xp and name.startswith("rp") for name in names)
    other = [name for name in names if name not in xp]
    return f"{n_bp} BP and {n_rp} RP coefficient tokens; " + ", ".join(other)


def results_table(batch, names, mean, std, meta):
    """Token-scale answers -> QTable in vocabulary units, masked where not predicted.

    Parameters
    ----------
    batch : `~giantfm.tokens.TokenBatch`
        The stars asked about (their ``source_id`` and ``reason``).
    names : sequence of str
        The tokens asked for, one column of ``mean`` and ``std`` each.
    mean, std : arrays (n_stars, len(names))
        The network's answers in token scale (NaN where none).
    meta : dict
        Put into the table's ``meta``.
    """
    result = QTable()
    if (batch.source_id >= 0).any():
        result["source_id"] = batch.source_id
    reason = np.array(batch.reason, dtype=object)
    reason[(reason == "") & ~np.all(np.isfinite(mean), axis=1)] = NO_PREDICTION
    for k, name in enumerate(names):
        value, error = from_token_scale(name, mean[:, k], std[:, k])
        unit = vocab.token_unit(name)
        bad = ~np.isfinite(value) | (reason != "")
        result[name] = Masked(np.where(bad, np.nan, value) * unit, mask=bad)
        result[f"{name}_err"] = Masked(np.where(bad, np.nan, error) * unit, mask=bad)
    result["flag"] = reason != ""
    result["reason"] = reason.astype(str)
    result.meta.update(meta)
    return result


def mask_outside_label_domain(result, domain):
    """Mask mass and age of stars whose predicted labels lie outside ``domain``.

    The mass and age labels the network learned come from a label model
    calibrated on asteroseismic giants in this domain; elsewhere (dwarfs,
    upper giant branch, metal-poor stars) they are extrapolations. The domain
    is recorded in ``result.meta['label_domain']``.
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


def add_label_floor(result, floor):
    """Add the label model's scatter against asteroseismology to mass and age errors.

    The network predicts the label model's mass and age, and its own error
    says how well it does that; the label model itself scatters around the
    seismic values (measured by cross-validation). Their quadrature sum is the
    uncertainty on the asteroseismic scale that users ask for; the floor is
    recorded in ``result.meta['label_floor']``.
    """
    if not floor:
        return
    mass, age = result["mass"], result["age"]
    result["mass_err"] = np.hypot(result["mass_err"], floor["mass_fractional"] * mass)
    result["age_err"] = np.hypot(result["age_err"], np.log(10) * floor["log10_age"] * age)
    result.meta["label_floor"] = dict(floor)


def prediction_units():
    """The unit of each prediction column, as strings (``flag`` and ``reason`` have none).

    Returns
    -------
    dict
        Column name -> unit string, e.g. ``{'teff': 'K', 'logg': 'dex(cm / s2)', ...}``:
        the units of the plain float columns `giantfm.predict_catalog` adds.
    """
    units = {}
    for column in PREDICTION_COLUMNS[:-2]:
        name = column[:-4] if column.endswith("_err") else column
        units[column] = vocab.token_unit(name).to_string()
    return units


def empty_result(rows=0):
    """A result of ``rows`` zero rows' worth: the prediction columns, with their units."""
    result = QTable()
    for name in PREDICTION_COLUMNS[:-2]:
        base = name[:-4] if name.endswith("_err") else name
        result[name] = np.zeros(rows) << vocab.token_unit(base)
    result["flag"] = np.zeros(rows, dtype=bool)
    result["reason"] = np.zeros(rows, dtype="U1")
    return result
