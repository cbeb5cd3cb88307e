"""The label model fitted to the seismic stars: APOGEE (Teff, logg, [M/H], [alpha/M]) ->
mass, age and evolutionary state.

The APOGEE DR17 DistMass catalogue (Stone-Martinez et al. 2024) derives giant
masses from APOGEE labels with a model calibrated on asteroseismology, and ages
from the masses. This module does the same from the seismic catalogues shared
with the project, so that the library's giants get mass and age labels:

1. `giantfm.train.seismic.catalogues.seismic_calibration_set` puts APOKASC-2,
   Miglio et al. 2021 and APO-K2 on one scale (labels: APOGEE DR17; masses and
   ages: APOKASC-2's, APO-K2's harmonised to it).
2. `LabelModel` (`giantfm.labelmodel`, where prediction uses it too) maps the
   four labels to mass and log10(age) with quantile
   gradient boosting (XGBoost, 16th/50th/84th percentiles): the median is the
   estimate, half the 16-84 range the per-star uncertainty, scaled by one
   factor per target so that cross-validated z-scores have a MAD-std of one.
   It answers only inside its calibration domain (`LabelDomain`).
3. `cross_validate` measures the model against the seismic values by k-fold
   cross-validation: bias and scatter (MAD-std) of mass and age overall, per
   evolutionary state and per catalogue, and the calibration of the uncertainties.
4. The state-aware model (``model="xgboost_state"``; `LabelModel.fit` with
   ``evstate``) has one quantile model per state (RGB, RC) and a classifier
   P(RC | labels) whose probabilities combine them. `cross_validate_state`
   measures the classifier alone (accuracy, ROC AUC, log loss, Brier score,
   reliability table) and chooses its probability calibration;
   `build_label_model` validates the state-blind and the state-aware model on
   the same folds and `validation_tables` puts them side by side.
   ``python -m giantfm.train.seismic.fit`` (`main`) writes those tables.
5. A label model for the *chain* -- applied at prediction to the network's own,
   noisy labels -- can be fitted on noisy copies of the calibration stars
   (``feature_noise`` of `build_label_model`): the errors-in-variables answer,
   the conditional mean given labels as noisy as the network's, which a model of
   the true labels is not.

The model was chosen by that measurement (see the datasheet): quantile XGBoost
beat a k-nearest-neighbour model and a Gaussian process on scatter, and its
uncertainties were the best calibrated per evolutionary state.
"""
import numpy as np
from astropy.stats import mad_std

from ...labelmodel import (EVSTATE_CODES, FEATURES, PROBABILITY_CALIBRATIONS, STATES,
                          LabelDomain, LabelModel, calibrate_probability, combine_states,
                          feature_matrix)
from ...utils._columns import floats
from ...vocab import P_RC, PROBABILITY_EPS
from .. import sources
from .catalogues import CATALOGUES, measure_scale_offsets, seismic_calibration_set

__all__ = ["FEATURES", "EVSTATE_CODES", "LabelDomain", "LabelModel", "cross_validate",
           "cross_validate_state", "state_metrics", "state_reliability", "noisy_copies",
           "fit_probability_calibration", "build_label_model", "validation_tables",
           "calibration_from_shared", "main"]

#: The models `cross_validate` measures.
CV_MODELS = ("xgboost", "xgboost_state", "knn")
#: What a chain model fits on noisy labels (`build_label_model`'s ``noisy_parts``).
NOISY_PARTS = ("all", "classifier")


def _summary(residual, z):
    """Bias (median), scatter (MAD-std), calibration (MAD-std of z) and count."""
    good = np.isfinite(residual)
    if not good.any():
        return {"n": 0, "bias": float("nan"), "scatter": float("nan"), "z_mad_std": float("nan")}
    return {"n": int(good.sum()), "bias": float(np.median(residual[good])),
            "scatter": float(mad_std(residual[good])),
            "z_mad_std": float(mad_std(z[good])) if z is not None else float("nan")}


def _knn_predict(x_train, y_train, x_test, k=40):
    """k-nearest-neighbour comparison model: neighbours' median and MAD-std."""
    from scipy.spatial import cKDTree

    scale = mad_std(x_train, axis=0)
    _, idx = cKDTree(x_train / scale).query(x_test / scale, k)
    neighbours = y_train[idx]
    return np.median(neighbours, axis=1), np.maximum(mad_std(neighbours, axis=1), 1e-6)


def _folds(n, n_folds, seed):
    """The fold of each of ``n`` stars: the same for every model given the same seed."""
    return np.random.default_rng(seed).permutation(np.arange(n) % n_folds)


def _log_loss(p, is_rc):
    q = np.clip(p, PROBABILITY_EPS, 1 - PROBABILITY_EPS)
    return float(-np.mean(np.where(is_rc, np.log(q), np.log(1 - q))))


