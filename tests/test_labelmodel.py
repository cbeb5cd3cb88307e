"""Tests of the DistMass-like label model (giantfm.train.seismic.fit, giantfm.labelmodel)."""
import json
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from giantfm import labelmodel as labelmodel_runtime
from giantfm.train.seismic import catalogues
from giantfm.train.seismic import fit as labelmodel

pytest.importorskip("xgboost", reason="the label model needs xgboost (xgboost-cpu)")

SHARED = Path(__file__).parents[1] / ".." / "shared" / "data"


def synthetic_apokasc(n=600, seed=1, big_endian=True):
    """An APOKASC-2-like table with a known mass law, -9999 gaps and FITS byte order."""
    rng = np.random.default_rng(seed)
    teff = rng.uniform(4100, 5000, n)
    logg = rng.uniform(1.5, 3.2, n)
    feh = rng.uniform(-0.8, 0.35, n)
    mgfe = 0.3 - 0.3 * (feh + 0.8) / 1.15 + rng.normal(0, 0.02, n)
    mass = 1.0 + 0.8 * (logg - 2.3) + 0.4 * feh + rng.normal(0, 0.05, n)
    mass = np.clip(mass, 0.7, 3.0)
    age = 10.0 * mass ** -3
    dt = ">f8" if big_endian else "<f8"
    t = Table()
    t["APOGEE_ID"] = [f"2M{i:08d}+0000000" for i in range(n)]
    t["KIC"] = np.arange(n, dtype=np.int32)
    # APOKASC-2 on the "old" scale: +20 K, +0.05 dex relative to DR17
    for name, values in (("TEFF", teff + 20), ("LOGG", logg), ("FE_H", feh + 0.05),
                         ("MG_H", feh + 0.05 + mgfe)):
        t[name] = np.asarray(values, dtype=dt)
        t[name + "_ERR"] = np.full(n, 0.01, dtype=dt)
    t["Mcorr"] = np.asarray(mass, dtype=dt)
    t["Mcorr_err"] = np.asarray(0.05 * mass, dtype=dt)
    t["Age"] = np.asarray(age, dtype=dt)
    t["Age_err"] = np.full(n, 0.06, dtype=dt)
    t["ES"] = np.array(["RC", "RGB", "-9999.0"])[np.arange(n) % 3]
    t["Mcorr"][:5] = -9999.0
    t["Age"][:5] = -9999.0
    return t, {"teff": teff, "logg": logg, "m_h": feh, "alpha_m": mgfe}


def library_like(apokasc, truth, rows):
    lib = Table()
    lib["apogee_id"] = np.asarray(apokasc["APOGEE_ID"][rows])
    lib["teff"] = truth["teff"][rows] + np.random.default_rng(5).normal(0, 10, len(rows))
    lib["logg"] = truth["logg"][rows]
    lib["fe_h"] = truth["m_h"][rows]
    lib["alpha_m"] = truth["alpha_m"][rows]
    return lib


def test_offsets_measured_and_robust_to_an_outlier():
    apokasc, truth = synthetic_apokasc()
    lib = library_like(apokasc, truth, np.arange(10, 30))
    lib["teff"][0] -= 700  # a mismatched star, like one of the real shared stars
    off = catalogues.measure_scale_offsets(apokasc, lib)
    assert off["n_overlap"] == 20
    assert off["teff"]["offset"] == pytest.approx(20, abs=8)  # 10 K noise, 19 stars
    assert off["teff"]["n_clipped"] == 1
    assert off["m_h"]["offset"] == pytest.approx(0.05, abs=1e-3)
    assert off["alpha_m"]["offset"] == pytest.approx(0.0, abs=1e-3)


