"""giantfm.train.evaluation.generative: the scoring of inpainting, generation and the physics checks.

Run with the bundled model on the real example stars (test split) and, for the
sweeps' comparison with data, on synthetic training labels (mechanics only).
"""
import numpy as np
import pytest
from astropy.table import Table

import giantfm
from giantfm.prediction import get_model
from giantfm.train.evaluation import generative

pytest.importorskip("dust_extinction", reason="the extinction check needs dust_extinction")


@pytest.fixture(scope="module")
def model():
    return get_model(device="cpu")


@pytest.fixture(scope="module")
def example_batch():
    stars = giantfm.examples.load()
    labels = {name: np.asarray(stars[f"apogee_{name}"].value, dtype=float)
              for name in ("teff", "logg", "m_h", "alpha_m")}
    return giantfm.tokenize(stars, labels=labels, truncate=False)


def _table(rows):
    return Table(rows=[tuple(r.values()) for r in rows], names=list(rows[0]))


def test_inpainting_rows_and_quality(model, example_batch):
    rows = []
    out = generative.inpainting(model, example_batch, rows)
    table = _table(rows)
    assert set(table["case"]) == set(generative.INPAINTING_CASES)
    assert np.all(np.isfinite(table["value"])) and np.all(table["n"] == len(example_batch))
    value = {(r["case"], r["metric"]): r["value"] for r in table}
    # high orders of these bright stars carry little: they come back within ~their errors
    assert value[("high_from_low", "coefficient_rms_in_errors")] < 3
    assert value[("rp_from_bp", "flux_fractional_residual")] < 0.05
    for case in generative.INPAINTING_CASES:
        assert 0.3 < value[(case, "coefficient_z_mad_std")] < 3
        filled, filled_err = out[case]
        assert filled.shape == (len(example_batch), 110) and np.isfinite(filled_err).all()


def test_generation_rows(model, example_batch):
    rows = []
    giant = np.ones(len(example_batch), bool)
    generative.generation(model, example_batch, rows, giant=giant)
    table = _table(rows)
    assert {"chi2_reduced_obs_errors", "chi2_reduced_with_model_sigma",
            "flux_fractional_residual"} <= set(table["metric"])
    assert np.all(np.isfinite(table["value"]))
    with_sigma = table[table["metric"] == "chi2_reduced_with_model_sigma"]["value"]
    obs_only = table[table["metric"] == "chi2_reduced_obs_errors"]["value"]
    assert np.all(with_sigma < obs_only)


def test_extinction_sweep_reddens_like_dust(model):
    rows = []
    wavelength, a_k, curves, fitted, rv, ratio = generative.extinction_sweep(model, rows)
    from dust_extinction.parameter_averages import F99
    assert F99.Rv_range[0] <= rv <= F99.Rv_range[1]
    value = {r["metric"]: r["value"] for r in rows}
    assert value["blue_minus_red_per_ak"] > 0   # more dust, redder
    assert value["fit_rms"] < 0.3
    assert curves.shape == fitted.shape == (len(a_k), len(wavelength))


def test_sweeps_follow_the_giant_branch(model):
    rng = np.random.default_rng(0)
    n = 20000
    logg = rng.uniform(1.0, 3.4, n)
    m_h = rng.uniform(-1.2, 0.5, n)
    mass = rng.uniform(0.9, 2.5, n)
    train = {"logg": logg, "m_h": m_h, "mass": mass,
             "teff": 4750 + 450 * (logg - 2.5) - 250 * m_h + rng.normal(0, 50, n),
             "age": 8.0 * mass ** -2.8}
    rows = []
    kiel = generative.kiel_sweep(model, train, rows)
    value = {(r["case"], r["metric"]): r["value"] for r in rows}
    for feh in kiel:
        assert value[(f"kiel [M/H]={feh:+.1f}", "dteff_dlogg_model")] > 0   # hotter at higher g
    assert value[("kiel log g=2.5", "dteff_dmh_model")] < 0               # metal-poor: hotter
    assert value[("kiel log g=2.5", "dteff_dmh_data")] == pytest.approx(-250, abs=30)
    rows = []
    generative.mass_age_sweep(model, train, rows)
    for r in rows:
        if r["metric"] == "spearman_mass_age_model":
            assert r["value"] < -0.9                                       # mass up, age down
        if r["metric"] == "dlogage_dlogmass_data":
            assert r["value"] == pytest.approx(-2.8, abs=0.05)