def state_reliability(p, is_rc, *, n_bins=10):
    """Reliability table of probabilities ``p`` of the red clump against the truth.

    Parameters
    ----------
    p : array-like
        Predicted P(RC) (out of fold); non-finite values are left out.
    is_rc : array-like of bool
        True for the red-clump stars, False for the RGB stars.
    n_bins : int
        Equal-width bins over [0, 1].

    Returns
    -------
    dict of lists
        Per bin: ``bin_low``, ``bin_high``, ``p_mean`` (mean predicted
        probability), ``fraction`` (observed RC fraction), ``fraction_err``
        (its binomial standard error, from the predicted probability so that a
        bin of 0 or 1 has one too) and ``count``; empty bins have NaN means and
        count 0.
    """
    p, is_rc = np.asarray(p, dtype=float), np.asarray(is_rc, dtype=bool)
    good = np.isfinite(p)
    p, is_rc = p[good], is_rc[good]
    edges = np.round(np.linspace(0.0, 1.0, n_bins + 1), 12)  # 0.3, not 0.30000000000000004
    which = np.clip(np.digitize(p, edges) - 1, 0, n_bins - 1)
    table = {key: [] for key in ("bin_low", "bin_high", "p_mean", "fraction", "fraction_err",
                                 "count")}
    for b in range(n_bins):
        sel = which == b
        count = int(sel.sum())
        p_mean = float(p[sel].mean()) if count else float("nan")
        table["bin_low"].append(float(edges[b]))
        table["bin_high"].append(float(edges[b + 1]))
        table["p_mean"].append(p_mean)
        table["fraction"].append(float(is_rc[sel].mean()) if count else float("nan"))
        table["fraction_err"].append(float(np.sqrt(p_mean * (1 - p_mean) / count)) if count
                                     else float("nan"))
        table["count"].append(count)
    return table


def state_metrics(p, is_rc, *, n_bins=10):
    """How good probabilities ``p`` of the red clump are.

    Returns
    -------
    dict
        ``n``, ``accuracy`` (at p = 0.5), ``roc_auc``, ``log_loss`` (p
        clipped to [1e-6, 1 - 1e-6]), ``brier`` (mean squared error of p) and
        ``ece`` (expected calibration error: the count-weighted mean
        ``|p_mean - fraction|`` of the `state_reliability` bins).
    """
    from scipy.stats import rankdata

    p, is_rc = np.asarray(p, dtype=float), np.asarray(is_rc, dtype=bool)
    good = np.isfinite(p)
    p, is_rc = p[good], is_rc[good]
    n_rc = int(is_rc.sum())
    n_rgb = len(p) - n_rc
    # ROC AUC as the Mann-Whitney statistic: P(p of an RC star > p of an RGB star)
    auc = ((rankdata(p)[is_rc].sum() - n_rc * (n_rc + 1) / 2) / (n_rc * n_rgb)
           if n_rc and n_rgb else float("nan"))
    rel = state_reliability(p, is_rc, n_bins=n_bins)
    count = np.asarray(rel["count"])
    gap = np.abs(np.asarray(rel["p_mean"]) - np.asarray(rel["fraction"]))
    return {"n": int(len(p)), "accuracy": float(np.mean((p > 0.5) == is_rc)),
            "roc_auc": float(auc), "log_loss": _log_loss(p, is_rc),
            "brier": float(np.mean((p - is_rc) ** 2)),
            "ece": float(np.sum(gap[count > 0] * count[count > 0]) / max(count.sum(), 1))}


def fit_probability_calibration(p, is_rc, method):
    """Fit a calibration of classifier probabilities (applied by `calibrate_probability`).

    Parameters
    ----------
    p : array-like
        Out-of-fold P(RC) of the state classifier.
    is_rc : array-like of bool
        The truth.
    method : {"none", "platt", "isotonic"}
        Identity; Platt scaling (a logistic regression on logit(p), fitted by
        maximum likelihood); or isotonic regression (the monotone step function
        of least squares, `scipy.optimize.isotonic_regression`).

    Returns
    -------
    dict
        JSON-friendly: ``{"method": ...}`` with ``a``, ``b`` (Platt) or the
        points ``x``, ``y`` (isotonic, the ends of each step).
    """
    if method not in PROBABILITY_CALIBRATIONS:
        raise ValueError(f"probability calibration method must be one of "
                         f"{PROBABILITY_CALIBRATIONS}, got {method!r}")
    p, is_rc = np.asarray(p, dtype=float), np.asarray(is_rc, dtype=bool)
    good = np.isfinite(p)
    p, y = p[good], is_rc[good].astype(float)
    if method == "none":
        return {"method": "none"}
    if method == "platt":
        from scipy.optimize import minimize

        q = np.clip(p, PROBABILITY_EPS, 1 - PROBABILITY_EPS)
        logit = np.log(q / (1 - q))

        def loss(ab):
            z = ab[0] * logit + ab[1]
            # log(1 + e^z) - y z, written to stay finite for large |z|
            value = np.mean(np.logaddexp(0, z) - y * z)
            r = 1 / (1 + np.exp(-z)) - y
            return value, np.array([np.mean(r * logit), np.mean(r)])

        a, b = minimize(loss, [1.0, 0.0], jac=True, method="BFGS").x
        return {"method": "platt", "a": float(a), "b": float(b)}
    from scipy.optimize import isotonic_regression

    order = np.argsort(p, kind="stable")
    xs, ys = p[order], isotonic_regression(y[order]).x
    # keep only the ends of each step: the same function with far fewer points
    ends = np.ones(len(xs), dtype=bool)
    ends[1:-1] = (ys[1:-1] != ys[:-2]) | (ys[1:-1] != ys[2:])
    return {"method": "isotonic", "x": xs[ends].tolist(), "y": ys[ends].tolist()}


