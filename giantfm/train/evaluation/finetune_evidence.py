"""Evidence for teaching giantfm a new label (`giantfm.finetune`) and for its embeddings.

The label is one the model has never seen: the [C/N] ages of Hasselquist et
al. (2020) (``labels/age_cn`` of the training-set file), a proxy of the C and N
that the library's labels lack. Three measurements, all on the fixed test
split::

    python -m giantfm.train.evaluation.finetune_evidence --dataset DATASET --out RUN

``RUN/finetune_cn.ecsv`` -- sample efficiency
    For N = 100, 300, 1,000, 3,000 and all training giants that have XP and a
    [C/N] age (drawn at random, ``--repeats`` draws each): `giantfm.finetune`
    of the bundled model on them, against an XGBoost regressor trained from
    scratch on the same stars with the same validation stars and the project's
    baseline features (`giantfm.train.evaluation.baseline`, ``xp30_colours``). Scored on
    the test giants with a [C/N] age: MAD-std and median of log10(answer /
    age_cn) in dex, MAD-std of z (the fine-tune's calibrated errors with the
    catalogue's in quadrature; XGBoost gives none), fit time.
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
``RUN/finetune_cn.png``
    The sample-efficiency figure.

A caveat on the fine-tune's column: `giantfm.finetune`'s defaults (learning
rate 0.05, patience 100, only the new token learning) were settled with a
handful of exploratory fine-tunes of 100 to 1,000 of these stars whose
test-split scatter was looked at, so that column is mildly optimistic;
XGBoost's grid is its own default, chosen on the validation stars only.
"""
import argparse
import time
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import QTable

from ... import prediction, vocab
from ...embedding import EMBEDDING_COLUMN, embed
from ...tokens import column_in_unit, to_token_scale
from ...teaching import finetune, validation_split
from ...utils import atomic_write
from ...utils._stats import mad_std
from .baseline import fit_baseline, predict_baseline
from ..dataset.datafile import load_dataset, xp_table

__all__ = ["sample_efficiency", "age_information", "embedding_neighbours", "stars_with_cn_age",
           "cn_vocabulary", "with_cn_age", "main", "SIZES", "LABEL"]

#: Training-set sizes of the sample-efficiency experiment (None: all).
SIZES = (100, 300, 1000, 3000, None)
#: The label taught.
LABEL = "age_cn"
_NEIGHBOURS = 10


def stars_with_cn_age(data, split):
    """Positions in ``split`` of the giants with XP coefficients and a [C/N] age (``data``:
    what `giantfm.train.dataset.datafile.load_dataset` returns)."""
    labels = data["labels"][split]
    return np.flatnonzero(np.isfinite(labels[LABEL]) & np.asarray(labels["giant"], bool)
                          & np.isfinite(data["inputs"][split]["xp"]["bp"][:, 0]))


def cn_vocabulary(net):
    """``net``'s tokens with the [C/N] age appended (log10, in Gyr), as `giantfm.finetune`
    makes it."""
    return net.tokens.extended([vocab.Token(LABEL, u.Gyr, "log10", "[C/N] age",
                                            (0.0, np.inf))])


def with_cn_age(table, net, vocabulary):
    """``table``'s tokens with its [C/N] age appended as a token of ``vocabulary``
    (`cn_vocabulary`): the stars as XGBoost is trained and scored on them."""
    batch = prediction.as_batch(table, net)
    value, error = to_token_scale(LABEL, table[LABEL].to_value(u.Gyr),
                                  table[f"{LABEL}_err"].to_value(u.Gyr), vocabulary)
    return batch.appended([len(net.tokens)], value[:, None], error[:, None])


def _gyr(column):
    """A result column as plain floats in Gyr, NaN where masked."""
    return column_in_unit(column, u.Gyr, column.info.name)


def _dex(answer, truth):
    return np.log10(np.asarray(answer, float)) - np.log10(np.asarray(truth, float))


