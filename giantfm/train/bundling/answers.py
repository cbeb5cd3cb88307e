"""How `giantfm.predict` finishes the network's answers: the chain, and calibrated uncertainties.

Measured on the validation giants with XP spectra -- as stored, and as one
faint copy each at a random magnitude, truncated as `giantfm.predict` does
with the model (its metadata's ``truncate``) -- with the answers the network
gives them (never on the test split):

* the *chain* (`giantfm.labelmodel.chain_answers`): for mass and age alike,
  the label model's share ``w`` of ``(1 - w) direct + w chain`` (age in
  log10) on a grid of 0.05, the one with the smallest MAD-std of the
  residuals against the label model's values from the true APOGEE labels;
  for a model that answers ``p_rc`` with a state-aware label model, first the
  label model's share of the state (`giantfm.labelmodel.combine_probabilities`
  of the network's ``p_rc`` and the label model's classifier on the network's
  labels), the one with the smallest mean KL divergence from the state
  model's P(RC) on the true APOGEE labels (the training targets), which then
  mixes the label model's states for mass and age;
* the *uncertainty scale* of every label: the factor that makes the MAD-std of
  the z-scores of the (combined) answers 1 (the network's Gaussian
  likelihood leaves them somewhat too wide or too narrow), z with the
  reference's own error where it has one (the APOGEE labels) and without it
  for the label model's values (`giantfm.train.evaluation.scoring.reference_error`).

`giantfm.train.bundling.bundle` records them as the model's
`~giantfm.metadata.ModelMetadata` ``chain`` and ``uncertainty_scale``, which
`giantfm.prediction.finish_answers` applies.
"""
import numpy as np
from scipy.special import rel_entr

from ... import vocab
from ...labelmodel import FEATURES, chain_answers, combine_probabilities
from ...tokens import from_token_scale, to_token_scale
from ...utils._stats import mad_std, uncertainty_factor
from ..dataset.augment import FaintCopies, with_faint_copies
from ..dataset.datafile import float_labels, load_dataset
from ..evaluation.scoring import REFERENCES, experiment_inputs, reference_error

__all__ = ["calibrate_answers", "WEIGHTS"]

#: The label model's shares tried.
WEIGHTS = np.round(np.arange(0.0, 1.0001, 0.05), 2)


def calibrate_answers(model, label_model, dataset_path, *, seed=0, batch_size=None):
    """The chain weights and uncertainty scales of ``model`` (see the module).

    Returns
    -------
    chain : dict
        ``weights`` (``{'mass': w, 'age': w}``), ``scatter`` (MAD-std of the
        residuals of the direct, chained and combined estimates) and ``n``.
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
    if "p_rc" in names and label_model.state_aware:
        chain["weights"]["p_rc"], chain["scatter"]["p_rc"] = _state_weight(
            label_model, names, mean, truth["p_rc"])
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
    return chain, scale


def _state_weight(label_model, names, mean, target):
    """The label model's share of ``p_rc`` with the smallest mean KL divergence from the soft
    ``target`` (the state model's P(RC) on the true labels), and the KL of each end and of it."""
    features = np.column_stack([from_token_scale(name, mean[:, names.index(name)])[0]
                                for name in FEATURES])
    p_net = mean[:, names.index("p_rc")]
    p_lm = label_model.state_probability(features)
    use = np.isfinite(target) & np.isfinite(p_net) & np.isfinite(p_lm)
    t = np.clip(target[use], 0.0, 1.0)
    kl = []
    for w in WEIGHTS:
        q = np.clip(combine_probabilities(p_net[use], p_lm[use], w), 1e-6, 1 - 1e-6)
        # the Bernoulli KL divergence, as training's bernoulli_kl measures it
        kl.append(float(np.mean(rel_entr(t, q) + rel_entr(1 - t, 1 - q))))
    best = int(np.argmin(kl))
    return float(WEIGHTS[best]), {"network": kl[0], "label_model": kl[-1], "combined": kl[best]}
