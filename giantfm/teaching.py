"""Teach giantfm labels of your own: `finetune` and ``giantfm finetune``.

Zhang, Bu et al. (2026) added mass and age to a foundation model of Gaia XP
spectra as new tokens; `finetune` does the same for any label a user has for
some stars. It reads a table that `giantfm.predict` reads (XP coefficients
and photometry) with the label columns, which must carry units:

1. each label becomes a token (`giantfm.vocab.Token`) appended to a *copy* of
   the model's vocabulary (`giantfm.vocab.Vocabulary.extended`): giantfm's
   own vocabulary and ``VOCAB_VERSION`` are untouched, and the new tokens are
   saved with the model;
2. the usable stars (rows with tokens and at least one label; the others are
   counted by reason and left out) are split, seeded, into training and
   validation stars;
3. the network learns to answer the new tokens (their request embeddings
   only: `giantfm.model.adaptation`), stopping early on the validation loss;
   every other weight is the starting model's, so giantfm's labels, the
   embeddings and ``ood_score`` come back exactly as before;
4. the new labels' uncertainties are calibrated on the validation stars (the
   factor that makes the MAD-std of their z-scores 1, as for giantfm's labels),
   and the fine-tuned model is scored there -- the new labels against the
   given ones, giantfm's labels against the starting model's answers (a
   check: they must not move);
5. the model is saved to a folder, with the label model of the starting model
   beside it, ready for ``model=`` in `giantfm.predict`, `giantfm.request`,
   `giantfm.inpaint`, `giantfm.embed` and `giantfm.predict_files`.

The new labels are learned as answers to the stars' XP coefficients and
photometry, the inputs of `giantfm.predict`; they are never read as inputs,
and an answer asked from other inputs alone (`giantfm.request` with labels
only) is outside what the fine-tune validated.
"""
import dataclasses
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u

from . import prediction, vocab
from .exceptions import GiantfmWarning, InvalidNameError
from .labelmodel import LABEL_MODEL_DIR
from .metadata import CONFIG_FILE
from .results import EVSTATE_COLUMN
from .tokens import column_in_unit, error_columns, from_token_scale, to_token_scale
from .utils._stats import mad_std, uncertainty_factor
from .xp.coefficients import find_column
from .xp.readers import as_table

__all__ = ["finetune", "FinetuneSettings", "FinetuneReport", "validation_split", "MIN_STARS",
           "MIN_VALIDATION_STARS", "main"]

