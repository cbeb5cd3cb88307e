"""Gradient-boosted trees baseline: one XGBoost regressor per requested token.

The method papers compare their transformer with XGBoost trained on the same
inputs (Leung & Bovy 2024: 2000 trees on BP/RP[0-29] + colours). This module
does the same on exactly the transformer's split and token values: the features
of a star are the token-scale values of a fixed list of token names (NaN where
the star lacks the token, which XGBoost routes down a learned default branch),
the targets are token-scale values (age as log10(age / Gyr)). Hyperparameters
are chosen on the validation split only: a small grid over tree depth and
learning rate (`DEFAULT_GRID`), each with early stopping on the validation
RMSE, the winner being the grid point with the smallest validation MAD-std of
residuals (the statistic the evaluation reports). Stars without any of the input
tokens (label-only stars) are not used: trees cannot learn from them.

The same machinery fits the labels -> coefficients baseline for generation
(``features="labels"``, ``targets=GENERATION_TARGETS``); with 110 targets it is
~20 times the cost of the label baseline, so give it a one-point grid.

xgboost (the ``xgboost-cpu`` distribution) is imported only inside the functions
that need it.

Run ``giantfm baseline --dataset FILE --out DIR`` to fit and save one from a
dataset file.
"""
import functools
import json
import os
import time
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import numpy as np

from ... import vocab
from ...exceptions import InvalidNameError
from ...utils import atomic_write
from ...utils._optional import require
from ...utils._stats import mad_std
from ..dataset.datafile import load_dataset

__all__ = ["INPUT_SETS", "DEFAULT_GRID", "GENERATION_TARGETS", "BaselineModel",
           "input_names", "feature_matrix", "fit_baseline", "predict_baseline",
           "load_baseline", "main"]

_BP, _RP = vocab.BP_NAMES, vocab.RP_NAMES

#: Named input token sets shared by the baseline and the evaluation experiments.
INPUT_SETS = {
    "xp30_colours": _BP[:30] + _RP[:30] + vocab.COLOUR_NAMES,
    "xp_colours": vocab.XP_NAMES + vocab.COLOUR_NAMES,
    "xp5_colours": _BP[:5] + _RP[:5] + vocab.COLOUR_NAMES,
    "xp25_54": _BP[25:] + _RP[25:],
    "labels": vocab.SPECTROSCOPIC_LABEL_NAMES,
    "labels_ak": vocab.SPECTROSCOPIC_LABEL_NAMES + ("a_k",),
}

#: Targets of the labels -> spectrum baseline.
GENERATION_TARGETS = vocab.XP_NAMES

#: Hyperparameter grid searched on the validation split; ``n_estimators`` is
#: the cap on trees, early stopping picks the number actually kept. On the real
#: data deep trees win for the spectroscopic labels (Teff: depth 10 beat 8 by 3 %)
#: and shallow ones for mass (6,400 stars). One learning rate keeps a 25,000-star
#: fit to minutes on 2 CPU cores (~35 ms per depth-6 tree for 65 features,
#: measured); a second rate of 0.05 would double the cost.
DEFAULT_GRID = {"max_depth": (4, 6, 8, 10), "learning_rate": (0.1,),
                "n_estimators": (2000,)}

# Fixed for every grid point: hist trees, mild row/column subsampling (which
# regularises and halves the work per tree), stop after 50 rounds without gain.
_FIXED_PARAMS = {"tree_method": "hist", "objective": "reg:squarederror",
                 "eval_metric": "rmse", "subsample": 0.8, "colsample_bytree": 0.8,
                 "min_child_weight": 5}
_EARLY_STOPPING_ROUNDS = 50
_META_FILE = "baseline.json"


def input_names(inputs):
    """Token names of an input set.

    Parameters
    ----------
    inputs : str or sequence of str
        A key of `INPUT_SETS` or an explicit list of vocabulary token names.

    Returns
    -------
    tuple of str
    """
    if isinstance(inputs, str):
        try:
            return INPUT_SETS[inputs]
        except KeyError:
            raise InvalidNameError(f"unknown input set {inputs!r}; known sets are "
                                   f"{', '.join(INPUT_SETS)} (or give a list of token names)"
                                   ) from None
    names = tuple(inputs)
    if not names:
        raise ValueError("the input set is empty")
    vocab.token_ids(names)  # raises InvalidNameError naming an unknown token
    if len(set(names)) != len(names):
        raise ValueError(f"the input set repeats token names: {names}")
    return names


def feature_matrix(batch, names):
    """Token values of ``names`` for each star, as the baseline's feature matrix.

    Parameters
    ----------
    batch : `~giantfm.tokens.TokenBatch`
        The stars.
    names : sequence of str
        Token names, one column each.

    Returns
    -------
    ndarray (n_stars, len(names)), float32
        Token-scale values; NaN where a star lacks the token and in the whole row
        of a star whose ``reason`` marks it unusable.
    """
    features = batch.values_of(input_names(names))[0].astype(np.float32)
    features[batch.reason != ""] = np.nan
    return features


