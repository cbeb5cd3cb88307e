"""How `giantfm.predict` finishes the network's answers: the chain, and calibrated uncertainties.

Measured with the answers the network gives -- to stars as stored and as one faint
copy each at a random magnitude, truncated as `giantfm.predict` does with the model
(its metadata's ``truncate``) -- never on the test split. Seismic truth decides what
touches mass, age or state: where the dataset has seismic validation stars (the XP
library's APO-K2 giants of role ``validation``, `giantfm.train.dataset.build.seismic_roles`),

* the *state*: the label model's share of ``p_rc`` (`giantfm.labelmodel.combine_probabilities`
  of the network's ``p_rc`` and the label model's classifier on the network's labels) on a
  grid of 0.05, the one with the smallest log loss against the seismic states; then a
  calibration of that P(RC) on the seismic states (`fit_probability_calibration`: none or
  Platt, chosen by their log loss cross-fitted over 5 folds);
* the *chain* (`giantfm.labelmodel.chain_answers`) of mass: the label model's share
  ``w`` of ``(1 - w) direct + w chain`` per state (``{'RGB': w, 'RC': w}``, mixed by each
  star's P(RC): the clump's labels say less about its mass), the pair on a grid of 0.05
  whose residuals against the seismic masses (harmonised to the Kepler scale) have the
  smallest root mean square of the two states' errors, each ``hypot(MAD-std, median)``
  (each state counts alike, and a tight but offset answer is no better); of
  age: one share, chosen on the seismic RGB ages (log10; K2's clump stars have none);
* the *uncertainty scales* of mass and age: the factors that make the MAD-std of the
  z-scores against the seismic values 1, the label model's floor
  (``label_floor``) and the seismic errors in quadrature, as `giantfm.predict` reports
  them.

Teff, log g, [M/H] and [alpha/M] -- and mass and age where the dataset has no seismic
stars -- are measured on the validation giants of the dataset's validation split against
their APOGEE labels and the label model's masses and ages from them: the share ``w`` of
mass and age with the smallest MAD-std of the residuals, ``p_rc`` by the smallest mean KL
divergence from the state model's P(RC) on the true labels (the training targets), and
the uncertainty scale of every label, z with the reference's own error where it has one
(the APOGEE labels) and without it for the label model's values
(`giantfm.train.evaluation.scoring.reference_error`).

`giantfm.train.bundling.bundle` records them as the model's
`~giantfm.metadata.ModelMetadata` ``chain`` and ``uncertainty_scale``, which
`giantfm.prediction.finish_answers` applies.
"""
import numpy as np
from scipy.special import rel_entr

from ... import vocab
from ...labelmodel import (EVSTATE_CODES, FEATURES, calibrate_probability, chain_answers,
                           chain_weight, combine_probabilities)
from ...tokens import from_token_scale, to_token_scale
from ...utils._stats import mad_std, uncertainty_factor
from ..dataset.augment import FaintCopies, with_faint_copies
from ..dataset.datafile import SEISMIC_ROLES, SPLITS, float_labels, load_dataset
from ..evaluation.scoring import REFERENCES, experiment_inputs, reference_error
from ..evaluation.seismic import seismic_validation_stars
from ..seismic.fit import fit_probability_calibration, state_metrics

__all__ = ["calibrate_answers", "WEIGHTS"]

#: The label model's shares tried.
WEIGHTS = np.round(np.arange(0.0, 1.0001, 0.05), 2)


