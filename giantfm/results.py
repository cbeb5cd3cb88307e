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
from astropy import units as u
from astropy.table import QTable
from astropy.utils.masked import Masked

from . import vocab
from .flags import reason as reason_text
from .tokens import from_token_scale

__all__ = ["results_table", "inside_label_domain", "mask_outside_label_domain",
           "add_label_floor", "add_ood_score", "embedding_distance", "join_reasons",
           "model_meta", "describe_inputs", "empty_result", "prediction_units",
           "PREDICTION_COLUMNS", "GIANT_DOMAIN", "CONSISTENCY_SCALES"]

#: The columns `giantfm.predict` returns for each star (besides ``source_id``), in order.
PREDICTION_COLUMNS = tuple(c for name in vocab.LABEL_NAMES
                           for c in (name, f"{name}_err")) + ("ood_score", "flag", "reason")

#: The ``ood_score`` scales of the two photometric-consistency measures for a model
#: that records none (see `add_ood_score`).
CONSISTENCY_SCALES = {"g": 5.0, "colour": 5.0}

#: Fallback domain of the mass and age labels when a model does not record the
#: calibration domain of the label model that made its training labels.
GIANT_DOMAIN = {"logg": (0.0, 3.5), "teff": (3500.0, 5500.0)}

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
    failure = np.array(batch.reason, dtype=object)
    failure[(failure == "") & ~np.all(np.isfinite(mean), axis=1)] = reason_text("not_read")
    for k, name in enumerate(names):
        value, error = from_token_scale(name, mean[:, k], std[:, k])
        unit = vocab.token_unit(name)
        bad = ~np.isfinite(value) | (failure != "")
        result[name] = Masked(np.where(bad, np.nan, value) * unit, mask=bad)
        result[f"{name}_err"] = Masked(np.where(bad, np.nan, error) * unit, mask=bad)
    result["flag"] = failure != ""
    # the notes on left-out inputs come after a failure: they are why, or the detail
    result["reason"] = join_reasons(failure, batch.notes).astype(str)
    result.meta.update(meta)
    return result


def join_reasons(first, second):
    """Per star, the reasons ``first`` and ``second`` joined with ``"; "`` (empty ones left out)."""
    first, second = np.asarray(first, dtype=object), np.asarray(second, dtype=object)
    both = (first != "") & (second != "")
    out = np.where(first != "", first, second).astype(object)
    out[both] = [f"{a}; {b}" for a, b in zip(first[both], second[both])]
    return out


def _append_reason(result, rows, texts):
    """Add ``texts`` (one, or one per True of ``rows``) to the reason of ``rows`` and flag them."""
    rows = np.asarray(rows, dtype=bool)
    add = np.full(len(result), "", dtype=object)
    add[rows] = texts
    result["reason"] = join_reasons(result["reason"].astype(object), add).astype(str)
    result["flag"] |= rows


def inside_label_domain(labels, domain, n):
    """True for the ``n`` stars whose ``labels`` (``{name: values}``, vocabulary units) lie
    inside every range of ``domain`` (``{name: (low, high)}``) they have; NaN is outside."""
    inside = np.ones(n, dtype=bool)
    for name, (low, high) in domain.items():
        if name in labels:
            with np.errstate(invalid="ignore"):
                inside &= (labels[name] >= low) & (labels[name] <= high)
    return inside


def mask_outside_label_domain(result, domain):
    """Mask mass and age of stars whose predicted labels lie outside ``domain``.

    The mass and age labels the network learned come from a label model
    calibrated on asteroseismic giants in this domain; elsewhere (dwarfs,
    upper giant branch, metal-poor stars) they are extrapolations. The domain
    is recorded in ``result.meta['label_domain']``.
    """
    inside = inside_label_domain({name: result[name].unmasked.value for name in domain
                                  if name in result.colnames}, domain, len(result))
    outside = ~inside & ~result["flag"]
    for name in vocab.MASS_AGE_NAMES:
        for col in (name, f"{name}_err"):
            if col in result.colnames:      # a `request` result may lack them
                result[col].mask |= outside
    _append_reason(result, outside, reason_text(
        "outside_label_domain",
        domain=", ".join(f"{lo:.4g} <= {n} <= {hi:.4g}" for n, (lo, hi) in domain.items())))
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


def embedding_distance(embedding, ood):
    """Mahalanobis distance of star embeddings from the training stars' (``ood`` of a model)."""
    mean = np.asarray(ood["embedding_mean"], dtype=np.float64)
    precision = np.asarray(ood["embedding_precision"], dtype=np.float64)
    x = np.asarray(embedding, dtype=np.float64) - mean
    return np.sqrt(np.einsum("ni,ij,nj->n", x, precision, x))


