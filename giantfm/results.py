"""The last step of the flow: the network's answers as an astropy `~astropy.table.QTable`.

The network answers in token scale, as plain arrays (`giantfm.vocab`); a
result has one row per input star, in input order, with ``source_id``, each
requested quantity and ``<name>_err`` in vocabulary units (a probability such
as ``p_rc`` has no ``_err``: it is its own uncertainty), ``flag``, ``flags``
and ``reason``; with ``p_rc`` comes ``evstate``, the state it says. A row
that cannot be predicted comes back masked with its reason, never dropped.

Every verb's answers then go through the same checks, `finish`, in this order:

1. mass, age and the evolutionary state are masked outside the domain of the
   label model that made the training masses, ages and states
   (`mask_outside_label_domain`: the note names the limits broken), and the
   mass and age errors include that label model's scatter (`add_label_floor`);
2. ``ood_score``, how unlike the training stars the inputs are
   (`add_ood_score`), and the labels given as inputs checked against the
   training labels (`add_label_support`);
3. ``flag``, from ``flags``, the bitmask of the reasons (`set_flags`,
   `giantfm.flags`): every reason is added with its bit (`add_status`, and each
   check), and no bit is read back from a text.

A result is a `Result`, a QTable that prints each label to its precision
(`giantfm.vocab.Token.format`) and each ``reason`` short: for display only,
the data and every file written keep the full values and texts.
`giantfm.scale` writes the same columns as plain values (`PREDICTION_COLUMNS`,
`prediction_units`).
"""
import numpy as np
from astropy import units as u
from astropy.table import QTable
from astropy.table.pprint import TableFormatter
from astropy.utils.masked import Masked

from . import vocab
from .flags import FLAG_MASK, REASONS, SEPARATOR, reason_texts
from .flags import reason as reason_text
from .metadata import DEFAULT_LABEL_DOMAIN, ModelMetadata
from .tokens import from_token_scale

__all__ = ["Result", "results_table", "add_status", "finish", "add_evstate", "label_columns",
           "inside_label_domain", "mask_outside_label_domain", "EVSTATE_THRESHOLD",
           "EVSTATE_COLUMN", "LABEL_MODEL_COLUMNS", "STATUS_COLUMNS",
           "add_label_floor", "add_ood_score", "add_label_support", "label_support_reasons",
           "set_flags", "embedding_distance", "join_reasons", "model_meta", "result_meta",
           "describe_inputs", "empty_result", "prediction_units", "display_format", "summarize",
           "PREDICTION_COLUMNS", "CONSISTENCY_SCALES", "REASON_WIDTH"]

#: The columns of the status of a row, after its labels (a label cannot be called so).
STATUS_COLUMNS = ("ood_score", "flag", "flags", "reason")
#: The column of the state that ``p_rc`` says (`add_evstate`).
EVSTATE_COLUMN = "evstate"
#: ``evstate`` is 'RC' where ``p_rc`` is at least this, else 'RGB'.
EVSTATE_THRESHOLD = 0.5


def label_columns(name, vocabulary=vocab.VOCABULARY):
    """The result columns of the label ``name``: the value and its ``_err`` for a token of
    kind ``value``; ``p_rc`` and `EVSTATE_COLUMN`, the state it says, for the state.
    ``vocabulary``: giantfm's, or a model's with its own labels."""
    if vocabulary.token(name).kind == "probability":
        return (name, EVSTATE_COLUMN) if name in vocab.STATE_NAMES else (name,)
    return (name, f"{name}_err")


#: The columns `giantfm.predict` returns for each star (besides ``source_id``), in order:
#: each label's (`label_columns`), then the status.
PREDICTION_COLUMNS = tuple(c for name in vocab.LABEL_NAMES for c in label_columns(name)) \
    + STATUS_COLUMNS
#: The columns that come from what the label model teaches: masked outside its domain.
LABEL_MODEL_COLUMNS = tuple(c for name in vocab.MASS_AGE_NAMES + vocab.STATE_NAMES
                            for c in label_columns(name))

