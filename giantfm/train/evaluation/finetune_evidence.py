"""Evidence for teaching giantfm new labels (`giantfm.finetune`) and for its embeddings.

Does the foundation model learn a label it has never seen from few stars
better than a model trained from scratch on the same stars? Every experiment
scores on the fixed test split, and chooses nothing on it (the fine-tune
chooses its method, epochs and regularisation by cross-validation on the
stars it is given; XGBoost its trees on a validation cut of them; the ridge
its penalty by leave-one-out on them)::

    python -m giantfm.train.evaluation.finetune_evidence --dataset DATASET --out RUN

regenerates everything below (``--tasks`` runs some of them; ``--repeats`` sets the
draws at N <= 300). Each task (`TASKS`) is a family of labels:

``cn`` -- [C/N] ages (Hasselquist et al. 2020, ``labels/age_cn`` of the training-set file)
    A proxy of the C and N that the library's labels lack; learned as log10.
    N = 50, 100, 300, 1,000 and all training-split giants with XP and a [C/N] age.
``k2`` -- APO-K2 asteroseismology (Schonhut-Stasik et al. 2024)
    ``numax``, ``dnu`` and ``radius`` (log10), taught together, from the K2
    giants of the library outside the test split (train and validation
    splits: the true small-N case, about 290 stars); N = 50, 100 and all.
``alpha_m``, ``logg`` -- two of giantfm's own labels learned again
    APOGEE [alpha/M] and log g taught as if they were new tokens
    (``alpha_m_new``, ``logg_new``), N = 50 ... 3,000: does the adaptation
    find what the network already knows?

For each N, ``--repeats`` draws of random stars at N <= 300 and one above,
each given to

* `giantfm.finetune` with its defaults (``method='auto'``: every method
  cross-validated on the same folds, the best kept per label; the errors
  calibrated on the folds), starting from the bundled model;
* XGBoost trained from scratch (`giantfm.train.evaluation.baseline.fit_baseline`,
  features ``xp30_colours``, early stopping and its depth on a seeded 20 %
  validation cut of the same stars, `giantfm.teaching.validation_split`);
* a ridge regression on the raw XP coefficients divided by the G-band flux
  and the colours (`RAW_FEATURES`; its penalty by leave-one-out on the same
  stars, `giantfm.utils._ridge.fit_ridge`),

all scored on the test-split stars with the label: the MAD-std and median
of the residuals in token scale (dex for a log label), and for the fine-tune
the MAD-std of its calibrated z-scores (the catalogue's errors in quadrature)
and each method's out-of-fold scatter. Written to ``RUN/finetune_<family>.ecsv``
(`FAMILIES`: ``cn``, ``k2``, ``relearned``), one row per (label, N, draw,
method), and the figure ``RUN/finetune_labels.png``.

Two more measurements, on the test split:

``RUN/finetune_cn_age.ecsv`` -- does the new token add information?
    Test-split age scatter of giantfm's own age, of the fine-tuned ``age_cn``
    (the largest N, first draw) and of their inverse-variance mean in log10,
    each against the label model's age (what giantfm's age is trained on) and
    against ``age_cn``.
``RUN/embedding_neighbours.ecsv`` -- do the embeddings group alike stars?
    For the test-split giants with XP: the median absolute difference of Teff,
    log g, [M/H] and mass (the label model's, where a star has one) between each
    star and its 10 nearest neighbours among them in the embedding space
    (`giantfm.embed`), in the space of the XP coefficients divided by the G-band
    flux (each standardised by its MAD-std over these stars), and to 10 stars
    drawn at random.

What was looked at: the fine-tune's defaults were settled by cross-validation
on training stars only, except that the development of the methods scored
candidate probes on the validation split of the training-set file (not the
test split) and that earlier fine-tunes' test scatter of [C/N] ages had been
looked at (the previous version of this page); the test split chose nothing.
"""
import argparse
import dataclasses
import os
import time
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import QTable, vstack

from ... import prediction, vocab
from ...embedding import EMBEDDING_COLUMN, embed
from ...teaching import finetune, validation_split
from ...tokens import column_in_unit, g_flux, to_token_scale
from ...utils import atomic_write
from ...utils._columns import floats, ids
from ...utils._ridge import fit_ridge
from ...utils._stats import mad_std
from ..dataset.datafile import load_dataset, xp_table
from ..sources import APOK2_MISSING, read_apok2
from .baseline import fit_baseline, predict_baseline