def test_calibration_set_on_dr17_scale_and_drops_missing():
    apokasc, truth = synthetic_apokasc()
    off = catalogues.measure_scale_offsets(apokasc, library_like(apokasc, truth, np.arange(50)))
    cal = catalogues.kepler_stars(apokasc, offsets=off)
    assert len(cal) == len(apokasc) - 5
    assert cal.meta["n_dropped_no_seismic_mass_or_labels"] == 5
    np.testing.assert_allclose(cal["teff"], np.asarray(apokasc["TEFF"][5:]) - off["teff"]["offset"])
    np.testing.assert_allclose(cal["teff"], truth["teff"][5:], atol=8)
    np.testing.assert_allclose(cal["m_h"], truth["m_h"][5:], atol=1e-6)
    np.testing.assert_allclose(cal["log_age"], np.log10(cal["age"]))
    # Age_err is in dex; the Gyr error is its first-order image
    np.testing.assert_allclose(cal["age_err"], cal["age"] * np.log(10) * 0.06)
    assert set(np.unique(cal["evstate"])) == {0, 1, 2}


def test_unconstrained_seismic_age_dropped_but_mass_kept():
    apokasc, _ = synthetic_apokasc(n=50)
    apokasc["Age_err"][10] = 1.5e99   # as one real APOKASC-2 entry
    apokasc["Age_err"][11] = 0.8
    cal = catalogues.kepler_stars(apokasc)
    assert len(cal) == 45
    row = {i: k for k, i in enumerate(cal["apogee_id"])}
    for bad in (10, 11):
        r = row[apokasc["APOGEE_ID"][bad]]
        assert np.isnan(cal["age"][r]) and np.isnan(cal["age_err"][r])
        assert np.isfinite(cal["mass"][r])
    assert cal.meta["n_age_dropped_log_age_err_gt"] == [0.5, 2]
    assert np.isfinite(cal["age_err"]).sum() == 43
    assert cal["mass"].dtype.byteorder in ("=", "<", "|")


def test_miglio_fills_unknown_evstate():
    apokasc, _ = synthetic_apokasc(n=30)
    miglio = Table({"APOGEE": apokasc["APOGEE_ID"][:12], "evstate": np.full(12, 2, np.int16)})
    cal = catalogues.kepler_stars(apokasc, miglio=miglio)
    # rows 5..11 survive; of these, the unknown-ES ones (index % 3 == 2) are 5, 8, 11
    assert cal.meta["n_evstate_from_miglio"] == 3
    assert np.all(cal["evstate"][:7][[0, 3, 6]] == 2)


def test_model_learns_mass_law_and_calibrates_errors():
    apokasc, truth = synthetic_apokasc(n=800)
    cal = catalogues.kepler_stars(apokasc)  # no offsets: old scale, still learnable
    model, validation = labelmodel.build_label_model(cal, n_folds=3, n_estimators=150,
                                                     state_n_estimators=50)
    xg = validation["xgboost"]
    # the mass law has 0.05 Msun noise; a model that learnt nothing scatters by ~0.35
    assert xg["mass"]["overall"]["scatter"] < 0.1
    assert abs(xg["mass"]["overall"]["bias"]) < 0.02
    assert 0.7 < xg["mass"]["overall"]["z_mad_std"] < 1.3
    assert set(xg["mass"]) == {"overall", "unknown", "RGB", "RC", "apokasc2/overall",
                               "apokasc2/unknown", "apokasc2/RGB", "apokasc2/RC"}
    assert "knn" in validation and validation["knn"]["model"] == "knn"
    pred = model.predict(cal)
    assert pred["in_domain"].mean() > 0.9
    inside = pred["in_domain"]
    np.testing.assert_allclose(pred["age"][inside], 10 ** pred["log_age"][inside])
    assert np.all(pred["mass_err"][inside] > 0)