def calibrate_answers(model, label_model, dataset_path, *, seed=0, batch_size=None,
                      label_floor=None, seismic=True):
    """The chain weights and uncertainty scales of ``model`` (see the module).

    Parameters
    ----------
    model : `giantfm.model.TrainedModel`
    label_model : `giantfm.labelmodel.LabelModel`
        The label model of the chain.
    dataset_path : path-like
        The dataset the model was trained on.
    seed : int
        Seeds the faint copies.
    batch_size : int, optional
    label_floor : `~giantfm.metadata.LabelFloor`, optional
        The floor `giantfm.predict` adds to the mass and age errors (so that the
        seismic uncertainty scales are those of the errors it reports).
    seismic : bool
        Decide mass, age and state on the seismic validation stars (where the dataset
        has them); False: on the validation split's label-model values, as before
        seismic stars were in the dataset.

    Returns
    -------
    chain : dict
        ``weights`` (``{'mass': w, 'age': w, 'p_rc': w}``, a share possibly per state),
        ``state_calibration``, ``scatter`` (the residuals of the direct, chained and
        combined estimates) and ``n``.
    uncertainty_scale : dict
        ``{label: factor}`` for the six labels.
    """
    data = load_dataset(dataset_path)
    labels = float_labels(data["labels"]["val"])
    giant = np.asarray(data["labels"]["val"]["giant"], dtype=bool)
    has_xp = FaintCopies(data["val"], data["inputs"]["val"]).has_xp
    rows = np.flatnonzero(giant & has_xp)
    truncate = model.metadata.truncate
    stars = with_faint_copies(data["val"][rows], {
        group: {k: v[rows] for k, v in values.items()}
        for group, values in data["inputs"]["val"].items()}, 1, seed=seed, truncate=truncate)
    stars = experiment_inputs(stars, "xp_colours")
    # with the state where the model knows it: the chain mixes the label model's states by it
    names = list(vocab.VALUE_LABEL_NAMES) + [n for n in vocab.STATE_NAMES if model.knows(n)]
    mean, std = model.request(stars, names, batch_size=batch_size, progress=False)
    # the copies follow the stars as stored, in the same order
    truth = {name: np.tile(values[rows], 2) for name, values in labels.items()}
    scored = np.isfinite(truth["mass"])
    chain = {"weights": {}, "scatter": {}, "n": int(scored.sum())}
    if vocab.P_RC in names and label_model.state_aware:
        chain["weights"][vocab.P_RC], chain["scatter"][vocab.P_RC] = _state_weight(
            label_model, names, mean, truth[vocab.P_RC])
    # the label model's answers once; each weight mixes them as chain_answers does
    direct = np.asarray(mean[scored], dtype=float)
    chained, _ = chain_answers(label_model, names, direct, std[scored],
                               {"weights": {**chain["weights"], "mass": 1.0, "age": 1.0}})
    mixed = chained != direct
    for name in vocab.MASS_AGE_NAMES:
        k = names.index(name)
        scores = []
        for w in WEIGHTS:
            combined = np.where(mixed[:, k], (1 - w) * direct[:, k] + w * chained[:, k],
                                direct[:, k])
            value = from_token_scale(name, combined)[0]
            scores.append(mad_std(value - truth[name][scored]))
        chain["weights"][name] = float(WEIGHTS[int(np.nanargmin(scores))])
        chain["scatter"][name] = {"direct": float(scores[0]), "chain": float(scores[-1]),
                                  "combined": float(np.nanmin(scores))}
    mean, std = chain_answers(label_model, names, mean, std, chain)
    scale = {}
    for k, name in enumerate(vocab.VALUE_LABEL_NAMES):
        reference, column = REFERENCES[name][0]
        value, error = to_token_scale(name, truth[column],
                                      reference_error(reference, truth, column, truth[column]))
        scale[name] = uncertainty_factor(mean[:, k], std[:, k], value, error)
    if seismic and _has_seismic(data):
        seismic_chain, seismic_scale = _seismic_answers(model, label_model, data, names, seed,
                                                        batch_size, label_floor)
        chain = seismic_chain
        scale.update(seismic_scale)
    return chain, scale


def _has_seismic(data):
    return any(np.any(data["labels"][split].get("seismic_role", np.zeros(0))
                      == SEISMIC_ROLES["validation"]) for split in SPLITS)


def _log_loss(p, is_rc):
    return state_metrics(p, is_rc)["log_loss"]