__all__ = ["Task", "TASKS", "FAMILIES", "SIZES", "LABEL", "RAW_FEATURES", "teaching_experiment",
           "task_tables", "k2_table", "raw_features", "taught_batch", "labels_figure",
           "age_information", "embedding_neighbours", "stars_with_cn_age", "cn_vocabulary",
           "with_cn_age", "main"]

#: The [C/N] age label (the training-set file's ``labels/age_cn``).
LABEL = "age_cn"
#: Training-set sizes of the [C/N] experiment (None: all).
SIZES = (50, 100, 300, 1000, None)
#: The features of the ridge baseline: each band's 55 raw coefficients divided by the
#: G-band flux, and the colours of the token set.
RAW_FEATURES = "raw XP coefficients / G flux (110) + colours"
_NEIGHBOURS = 10
#: Draws of random stars at N up to this; one above.
_SMALL_N = 300


@dataclasses.dataclass(frozen=True)
class Task:
    """One experiment: labels taught together, the sizes of the draws, its family.

    ``labels`` is ``{token name: (column, unit, log)}``: the column of the task's tables
    (with ``<column>_err``), the token's unit, and whether it is learned as log10.
    """

    name: str
    family: str
    title: str
    labels: dict
    sizes: tuple


#: The experiments (see the module docstring).
TASKS = {
    "cn": Task("cn", "cn", "[C/N] ages (Hasselquist et al. 2020)",
               {LABEL: (LABEL, u.Gyr, True)}, SIZES),
    "k2": Task("k2", "k2", "APO-K2 asteroseismology (Schonhut-Stasik et al. 2024)",
               {"numax": ("numax", u.uHz, True), "dnu": ("dnu", u.uHz, True),
                "radius": ("radius", u.R_sun, True)}, (50, 100, None)),
    "alpha_m": Task("alpha_m", "relearned", "[alpha/M] learned again as a new token",
                    {"alpha_m_new": ("alpha_m", vocab.token_unit("alpha_m"), False)},
                    (50, 100, 300, 1000, 3000)),
    "logg": Task("logg", "relearned", "log g learned again as a new token",
                 {"logg_new": ("logg", vocab.token_unit("logg"), False)},
                 (50, 100, 300, 1000, 3000)),
}
#: The result files: ``finetune_<family>.ecsv`` holds the rows of its tasks.
FAMILIES = {"cn": ("cn",), "k2": ("k2",), "relearned": ("alpha_m", "logg")}


def stars_with_cn_age(data, split):
    """Positions in ``split`` of the giants with XP coefficients and a [C/N] age (``data``:
    what `giantfm.train.dataset.datafile.load_dataset` returns)."""
    return _giants_with(data, split, LABEL)


def _giants_with(data, split, column):
    labels = data["labels"][split]
    return np.flatnonzero(np.isfinite(np.asarray(labels[column], float))
                          & np.asarray(labels["giant"], bool)
                          & np.isfinite(data["inputs"][split]["xp"]["bp"][:, 0]))


def cn_vocabulary(net):
    """``net``'s tokens with the [C/N] age appended (log10, in Gyr), as `giantfm.finetune`
    makes it."""
    return _vocabulary(net, TASKS["cn"])


def _vocabulary(net, task):
    return net.tokens.extended([vocab.Token(name, unit, "log10" if log else "linear", name,
                                            (0.0, np.inf) if log else (-np.inf, np.inf))
                                for name, (_, unit, log) in task.labels.items()])


def with_cn_age(table, net, vocabulary):
    """``table``'s tokens with its [C/N] age appended as a token of ``vocabulary``
    (`cn_vocabulary`): the stars as XGBoost is trained and scored on them."""
    return taught_batch(table, net, vocabulary, TASKS["cn"])


def taught_batch(table, net, vocabulary, task):
    """``table``'s tokens with the task's labels appended as tokens of ``vocabulary``
    (their values in token scale): the stars as XGBoost is trained and scored on them."""
    batch = prediction.as_batch(table, net)
    values, errors = [], []
    for name, (column, unit, _) in task.labels.items():
        value, error = to_token_scale(name, column_in_unit(table[column], unit, column),
                                      column_in_unit(table[f"{column}_err"], unit, column),
                                      vocabulary)
        values.append(value)
        errors.append(np.nan_to_num(error))
    return batch.appended([vocabulary.token_id(name) for name in task.labels],
                          np.column_stack(values), np.column_stack(errors))


