"""Tests of the XGBoost baseline on small synthetic token batches (mechanics only)."""
import json

import numpy as np
import pytest

from giantfm import vocab
from giantfm.tokens import TokenBatch, from_arrays, g_flux

pytest.importorskip("xgboost", reason="the baseline needs the optional xgboost-cpu package")

from giantfm.train.evaluation.baseline import (  # noqa: E402
    INPUT_SETS, feature_matrix, fit_baseline, input_names, load_baseline, predict_baseline)

TINY_GRID = {"max_depth": (3,), "learning_rate": (0.3,), "n_estimators": (60,)}
# One thread: with OpenMP's default busy-waiting, two threads on a loaded 2-core machine
# measured ~60x slower than one for these tiny fits.
ONE = {"nthread": 1}


def synthetic_batch(n, seed):
    """Stars whose XP coefficients are a linear image of (teff, logg); all tokens present."""
    rng = np.random.default_rng(seed)
    teff = rng.uniform(4000, 5400, n)
    logg = rng.uniform(1.0, 3.5, n)
    design = np.random.default_rng(0).normal(size=(2, 110))
    x = np.column_stack([(teff - 4700) / 400, (logg - 2.2) / 0.7])
    g = rng.uniform(9, 14, n)
    coeffs = (x @ design + 0.01 * rng.normal(size=(n, 110))) * g_flux(g)[:, None]
    coeffs[:, [0, 55]] += 10 * g_flux(g)[:, None]   # a star's zeroth coefficients are positive
    return from_arrays(bp=coeffs[:, :55], rp=coeffs[:, 55:],
                       mags={"g": g, "bp": g + 0.4, "rp": g - 0.8, "j": g - 2, "h": g - 2.6,
                             "k": g - 2.7},
                       labels={"teff": (teff, np.full(n, 20.0)), "logg": logg},
                       source_id=np.arange(n))


@pytest.fixture(scope="module")
def fitted():
    train, val = synthetic_batch(300, 1), synthetic_batch(100, 2)
    return fit_baseline(train, val, targets=("teff", "logg"), features="xp30_colours",
                        grid=TINY_GRID, **ONE), train, val


def test_input_names():
    assert input_names("xp30_colours") == tuple(
        [f"bp{i}" for i in range(30)] + [f"rp{i}" for i in range(30)]
        + ["bp_rp", "g_rp", "j_h", "j_k", "g_k"])
    assert input_names(["teff", "bp3"]) == ("teff", "bp3")
    with pytest.raises(ValueError, match="unknown input set 'xp99'"):
        input_names("xp99")
    with pytest.raises(ValueError, match="unknown token name 'bp77'"):
        input_names(["bp77"])
    with pytest.raises(ValueError, match="repeats"):
        input_names(["bp1", "bp1"])


def test_feature_matrix_columns_and_missing_tokens():
    ids = np.array([[vocab.token_id("rp2"), vocab.token_id("bp0"), vocab.token_id("teff")],
                    [vocab.token_id("bp0"), 0, 0],
                    [vocab.token_id("rp2"), 0, 0]])
    values = np.array([[3.0, 1.0, 4500.0], [2.0, 0, 0], [5.0, 0, 0]])
    batch = TokenBatch(ids, values, np.zeros_like(values),
                       reason=np.array(["", "", "bad row"], dtype=object))
    x = feature_matrix(batch, ["bp0", "rp2", "g_k"])
    np.testing.assert_array_equal(x[0], [1.0, 3.0, np.nan])  # teff is not a feature
    np.testing.assert_array_equal(x[1], [2.0, np.nan, np.nan])
    assert np.isnan(x[2]).all()  # a row with a reason is masked, not dropped
    assert x.dtype == np.float32 and x.dtype.isnative


def test_fit_predict_learns_and_records_tuning(fitted):
    baseline, train, val = fitted
    assert baseline.features == INPUT_SETS["xp30_colours"]
    assert baseline.targets == ("teff", "logg")
    assert set(baseline.hyperparameters) == {"teff", "logg"}
    assert 1 <= baseline.hyperparameters["teff"]["n_trees"] <= 60
    test = synthetic_batch(200, 3)
    pred = predict_baseline(baseline, test)
    truth = np.column_stack([test.value_of("teff")[0], test.value_of("logg")[0]])
    rms = np.sqrt(np.mean((pred - truth) ** 2, axis=0))
    # well below the spread of the labels themselves (a constant would give ~1)
    assert np.all(rms / truth.std(axis=0) < 0.35)
    assert baseline.validation["teff"]["n"] == 100
    assert baseline.validation["teff"]["sigma"] < 0.35 * truth[:, 0].std()


