"""Which giants burn helium: the network's ``p_rc`` scored on the test split by magnitude.

The test split has no seismic evolutionary states (the overlap is kept for
acceptance checks), so the reference state of a test giant is the state model's
(`giantfm.labelmodel.LabelModel.state_probability`, cross-validated at 96 %
accuracy against seismic states) on its APOGEE labels, as the dataset stores it
(``labels/p_rc``): red clump (RC) where that probability is at least
`giantfm.results.EVSTATE_THRESHOLD`. The stars are those `giantfm.predict`
answers a state for: the test giants inside the label model's domain, and at
each level the copies of `giantfm.train.evaluation.magnitudes.degraded_inputs`.

Three systems are scored: ``model``, ``p_rc`` as `giantfm.predict` answers
it (the network's, combined with the state model on the network's labels by
the weight the model records, `giantfm.labelmodel.combine_probabilities`;
masked where the predicted labels leave the label domain); ``network``, the
network's own ``p_rc`` alone; and ``state model on predicted labels``, the
state model applied to the network's predicted Teff, log g, [M/H] and
[alpha/M] alone -- what one could do without a state token.
"""
import math

import numpy as np

from ... import vocab
from ...labelmodel import FEATURES, load_label_model
from ...prediction import finish_answers
from ...results import EVSTATE_THRESHOLD, inside_label_domain
from ...tokens import from_token_scale
from ...utils import atomic_write
from ..dataset.datafile import float_labels, load_dataset
from ..seismic.fit import state_metrics, state_reliability
from .magnitudes import DEFAULT_LEVELS, degraded_inputs

__all__ = ["STATE_SYSTEMS", "DEFAULT_THRESHOLDS", "selection", "evaluate_states",
           "state_figures"]

#: The systems of `evaluate_states`.
STATE_SYSTEMS = ("model", "network", "state model on predicted labels")
#: The ``p_rc`` thresholds of the purity-completeness table.
DEFAULT_THRESHOLDS = tuple(np.round(np.arange(0.1, 0.95, 0.1), 2))


def selection(p, is_rc, threshold):
    """Purity and completeness of the stars with ``p >= threshold`` as a red-clump sample.

    Returns
    -------
    dict
        ``selected`` (count), ``purity`` (the fraction of them that are RC; NaN
        when none is selected) and ``completeness`` (the fraction of the RC
        stars selected).
    """
    p, is_rc = np.asarray(p, dtype=float), np.asarray(is_rc, dtype=bool)
    chosen = p >= threshold
    n_rc = int(is_rc.sum())
    return {"selected": int(chosen.sum()),
            "purity": float(is_rc[chosen].mean()) if chosen.any() else math.nan,
            "completeness": float((chosen & is_rc).sum() / n_rc) if n_rc else math.nan}