def k2_table(data, split, catalogue=None):
    """The giants of ``split`` with XP that APO-K2 has, in archive layout, with its
    ``numax``, ``dnu`` [uHz] and ``radius`` [R_sun] and their ``_err`` (NaN where the
    catalogue has none), joined on the APOGEE ID. ``catalogue``: APO-K2 as
    `giantfm.train.sources.read_apok2` reads it (default: read the shared one)."""
    k2 = read_apok2() if catalogue is None else catalogue
    catalogue_ids = np.asarray(k2["apogee_id"])
    labels = data["labels"][split]
    giants = np.flatnonzero(np.asarray(labels["giant"], bool)
                            & np.isfinite(data["inputs"][split]["xp"]["bp"][:, 0]))
    _, mine, theirs = np.intersect1d(ids(labels["apogee_id"])[giants], catalogue_ids,
                                     return_indices=True)
    order = np.argsort(giants[mine])
    rows, theirs = giants[mine][order], theirs[order]
    table = xp_table(data, split, rows, labels=())
    for name, (column, unit, _) in TASKS["k2"].labels.items():
        for suffix in ("", "_err"):
            value = floats(k2[column + suffix], missing=APOK2_MISSING)[theirs]
            table[column + suffix] = np.where(value > 0, value, np.nan) * unit
    return table


def task_tables(task, data):
    """``(pool, test)``: the stars a task draws from (outside the test split) and the test
    stars it is scored on, as archive-layout tables with the label columns."""
    if task.name == "k2":
        k2 = read_apok2()    # read once for the three splits
        pool = vstack([k2_table(data, "train", k2), k2_table(data, "val", k2)])
        test = k2_table(data, "test", k2)
    else:
        column = next(iter(task.labels.values()))[0]
        pool, test = (xp_table(data, split, _giants_with(data, split, column),
                               labels=(column,)) for split in ("train", "test"))
    keep = np.zeros(len(pool), bool)
    for column, _, _ in task.labels.values():
        keep |= np.isfinite(np.asarray(pool[column].value, float))
    return pool[keep], test


def raw_features(table, batch):
    """The ridge baseline's features (`RAW_FEATURES`) of the stars of ``table``: (n, 110 +
    colours), NaN where a star lacks one."""
    flux = g_flux(column_in_unit(table["phot_g_mean_mag"], u.mag, "phot_g_mean_mag"))
    coefficients = [np.asarray(table[f"{band}_coefficients"], float) / flux[:, None]
                    for band in ("bp", "rp")]
    colours = batch.values_of(vocab.COLOUR_NAMES)[0]
    return np.column_stack(coefficients + [colours])


def _token_scale(name, table, column, unit, vocabulary):
    value = column_in_unit(table[column], unit, column)
    error = column_in_unit(table[f"{column}_err"], unit, column)
    return to_token_scale(name, value, np.nan_to_num(error), vocabulary)


def _scores(residual):
    ok = np.isfinite(residual)
    return {"n_test": int(ok.sum()), "mad_std": mad_std(residual[ok]),
            "bias": float(np.median(residual[ok])) if ok.any() else np.nan}


def teaching_experiment(task, data, out, *, repeats=3, sizes=None, say=print):
    """The rows of one task (see the module docstring); fine-tuned models go to
    ``out/models``. Returns the table and the test answers of the first draw of the
    largest N (for `age_information`), with the test table."""
    net = prediction.get_model()
    vocabulary = _vocabulary(net, task)
    pool, test = task_tables(task, data)
    test_batch = taught_batch(test, net, vocabulary, task)
    test_raw = raw_features(test, test_batch)
    truth = {name: _token_scale(name, test, column, unit, vocabulary)
             for name, (column, unit, _) in task.labels.items()}
    rows, last = [], None
    for size in task.sizes if sizes is None else sizes:
        n = len(pool) if size is None or size >= len(pool) else size
        for draw in range(repeats if n <= _SMALL_N else 1):
            rng = np.random.default_rng(1000 * draw + n)
            chosen = np.arange(len(pool)) if n == len(pool) else np.sort(
                rng.choice(len(pool), n, replace=False))
            table = pool[chosen]
            common = {"task": task.name, "n_stars": n, "draw": draw}
            rows += _finetune_rows(task, table, test, truth, vocabulary, out, common, say)
            last = rows[-1].pop("answer")
            batch = taught_batch(table, net, vocabulary, task)
            rows += _xgboost_rows(task, batch, test_batch, truth, vocabulary, common, say)
            rows += _ridge_rows(task, table, batch, test_raw, truth, vocabulary, common, say)
    for row in rows:
        row.pop("answer", None)
    result = QTable(rows)
    result.meta.update({
        "title": f"Teaching giantfm {task.title}: fine-tune against XGBoost and a ridge from "
                 "scratch", "model": net.metadata.name, "features_xgboost": "xp30_colours",
        "features_ridge": RAW_FEATURES, "n_pool": int(len(pool)),
        "n_test_stars": int(len(test)), "draws_up_to": _SMALL_N, "repeats": repeats})
    return result, last, test


