"""How the evaluations score predictions: statistics, references and input experiments.

Shared by the evaluation of the test split (`giantfm.train.evaluation.evaluate`) and the
evaluation against magnitude (`giantfm.train.evaluation.magnitudes`). The scatter of
residuals ``prediction - truth`` is their MAD-std, the bias their median; the
calibration of uncertainties uses ``z = (prediction - truth) / sqrt(sigma_pred**2
+ sigma_truth**2)``, whose MAD-std should be ~1 (`calibration`).
"""
import math

import numpy as np

from ... import vocab
from ...exceptions import InvalidNameError
from ...model import TrainedModel
from ...prediction import answer
from ...utils._stats import mad_std
from .baseline import INPUT_SETS

__all__ = ["EXPERIMENTS", "REFERENCES", "NO_INPUTS", "metrics", "calibration",
           "experiment_inputs", "check_experiment", "reference_error", "request_answers"]

#: Input experiments: name -> description (see the module docstring).
EXPERIMENTS = {
    "xp30_colours": "(a)/(b) BP/RP[0-29] + colours",
    "xp_colours": "all 110 BP/RP coefficients + colours",
    "xp5_colours": "(c) BP/RP[0-4] + colours",
    "random64": "(d) 64 random BP/RP coefficients per star (seeded) + colours",
    "xp25_54": "(e) BP/RP[25-54] only",
    "identity": "(f) the star's own labels as input",
}

#: What each label is scored against: ``label -> ((reference name, labels/ column), ...)``.
REFERENCES = {
    "teff": (("apogee", "teff"),),
    "logg": (("apogee", "logg"),),
    "m_h": (("apogee", "m_h"),),
    "alpha_m": (("apogee", "alpha_m"),),
    "mass": (("label_model", "mass"),),
    "age": (("label_model", "age"), ("cn", "age_cn")),
}

#: The reason of a test star that has none of an experiment's input tokens.
NO_INPUTS = "no input tokens for this experiment"

_N_RANDOM = 64


def metrics(pred, truth):
    """Scatter and bias of ``pred - truth`` over the stars where both are finite.

    Parameters
    ----------
    pred, truth : array-like (n,)

    Returns
    -------
    dict
        ``n`` (stars used), ``sigma`` (MAD-std of the residuals), ``bias``
        (their median), ``p16`` and ``p84`` (their 16th and 84th percentiles);
        NaN statistics when ``n`` is 0.

    Examples
    --------
    >>> from giantfm.train.evaluation.evaluate import metrics
    >>> m = metrics([1.0, 2.0, 3.5], [1.0, 1.0, 3.0])
    >>> m["n"], m["bias"]
    (3, 0.5)
    """
    pred, truth = _pair(pred, truth, "pred", "truth")
    residual = (pred - truth)[np.isfinite(pred) & np.isfinite(truth)]
    if residual.size == 0:
        return {"n": 0, "sigma": math.nan, "bias": math.nan, "p16": math.nan, "p84": math.nan}
    p16, p84 = np.percentile(residual, [16, 84])
    return {"n": int(residual.size), "sigma": mad_std(residual),
            "bias": float(np.median(residual)), "p16": float(p16), "p84": float(p84)}


def calibration(pred, pred_err, truth, truth_err):
    """z-scores of predictions with uncertainties against uncertain truths.

    Parameters
    ----------
    pred, pred_err, truth, truth_err : array-like (n,)
        Predicted value and standard deviation; reference value and its error.

    Returns
    -------
    dict
        ``z``: ``(pred - truth) / sqrt(pred_err**2 + truth_err**2)`` per star (NaN
        where any input is non-finite or the combined error is not positive);
        ``n``, ``sigma`` (MAD-std of the finite z, ~1 when calibrated) and
        ``median``.
    """
    pred, truth = _pair(pred, truth, "pred", "truth")
    pred_err, truth_err = _pair(pred_err, truth_err, "pred_err", "truth_err")
    if pred_err.shape != pred.shape:
        raise ValueError(f"pred_err has {pred_err.size} entries for {pred.size} predictions")
    scale = np.hypot(pred_err, truth_err)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(scale > 0, (pred - truth) / scale, np.nan)
    good = np.isfinite(z)
    if not good.any():
        return {"z": z, "n": 0, "sigma": math.nan, "median": math.nan}
    return {"z": z, "n": int(good.sum()), "sigma": mad_std(z[good]),
            "median": float(np.median(z[good]))}


