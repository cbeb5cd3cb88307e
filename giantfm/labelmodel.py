"""The label model at prediction time: APOGEE labels -> mass and age, and the chain.

The mass and age labels giantfm learns come from a DistMass-like label model
(`LabelModel`: quantile gradient boosting from Teff, log g, [M/H], [alpha/M]
to mass and log10(age), calibrated on asteroseismology; how it is built and
validated is in `giantfm.train.seismic.fit`). It also serves at prediction
time: the network's own Teff, log g, [M/H] and [alpha/M] put through it give
a second estimate of mass and age, the *chain*, and `chain_answers` combines
the network's direct estimate with it, with weights measured on the
validation split (`giantfm.train.bundling.answers`). On the test-split giants the
combination beats both, because the two err differently: the chain is better
for bright spectra, whose labels are precise, the direct estimate for faint
ones (numbers on the accuracy page).

Fitted with the calibration stars' evolutionary states (red-giant branch or
red clump), the model is *state-aware*: one quantile model per state and a
classifier P(RC | Teff, log g, [M/H], [alpha/M]); its answer is the states'
combined by that probability, with the state uncertainty in the error
(`LabelModel.quantiles`). A library star has no measured state, so the
classifier stands in for it.

A saved label model is a folder: ``label_model.json`` (format version,
settings, error scales, domain, probability calibration), the calibration
points of the domain and the XGBoost boosters: one per target
(``mass.ubj``, ``log_age.ubj``) for a state-blind model; one per target and
state (``mass_RGB.ubj``, ``mass_RC.ubj``, ...) and ``state_classifier.ubj``
for a state-aware one. `LabelModel.save` and `load_label_model`, which also
reads the folders written before the format had a version (state-blind,
version 1). xgboost is imported only when a label model is fitted, read or
used.
"""
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.stats import mad_std

from .exceptions import InvalidNameError, ModelFileError
from .tokens import from_token_scale
from .utils import atomic_write
from .utils._columns import floats
from .utils._modelfiles import (cause, damaged, folder_to_write, read_json, require_keys,
                                saving_folder, staged_folder)
from .utils._threads import cpu_threads, thread_pool
from .vocab import P_RC, PROBABILITY_EPS, SPECTROSCOPIC_LABEL_NAMES

__all__ = ["FEATURES", "MISSING", "EVSTATE_CODES", "STATES", "FORMAT_VERSION",
           "PROBABILITY_CALIBRATIONS", "LabelDomain", "LabelModel", "feature_matrix",
           "calibrate_probability", "combine_states", "combine_probabilities",
           "load_label_model", "chain_answers", "chain_weight",
           "LABEL_MODEL_DIR"]

#: The APOGEE labels the model works from, in this order.
FEATURES = SPECTROSCOPIC_LABEL_NAMES
#: APOKASC-2 and Miglio et al. mark missing values with this number.
MISSING = -9999.0
#: Where a saved giantfm model keeps the label model behind its mass and age labels.
LABEL_MODEL_DIR = "label_model"
#: Evolutionary-state codes of the calibration set and the dataset's ``labels/evstate``
#: (APOKASC-2 ``ES``, filled from Miglio et al. 2021 ``evstate``).
EVSTATE_CODES = {"unknown": 0, "RGB": 1, "RC": 2}
#: The states a state-aware label model has one quantile model each for.
STATES = ("RGB", "RC")
#: Version of the saved label-model folder; a folder without one is version 1
#: (state-blind, written before the version was recorded).
FORMAT_VERSION = 2
#: How a state-aware model's classifier probabilities can be calibrated
#: (`calibrate_probability`; fitted in `giantfm.train.seismic.fit`).
PROBABILITY_CALIBRATIONS = ("none", "platt", "isotonic")
_QUANTILES = np.array([0.16, 0.5, 0.84])
_META_FILE = "label_model.json"
_CLASSIFIER_FILE = "state_classifier.ubj"
_DOMAIN_FILE = "domain_points.npy"
_DAMAGED_FIX = ("the label model's folder is damaged: copy it (or the model folder that holds "
                "it) again, or save the label model again")