def _finetune_rows(task, table, test, truth, vocabulary, out, common, say):
    labels = {name: column for name, (column, _, _) in task.labels.items()}
    errors = {name: f"{column}_err" for name, column in labels.items()}
    log = [name for name, (_, _, is_log) in task.labels.items() if is_log]
    folder = out / "models" / f"{task.name}_n{common['n_stars']}_d{common['draw']}"
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, report = finetune(table, labels, folder, errors=errors, log=log,
                                 seed=common["draw"], overwrite=True, progress="off")
    fit_s = time.perf_counter() - start
    answer = prediction.predict(test, model=model, progress=False)
    usable = ~np.asarray(answer["flag"])
    rows = []
    for name, (column, unit, _) in task.labels.items():
        value = column_in_unit(answer[name], unit, name)
        error = column_in_unit(answer[f"{name}_err"], unit, name)
        mean, std = to_token_scale(name, value, error, vocabulary)
        given, given_error = truth[name]
        residual = np.where(usable, mean - given, np.nan)
        z = residual / np.hypot(std, given_error)
        cv = report.cross_validation[name]
        row = {**common, "label": name, "method": "finetune", "chosen": report.method[name],
               "n_train": report.n_train, **_scores(residual),
               "z_mad_std": mad_std(z[np.isfinite(z)]), "fit_s": fit_s,
               "still_improving": any("best epoch was the last" in str(w.message)
                                      for w in caught),
               **{f"cv_{m}": cv[m]["mad_std_token"] if m in cv else np.nan
                  for m in ("prompt", "probe", "decoder")}, "answer": answer}
        rows.append(row)
        say(f"{task.name} {name} N={common['n_stars']} draw {common['draw']}: fine-tune "
            f"({report.method[name]}) {row['mad_std']:.4g}, z {row['z_mad_std']:.2f} "
            f"({fit_s:.0f} s)")
    return rows


def _xgboost_rows(task, batch, test_batch, truth, vocabulary, common, say):
    have = np.isfinite(batch.values_of(list(task.labels), vocabulary)[0]).any(axis=1)
    train, val = validation_split(np.flatnonzero(batch.ok & have), 0.2, common["draw"])
    start = time.perf_counter()
    baseline = fit_baseline(batch[train], batch[val], targets=list(task.labels),
                            vocabulary=vocabulary, seed=common["draw"], nthread=1)
    fit_s = time.perf_counter() - start
    guess = predict_baseline(baseline, test_batch)
    rows = []
    for k, name in enumerate(task.labels):
        rows.append({**common, "label": name, "method": "xgboost", "chosen": "",
                     "n_train": len(train), **_scores(guess[:, k] - truth[name][0]),
                     "z_mad_std": np.nan, "fit_s": fit_s, "still_improving": False,
                     "cv_prompt": np.nan, "cv_probe": np.nan, "cv_decoder": np.nan})
        say(f"{task.name} {name} N={common['n_stars']} draw {common['draw']}: XGBoost "
            f"{rows[-1]['mad_std']:.4g}")
    return rows


def _ridge_rows(task, table, batch, test_raw, truth, vocabulary, common, say):
    features = raw_features(table, batch)
    fill = np.nanmedian(features, axis=0)
    features = np.where(np.isfinite(features), features, fill)
    test_features = np.where(np.isfinite(test_raw), test_raw, fill)
    rows = []
    for name, (column, unit, _) in task.labels.items():
        target = _token_scale(name, table, column, unit, vocabulary)[0]
        have = np.isfinite(target)
        start = time.perf_counter()
        ridge = fit_ridge(features[have], target[have])
        fit_s = time.perf_counter() - start
        guess = ridge.predict(test_features)
        rows.append({**common, "label": name, "method": "ridge", "chosen": "",
                     "n_train": int(have.sum()), **_scores(guess - truth[name][0]),
                     "z_mad_std": np.nan, "fit_s": fit_s, "still_improving": False,
                     "cv_prompt": np.nan, "cv_probe": np.nan, "cv_decoder": np.nan})
        say(f"{task.name} {name} N={common['n_stars']} draw {common['draw']}: ridge "
            f"{rows[-1]['mad_std']:.4g}")
    return rows