def _state_choice(label_model, names, mean, truth, seed):
    """The label model's share of ``p_rc`` and the calibration of the combined probability,
    chosen on the seismic states (see the module)."""
    features = np.column_stack([from_token_scale(name, mean[:, names.index(name)])[0]
                                for name in FEATURES])
    p_net = mean[:, names.index(vocab.P_RC)]
    p_lm = label_model.state_probability(features)
    known = np.isin(truth["evstate"], (EVSTATE_CODES["RGB"], EVSTATE_CODES["RC"])) \
        & np.isfinite(p_net) & np.isfinite(p_lm)
    is_rc = truth["evstate"][known] == EVSTATE_CODES["RC"]
    losses = [_log_loss(combine_probabilities(p_net[known], p_lm[known], w), is_rc)
              for w in WEIGHTS]
    weight = float(WEIGHTS[int(np.argmin(losses))])
    p = combine_probabilities(p_net[known], p_lm[known], weight)
    # each calibration's log loss cross-fitted over 5 folds, as the label model's is chosen
    fold = np.random.default_rng(seed).permutation(np.arange(len(p)) % 5)
    crossed = {}
    for method in ("none", "platt"):
        q = p.copy()
        if method != "none":
            for k in range(5):
                fitted = fit_probability_calibration(p[fold != k], is_rc[fold != k], method)
                q[fold == k] = calibrate_probability(p[fold == k], fitted)
        crossed[method] = _log_loss(q, is_rc)
    method = min(crossed, key=crossed.get)
    calibration = fit_probability_calibration(p, is_rc, method)
    scores = {"log_loss": {"network": losses[0], "label_model": losses[-1],
                           "combined": float(min(losses)), **{f"calibrated_{m}": v
                                                              for m, v in crossed.items()}},
              "accuracy": {"network": state_metrics(p_net[known], is_rc)["accuracy"],
                           "label_model": state_metrics(p_lm[known], is_rc)["accuracy"],
                           "combined": state_metrics(calibrate_probability(p, calibration),
                                                     is_rc)["accuracy"]},
              "n": int(known.sum())}
    return weight, calibration, scores


def _per_state_scatter(value, truth, groups):
    return {state: mad_std(value[sel] - truth[sel]) for state, sel in groups.items()}


def _per_state_error(value, truth, groups):
    """Per state, the robust size of the residuals, scatter and bias together:
    ``hypot(MAD-std, median)`` (a chain that is tight but offset is not better)."""
    out = {}
    for state, sel in groups.items():
        residual = value[sel] - truth[sel]
        residual = residual[np.isfinite(residual)]
        out[state] = float(np.hypot(mad_std(residual), np.median(residual))) \
            if residual.size else float("nan")
    return out