def _values(column):
    """A column as float64, NaN where masked or missing (-9999)."""
    return floats(column, missing=MISSING)


def feature_matrix(features):
    """(n, 4) float64 array from a table/dict with the `FEATURES` or from an array."""
    if hasattr(features, "keys") or hasattr(features, "colnames"):
        missing = [name for name in FEATURES if name not in
                   (features.colnames if hasattr(features, "colnames") else features.keys())]
        if missing:
            raise InvalidNameError(f"label model input lacks column(s) {missing}; it needs "
                                   f"{FEATURES}")
        return np.column_stack([_values(features[name]) for name in FEATURES])
    x = np.asarray(features, dtype=float)
    if x.ndim != 2 or x.shape[1] != len(FEATURES):
        raise ValueError(f"label model input must have shape (n, {len(FEATURES)}) with columns "
                         f"{FEATURES}; got {x.shape}")
    return x


def _evstate_codes(evstate, n):
    """``evstate`` as int codes (`EVSTATE_CODES`; NaN -> 0, unknown), checked."""
    values = np.asarray(floats(evstate), dtype=float)
    if values.shape != (n,):
        raise ValueError(f"evstate must have one code per star ({n}), got shape {values.shape}")
    values = np.where(np.isfinite(values), values, EVSTATE_CODES["unknown"])
    bad = ~np.isin(values, list(EVSTATE_CODES.values()))
    if bad.any():
        raise ValueError(f"evstate holds {sorted(set(values[bad].tolist()))[:5]}; expected the "
                         f"codes {EVSTATE_CODES}")
    return values.astype(int)


def calibrate_probability(p, calibration):
    """Apply a probability calibration to classifier probabilities ``p``.

    Parameters
    ----------
    p : array-like
        Raw P(RC) of the state classifier.
    calibration : dict
        ``{"method": "none"}``; ``{"method": "platt", "a": a, "b": b}``
        (``1 / (1 + exp(-(a logit(p) + b)))``); or ``{"method": "isotonic",
        "x": [...], "y": [...]}`` (piecewise linear through the points, flat
        beyond them). Fitted by
        `giantfm.train.seismic.fit.fit_probability_calibration`.

    Returns
    -------
    array
        Calibrated probabilities in [0, 1] (NaN stays NaN).
    """
    p = np.asarray(p, dtype=float)
    method = calibration.get("method", "none")
    if method == "none":
        return p
    if method == "platt":
        q = np.clip(p, PROBABILITY_EPS, 1 - PROBABILITY_EPS)
        logit = np.log(q / (1 - q))
        return 1.0 / (1.0 + np.exp(-(calibration["a"] * logit + calibration["b"])))
    if method == "isotonic":
        out = np.interp(p, np.asarray(calibration["x"], float), np.asarray(calibration["y"], float))
        return np.where(np.isfinite(p), out, np.nan)
    raise ValueError(f"unknown probability calibration method {method!r}; expected one of "
                     f"{PROBABILITY_CALIBRATIONS}")


#: Rows each thread takes at least when a booster's predictions are split over threads.
_ROWS_PER_THREAD = 2048