def _gyr(column):
    """A result column as plain floats in Gyr, NaN where masked."""
    return column_in_unit(column, u.Gyr, column.info.name)


def _dex(answer, truth):
    return np.log10(np.asarray(answer, float)) - np.log10(np.asarray(truth, float))


def age_information(test, answer, data):
    """Test-split age scatter (dex) of giantfm's age, the fine-tuned ``age_cn`` and their
    inverse-variance mean, against the label model's age and against ``age_cn``."""
    labels = data["labels"]["test"]
    rows = stars_with_cn_age(data, "test")
    reference = {"label model age": np.asarray(labels["age"][rows], float),
                 "[C/N] age (age_cn)": test[LABEL].to_value(u.Gyr)}
    usable = ~np.asarray(answer["flag"])
    age, age_err = _gyr(answer["age"]), _gyr(answer["age_err"])
    cn, cn_err = _gyr(answer[LABEL]), _gyr(answer[f"{LABEL}_err"])
    w_age = (age * np.log(10) / age_err) ** 2
    w_cn = (cn * np.log(10) / cn_err) ** 2
    combined = 10 ** ((w_age * np.log10(age) + w_cn * np.log10(cn)) / (w_age + w_cn))
    estimators = {"giantfm age (without the token)": age,
                  "fine-tuned age_cn": cn,
                  "inverse-variance mean of both": combined}
    out = []
    for name, value in estimators.items():
        for ref_name, ref in reference.items():
            residual = _dex(value, ref)
            ok = usable & np.isfinite(residual)
            out.append({"estimate": name, "reference": ref_name, "n": int(ok.sum()),
                        "mad_std_dex": mad_std(residual[ok]),
                        "bias_dex": float(np.median(residual[ok]))})
    table = QTable(out)
    table.meta["title"] = "Does the fine-tuned [C/N] age token add information to giantfm's age?"
    return table


def embedding_neighbours(data, k=_NEIGHBOURS, seed=0):
    """The embedding-neighbour table (see the module docstring)."""
    from scipy.spatial import cKDTree

    labels = data["labels"]["test"]
    rows = np.flatnonzero(np.asarray(labels["giant"], bool)
                          & np.isfinite(data["inputs"]["test"]["xp"]["bp"][:, 0]))
    table = xp_table(data, "test", rows, labels=())
    embedded = embed(table, progress="off")
    ok = ~np.asarray(embedded["flag"])
    vectors = np.asarray(embedded[EMBEDDING_COLUMN])
    batch = data["test"][rows]
    coefficients = batch.values_of(vocab.XP_NAMES)[0]
    ok &= np.isfinite(vectors).all(axis=1) & np.isfinite(coefficients).all(axis=1)
    rows, vectors, coefficients = rows[ok], vectors[ok], coefficients[ok]
    coefficients = (coefficients - np.median(coefficients, axis=0)) / np.array(
        [mad_std(c) for c in coefficients.T])
    quantities = {"teff": "K", "logg": "dex", "m_h": "dex", "mass": "solMass"}
    values = {name: np.asarray(labels[name][rows], float) for name in quantities}
    rng = np.random.default_rng(seed)
    neighbours = {
        "embedding (giantfm.embed)": cKDTree(vectors).query(vectors, k + 1)[1][:, 1:],
        "XP coefficients / G flux, standardised": cKDTree(coefficients).query(
            coefficients, k + 1)[1][:, 1:],
        "random stars": (np.arange(len(rows))[:, None]
                         + rng.integers(1, len(rows), size=(len(rows), k))) % len(rows)}
    out = []
    for space, index in neighbours.items():
        row = {"space": space, "n_stars": len(rows), "k": k}
        for name, unit in quantities.items():
            delta = np.abs(values[name][index] - values[name][:, None])
            row[f"median_abs_d_{name}"] = float(np.nanmedian(delta))
        out.append(row)
    result = QTable(out)
    result.meta.update({"title": "Labels of a test giant's 10 nearest neighbours",
                        "units": quantities, "model": prediction.get_model().metadata.name})
    return result