@dataclass
class BaselineModel:
    """A fitted baseline: one XGBoost booster per target token.

    Attributes
    ----------
    features : tuple of str
        Input token names (the columns of `feature_matrix`).
    targets : tuple of str
        Predicted token names (token scale).
    boosters : dict
        ``{target: xgboost.Booster}``, each cut to its best iteration.
    hyperparameters : dict
        ``{target: {"max_depth", "learning_rate", "n_trees"}}`` chosen on validation.
    validation : dict
        ``{target: {"sigma", "bias", "n"}}``: validation MAD-std and median of the
        residuals (token scale) of the chosen model.
    target_scaling : dict
        ``{target: (centre, scale)}``: the boosters predict
        ``(value - centre) / scale`` (see `fit_baseline`).
    name : str
        Label for tables (e.g. the input set's name).
    info : dict
        Provenance: training stars per target, fit time, xgboost version.
    """

    features: tuple
    targets: tuple
    boosters: dict
    hyperparameters: dict
    validation: dict
    target_scaling: dict
    name: str = "baseline"
    info: dict = field(default_factory=dict)

    def request(self, batch, names, batch_size=None):
        """Predict ``names`` for ``batch`` with the interface of the trained model.

        Parameters
        ----------
        batch : `~giantfm.tokens.TokenBatch`
        names : sequence of str
            Target tokens, each one of `targets`.
        batch_size : int, optional
            Ignored (XGBoost predicts the whole batch at once); accepted so that
            the baseline and the transformer are interchangeable in evaluation.

        Returns
        -------
        mean, std : ndarray (n_stars, len(names))
            Token-scale predictions; ``std`` is all NaN (trees give no uncertainty).
        """
        mean = predict_baseline(self, batch, names)
        return mean, np.full_like(mean, np.nan)

    def save(self, path):
        """Write the baseline to the folder ``path``: one XGBoost JSON per target
        plus ``baseline.json``; each file is written atomically."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for target, booster in self.boosters.items():
            atomic_write(path / f"{target}.json", booster.save_model)
        meta = {"name": self.name, "features": list(self.features),
                "targets": list(self.targets), "hyperparameters": self.hyperparameters,
                "validation": self.validation, "target_scaling": self.target_scaling,
                "info": self.info,
                "vocab_version": vocab.VOCAB_VERSION}
        text = json.dumps(meta, indent=1)
        atomic_write(path / _META_FILE, lambda tmp: Path(tmp).write_text(text))


def load_baseline(path):
    """Read a baseline written by `BaselineModel.save`.

    Parameters
    ----------
    path : str or path-like
        The folder holding ``baseline.json`` and the per-target JSON files.

    Returns
    -------
    `BaselineModel`
    """
    xgboost = require("xgboost", "loading an XGBoost baseline")

    path = Path(path)
    meta_file = path / _META_FILE
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not a saved baseline: it has no {_META_FILE}")
    meta = json.loads(meta_file.read_text())
    if meta.get("vocab_version") != vocab.VOCAB_VERSION:
        raise ValueError(f"baseline {path} was built with vocabulary version "
                         f"{meta.get('vocab_version')}, this giantfm uses {vocab.VOCAB_VERSION}")
    boosters = {}
    for target in meta["targets"]:
        booster = xgboost.Booster()
        booster.load_model(path / f"{target}.json")
        booster.set_param({"nthread": meta["info"].get("nthread", 2)})
        boosters[target] = booster
    scaling = {target: tuple(meta["target_scaling"][target]) for target in meta["targets"]}
    return BaselineModel(tuple(meta["features"]), tuple(meta["targets"]), boosters,
                         meta["hyperparameters"], meta["validation"], scaling, meta["name"],
                         meta["info"])


def _target_values(batch, name, vocabulary):
    value = batch.values_of([name], vocabulary)[0][:, 0]
    value[batch.reason != ""] = np.nan
    return value


def _grid_points(grid):
    grid = dict(DEFAULT_GRID if grid is None else grid)
    unknown = set(grid) - set(DEFAULT_GRID)
    if unknown:
        raise InvalidNameError(f"unknown hyperparameter(s) {sorted(unknown)} in the grid; "
                               f"tunable ones are {', '.join(DEFAULT_GRID)}")
    for key, default in DEFAULT_GRID.items():
        values = grid.get(key, default)
        grid[key] = (values,) if np.isscalar(values) else tuple(values)
        if not grid[key]:
            raise ValueError(f"hyperparameter grid entry {key!r} is empty")
    keys = tuple(DEFAULT_GRID)
    return [dict(zip(keys, point)) for point in product(*(grid[k] for k in keys))]


def fit_baseline(train, val, targets=vocab.VALUE_LABEL_NAMES, features="xp30_colours", *,
                 grid=None, nthread=2, seed=0, name=None, progress=None,
                 vocabulary=vocab.VOCABULARY):
    """Fit and tune one XGBoost regressor per target token.

    Parameters
    ----------
    train, val : `~giantfm.tokens.TokenBatch`
        Training and validation stars (the transformer's ``split`` 0 and 1).
        Targets are read from the stars' own tokens; only the ``features``
        tokens are used as inputs, so label tokens never leak into the features.
    targets : sequence of str, optional
        Token names to predict (default: the six labels; age in log10 Gyr).
    features : str or sequence of str, optional
        A key of `INPUT_SETS` or a list of token names.
    grid : dict, optional
        ``{"max_depth": [...], "learning_rate": [...], "n_estimators": [...]}``;
        missing keys take `DEFAULT_GRID`'s values.
    nthread : int, optional
        XGBoost threads (2 suits the development machines). On a machine
        shared with other busy processes, set ``OMP_WAIT_POLICY=PASSIVE``
        before xgboost is imported (the command line does) or use 1: busy-waiting
        OpenMP threads made 2-thread fits tens of times slower there.
    seed : int, optional
        XGBoost's random seed (row/column subsampling).
    name : str, optional
        Name of the baseline in tables; default the input set's name.
    progress : callable, optional
        Called with one line of text after each target is fitted (e.g. ``print``).
    vocabulary : `giantfm.vocab.Vocabulary`, optional
        The one the batches' ids index: giantfm's, or one extended with labels of
        one's own (targets may then be those, as in the fine-tuning experiment of
        `giantfm.train.evaluation.finetune_evidence`).

    Returns
    -------
    `BaselineModel`

    Raises
    ------
    ValueError
        When a target or a split has no usable stars.
    """
    xgboost = require("xgboost", "fitting the XGBoost baseline")

    feature_names = input_names(features)
    targets = tuple(targets)
    overlap = set(targets) & set(feature_names)
    if overlap:
        raise ValueError(f"target(s) {sorted(overlap)} are also input features")
    vocabulary.token_ids(targets)
    points = _grid_points(grid)
    x_train = feature_matrix(train, feature_names)
    x_val = feature_matrix(val, feature_names)
    has_train = np.isfinite(x_train).any(axis=1)
    has_val = np.isfinite(x_val).any(axis=1)

    boosters, hyper, scores, n_train, scaling = {}, {}, {}, {}, {}
    start = time.perf_counter()
    for target in targets:
        y_train = _target_values(train, target, vocabulary)
        y_val = _target_values(val, target, vocabulary)
        fit_rows = has_train & np.isfinite(y_train)
        val_rows = has_val & np.isfinite(y_val)
        if fit_rows.sum() < 2 or val_rows.sum() < 2:
            raise ValueError(f"target {target!r} has {fit_rows.sum()} training and "
                             f"{val_rows.sum()} validation stars with both the target and "
                             "at least one input token; need at least 2 of each")
        # Standardised targets: XGBoost ignores splits whose loss reduction is below a
        # fixed 1e-6, which stopped trees for coefficients of order 1e-5 after a few rounds.
        centre, scale = _robust_scaling(y_train[fit_rows])
        scaling[target] = (centre, scale)
        d_train = xgboost.QuantileDMatrix(x_train[fit_rows], (y_train[fit_rows] - centre) / scale)
        d_val = xgboost.QuantileDMatrix(x_val[val_rows], (y_val[val_rows] - centre) / scale,
                                        ref=d_train)
        best = None
        for point in points:
            params = dict(_FIXED_PARAMS, max_depth=point["max_depth"],
                          learning_rate=point["learning_rate"], nthread=nthread, seed=seed)
            booster = xgboost.train(params, d_train, num_boost_round=point["n_estimators"],
                                    evals=[(d_val, "val")],
                                    early_stopping_rounds=_EARLY_STOPPING_ROUNDS,
                                    verbose_eval=False)
            n_trees = booster.best_iteration + 1
            booster = booster[:n_trees]
            residual = booster.predict(d_val) * scale + centre - y_val[val_rows]
            sigma = mad_std(residual)
            if best is None or sigma < best[0]:
                best = (sigma, float(np.median(residual)), booster,
                        dict(max_depth=point["max_depth"],
                             learning_rate=point["learning_rate"], n_trees=n_trees))
        sigma, bias, boosters[target], hyper[target] = best
        scores[target] = {"sigma": sigma, "bias": bias, "n": int(val_rows.sum())}
        n_train[target] = int(fit_rows.sum())
        if progress is not None:
            progress(f"{target}: {hyper[target]}, validation sigma {sigma:.4g} "
                     f"({time.perf_counter() - start:.0f} s so far)")
    info = {"n_train": n_train, "fit_seconds": round(time.perf_counter() - start, 1),
            "nthread": nthread, "seed": seed, "grid": [dict(p) for p in points],
            "xgboost_version": xgboost.__version__}
    if name is None:
        name = features if isinstance(features, str) else "custom"
    return BaselineModel(feature_names, targets, boosters, hyper, scores, scaling, name, info)


def _robust_scaling(values):
    """Median and MAD-std of ``values`` (the standard deviation, then 1, if that is 0)."""
    scale = mad_std(values)
    if not scale > 0:
        scale = float(np.std(values))
    return float(np.median(values)), scale if scale > 0 else 1.0


def predict_baseline(baseline, batch, names=None):
    """Predict target tokens with a fitted baseline.

    Parameters
    ----------
    baseline : `BaselineModel`
    batch : `~giantfm.tokens.TokenBatch`
    names : sequence of str, optional
        Targets to predict, each one of ``baseline.targets`` (default all).

    Returns
    -------
    ndarray (n_stars, len(names)), float64
        Token-scale predictions; NaN for stars that have none of the input tokens
        or whose ``reason`` marks them unusable.
    """
    xgboost = require("xgboost", "predicting with the XGBoost baseline")

    names = baseline.targets if names is None else tuple(names)
    missing = [n for n in names if n not in baseline.boosters]
    if missing:
        raise InvalidNameError(f"the baseline {baseline.name!r} cannot predict {missing}; it "
                               f"was fitted for {', '.join(baseline.targets)}")
    x = feature_matrix(batch, baseline.features)
    usable = np.isfinite(x).any(axis=1)
    out = np.full((len(batch), len(names)), np.nan)
    if usable.any():
        matrix = xgboost.DMatrix(x[usable])
        for k, target in enumerate(names):
            centre, scale = baseline.target_scaling[target]
            out[usable, k] = baseline.boosters[target].predict(matrix) * scale + centre
    return out


def main(argv=None):
    """Command line: fit a baseline on a dataset file's train/validation splits and save it.

    ``giantfm baseline --dataset FILE --out DIR [--features SET]
    [--targets labels|generation] [--grid JSON] [--nthread N] [--seed N]``
    """
    import argparse

    # OpenMP threads busy-wait by default; on a shared, oversubscribed machine that made
    # 2-thread XGBoost fits tens of times slower than 1 thread (measured). Must be set
    # before xgboost loads its OpenMP runtime, hence here and not in library code.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = argparse.ArgumentParser(prog="giantfm baseline",
                                     description=main.__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="dataset HDF5 file")
    parser.add_argument("--out", required=True, help="folder to write the baseline to")
    parser.add_argument("--features", default="xp30_colours",
                        help=f"input set: one of {', '.join(INPUT_SETS)}")
    parser.add_argument("--targets", default="labels", choices=("labels", "generation"),
                        help="the six labels, or the 110 XP coefficients (generation)")
    parser.add_argument("--grid", type=json.loads, default=None,
                        help="hyperparameter grid as JSON, e.g. '{\"max_depth\": [4, 6]}' "
                        "(default: DEFAULT_GRID for the labels, one point for generation)")
    parser.add_argument("--augment", type=int, default=0, metavar="N",
                        help="also fit on N faint copies of each training XP star, and "
                             "validate on the validation stars plus one faint copy each "
                             "(giantfm.train.dataset.augment.with_faint_copies): the baseline for "
                             "accuracy against magnitude")
    parser.add_argument("--nthread", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data = load_dataset(args.dataset)
    targets = vocab.VALUE_LABEL_NAMES if args.targets == "labels" else GENERATION_TARGETS
    # 110 generation targets: one grid point keeps the fit to ~the label baseline's cost.
    grid = args.grid
    if grid is None and args.targets == "generation":
        grid = {"max_depth": (6,), "learning_rate": (0.1,), "n_estimators": (1000,)}
    train, val = data["train"], data["val"]
    if args.augment:
        from ..dataset.augment import with_faint_copies
        train = with_faint_copies(train, data["inputs"]["train"], args.augment, seed=args.seed)
        val = with_faint_copies(val, data["inputs"]["val"], 1, seed=args.seed + 1)
    baseline = fit_baseline(train, val, targets, args.features, grid=grid,
                            nthread=args.nthread, seed=args.seed,
                            name=f"{args.features}_faint{args.augment}" if args.augment else None,
                            progress=functools.partial(print, flush=True))
    # Which build of the dataset this is: evaluation warns when it scores another one.
    baseline.info.update(dataset=str(args.dataset), dataset_created=data["attrs"].get("created"),
                         faint_copies=args.augment)
    baseline.save(args.out)
    print(f"saved to {args.out} after {baseline.info['fit_seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