def _booster_predict(booster, x):
    """``booster``'s predictions for the features ``x`` (n, 4), their rows split over
    `~giantfm.utils._threads.cpu_threads` threads, each running XGBoost on one thread.

    ``inplace_predict`` needs no DMatrix and is safe to call from several threads
    at once (as XGBoost documents); the same numbers as ``predict`` on a DMatrix.
    Our threads rather than XGBoost's ``nthread``: see `giantfm.utils._threads`.
    """
    x = np.asarray(x, dtype=float)
    threads = min(cpu_threads(), len(x) // _ROWS_PER_THREAD)
    if threads <= 1:
        return booster.inplace_predict(x)
    parts = thread_pool(threads, "giantfm-xgboost").map(booster.inplace_predict,
                                                        np.array_split(x, threads))
    return np.concatenate(list(parts))


def _booster_quantiles(booster, x):
    """Median and half 16-84 width of one quantile booster for the features ``x``."""
    q = _booster_predict(booster, x)
    q = np.sort(q, axis=1)  # quantile models can cross; sorting restores order
    return q[:, 1].astype(float), np.maximum((q[:, 2] - q[:, 0]) / 2, 1e-6)


def combine_states(parts):
    """The states' answers combined by P(RC): ``{target: (value, half width)}``.

    ``parts`` is what `LabelModel.quantiles_by_state` returns: ``p_rc`` and,
    per state, ``{target: (value, half width)}``.

    The half width is the standard deviation of the two-state mixture, so it
    holds the state uncertainty: an even chance between states whose answers
    differ by d adds d/2 in quadrature. Measured out of fold on APOKASC-2
    (before the overall error scale), without that term the uncertainties of
    the 679 stars with 0.1 < P(RC) < 0.9 were too small (z MAD-std 1.10 in
    mass and 1.11 in log age); with it, 1.01 and 1.01.
    """
    p = parts[P_RC]
    out = {}
    for name in parts["RC"]:
        (v_rc, h_rc), (v_rgb, h_rgb) = parts["RC"][name], parts["RGB"][name]
        value = p * v_rc + (1 - p) * v_rgb
        var = p * h_rc**2 + (1 - p) * h_rgb**2 + p * (1 - p) * (v_rc - v_rgb)**2
        out[name] = (value, np.sqrt(var))
    return out


@dataclass
class LabelDomain:
    """Where the label model was calibrated, and may be applied.

    A star is inside when each label lies in the calibration set's
    [``percentile``, 100 - ``percentile``] range and its distance to its
    ``k``-th nearest calibration star (labels scaled by the calibration MAD-std)
    is no larger than ``quantile`` of the same distance among the calibration
    stars themselves: the box alone would admit empty corners (metal-poor red
    clump, say) where the model would extrapolate.
    """

    low: np.ndarray
    high: np.ndarray
    scale: np.ndarray
    max_distance: float
    k: int
    points: np.ndarray = field(repr=False)

    @classmethod
    def from_calibration(cls, x, *, percentile=0.1, k=10, quantile=0.995):
        """The domain of the calibration features ``x`` (n, 4)."""
        from scipy.spatial import cKDTree

        x = feature_matrix(x)
        low, high = np.percentile(x, [percentile, 100 - percentile], axis=0)
        scale = mad_std(x, axis=0)
        scaled = x / scale
        # k + 1: each calibration star is its own nearest neighbour.
        dist, _ = cKDTree(scaled).query(scaled, k + 1)
        return cls(low, high, scale, float(np.quantile(dist[:, -1], quantile)), k, scaled)

    def in_box(self, x):
        """Boolean mask: rows of ``x`` (n, 4) inside the box of the ranges alone (False for
        NaN rows); what `giantfm.predict` answers mass and age inside."""
        x = feature_matrix(x)
        with np.errstate(invalid="ignore"):
            return np.all((x >= self.low) & (x <= self.high), axis=1)

    def contains(self, x):
        """Boolean mask: rows of ``x`` (n, 4) inside the domain (False for NaN rows)."""
        from scipy.spatial import cKDTree

        x = feature_matrix(x)
        inside = self.in_box(x)
        if inside.any():
            dist, _ = cKDTree(self.points).query(x[inside] / self.scale, self.k)
            inside[np.flatnonzero(inside)] = dist[:, -1] <= self.max_distance
        return inside

    def to_dict(self):
        """JSON-friendly summary (without the calibration points)."""
        return {"features": list(FEATURES), "low": self.low.tolist(), "high": self.high.tolist(),
                "scale": self.scale.tolist(), "k_neighbour": self.k,
                "max_scaled_distance": self.max_distance}


class LabelModel:
    """Quantile gradient boosting from APOGEE labels to mass and log10(age).

    State-blind when fitted without evolutionary states; state-aware when
    fitted with them (`fit`): then one quantile model per state (`STATES`) and
    a classifier of P(RC), whose answers `quantiles` combines.

    Parameters
    ----------
    n_estimators, learning_rate, max_depth, min_child_weight, subsample : optional
        XGBoost settings (shared by the mass and the age model, and by the
        state classifier).
    seed : int
        Random seed of the boosting's row subsampling.
    state_n_estimators : int, optional
        Trees of the state classifier.

    Attributes
    ----------
    error_scale : dict
        Per target (``mass``, ``log_age``), the factor applied to half the
        16-84 percentile range (of a state-aware model: to the mixture's
        standard deviation) to make it a calibrated 1-sigma uncertainty;
        1.0 until set by `build_label_model` from cross-validation.
    domain : `LabelDomain`
        Set by `fit` from the training features.
    state_calibration : dict
        How the classifier's probabilities are calibrated
        (`calibrate_probability`); ``{"method": "none"}`` until set by
        `build_label_model` from cross-validation.
    """

    targets = ("mass", "log_age")

    def __init__(self, *, n_estimators=400, learning_rate=0.05, max_depth=4,
                 min_child_weight=5, subsample=0.8, seed=0, state_n_estimators=300):
        self.params = {"objective": "reg:quantileerror", "quantile_alpha": _QUANTILES,
                       "eta": learning_rate, "max_depth": max_depth,
                       "min_child_weight": min_child_weight, "subsample": subsample,
                       "seed": seed,
                       # one thread: on a shared 2-core machine more threads ran 10x slower
                       "nthread": 1}
        self.n_estimators = n_estimators
        # The classifier shares the regression's settings. Measured by 5-fold CV on the
        # 5,956 APOKASC-2 giants of known state: 300 trees of depth 4 at eta 0.05 gave
        # accuracy 0.965 and log loss 0.107, as did 1000 trees at eta 0.02 (0.964, 0.107);
        # depth 2 was worse (0.959, 0.130).
        self.state_params = {k: v for k, v in self.params.items() if k != "quantile_alpha"}
        self.state_params["objective"] = "binary:logistic"
        self.state_n_estimators = state_n_estimators
        self.boosters = {}
        self.state_boosters = {}
        self.state_classifier = None
        self.state_calibration = {"method": "none"}
        self.error_scale = {name: 1.0 for name in self.targets}
        self.domain = None

    @property
    def state_aware(self):
        """True when the model has per-state models and a state classifier."""
        return bool(self.state_boosters) and self.state_classifier is not None

    def _fit_quantiles(self, x, y, what):
        import xgboost

        good = np.isfinite(x).all(axis=1) & np.isfinite(y)
        if good.sum() < 10:
            raise ValueError(f"label model: only {good.sum()} usable rows to fit {what}")
        data = xgboost.DMatrix(x[good], label=y[good])
        return xgboost.train(self.params, data, num_boost_round=self.n_estimators)

    def fit(self, features, mass, log_age, evstate=None):
        """Fit both targets, per evolutionary state if ``evstate`` is given.

        Parameters
        ----------
        features : array (n, 4) or table with `FEATURES`
            On the DR17 label scale.
        mass, log_age : array-like (n,)
            Mass (Msun) and log10(age / Gyr); rows with NaN (or -9999) are left
            out of that target's fit.
        evstate : array-like (n,), optional
            `EVSTATE_CODES` (0 unknown, 1 RGB, 2 RC; NaN counts as unknown).
            Given, the model becomes state-aware: quantile models per state,
            each fitted on the stars of that state, and a classifier
            P(RC | features) (XGBoost ``binary:logistic``) fitted on the stars
            of known state; stars of unknown state are left out of both.

        Returns
        -------
        self
        """
        x = feature_matrix(features)
        targets = {"mass": _values(mass), "log_age": _values(log_age)}
        for name, y in targets.items():
            if y.shape != (len(x),):
                raise ValueError(f"{name} must have one value per star ({len(x)}), got shape "
                                 f"{y.shape}")
        finite = np.isfinite(x).all(axis=1)
        if evstate is None:
            self.boosters = {name: self._fit_quantiles(x, y, name)
                             for name, y in targets.items()}
            self.state_boosters, self.state_classifier = {}, None
        else:
            state = _evstate_codes(evstate, len(x))
            self.boosters = {}
            self.state_boosters = {
                s: {name: self._fit_quantiles(x[state == EVSTATE_CODES[s]],
                                              y[state == EVSTATE_CODES[s]], f"{name} ({s})")
                    for name, y in targets.items()}
                for s in STATES}
            self.fit_state_classifier(x, state)
        self.domain = LabelDomain.from_calibration(x[finite])
        return self

    def fit_state_classifier(self, features, evstate):
        """Fit the state classifier P(RC | features) alone, as `fit` does with ``evstate``.

        Stars of unknown state (code 0) and with a non-finite feature are left
        out; the probability calibration is reset to ``{"method": "none"}``.
        On its own (without `fit`) it serves `state_probability` only: for
        cross-validating the classifier cheaply.
        """
        import xgboost

        x = feature_matrix(features)
        state = _evstate_codes(evstate, len(x))
        known = np.isfinite(x).all(axis=1) & (state != EVSTATE_CODES["unknown"])
        is_rc = state[known] == EVSTATE_CODES["RC"]
        if min(is_rc.sum(), (~is_rc).sum()) < 10:
            raise ValueError(f"state classifier: {is_rc.sum()} RC and {(~is_rc).sum()} RGB stars "
                             "of known state with finite features; it needs at least 10 of each")
        data = xgboost.DMatrix(x[known], label=is_rc.astype(float))
        self.state_classifier = xgboost.train(self.state_params, data,
                                              num_boost_round=self.state_n_estimators)
        self.state_calibration = {"method": "none"}
        return self

    def _check_fitted(self):
        if not (self.boosters or self.state_boosters):
            raise RuntimeError("the label model has not been fitted")

    def state_probability(self, features):
        """Calibrated P(RC) of each star; NaN where a feature is not finite.

        Parameters
        ----------
        features : array (n, 4) or table with `FEATURES`
            On the DR17 label scale. The calibration domain is not applied.

        Raises
        ------
        RuntimeError
            The model was fitted without evolutionary states.
        """
        if self.state_classifier is None:
            raise RuntimeError("this label model has no state classifier: it was not fitted, or "
                               "fitted without evolutionary states (fit it with evstate=)")
        x = feature_matrix(features)
        ok = np.isfinite(x).all(axis=1)
        p = np.full(len(x), np.nan)
        if ok.any():
            raw = _booster_predict(self.state_classifier, x[ok]).astype(float)
            p[ok] = calibrate_probability(raw, self.state_calibration)
        return p

    def quantiles_by_state(self, x):
        """Each state's median and half 16-84 width per target (unscaled), and P(RC).

        Returns ``{"p_rc": p, "RGB": {target: (value, half)}, "RC": {...}}``
        for features ``x`` (n, 4) of a state-aware model; NaN where a feature
        is not finite.
        """
        if not self.state_aware:
            raise RuntimeError("this label model is not state-aware: it was not fitted, or "
                               "fitted without evolutionary states (fit it with evstate=)")
        x = feature_matrix(x)
        p = self.state_probability(x)
        bad = ~np.isfinite(p)
        out = {P_RC: p}
        for state, boosters in self.state_boosters.items():
            out[state] = {}
            for name, booster in boosters.items():
                value, half = _booster_quantiles(booster, x)
                value[bad], half[bad] = np.nan, np.nan
                out[state][name] = (value, half)
        return out

    def quantiles(self, x):
        """Median and half 16-84 width per target (unscaled), for features ``x`` (n, 4).

        A state-aware model combines its states' answers by the probability
        p = P(RC) (`state_probability`): value ``p v_RC + (1 - p) v_RGB``, half
        width the standard deviation of the mixture,
        ``sqrt(p h_RC**2 + (1 - p) h_RGB**2 + p (1 - p) (v_RC - v_RGB)**2)``,
        whose last term is the state uncertainty; rows with a non-finite
        feature get NaN.
        """
        if self.state_aware:
            return combine_states(self.quantiles_by_state(x))
        x = feature_matrix(x)
        return {name: _booster_quantiles(booster, x) for name, booster in self.boosters.items()}

    def predict(self, features, *, domain=True):
        """Mass and age with calibrated per-star uncertainties.

        Parameters
        ----------
        features : array (n, 4) or table with `FEATURES`
            On the DR17 label scale.
        domain : bool
            If True (default) rows outside the calibration domain (or with a
            non-finite label) get NaN.

        Returns
        -------
        dict of arrays
            ``mass``, ``mass_err`` (Msun), ``log_age``, ``log_age_err`` (dex),
            ``age``, ``age_err`` (Gyr; the first-order image of the log error),
            ``in_domain`` (bool), ``p_rc`` (calibrated P(RC) of a state-aware
            model; NaN for a state-blind one).
        """
        self._check_fitted()
        x = feature_matrix(features)
        n = len(x)
        inside = self.domain.contains(x) if domain else np.isfinite(x).all(axis=1)
        out = {key: np.full(n, np.nan) for key in
               ("mass", "mass_err", "log_age", "log_age_err", "age", "age_err")}
        out["in_domain"] = inside
        out[P_RC] = np.full(n, np.nan)
        if inside.any():
            if self.state_aware:
                parts = self.quantiles_by_state(x[inside])
                out[P_RC][inside] = parts[P_RC]
                raw = combine_states(parts)
            else:
                raw = self.quantiles(x[inside])
            for name, (value, half) in raw.items():
                out[name][inside] = value
                out[f"{name}_err"][inside] = half * self.error_scale[name]
            out["age"] = 10.0 ** out["log_age"]
            out["age_err"] = out["age"] * np.log(10) * out["log_age_err"]
        return out

    def save(self, path):
        """Write the fitted model to the folder ``path``, complete or not at all: the
        files are written into a staging folder beside it, which then replaces ``path``
        (a save cut short leaves the model that was there, or nothing)."""
        self._check_fitted()
        path = folder_to_write(path, "label model")
        with saving_folder(path, "label model"), staged_folder(path) as staging:
            self._write_files(staging)
        return path

    def _write_files(self, path):
        path.mkdir(parents=True)
        for name, booster in self.boosters.items():
            atomic_write(path / f"{name}.ubj", booster.save_model)
        for state, boosters in self.state_boosters.items():
            for name, booster in boosters.items():
                atomic_write(path / f"{name}_{state}.ubj", booster.save_model)
        atomic_write(path / _DOMAIN_FILE,
                     lambda tmp: np.save(tmp, self.domain.points.astype(np.float32)))
        meta = {"format_version": FORMAT_VERSION, "features": list(FEATURES),
                "targets": list(self.targets), "states": list(self.state_boosters),
                "n_estimators": self.n_estimators,
                "params": {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                           for k, v in self.params.items()},
                "error_scale": self.error_scale, "domain": self.domain.to_dict()}
        if self.state_aware:
            atomic_write(path / _CLASSIFIER_FILE, self.state_classifier.save_model)
            meta["state_classifier"] = {"n_estimators": self.state_n_estimators,
                                        "params": self.state_params,
                                        "calibration": self.state_calibration}
        text = json.dumps(meta, indent=1)
        atomic_write(path / _META_FILE, lambda tmp: Path(tmp).write_text(text))


def load_label_model(path):
    """Read a label model written by `LabelModel.save` (any format version so far).

    Raises
    ------
    FileNotFoundError
        ``path`` holds no saved label model.
    ValueError
        The folder holds a model of other features, other states or a newer
        format.
    ~giantfm.exceptions.ModelFileError
        A file of the folder is missing, cut short or corrupt (the message
        names it).
    """
    import xgboost

    def booster(name):
        file = path / name
        if not file.is_file():
            raise ModelFileError(f"{path} has no {name}, which its {_META_FILE} lists (a save "
                                 f"cut short, or a folder copied in part); {_DAMAGED_FIX}")
        found = xgboost.Booster()
        try:
            found.load_model(str(file))
        except Exception as exc:  # XGBoostError, or UnicodeDecodeError of random bytes
            # XGBoost's reason follows a "[time] source.cc:line: " prefix, then a stack trace
            detail = re.sub(r"^\[[\d:]+\] \S+: ", "", str(exc).strip().split("\n")[0])
            raise damaged(file, "a readable XGBoost model",
                          cause(exc, detail.strip(" :")), _DAMAGED_FIX) from None
        # one thread each: predictions are split over threads by _booster_predict
        found.set_param({"nthread": 1})
        return found

    path = Path(path)
    if not (path / _META_FILE).is_file():
        raise FileNotFoundError(f"no saved label model in {path} (no {_META_FILE})")
    meta = read_json(path / _META_FILE, _DAMAGED_FIX)
    require_keys(meta, ("params", "n_estimators", "error_scale", "targets", "domain")
                 + (("state_classifier",) if meta.get("states") else ()),
                 path / _META_FILE, _DAMAGED_FIX)
    version = meta.get("format_version", 1)
    if version > FORMAT_VERSION:
        raise ValueError(f"{path}: label model format_version {version} is newer than this "
                         f"giantfm reads ({FORMAT_VERSION}); upgrade giantfm")
    if meta.get("features") != list(FEATURES):
        raise ValueError(f"{path}: a label model of the features {meta.get('features')}, "
                         f"not {list(FEATURES)}")
    states = meta.get("states", [])
    if states and sorted(states) != sorted(STATES):
        raise ValueError(f"{path}: a label model of the states {states}, not {list(STATES)}")
    model = LabelModel()
    model.params = dict(meta["params"], quantile_alpha=np.asarray(
        meta["params"]["quantile_alpha"]))
    model.n_estimators = meta["n_estimators"]
    model.error_scale = dict(meta["error_scale"])
    if states:
        model.state_boosters = {s: {name: booster(f"{name}_{s}.ubj") for name in meta["targets"]}
                                for s in states}
        classifier = meta["state_classifier"]
        model.state_params = dict(classifier["params"])
        model.state_n_estimators = classifier["n_estimators"]
        model.state_calibration = dict(classifier["calibration"])
        model.state_classifier = booster(_CLASSIFIER_FILE)
    else:
        model.boosters = {name: booster(f"{name}.ubj") for name in meta["targets"]}
    d = meta["domain"]
    try:
        points = np.load(path / _DOMAIN_FILE)
    except FileNotFoundError:
        raise ModelFileError(f"{path} has no {_DOMAIN_FILE} (a save cut short, or a folder "
                             f"copied in part); {_DAMAGED_FIX}") from None
    except (ValueError, EOFError, OSError) as exc:
        raise damaged(path / _DOMAIN_FILE, "a readable numpy file", exc, _DAMAGED_FIX) from None
    model.domain = LabelDomain(np.asarray(d["low"]), np.asarray(d["high"]), np.asarray(d["scale"]),
                               float(d["max_scaled_distance"]), int(d["k_neighbour"]),
                               points.astype(np.float64))
    return model


def combine_probabilities(p_network, p_label_model, weight):
    """The network's probability combined with the label model's, in log-odds:
    ``logistic((1 - w) logit(p_network) + w logit(p_label_model))``.

    ``weight`` w is the label model's share (0 keeps the network's); where one
    of the two is not finite the other is kept. Probabilities are clipped to
    [1e-6, 1 - 1e-6] first, so that a 0 or 1 does not decide alone.
    """
    from scipy.special import expit, logit

    p_net, p_lm = (np.clip(np.asarray(p, dtype=float), PROBABILITY_EPS, 1 - PROBABILITY_EPS)
                   for p in (p_network, p_label_model))
    w = float(weight)
    mixed = expit((1 - w) * logit(p_net) + w * logit(p_lm))
    both = np.isfinite(p_net) & np.isfinite(p_lm)
    return np.where(both, mixed, np.where(np.isfinite(p_net), p_network, p_label_model))


def chain_answers(label_model, names, mean, std, chain):
    """Mass and age of the network combined with the label model's of the network's labels.

    Parameters
    ----------
    label_model : `LabelModel`
    names : sequence of str
        The tokens of the columns of ``mean`` and ``std``; must include
        `FEATURES`, ``mass`` and ``age``.
    mean, std : arrays (n, len(names))
        The network's answers in token scale (``age`` is log10(age / Gyr)).
    chain : dict
        ``weights``: ``{'mass': w, 'age': w}``, the label model's share,
        measured on validation stars by `giantfm.train.bundling.answers.calibrate_answers`;
        with ``'p_rc': w`` too where ``names`` hold ``p_rc`` and the label
        model is state-aware: the network's P(RC) is then combined with the
        label model's classifier on the network's labels
        (`combine_probabilities`), and the label model's states are mixed by
        that combined P(RC).

    Returns
    -------
    mean, std : arrays
        Copies: ``mean`` with its ``mass`` and ``age`` (and ``p_rc``) columns
        combined where the network gave all four labels (elsewhere as it
        was); ``std`` as given,
        the network's uncertainty, which `giantfm.train.bundling.answers` scales to
        the combination's measured scatter (``metadata['uncertainty_scale']``).
    """
    names = list(names)
    missing = [n for n in (*FEATURES, "mass", "age") if n not in names]
    if missing:
        raise InvalidNameError(f"chain_answers needs the answers for {missing}")
    mean, std = np.array(mean, dtype=float), np.array(std, dtype=float)
    features = np.column_stack([from_token_scale(name, mean[:, names.index(name)])[0]
                                for name in FEATURES])
    im, ia = names.index("mass"), names.index("age")
    ok = np.isfinite(features).all(axis=1) & np.isfinite(mean[:, im]) & np.isfinite(mean[:, ia])
    if ok.any():
        if label_model.state_aware:
            parts = label_model.quantiles_by_state(features[ok])
            if P_RC in names:
                ip = names.index(P_RC)
                combined = combine_probabilities(mean[ok, ip], parts[P_RC],
                                                 chain["weights"].get(P_RC, 0.0))
                mean[ok, ip] = calibrate_probability(
                    combined, chain.get("state_calibration") or {"method": "none"})
                parts[P_RC] = np.where(np.isfinite(mean[ok, ip]), mean[ok, ip], parts[P_RC])
            p_rc = parts[P_RC]
            raw = combine_states(parts)
        else:
            p_rc = None
            raw = label_model.quantiles(features[ok])
        for column, target, key in ((im, "mass", "mass"), (ia, "log_age", "age")):
            w = chain_weight(chain["weights"][key], p_rc)
            mean[ok, column] = (1 - w) * mean[ok, column] + w * raw[target][0]
    return mean, std


def chain_weight(weight, p_rc=None):
    """The label model's share of a star's answer: ``weight`` itself, or for a share per
    state (``{'RGB': w, 'RC': w}``) the two mixed by the star's P(RC) ``p_rc`` (the RGB
    share where P(RC) is unknown)."""
    if not isinstance(weight, dict):
        return float(weight)
    if p_rc is None:
        return float(weight["RGB"])
    p = np.nan_to_num(np.asarray(p_rc, dtype=float), nan=0.0)
    return (1 - p) * float(weight["RGB"]) + p * float(weight["RC"])
