"""Accuracy against magnitude: the test split moved to fainter G with the XP noise model.

The library's stars are G 5.7-15, most Gaia giants are fainter. At each level
G = L the test stars are replaced by their `giantfm.xp.noise.faint_copy` at G =
max(L, their own G), seeded, with errors, noise, truncation and the 2MASS
detection limit of a real DR3 source of that brightness; ``native`` is the
split as stored (the library's own spectra, all 55 + 55 coefficients). Every
system then sees what `giantfm.predict` sees of an archive table: the XP
coefficient and colour tokens.

Per level, label and system (the model, and XGBoost baselines -- fairest when
fitted on faint copies too, ``giantfm baseline --augment``) the test giants
give ``sigma`` (MAD-std of prediction minus reference), ``bias`` (median), the
calibration ``z_sigma`` (MAD-std of z, see `giantfm.train.evaluation.scoring.calibration`)
and ``coverage``: the fraction of the giants with a reference value that get a
prediction, mass and age being masked, as `giantfm.predict` masks them, where
the predicted Teff, log g, [M/H] and [alpha/M] leave the label domain. Mass
and age are also reported for the red-clump-like and the other giants
separately (``sample`` ``rc`` / ``rgb``: the Teff-log g cut of Bovy et al.
2014, ``1.8 <= logg <= 0.0018 (Teff - Teff_ref) + 2.5`` with ``Teff_ref = 4607
- 382.5 [M/H]`` on the APOGEE labels), and, in a dataset with states, for
the giants of each state by the state model on their APOGEE labels
(``rc_state`` / ``rgb_state``: ``labels/p_rc`` at least
`giantfm.results.EVSTATE_THRESHOLD` or below it; the test split has no
seismic evolutionary states). `giantfm.train.evaluation.states` scores the state itself.
"""
import math

import numpy as np

from ... import vocab
from ...metadata import ModelMetadata
from ...prediction import finish_answers
from ...results import EVSTATE_THRESHOLD, inside_label_domain
from ...tokens import from_token_scale, to_token_scale
from ..dataset.augment import FaintCopies
from ..dataset.datafile import float_labels, load_dataset
from .scoring import (REFERENCES, calibration, experiment_inputs, metrics, reference_error,
                      request_answers)

#: The system name of the model scored with synthesised G, BP and RP.
SYNTHETIC_SYSTEM = "model (synthetic G, BP, RP)"

__all__ = ["DEFAULT_LEVELS", "SYNTHETIC_SYSTEM", "parse_levels", "degraded_inputs",
           "red_clump_like", "evaluate_by_magnitude", "magnitude_figure"]

#: The levels of ``giantfm evaluate --magnitudes`` by default.
DEFAULT_LEVELS = ("native", 14.0, 15.0, 16.0, 17.0, 17.65)


def parse_levels(text):
    """``'native,14,15'`` -> ``('native', 14.0, 15.0)``, refusing anything else by name."""
    levels = []
    for item in str(text).split(","):
        item = item.strip()
        if item == "native":
            levels.append(item)
            continue
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"magnitude level {item!r} is neither 'native' nor a G "
                             "magnitude") from None
        if not 3.0 <= value <= 21.0:
            raise ValueError(f"magnitude level {value:g} lies outside G 3-21")
        levels.append(value)
    if not levels:
        raise ValueError("no magnitude levels given, e.g. native,14,15,16,17,17.65")
    return tuple(levels)


def degraded_inputs(batch, inputs, level, *, seed=0, truncate=True, gaia_photometry=True):
    """The input tokens of the stars at one level (XP coefficients and colours only).

    Parameters
    ----------
    batch : `~giantfm.tokens.TokenBatch`
        The stars as stored.
    inputs : dict
        Their raw inputs (``{"xp": ..., "mags": ...}`` of
        `giantfm.train.dataset.datafile.load_dataset`).
    level : 'native' or float
        G of the copies (stars fainter than it are copied at their own G).
    seed : int
        Seeds the copies; the same seed gives the same copies at every call.
    truncate : bool
        Leave out the copies' coefficients beyond ``n_relevant_bases``, as
        ``giantfm.predict(..., truncate=True)`` does.
    gaia_photometry : bool
        False: the stars (copied at their own G at ``'native'``) come without
        their G, BP and RP, as Gaia's XP files do, which `giantfm.predict`
        synthesises from the coefficients (`giantfm.tokens.from_arrays`).

    Returns
    -------
    `~giantfm.tokens.TokenBatch`
        One row per star, in order.
    """
    if level != "native" or not gaia_photometry:
        copies = FaintCopies(batch, inputs, p_native=0.0)
        native = level == "native"
        rng = np.random.default_rng([seed, 0 if native else int(round(100 * float(level)))])
        # every XP star copied, at G = max(level, its own) (its own at 'native': the star
        # itself, without its photometry); the others as stored
        floor = -np.inf if native else float(level)
        target = np.where(copies.has_xp, np.maximum(floor, copies.mags["g"]), np.nan)
        batch = copies.mixed(np.arange(len(batch)), target, rng, truncate=truncate,
                             gaia_photometry=gaia_photometry)
    return experiment_inputs(batch, "xp_colours")


