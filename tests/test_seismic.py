"""The seismic calibration set, the library's seismic giants and the scores against them."""
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from giantfm.labelmodel import EVSTATE_CODES, chain_weight
from giantfm.train.dataset.build import SEED, seismic_roles
from giantfm.train.dataset.datafile import SEISMIC_ROLES, SPLITS
from giantfm.train.evaluation import seismic
from giantfm.train.seismic import catalogues

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED / "labels" / "apok2").is_dir(),
                                  reason="needs the shared APO-K2 catalogue (../shared/data)")


def _stars(n, catalogue, seed, mass_factor=1.0):
    """Stars in the calibration set's layout whose mass is a known function of the labels
    (times ``mass_factor``), half RGB and half RC, with K magnitudes 7-12."""
    rng = np.random.default_rng(seed)
    teff = rng.uniform(4300, 5000, n)
    logg = rng.uniform(1.8, 3.2, n)
    m_h = rng.uniform(-0.5, 0.3, n)
    state = np.where(np.arange(n) % 2, EVSTATE_CODES["RC"], EVSTATE_CODES["RGB"])
    mass = (0.8 + 0.6 * (logg - 1.8) + 0.3 * m_h + 0.2 * (state == 2)) * mass_factor
    log_age = 0.9 - 2.5 * np.log10(mass)
    columns = {"apogee_id": [f"{catalogue}{i}" for i in range(n)],
               "catalogue": np.full(n, catalogue), "teff": teff, "logg": logg, "m_h": m_h,
               "alpha_m": rng.uniform(0.0, 0.2, n), "mass": mass, "mass_err": 0.05 * mass,
               "mass_raw": mass, "age": 10 ** log_age, "log_age": log_age,
               "log_age_err": np.full(n, 0.05), "evstate": state.astype(np.int8),
               "kmag": rng.uniform(7, 12, n)}
    columns["age_err"] = columns["age"] * np.log(10) * 0.05
    for name in ("teff", "logg", "m_h", "alpha_m"):
        columns[f"{name}_err"] = np.full(n, 0.01)
    return Table(columns)


def test_harmonisation_puts_k2_masses_on_the_kepler_scale():
    """K2 masses 10 % low at the same labels come back on the Kepler scale, their ages
    shifted alike; the factors are measured on the stars asked for, applied to all."""
    kepler = _stars(1500, "kic", 1)
    k2 = _stars(600, "epic", 2, mass_factor=0.9)
    # ages 0.1 dex older than Kepler's at the same labels (the mass the labels say)
    k2["log_age"] = 0.9 - 2.5 * np.log10(np.asarray(k2["mass"]) / 0.9) + 0.1
    measured_on = np.arange(len(k2)) < 500
    harmonised, factors = catalogues.harmonise_apok2(
        k2, kepler, measured_on=measured_on, n_estimators=80, state_n_estimators=30)
    assert factors["n_measured_on"] == 500
    for state in ("RGB", "RC"):
        assert factors[state]["overall_mass_ratio"] == pytest.approx(0.9, abs=0.03)
        assert factors[state]["overall_log_age_offset"] == pytest.approx(0.1, abs=0.03)
    ratio = np.asarray(harmonised["mass"]) / (np.asarray(k2["mass"]) / 0.9)
    assert np.median(ratio) == pytest.approx(1.0, abs=0.03)
    np.testing.assert_array_equal(harmonised["mass_raw"], k2["mass_raw"])
    # the errors are rescaled with the masses
    np.testing.assert_allclose(harmonised["mass_err"] / harmonised["mass"],
                               k2["mass_err"] / k2["mass"])


def test_k2_ages_are_chosen_by_the_catalogues_state():
    """Warfield's RGB ages go to the catalogue's RGB stars only: a clump star listed in the
    age table keeps no age."""
    apok2 = Table({"apogee": ["2M1", "2M2", "2M3"], "ev": ["RGB", "RC", "RGB"],
                   **{c: [4700.0, 4800.0, 4600.0] for c in ("teff",)},
                   **{c: [2.5, 2.4, 2.6] for c in ("logg",)},
                   **{c: [0.0, 0.0, 0.0] for c in ("feh", "alpham")},
                   **{c: [0.01, 0.01, 0.01] for c in ("teff_err", "logg_err", "feh_err",
                                                      "alpham_err")},
                   "mass": [1.0, 1.2, -999.0], "mass_err": [0.1, 0.1, -999.0],
                   "kmag": [9.0, 9.5, 10.0]})
    ages = Table({"APOGEE": ["2M1", "2M2"], "Age": [5.0, 3.0], "e_Age": [1.0, 1.0],
                  "E_Age": [1.0, 1.0]})
    stars = catalogues.apok2_stars(apok2, ages)
    assert list(stars["apogee_id"]) == ["2M1", "2M2"]     # no mass: not a calibration star
    assert stars["age"][0] == 5.0 and np.isnan(stars["age"][1])
    assert stars["log_age_err"][0] == pytest.approx(0.5 * np.log10(6 / 4))
    assert list(stars["evstate"]) == [EVSTATE_CODES["RGB"], EVSTATE_CODES["RC"]]