def add_ood_score(result, batch, embedding=None, ood=None):
    """Add ``ood_score``: how unlike the training stars each star's inputs are; flag above 1.

    The score is the largest of three measures, each divided by its scale:

    * ``|z_G|``, how far the G synthesised from the spectrum lies from the
      measured G in units of their errors, and ``|z_colour|``, the same for
      BP - RP (`giantfm.tokens.TokenBatch.consistency`): a spectrum of another
      star, scaled, or with swapped bands disagrees with its photometry;
    * the Mahalanobis distance of the star's embedding (the network's encoding
      of its inputs, `giantfm.model.TrainedModel.request`) from those of the
      training stars and their faint copies: inputs the network has never seen
      the like of.

    The scales are each measure's 99.7th percentile over the validation
    giants and their faint copies (recorded with the model as
    ``metadata['ood']`` by ``tools/bundle_model.py``,
    `giantfm.train.ood.calibrate_ood`); a model without them gets the
    consistency measures alone, with `CONSISTENCY_SCALES`. A score above 1
    flags the row (its labels are kept) with a reason naming the measure.
    """
    ood = ood or {}
    scales = {**CONSISTENCY_SCALES, **ood.get("scales", {})}
    if embedding is not None and "embedding_mean" in ood and "embedding" not in scales:
        raise ValueError("the model's metadata['ood'] has an embedding calibration but no "
                         "scales['embedding']: calibrate it again (tools/bundle_model.py)")
    parts = {"g": np.abs(batch.consistency[:, 0]) / scales["g"],
             "colour": np.abs(batch.consistency[:, 1]) / scales["colour"]}
    if embedding is not None and "embedding_mean" in ood:
        parts["embedding"] = embedding_distance(embedding, ood) / scales["embedding"]
    stacked = np.column_stack(list(parts.values()))
    known = np.isfinite(stacked).any(axis=1)
    measured = np.where(np.isfinite(stacked), stacked, -np.inf)
    worst = np.argmax(measured, axis=1)
    score = np.where(known, measured.max(axis=1), np.nan)
    score[~np.asarray(batch.ok)] = np.nan
    result.add_column(Masked(np.nan_to_num(score) * u.dimensionless_unscaled,
                             mask=~np.isfinite(score)), name="ood_score",
                      index=result.colnames.index("flag"))
    result["ood_score"].info.description = ("how unlike the training stars the inputs are; "
                                            "flagged above 1")
    over = np.nan_to_num(score) > 1
    names = list(parts)
    details = {"g": "its spectrum and its G disagree by {:.3g} sigma",
               "colour": "its spectrum and its BP - RP disagree by {:.3g} sigma",
               "embedding": "its inputs lie {:.3g} times farther from the training stars than "
                            f"{ood.get('quantile', 99.7):g} % of theirs"}
    texts = []
    for row in np.flatnonzero(over):
        part = names[worst[row]]
        value = abs(batch.consistency[row, worst[row]]) if part != "embedding" \
            else stacked[row, worst[row]]
        texts.append(reason_text("out_of_distribution", score=score[row],
                                 detail=details[part].format(value)))
    _append_reason(result, over, texts)
    result.meta["ood_scales"] = dict(scales)


def prediction_units():
    """The unit of each prediction column, as strings (``flag`` and ``reason`` have none).

    Returns
    -------
    dict
        Column name -> unit string, e.g. ``{'teff': 'K', 'logg': 'dex(cm / s2)', ...}``:
        the units of the plain float columns `giantfm.predict_catalog` adds.
    """
    units = {}
    for column in PREDICTION_COLUMNS[:-3]:
        name = column[:-4] if column.endswith("_err") else column
        units[column] = vocab.token_unit(name).to_string()
    units["ood_score"] = u.dimensionless_unscaled.to_string()
    return units


def empty_result(rows=0):
    """A result of ``rows`` zero rows' worth: the prediction columns, with their units."""
    result = QTable()
    for name in PREDICTION_COLUMNS[:-3]:
        base = name[:-4] if name.endswith("_err") else name
        result[name] = np.zeros(rows) << vocab.token_unit(base)
    result["ood_score"] = np.zeros(rows) << u.dimensionless_unscaled
    result["flag"] = np.zeros(rows, dtype=bool)
    result["reason"] = np.zeros(rows, dtype="U1")
    return result