def test_grid_search_picks_best_validation_point():
    train, val = synthetic_batch(300, 1), synthetic_batch(100, 2)
    grid = {"max_depth": (1, 4), "learning_rate": (0.3,), "n_estimators": (40,)}
    baseline = fit_baseline(train, val, targets=("logg",), grid=grid, **ONE)
    assert len(baseline.info["grid"]) == 2
    singles = [fit_baseline(train, val, targets=("logg",), grid=dict(grid, max_depth=(d,)), **ONE)
               for d in (1, 4)]
    best = min(singles, key=lambda b: b.validation["logg"]["sigma"])
    assert baseline.validation["logg"] == best.validation["logg"]
    assert baseline.hyperparameters["logg"] == best.hyperparameters["logg"]


def test_save_load_roundtrip(fitted, tmp_path):
    baseline, _, _ = fitted
    baseline.save(tmp_path / "b")
    meta = json.loads((tmp_path / "b" / "baseline.json").read_text())
    assert meta["targets"] == ["teff", "logg"]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "baseline.json", "logg.json", "teff.json"]
    loaded = load_baseline(tmp_path / "b")
    test = synthetic_batch(50, 4)
    np.testing.assert_array_equal(predict_baseline(loaded, test),
                                  predict_baseline(baseline, test))
    assert loaded.hyperparameters == baseline.hyperparameters
    with pytest.raises(FileNotFoundError, match="no baseline.json"):
        load_baseline(tmp_path)


def test_request_interface_and_unpredictable_rows(fitted):
    baseline, _, _ = fitted
    test = synthetic_batch(5, 5)
    labels_only = test.without(INPUT_SETS["xp_colours"])  # no input tokens left
    mean, std = baseline.request(TokenBatch.concatenate([test, labels_only]), ["logg"])
    assert mean.shape == std.shape == (10, 1)
    assert np.isfinite(mean[:5]).all() and np.isnan(mean[5:]).all()
    assert np.isnan(std).all()
    with pytest.raises(ValueError, match="cannot predict"):
        predict_baseline(baseline, test, ["mass"])


def test_fit_refuses_bad_inputs():
    train, val = synthetic_batch(50, 1), synthetic_batch(20, 2)
    with pytest.raises(ValueError, match="also input features"):
        fit_baseline(train, val, targets=("teff",), features=["teff", "bp0"], grid=TINY_GRID, **ONE)
    with pytest.raises(ValueError, match="target 'mass' has 0 training"):
        fit_baseline(train, val, targets=("mass",), grid=TINY_GRID, **ONE)
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        fit_baseline(train, val, targets=("teff",), grid={"depth": (3,)}, **ONE)


def test_labels_to_coefficients_baseline():
    train, val = synthetic_batch(300, 1), synthetic_batch(100, 2)
    generator = fit_baseline(train, val, targets=("bp0", "rp3"), features="labels",
                             grid=TINY_GRID, **ONE)
    test = synthetic_batch(100, 3)
    pred = predict_baseline(generator, test)
    truth = test.value_of("bp0")[0]
    assert np.corrcoef(pred[:, 0], truth)[0, 1] > 0.9


def test_tiny_scale_targets_are_learned():
    # Coefficients divided by the G flux are ~1e-5; XGBoost's fixed minimum split gain
    # (1e-6) stops unscaled trees on such targets, so the fit must standardise them.
    def shrink(batch):
        bp0 = batch.ids == vocab.token_id("bp0")
        return TokenBatch(batch.ids, np.where(bp0, batch.values * 1e-6, batch.values),
                          batch.errors, batch.source_id)
    train, val, test = (shrink(synthetic_batch(n, seed))
                        for n, seed in ((300, 1), (100, 2), (100, 3)))
    generator = fit_baseline(train, val, targets=("bp0",), features="labels",
                             grid=TINY_GRID, **ONE)
    pred = predict_baseline(generator, test)[:, 0]
    truth = test.value_of("bp0")[0]
    assert np.corrcoef(pred, truth)[0, 1] > 0.9
    assert np.median(np.abs(pred - truth)) < 0.2 * np.std(truth)