def _state_summary(p_raw, evstate, fold, n_folds, n_bins, method):
    """Metrics, reliability and the chosen calibration of out-of-fold probabilities.

    Each calibration is *cross-fitted*: the stars of fold k get the
    calibration fitted on the other folds' out-of-fold probabilities, so
    that its metrics are out of sample too. ``method="auto"`` takes the
    method with the lowest such log loss. Returns the summary and P(RC) of
    every star (known states cross-fitted, unknown ones through the
    calibration fitted on all known stars).
    """
    if method != "auto" and method not in PROBABILITY_CALIBRATIONS:
        raise ValueError(f"probability_calibration must be 'auto' or one of "
                         f"{PROBABILITY_CALIBRATIONS}, got {method!r}")
    known = (evstate != EVSTATE_CODES["unknown"]) & np.isfinite(p_raw)
    pk, is_rc, fk = p_raw[known], evstate[known] == EVSTATE_CODES["RC"], fold[known]
    crossed = {}
    for name in PROBABILITY_CALIBRATIONS:
        crossed[name] = pk.copy()
        if name == "none":
            continue
        for k in range(n_folds):
            test = fk == k
            fitted = fit_probability_calibration(pk[~test], is_rc[~test], name)
            crossed[name][test] = calibrate_probability(pk[test], fitted)
    metrics = {name: state_metrics(q, is_rc, n_bins=n_bins) for name, q in crossed.items()}
    # Measured on the 5,956 APOKASC-2 giants of known state (5 folds): XGBoost's own
    # probabilities are already calibrated (ECE 0.004; a Platt fit gives slope 1.00,
    # intercept -0.005), and cross-fitted calibration only adds noise: log loss 0.1075
    # raw, 0.1080 Platt, 0.1137 isotonic (Brier 0.0284, 0.0284, 0.0290). So "auto"
    # chooses "none" there; it keeps choosing by measurement when the data change.
    chosen = min(metrics, key=lambda m: metrics[m]["log_loss"]) if method == "auto" else method
    calibration = fit_probability_calibration(pk, is_rc, chosen)
    p = calibrate_probability(p_raw, calibration)
    p[known] = crossed[chosen]
    unknown = evstate == EVSTATE_CODES["unknown"]
    summary = {"n_known": int(known.sum()), "n_rc": int(is_rc.sum()),
               "n_unknown": int(unknown.sum()),
               "p_rc_mean_unknown": float(np.nanmean(p[unknown])) if unknown.any()
               else float("nan"),
               "method": chosen, "calibration": calibration, "metrics": metrics,
               "reliability": state_reliability(crossed[chosen], is_rc, n_bins=n_bins),
               "reliability_raw": state_reliability(pk, is_rc, n_bins=n_bins)}
    return summary, p


def cross_validate_state(calibration, *, n_folds=5, seed=0, n_bins=10,
                         probability_calibration="auto", **model_kwargs):
    """k-fold cross-validation of the state classifier alone.

    Parameters
    ----------
    calibration : `~astropy.table.Table`
        From `seismic_calibration_set` (its ``evstate``; unknown states are
        left out of fitting and scoring).
    n_folds, seed : int
        The folds of `cross_validate` with the same seed.
    n_bins : int
        Bins of the reliability table.
    probability_calibration : {"auto", "none", "platt", "isotonic"}
        "auto" chooses by the cross-fitted log loss (`fit_probability_calibration`).
    **model_kwargs
        Passed to `LabelModel` (``state_n_estimators``, ``learning_rate``, ...).

    Returns
    -------
    dict
        ``n_known``, ``n_rc``, ``n_unknown``, ``p_rc_mean_unknown``,
        ``method`` (the calibration chosen), ``calibration`` (fitted on all
        out-of-fold probabilities, for the final model), ``metrics`` per
        method (`state_metrics` of cross-fitted probabilities),
        ``reliability`` (of the chosen method) and ``reliability_raw``
        (`state_reliability`), and ``predictions``: out-of-fold ``p_rc``
        and ``p_rc_raw`` of every star.
    """
    x = feature_matrix(calibration)
    evstate = np.asarray(calibration["evstate"], dtype=int)
    n = len(x)
    if n < 2 * n_folds:
        raise ValueError(f"cross-validation needs at least {2 * n_folds} stars, got {n}")
    fold = _folds(n, n_folds, seed)
    p_raw = np.full(n, np.nan)
    for k in range(n_folds):
        train, test = fold != k, fold == k
        fitted = LabelModel(seed=seed, **model_kwargs).fit_state_classifier(x[train],
                                                                            evstate[train])
        p_raw[test] = fitted.state_probability(x[test])
    summary, p = _state_summary(p_raw, evstate, fold, n_folds, n_bins, probability_calibration)
    summary["predictions"] = {P_RC: p, "p_rc_raw": p_raw}
    return summary