def _pair(a, b, name_a, name_b):
    a = np.ma.filled(np.ma.asarray(a, dtype=float), np.nan).reshape(-1)
    b = np.ma.filled(np.ma.asarray(b, dtype=float), np.nan).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"{name_a} has {a.size} entries but {name_b} has {b.size}")
    return a, b


def experiment_inputs(batch, experiment, *, seed=0):
    """The input tokens of one experiment for each star.

    Parameters
    ----------
    batch : `~giantfm.tokens.TokenBatch`
        Stars with all their tokens (e.g. `load_split`'s ``batch``).
    experiment : str
        A key of `EXPERIMENTS`.
    seed : int, optional
        Seed of the ``random64`` draw.

    Returns
    -------
    `~giantfm.tokens.TokenBatch`
        Same stars in the same order, holding only the experiment's tokens that
        each star has; a star left without tokens gets a ``reason``.
    """
    check_experiment(experiment)
    if experiment == "identity":
        return batch.only(vocab.LABEL_NAMES, reason=NO_INPUTS)
    if experiment == "random64":
        is_xp = np.isin(batch.ids, vocab.token_ids(vocab.XP_NAMES))
        keys = np.where(is_xp, np.random.default_rng(seed).random(batch.ids.shape), np.inf)
        rank = np.argsort(np.argsort(keys, axis=1), axis=1)
        is_colour = np.isin(batch.ids, vocab.token_ids(vocab.COLOUR_NAMES))
        keep = (is_xp & (rank < _N_RANDOM)) | is_colour
        return batch.keeping(keep, reason=NO_INPUTS)
    return batch.only(INPUT_SETS[experiment], reason=NO_INPUTS)


def check_experiment(name):
    if name not in EXPERIMENTS:
        raise InvalidNameError(f"unknown experiment {name!r}; known experiments are "
                               f"{', '.join(EXPERIMENTS)}")


def reference_error(reference, labels, column, truth):
    """The error of a reference value in the z-scores.

    Label-model masses and ages are functions of the APOGEE labels that the
    network learns with target error 0 (their scatter against asteroseismology
    is the separate ``label_floor``), so they enter z without an error.
    """
    if reference == "label_model":
        return np.zeros_like(truth)
    return labels.get(f"{column}_err", np.full_like(truth, np.nan))


def request_answers(model, batch, names, batch_size=None):
    """Token-scale mean and std for every star; NaN for stars that cannot be asked.

    A `giantfm.model.TrainedModel` answers as `giantfm.request` does
    (`giantfm.prediction.answer`: labels finished -- mass and age chained,
    uncertainties calibrated -- as its metadata says).
    """
    if isinstance(model, TrainedModel):
        _, mean, std, _ = answer(model, batch, list(names), batch_size=batch_size,
                                 progress=False)
        return mean[:, :len(names)], std[:, :len(names)]
    mean = np.full((len(batch), len(names)), np.nan)
    std = np.full_like(mean, np.nan)
    ok = batch.ok
    if ok.any():
        m, s = model.request(batch[ok], list(names), batch_size=batch_size)
        m, s = np.asarray(m, dtype=float), np.asarray(s, dtype=float)
        if m.shape != (ok.sum(), len(names)) or s.shape != m.shape:
            raise ValueError(f"{type(model).__name__}.request returned shapes {m.shape} and "
                             f"{s.shape} for {ok.sum()} stars and {len(names)} requests")
        mean[ok], std[ok] = m, s
    return mean, std