def evaluate_states(model, dataset_path, levels=DEFAULT_LEVELS, *, seed=0, batch_size=None,
                    truncate=None, thresholds=DEFAULT_THRESHOLDS, label_model=None):
    """Scores of the network's red-clump probability on the test split, per magnitude level.

    Parameters
    ----------
    model : `giantfm.model.TrainedModel`
        A model that knows ``p_rc``.
    dataset_path : path-like
        A dataset with ``labels/p_rc`` and raw XP inputs (`giantfm.train.dataset.build`).
    levels, seed, batch_size, truncate
        As in `giantfm.train.evaluation.magnitudes.evaluate_by_magnitude`.
    thresholds : sequence of float
        The ``p_rc`` thresholds of the purity-completeness table.
    label_model : `giantfm.labelmodel.LabelModel`, optional
        The state model of the second system; default the dataset's label model.

    Returns
    -------
    scores : `~astropy.table.Table`
        Per system and level: ``n``, ``n_rc``, ``coverage`` (the fraction of
        the reference giants answered), the `state_metrics` of
        `giantfm.train.seismic.fit` (``accuracy``, ``roc_auc``, ``log_loss``,
        ``brier``, ``ece``) and ``purity``, ``completeness`` at
        `~giantfm.results.EVSTATE_THRESHOLD`.
    by_threshold : `~astropy.table.Table`
        Per system, level and threshold: ``selected``, ``purity``,
        ``completeness``.
    answers : dict
        Per level, the arrays behind the figures: ``p`` (the model's), ``is_rc``,
        ``teff``, ``logg`` (predicted), for the answered reference giants.
    """
    from astropy.table import Table

    if not model.knows(vocab.P_RC):
        raise ValueError("this model does not know p_rc (it was made before the state "
                         "token existed): nothing to score")
    data = load_dataset(dataset_path)
    labels = float_labels(data["labels"]["test"])
    if vocab.P_RC not in labels:
        raise ValueError(f"{dataset_path} has no labels/p_rc: rebuild it with giantfm "
                         "build-dataset")
    if label_model is None:
        from ..dataset.build import label_model_path
        label_model = load_label_model(label_model_path(dataset_path))
    giant = np.asarray(data["labels"]["test"]["giant"], dtype=bool)
    reference = giant & np.isfinite(labels[vocab.P_RC])
    is_rc = labels[vocab.P_RC] >= EVSTATE_THRESHOLD
    domain = model.metadata.label_domain
    if domain is None:
        found = data["attrs"]["label_model"]["validation"]["domain"]
        domain = {f: (lo, hi) for f, lo, hi in zip(found["features"], found["low"], found["high"])}
    truncate = model.metadata.truncation(truncate)
    names = list(vocab.VALUE_LABEL_NAMES) + [vocab.P_RC]
    scores, by_threshold, answers = [], [], {}
    for level in levels:
        tokens = degraded_inputs(data["test"], data["inputs"]["test"], level, seed=seed,
                                 truncate=truncate)
        raw, raw_std = model.request(tokens, names, batch_size=batch_size, progress=False)
        mean, _ = finish_answers(model, names, raw, raw_std)
        pred = {name: from_token_scale(name, mean[:, k])[0] for k, name in enumerate(names)}
        answered = reference & inside_label_domain(pred, domain, len(mean)) \
            & np.isfinite(pred[vocab.P_RC])
        features = np.column_stack([pred[name] for name in FEATURES])
        systems = {"model": pred[vocab.P_RC], "network": raw[:, names.index(vocab.P_RC)],
                   "state model on predicted labels": label_model.state_probability(features)}
        for system, p in systems.items():
            use = answered & np.isfinite(p)
            row = {"system": system, "level": str(level), "n": int(use.sum()),
                   "n_rc": int((use & is_rc).sum()),
                   "coverage": float(use.sum() / reference.sum())}
            row.update({k: v for k, v in state_metrics(p[use], is_rc[use]).items() if k != "n"})
            row.update({k: v for k, v in selection(p[use], is_rc[use], EVSTATE_THRESHOLD).items()
                        if k != "selected"})
            scores.append(row)
            by_threshold += [{"system": system, "level": str(level), "threshold": float(t),
                              **selection(p[use], is_rc[use], t)} for t in thresholds]
        answers[str(level)] = {"p": pred[vocab.P_RC][answered], "is_rc": is_rc[answered],
                               "teff": pred["teff"][answered], "logg": pred["logg"][answered]}
    meta = {"dataset": str(dataset_path), "seed": seed, "truncate": bool(truncate),
            "reference": "state model on the APOGEE labels (labels/p_rc >= "
                         f"{EVSTATE_THRESHOLD}: RC)", "model": model.metadata.name}
    scores, by_threshold = Table(rows=scores), Table(rows=by_threshold)
    scores.meta.update(meta)
    by_threshold.meta.update(meta)
    return scores, by_threshold, answers


def state_figures(answers, out_dir, levels=("native", "17.0")):
    """The Kiel diagram of the test giants coloured by ``p_rc`` (``kiel_p_rc.png``) and the
    reliability diagram of ``p_rc`` against the reference state (``p_rc_reliability.png``)
    at ``levels`` (keys of `evaluate_states`' ``answers``); returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...plotting import kiel_diagram, reliability_diagram

    def save(fig, path):
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
        paths.append(path)

    from pathlib import Path

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    levels = [level for level in levels if level in answers]
    paths = []
    fig, axes = plt.subplots(1, len(levels), figsize=(5.2 * len(levels), 4.4), squeeze=False,
                             sharex=True, sharey=True, constrained_layout=True)
    for ax, level in zip(axes[0], levels):
        a = answers[level]
        kiel_diagram(a["teff"], a["logg"], color=a["p"], ax=ax, color_label=vocab.P_RC,
                     colorbar=ax is axes[0][-1], s=3, cmap="coolwarm", vmin=0, vmax=1)
        ax.set_title("test giants, " + ("native" if level == "native" else f"G = {level}"))
    save(fig, out_dir / "kiel_p_rc.png")
    fig, ax = plt.subplots(figsize=(4.8, 4.4), constrained_layout=True)
    for level in levels:
        rel = state_reliability(answers[level]["p"], answers[level]["is_rc"])
        reliability_diagram(rel["p_mean"], rel["fraction"], rel["count"], ax=ax,
                            fraction_err=rel["fraction_err"], annotate=level == "native",
                            label="native" if level == "native" else f"G = {level}", marker="o")
    # each reliability_diagram draws the diagonal: one legend entry per label
    legend = dict(zip(*reversed(ax.get_legend_handles_labels())))
    ax.legend(legend.values(), legend.keys(), loc="upper left")
    ax.set_ylabel("RC fraction (state model on APOGEE labels)")
    save(fig, out_dir / "p_rc_reliability.png")
    return paths