def _score(truth, pred, half, evstate, fold, n_folds, catalogue=None):
    """Summaries per target, state and catalogue (``catalogue/state`` keys), error scales
    and predictions of out-of-fold answers."""
    result = {"error_scale": {}, "predictions": {}}
    groups = {state: evstate == code for state, code in EVSTATE_CODES.items()}
    if catalogue is not None:
        for name in np.unique(catalogue):
            own = catalogue == name
            groups[f"{name}/overall"] = own
            groups.update({f"{name}/{state}": own & (evstate == code)
                           for state, code in EVSTATE_CODES.items()})
    n = len(evstate)
    for name in truth:
        residual = pred[name] - truth[name]
        z_raw = residual / half[name]
        scale = np.empty(n)
        for k in range(n_folds):
            scale[fold == k] = mad_std(z_raw[fold != k], ignore_nan=True)
        sigma = half[name] * scale
        result["error_scale"][name] = float(mad_std(z_raw, ignore_nan=True))
        result["predictions"][name] = pred[name]
        result["predictions"][f"{name}_err"] = sigma
        targets = {name: (residual, residual / sigma)}
        if name == "log_age":
            age_pred, age_true = 10 ** pred[name], 10 ** truth[name]
            age_err = age_pred * np.log(10) * sigma
            targets["age"] = (age_pred - age_true, (age_pred - age_true) / age_err)
            targets["age_fractional"] = ((age_pred - age_true) / age_true, None)
        else:
            targets["mass_fractional"] = (residual / truth[name], None)
        for key, (res, z) in targets.items():
            entry = {"overall": _summary(res, z)}
            for group, sel in groups.items():
                entry[group] = _summary(res[sel], None if z is None else z[sel])
            result[key] = entry
    return result


def cross_validate(calibration, *, model="xgboost", n_folds=5, seed=0, n_bins=10,
                   probability_calibration="auto", feature_noise=None, copies=4,
                   noisy_parts="all", **model_kwargs):
    """k-fold cross-validation of a label model against the seismic values.

    Parameters
    ----------
    calibration : `~astropy.table.Table`
        From `seismic_calibration_set`.
    model : {"xgboost", "xgboost_state", "knn"}
        The state-blind quantile-XGBoost `LabelModel`; the state-aware one
        (fitted with ``evstate``: per-state models combined by the
        classifier's P(RC), see `LabelModel.quantiles`); or the
        k-nearest-neighbour comparison model (neighbours' median, MAD-std as
        uncertainty).
    n_folds, seed : int
        Folds are assigned at random with ``seed`` (the same folds for every
        model).
    n_bins, probability_calibration
        For ``xgboost_state``: as in `cross_validate_state`. The mixture
        uses the chosen calibration's cross-fitted probabilities.
    feature_noise : sequence of 4 float, optional
        Fit on ``copies`` noisy copies of the training folds' features
        (`noisy_copies`) and score on one noisy copy of the test fold's: the floor
        of a chain model at labels that noisy.
    copies : int
        Noisy copies per star with ``feature_noise``.
    noisy_parts : {'all', 'classifier'}
        With ``feature_noise``: fit every part on the noisy copies, or only the state
        classifier (P(RC) given labels as noisy as the network's), the per-state
        quantile models on the labels as they are.
    **model_kwargs
        Passed to `LabelModel`.

    Returns
    -------
    dict
        ``model``, ``n_folds``; per target (``mass`` in Msun,
        ``mass_fractional``, ``log_age`` in dex, ``age`` in Gyr,
        ``age_fractional``) an ``overall`` summary and one per evolutionary
        state (``RGB``, ``RC``, ``unknown``) and per catalogue and state
        (``apokasc2/RGB``, ``apok2/overall``, ...) where the set has a ``catalogue``
        column: ``n``, ``bias`` (median of predicted minus seismic), ``scatter``
        (MAD-std), ``z_mad_std``.
        z-scores use uncertainties scaled by a factor fitted on the *other*
        folds' z-scores (``error_scale`` gives the factor fitted on all folds,
        as `build_label_model` applies it). ``predictions`` holds the
        out-of-fold arrays. ``xgboost_state`` adds ``state_classifier`` (as
        `cross_validate_state`, without its predictions; ``p_rc`` and
        ``p_rc_raw`` join ``predictions``), ``given_state`` (the same
        summaries when each star of known state gets its own state's model:
        what a perfect classifier would give) and ``state_error_scale`` (per
        state and target, the factor of that state's model on its own stars).
    """
    if model not in CV_MODELS:
        raise ValueError(f"model must be 'xgboost', 'xgboost_state' or 'knn', got {model!r}")
    if noisy_parts not in NOISY_PARTS:
        raise ValueError(f"noisy_parts must be one of {NOISY_PARTS}, got {noisy_parts!r}")
    x = feature_matrix(calibration)
    truth = {"mass": floats(calibration["mass"]), "log_age": floats(calibration["log_age"])}
    evstate = np.asarray(calibration["evstate"], dtype=int)
    n = len(x)
    if n < 2 * n_folds:
        raise ValueError(f"cross-validation needs at least {2 * n_folds} stars, got {n}")
    fold = _folds(n, n_folds, seed)
    catalogue = (np.asarray(calibration["catalogue"]).astype(str)
                 if "catalogue" in getattr(calibration, "colnames", ()) else None)
    pred = {name: np.full(n, np.nan) for name in truth}
    half = {name: np.full(n, np.nan) for name in truth}
    parts = {s: {name: (np.full(n, np.nan), np.full(n, np.nan)) for name in truth}
             for s in STATES}
    p_raw = np.full(n, np.nan)
    scored = x if feature_noise is None else noisy_copies(x, feature_noise, 1, seed + 1)

    def fitted_on(train, states):
        """A label model fitted on the stars ``train`` (noisy copies with feature_noise)."""
        return _fit(x[train], truth["mass"][train], truth["log_age"][train], evstate[train],
                    states, feature_noise, copies, noisy_parts, seed, model_kwargs)

    for k in range(n_folds):
        train, test = fold != k, fold == k
        if model == "xgboost":
            raw = fitted_on(train, False).quantiles(scored[test])
            for name in truth:
                pred[name][test], half[name][test] = raw[name]
        elif model == "xgboost_state":
            raw = fitted_on(train, True).quantiles_by_state(scored[test])
            p_raw[test] = raw[P_RC]
            for s in STATES:
                for name in truth:
                    parts[s][name][0][test], parts[s][name][1][test] = raw[s][name]
        else:
            for name in truth:
                known = train & np.isfinite(truth[name])
                pred[name][test], half[name][test] = _knn_predict(x[known], truth[name][known],
                                                                  scored[test])
    extra = {}
    if model == "xgboost_state":
        classifier, p = _state_summary(p_raw, evstate, fold, n_folds, n_bins,
                                       probability_calibration)
        mixed = combine_states({P_RC: p, **parts})
        given_pred, given_half = {}, {}
        extra["state_error_scale"] = {}
        for name in truth:
            pred[name], half[name] = mixed[name]
            given_pred[name], given_half[name] = pred[name].copy(), half[name].copy()
            for s in STATES:
                own = evstate == EVSTATE_CODES[s]
                given_pred[name][own] = parts[s][name][0][own]
                given_half[name][own] = parts[s][name][1][own]
                z = (parts[s][name][0] - truth[name]) / parts[s][name][1]
                extra["state_error_scale"].setdefault(s, {})[name] = float(
                    mad_std(z[own], ignore_nan=True))
        given = _score(truth, given_pred, given_half, evstate, fold, n_folds, catalogue)
        extra["given_state"] = {k: v for k, v in given.items() if k != "predictions"}
        extra["state_classifier"] = classifier
    result = {"model": model, "n_folds": n_folds, "seed": seed, "n_stars": n,
              "feature_noise": None if feature_noise is None else list(map(float, feature_noise))}
    result.update(_score(truth, pred, half, evstate, fold, n_folds, catalogue))
    result.update(extra)
    if model == "xgboost_state":
        result["predictions"].update(p_rc=p, p_rc_raw=p_raw)
    return result


