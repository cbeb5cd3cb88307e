"""Evaluation of the trained model and the baseline on the fixed test split.

Statistics follow the method papers: the scatter of residuals
``prediction - truth`` is their MAD-std (``scipy.stats.median_abs_deviation``
with ``scale="normal"``), the bias their median, and the 16th/84th percentiles
describe the tails. Uncertainty calibration uses
``z = (prediction - truth) / sqrt(sigma_pred**2 + sigma_truth**2)``, whose MAD-std
should be ~1.

The input experiments of Leung & Bovy (2024) and Zhang, Bu et al. (2026), each a
function of the test stars' tokens (`experiment_inputs`):

=============== ===============================================================
name            inputs
=============== ===============================================================
xp30_colours    (a) baseline and (b) model: BP/RP[0-29] + colours
xp_colours      all 110 BP/RP coefficients + colours (what ``predict`` sees)
xp5_colours     (c) BP/RP[0-4] + colours
random64        (d) 64 of the star's BP/RP coefficients drawn at random (seeded), + colours
xp25_54         (e) BP/RP[25-54] only: little information, so the predicted
                uncertainties must grow compared with (b)
identity        (f) the star's own label tokens, requested back
=============== ===============================================================

Mass and age are scored against the label model's values (the dataset's
``labels/mass`` and ``labels/age``) and age also against the independent [C/N]
ages (``labels/age_cn``) where a star has one. Ages are scored in Gyr; their
z-scores are computed in the token scale (log10 Gyr), where the model's Gaussian
lives. Every statistic is given for the giants (the headline) and for all test
stars.

Run ``giantfm evaluate [--model DIR] --dataset FILE [--baseline DIR ...] --out DIR``
(which calls `main`).
"""
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import plotting, vocab
from ...exceptions import GiantfmWarning
from ...tokens import TokenBatch, from_token_scale, to_token_scale
from ...utils import atomic_write
from ...utils._json import json_safe
from .baseline import load_baseline
from ..dataset.datafile import SPLITS, float_labels, load_dataset
from .scoring import (EXPERIMENTS, NO_INPUTS, REFERENCES, calibration, check_experiment,
                      experiment_inputs, metrics, reference_error, request_answers)

__all__ = ["EXPERIMENTS", "REFERENCES", "NO_INPUTS", "DatasetSplit", "load_split",
           "load_baselines", "metrics", "calibration", "experiment_inputs", "evaluate",
           "save_figure", "main"]


@dataclass
class DatasetSplit:
    """One split of a dataset file.

    Attributes
    ----------
    batch : `~giantfm.tokens.TokenBatch`
        The stars' tokens (inputs and label tokens as stored).
    labels : dict
        The file's ``labels/`` arrays as float64, in vocabulary units (age in Gyr).
    giant : ndarray of bool
        The dataset's giant selection.
    apogee_id : ndarray of str
    attrs : dict
        The file's attributes (build time ``created``, cuts, counts, ...).
    """

    batch: TokenBatch
    labels: dict
    giant: np.ndarray
    apogee_id: np.ndarray
    attrs: dict