#: The ``ood_score`` scales of the two photometric-consistency measures for a model
#: that records none (see `add_ood_score`).
CONSISTENCY_SCALES = {"g": 5.0, "colour": 5.0}


#: How many characters of a ``reason`` a printed result shows (the data keep all).
REASON_WIDTH = 30
#: How a printed result shows ``ood_score``.
_OOD_SCORE_FORMAT = ".2f"


def _short_reason(text):
    return text if len(text) <= REASON_WIDTH else text[:REASON_WIDTH - 3] + "..."


def display_format(column, vocabulary=vocab.VOCABULARY):
    """How a printed result shows ``column`` (a format spec or a function), or None.

    A label and its ``_err`` show as the label's `giantfm.vocab.Token.format`
    says, ``ood_score`` with two decimals, and ``reason`` cut to `REASON_WIDTH`
    characters.
    """
    if column == "reason":
        return _short_reason
    if column == "ood_score":
        return _OOD_SCORE_FORMAT
    name = column[:-4] if column.endswith("_err") else column
    return (vocabulary.token(name).format or None) if name in vocabulary else None


class _ResultFormatter(TableFormatter):
    """Prints a copy of the table with the display formats set where none is."""

    def _pformat_table(self, table, *args, **kwargs):
        shown = table.copy(copy_data=False)
        for column in shown.itercols():
            fmt = display_format(column.info.name)
            if fmt is not None and column.info.format is None:
                column.info.format = fmt
        return super()._pformat_table(shown, *args, **kwargs)


class Result(QTable):
    """A verb's answer: a `~astropy.table.QTable` that prints readably.

    Printed (``print``, the notebook view, ``pprint``), each label and its
    ``_err`` show as many digits as the label's precision warrants
    (`display_format`, from `giantfm.vocab.Token.format`) and ``reason`` its
    first `REASON_WIDTH` characters. This is display only: the columns hold
    the full values and texts, carry no ``format``, and every file written --
    ECSV, CSV, FITS, Parquet -- keeps them in full. A format set on a column
    (``result['teff'].info.format = '.1f'``) takes precedence.
    """

    TableFormatter = _ResultFormatter


def model_meta(net):
    """Which model answered: ``giantfm_model`` (its name) and ``giantfm_model_version``."""
    metadata = net.metadata
    return {"giantfm_model": metadata.name, "giantfm_model_version": metadata.version}


def result_meta(net, batch, **extra):
    """A verb's ``meta``: which model answered (`model_meta`), ``extra``, the device it ran
    on and the inputs it read (`describe_inputs`)."""
    return {**model_meta(net), **extra, "device": str(getattr(net, "device", "unknown")),
            "inputs": describe_inputs(batch, net.input_names)}


def describe_inputs(batch, read=None):
    """The tokens of ``batch`` that the model reads, in words (for ``meta['inputs']``).

    Parameters
    ----------
    batch : `~giantfm.tokens.TokenBatch`
    read : sequence of str, optional
        The token names the model reads as inputs
        (`giantfm.model.TrainedModel.input_names`); tokens the stars bring
        beyond them are counted apart. None: every token is read.
    """
    counts = np.bincount(batch.ids.ravel(), minlength=vocab.N_TOKENS)   # faster than unique
    present = [vocab.NAMES[i] for i in np.flatnonzero(counts) if i != vocab.PAD_ID]
    read = set(vocab.NAMES if read is None else read)
    xp = set(vocab.XP_NAMES)
    parts = []
    for band in ("bp", "rp"):
        given = [name for name in present if name in xp and name.startswith(band)]
        used = [name for name in given if name in read]
        text = f"{len(used)} {band.upper()}"
        if used:
            orders = sorted(int(name[2:]) for name in used)
            text += f" (orders {orders[0]}-{orders[-1]})"
        if len(used) < len(given):
            text += f" of the {len(given)} given"
        parts.append(text)
    other = [name for name in present if name not in xp and name in read]
    ignored = [name for name in present if name not in xp and name not in read]
    text = " and ".join(parts) + " coefficient tokens; " + ", ".join(other)
    return text + (f" (not read: {', '.join(ignored)})" if ignored else "")