def noisy_copies(x, noise, copies, seed=0):
    """``copies`` copies of the features ``x`` (n, 4), each with Gaussian noise of standard
    deviation ``noise`` (one per feature, e.g. the network's errors on its labels) added;
    stacked copy after copy, so that a target array tiles along with them."""
    x = feature_matrix(x)
    noise = np.asarray(noise, dtype=float)
    if noise.shape != (len(FEATURES),) or not np.all(noise >= 0):
        raise ValueError(f"feature_noise must be {len(FEATURES)} values >= 0 (for "
                         f"{', '.join(FEATURES)}), got {noise!r}")
    if not isinstance(copies, int) or copies < 1:
        raise ValueError(f"copies must be a positive integer, got {copies!r}")
    rng = np.random.default_rng(seed)
    return np.concatenate([x + rng.normal(size=x.shape) * noise for _ in range(copies)])


def _fit(x, mass, log_age, evstate, states, feature_noise, copies, noisy_parts, seed,
         model_kwargs):
    """A `LabelModel` fitted on ``x`` -- or on noisy copies of it, all of its parts or its
    state classifier only (``noisy_parts``)."""
    model = LabelModel(seed=seed, **model_kwargs)
    if feature_noise is None or (noisy_parts == "classifier" and not states):
        return model.fit(x, mass, log_age, evstate=evstate if states else None)
    noisy = noisy_copies(x, feature_noise, copies, seed)
    tiled = [np.tile(a, copies) for a in (mass, log_age, evstate)]
    if noisy_parts == "all":
        model.fit(noisy, *tiled[:2], evstate=tiled[2] if states else None)
    else:
        model.fit(x, mass, log_age, evstate=evstate)
        model.fit_state_classifier(noisy, tiled[2])
    # the domain is where the true labels of the calibration stars lie
    model.domain = LabelDomain.from_calibration(x[np.isfinite(x).all(axis=1)])
    return model


def _params(params):
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in params.items()}