def _seismic_answers(model, label_model, data, names, seed, batch_size, label_floor):
    """The chain and the mass and age uncertainty scales, decided on the seismic validation
    stars (see the module)."""
    stars, truth = seismic_validation_stars(data, seed=seed,
                                            truncate=model.metadata.truncation())
    mean, std = model.request(stars, names, batch_size=batch_size, progress=False)
    chain = {"weights": {}, "scatter": {}, "n": int(np.isfinite(truth["mass"]).sum()),
             "state_calibration": None, "decided_on": "seismic validation stars (APO-K2 giants "
             "of the XP library, as stored and one faint copy each)"}
    if vocab.P_RC in names and label_model.state_aware:
        weight, calibration, scores = _state_choice(label_model, names, mean, truth, seed)
        chain["weights"][vocab.P_RC] = weight
        chain["state_calibration"] = calibration
        chain["scatter"][vocab.P_RC] = scores
    ends = {"weights": {**chain["weights"], "mass": 0.0, "age": 0.0},
            "state_calibration": chain["state_calibration"]}
    direct, _ = chain_answers(label_model, names, mean, std, ends)
    chained, _ = chain_answers(label_model, names, mean, std,
                               {**ends, "weights": {**ends["weights"], "mass": 1.0, "age": 1.0}})
    p_rc = direct[:, names.index(vocab.P_RC)] if vocab.P_RC in names \
        else np.full(len(direct), np.nan)
    groups = {state: truth["evstate"] == EVSTATE_CODES[state] for state in ("RGB", "RC")}
    groups = {state: sel for state, sel in groups.items() if sel.any()}
    # mass: one share per state, each state counting alike
    im = names.index("mass")
    d_mass = from_token_scale("mass", direct[:, im])[0]
    c_mass = from_token_scale("mass", chained[:, im])[0]
    best, best_score = None, np.inf
    for w_rgb in WEIGHTS:
        for w_rc in WEIGHTS:
            w = chain_weight({"RGB": w_rgb, "RC": w_rc}, p_rc)   # as predict mixes them
            error = _per_state_error((1 - w) * d_mass + w * c_mass, truth["mass"], groups)
            score = float(np.sqrt(np.mean(np.square(list(error.values())))))
            if score < best_score:
                best, best_score = (float(w_rgb), float(w_rc)), score
    chain["weights"]["mass"] = {"RGB": best[0], "RC": best[1]}
    w = chain_weight(chain["weights"]["mass"], p_rc)
    combined_mass = (1 - w) * d_mass + w * c_mass
    chain["scatter"]["mass"] = {
        "direct": _per_state_scatter(d_mass, truth["mass"], groups),
        "chain": _per_state_scatter(c_mass, truth["mass"], groups),
        "combined": _per_state_scatter(combined_mass, truth["mass"], groups),
        "combined_error": _per_state_error(combined_mass, truth["mass"], groups)}
    # age: one share, on the RGB stars' seismic ages (log10)
    ia = names.index("age")
    with np.errstate(divide="ignore", invalid="ignore"):
        log_truth = np.log10(truth["age"])
    rgb = {"RGB": groups.get("RGB", np.zeros(len(p_rc), bool)) & np.isfinite(log_truth)}
    scores = [_per_state_scatter((1 - w) * direct[:, ia] + w * chained[:, ia], log_truth,
                                 rgb)["RGB"] for w in WEIGHTS]
    chain["weights"]["age"] = float(WEIGHTS[int(np.nanargmin(scores))])
    chain["scatter"]["log_age_rgb"] = {"direct": float(scores[0]), "chain": float(scores[-1]),
                                       "combined": float(np.nanmin(scores))}
    mean, std = chain_answers(label_model, names, mean, std, chain)
    # the uncertainty scales of mass and age as predict reports them: the label model's
    # floor and the seismic errors in quadrature with the scaled network error
    mass, _ = from_token_scale("mass", mean[:, im])
    mass_floor = 0.0 if label_floor is None else label_floor.mass_fractional * mass
    age_floor = 0.0 if label_floor is None else label_floor.log10_age
    with np.errstate(divide="ignore", invalid="ignore"):
        log_age_err = truth["age_err"] / (np.log(10) * truth["age"])
    scale = {"mass": uncertainty_factor(mean[:, im], std[:, im], truth["mass"],
                                        np.hypot(truth["mass_err"], mass_floor)),
             "age": uncertainty_factor(mean[:, ia], std[:, ia], log_truth,
                                       np.hypot(log_age_err, age_floor))}
    return chain, scale


def _state_weight(label_model, names, mean, target):
    """The label model's share of ``p_rc`` with the smallest mean KL divergence from the soft
    ``target`` (the state model's P(RC) on the true labels), and the KL of each end and of it."""
    features = np.column_stack([from_token_scale(name, mean[:, names.index(name)])[0]
                                for name in FEATURES])
    p_net = mean[:, names.index(vocab.P_RC)]
    p_lm = label_model.state_probability(features)
    use = np.isfinite(target) & np.isfinite(p_net) & np.isfinite(p_lm)
    t = np.clip(target[use], 0.0, 1.0)
    kl = []
    for w in WEIGHTS:
        q = np.clip(combine_probabilities(p_net[use], p_lm[use], w), vocab.PROBABILITY_EPS,
                    1 - vocab.PROBABILITY_EPS)
        # the Bernoulli KL divergence, as training's bernoulli_kl measures it
        kl.append(float(np.mean(rel_entr(t, q) + rel_entr(1 - t, 1 - q))))
    best = int(np.argmin(kl))
    return float(WEIGHTS[best]), {"network": kl[0], "label_model": kl[-1], "combined": kl[best]}
