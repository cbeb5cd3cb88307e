"""Tests of giantfm.train.evaluation.evaluate: statistics, experiments, and a synthetic end-to-end run."""
import json

import numpy as np
import pytest

from giantfm import vocab
from giantfm.tokens import TokenBatch, from_arrays, g_flux, to_token_scale
from giantfm.train.evaluation.baseline import INPUT_SETS
from giantfm.train.dataset.build import FORMAT_VERSION
from giantfm.train.evaluation.evaluate import (
    EXPERIMENTS, calibration, evaluate, experiment_inputs, load_split, main, metrics)

h5py = pytest.importorskip("h5py", reason="the dataset file is HDF5")

# The fake model's noise per label in token scale (age in log10 Gyr).
NOISE = {"teff": 50.0, "logg": 0.1, "m_h": 0.05, "alpha_m": 0.02, "mass": 0.1, "age": 0.1}
LABEL_ERR = {"teff": 5.0, "logg": 0.01, "m_h": 0.005, "alpha_m": 0.002, "mass": 0.01}
N_STARS = 6000  # ~780 test giants: the MAD-std of 780 Gaussians is within ~4 % of sigma
# tokens that the fake model treats as informative (the complement of experiment (e))
LOW_ORDERS = [f"{band}{i}" for band in ("bp", "rp") for i in range(25)] + list(vocab.COLOUR_NAMES)


def _names(batch, row):
    return {vocab.NAMES[i] for i in batch.ids[row] if i != vocab.PAD_ID}


