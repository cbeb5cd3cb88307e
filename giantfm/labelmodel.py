"""The label model at prediction time: APOGEE labels -> mass and age, and the chain.

The mass and age labels giantfm learns come from a DistMass-like label model
(`LabelModel`: quantile gradient boosting from Teff, log g, [M/H], [alpha/M]
to mass and log10(age), calibrated on asteroseismology; how it is built and
validated is in `giantfm.train.labelmodel`). It also serves at prediction
time: the network's own Teff, log g, [M/H] and [alpha/M] put through it give
a second estimate of mass and age, the *chain*, and `chain_answers` combines
the network's direct estimate with it, with weights measured on the
validation split (`giantfm.train.calibration`). On the test-split giants the
combination beats both, because the two err differently: the chain is better
for bright spectra, whose labels are precise, the direct estimate for faint
ones (numbers on the accuracy page).

A saved label model is a folder: ``label_model.json`` (settings, error scales,
domain) and one XGBoost booster per target (``mass.ubj``, ``log_age.ubj``);
`LabelModel.save` and `load_label_model`. xgboost is imported only when a
label model is fitted, read or used.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.stats import mad_std

from .exceptions import InvalidNameError
from .tokens import from_token_scale
from .utils import atomic_write
from .utils._columns import floats
from .vocab import SPECTROSCOPIC_LABEL_NAMES

__all__ = ["FEATURES", "MISSING", "LabelDomain", "LabelModel", "feature_matrix",
           "load_label_model", "chain_answers", "LABEL_MODEL_DIR"]

#: The APOGEE labels the model works from, in this order.
FEATURES = SPECTROSCOPIC_LABEL_NAMES
#: APOKASC-2 and Miglio et al. mark missing values with this number.
MISSING = -9999.0
#: Where a saved giantfm model keeps the label model behind its mass and age labels.
LABEL_MODEL_DIR = "label_model"
_QUANTILES = np.array([0.16, 0.5, 0.84])
_META_FILE = "label_model.json"


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

    Parameters
    ----------
    n_estimators, learning_rate, max_depth, min_child_weight, subsample : optional
        XGBoost settings (shared by the mass and the age model).
    seed : int
        Random seed of the boosting's row subsampling.

    Attributes
    ----------
    error_scale : dict
        Per target (``mass``, ``log_age``), the factor applied to half the
        16-84 percentile range to make it a calibrated 1-sigma uncertainty;
        1.0 until set by `build_label_model` from cross-validation.
    domain : `LabelDomain`
        Set by `fit` from the training features.
    """

    targets = ("mass", "log_age")

    def __init__(self, *, n_estimators=400, learning_rate=0.05, max_depth=4,
                 min_child_weight=5, subsample=0.8, seed=0):
        self.params = {"objective": "reg:quantileerror", "quantile_alpha": _QUANTILES,
                       "eta": learning_rate, "max_depth": max_depth,
                       "min_child_weight": min_child_weight, "subsample": subsample,
                       "seed": seed,
                       # one thread: on a shared 2-core machine more threads ran 10x slower
                       "nthread": 1}
        self.n_estimators = n_estimators
        self.boosters = {}
        self.error_scale = {name: 1.0 for name in self.targets}
        self.domain = None

    def fit(self, features, mass, log_age):
        """Fit both targets. ``features`` (n, 4) or a table with `FEATURES`."""
        import xgboost

        x = feature_matrix(features)
        for name, y in (("mass", mass), ("log_age", log_age)):
            y = _values(y)
            good = np.isfinite(x).all(axis=1) & np.isfinite(y)
            if good.sum() < 10:
                raise ValueError(f"label model: only {good.sum()} usable rows to fit {name}")
            data = xgboost.DMatrix(x[good], label=y[good])
            self.boosters[name] = xgboost.train(self.params, data,
                                                num_boost_round=self.n_estimators)
        self.domain = LabelDomain.from_calibration(x[np.isfinite(x).all(axis=1)])
        return self

    def quantiles(self, x):
        """Median and half 16-84 width per target (unscaled), for features ``x`` (n, 4)."""
        import xgboost

        data = xgboost.DMatrix(x)
        out = {}
        for name, booster in self.boosters.items():
            q = booster.predict(data)
            q = np.sort(q, axis=1)  # quantile models can cross; sorting restores order
            out[name] = (q[:, 1].astype(float), np.maximum((q[:, 2] - q[:, 0]) / 2, 1e-6))
        return out

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
            ``in_domain`` (bool).
        """
        if not self.boosters:
            raise RuntimeError("the label model has not been fitted")
        x = feature_matrix(features)
        n = len(x)
        inside = self.domain.contains(x) if domain else np.isfinite(x).all(axis=1)
        out = {key: np.full(n, np.nan) for key in
               ("mass", "mass_err", "log_age", "log_age_err", "age", "age_err")}
        out["in_domain"] = inside
        if inside.any():
            raw = self.quantiles(x[inside])
            for name, (value, half) in raw.items():
                out[name][inside] = value
                out[f"{name}_err"][inside] = half * self.error_scale[name]
            out["age"] = 10.0 ** out["log_age"]
            out["age_err"] = out["age"] * np.log(10) * out["log_age_err"]
        return out

    def save(self, path):
        """Write the fitted model to the folder ``path`` (files replaced atomically)."""
        if not self.boosters:
            raise RuntimeError("the label model has not been fitted")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name, booster in self.boosters.items():
            atomic_write(path / f"{name}.ubj", booster.save_model)
        atomic_write(path / "domain_points.npy",
                     lambda tmp: np.save(tmp, self.domain.points.astype(np.float32)))
        meta = {"features": list(FEATURES), "targets": list(self.targets),
                "n_estimators": self.n_estimators,
                "params": {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                           for k, v in self.params.items()},
                "error_scale": self.error_scale, "domain": self.domain.to_dict()}
        text = json.dumps(meta, indent=1)
        atomic_write(path / _META_FILE, lambda tmp: Path(tmp).write_text(text))
        return path


def load_label_model(path):
    """Read a label model written by `LabelModel.save`.

    Raises
    ------
    FileNotFoundError
        ``path`` holds no saved label model.
    """
    import xgboost

    path = Path(path)
    if not (path / _META_FILE).is_file():
        raise FileNotFoundError(f"no saved label model in {path} (no {_META_FILE})")
    meta = json.loads((path / _META_FILE).read_text())
    if meta.get("features") != list(FEATURES):
        raise ValueError(f"{path}: a label model of the features {meta.get('features')}, "
                         f"not {list(FEATURES)}")
    model = LabelModel()
    model.params = dict(meta["params"], quantile_alpha=np.asarray(
        meta["params"]["quantile_alpha"]))
    model.n_estimators = meta["n_estimators"]
    model.error_scale = dict(meta["error_scale"])
    for name in meta["targets"]:
        booster = xgboost.Booster()
        booster.load_model(str(path / f"{name}.ubj"))
        booster.set_param({"nthread": 1})
        model.boosters[name] = booster
    d = meta["domain"]
    model.domain = LabelDomain(np.asarray(d["low"]), np.asarray(d["high"]), np.asarray(d["scale"]),
                               float(d["max_scaled_distance"]), int(d["k_neighbour"]),
                               np.load(path / "domain_points.npy").astype(np.float64))
    return model


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
        measured on validation stars by `giantfm.train.calibration.calibrate_answers`.

    Returns
    -------
    mean, std : arrays
        Copies: ``mean`` with its ``mass`` and ``age`` columns combined where the
        network gave all four labels (elsewhere as it was); ``std`` as given,
        the network's uncertainty, which `giantfm.train.calibration` scales to
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
        raw = label_model.quantiles(features[ok])
        for column, target, key in ((im, "mass", "mass"), (ia, "log_age", "age")):
            w = float(chain["weights"][key])
            mean[ok, column] = (1 - w) * mean[ok, column] + w * raw[target][0]
    return mean, std