def test_domain_refuses_outside_and_nan():
    apokasc, _ = synthetic_apokasc(n=400)
    cal = catalogues.kepler_stars(apokasc)
    model = labelmodel.LabelModel(n_estimators=50).fit(cal, cal["mass"], cal["log_age"])
    x = np.array([[4500, 2.5, 0.0, 0.1],     # inside
                  [6500, 4.4, 0.0, 0.0],     # a dwarf: outside the box
                  [4500, 2.5, np.nan, 0.1]])  # no [M/H]
    x[0, 0] += 20  # APOKASC scale, no offsets given
    x[0, 2] += 0.05
    x[0, 3] = np.median(cal["alpha_m"])
    pred = model.predict(x)
    assert pred["in_domain"].tolist() == [True, False, False]
    assert np.isfinite(pred["mass"][0]) and np.isnan(pred["mass"][1:]).all()
    assert np.isfinite(model.predict(x[1:2], domain=False)["mass"][0])


def test_bad_input_messages():
    model = labelmodel.LabelModel()
    with pytest.raises(RuntimeError, match="not been fitted"):
        model.predict(np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        model.fit(np.zeros((5, 3)), np.ones(5), np.ones(5))
    with pytest.raises(ValueError, match="alpha_m"):
        labelmodel.LabelModel().fit({"teff": [1], "logg": [1], "m_h": [1]}, [1], [1])
    apokasc, _ = synthetic_apokasc(n=40)
    with pytest.raises(ValueError, match="model must be"):
        labelmodel.cross_validate(catalogues.kepler_stars(apokasc), model="gp")


@pytest.mark.skipif(not (SHARED / "labels" / "apokasc2.fits").exists(),
                    reason="the shared seismic catalogues (../shared/data) are not present")
def test_real_apokasc_subset_scatter():
    """On 1500 real APOKASC-2 giants the label model beats the spread of the masses."""
    from giantfm.train import sources

    apokasc = sources.read_apokasc2(SHARED / "labels" / "apokasc2.fits")
    cal = catalogues.kepler_stars(apokasc)
    cal = cal[np.random.default_rng(0).permutation(len(cal))[:1500]]
    result = labelmodel.cross_validate(cal, n_folds=3, n_estimators=150)
    spread = np.std(cal["mass"])
    assert result["mass"]["overall"]["scatter"] < 0.6 * spread
    assert result["log_age"]["overall"]["scatter"] < 0.2
    assert result["mass"]["RGB"]["scatter"] < result["mass"]["unknown"]["scatter"]


def _apokasc_with_states(n=600, seed=3):
    """Synthetic APOKASC-2 whose state follows the labels (a clump in log g) and sets the mass."""
    apokasc, truth = synthetic_apokasc(n=n, seed=seed)
    clump = (truth["logg"] > 2.3) & (truth["logg"] < 2.6)
    es = np.where(clump, "RC", "RGB").astype("<U7")
    es[::20] = "-9999.0"
    apokasc["ES"] = es
    apokasc["Mcorr"][5:] = np.where(clump, 1.4, 1.0)[5:] + 0.3 * truth["m_h"][5:]
    return catalogues.kepler_stars(apokasc)


@pytest.fixture(scope="module")
def state_model():
    cal = _apokasc_with_states()
    model = labelmodel.LabelModel(n_estimators=40, state_n_estimators=30).fit(
        cal, cal["mass"], cal["log_age"], evstate=cal["evstate"])
    return model, cal


@pytest.mark.skipif(not (SHARED / "labels" / "apokasc2.fits").exists(),
                    reason="the shared seismic catalogues (../shared/data) are not present")
def test_state_classifier_real_out_of_fold():
    """Teff, log g, [M/H], [alpha/M] tell APOKASC-2's RGB from RC stars, out of fold."""
    from giantfm.train import sources

    apokasc = sources.read_apokasc2(SHARED / "labels" / "apokasc2.fits")
    miglio = sources.read_miglio2021(SHARED / "labels" / "miglio2021_kepler_apogee.fits")
    cal = catalogues.kepler_stars(apokasc, miglio=miglio)
    result = labelmodel.cross_validate_state(cal, n_folds=3, state_n_estimators=60)
    known = cal["evstate"] != 0
    assert result["n_known"] == known.sum() and result["n_rc"] == (cal["evstate"] == 2).sum()
    raw = result["metrics"]["none"]
    assert raw["accuracy"] > 0.9 and raw["roc_auc"] > 0.95
    assert result["metrics"][result["method"]]["log_loss"] <= raw["log_loss"]
    assert sum(result["reliability"]["count"]) == known.sum()
    p = result["predictions"]["p_rc"]
    assert np.all((p >= 0) & (p <= 1))


def test_state_aware_save_load_round_trip(state_model, tmp_path):
    model, cal = state_model
    model.state_calibration = {"method": "platt", "a": 1.2, "b": -0.1}
    model.error_scale = {"mass": 1.05, "log_age": 1.07}
    model.save(tmp_path / "lm")
    meta = json.loads((tmp_path / "lm" / "label_model.json").read_text())
    assert meta["format_version"] == labelmodel_runtime.FORMAT_VERSION
    assert meta["states"] == ["RGB", "RC"]
    back = labelmodel_runtime.load_label_model(tmp_path / "lm")
    assert back.state_aware and back.state_calibration == model.state_calibration
    before, after = model.predict(cal), back.predict(cal)
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)
    assert np.isfinite(after["p_rc"][after["in_domain"]]).all()
    np.testing.assert_array_equal(model.state_probability(cal), back.state_probability(cal))