def build_label_model(calibration, *, n_folds=5, seed=0, compare=("knn",), states=True,
                      n_bins=10, probability_calibration="auto", feature_noise=None, copies=4,
                      noisy_parts="all", **model_kwargs):
    """Cross-validate, then fit the label model on the whole calibration set.

    Parameters
    ----------
    calibration : `~astropy.table.Table`
        From `seismic_calibration_set`.
    n_folds, seed : int
        Cross-validation folds (the same for every model).
    compare : sequence of str
        Further `cross_validate` models to measure on the same folds.
    states : bool
        Fit the state-aware model (default) from the calibration set's
        ``evstate``; False fits the state-blind one. Both are cross-validated
        either way, so that ``validation`` compares them.
    n_bins, probability_calibration
        As in `cross_validate_state`.
    feature_noise, copies, noisy_parts
        Fit (and cross-validate) on noisy copies of the stars' labels, for a chain
        model (see `cross_validate`); the domain is that of the labels as given.
    **model_kwargs
        Passed to `LabelModel`.

    Returns
    -------
    model : `LabelModel`
        Fitted on all stars, its uncertainties scaled by the cross-validated
        factors (and, state-aware, its probabilities calibrated as chosen by
        cross-validation).
    validation : dict
        JSON-friendly: ``chosen`` (``"xgboost_state"`` or ``"xgboost"``, the
        key of the fitted model's results); ``xgboost`` (state-blind) and
        ``xgboost_state`` (state-aware; with ``state_classifier``,
        ``given_state``, ``state_error_scale``): `cross_validate` without the
        per-star predictions; each model of ``compare``; the calibration
        ``domain``, ``label_scale``, ``offsets_subtracted`` and the XGBoost
        settings.
    """
    noise = {"feature_noise": feature_noise, "copies": copies, "noisy_parts": noisy_parts}
    blind = cross_validate(calibration, model="xgboost", n_folds=n_folds, seed=seed, **noise,
                           **model_kwargs)
    aware = cross_validate(calibration, model="xgboost_state", n_folds=n_folds, seed=seed,
                           n_bins=n_bins, probability_calibration=probability_calibration,
                           **noise, **model_kwargs)
    model = _fit(feature_matrix(calibration), floats(calibration["mass"]),
                 floats(calibration["log_age"]), np.asarray(calibration["evstate"], dtype=int),
                 states, feature_noise, copies, noisy_parts, seed, model_kwargs)
    if states:
        # One factor per target on the mixture's standard deviation. The per-state
        # models' own factors (``state_error_scale``: 1.10-1.13 on APOKASC-2, against
        # 1.05-1.07 for the mixture) applied before mixing calibrated each state no better
        # (z MAD-std per state within 0.02 of this choice), so they are reported, not applied.
        model.error_scale = dict(aware["error_scale"])
        model.state_calibration = aware["state_classifier"]["calibration"]
    else:
        model.error_scale = dict(blind["error_scale"])
    validation = {"chosen": "xgboost_state" if states else "xgboost",
                  "feature_noise": None if feature_noise is None
                  else list(map(float, feature_noise)),
                  "noisy_parts": noisy_parts if feature_noise is not None else None,
                  "n_calibration": int(len(calibration)),
                  "catalogues": {c: int((np.asarray(calibration["catalogue"]) == c).sum())
                                 for c in CATALOGUES}
                  if "catalogue" in calibration.colnames else {},
                  "mass_scale": calibration.meta.get("mass_scale", ""),
                  "harmonisation": calibration.meta.get("apok2", {}).get("harmonisation"),
                  "label_scale": calibration.meta.get("label_scale", ""),
                  "offsets_subtracted": calibration.meta.get("offsets_subtracted", {}),
                  "domain": model.domain.to_dict(),
                  "xgboost": {k: v for k, v in blind.items() if k != "predictions"},
                  "xgboost_state": {k: v for k, v in aware.items() if k != "predictions"},
                  "xgboost_params": {"n_estimators": model.n_estimators,
                                     **_params(model.params)},
                  "state_classifier_params": {"n_estimators": model.state_n_estimators,
                                              **_params(model.state_params)}}
    for other in compare:
        res = cross_validate(calibration, model=other, n_folds=n_folds, seed=seed)
        validation[other] = {k: v for k, v in res.items() if k != "predictions"}
    return model, validation


#: The targets of `validation_tables`, with their units.
_TABLE_TARGETS = {"mass": "solMass", "mass_fractional": "", "log_age": "dex", "age": "Gyr"}