def test_excluded_stars_come_back_apart():
    kepler_table = Table({"APOGEE_ID": ["a", "b", "c"], "TEFF": [4700.0] * 3,
                          "TEFF_ERR": [50.0] * 3, "LOGG": [2.5] * 3, "LOGG_ERR": [0.05] * 3,
                          "FE_H": [0.0] * 3, "FE_H_ERR": [0.02] * 3, "MG_H": [0.05] * 3,
                          "MG_H_ERR": [0.02] * 3, "Mcorr": [1.0, 1.1, 1.2],
                          "Mcorr_err": [0.05] * 3, "Age": [5.0] * 3, "Age_err": [0.05] * 3,
                          "ES": ["RGB", "RC", "RGB"]})
    kept, excluded = catalogues.seismic_calibration_set(kepler_table, exclude=["b"],
                                                        return_excluded=True)
    assert list(kept["apogee_id"]) == ["a", "c"] and list(excluded["apogee_id"]) == ["b"]
    assert kept.meta["n_excluded"] == {"apokasc2": 1, "apok2": 0}


@needs_shared
def test_real_calibration_set():
    """The shared catalogues on one scale: APO-K2's labels are DR17 (no offset), its
    masses sit below Kepler's at the same labels, and the library's giants are left out."""
    from giantfm.train.seismic.fit import calibration_from_shared
    from giantfm.train import sources

    library = sources.read_library() if _library_cached() else None
    if library is None:
        pytest.skip("needs the XP library in astropy's cache (giantfm.train.sources)")
    calibration, excluded = calibration_from_shared(SHARED, library, say=lambda *a: None,
                                                    return_excluded=True)
    assert set(np.unique(calibration["catalogue"])) == {"apokasc2", "apok2"}
    assert len(calibration) > 13000
    assert not np.isin(calibration["apogee_id"], library["apogee_id"]).any()
    assert 320 < len(excluded) < 350 and set(np.unique(excluded["catalogue"])) == {"apok2"}
    offsets = calibration.meta["apok2_label_offsets"]
    assert offsets["n_overlap"] == 347
    assert abs(offsets["teff"]["offset"]) < 1 and abs(offsets["logg"]["offset"]) < 0.005
    factors = calibration.meta["apok2"]["harmonisation"]
    assert 0.9 < factors["RGB"]["overall_mass_ratio"] < 0.97
    assert 0.85 < factors["RC"]["overall_mass_ratio"] < 0.95
    k2 = calibration[calibration["catalogue"] == "apok2"]
    # RC stars have no age; RGB ones mostly do
    assert not np.isfinite(k2["age"][k2["evstate"] == EVSTATE_CODES["RC"]]).any()
    assert np.isfinite(k2["age"][k2["evstate"] == EVSTATE_CODES["RGB"]]).mean() > 0.8


def _library_cached():
    from giantfm.train import sources

    try:
        sources.library_path(download=False)
    except FileNotFoundError:
        return False
    return True


def test_seismic_roles():
    ids = np.array([f"2M{i:05d}" for i in range(400)])
    split = np.where(np.arange(400) < 300, SPLITS["train"], SPLITS["val"])
    split[:20] = SPLITS["test"]
    has = np.arange(400) % 4 != 3
    role = seismic_roles(ids, split, has, fraction=0.5, seed=SEED)
    assert np.all(role[~has] == SEISMIC_ROLES["none"])
    assert np.all(role[has & (split == SPLITS["test"])] == SEISMIC_ROLES["test"])
    assert np.all(role[has & (split == SPLITS["val"])] == SEISMIC_ROLES["validation"])
    train = has & (split == SPLITS["train"])
    share = np.mean(role[train] == SEISMIC_ROLES["supervision"])
    assert 0.35 < share < 0.65
    assert set(np.unique(role[train])) == {SEISMIC_ROLES["supervision"],
                                           SEISMIC_ROLES["validation"]}
    # by ID: the same star gets the same role whatever else is there
    again = seismic_roles(ids[::-1], split[::-1], has[::-1], fraction=0.5, seed=SEED)
    np.testing.assert_array_equal(again[::-1], role)
    assert np.all(seismic_roles(ids, split, has, fraction=0.0)[train]
                  == SEISMIC_ROLES["validation"])


