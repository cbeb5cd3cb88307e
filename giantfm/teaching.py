"""Teach giantfm labels of your own: `finetune` and ``giantfm finetune``.

Zhang, Bu et al. (2026) added mass and age to a foundation model of Gaia XP
spectra as new tokens; `finetune` does the same for any label a user has for
some stars. It reads the stars as `giantfm.predict` reads them (a table of XP
coefficients and photometry, a file, a `specutils.Spectrum`, an
`~giantfm.xp.XPCoefficients`) and the labels, which must carry units, as
columns of the same table, as a table aligned row by row with the stars, or
as ``{name: Quantity}``:

1. each label becomes a token (`giantfm.vocab.Token`) appended to a *copy* of
   the model's vocabulary (`giantfm.vocab.Vocabulary.extended`): giantfm's
   own vocabulary and ``VOCAB_VERSION`` are untouched, and the new tokens are
   saved with the model;
2. the usable stars (rows with tokens and at least one label; the others are
   counted by reason and left out) are dealt, seeded, into K folds
   (`FinetuneSettings.folds`);
3. the network learns to answer the new tokens with its encoder frozen, by
   one or more methods (`giantfm.model.adaptation`): prompt tuning
   (``'prompt'``), a ridge probe of the frozen features (``'probe'``) or
   low-rank adapters of the decoder (``'decoder'``); each is cross-validated
   on the folds and fitted on all the stars, and ``method='auto'`` (the
   default) keeps, per label, the one with the lowest out-of-fold scatter
   (MAD-std); every weight giantfm's answers depend on is the starting
   model's, so giantfm's labels, the embeddings and ``ood_score`` come back
   exactly as before;
4. the new labels' uncertainties are calibrated on the out-of-fold answers
   (the factor that makes the MAD-std of their z-scores 1, as for giantfm's
   labels), and giantfm's labels are checked against the starting model's
   answers (they must not move);
5. the model is saved to a folder, with the label model of the starting model
   beside it, ready for ``model=`` in `giantfm.predict`, `giantfm.request`,
   `giantfm.inpaint`, `giantfm.embed` and `giantfm.predict_files`.

The new labels are learned as answers to the stars' XP coefficients and
photometry, the inputs of `giantfm.predict`; they are never read as inputs,
and an answer asked from other inputs alone (`giantfm.request` with labels
only) is outside what the fine-tune validated.
"""
import dataclasses
import math
import re
import shutil
import warnings

import numpy as np
from astropy import units as u
from astropy.utils.exceptions import AstropyDeprecationWarning

from . import prediction, vocab
from .exceptions import GiantfmWarning, InvalidNameError
from .labelmodel import LABEL_MODEL_DIR
from .metadata import CONFIG_FILE
from .metadata import FINETUNE_METHODS as METHODS
from .results import EVSTATE_COLUMN, STATUS_COLUMNS
from .tokens import column_in_unit, error_columns, from_token_scale, to_token_scale
from .utils._json import json_safe
from .utils._modelfiles import folder_to_write, saving_folder, staged_folder
from .utils._ridge import DEFAULT_PENALTIES
from .utils._stats import mad_std, uncertainty_factor
from .xp.coefficients import SOURCE_ID_ALIASES, find_column
from .xp.readers import as_table

__all__ = ["finetune", "FinetuneSettings", "FinetuneReport", "validation_split", "METHODS",
           "MIN_STARS", "MIN_VALIDATION_STARS", "CHECKPOINT_DIR", "main"]