def load_split(path, split):
    """Read one split of a giantfm dataset file.

    Parameters
    ----------
    path : str or path-like
        The dataset file written by `giantfm.train.dataset.build` (read with
        `giantfm.train.dataset.datafile.load_dataset`, which refuses other format or
        vocabulary versions).
    split : {'train', 'val', 'test'}
        Which stars.

    Returns
    -------
    `DatasetSplit`
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    data = load_dataset(path)
    per_star = data["labels"][split]
    return DatasetSplit(data[split], float_labels(per_star),
                        np.asarray(per_star["giant"], dtype=bool),
                        np.asarray(per_star["apogee_id"]).astype(str), data["attrs"])


def _score(system, experiment, names, mean, std, test):
    """Metric rows of one run (token-scale mean/std of ``names`` for the test stars)."""
    rows = []
    samples = {"giants": test.giant, "all": np.ones(len(test.giant), dtype=bool)}
    for k, name in enumerate(names):
        pred, pred_err = from_token_scale(name, mean[:, k], std[:, k])
        for reference, column in REFERENCES.get(name, ()):
            truth = test.labels.get(column)
            if truth is None:
                continue
            truth_err = reference_error(reference, test.labels, column, truth)
            truth_tok, truth_err_tok = to_token_scale(name, truth, truth_err)
            for sample, select in samples.items():
                m = metrics(pred[select], truth[select])
                c = calibration(mean[select, k], std[select, k], truth_tok[select],
                                truth_err_tok[select])
                used = select & np.isfinite(pred) & np.isfinite(truth)
                err = pred_err[used]
                err = err[np.isfinite(err)]
                rows.append({"system": system, "experiment": experiment, "label": name,
                             "unit": str(vocab.token_unit(name)),
                             "reference": reference, "sample": sample, **m,
                             "z_n": c["n"], "z_sigma": c["sigma"], "z_median": c["median"],
                             "pred_err_median": float(np.median(err)) if err.size
                             else math.nan})
    return rows


def _as_baselines(baseline):
    if baseline is None:
        return []
    if isinstance(baseline, (list, tuple)):
        return list(baseline)
    return [baseline]


def evaluate(model, dataset_path, baseline=None, out_dir=None, *, experiments=None, seed=0,
             batch_size=None, figures=True, figure_experiment="xp_colours"):
    """Score the model (and baselines) on the dataset's test split.

    Parameters
    ----------
    model : object or None
        Anything with ``request(batch, names, batch_size=None) -> (mean, std)``
        returning token-scale arrays of shape ``(n_stars, len(names))``, such as
        `giantfm.model.TrainedModel`; None scores the baselines alone.
    dataset_path : str or path-like
        The dataset file (see `load_split`).
    baseline : `~giantfm.train.evaluation.baseline.BaselineModel` or list of them, optional
        Each is scored on its own input set, under the experiment name
        ``baseline.name``, with system name ``"xgboost"``.
    out_dir : str or path-like, optional
        Where to write ``metrics.ecsv``, ``metrics.json`` and the figures.
    experiments : sequence of str, optional
        Keys of `EXPERIMENTS` to run with the model (default all; none
        without a model).
    seed : int, optional
        Seed of the ``random64`` experiment.
    batch_size : int, optional
        Passed to ``model.request``.
    figures : bool, optional
        Draw the figures into ``out_dir`` (needs matplotlib): ``one_to_one.png``,
        ``kiel.png`` (coloured by predicted mass), ``age_mass.png`` and
        ``calibration.png`` (z histograms against the unit Gaussian).
    figure_experiment : str, optional
        The model run the figures show (default the full XP + colour inputs;
        the first experiment run when that one is not; the first baseline
        predicting all six labels when there is no model).

    Returns
    -------
    `~astropy.table.Table`
        One row per system x experiment x label x reference x sample with
        ``n, sigma, bias, p16, p84`` (physical units, ``unit`` column),
        ``z_n, z_sigma, z_median`` (calibration; NaN for the baseline, which has
        no uncertainties) and ``pred_err_median``. ``meta`` records the dataset,
        the seed, the experiments and the ratio of median predicted uncertainties
        of experiment (e) to (b) per label (``uncertainty_growth``).
    """
    from astropy.table import Table

    if experiments is None:
        experiments = () if model is None else tuple(EXPERIMENTS)
    experiments = tuple(experiments)
    if model is None and experiments:
        raise ValueError(f"experiments {experiments} need a model, got model=None")
    for name in experiments:
        check_experiment(name)
    test = load_split(dataset_path, "test")
    if len(test.batch) == 0:
        raise ValueError(f"{dataset_path} has no test stars (split == 2)")
    # the labels scored against references (the evolutionary state is scored apart)
    names = list(vocab.VALUE_LABEL_NAMES)
    rows, runs = [], {}
    for experiment in experiments:
        inputs = experiment_inputs(test.batch, experiment, seed=seed)
        runs[experiment] = request_answers(model, inputs, names, batch_size)
        rows += _score("model", experiment, names, *runs[experiment], test)
    no_labels = test.batch.without(vocab.LABEL_NAMES)
    figure_run = None
    if runs:
        shown = figure_experiment if figure_experiment in runs else experiments[0]
        figure_run = (*runs[shown], f"model on {shown}")
    created = test.attrs.get("created")
    for base in _as_baselines(baseline):
        fitted_on = base.info.get("dataset_created")
        if fitted_on is not None and fitted_on != created:
            warnings.warn(f"baseline {base.name!r} was fitted on the dataset built {fitted_on}; "
                          f"{dataset_path} was built {created}: refit it for a fair comparison",
                          GiantfmWarning)
        targets = [n for n in names if n in base.targets]
        mean, std = request_answers(base, no_labels, targets, batch_size)
        rows += _score("xgboost", base.name, targets, mean, std, test)
        if figure_run is None and targets == names:
            figure_run = (mean, std, f"XGBoost on {base.name}")

    if not rows:
        raise ValueError("nothing to evaluate: no experiments and no baseline")
    table = Table(rows=rows, names=list(rows[0]))
    table.meta.update({
        "dataset": str(dataset_path), "dataset_created": created, "n_test": len(test.batch),
        "n_test_giants": int(test.giant.sum()), "seed": seed,
        "experiments": {e: EXPERIMENTS[e] for e in experiments},
        "sigma": "MAD-std of prediction - reference (scipy median_abs_deviation, "
                 "scale='normal')",
        "z": "(prediction - reference) / hypot(predicted std, reference error), token scale",
    })
    if "xp25_54" in runs and "xp30_colours" in runs:
        table.meta["uncertainty_growth"] = {
            name: _median_ratio(runs["xp25_54"][1][test.giant, k],
                                runs["xp30_colours"][1][test.giant, k])
            for k, name in enumerate(names)}
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_table(table, out_dir)
        if figures and figure_run is not None:
            _figures(out_dir, test, names, *figure_run)
    return table


def _median_ratio(num, den):
    num, den = num[np.isfinite(num)], den[np.isfinite(den)]
    if not num.size or not den.size:
        return math.nan
    return float(np.median(num) / np.median(den))


def _write_table(table, out_dir):
    atomic_write(out_dir / "metrics.ecsv",
                 lambda tmp: table.write(tmp, format="ascii.ecsv", overwrite=True))
    document = {"meta": json_safe(dict(table.meta)),
                "rows": [json_safe(dict(zip(table.colnames, row.as_void().tolist())))
                         for row in table]}

    def write_json(tmp):
        with open(tmp, "w") as fh:
            json.dump(document, fh, indent=1)
    atomic_write(out_dir / "metrics.json", write_json)


#: How the figures name each reference of `REFERENCES`.
_REFERENCE_TEXT = {"apogee": "APOGEE DR17", "label_model": "label-model", "cn": "[C/N]"}


def _figures(out_dir, test, names, mean, std, title):
    """One-to-one/residual panels, Kiel diagram, age-mass plane and, for runs with
    uncertainties, z histograms (giants), drawn with `giantfm.plotting` on
    pyplot-free Figures (no global state, Agg canvas)."""
    from matplotlib.figure import Figure

    giant = test.giant
    title = f"test giants, {title}"
    pred, truth, z = {}, {}, {}
    for k, name in enumerate(names):
        pred[name] = from_token_scale(name, mean[giant, k])[0]
        reference, column = REFERENCES[name][0]
        missing = np.full(giant.size, np.nan)
        truth[name] = test.labels.get(column, missing)[giant]
        truth_tok, truth_err_tok = to_token_scale(
            name, truth[name],
            reference_error(reference, test.labels, column, missing)[giant])
        z[name] = calibration(mean[giant, k], std[giant, k], truth_tok, truth_err_tok)["z"]

    ncol = 3
    nrow = -(-len(names) // ncol)
    fig = Figure(figsize=(4.5 * ncol, 5.0 * nrow))
    for k, name in enumerate(names):
        ax = fig.add_subplot(nrow, ncol, k + 1)
        # plain numbers in the vocabulary units: axis_label gives symbol and unit
        _, ax_resid = plotting.one_to_one(truth[name], pred[name], ax, label=name, s=2,
                                          alpha=0.4, rasterized=True)
        ax_resid.set_xlabel(f"{_REFERENCE_TEXT.get(REFERENCES[name][0][0], 'reference')} "
                            + plotting.axis_label(name))
    fig.suptitle(title)
    fig.subplots_adjust(wspace=0.45, hspace=0.35)
    save_figure(fig, out_dir / "one_to_one.png")

    fig = Figure(figsize=(5.5, 4.5), layout="constrained")
    plotting.kiel_diagram(pred["teff"], pred["logg"], color=pred["mass"], ax=fig.subplots(),
                          color_label="predicted " + plotting.axis_label("mass"), s=3,
                          rasterized=True).set_title(title)
    save_figure(fig, out_dir / "kiel.png")

    fig = Figure(figsize=(5.5, 4.5), layout="constrained")
    plotting.mass_age(pred["mass"], pred["age"], fig.subplots(), color=pred["m_h"],
                      color_label="predicted " + plotting.axis_label("m_h"), cmap="coolwarm", s=3,
                      rasterized=True).set_title(title)
    save_figure(fig, out_dir / "age_mass.png")

    if not np.isfinite(std).any():
        return  # no uncertainties (the XGBoost baseline): no calibration figure
    fig = Figure(figsize=(4.0 * ncol, 3.5 * nrow), layout="constrained")
    for k, name in enumerate(names):
        plotting.calibration_histogram(z[name], fig.add_subplot(nrow, ncol, k + 1),
                                       label=name)
    fig.suptitle(title)
    save_figure(fig, out_dir / "calibration.png")


def save_figure(fig, path):
    """Write a matplotlib figure to ``path`` as PNG (120 dpi), atomically."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))