def _truth(n=200, seed=0):
    rng = np.random.default_rng(seed)
    evstate = np.where(rng.random(n) < 0.3, EVSTATE_CODES["RC"], EVSTATE_CODES["RGB"])
    mass = rng.uniform(0.8, 2.0, n)
    age = np.where(evstate == EVSTATE_CODES["RGB"], rng.uniform(1, 10, n), np.nan)
    return {"mass": mass, "mass_raw": 0.94 * mass, "mass_err": 0.1 * mass, "age": age,
            "age_err": 0.2 * age, "evstate": evstate.astype(float)}


def test_scores_of_perfect_and_of_wrong_answers():
    truth = _truth()
    perfect = {"mass": truth["mass"].copy(), "mass_err": 0.1 * truth["mass"],
               "age": truth["age"].copy(), "age_err": 0.1 * np.nan_to_num(truth["age"], nan=1),
               "p_rc": (truth["evstate"] == EVSTATE_CODES["RC"]).astype(float)}
    rows = {row["state"]: row for row in seismic.score_seismic(perfect, truth)}
    assert rows["all"]["mass_scatter"] == 0 and rows["all"]["mass_bias"] == 0
    # against K2's masses as they are, 6 % low
    assert rows["all"]["mass_bias_gross"] > 0.04
    assert rows["all"]["accuracy"] == 1 and rows["all"]["roc_auc"] == 1
    assert rows["RC"]["n_age"] == 0 and rows["RGB"]["n_age"] == rows["RGB"]["n"]
    assert rows["all"]["n"] == rows["RGB"]["n"] + rows["RC"]["n"]
    noisy = dict(perfect, mass=truth["mass"] + np.random.default_rng(1).normal(0, 0.2, 200),
                 mass_err=np.full(200, 0.2), p_rc=np.full(200, np.nan))
    noisy["p_rc"][:10] = 0.9
    rows = {row["state"]: row for row in seismic.score_seismic(noisy, truth)}
    assert 0.15 < rows["all"]["mass_scatter"] < 0.25
    # z with the answer's and the seismic error: near 1 for honest errors
    assert 0.7 < rows["all"]["mass_z"] < 1.1
    assert rows["all"]["n_p_rc"] == 10 and rows["all"]["n_p_rc_masked"] == 190


def test_bolometric_correction_and_mass_luminosity():
    # Andrae et al. 2018: BC_G(Teff_sun) = 0.06 mag; none outside 3300-8000 K
    assert seismic.bolometric_correction_g(5772.0) == pytest.approx(0.06)
    assert np.isnan(seismic.bolometric_correction_g(9000.0))
    assert seismic.bolometric_correction_g(4500.0) < seismic.bolometric_correction_g(5500.0)
    # stars whose luminosity goes as M^1.5: both slopes found, from either mass
    n = 120
    rng = np.random.default_rng(2)
    mass = rng.uniform(0.8, 2.2, n)
    teff = np.full(n, 4800.0)
    log_l = 1.5 * np.log10(mass) + 1.6
    absolute_g = 4.74 - seismic.bolometric_correction_g(teff) - 2.5 * log_l
    parallax = np.full(n, 2.0)
    g = absolute_g - 5 * np.log10(parallax / 100.0)
    truth = {"mass": mass, "evstate": np.where(np.arange(n) % 2, 1.0, 2.0), "g": g,
             "teff": teff, "logg": np.full(n, 2.5), "a_k": np.zeros(n), "parallax": parallax,
             "parallax_err": np.full(n, 0.01)}
    answers = {"truth": truth, "model": {"mass": mass * 1.02}}
    table, data = seismic.mass_luminosity(answers)
    for row in table:
        assert row["slope_seismic"] == pytest.approx(1.5, abs=1e-6)
        assert row["slope_giantfm"] == pytest.approx(1.5, abs=1e-6)
    assert table["n"][list(table["state"]).index("all")] == n
    for row in table:   # the luminosity at fixed Teff and log g goes as M^1.5 here too
        assert row["slope_fixed_seismic"] == pytest.approx(1.5, abs=1e-6)
    truth["parallax_err"][:10] = 1.0     # 50 % parallax errors are left out
    assert seismic.mass_luminosity(answers)[0]["n"][2] == n - 10


def test_chain_weight_per_state():
    assert chain_weight(0.4) == 0.4
    p = np.array([0.0, 1.0, 0.5, np.nan])
    np.testing.assert_allclose(chain_weight({"RGB": 0.2, "RC": 1.0}, p), [0.2, 1.0, 0.6, 0.2])
    assert chain_weight({"RGB": 0.2, "RC": 1.0}) == 0.2