#: The fewest usable stars (rows with XP and a label) a fine-tune accepts.
MIN_STARS = 50
#: The fewest of them kept for validation (early stopping and the error calibration).
MIN_VALIDATION_STARS = 10
#: Column names a result table already has: a label cannot be called so.
_RESERVED = ("source_id", "ood_score", "flag", "flags", "reason", EVSTATE_COLUMN)
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclasses.dataclass
class FinetuneSettings:
    """How a fine-tune learns: the one home of its defaults (`finetune`'s keywords and
    ``giantfm finetune``'s options default to these; saved with the model's metadata).

    Parameters
    ----------
    epochs : int
        Most passes over the training stars.
    batch_size : int
        Stars per step.
    learning_rate : float
        AdamW peak learning rate (cosine decay to a 20th of it over ``epochs``).
    patience : int
        Stop after this many epochs without a lower validation loss.
    seed : int
        Seeds the validation split, the new rows and the order of the stars.
    max_minutes : float, optional
        Stop after the epoch that passes this much wall time (the best epoch is kept).
    progress : bool or {'auto', 'on', 'off'}, optional
        A tqdm progress bar over the epochs (`giantfm.predict`'s rules; None:
        ``giantfm.conf.progress``).
    """

    epochs: int = 300
    batch_size: int = 64
    learning_rate: float = 0.05
    patience: int = 100
    seed: int = 0
    max_minutes: float = None
    progress: object = None

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.patience, int) or isinstance(self.patience, bool) \
                or self.patience < 0:
            raise ValueError(f"patience must be an integer >= 0, got {self.patience!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max_minutes must be > 0, got {self.max_minutes!r}")

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
    n_rows, n_train, n_val : int
        Rows of the table; stars the network learned from and was validated on.
    left_out : dict
        ``{reason: rows}`` for the rows not used.
    validation : dict
        Per new label, on the validation stars: ``n``, ``mad_std`` and ``bias``
        (median of answer - given) in its unit, ``z_mad_std`` after the
        calibration, and ``uncertainty_scale``.
    old_labels : dict
        Per label of giantfm's, on the validation stars: the largest and the
        median absolute change of the answer from the starting model's, in
        its unit.
    epochs_run, best_epoch : int
    elapsed_s : float
    """

    labels: dict
    n_rows: int
    n_train: int
    n_val: int
    left_out: dict
    validation: dict
    old_labels: dict
    epochs_run: int
    best_epoch: int
    elapsed_s: float

    def to_dict(self):
        """Plain types (JSON)."""
        return dataclasses.asdict(self)


def finetune(data, labels, out, *, errors=None, log=(), photometry=None, model=None,
             val_fraction=0.2, seed=None, epochs=None, patience=None, learning_rate=None,
             batch_size=None, max_minutes=None, resume=False, overwrite=False, device=None,
             progress=None):
    """Teach a giantfm model labels of your own, from your stars' XP spectra.

    Parameters
    ----------
    data : table or path
        What `giantfm.predict` reads (a Gaia XP table in any supported layout,
        with photometry; or a file of one), with the label columns.
    labels : str, sequence of str or dict
        The label columns: a name, names, or ``{token name: column}``. Each
        column must have a unit (``table[col].unit``; ``u.dimensionless_unscaled``
        for a pure number); its name becomes the token's (letters, digits and
        ``_``, not a name the model has).
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
    val_fraction : float
        The share of the usable stars kept for validation (at least
        `MIN_VALIDATION_STARS`), drawn with ``seed``.
    seed, epochs, patience, learning_rate, batch_size, max_minutes
        See `FinetuneSettings` (None: its default); ``max_minutes`` is a time limit.
    resume : bool
        Continue the fine-tune interrupted in ``out`` (same table and settings)
        from the checkpoint written there after every epoch (removed once the
        model is saved).
    overwrite : bool
        Replace a model already in ``out``.
    device : str, optional
        As in `giantfm.predict`.
    progress : bool or str, optional
        A progress bar over the epochs (`giantfm.predict`'s rules).

    Returns
    -------
    model : `giantfm.model.TrainedModel`
        The fine-tuned model, saved in ``out`` (pass it or ``out`` as ``model=``).
    report : `FinetuneReport`

    Raises
    ------
    ValueError
        A label column missing, without a unit, all NaN or named as a token
        the model has; an error column in a unit that does not convert; a
        table without XP coefficients; fewer than `MIN_STARS` usable stars;
        ``out`` holding a model (without ``overwrite`` or ``resume``).

    Examples
    --------
    Real giants with [C/N] ages (a short run: the default is 300 epochs at most):

    >>> import tempfile
    >>> import giantfm
    >>> stars = giantfm.examples.cn_ages()
    >>> model, report = giantfm.finetune(stars[stars["split"] == "train"], "age_cn",
    ...                                  tempfile.mkdtemp(), log=["age_cn"], epochs=5,
    ...                                  progress="off")
    >>> report.n_train, report.n_val
    (160, 40)
    >>> giantfm.predict(stars[:3], model=model, progress=False)["age_cn"].unit
    Unit("Gyr")
    """
    from .model.adaptation import adapt_network
    from .model.loop import CHECKPOINT_FILE

    given = {"epochs": epochs, "patience": patience, "batch_size": batch_size, "seed": seed,
             "learning_rate": learning_rate, "max_minutes": max_minutes, "progress": progress}
    settings = FinetuneSettings(**{k: v for k, v in given.items() if v is not None})

    out = Path(out)
    if (out / CONFIG_FILE).exists() and not (overwrite or resume):
        raise ValueError(f"{out} already holds a model: choose another folder, or pass "
                         "overwrite=True (or resume=True to continue a fine-tune there)")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction!r}")
    table = as_table(data)
    net = prediction.get_model(device=device, model=model)
    columns = _label_columns(table, labels, net)
    log = _log_names(log, columns)
    tokens = [vocab.Token(name, unit, "log10" if name in log else "linear",
                          f"{name}: taught by giantfm.finetune from column {column!r}",
                          (0.0, np.inf) if name in log else (-np.inf, np.inf))
              for name, (column, unit) in columns.items()]
    vocabulary = net.tokens.extended(tokens)
    values, errors_, error_column_of, bad = _label_values(table, columns, errors, vocabulary)

    batch = prediction.as_batch(table, net, photometry=photometry)
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
                         f"{len(table)}; a fine-tune needs at least {MIN_STARS}"
                         + (f" (left out: {left_out})" if left_out else ""))
    if left_out:
        warnings.warn(f"left out {sum(left_out.values())} of {len(table)} rows: "
                      + "; ".join(f"{n} {why}" for why, n in left_out.items()),
                      GiantfmWarning, stacklevel=2)
    stars = batch.appended(np.arange(len(net.tokens), len(vocabulary)), values, errors_)
    train_rows, val_rows = validation_split(usable, val_fraction, settings.seed)

    out.mkdir(parents=True, exist_ok=True)
    tuned, _ = adapt_network(net, vocabulary, stars[train_rows], stars[val_rows], settings,
                             out_dir=out, resume=resume, device=device)

    names = list(columns)
    validation, old_labels = _score(net, tuned, stars[val_rows], names, vocabulary)
    record = tuned.metadata.training["finetune"]
    report = FinetuneReport(
        labels={name: {"column": columns[name][0], "unit": columns[name][1].to_string(),
                       "scale": vocabulary.token(name).scale,
                       "error_column": error_column_of.get(name)} for name in names},
        n_rows=len(table), n_train=len(train_rows), n_val=len(val_rows), left_out=left_out,
        validation=validation, old_labels=old_labels, epochs_run=record["epochs_run"],
        best_epoch=record["best_epoch"], elapsed_s=record["elapsed_s"])
    tuned.metadata.uncertainty_scale.update(
        {name: validation[name]["uncertainty_scale"] for name in names})
    tuned.metadata.name = f"{net.metadata.name}+{'+'.join(names)}"
    tuned.metadata.training_note = (
        f"{net.metadata.name} fine-tuned to answer {', '.join(names)} from "
        f"{len(train_rows)} stars, validated on {len(val_rows)}")
    record.update(report.to_dict(), base_model=net.metadata.name,
                  base_path=None if net.path is None else str(net.path))
    _save(tuned, out, net)
    # a finished fine-tune cannot be resumed: its checkpoint has served
    (out / CHECKPOINT_FILE).unlink(missing_ok=True)
    return tuned, report


def validation_split(rows, val_fraction=0.2, seed=0):
    """``(train, validation)``: the rows ``rows`` split at random, seeded, with a share
    ``val_fraction`` (at least `MIN_VALIDATION_STARS`) for validation; each sorted."""
    order = np.random.default_rng(seed).permutation(np.asarray(rows))
    n_val = max(int(round(val_fraction * len(order))), MIN_VALIDATION_STARS)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _label_columns(table, labels, net):
    """``{token name: (column, unit)}``, each checked (see `finetune`'s Raises)."""
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


def _score(base, tuned, stars, names, vocabulary):
    """The validation scores of the new labels (and their uncertainty scale), and how far
    giantfm's labels moved from the starting model's answers."""
    mean, std = tuned.request(stars, names, progress=False)
    given, given_error = stars.values_of(names, vocabulary)
    validation = {}
    for k, name in enumerate(names):
        have = np.isfinite(given[:, k]) & np.isfinite(mean[:, k])
        factor = uncertainty_factor(mean[have, k], std[have, k], given[have, k],
                                    given_error[have, k])
        z = (mean[have, k] - given[have, k]) / np.hypot(factor * std[have, k],
                                                        given_error[have, k])
        answer = from_token_scale(name, mean[have, k], None, vocabulary)[0]
        truth = from_token_scale(name, given[have, k], None, vocabulary)[0]
        validation[name] = {"n": int(have.sum()), "mad_std": mad_std(answer - truth),
                            "bias": float(np.median(answer - truth)),
                            "z_mad_std": mad_std(z), "uncertainty_scale": factor}
        if vocabulary.token(name).scale == "log10":
            validation[name]["mad_std_dex"] = mad_std(mean[have, k] - given[have, k])
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
    return validation, old_labels


def _save(tuned, out, base):
    """Write the model to ``out`` with the starting model's label model beside it."""
    tuned.save(out)
    if base.path is not None and (base.path / LABEL_MODEL_DIR).is_dir():
        target = out / LABEL_MODEL_DIR
        staging = out / (LABEL_MODEL_DIR + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(base.path / LABEL_MODEL_DIR, staging)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
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
    parser.add_argument("--val-fraction", type=float, default=0.2,
                        help="share of the usable stars kept for validation (default "
                             "%(default)s)")
    default = FinetuneSettings.default
    parser.add_argument("--seed", type=int,
                        help=f"seeds the split and the order of the stars (default "
                             f"{default('seed')})")
    parser.add_argument("--epochs", type=int,
                        help=f"most passes over the training stars (default {default('epochs')})")
    parser.add_argument("--patience", type=int,
                        help=f"stop after this many epochs without a better validation loss "
                             f"(default {default('patience')})")
    parser.add_argument("--learning-rate", type=float,
                        help=f"peak learning rate (default {default('learning_rate')})")
    parser.add_argument("--batch-size", type=int,
                        help=f"stars per step (default {default('batch_size')})")
    parser.add_argument("--max-minutes", type=float, help="time limit (the best epoch is kept)")
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
    try:
        _, report = finetune(
            args.input, pairs(args.label, "--label"), args.out,
            errors=pairs(args.error, "--error"), log=args.log, model=args.model,
            val_fraction=args.val_fraction, seed=args.seed, epochs=args.epochs,
            patience=args.patience, learning_rate=args.learning_rate,
            batch_size=args.batch_size, max_minutes=args.max_minutes, resume=args.resume,
            overwrite=args.overwrite, device=args.device,
            progress="off" if args.no_progress else None)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"giantfm finetune: error: {exc}", file=sys.stderr)
        return 1
    for name, scores in report.validation.items():
        unit = report.labels[name]["unit"]
        print(f"{name}: validation MAD-std {scores['mad_std']:.4g} {unit}, bias "
              f"{scores['bias']:.4g} {unit}, n {scores['n']} "
              f"(uncertainty scale {scores['uncertainty_scale']:.3g})", file=sys.stderr)
    moved = {name: v["max_abs_change"] for name, v in report.old_labels.items()
             if v["max_abs_change"] > 0}
    print(f"giantfm's labels {'moved: ' + str(moved) if moved else 'unchanged'}; "
          f"{report.n_train} training and {report.n_val} validation stars"
          + (f"; left out {report.left_out}" if report.left_out else "")
          + f"; model written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