def validation_tables(validation):
    """The state-blind and state-aware floors, and the reliability bins, as Tables.

    Parameters
    ----------
    validation : dict
        From `build_label_model` (as stored in the dataset's attributes).

    Returns
    -------
    floors : `~astropy.table.Table`
        One row per evolutionary state (``RGB``, ``RC``, ``unknown``,
        ``overall``, then per catalogue: ``apokasc2/RGB``, ...) and target (``mass``, ``mass_fractional``, ``log_age``,
        ``age``): ``unit``, ``n``, the floor (MAD-std of out-of-fold minus
        seismic) of the state-blind model (``floor_blind``), of the
        state-aware model (``floor_state``) and of the per-state models given
        each star's catalogue state (``floor_given_state``), the biases
        (medians) and the z-score MAD-stds of the first two.
    reliability : `~astropy.table.Table`
        The state classifier's out-of-fold reliability bins
        (`state_reliability`, chosen calibration); ``meta`` holds the
        calibration method and the classifier's metrics per method.
    """
    from astropy.table import Table

    missing = [key for key in ("xgboost", "xgboost_state") if key not in validation]
    if missing:
        raise ValueError(f"validation lacks {missing}: not from build_label_model of this "
                         "giantfm version")
    blind, aware = validation["xgboost"], validation["xgboost_state"]
    given = aware["given_state"]
    rows = []
    # each state, overall, then each catalogue's (where the set had several)
    groups = ["RGB", "RC", "unknown", "overall"] + [
        key for key in blind["mass"] if "/" in key]
    for state in groups:
        for target, unit in _TABLE_TARGETS.items():
            b, a, g = blind[target][state], aware[target][state], given[target][state]
            rows.append((state, target, unit, a["n"], b["scatter"], a["scatter"], g["scatter"],
                         b["bias"], a["bias"], b["z_mad_std"], a["z_mad_std"]))
    floors = Table(rows=rows, names=("state", "target", "unit", "n", "floor_blind",
                                     "floor_state", "floor_given_state", "bias_blind",
                                     "bias_state", "z_blind", "z_state"))
    floors.meta["description"] = (
        "Label-model floors against the seismic values (APOKASC-2 and APO-K2 harmonised to "
        "it; state 'catalogue/state' for one catalogue's stars), out of fold on the same "
        f"{blind['n_folds']} folds: MAD-std of predicted minus seismic. blind: fitted without "
        "evolutionary states; state: per-state models combined by the classifier's P(RC); "
        "given_state: each star of known state through its own state's model (a perfect "
        "classifier). bias: median; z: MAD-std of residual / scaled uncertainty.")
    floors.meta["error_scale_blind"] = blind["error_scale"]
    floors.meta["error_scale_state"] = aware["error_scale"]
    floors.meta["state_error_scale"] = aware["state_error_scale"]
    classifier = aware["state_classifier"]
    reliability = Table({key: classifier["reliability"][key]
                         for key in ("bin_low", "bin_high", "p_mean", "fraction", "fraction_err",
                                     "count")})
    reliability.meta["description"] = (
        "Out-of-fold reliability of the state classifier P(RC | teff, logg, m_h, alpha_m) on "
        "the seismic giants of known state: per bin of predicted probability, its mean, the "
        "observed red-clump fraction (with its binomial error) and the number of stars.")
    reliability.meta["calibration_method"] = classifier["method"]
    reliability.meta["metrics"] = classifier["metrics"]
    reliability.meta["n_known"] = classifier["n_known"]
    reliability.meta["n_rc"] = classifier["n_rc"]
    return floors, reliability


def calibration_from_shared(shared=None, library=None, *, say=print, return_excluded=False):
    """The seismic calibration set from the shared catalogues (see
    `giantfm.train.seismic.catalogues`), without the XP library's stars.

    Parameters
    ----------
    shared : path-like, optional
        The shared data folder (default `giantfm.train.sources.shared_data_dir`).
    library : `~astropy.table.Table` or path-like, optional
        The XP library (its labels set the label scale; its stars are left out);
        default `giantfm.train.sources.read_library`.
    say : callable
        Where progress notes go.
    return_excluded : bool
        Also return the library's seismic stars on the same scale (see
        `giantfm.train.seismic.catalogues.seismic_calibration_set`).
    """
    from pathlib import Path

    from .catalogues import measure_apok2_offsets

    shared = Path(shared) if shared is not None else sources.shared_data_dir()
    apokasc = sources.read_apokasc2(shared / "labels" / "apokasc2.fits")
    miglio = sources.read_miglio2021(shared / "labels" / "miglio2021_kepler_apogee.fits")
    apok2 = sources.read_apok2(shared / "labels" / "apok2" / "apo_k2_public_catalog.csv")
    ages = sources.read_apok2_ages(shared / "labels" / "apok2" / "t1_apok2_rgb_ages.txt")
    lib = library if hasattr(library, "colnames") else sources.read_library(library)
    offsets = measure_scale_offsets(apokasc, lib)
    say(f"  APOKASC-2 minus DR17 on {offsets['n_overlap']} shared stars: "
        + ", ".join(f"{name} {offsets[name]['offset']:+.4g}" for name in FEATURES))
    k2_offsets = measure_apok2_offsets(apok2, lib)
    say(f"  APO-K2 minus DR17 on {k2_offsets['n_overlap']} shared stars: "
        + ", ".join(f"{name} {k2_offsets[name]['offset']:+.4g}" for name in FEATURES))
    calibration, excluded = seismic_calibration_set(
        apokasc, miglio=miglio, apok2=apok2, apok2_ages=ages, offsets=offsets,
        exclude=lib["apogee_id"], return_excluded=True)
    calibration.meta["apok2_label_offsets"] = k2_offsets
    harmonised = calibration.meta["apok2"].get("harmonisation", {})
    say("  APO-K2 masses over a Kepler-only label model's, per K bin: "
        + "; ".join(f"{state} {harmonised[state]['mass_ratio']}" for state in STATES
                    if state in harmonised))
    return (calibration, excluded) if return_excluded else calibration