def write_dataset(path, n=N_STARS, seed=1):
    """A dataset file in `giantfm.train.dataset.build`'s layout: giants, dwarfs, label-only stars."""
    rng = np.random.default_rng(seed)
    teff = rng.uniform(4000, 5400, n)
    logg = rng.uniform(1.0, 4.5, n)
    giant = logg < 3.5
    m_h = rng.normal(-0.1, 0.3, n)
    alpha_m = rng.normal(0.05, 0.08, n)
    mass = np.where(giant, rng.uniform(0.8, 2.5, n), np.nan)
    age = np.where(giant, 10 ** rng.normal(0.6, 0.3, n), np.nan)
    age_err = 0.01 * age
    # [C/N] ages for about half of the giants, scattered by 0.05 dex around the label model's
    age_cn = np.where(giant & (rng.random(n) < 0.5), age * 10 ** rng.normal(0, 0.05, n), np.nan)
    g = rng.uniform(9, 14, n)
    coeffs = rng.normal(size=(n, 110)) * g_flux(g)[:, None]
    coeffs[:, [0, 55]] += 10 * g_flux(g)[:, None]   # a star's zeroth coefficients are positive
    no_xp = rng.random(n) < 0.05  # label-only stars, as from the seismic catalogues
    coeffs[no_xp] = np.nan
    mags = {"g": np.where(no_xp, np.nan, g), "bp": g + 0.4, "rp": g - 0.8,
            "j": g - 2.0, "h": g - 2.6, "k": g - 2.7}
    mags = {k: np.where(no_xp, np.nan, v) for k, v in mags.items()}
    values = {"teff": teff, "logg": logg, "m_h": m_h, "alpha_m": alpha_m, "mass": mass,
              "age": age}
    errors = {name: np.full(n, e) for name, e in LABEL_ERR.items()}
    errors["age"] = age_err
    batch = from_arrays(bp=coeffs[:, :55], rp=coeffs[:, 55:], mags=mags,
                        labels={k: (values[k], errors[k]) for k in values},
                        source_id=np.arange(n) + 1000)
    split = rng.choice([0, 1, 2], size=n, p=[0.6, 0.2, 0.2]).astype(np.int8)
    with h5py.File(path, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["vocab_version"] = vocab.VOCAB_VERSION
        f.attrs["created"] = "2026-01-01T00:00:00+00:00"
        f["ids"] = batch.ids
        f["values"] = batch.values
        f["errors"] = batch.errors
        f["split"] = split
        f["source_id"] = batch.source_id
        f["apogee_id"] = np.array([f"2M{i:08d}" for i in range(n)], dtype="S10")
        f["source"] = np.full(n, b"synthetic", dtype="S9")
        f["giant"] = giant
        labels = f.create_group("labels")
        for name in values:
            # big-endian on purpose: the reader must hand back native floats
            labels.create_dataset(name, data=values[name].astype(">f4"))
            labels.create_dataset(f"{name}_err", data=errors[name].astype(">f4"))
        labels["age_cn"] = age_cn.astype(np.float32)
        labels["age_cn_err"] = (0.1 * age_cn).astype(np.float32)
        labels["a_k"] = np.zeros(n, dtype=np.float32)
    truth = {name: to_token_scale(name, values[name].astype(np.float32))[0] for name in values}
    return {"split": split, "giant": giant, "truth": truth, "no_xp": no_xp,
            "errors": errors, "age_cn": age_cn}


class FakeModel:
    """Predicts the truth plus known noise; its std doubles without `LOW_ORDERS` tokens.

    The noise drawn is hypot(reported std, label error), so z-scores are N(0, 1).
    Label tokens given as input come straight back (identity).
    """

    def __init__(self, truth, errors):
        self.truth, self.errors = truth, errors
        self.calls = []

    def request(self, batch, names, batch_size=None):
        assert batch.ok.all(), "evaluation must not send unusable stars"
        self.calls.append((len(batch), tuple(names)))
        rng = np.random.default_rng(len(self.calls))
        rows = batch.source_id - 1000
        informative = np.isin(batch.ids, vocab.token_ids(LOW_ORDERS)).any(1)
        mean = np.empty((len(batch), len(names)))
        std = np.empty_like(mean)
        for k, name in enumerate(names):
            given, _ = batch.value_of(name)
            truth_err = to_token_scale(name, np.ones(len(rows)) if name != "age" else
                                       10 ** self.truth["age"][rows],
                                       self.errors[name][rows])[1]
            std[:, k] = NOISE[name] * np.where(informative, 1.0, 2.0)
            noisy = self.truth[name][rows] + rng.normal(size=len(rows)) * np.hypot(std[:, k],
                                                                                   truth_err)
            mean[:, k] = np.where(np.isfinite(given), given, noisy)
        return mean, std


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "dataset.h5"
    return path, write_dataset(path)


def test_metrics_gaussian_residuals():
    rng = np.random.default_rng(42)
    truth = rng.uniform(4000, 5000, 20000)
    pred = truth + 0.3 + 2.0 * rng.normal(size=truth.size)
    pred[:10] = np.nan  # missing predictions are left out, not counted
    m = metrics(pred, truth)
    assert m["n"] == 19990
    assert m["sigma"] == pytest.approx(2.0, rel=0.03)
    assert m["bias"] == pytest.approx(0.3, abs=0.05)
    assert m["p16"] == pytest.approx(0.3 - 2.0, abs=0.1)
    assert m["p84"] == pytest.approx(0.3 + 2.0, abs=0.1)


def test_metrics_robust_to_outliers_and_empty():
    rng = np.random.default_rng(0)
    residual = rng.normal(size=5000)
    residual[:250] = 1e3  # 5 % catastrophic outliers barely move the MAD-std
    m = metrics(residual, np.zeros_like(residual))
    assert 1.0 < m["sigma"] < 1.15
    assert np.std(residual) > 100
    empty = metrics([np.nan], [1.0])
    assert empty["n"] == 0 and np.isnan(empty["sigma"])
    with pytest.raises(ValueError, match="pred has 2 entries but truth has 3"):
        metrics([1, 2], [1, 2, 3])


def test_calibration_z_scores():
    rng = np.random.default_rng(1)
    n = 20000
    truth_err = rng.uniform(0.5, 1.5, n)
    pred_err = rng.uniform(0.5, 2.0, n)
    truth = rng.normal(size=n)
    pred = truth + rng.normal(size=n) * np.hypot(pred_err, truth_err)
    c = calibration(pred, pred_err, truth, truth_err)
    assert c["n"] == n and c["z"].shape == (n,)
    assert c["sigma"] == pytest.approx(1.0, abs=0.03)
    assert c["median"] == pytest.approx(0.0, abs=0.03)
    over = calibration(pred, pred_err / 3, truth, truth_err / 3)  # overconfident by 3
    assert over["sigma"] == pytest.approx(3.0, rel=0.05)
    np.testing.assert_allclose(calibration([2.0], [3.0], [-2.0], [4.0])["z"], [0.8])
    assert np.isnan(calibration([1.0], [0.0], [1.0], [0.0])["z"][0])


def full_batch(n=4):
    rng = np.random.default_rng(3)
    g = np.full(n, 12.0)
    coeffs = rng.normal(size=(n, 110))
    coeffs[:, [0, 55]] += 10   # a star's zeroth coefficients are positive
    coeffs[1, 100:] = np.nan  # star 1 lacks rp45..rp54
    coeffs[2, :] = np.nan  # star 2 has no XP
    coeffs[3, :55] = np.nan
    coeffs[3, 55 + 30:] = np.nan  # star 3: only rp0..rp29 (30 XP tokens)
    mags = {k: g + off for k, off in (("g", 0), ("bp", 0.4), ("rp", -0.8), ("j", -2),
                                      ("h", -2.6), ("k", -2.7))}
    mags["j"][3] = np.nan  # star 3 lacks j_h and j_k
    return from_arrays(bp=coeffs[:, :55], rp=coeffs[:, 55:], mags=mags,
                       labels={"teff": np.full(n, 4500.0), "mass": [1.0, np.nan, 1.2, 1.1],
                               "a_k": np.full(n, 0.05)})


def test_experiment_token_sets():
    batch = full_batch()
    colours = set(vocab.COLOUR_NAMES)
    bp = {f"bp{i}" for i in range(55)}
    rp = {f"rp{i}" for i in range(55)}
    a = experiment_inputs(batch, "xp30_colours")
    assert _names(a, 0) == {f"bp{i}" for i in range(30)} | {f"rp{i}" for i in range(30)} | colours
    assert _names(a, 2) == colours
    assert _names(a, 3) == {f"rp{i}" for i in range(30)} | {"bp_rp", "g_rp", "g_k"}
    full = experiment_inputs(batch, "xp_colours")
    assert _names(full, 0) == bp | rp | colours
    assert _names(full, 1) == bp | {f"rp{i}" for i in range(45)} | colours
    c = experiment_inputs(batch, "xp5_colours")
    assert _names(c, 0) == {f"bp{i}" for i in range(5)} | {f"rp{i}" for i in range(5)} | colours
    e = experiment_inputs(batch, "xp25_54")
    assert _names(e, 0) == {f"bp{i}" for i in range(25, 55)} | {f"rp{i}" for i in range(25, 55)}
    assert _names(e, 3) == {f"rp{i}" for i in range(25, 30)}
    assert not _names(e, 2) and e.reason[2] == "no input tokens for this experiment"
    assert e.ok.tolist() == [True, True, False, True]
    f = experiment_inputs(batch, "identity")
    assert [_names(f, i) for i in range(4)] == [{"teff", "mass"}, {"teff"}, {"teff", "mass"},
                                                {"teff", "mass"}]
    # values travel with their ids
    for exp in (a, e, f):
        for name in ("bp3", "rp27", "teff"):
            v, _ = exp.value_of(name)
            ref, _ = batch.value_of(name)
            has = np.isfinite(v)
            np.testing.assert_array_equal(v[has], ref[has])
    with pytest.raises(ValueError, match="unknown experiment 'xp99'"):
        experiment_inputs(batch, "xp99")


def test_random64_experiment():
    batch = full_batch()
    d = experiment_inputs(batch, "random64", seed=5)
    xp = set(INPUT_SETS["xp_colours"][:110])
    picked = [_names(d, i) & xp for i in range(4)]
    assert [len(p) for p in picked] == [64, 64, 0, 30]  # star 3 has only 30 to give
    assert picked[1] <= _names(batch, 1)
    assert _names(d, 0) - xp == set(vocab.COLOUR_NAMES)  # colours kept, labels dropped
    again = experiment_inputs(batch, "random64", seed=5)
    assert [_names(again, i) for i in range(4)] == [_names(d, i) for i in range(4)]
    other = experiment_inputs(batch, "random64", seed=6)
    assert _names(other, 0) != _names(d, 0)


def test_random64_differs_between_stars():
    batch = TokenBatch.concatenate([full_batch()[:1]] * 3)  # three identical stars
    d = experiment_inputs(batch, "random64", seed=0)
    assert len({frozenset(_names(d, i)) for i in range(3)}) == 3


def test_load_split_native_and_selected(dataset):
    path, info = dataset
    test = load_split(path, "test")
    n_test = int((info["split"] == 2).sum())
    assert len(test.batch) == n_test and test.giant.sum() == info["giant"][info["split"] == 2].sum()
    assert test.labels["teff"].dtype == np.float64 and test.labels["teff"].dtype.isnative
    assert (test.batch.source_id - 1000 == np.flatnonzero(info["split"] == 2)).all()
    assert test.apogee_id[0].startswith("2M")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_split(path, "dev")


def test_evaluate_end_to_end(dataset, tmp_path):
    path, info = dataset
    model = FakeModel(info["truth"], info["errors"])
    table = evaluate(model, path, out_dir=tmp_path, seed=0)
    test = info["split"] == 2
    giants = test & info["giant"]

    def row(experiment, label, reference=None, sample="giants", system="model"):
        sel = ((table["system"] == system) & (table["experiment"] == experiment)
               & (table["label"] == label) & (table["sample"] == sample))
        if reference is not None:
            sel &= table["reference"] == reference
        assert sel.sum() == 1
        return table[sel][0]

    assert set(table["experiment"]) == set(EXPERIMENTS)
    # the label-only stars never reach the model in the XP experiments
    n_xp = int((test & ~info["no_xp"]).sum())
    assert model.calls[0] == (n_xp, vocab.VALUE_LABEL_NAMES)
    for label in ("teff", "logg", "m_h", "alpha_m", "mass"):
        r = row("xp30_colours", label)
        assert r["n"] == int((giants & ~info["no_xp"]).sum()) or label == "mass"
        assert r["sigma"] == pytest.approx(NOISE[label], rel=0.12)
        assert abs(r["bias"]) < 0.3 * NOISE[label]
        assert r["z_sigma"] == pytest.approx(1.0, abs=0.12)
        assert r["pred_err_median"] == pytest.approx(NOISE[label])
        assert row("identity", label)["sigma"] == pytest.approx(0.0, abs=1e-3 * NOISE[label])
    assert row("xp30_colours", "age", "label_model")["unit"] == "Gyr"
    assert row("xp30_colours", "age", "label_model")["z_sigma"] == pytest.approx(1.0, abs=0.15)
    cn = row("xp30_colours", "age", "cn")
    assert cn["n"] == int((giants & ~info["no_xp"] & np.isfinite(info["age_cn"])).sum())
    assert row("xp30_colours", "teff", sample="all")["n"] == n_xp
    # (e): the fake's uncertainties double without BP/RP[0-29]
    assert table.meta["uncertainty_growth"]["teff"] == pytest.approx(2.0)
    assert row("xp25_54", "teff")["pred_err_median"] == pytest.approx(2 * NOISE["teff"])

    from astropy.table import Table
    back = Table.read(tmp_path / "metrics.ecsv")
    assert len(back) == len(table) and back.meta["n_test"] == int(test.sum())
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert len(doc["rows"]) == len(table)
    assert doc["rows"][0]["system"] == "model"
    pytest.importorskip("matplotlib", reason="figures need matplotlib")
    for name in ("one_to_one.png", "kiel.png", "age_mass.png", "calibration.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in tmp_path.iterdir() if p.suffix not in (".png", ".ecsv", ".json")]


def test_evaluate_with_baseline(dataset, tmp_path):
    pytest.importorskip("xgboost", reason="the baseline needs the optional xgboost-cpu package")
    from giantfm.train.evaluation.baseline import fit_baseline

    path, info = dataset
    train, val = load_split(path, "train").batch, load_split(path, "val").batch
    base = fit_baseline(train, val, targets=("teff", "mass"), nthread=1,
                        grid={"max_depth": (2,), "learning_rate": (0.3,), "n_estimators": (5,)})
    model = FakeModel(info["truth"], info["errors"])
    table = evaluate(model, path, base, experiments=["xp30_colours"])
    xgb = table[table["system"] == "xgboost"]
    assert set(xgb["label"]) == {"teff", "mass"} and set(xgb["experiment"]) == {"xp30_colours"}
    assert np.isnan(xgb["z_sigma"]).all() and (xgb["n"] > 0).all()
    # features are random noise here: the baseline cannot beat the fake model
    sigma = {(r["system"], r["label"]): r["sigma"] for r in table
             if r["sample"] == "giants" and r["label"] == "teff"}
    assert sigma["xgboost", "teff"] > sigma["model", "teff"]

    alone = evaluate(None, path, base, tmp_path / "alone")
    assert set(alone["system"]) == {"xgboost"}
    np.testing.assert_array_equal(alone["sigma"], xgb["sigma"])
    assert (tmp_path / "alone" / "metrics.ecsv").is_file()
    assert not list((tmp_path / "alone").glob("*.png"))  # no run predicts all six labels
    with pytest.raises(ValueError, match="need a model"):
        evaluate(None, path, base, experiments=["identity"])
    base.info["dataset_created"] = "2025-12-31T00:00:00+00:00"
    with pytest.warns(UserWarning, match="refit it"):
        evaluate(None, path, base)


def test_baseline_only_figures(dataset, tmp_path):
    pytest.importorskip("xgboost", reason="the baseline needs the optional xgboost-cpu package")
    pytest.importorskip("matplotlib", reason="figures need matplotlib")
    from giantfm.train.evaluation.baseline import fit_baseline

    path, _ = dataset
    train, val = load_split(path, "train").batch, load_split(path, "val").batch
    base = fit_baseline(train, val, nthread=1,
                        grid={"max_depth": (2,), "learning_rate": (0.3,), "n_estimators": (3,)})
    evaluate(None, path, base, tmp_path)
    # no uncertainties from trees: every figure but the calibration histograms
    drawn = sorted(p.name for p in tmp_path.glob("*.png"))
    assert drawn == ["age_mass.png", "kiel.png", "one_to_one.png"]


def test_main_uses_load_model(dataset, tmp_path, monkeypatch):
    path, info = dataset
    import giantfm.model

    loaded = {}

    def fake_load_model(where, device=None):
        loaded["where"], loaded["device"] = where, device
        return FakeModel(info["truth"], info["errors"])
    monkeypatch.setattr(giantfm.model, "load_model", fake_load_model, raising=False)
    assert main(["--model", "somewhere", "--dataset", str(path), "--out", str(tmp_path),
                 "--experiments", "xp5_colours", "--no-figures"]) == 0
    assert loaded == {"where": "somewhere", "device": None}
    assert (tmp_path / "metrics.ecsv").is_file() and not list(tmp_path.glob("*.png"))


def test_evaluate_accepts_the_real_model_class(dataset):
    pytest.importorskip("torch", reason="giantfm.model needs torch")
    from giantfm.model import ModelConfig, Normalisation, TokenSetTransformer, TrainedModel

    path, info = dataset
    train = load_split(path, "train").batch
    config = ModelConfig(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1)
    model = TrainedModel(TokenSetTransformer(config), Normalisation.fit(train.ids, train.values),
                         device="cpu")
    table = evaluate(model, path, experiments=["xp5_colours", "identity"])
    assert set(table["experiment"]) == {"xp5_colours", "identity"}
    # an untrained network still answers every usable star with a finite mean and std
    assert (table[table["sample"] == "all"]["n"] > 0).all()
    assert np.isfinite(table["z_sigma"]).all()


def test_baseline_command_line(dataset, tmp_path, capsys, monkeypatch):
    pytest.importorskip("xgboost", reason="the baseline needs the optional xgboost-cpu package")
    from giantfm.train.evaluation import baseline

    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # main sets it otherwise: keep it local

    path, _ = dataset
    assert baseline.main(["--dataset", str(path), "--out", str(tmp_path / "b"),
                          "--features", "xp5_colours", "--nthread", "1",
                          "--grid", '{"max_depth": [2, 3], "n_estimators": [5]}']) == 0
    fitted = baseline.load_baseline(tmp_path / "b")
    assert fitted.name == "xp5_colours" and fitted.targets == vocab.VALUE_LABEL_NAMES
    assert fitted.info["dataset_created"] == "2026-01-01T00:00:00+00:00"
    assert [p["max_depth"] for p in fitted.info["grid"]] == [2, 3]
    assert "saved to" in capsys.readouterr().out