def load_baselines(paths):
    """The saved baselines (`giantfm.train.evaluation.baseline.load_baseline`) in ``paths``.

    Each path is a baseline folder or a folder holding several (one level down).
    """
    baselines = []
    for path in map(Path, paths):
        if (path / "baseline.json").is_file():
            baselines.append(load_baseline(path))
            continue
        found = sorted(p.parent for p in path.glob("*/baseline.json"))
        if not found:
            raise FileNotFoundError(f"no saved baseline in {path} or its sub-folders")
        baselines += [load_baseline(p) for p in found]
    return baselines


def main(argv=None):
    """Command line: evaluate a saved model (and baselines) on a dataset's test split.

    ``giantfm evaluate [--model DIR] --dataset FILE [--baseline DIR ...] --out DIR``
    """
    import argparse

    parser = argparse.ArgumentParser(prog="giantfm evaluate",
                                     description=main.__doc__.splitlines()[0])
    parser.add_argument("--model", default=None,
                        help="saved model folder or file (without it: baselines only)")
    parser.add_argument("--dataset", required=True, help="dataset HDF5 file")
    parser.add_argument("--baseline", nargs="*", default=[],
                        help="saved baseline folder(s), or a folder of them")
    parser.add_argument("--out", required=True, help="folder for metrics and figures")
    parser.add_argument("--experiments", nargs="*", default=None, choices=list(EXPERIMENTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--magnitudes", default=None, metavar="LEVELS",
                        help="also score the test split moved to these G levels with the XP "
                             "noise model, e.g. native,14,15,16,17,17.65 "
                             "(giantfm.train.evaluation.magnitudes): magnitudes.ecsv and "
                             "accuracy_vs_magnitude.png in --out")
    parser.add_argument("--synthetic-photometry", action="store_true",
                        help="with --magnitudes: also score the model with the stars' G, BP "
                             "and RP synthesised from their coefficients, as Gaia's XP files "
                             "come without photometry")
    parser.add_argument("--states", action="store_true",
                        help="with --magnitudes: also score the model's p_rc against the state "
                             "model's state (giantfm.train.evaluation.states): states.ecsv, "
                             "states_by_threshold.ecsv and their figures")
    parser.add_argument("--seismic", action="store_true",
                        help="also score the model's mass, age and p_rc against the XP "
                             "library's seismic giants (giantfm.train.evaluation.seismic): "
                             "seismic.ecsv, mass_luminosity.ecsv and their figures")
    parser.add_argument("--seismic-only", action="store_true",
                        help="score only against the seismic giants (no label metrics)")
    parser.add_argument("--truncate", choices=("model", "yes", "no"), default="model",
                        help="with --magnitudes: leave out the copies' coefficients beyond "
                             "n_relevant_bases (yes), keep them (no), or as the model's "
                             "predict does (model, default)")
    args = parser.parse_args(argv)
    levels = None
    if args.magnitudes is not None:
        from .magnitudes import parse_levels
        try:
            levels = parse_levels(args.magnitudes)
        except ValueError as err:
            parser.error(f"--magnitudes: {err}")
    if args.states and (levels is None or args.model is None):
        parser.error("--states scores a model's p_rc by magnitude: give --model and "
                     "--magnitudes")

    if (args.seismic or args.seismic_only) and args.model is None:
        parser.error("--seismic scores a model: give --model")
    model = None
    if args.model is not None:
        from ...model import load_model
        model = load_model(args.model, device=args.device)
    if args.seismic or args.seismic_only:
        _evaluate_seismic(model, args, Path(args.out))
        if args.seismic_only:
            return 0
    baselines = load_baselines(args.baseline)
    table = evaluate(model, args.dataset, baselines, args.out,
                     experiments=args.experiments, seed=args.seed,
                     batch_size=args.batch_size, figures=not args.no_figures)
    headline = table[(table["sample"] == "giants")]
    headline["system", "experiment", "label", "reference", "n", "sigma", "bias",
             "z_sigma"].pprint(max_lines=-1, max_width=-1)
    if levels is not None:
        from .magnitudes import evaluate_by_magnitude, magnitude_figure
        by_level = evaluate_by_magnitude(model, args.dataset, levels, baselines, seed=args.seed,
                                         batch_size=args.batch_size,
                                         truncate={"model": None, "yes": True,
                                                   "no": False}[args.truncate],
                                         synthetic_photometry=args.synthetic_photometry)
        out = Path(args.out)
        atomic_write(out / "magnitudes.ecsv",
                     lambda tmp: by_level.write(tmp, format="ascii.ecsv", overwrite=True))
        if not args.no_figures:
            magnitude_figure(by_level, out / "accuracy_vs_magnitude.png")
        by_level[by_level["sample"] == "giants"]["system", "level", "label", "n", "coverage",
                                                 "sigma", "bias", "z_sigma"].pprint(
            max_lines=-1, max_width=-1)
        if args.states:
            _evaluate_states(model, args, levels, out)
    return 0


def _evaluate_seismic(model, args, out):
    """``--seismic``: the seismic scores and the mass-luminosity relation, with figures."""
    from .seismic import evaluate_seismic, mass_luminosity, mass_luminosity_figure, seismic_figure

    out.mkdir(parents=True, exist_ok=True)
    from ...labelmodel import LabelModel
    from ..dataset.datafile import load_dataset
    from ..seismic.fit import calibration_from_shared
    from .seismic import ambiguous_states

    data = load_dataset(args.dataset)
    scores, answers = evaluate_seismic(model, data, batch_size=args.batch_size)
    relation, points = mass_luminosity(answers)
    # the state-blind label model of the same calibration set, for the ambiguous states
    calibration = calibration_from_shared(say=lambda *a: None)
    blind = LabelModel().fit(calibration, calibration["mass"], calibration["log_age"])
    bands = ambiguous_states(model, data, blind, seed=args.seed, batch_size=args.batch_size)
    for table, name in ((scores, "seismic.ecsv"), (relation, "mass_luminosity.ecsv"),
                        (bands, "seismic_ambiguous.ecsv")):
        atomic_write(out / name, lambda tmp: table.write(tmp, format="ascii.ecsv",
                                                         overwrite=True))
    if not args.no_figures:
        seismic_figure(answers, out / "seismic.png", role="test")
        seismic_figure(answers, out / "seismic_validation.png", role="validation")
        mass_luminosity_figure(points, relation, out / "mass_luminosity.png")
    shown = scores.copy()
    for name in shown.colnames:
        if shown[name].dtype.kind == "f":
            shown[name].format = ".3g"
    shown.pprint(max_lines=-1, max_width=-1)
    relation.pprint(max_lines=-1, max_width=-1)
    bands.pprint(max_lines=-1, max_width=-1)


def _evaluate_states(model, args, levels, out):
    """``--states``: the state scores, their tables and figures in ``out``."""
    from .states import evaluate_states, state_figures

    scores, by_threshold, answers = evaluate_states(
        model, args.dataset, levels, seed=args.seed, batch_size=args.batch_size,
        truncate={"model": None, "yes": True, "no": False}[args.truncate])
    for table, name in ((scores, "states.ecsv"), (by_threshold, "states_by_threshold.ecsv")):
        atomic_write(out / name, lambda tmp: table.write(tmp, format="ascii.ecsv",
                                                         overwrite=True))
    if not args.no_figures:
        state_figures(answers, out)
    scores.pprint(max_lines=-1, max_width=-1)


if __name__ == "__main__":
    raise SystemExit(main())