def main(argv=None):
    """``python -m giantfm.train.seismic.fit``: cross-validate the state-aware label model.

    Writes ``OUT/label_model_state.ecsv`` (floors with and without the
    state), ``OUT/state_reliability.ecsv`` (the classifier's reliability bins)
    and the reliability diagram (``OUT/state_reliability.png`` or
    ``--figure``); with ``--model-out`` also the fitted label model.
    """
    import argparse
    import time
    from pathlib import Path

    parser = argparse.ArgumentParser(
        prog="python -m giantfm.train.seismic.fit",
        description="Cross-validate the state-blind and the state-aware label model on the "
                    "shared seismic catalogues; write their floors and the state classifier's "
                    "reliability.")
    parser.add_argument("--shared-data", default=None,
                        help="the shared data folder (default: giantfm.train.sources."
                             "shared_data_dir())")
    parser.add_argument("--library", default=None,
                        help="the XP x APOGEE library file (default: astropy's cache)")
    parser.add_argument("--out", required=True, help="folder for the tables (and figure)")
    parser.add_argument("--figure", default=None,
                        help="path of the reliability figure (default OUT/state_reliability.png)")
    parser.add_argument("--model-out", default=None, help="also save the fitted model here")
    parser.add_argument("--feature-noise", default=None, metavar="TEFF,LOGG,M_H,ALPHA_M",
                        help="fit a chain model on noisy copies of the labels: the Gaussian "
                             "noise of each (e.g. the network's residual MAD-std on its "
                             "validation giants)")
    parser.add_argument("--copies", type=int, default=4,
                        help="noisy copies per star with --feature-noise")
    parser.add_argument("--noisy-parts", choices=NOISY_PARTS, default="all",
                        help="with --feature-noise: fit every part on the noisy labels, or "
                             "only the state classifier")
    parser.add_argument("--n-folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    shared = Path(args.shared_data) if args.shared_data else sources.shared_data_dir()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    calibration = calibration_from_shared(shared, args.library)
    counts = {state: int((calibration["evstate"] == code).sum())
              for state, code in EVSTATE_CODES.items()}
    print(f"calibration set: {len(calibration)} seismic giants, {counts}")
    t0 = time.time()
    noise = None
    if args.feature_noise is not None:
        try:
            noise = [float(v) for v in args.feature_noise.split(",")]
        except ValueError:
            parser.error(f"--feature-noise takes {len(FEATURES)} numbers separated by commas, "
                         f"got {args.feature_noise!r}")
        if len(noise) != len(FEATURES):
            parser.error(f"--feature-noise takes {len(FEATURES)} numbers ({', '.join(FEATURES)}),"
                         f" got {len(noise)}")
    model, validation = build_label_model(calibration, n_folds=args.n_folds, seed=args.seed,
                                          compare=(), feature_noise=noise, copies=args.copies,
                                          noisy_parts=args.noisy_parts)
    seconds = time.time() - t0
    print(f"cross-validated and fitted in {seconds:.0f} s")
    floors, reliability = validation_tables(validation)
    for table in (floors, reliability):
        table.meta["n_calibration"] = len(calibration)
        table.meta["evstate_counts"] = counts
        table.meta["label_scale"] = validation["label_scale"]
        table.meta["build_seconds"] = round(seconds, 1)
    floors.write(out / "label_model_state.ecsv", overwrite=True)
    reliability.write(out / "state_reliability.ecsv", overwrite=True)
    floors_shown = floors.copy()
    for name in floors_shown.colnames[4:]:
        floors_shown[name].format = ".4g"
    floors_shown.pprint(max_lines=-1, max_width=-1)
    metrics = validation["xgboost_state"]["state_classifier"]["metrics"]
    method = validation["xgboost_state"]["state_classifier"]["method"]
    for name, m in metrics.items():
        print(f"state classifier ({name}{', chosen' if name == method else ''}): "
              f"accuracy {m['accuracy']:.4f}, ROC AUC {m['roc_auc']:.4f}, "
              f"log loss {m['log_loss']:.4f}, Brier {m['brier']:.4f}, ECE {m['ece']:.4f}")
    reliability.pprint(max_lines=-1, max_width=-1)

    # a Figure without pyplot: no backend or global state touched by a command-line run
    from matplotlib.figure import Figure

    from ...plotting import reliability_diagram

    figure = Path(args.figure) if args.figure else out / "state_reliability.png"
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(4.5, 4.5), layout="tight")
    reliability_diagram(reliability["p_mean"], reliability["fraction"], reliability["count"],
                        ax=fig.subplots(), fraction_err=reliability["fraction_err"])
    fig.savefig(figure, dpi=120)
    print(f"wrote {out / 'label_model_state.ecsv'}, {out / 'state_reliability.ecsv'}, {figure}")
    if args.model_out:
        model.save(args.model_out)
        print(f"saved the label model to {args.model_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