#: The fewest usable stars (rows with XP and a label) a fine-tune accepts.
MIN_STARS = 50
#: The fewest stars `validation_split` keeps for validation.
MIN_VALIDATION_STARS = 10
#: The folder of ``out`` where a fine-tune keeps its checkpoints until the model is saved.
CHECKPOINT_DIR = "finetune_checkpoints"
#: Column names a result table already has: a label cannot be called so.
_RESERVED = ("source_id", *STATUS_COLUMNS, EVSTATE_COLUMN)
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclasses.dataclass
class FinetuneSettings:
    """How a fine-tune learns: the one home of its defaults (`finetune`'s keywords and
    ``giantfm finetune``'s options default to these; saved with the model's metadata).

    Parameters
    ----------
    method : str or tuple of str
        ``'auto'``: every method of `METHODS`, keeping per label the one with the
        lowest out-of-fold MAD-std; one method; or a tuple of methods to choose
        among as ``'auto'`` does.
    folds : int
        K of the K-fold cross-validation (the same folds for every method): it
        chooses the method, the epoch and the probe's regularisation is checked on
        it, and the errors are calibrated on its out-of-fold answers.
    epochs : int, optional
        Most epochs of the epoch-based methods (``'prompt'``, ``'decoder'``).
        None: `schedule`'s rule, from the number of stars.
    patience : int, optional
        Stop after this many epochs without a lower out-of-fold loss (0: never).
        None: `schedule`'s rule.
    steps : int
        The optimiser steps `schedule` aims at when ``epochs`` is None.
    batch_size : int
        Stars per step.
    learning_rate : float
        Prompt tuning's AdamW peak learning rate (cosine decay to a 20th of it).
    decoder_learning_rate : float
        The same for the ``'decoder'`` method (request embedding and adapters).
    rank : int
        The rank of the ``'decoder'`` method's low-rank adapters.
    probe_penalties : tuple of float
        The ridge penalties (per star, standardised features) the probe chooses
        among by leave-one-out MAD-std (`giantfm.utils._ridge.fit_ridge`).
    probe_weights : tuple of float
        The weights of giantfm's answers beside the hidden features (their
        penalty divided by it) the probe chooses among with the penalty.
    seed : int
        Seeds the folds, the new rows and the order of the stars.
    max_minutes : float, optional
        Stop each epoch-based method after the epoch that passes this much wall
        time (the best epoch is kept).
    progress : bool or {'auto', 'on', 'off'}, optional
        A tqdm progress bar over the epochs (`giantfm.predict`'s rules; None:
        ``giantfm.conf.progress``).
    """

    method: object = "auto"
    folds: int = 5
    epochs: int = None
    patience: int = None
    steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 0.05
    decoder_learning_rate: float = 0.003
    rank: int = 4
    probe_penalties: tuple = DEFAULT_PENALTIES
    probe_weights: tuple = (1.0, 10.0, 100.0, 1000.0)
    seed: int = 0
    max_minutes: float = None
    progress: object = None

    def __post_init__(self):
        def integer(name, low, allow_none=False):
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) \
                    or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
            setattr(self, name, int(value))
        for name in ("batch_size", "steps", "rank"):
            integer(name, 1)
        integer("folds", 2)
        integer("epochs", 1, allow_none=True)
        integer("patience", 0, allow_none=True)
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        for name in ("learning_rate", "decoder_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max_minutes must be > 0, got {self.max_minutes!r}")
        for name in ("probe_penalties", "probe_weights"):
            value = tuple(float(v) for v in np.atleast_1d(getattr(self, name)))
            if not value or not all(v > 0 and math.isfinite(v) for v in value):
                raise ValueError(f"{name} must be positive numbers, got "
                                 f"{getattr(self, name)!r}")
            setattr(self, name, value)
        self.methods()   # refuses an unknown method by name

    def methods(self):
        """The methods a fine-tune with these settings runs (`METHODS` order for 'auto')."""
        chosen = METHODS if self.method == "auto" else (
            (self.method,) if isinstance(self.method, str) else tuple(self.method))
        unknown = [m for m in chosen if m not in METHODS]
        if unknown or not chosen:
            raise ValueError(f"method {self.method!r}: choose 'auto' or one or more of "
                             f"{', '.join(METHODS)}")
        return chosen

    def schedule(self, n_stars):
        """``(epochs, patience)`` of an epoch-based method on ``n_stars`` stars.

        The rule, where ``epochs`` or ``patience`` is not given: enough epochs for
        `steps` optimiser steps (``ceil(n_stars / batch_size)`` a epoch), at least 50
        and at most 2,000 -- few stars take many short epochs, many stars fewer long
        ones -- and a patience of a fifth of them (at least 20).
        """
        per_epoch = math.ceil(n_stars / min(self.batch_size, max(n_stars, 1)))
        epochs = self.epochs or min(max(math.ceil(self.steps / per_epoch), 50), 2000)
        patience = max(20, epochs // 5) if self.patience is None else self.patience
        return epochs, patience

    @classmethod
    def default(cls, name):
        """The default of the setting ``name``."""
        return {f.name: f.default for f in dataclasses.fields(cls)}[name]


@dataclasses.dataclass
class FinetuneReport:
    """What a fine-tune did and measured (also saved in the model's metadata,
    ``training['finetune']``).

    Attributes
    ----------
    labels : dict
        ``{token name: {'column', 'unit', 'scale', 'error_column'}}``.
    n_rows, n_train : int
        Rows given; stars the model learned from (all of them, cross-validated).
    n_folds : int
    left_out : dict
        ``{reason: rows}`` for the rows not used.
    method : dict
        ``{token name: the method kept}``.
    cross_validation : dict
        ``{token name: {method: scores}}``, the out-of-fold scores of every
        method run: ``n``, ``mad_std`` and ``bias`` (median of answer - given) in
        the label's unit (``mad_std_dex`` too for a log label), ``mad_std_token``
        (in token scale: what the choice compares) and ``uncertainty_scale``.
    validation : dict
        Per new label, the out-of-fold scores of the method kept (as in
        ``cross_validation``) and ``z_mad_std``, the MAD-std of its out-of-fold
        z-scores after the calibration (1 by construction).
    runs : dict
        ``{method: how it ran}``: for an epoch-based method ``epochs``,
        ``patience``, ``epochs_run``, ``best_epoch``, ``stopped``,
        ``still_improving``; for the probe the penalty and weight chosen per
        label; ``elapsed_s``.
    old_labels : dict
        Per label of giantfm's, over the stars learned from (up to 500): the
        largest and the median absolute change of the answer from the starting
        model's, in its unit.
    elapsed_s : float
    """

    labels: dict
    n_rows: int
    n_train: int
    n_folds: int
    left_out: dict
    method: dict
    cross_validation: dict
    validation: dict
    runs: dict
    old_labels: dict
    elapsed_s: float

    def to_dict(self):
        """Plain types (JSON)."""
        return dataclasses.asdict(self)


def finetune(data, labels, out, *, errors=None, log=(), photometry=None, model=None,
             method=None, folds=None, seed=None, epochs=None, patience=None,
             learning_rate=None, batch_size=None, max_minutes=None, settings=None,
             resume=False, overwrite=False, device=None, progress=None, val_fraction=None):
    """Teach a giantfm model labels of your own, from your stars' XP spectra.

    Parameters
    ----------
    data : table, path, `specutils.Spectrum` or `~giantfm.xp.XPCoefficients`
        The stars, as `giantfm.predict` reads them: a Gaia XP table in any
        supported layout (with photometry), a file of one, a Spectrum of
        sampled spectra (magnitudes in its ``meta``, or ``photometry=``), or
        coefficients.
    labels : str, sequence of str, dict or table
        The labels, one of:

        * the names of label columns of ``data`` (a table): a name, names, or
          ``{token name: column}``;
        * a table aligned row by row with the stars, whose columns are the
          labels (and their errors, ``<column>_err`` and the like; a
          ``source_id`` column, if any, must match the stars');
        * ``{token name: Quantity}``, aligned with the stars, with
          ``'<name>_err'`` entries for errors (as `giantfm.request` takes
          tokens).

        Each label must have a unit (``u.dimensionless_unscaled`` for a pure
        number); its name becomes the token's (letters, digits and ``_``, not a
        name the model has).
    out : path-like
        The folder the fine-tuned model is written to.
    errors : dict, optional
        ``{token name: error column}``; by default a column named
        ``<column>_err``, ``<column>_error`` or ``e_<column>`` is used when
        present, as `giantfm.tokenize` finds label errors (else the labels count
        as exact).
    log : sequence of str, optional
        Labels learned as log10 of their value (ages: errors close to
        log-normal); their values must be positive.
    photometry : table, optional
        As in `giantfm.predict`.
    model : str, path or `giantfm.model.TrainedModel`, optional
        The model to start from (default: the bundled one). It is not changed.
    method, folds, seed, epochs, patience, learning_rate, batch_size, max_minutes
        See `FinetuneSettings` (None: its default). ``method='auto'`` (the
        default) cross-validates every method and keeps the best per label.
    settings : `FinetuneSettings`, optional
        Every setting at once (the keywords above, where given, override it).
    resume : bool
        Continue the fine-tune interrupted in ``out`` (same stars and settings)
        from the checkpoints written there after every epoch (removed once the
        model is saved); a method that had finished is not run again.
    overwrite : bool
        Replace a model already in ``out``.
    device : str, optional
        As in `giantfm.predict`.
    progress : bool or str, optional
        A progress bar over the epochs (`giantfm.predict`'s rules).
    val_fraction : float, optional
        Deprecated and ignored: the fine-tune cross-validates on all its stars
        (``folds``) instead of keeping some for validation.

    Returns
    -------
    model : `giantfm.model.TrainedModel`
        The fine-tuned model, saved in ``out`` (pass it or ``out`` as ``model=``).
    report : `FinetuneReport`

    Raises
    ------
    ValueError
        A label column missing, without a unit, all NaN or named as a token
        the model has; labels not aligned with the stars (their counts, or the
        first source_id that differs, named); an error column in a unit that
        does not convert; stars without XP coefficients; fewer than
        `MIN_STARS` usable stars; ``out`` holding a model (without
        ``overwrite`` or ``resume``); an unknown method.
    TypeError
        Stars in a form `giantfm.predict` does not read, or labels named as
        columns of stars that are not a table.

    Warns
    -----
    ~giantfm.exceptions.GiantfmWarning
        Rows left out (how many and why); an epoch-based method whose best
        epoch was its last (more epochs might have done better).

    Examples
    --------
    Real giants with [C/N] ages:

    >>> import tempfile
    >>> import giantfm
    >>> stars = giantfm.examples.cn_ages()
    >>> model, report = giantfm.finetune(stars[stars["split"] == "train"], "age_cn",
    ...                                  tempfile.mkdtemp(), log=["age_cn"], method="probe",
    ...                                  progress="off")
    >>> report.n_train, report.n_folds, report.method
    (200, 5, {'age_cn': 'probe'})
    >>> giantfm.predict(stars[:3], model=model, progress=False)["age_cn"].unit
    Unit("Gyr")
    """
    from .model.adaptation import adapt_network, build_network, tuned_model

    if val_fraction is not None:
        warnings.warn("val_fraction is deprecated and ignored: the fine-tune cross-validates "
                      "on all its stars (folds=) instead of keeping some for validation",
                      AstropyDeprecationWarning, stacklevel=2)
    given = {"method": method, "folds": folds, "epochs": epochs, "patience": patience,
             "batch_size": batch_size, "seed": seed, "learning_rate": learning_rate,
             "max_minutes": max_minutes, "progress": progress}
    if settings is not None and not isinstance(settings, FinetuneSettings):
        raise TypeError(f"settings must be a FinetuneSettings, got {type(settings).__name__}")
    base = dataclasses.asdict(settings) if settings is not None else {}
    settings = FinetuneSettings(**{**base, **{k: v for k, v in given.items()
                                              if v is not None}})

    out = folder_to_write(out, "fine-tuned model")   # a file in the way: refused before work
    checkpoints = out / CHECKPOINT_DIR
    if (out / CONFIG_FILE).exists() and not (overwrite or resume):
        raise ValueError(f"{out} already holds a model: choose another folder, or pass "
                         "overwrite=True (or resume=True to continue a fine-tune there)")
    if resume and not checkpoints.is_dir():
        raise FileNotFoundError(f"nothing to resume: {checkpoints} does not exist")
    table = _as_table_or_none(data)
    net = prediction.get_model(device=device, model=model)
    batch = prediction.as_batch(data if table is None else table, net, photometry=photometry)
    label_table = _label_table(labels, table, data, batch)
    columns = _label_columns(label_table, labels, net)
    log = _log_names(log, columns)
    tokens = [vocab.Token(name, unit, "log10" if name in log else "linear",
                          f"{name}: taught by giantfm.finetune from {column!r}",
                          (0.0, np.inf) if name in log else (-np.inf, np.inf))
              for name, (column, unit) in columns.items()]
    vocabulary = net.tokens.extended(tokens)
    values, errors_, error_column_of, bad = _label_values(label_table, columns, errors,
                                                         vocabulary)

    left_out = {}
    no_tokens = ~batch.ok
    if no_tokens.any():
        left_out["no XP tokens (see predict's reason)"] = int(no_tokens.sum())
    no_label = batch.ok & ~np.isfinite(values).any(axis=1)
    if no_label.any():
        left_out["no usable label (" + "; ".join(bad) + ")" if bad else "no label"] = \
            int(no_label.sum())
    usable = np.flatnonzero(batch.ok & np.isfinite(values).any(axis=1))
    if len(usable) < MIN_STARS:
        raise ValueError(f"{len(usable)} usable stars (rows with XP tokens and a label) of "
                         f"{len(batch)}; a fine-tune needs at least {MIN_STARS}"
                         + (f" (left out: {left_out})" if left_out else ""))
    if left_out:
        warnings.warn(f"left out {sum(left_out.values())} of {len(batch)} rows: "
                      + "; ".join(f"{n} {why}" for why, n in left_out.items()),
                      GiantfmWarning, stacklevel=2)
    stars = batch.appended(np.arange(len(net.tokens), len(vocabulary)), values,
                           errors_)[usable]

    checkpoints.mkdir(parents=True, exist_ok=True)
    network, normalisation, adapted, fits = adapt_network(
        net, vocabulary, stars, settings, out_dir=checkpoints, resume=resume, device=device)
    names = list(columns)
    cross_validation, validation, chosen = _choose_and_calibrate(
        fits, adapted, normalisation, names, vocabulary, net.config.n_tokens)
    new_rows = np.arange(net.config.n_tokens, net.config.n_tokens + len(names))
    network = build_network(network, new_rows, [fits[chosen[name]] for name in names])

    metadata = net.metadata.to_dict()
    metadata["uncertainty_scale"] = {**metadata.get("uncertainty_scale", {}),
                                     **{name: validation[name]["uncertainty_scale"]
                                        for name in names}}
    tuned = tuned_model(net, network, normalisation, vocabulary, metadata)
    old_labels = _old_labels(net, tuned, stars[adapted.rows[:500]])
    runs = {method: fit.run for method, fit in fits.items()}
    report = FinetuneReport(
        labels={name: {"column": columns[name][0], "unit": columns[name][1].to_string(),
                       "scale": vocabulary.token(name).scale,
                       "error_column": error_column_of.get(name)} for name in names},
        n_rows=len(batch), n_train=len(adapted), n_folds=settings.folds, left_out=left_out,
        method=chosen, cross_validation=cross_validation, validation=validation, runs=runs,
        old_labels=old_labels, elapsed_s=float(sum(r.get("elapsed_s", 0.0)
                                                   for r in runs.values())))
    tuned.metadata.name = f"{net.metadata.name}+{'+'.join(names)}"
    tuned.metadata.training_note = (
        f"{net.metadata.name} fine-tuned to answer {', '.join(names)} from "
        f"{len(adapted)} stars ({', '.join(f'{n}: {m}' for n, m in chosen.items())}; "
        f"{settings.folds}-fold cross-validated)")
    settings_record = dataclasses.asdict(settings)
    settings_record["method"] = list(settings.methods()) if settings.method != "auto" \
        else "auto"
    tuned.metadata.training = {**tuned.metadata.training, "finetune": {
        **json_safe(report.to_dict()), "config": json_safe(settings_record),
        "base_model": net.metadata.name,
        "base_path": None if net.path is None else str(net.path),
        "device": str(tuned.device)}}
    _save(tuned, out, net)
    # a finished fine-tune cannot be resumed: its checkpoints have served
    shutil.rmtree(checkpoints, ignore_errors=True)
    return tuned, report


def validation_split(rows, val_fraction=0.2, seed=0):
    """``(train, validation)``: the rows ``rows`` split at random, seeded, with a share
    ``val_fraction`` (at least `MIN_VALIDATION_STARS`) for validation; each sorted.

    (The fine-tune itself cross-validates; this is the validation cut the evidence gives
    XGBoost for its early stopping.)"""
    order = np.random.default_rng(seed).permutation(np.asarray(rows))
    n_val = max(int(round(val_fraction * len(order))), MIN_VALIDATION_STARS)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _as_table_or_none(data):
    """``data`` as a table when it is tabular (what `giantfm.xp.readers.as_table` reads),
    else None (a Spectrum, coefficients: `giantfm.predict` reads them too)."""
    try:
        return as_table(data)
    except TypeError:
        return None


def _label_table(labels, table, data, batch):
    """The labels as a table aligned with the stars of ``batch`` (see `finetune`)."""
    from astropy.table import QTable, Table

    n = len(batch)
    if isinstance(labels, Table):
        given = labels
    elif isinstance(labels, dict) and labels and not all(isinstance(v, str)
                                                         for v in labels.values()):
        lengths = {}
        for name, value in labels.items():
            if isinstance(value, str):
                raise ValueError(f"labels mixes column names ({name!r}: {value!r}) with "
                                 "values: give either {name: column} or {name: Quantity}")
            lengths[name] = np.shape(value)[0] if np.ndim(value) else 1
        wrong = {k: v for k, v in lengths.items() if v != n}
        if wrong:
            name, length = next(iter(wrong.items()))
            raise ValueError(f"label {name!r} has {length} values for {n} stars: labels given "
                             "as {name: Quantity} must be aligned with the stars")
        given = QTable({name: value for name, value in labels.items()})
    else:
        if table is None:
            raise TypeError(f"labels names columns ({labels!r}), but the stars are a "
                            f"{type(data).__name__}, not a table: give the labels as "
                            "{name: Quantity} or as a table aligned row by row with the stars")
        return table
    if len(given) != n:
        raise ValueError(f"the label table has {len(given)} rows for {n} stars: it must be "
                         "aligned row by row with them")
    sid = find_column(given.colnames, SOURCE_ID_ALIASES)
    if sid is not None and (batch.source_id >= 0).all():
        ids = np.asarray(given[sid]).astype(np.int64)
        differ = np.flatnonzero(ids != batch.source_id)
        if differ.size:
            row = int(differ[0])
            raise ValueError(f"the label table's {sid} {ids[row]} in row {row} is not the "
                             f"stars' ({batch.source_id[row]}): the labels must be aligned row "
                             f"by row with the stars ({differ.size} rows differ)")
    return given


def _label_names_of(table):
    """The label columns of a label table: every column that is neither a source_id nor
    the error column of another."""
    errors = {e.lower() for c in table.colnames for e in error_columns(c)}
    ids = {a.lower() for a in SOURCE_ID_ALIASES}
    return [c for c in table.colnames if c.lower() not in errors and c.lower() not in ids]


def _label_columns(table, labels, net):
    """``{token name: (column, unit)}``, each checked (see `finetune`'s Raises)."""
    from astropy.table import Table

    if isinstance(labels, Table) or (isinstance(labels, dict) and labels and not all(
            isinstance(v, str) for v in labels.values())):
        labels = _label_names_of(table)
    if isinstance(labels, str):
        labels = [labels]
    if not isinstance(labels, dict):
        labels = {column: column for column in labels}
    if not labels:
        raise ValueError("labels is empty: name at least one label column")
    columns = {}
    for name, column in labels.items():
        if column not in table.colnames:
            raise ValueError(f"label column {column!r} is not in the table; it has "
                             f"{', '.join(table.colnames[:30])}"
                             + (" ..." if len(table.colnames) > 30 else ""))
        if not (isinstance(name, str) and _NAME.match(name)) or name.endswith("_err"):
            raise InvalidNameError(f"label name {name!r}: use letters, digits and '_', "
                                   "starting with a letter and not ending in '_err'")
        if name in net.tokens or name in _RESERVED:
            what = "a token" if name in net.tokens else "a result column"
            raise InvalidNameError(
                f"label name {name!r} is already {what} of the model; give the label another "
                f"name, e.g. labels={{'my_{name}': {column!r}}}")
        unit = getattr(table[column], "unit", None)
        if unit is None:
            raise ValueError(f"label column {column!r} has no unit: set one, e.g. "
                             f"table[{column!r}].unit = 'Gyr' (u.dimensionless_unscaled for "
                             "a pure number)")
        columns[name] = (column, u.Unit(unit))
    return columns


def _log_names(log, columns):
    log = [log] if isinstance(log, str) else list(log)
    unknown = [name for name in log if name not in columns]
    if unknown:
        raise ValueError(f"log names {unknown}, which are not among the labels {list(columns)}")
    return set(log)


def _label_values(table, columns, errors, vocabulary):
    """Token-scale values and errors (n, k) of the labels (NaN: not usable), the error
    column of each label, and the reasons labels were left out (with counts)."""
    errors = dict(errors or {})
    unknown = [name for name in errors if name not in columns]
    if unknown:
        raise ValueError(f"errors names {unknown}, which are not among the labels "
                         f"{list(columns)}")
    n = len(table)
    values = np.full((n, len(columns)), np.nan)
    errs = np.zeros((n, len(columns)))
    error_column_of, bad = {}, []
    for k, (name, (column, unit)) in enumerate(columns.items()):
        value = column_in_unit(table[column], unit, f"label column {column!r}")
        if not np.isfinite(value).any():
            raise ValueError(f"label column {column!r} has no finite value")
        error_column = errors.get(name) or find_column(table.colnames, error_columns(column))
        error = np.zeros(n)
        if error_column is not None:
            if error_column not in table.colnames:
                raise ValueError(f"error column {error_column!r} is not in the table")
            error = column_in_unit(table[error_column], unit,
                                   f"error column {error_column!r}")
            error_column_of[name] = error_column
        finite = np.isfinite(value)
        not_positive = finite & ~(value > 0) if vocabulary.token(name).scale == "log10" \
            else np.zeros(n, dtype=bool)
        bad_error = finite & ~(np.isfinite(error) & (error >= 0))
        usable = finite & ~not_positive & ~bad_error
        for why, rows in ((f"{column} not finite", ~finite),
                          (f"{column} not positive", not_positive),
                          (f"{column} error not finite or negative", bad_error)):
            if rows.any():
                bad.append(f"{why}: {int(rows.sum())}")
        v, e = to_token_scale(name, np.where(usable, value, np.nan),
                              np.where(usable, error, 0.0), vocabulary)
        values[:, k], errs[:, k] = v, np.nan_to_num(e)
    return values, errs, error_column_of, bad


def _choose_and_calibrate(fits, stars, normalisation, names, vocabulary, first_row):
    """Per label: every method's out-of-fold scores with its uncertainty scale (the factor
    that makes the MAD-std of its out-of-fold z-scores 1), the method with the lowest
    out-of-fold MAD-std, and its scores."""
    values = stars.values.cpu().numpy().astype(float)
    errors = stars.errors.cpu().numpy().astype(float)
    cross_validation, validation, chosen = {}, {}, {}
    for k, name in enumerate(names):
        median, scale = normalisation.median[first_row + k], normalisation.scale[first_row + k]
        given, given_error = values[:, k] * scale + median, errors[:, k] * scale
        cross_validation[name] = {}
        for method, fit in fits.items():
            mean = fit.oof_mean[:, k] * scale + median
            std = fit.oof_std[:, k] * scale
            have = np.isfinite(given) & np.isfinite(mean) & np.isfinite(std)
            factor = uncertainty_factor(mean[have], std[have], given[have], given_error[have])
            z = (mean[have] - given[have]) / np.hypot(factor * std[have], given_error[have])
            answer = from_token_scale(name, mean[have], None, vocabulary)[0]
            truth = from_token_scale(name, given[have], None, vocabulary)[0]
            scores = {"n": int(have.sum()), "mad_std": mad_std(answer - truth),
                      "bias": float(np.median(answer - truth)),
                      "mad_std_token": mad_std(mean[have] - given[have]),
                      "z_mad_std": mad_std(z), "uncertainty_scale": factor}
            if vocabulary.token(name).scale == "log10":
                scores["mad_std_dex"] = scores["mad_std_token"]
            cross_validation[name][method] = scores
        chosen[name] = min(cross_validation[name],
                           key=lambda m: cross_validation[name][m]["mad_std_token"])
        validation[name] = dict(cross_validation[name][chosen[name]], method=chosen[name])
    return cross_validation, validation, chosen


def _old_labels(base, tuned, stars):
    """How far giantfm's labels moved from the starting model's answers on ``stars``."""
    old = [name for name in vocab.LABEL_NAMES if base.knows(name)]
    before = base.request(stars.keeping(stars.ids < len(base.tokens)), old, progress=False)[0]
    after = tuned.request(stars, old, progress=False)[0]
    old_labels = {}
    for k, name in enumerate(old):
        change = np.abs(from_token_scale(name, after[:, k])[0]
                        - from_token_scale(name, before[:, k])[0])
        change = change[np.isfinite(change)]
        old_labels[name] = {"max_abs_change": float(change.max(initial=0.0)),
                            "median_abs_change": float(np.median(change)) if change.size
                            else float("nan"), "unit": vocab.token_unit(name).to_string()}
    return old_labels


def _save(tuned, out, base):
    """Write the model to ``out`` with the starting model's label model beside it.

    The label model goes first, so that no model is ever there without it (its
    mass and age chain needs it); a copy that fails leaves nothing of itself.
    `~giantfm.model.TrainedModel.save` then writes the network, the whole of it
    or nothing (a file where ``out`` should be is refused by name there).
    """
    out = folder_to_write(out, "fine-tuned model")
    if base.path is not None and (base.path / LABEL_MODEL_DIR).is_dir():
        target = out / LABEL_MODEL_DIR
        with saving_folder(target, "fine-tuned model's label model"), \
                staged_folder(target) as staging:
            shutil.copytree(base.path / LABEL_MODEL_DIR, staging)
    tuned.save(out)
    tuned.path = out


def main(argv=None):
    """``giantfm finetune``: teach a model labels of one's own from a table (see `finetune`)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="giantfm finetune",
        description="Teach giantfm labels of your own: fine-tune a model (default the bundled "
                    "one) to answer the label columns of a table of stars with Gaia XP "
                    "spectra, and save it for --model of giantfm predict. Exit status 1 for "
                    "bad input (the message names the column or value).")
    parser.add_argument("input", help="a table giantfm predict reads, with the label columns "
                                      "(which must have units)")
    parser.add_argument("--label", action="append", required=True, metavar="NAME[=COLUMN]",
                        help="a label column (repeat for more); NAME=COLUMN names the token")
    parser.add_argument("--out", required=True, help="folder to write the fine-tuned model to")
    parser.add_argument("--error", action="append", default=[], metavar="NAME=COLUMN",
                        help="the error column of a label (default: COLUMN_err and the like)")
    parser.add_argument("--log", action="append", default=[], metavar="NAME",
                        help="learn the label as log10 of its value (e.g. ages)")
    parser.add_argument("--model", help="the model to start from (default: the bundled one)")
    default = FinetuneSettings.default
    parser.add_argument("--method", action="append", choices=("auto",) + METHODS,
                        help=f"how the model learns: auto (every method, cross-validated, the "
                             f"best kept per label) or one of {', '.join(METHODS)}; repeat to "
                             f"choose among several (default {default('method')})")
    parser.add_argument("--folds", type=int,
                        help=f"K of the K-fold cross-validation that chooses the method and "
                             f"calibrates the errors (default {default('folds')})")
    parser.add_argument("--seed", type=int,
                        help=f"seeds the folds and the order of the stars (default "
                             f"{default('seed')})")
    parser.add_argument("--epochs", type=int,
                        help="most epochs of the epoch-based methods (default: a rule of the "
                             "number of stars, FinetuneSettings.schedule)")
    parser.add_argument("--patience", type=int,
                        help="stop after this many epochs without a better out-of-fold loss "
                             "(default: a fifth of the epochs, at least 20)")
    parser.add_argument("--learning-rate", type=float,
                        help=f"prompt tuning's peak learning rate (default "
                             f"{default('learning_rate')})")
    parser.add_argument("--batch-size", type=int,
                        help=f"stars per step (default {default('batch_size')})")
    parser.add_argument("--max-minutes", type=float,
                        help="time limit of each epoch-based method (the best epoch is kept)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the fine-tune interrupted in --out")
    parser.add_argument("--overwrite", action="store_true", help="replace a model in --out")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: giantfm.conf)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    def pairs(items, what):
        out = {}
        for item in items:
            name, sep, column = item.partition("=")
            if what == "--error" and not sep:
                parser.error(f"--error takes NAME=COLUMN, got {item!r}")
            out[name] = column if sep else name
        return out
    method = None
    if args.method:
        method = "auto" if "auto" in args.method else (
            args.method[0] if len(args.method) == 1 else tuple(args.method))
    try:
        _, report = finetune(
            args.input, pairs(args.label, "--label"), args.out,
            errors=pairs(args.error, "--error"), log=args.log, model=args.model,
            method=method, folds=args.folds, seed=args.seed, epochs=args.epochs,
            patience=args.patience, learning_rate=args.learning_rate,
            batch_size=args.batch_size, max_minutes=args.max_minutes, resume=args.resume,
            overwrite=args.overwrite, device=args.device,
            progress="off" if args.no_progress else None)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"giantfm finetune: error: {exc}", file=sys.stderr)
        return 1
    for name, scores in report.validation.items():
        unit = report.labels[name]["unit"]
        others = ", ".join(f"{m} {s['mad_std']:.4g}"
                           for m, s in report.cross_validation[name].items())
        print(f"{name}: method {report.method[name]}; out-of-fold MAD-std "
              f"{scores['mad_std']:.4g} {unit}, bias {scores['bias']:.4g} {unit}, n "
              f"{scores['n']} (uncertainty scale {scores['uncertainty_scale']:.3g}; "
              f"methods: {others})", file=sys.stderr)
    moved = {name: v["max_abs_change"] for name, v in report.old_labels.items()
             if v["max_abs_change"] > 0}
    print(f"giantfm's labels {'moved: ' + str(moved) if moved else 'unchanged'}; "
          f"{report.n_train} stars, {report.n_folds}-fold cross-validated"
          + (f"; left out {report.left_out}" if report.left_out else "")
          + f"; model written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