def red_clump_like(teff, logg, m_h):
    """The Teff-log g part of the Bovy et al. (2014) red-clump selection (boolean array)."""
    teff, logg, m_h = (np.asarray(a, dtype=float) for a in (teff, logg, m_h))
    teff_ref = 4607.0 - 382.5 * m_h
    with np.errstate(invalid="ignore"):
        return (logg >= 1.8) & (logg <= 0.0018 * (teff - teff_ref) + 2.5)


def _rows(system, level, names, mean, std, labels, giant, domain):
    pred = {name: from_token_scale(name, mean[:, k])[0] for k, name in enumerate(names)}
    inside = (inside_label_domain(pred, domain, len(mean))
              if domain and all(n in pred for n in domain) else None)
    rc = red_clump_like(labels["teff"], labels["logg"], labels["m_h"])
    samples = {"giants": giant, "rc": giant & rc, "rgb": giant & ~rc}
    if vocab.P_RC in labels:   # the state model's state on the APOGEE labels
        with np.errstate(invalid="ignore"):
            samples["rc_state"] = giant & (labels[vocab.P_RC] >= EVSTATE_THRESHOLD)
            samples["rgb_state"] = giant & (labels[vocab.P_RC] < EVSTATE_THRESHOLD)
    out = []
    for k, name in enumerate(names):
        if name not in REFERENCES:   # the state: scored by giantfm.train.evaluation.states
            continue
        reference, column = REFERENCES[name][0]
        truth = labels.get(column)
        if truth is None:
            continue
        value, sigma = mean[:, k].copy(), std[:, k].copy()
        if name in vocab.MASS_AGE_NAMES and inside is not None:
            value[~inside] = np.nan
            sigma[~inside] = np.nan
        truth_tok, truth_err_tok = to_token_scale(
            name, truth, reference_error(reference, labels, column, truth))
        for sample, select in samples.items():
            if sample != "giants" and name not in vocab.MASS_AGE_NAMES:
                continue
            scored = select & np.isfinite(truth)
            answered = scored & np.isfinite(value)
            m = metrics(from_token_scale(name, value[scored])[0], truth[scored])
            c = calibration(value[scored], sigma[scored], truth_tok[scored],
                            truth_err_tok[scored])
            out.append({"system": system, "level": str(level), "label": name,
                        "unit": str(vocab.VOCABULARY[vocab.token_id(name)].unit),
                        "reference": reference, "sample": sample, "n": m["n"],
                        "coverage": answered.sum() / scored.sum() if scored.any() else math.nan,
                        "sigma": m["sigma"], "bias": m["bias"], "z_sigma": c["sigma"]})
    return out


def _model_rows(model, tokens, level, labels, giant, domain, batch_size):
    """The model's rows as `giantfm.predict` answers, and, for a model that chains mass
    and age, the mass and age rows of its direct and chained estimates alone (what the
    combination is made of), all from one call of the network."""
    # as predict asks: with the state where the model knows it (the chain mixes by it)
    names = list(vocab.VALUE_LABEL_NAMES) + [n for n in vocab.STATE_NAMES if model.knows(n)]
    raw_mean, raw_std = model.request(tokens, names, batch_size=batch_size, progress=False)
    out = []
    if model.metadata.chain is not None:
        for system, share in (("model: direct", 0.0), ("model: chain", 1.0)):
            m, s = finish_answers(model, names, raw_mean, raw_std, {"mass": share, "age": share})
            out += [row for row in _rows(system, level, names, m, s, labels, giant, domain)
                    if row["label"] in vocab.MASS_AGE_NAMES]
    mean, std = finish_answers(model, names, raw_mean, raw_std)
    return out + _rows("model", level, names, mean, std, labels, giant, domain)


