"""Tests of the DistMass-like label model (giantfm.train.labelmodel)."""
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from giantfm.train import labelmodel

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
    off = labelmodel.measure_scale_offsets(apokasc, lib)
    assert off["n_overlap"] == 20
    assert off["teff"]["offset"] == pytest.approx(20, abs=8)  # 10 K noise, 19 stars
    assert off["teff"]["n_clipped"] == 1
    assert off["m_h"]["offset"] == pytest.approx(0.05, abs=1e-3)
    assert off["alpha_m"]["offset"] == pytest.approx(0.0, abs=1e-3)


def test_calibration_set_on_dr17_scale_and_drops_missing():
    apokasc, truth = synthetic_apokasc()
    off = labelmodel.measure_scale_offsets(apokasc, library_like(apokasc, truth, np.arange(50)))
    cal = labelmodel.seismic_calibration_set(apokasc, offsets=off)
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
    cal = labelmodel.seismic_calibration_set(apokasc)
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
    cal = labelmodel.seismic_calibration_set(apokasc, miglio=miglio)
    # rows 5..11 survive; of these, the unknown-ES ones (index % 3 == 2) are 5, 8, 11
    assert cal.meta["n_evstate_from_miglio"] == 3
    assert np.all(cal["evstate"][:7][[0, 3, 6]] == 2)


def test_model_learns_mass_law_and_calibrates_errors():
    apokasc, truth = synthetic_apokasc(n=800)
    cal = labelmodel.seismic_calibration_set(apokasc)  # no offsets: old scale, still learnable
    model, validation = labelmodel.build_label_model(cal, n_folds=3, n_estimators=150)
    xg = validation["xgboost"]
    # the mass law has 0.05 Msun noise; a model that learnt nothing scatters by ~0.35
    assert xg["mass"]["overall"]["scatter"] < 0.1
    assert abs(xg["mass"]["overall"]["bias"]) < 0.02
    assert 0.7 < xg["mass"]["overall"]["z_mad_std"] < 1.3
    assert set(xg["mass"]) == {"overall", "unknown", "RGB", "RC"}
    assert "knn" in validation and validation["knn"]["model"] == "knn"
    pred = model.predict(cal)
    assert pred["in_domain"].mean() > 0.9
    inside = pred["in_domain"]
    np.testing.assert_allclose(pred["age"][inside], 10 ** pred["log_age"][inside])
    assert np.all(pred["mass_err"][inside] > 0)


def test_domain_refuses_outside_and_nan():
    apokasc, _ = synthetic_apokasc(n=400)
    cal = labelmodel.seismic_calibration_set(apokasc)
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
        labelmodel.cross_validate(labelmodel.seismic_calibration_set(apokasc), model="gp")


@pytest.mark.skipif(not (SHARED / "labels" / "apokasc2.fits").exists(),
                    reason="the shared seismic catalogues (../shared/data) are not present")
def test_real_apokasc_subset_scatter():
    """On 1500 real APOKASC-2 giants the label model beats the spread of the masses."""
    from giantfm.train import sources

    apokasc = sources.read_apokasc2(SHARED / "labels" / "apokasc2.fits")
    cal = labelmodel.seismic_calibration_set(apokasc)
    cal = cal[np.random.default_rng(0).permutation(len(cal))[:1500]]
    result = labelmodel.cross_validate(cal, n_folds=3, n_estimators=150)
    spread = np.std(cal["mass"])
    assert result["mass"]["overall"]["scatter"] < 0.6 * spread
    assert result["log_age"]["overall"]["scatter"] < 0.2
    assert result["mass"]["RGB"]["scatter"] < result["mass"]["unknown"]["scatter"]