def sample_efficiency(data, out, *, sizes=SIZES, repeats=3, say=print):
    """The sample-efficiency table (see the module docstring); fine-tuned models go to
    ``out/models``. Returns the table and, per size, the fine-tuned models' test answers
    of the first draw (for `age_information`)."""
    net = prediction.get_model()
    vocabulary = cn_vocabulary(net)
    pool = stars_with_cn_age(data, "train")
    test = xp_table(data, "test", stars_with_cn_age(data, "test"))
    test_batch = with_cn_age(test, net, vocabulary)
    truth, truth_err = test[LABEL].to_value(u.Gyr), test[f"{LABEL}_err"].to_value(u.Gyr)
    truth_dex_err = truth_err / (truth * np.log(10))
    rows, first = [], {}
    for size in sizes:
        n = len(pool) if size is None or size >= len(pool) else size
        for repeat in range(repeats):
            rng = np.random.default_rng(1000 * repeat + n)
            chosen = pool if n == len(pool) else np.sort(rng.choice(pool, n, replace=False))
            table = xp_table(data, "train", chosen)
            start = time.perf_counter()
            model, report = finetune(table, LABEL, out / "models" / f"n{n}_r{repeat}",
                                     log=[LABEL], seed=repeat, overwrite=True, progress="off")
            fit_s = time.perf_counter() - start
            answer = prediction.predict(test, model=model)
            value, error = _gyr(answer[LABEL]), _gyr(answer[f"{LABEL}_err"])
            usable = ~np.asarray(answer["flag"]) & np.isfinite(value)
            residual = _dex(value, truth)[usable]
            z = residual / np.hypot(error[usable] / (value[usable] * np.log(10)),
                                    truth_dex_err[usable])
            rows.append({"method": "finetune", "n_stars": n, "repeat": repeat,
                         "n_train": report.n_train, "n_val": report.n_val,
                         "n_test": int(usable.sum()), "mad_std_dex": mad_std(residual),
                         "bias_dex": float(np.median(residual)), "z_mad_std": mad_std(z),
                         "fit_s": fit_s, "best_epoch": report.best_epoch})
            if repeat == 0:
                first[n] = answer
            say(f"fine-tune N={n} draw {repeat}: {rows[-1]['mad_std_dex']:.3f} dex "
                f"({fit_s:.0f} s)")

            batch = with_cn_age(table, net, vocabulary)
            usable_rows = np.flatnonzero(batch.ok & np.isfinite(
                batch.values_of([LABEL], vocabulary)[0][:, 0]))
            train_rows, val_rows = validation_split(usable_rows, 0.2, repeat)
            start = time.perf_counter()
            baseline = fit_baseline(batch[train_rows], batch[val_rows], targets=[LABEL],
                                    vocabulary=vocabulary, seed=repeat)
            fit_s = time.perf_counter() - start
            guess = predict_baseline(baseline, test_batch)[:, 0]
            residual = guess - np.log10(truth)
            ok = np.isfinite(residual)
            rows.append({"method": "xgboost", "n_stars": n, "repeat": repeat,
                         "n_train": len(train_rows), "n_val": len(val_rows),
                         "n_test": int(ok.sum()), "mad_std_dex": mad_std(residual[ok]),
                         "bias_dex": float(np.median(residual[ok])), "z_mad_std": np.nan,
                         "fit_s": fit_s, "best_epoch": -1})
            say(f"XGBoost   N={n} draw {repeat}: {rows[-1]['mad_std_dex']:.3f} dex")
            if n == len(pool):
                break    # all stars: the draws differ only in the split
    table = QTable(rows)
    table.meta.update({
        "title": "Teaching giantfm [C/N] ages: fine-tune against XGBoost from scratch",
        "label": "age_cn (Hasselquist et al. 2020), scored as log10 age on the test split",
        "model": net.metadata.name, "features_xgboost": "xp30_colours",
        "n_pool": int(len(pool)), "n_test_stars": int(len(test))})
    return table, first, test


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


def sample_efficiency_figure(table, path):
    """MAD-std against N for both methods (median and range over the draws)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for method, label, marker in (("finetune", "giantfm.finetune (bundled model + token)", "o"),
                                  ("xgboost", "XGBoost from scratch", "s")):
        mine = table[table["method"] == method]
        sizes = np.unique(mine["n_stars"])
        centre = [np.median(mine["mad_std_dex"][mine["n_stars"] == n]) for n in sizes]
        low = [np.min(mine["mad_std_dex"][mine["n_stars"] == n]) for n in sizes]
        high = [np.max(mine["mad_std_dex"][mine["n_stars"] == n]) for n in sizes]
        ax.errorbar(sizes, centre, yerr=[np.subtract(centre, low), np.subtract(high, centre)],
                    marker=marker, capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("stars with [C/N] ages given (training + validation)")
    ax.set_ylabel("test scatter of log age (MAD-std, dex)")
    ax.legend(frameon=False)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=150, format="png"))
    plt.close(fig)


def main(argv=None):
    """``python -m giantfm.train.evaluation.finetune_evidence``: write the tables and the figure."""
    parser = argparse.ArgumentParser(prog="python -m giantfm.train.evaluation.finetune_evidence",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="100,300,1000,3000,all")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset(args.dataset)
    sizes = tuple(None if s == "all" else int(s) for s in args.sizes.split(","))

    def write(table, name):
        atomic_write(out / name, lambda tmp: table.write(tmp, format="ascii.ecsv",
                                                         overwrite=True))
        print(f"wrote {out / name}")
    write(embedding_neighbours(data), "embedding_neighbours.ecsv")
    table, first, test = sample_efficiency(data, out, sizes=sizes, repeats=args.repeats)
    write(table, "finetune_cn.ecsv")
    sample_efficiency_figure(table, out / "finetune_cn.png")
    write(age_information(test, first[max(first)], data), "finetune_cn_age.ecsv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