def test_a_label_model_of_the_first_format_predicts_as_its_boosters(tmp_path):
    """A state-blind folder written before ``format_version`` existed (giantfm-default-v3's
    layout) still loads and answers what its boosters give."""
    import xgboost

    apokasc, _ = synthetic_apokasc(n=400)
    cal = catalogues.kepler_stars(apokasc)
    model, _ = labelmodel.build_label_model(cal, n_folds=2, n_estimators=40, states=False,
                                            compare=())
    folder = tmp_path / "lm"
    model.save(folder)
    meta = json.loads((folder / "label_model.json").read_text())
    assert not meta.get("states")
    del meta["format_version"]             # the first format had none
    (folder / "label_model.json").write_text(json.dumps(meta))
    old = labelmodel_runtime.load_label_model(folder)
    assert not old.state_aware
    x = np.array([[4500, 2.5, 0.0, 0.1], [4800, 2.4, -0.3, 0.2], [4300, 1.8, -0.6, 0.25],
                  [4650, 2.9, 0.2, 0.02], [6500, 4.4, 0.0, 0.0], [4500, 2.5, np.nan, 0.1]])
    pred = old.predict(x, domain=False)
    assert np.isnan(pred["p_rc"]).all()
    for name in meta["targets"]:
        booster = xgboost.Booster()
        booster.load_model(str(folder / f"{name}.ubj"))
        q = np.sort(booster.predict(xgboost.DMatrix(x[:5])), axis=1)
        np.testing.assert_array_equal(pred[name][:5], q[:, 1].astype(float))
        np.testing.assert_array_equal(pred[f"{name}_err"][:5],
                                      (q[:, 2] - q[:, 0]) / 2 * meta["error_scale"][name])
        assert np.isnan(pred[name][5])
    with pytest.raises(RuntimeError, match="no state classifier"):
        old.state_probability(x)


def test_state_probabilities_in_unit_interval_and_nan_for_nan(state_model):
    model, cal = state_model
    x = labelmodel.feature_matrix(cal)
    x[3, 2] = np.nan
    p = model.state_probability(x)
    assert np.isnan(p[3]) and np.all((p[np.arange(len(p)) != 3] >= 0) & (p[~np.isnan(p)] <= 1))
    pred = model.predict(x)
    assert np.isnan(pred["p_rc"][~pred["in_domain"]]).all()
    assert not pred["in_domain"][3] and np.isnan(pred["mass"][3])
    inside = pred["in_domain"]
    np.testing.assert_allclose(pred["p_rc"][inside], p[inside])
    # the classifier learnt the clump: mean P(RC) higher for the RC stars
    rc, rgb = cal["evstate"] == 2, cal["evstate"] == 1
    assert np.nanmean(p[rc]) > np.nanmean(p[rgb]) + 0.3
    assert np.isnan(model.quantiles(x)["mass"][0][3])