def evaluate_by_magnitude(model, dataset_path, levels=DEFAULT_LEVELS, baselines=(), *, seed=0,
                          batch_size=None, domain=None, truncate=None, synthetic_photometry=False):
    """Scores of the model and baselines on the test split at each magnitude level.

    Parameters
    ----------
    model : `giantfm.model.TrainedModel` or None
        Scored as `giantfm.predict` answers (`giantfm.prediction.finish_answers`).
    dataset_path : str or path-like
        A dataset file with the raw XP inputs (`giantfm.train.dataset.build`).
    levels : sequence
        ``'native'`` and/or G magnitudes (see `parse_levels`).
    baselines : sequence of `~giantfm.train.evaluation.baseline.BaselineModel`
        Scored under system ``'xgboost'`` with their name in ``inputs``.
    seed : int
        Seeds the faint copies (the same copies for every system).
    batch_size : int, optional
        Passed to ``request``.
    truncate : bool, optional
        As in `giantfm.predict`: leave out the copies' coefficients beyond
        ``n_relevant_bases``; default the model's choice
        (`giantfm.metadata.ModelMetadata.truncation`; True without a model, as
        for a model that records none).
    domain : dict, optional
        The label domain ``{label: (low, high)}`` outside which mass and age
        are masked; default the model's metadata ``label_domain``, else the
        dataset label model's calibration ranges.
    synthetic_photometry : bool, optional
        Also score the model on the same stars without their G, BP and RP, as
        Gaia's XP files come (`degraded_inputs` with ``gaia_photometry=False``:
        the magnitudes synthesised from the coefficients), as system
        ``'model (synthetic G, BP, RP)'``.

    Returns
    -------
    `~astropy.table.Table`
        One row per system, level, label and sample (``giants``; for mass
        and age also ``rc`` and ``rgb``, and ``rc_state`` and ``rgb_state``
        for a dataset with states): ``n``, ``coverage``, ``sigma``,
        ``bias``, ``z_sigma`` (NaN for the baselines). For a model that
        chains mass and age, systems ``'model: direct'`` and ``'model: chain'``
        give the two estimates it combines, alone.
    """
    from astropy.table import Table

    data = load_dataset(dataset_path)
    batch, inputs = data["test"], data["inputs"]["test"]
    labels = float_labels(data["labels"]["test"])
    giant = np.asarray(data["labels"]["test"]["giant"], dtype=bool)
    if domain is None:
        domain = None if model is None else model.metadata.label_domain
    if domain is None:
        found = data["attrs"]["label_model"]["validation"]["domain"]
        domain = {f: (lo, hi) for f, lo, hi in zip(found["features"], found["low"], found["high"])}
    # without a model, the baselines read the copies as a model that records nothing would
    truncate = (ModelMetadata() if model is None else model.metadata).truncation(truncate)
    names = list(vocab.VALUE_LABEL_NAMES)
    rows = []
    for level in levels:
        tokens = degraded_inputs(batch, inputs, level, seed=seed, truncate=truncate)
        if model is not None:
            rows += _model_rows(model, tokens, level, labels, giant, domain, batch_size)
        if model is not None and synthetic_photometry:
            bare = degraded_inputs(batch, inputs, level, seed=seed, truncate=truncate,
                                   gaia_photometry=False)
            rows += [{**row, "system": SYNTHETIC_SYSTEM}
                     for row in _model_rows(model, bare, level, labels, giant, domain, batch_size)
                     if row["system"] == "model"]
        for baseline in baselines:
            targets = [n for n in names if n in baseline.targets]
            mean, std = request_answers(baseline, tokens, targets, batch_size)
            rows += _rows(f"xgboost {baseline.name}", level, targets, mean, std, labels, giant,
                          domain)
    table = Table(rows=rows, names=list(rows[0]))
    table.meta.update({"model": None if model is None else model.metadata.name,
                       "dataset": str(dataset_path), "seed": seed, "truncate": bool(truncate),
                       "levels": [str(v) for v in levels],
                       "label_domain": {k: list(v) for k, v in domain.items()}})
    return table


def magnitude_figure(table, path, labels=vocab.VALUE_LABEL_NAMES):
    """Scatter (and z MAD-std) against G level per label and system, written to ``path`` (PNG)."""
    from matplotlib.figure import Figure

    from ...plotting import axis_label
    from ...utils import atomic_write

    giants = table[table["sample"] == "giants"]
    levels = list(dict.fromkeys(giants["level"]))
    numeric = [lv for lv in levels if lv != "native"]
    native_x = (float(min(numeric)) - 1.0) if numeric else 0.0
    x_of = {lv: native_x if lv == "native" else float(lv) for lv in levels}
    fig = Figure(figsize=(4.0 * 3, 3.2 * 2), layout="constrained")
    systems = list(dict.fromkeys(giants["system"]))
    colours = {system: f"C{k}" for k, system in enumerate(systems)}
    for k, label in enumerate(labels):
        ax = fig.add_subplot(2, 3, k + 1)
        rows = giants[giants["label"] == label]
        for system in dict.fromkeys(rows["system"]):
            mine = rows[rows["system"] == system]
            ax.plot([x_of[lv] for lv in mine["level"]], mine["sigma"], marker="o", label=system,
                    color=colours[system], ls="--" if system.startswith("model:") else "-")
        ax.set_xticks([x_of[lv] for lv in levels], [lv if lv == "native" else f"{float(lv):g}"
                                                    for lv in levels])
        unit = rows["unit"][0] if len(rows) else None
        ax.set_title(axis_label(label, unit))
        ax.set_xlabel(axis_label("$G$ of the copies", "mag"))
        ax.set_ylabel("MAD-std of " + axis_label(label, unit, delta=True))
        first = giants[giants["label"] == labels[0]]
        if k == 0 or len(set(rows["system"])) > len(set(first["system"])):
            ax.legend(fontsize=7)
    fig.suptitle("test-split giants at fainter magnitudes (faint copies, giantfm.xp.noise)")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