#: The panels of the figure: (task, label, axis label).
_PANELS = (("cn", "age_cn", "[C/N] age [dex]"), ("k2", "numax", r"$\nu_\mathrm{max}$ [dex]"),
           ("k2", "dnu", r"$\Delta\nu$ [dex]"), ("k2", "radius", "radius [dex]"),
           ("alpha_m", "alpha_m_new", "[alpha/M] [dex]"), ("logg", "logg_new", "log g [dex]"))
_STYLES = {"finetune": ("giantfm.finetune (auto)", "o"), "xgboost": ("XGBoost from scratch", "s"),
           "ridge": ("ridge on raw coefficients", "^")}


def labels_figure(tables, path):
    """Test MAD-std against N for every label and method (median and range over the
    draws), one panel per label; ``tables`` are the families' tables."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = vstack([t for t in tables if t is not None and len(t)], metadata_conflicts="silent")
    panels = [p for p in _PANELS if np.any(rows["label"] == p[1])]
    columns = min(3, len(panels))
    lines = -(-len(panels) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(3.6 * columns, 2.9 * lines),
                             squeeze=False)
    for ax, (_, label, title) in zip(axes.flat, panels):
        mine = rows[rows["label"] == label]
        for method, (name, marker) in _STYLES.items():
            these = mine[mine["method"] == method]
            sizes = np.unique(these["n_stars"])
            scores = [these["mad_std"][these["n_stars"] == n] for n in sizes]
            centre = np.array([np.median(s) for s in scores])
            ax.errorbar(sizes, centre, yerr=[centre - [np.min(s) for s in scores],
                                             [np.max(s) for s in scores] - centre],
                        marker=marker, capsize=3, label=name)
        ax.set_xscale("log")
        ticks = np.unique(mine["n_stars"])
        ax.set_xticks(ticks, [f"{n:,}" for n in ticks], fontsize=7)
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("stars given (N)")
        ax.set_ylabel("test MAD-std")
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    axes.flat[0].legend(frameon=False, fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=130, format="png"))
    plt.close(fig)


def main(argv=None):
    """``python -m giantfm.train.evaluation.finetune_evidence``: write the tables and the figure."""
    # XGBoost's OpenMP threads busy-wait by default, which on a shared machine made fits
    # tens of times slower (giantfm.train.evaluation.baseline): set before it loads
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = argparse.ArgumentParser(prog="python -m giantfm.train.evaluation.finetune_evidence",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeats", type=int, default=3,
                        help="draws of random stars at N <= 300 (default %(default)s)")
    parser.add_argument("--tasks", default=",".join(TASKS),
                        help="the tasks to run (default: all of %(default)s)")
    parser.add_argument("--no-neighbours", action="store_true",
                        help="skip embedding_neighbours.ecsv")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset(args.dataset)
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        parser.error(f"unknown tasks {unknown}; known: {', '.join(TASKS)}")

    def write(table, name):
        atomic_write(out / name, lambda tmp: table.write(tmp, format="ascii.ecsv",
                                                         overwrite=True))
        print(f"wrote {out / name}", flush=True)
    if not args.no_neighbours:
        write(embedding_neighbours(data), "embedding_neighbours.ecsv")

    def say(text):
        print(text, flush=True)
    for family, members in FAMILIES.items():
        chosen = [TASKS[t] for t in members if t in tasks]
        if not chosen:
            continue
        tables = []
        for task in chosen:
            table, answer, test = teaching_experiment(task, data, out, repeats=args.repeats,
                                                      say=say)
            tables.append(table)
            if task.name == "cn":
                write(age_information(test, answer, data), "finetune_cn_age.ecsv")
        table = vstack(tables, metadata_conflicts="silent")
        table.meta.update(tables[0].meta)
        table.meta.update({"title": f"Teaching giantfm new labels: {family}",
                           "n_pool": {t.name: int(x.meta["n_pool"])
                                      for t, x in zip(chosen, tables)},
                           "n_test_stars": {t.name: int(x.meta["n_test_stars"])
                                            for t, x in zip(chosen, tables)}})
        write(table, f"finetune_{family}.ecsv")
    tables = [QTable.read(out / f"finetune_{f}.ecsv") for f in FAMILIES
              if (out / f"finetune_{f}.ecsv").is_file()]
    if tables:
        labels_figure(tables, out / "finetune_labels.png")
        print(f"wrote {out / 'finetune_labels.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