def test_mixture_uncertainty_holds_each_state_part(state_model):
    model, cal = state_model
    x = labelmodel.feature_matrix(cal)
    parts = model.quantiles_by_state(x)
    mixed = model.quantiles(x)
    p = parts["p_rc"]
    for name in ("mass", "log_age"):
        (v_rc, h_rc), (v_rgb, h_rgb) = parts["RC"][name], parts["RGB"][name]
        value, half = mixed[name]
        tol = 1e-12
        assert np.all(half**2 >= p * h_rc**2 - tol) and np.all(half**2 >= (1 - p) * h_rgb**2 - tol)
        assert np.all(half >= np.minimum(h_rc, h_rgb) - tol)
        assert np.all((value >= np.minimum(v_rc, v_rgb) - tol)
                      & (value <= np.maximum(v_rc, v_rgb) + tol))
    # an even chance between answers 1 and 2 of width 0.1 each: sqrt(0.01 + 0.25)
    even = labelmodel_runtime.combine_states({"p_rc": np.array([0.5]),
                                              "RC": {"mass": (np.array([2.0]), np.array([0.1]))},
                                              "RGB": {"mass": (np.array([1.0]), np.array([0.1]))}})
    np.testing.assert_allclose(even["mass"], [[1.5], [np.sqrt(0.26)]])


def test_state_inputs_checked():
    cal = _apokasc_with_states(n=100)
    bad = np.asarray(cal["evstate"]).copy()
    bad[0] = 3
    with pytest.raises(ValueError, match="evstate holds"):
        labelmodel.LabelModel(n_estimators=5).fit(cal, cal["mass"], cal["log_age"], evstate=bad)
    with pytest.raises(ValueError, match="at least 10 of each"):
        labelmodel.LabelModel().fit_state_classifier(cal[:12], np.r_[np.ones(11), 2])
    with pytest.raises(ValueError, match="probability calibration method"):
        labelmodel.fit_probability_calibration([0.5], [True], "beta")
    with pytest.raises(ValueError, match="unknown probability calibration"):
        labelmodel_runtime.calibrate_probability([0.5], {"method": "beta"})


def test_probability_calibrations_fix_overconfidence():
    """Platt and isotonic calibration of overconfident probabilities (a unit check)."""
    rng = np.random.default_rng(0)
    truth_p = rng.uniform(0.05, 0.95, 4000)
    is_rc = rng.uniform(size=4000) < truth_p
    logit = np.log(truth_p / (1 - truth_p))
    overconfident = 1 / (1 + np.exp(-3 * logit))
    raw = labelmodel.state_metrics(overconfident, is_rc)
    for method in ("platt", "isotonic"):
        fitted = labelmodel.fit_probability_calibration(overconfident, is_rc, method)
        assert json.loads(json.dumps(fitted)) == fitted
        q = labelmodel_runtime.calibrate_probability(overconfident, fitted)
        assert labelmodel.state_metrics(q, is_rc)["log_loss"] < raw["log_loss"]
    assert fitted["x"] == sorted(fitted["x"]) and np.all(np.diff(fitted["y"]) >= 0)
    platt = labelmodel.fit_probability_calibration(overconfident, is_rc, "platt")
    assert platt["a"] == pytest.approx(1 / 3, abs=0.05)
    rel = labelmodel.state_reliability(truth_p, is_rc, n_bins=5)
    assert rel["bin_high"][-1] == 1.0 and sum(rel["count"]) == 4000
    np.testing.assert_allclose(rel["fraction"], rel["p_mean"], atol=0.05)