def results_table(batch, names, mean, std, meta, vocabulary=vocab.VOCABULARY):
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
    vocabulary : `giantfm.vocab.Vocabulary`, optional
        Of ``names``: giantfm's, or the model's with its own labels
        (`giantfm.model.TrainedModel.tokens`), whose units and scales they have.

    Returns
    -------
    `Result`
        The answers and the status columns of `add_status`; `finish`
        completes it.
    """
    result = Result()
    if (batch.source_id >= 0).any():
        result["source_id"] = batch.source_id
    failure = add_status(result, batch, np.all(np.isfinite(mean), axis=1))
    for k, name in enumerate(names):
        value, error = from_token_scale(name, mean[:, k], std[:, k], vocabulary)
        token = vocabulary.token(name)
        bad = ~np.isfinite(value) | failure
        at = result.colnames.index("flag")
        result.add_column(Masked(np.where(bad, np.nan, value) * token.unit, mask=bad),
                          name=name, index=at)
        if token.kind != "probability":
            result.add_column(Masked(np.where(bad, np.nan, error) * token.unit, mask=bad),
                              name=f"{name}_err", index=at + 1)
    result.meta.update(meta)
    return result


def add_status(result, batch, answered=None):
    """Add the status columns of the stars of ``batch``: ``flag``, ``flags`` and ``reason``.

    A star's ``reason`` is why it has no answer -- its own (``batch.reason``),
    or ``not_read`` where the network gave none (``answered`` False) -- then
    its notes on inputs left out or replaced; ``flags`` holds their bits
    (``batch.flags``, and ``not_read``'s), and ``flag`` is True where it has no
    answer (`set_flags` then sets it from the bits).

    Parameters
    ----------
    result : `~astropy.table.QTable`
        One row per star of ``batch``.
    batch : `~giantfm.tokens.TokenBatch`
    answered : bool array (n,), optional
        Which stars the network answered (finite answers); None: all it could read.

    Returns
    -------
    bool array (n,)
        True for the stars without an answer.
    """
    failure = np.array(batch.reason, dtype=object)
    bits = np.array(batch.flags, dtype=np.int64)
    if answered is not None:
        lost = (failure == "") & ~np.asarray(answered, dtype=bool)
        failure[lost] = reason_text("not_read")
        bits[lost] |= REASONS["not_read"].value
    unanswered = failure != ""
    result["flag"] = unanswered
    result["flags"] = bits
    # the notes on left-out inputs come after a failure: they are why, or the detail
    result["reason"] = join_reasons(failure, batch.notes).astype(str)
    return unanswered


def finish(result, batch, metadata, *, embedding=None):
    """The checks every verb's answers go through (see the module docstring), in place.

    Parameters
    ----------
    result : `~astropy.table.QTable`
        From `results_table` (or any table with the columns of `add_status`;
        ``mass`` and ``age`` are masked where it has them).
    batch : `~giantfm.tokens.TokenBatch`
        The stars' input tokens.
    metadata : `~giantfm.metadata.ModelMetadata`
        Of the model that answered.
    embedding : array (n_stars, d), optional
        The stars' embeddings, for the ``ood_score`` (see `add_ood_score`).
    """
    if not isinstance(metadata, ModelMetadata):
        raise TypeError(f"metadata must be a giantfm.metadata.ModelMetadata, "
                        f"got {type(metadata).__name__}")
    add_evstate(result)
    if any(name in result.colnames for name in LABEL_MODEL_COLUMNS):
        domain = metadata.label_domain
        mask_outside_label_domain(result, DEFAULT_LABEL_DOMAIN if domain is None else domain,
                                  batch)
        add_label_floor(result, metadata.label_floor)
    add_ood_score(result, batch, embedding, metadata.ood)
    add_label_support(result, batch, metadata.label_support)
    set_flags(result)
    return result


def add_evstate(result):
    """Add ``evstate`` after ``p_rc`` (where the result has it): ``'RC'`` where ``p_rc`` is at
    least `EVSTATE_THRESHOLD`, else ``'RGB'``; masked where ``p_rc`` is."""
    from astropy.table import MaskedColumn

    if vocab.P_RC not in result.colnames:
        return
    p = np.asarray(result[vocab.P_RC].unmasked.value, dtype=float)
    mask = np.asarray(result[vocab.P_RC].mask) | ~np.isfinite(p)
    with np.errstate(invalid="ignore"):
        state = np.where(p >= EVSTATE_THRESHOLD, "RC", "RGB")
    result.add_column(MaskedColumn(state, mask=mask, dtype="U3"), name=EVSTATE_COLUMN,
                      index=result.colnames.index(vocab.P_RC) + 1)
    result[EVSTATE_COLUMN].info.description = (
        f"'RC' (core-helium burning) where p_rc >= {EVSTATE_THRESHOLD}, else 'RGB'")


def join_reasons(first, second):
    """Per star, the reasons ``first`` and ``second`` joined with ``"; "`` (empty ones left out)."""
    first, second = np.asarray(first, dtype=object), np.asarray(second, dtype=object)
    both = (first != "") & (second != "")
    out = np.where(first != "", first, second).astype(object)
    out[both] = [f"{a}{SEPARATOR}{b}" for a, b in zip(first[both], second[both])]
    return out


def _append_reason(result, rows, code, texts):
    """Add ``texts`` (one, or one per True of ``rows``) of the reason ``code`` to the reason
    of ``rows``, and its bit to their ``flags``."""
    rows = np.asarray(rows, dtype=bool)
    add = np.full(len(result), "", dtype=object)
    add[rows] = texts
    result["reason"] = join_reasons(result["reason"].astype(object), add).astype(str)
    result["flags"][rows] |= REASONS[code].value


def inside_label_domain(labels, domain, n):
    """True for the ``n`` stars whose ``labels`` (``{name: values}``, vocabulary units) lie
    inside every range of ``domain`` (``{name: (low, high)}``) they have; NaN is outside."""
    inside = np.ones(n, dtype=bool)
    for name, (low, high) in domain.items():
        if name in labels:
            with np.errstate(invalid="ignore"):
                inside &= (labels[name] >= low) & (labels[name] <= high)
    return inside


def _domain_labels(result, domain, batch):
    """The labels the domain is tested on: each star's own input value where it gave one
    (a `giantfm.request` from labels), else the network's answer in ``result``."""
    names = [name for name in domain if name in result.colnames]
    given, _ = batch.values_of(names) if names else (np.empty((len(result), 0)), None)
    labels = {}
    for k, name in enumerate(names):
        predicted = np.asarray(result[name].unmasked.value, dtype=float)
        mine = from_token_scale(name, given[:, k])[0]
        labels[name] = np.where(np.isfinite(mine), mine, predicted)
    return labels


def _broken_limits(labels, domain, row):
    """The limits of ``domain`` that star ``row`` breaks, in words ("logg 4.4 > 3.29")."""
    broken = []
    for name, (low, high) in domain.items():
        if name not in labels:
            continue
        value = labels[name][row]
        if not np.isfinite(value):
            broken.append(f"{name} unknown")
        elif value < low:
            broken.append(f"{name} {value:.4g} < {low:.4g}")
        elif value > high:
            broken.append(f"{name} {value:.4g} > {high:.4g}")
    return ", ".join(broken)


def mask_outside_label_domain(result, domain, batch):
    """Mask mass, age and state of stars whose labels lie outside ``domain``, naming the limits.

    The mass, age and evolutionary-state labels the network learned come from
    a label model calibrated on asteroseismic giants in this domain; elsewhere
    (dwarfs, upper giant branch, metal-poor stars) they are extrapolations.
    The columns masked are those of `LABEL_MODEL_COLUMNS` the result has. The
    domain is tested on each star's input value of a label where it gave one,
    else on the network's answer (`giantfm.request` asks for the labels it
    needs), and is recorded in ``result.meta['label_domain']``.

    Parameters
    ----------
    result : `~astropy.table.QTable`
    domain : dict
        ``{label: (low, high)}`` in vocabulary units.
    batch : `~giantfm.tokens.TokenBatch`
        The stars' inputs.
    """
    present = [col for col in LABEL_MODEL_COLUMNS if col in result.colnames]
    if not present:
        return
    labels = _domain_labels(result, domain, batch)
    answered = ~np.asarray(result[present[0]].mask)
    outside = answered & ~inside_label_domain(labels, domain, len(result))
    for col in present:
        result[col].mask |= outside
    _append_reason(result, outside, "outside_label_domain", [
        reason_text("outside_label_domain", limits=_broken_limits(labels, domain, row))
        for row in np.flatnonzero(outside)])
    result.meta["label_domain"] = {k: list(v) for k, v in domain.items()}


def add_label_floor(result, floor):
    """Add the label model's scatter against asteroseismology to mass and age errors.

    The network predicts the label model's mass and age, and its own error
    says how well it does that; the label model itself scatters around the
    seismic values (measured by cross-validation). Their quadrature sum is the
    uncertainty on the asteroseismic scale that users ask for; the floor
    (`~giantfm.metadata.LabelFloor`, None for none) is recorded in
    ``result.meta['label_floor']``.
    """
    if floor is None:
        return
    if "mass" in result.colnames:
        result["mass_err"] = np.hypot(result["mass_err"], floor.mass_fractional * result["mass"])
    if "age" in result.colnames:
        result["age_err"] = np.hypot(result["age_err"],
                                     np.log(10) * floor.log10_age * result["age"])
    result.meta["label_floor"] = {"mass_fractional": floor.mass_fractional,
                                  "log10_age": floor.log10_age}


def embedding_distance(embedding, ood):
    """Mahalanobis distance of star embeddings from the training stars'
    (``ood``: a model's `~giantfm.metadata.OODCalibration`)."""
    x = np.asarray(embedding, dtype=np.float64) - ood.embedding_mean
    # a matrix product, then a row sum: 8x faster than the equivalent einsum (measured)
    return np.sqrt(np.sum((x @ ood.embedding_precision) * x, axis=1))


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
      the like of. It is calibrated on stars with spectra, and is not defined
      for stars given without XP coefficients (labels alone, say): for those
      the training labels are the reference (`add_label_support`).

    The scales are each measure's 99.7th percentile over the validation
    giants and their faint copies (the model's
    `~giantfm.metadata.OODCalibration`, `giantfm.train.bundling.ood.calibrate_ood`); a
    model without one gets the consistency measures alone, with
    `CONSISTENCY_SCALES`. A score above 1 flags the row (its labels are kept)
    with a reason naming the measure.
    """
    scales = dict(CONSISTENCY_SCALES if ood is None else ood.scales)
    parts = {"g": np.abs(batch.consistency[:, 0]) / scales["g"],
             "colour": np.abs(batch.consistency[:, 1]) / scales["colour"]}
    if embedding is not None and ood is not None:
        has_xp = _IS_XP[batch.ids].any(axis=1)
        distance = np.full(len(batch), np.nan)
        distance[has_xp] = embedding_distance(np.asarray(embedding)[has_xp], ood)
        parts["embedding"] = distance / scales["embedding"]
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
    quantile = 99.7 if ood is None else ood.quantile
    details = {"g": "its spectrum and its G disagree by {:.3g} sigma",
               "colour": "its spectrum and its BP - RP disagree by {:.3g} sigma",
               "embedding": "its inputs lie {:.2f} times farther from the training stars than "
                            f"{quantile:g} % of theirs"}
    texts = []
    for row in np.flatnonzero(over):
        part = names[worst[row]]
        value = abs(batch.consistency[row, worst[row]]) if part != "embedding" \
            else stacked[row, worst[row]]
        texts.append(reason_text("out_of_distribution", score=score[row],
                                 detail=details[part].format(value)))
    _append_reason(result, over, "out_of_distribution", texts)
    result.meta["ood_scales"] = scales


_IS_XP = np.isin(np.arange(vocab.N_TOKENS), vocab.token_ids(vocab.XP_NAMES))


def label_support_reasons(labels, support):
    """Which label sets lie outside the labels a model was trained on, and why.

    Parameters
    ----------
    labels : dict
        ``{token name: array (n,)}`` in vocabulary units (NaN = not given).
    support : `~giantfm.metadata.LabelSupport`
        ``ranges`` (``{name: (low, high)}``, the 0.5-99.5 percentiles of the
        training labels) and ``kiel`` (training stars counted on a Teff-log g
        grid), see `giantfm.train.dataset.build.label_support`.

    Returns
    -------
    detail : `numpy.ndarray` of str (n,)
        Empty where inside; else what lies outside, in words.
    """
    n = len(next(iter(labels.values())))
    found = [[] for _ in range(n)]
    for name, (low, high) in support.ranges.items():
        if name not in labels:
            continue
        value = np.asarray(labels[name], dtype=float)
        with np.errstate(invalid="ignore"):
            out = (value < low) | (value > high)
        for i in np.flatnonzero(out):
            found[i].append(f"{name}={value[i]:.4g} outside the training range "
                            f"[{low:.4g}, {high:.4g}]")
    kiel = support.kiel
    if kiel and "teff" in labels and "logg" in labels:
        teff = np.asarray(labels["teff"], dtype=float)
        logg = np.asarray(labels["logg"], dtype=float)
        t_edges, g_edges = np.asarray(kiel["teff_edges"]), np.asarray(kiel["logg_edges"])
        counts = np.asarray(kiel["counts"])
        i = np.searchsorted(t_edges, teff, side="right") - 1
        j = np.searchsorted(g_edges, logg, side="right") - 1
        inside = (i >= 0) & (i < len(t_edges) - 1) & (j >= 0) & (j < len(g_edges) - 1)
        filled = np.zeros(n, bool)
        filled[inside] = counts[i[inside], j[inside]] >= kiel["min_count"]
        both = np.isfinite(teff) & np.isfinite(logg)
        for k in np.flatnonzero(both & ~filled):
            found[k].append(f"(teff, logg)=({teff[k]:.0f}, {logg[k]:.2f}) lies where the "
                            f"training set has fewer than {kiel['min_count']} stars")
    # a comma, not SEPARATOR: one reason, however many labels it names
    return np.array([", ".join(r) for r in found], dtype=object).astype(str)


def add_label_support(result, batch, support):
    """Flag the stars whose *input* labels lie outside the model's training labels.

    A star given labels as inputs (to `giantfm.request` or
    `giantfm.generate_spectrum`) outside the labels the model was trained on
    (``support``, a `~giantfm.metadata.LabelSupport`; None: no check) gets an
    ``outside_training_labels`` reason: its answers are extrapolations.
    """
    if support is None:
        return
    names = [name for name in support.ranges if name in vocab.LABEL_NAMES or name == "a_k"]
    values, _ = batch.values_of(names)
    given = {name: from_token_scale(name, values[:, k])[0] for k, name in enumerate(names)}
    rows = np.isfinite(values).any(axis=1) & np.asarray(batch.ok)
    if not rows.any():
        return
    detail = np.full(len(result), "", dtype=object)
    detail[rows] = label_support_reasons({k: v[rows] for k, v in given.items()}, support)
    outside = detail != ""
    _append_reason(result, outside, "outside_training_labels",
                   [reason_text("outside_training_labels", detail=d) for d in detail[outside]])


def set_flags(result):
    """Set ``flag`` from ``flags``, the bits of every reason of the row: True where any of
    them says the row should not be used (`giantfm.flags.FLAG_MASK`)."""
    bits = np.asarray(result["flags"], dtype=np.int64)
    result["flag"] = (bits & FLAG_MASK) != 0
    result["flags"].info.description = ("bitmask of the reasons (giantfm.decode_flags, "
                                        "giantfm.flags.REASONS)")
    return result


def _rows(count):
    return f"{count} row{'' if count == 1 else 's'}"


def summarize(result, width=160):
    """A result in a few lines for people (what ``giantfm predict`` and ``giantfm example``
    print).

    Parameters
    ----------
    result : `~astropy.table.QTable`
        A verb's result.
    width : int, optional
        The most characters of an example text shown.

    Returns
    -------
    list of str
        First, how many rows are flagged and, apart, how many have each label
        masked (labels masked in as many rows are named together: a row
        outside the label domain has mass, age and state masked, and is not
        flagged); then one line per reason the rows have (by the bits of
        ``flags``), most frequent first: its code, how many rows, whether it
        flags them, and one of its texts.
    """
    flagged = int(np.count_nonzero(np.asarray(result["flag"]))) \
        if "flag" in result.colnames else 0
    masked = {}
    for name in result.colnames:
        mask = getattr(result[name], "mask", None)
        if mask is None or name in STATUS_COLUMNS or name == EVSTATE_COLUMN \
                or name.endswith("_err"):
            continue
        mask = np.asarray(mask).reshape(len(result), -1).any(axis=1)
        if mask.any():
            masked.setdefault(int(mask.sum()), []).append(name)
    first = f"{flagged} flagged"
    if masked:
        first += "; masked: " + "; ".join(f"{', '.join(names)} in {_rows(count)}"
                                          for count, names in sorted(masked.items()))
    lines = [first]
    if "flags" not in result.colnames:
        return lines
    bits = np.asarray(result["flags"], dtype=np.int64)
    found = []
    for r in REASONS.values():
        rows = np.flatnonzero(bits & r.value)
        if rows.size:
            text = str(result["reason"][rows[0]])
            example = reason_texts(text).get(r.code, text)
            if len(example) > width:
                example = example[:width - 3] + "..."
            found.append((rows.size, r, example))
    for count, r, example in sorted(found, key=lambda item: (-item[0], item[1].bit)):
        lines.append(f"{r.code}, {_rows(count)}{' (flagged)' if r.sets_flag else ''}: "
                     f"e.g. {example}")
    return lines


def prediction_units():
    """The unit of each prediction column, as strings (``flag``, ``flags`` and ``reason``
    have none).

    Returns
    -------
    dict
        Column name -> unit string, e.g. ``{'teff': 'K', 'logg': 'dex(cm / s2)', ...}``:
        the units of the plain float columns `giantfm.predict_catalog` adds.
    """
    units = {}
    for column in PREDICTION_COLUMNS:
        if column in STATUS_COLUMNS or column == EVSTATE_COLUMN:
            continue
        name = column[:-4] if column.endswith("_err") else column
        units[column] = vocab.token_unit(name).to_string()
    units["ood_score"] = u.dimensionless_unscaled.to_string()
    return units


def empty_result(rows=0):
    """A result of ``rows`` zero rows' worth: the prediction columns, with their units."""
    result = Result()
    for name, unit in prediction_units().items():
        result[name] = np.zeros(rows) << u.Unit(unit)
    result.add_column(np.zeros(rows, dtype="U3"), name=EVSTATE_COLUMN,
                      index=result.colnames.index(vocab.P_RC) + 1)
    result["flag"] = np.zeros(rows, dtype=bool)
    result["flags"] = np.zeros(rows, dtype=np.int64)
    result["reason"] = np.zeros(rows, dtype="U1")
    return result