def test_build_state_aware_validation_and_tables():
    cal = _apokasc_with_states(n=500)
    model, validation = labelmodel.build_label_model(cal, n_folds=3, compare=(),
                                                     n_estimators=40, state_n_estimators=30)
    assert model.state_aware and validation["chosen"] == "xgboost_state"
    chosen = validation[validation["chosen"]]
    assert np.isfinite(chosen["mass_fractional"]["overall"]["scatter"])
    assert np.isfinite(validation["xgboost"]["log_age"]["overall"]["scatter"])
    assert model.error_scale == chosen["error_scale"]
    assert model.state_calibration == chosen["state_classifier"]["calibration"]
    json.dumps(validation)  # JSON-friendly (NaN allowed, as in the dataset's attributes)
    floors, reliability = labelmodel.validation_tables(validation)
    # each state and overall, then the same for the one catalogue of these stars
    assert len(floors) == 32 and set(floors["state"]) == {
        "RGB", "RC", "unknown", "overall", "apokasc2/RGB", "apokasc2/RC", "apokasc2/unknown",
        "apokasc2/overall"}
    row = floors[(floors["state"] == "overall") & (floors["target"] == "mass")][0]
    assert row["floor_blind"] == validation["xgboost"]["mass"]["overall"]["scatter"]
    assert row["floor_state"] == chosen["mass"]["overall"]["scatter"]
    assert len(reliability) == 10 and reliability["count"].sum() == (cal["evstate"] != 0).sum()
    with pytest.raises(ValueError, match="xgboost_state"):
        labelmodel.validation_tables({"xgboost": validation["xgboost"]})
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from giantfm.plotting import reliability_diagram

    ax = reliability_diagram(reliability["p_mean"], reliability["fraction"], reliability["count"],
                             ax=Figure().subplots(), fraction_err=reliability["fraction_err"])
    assert ax.get_xlabel() == r"predicted $P(\rm RC)$"
    assert ax.get_ylabel() == "observed RC fraction"


def test_a_chain_model_fitted_on_noisy_labels():
    """Fitted on noisy copies of the labels, the state classifier is less sure where the
    noise blurs the clump; with noisy_parts='classifier' the per-state masses are the
    clean fit's; the domain stays that of the labels as given; bad noise is refused."""
    cal = _apokasc_with_states()
    x = labelmodel.feature_matrix(cal)
    copies = labelmodel.noisy_copies(x, [50.0, 0.2, 0.1, 0.03], 3, seed=1)
    assert copies.shape == (3 * len(x), 4)
    assert 0.15 < np.nanstd(copies[:len(x), 1] - x[:, 1]) < 0.25
    with pytest.raises(ValueError, match="feature_noise must be 4 values"):
        labelmodel.noisy_copies(x, [50.0, 0.2], 3)
    settings = dict(n_folds=2, compare=(), n_estimators=40, state_n_estimators=30)
    clean, _ = labelmodel.build_label_model(cal, **settings)
    noisy, validation = labelmodel.build_label_model(
        cal, feature_noise=[50.0, 0.2, 0.1, 0.03], noisy_parts="classifier", **settings)
    assert validation["feature_noise"] == [50.0, 0.2, 0.1, 0.03]
    assert validation["noisy_parts"] == "classifier"
    inside = (cal["logg"] > 2.35) & (cal["logg"] < 2.55)
    p_clean, p_noisy = clean.state_probability(cal), noisy.state_probability(cal)
    assert np.median(p_noisy[inside]) < np.median(p_clean[inside])
    for state in labelmodel.STATES:
        np.testing.assert_allclose(noisy.quantiles_by_state(cal)[state]["mass"][0],
                                   clean.quantiles_by_state(cal)[state]["mass"][0])
    np.testing.assert_allclose(noisy.domain.low, clean.domain.low)
    with pytest.raises(ValueError, match="noisy_parts"):
        labelmodel.cross_validate(cal, model="xgboost_state", noisy_parts="some")
