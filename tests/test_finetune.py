"""giantfm.finetune: teaching the bundled model a label of one's own, on real giants with
[C/N] ages (`giantfm.examples.cn_ages`), by every method, from every input `predict`
reads, and the ``giantfm finetune`` command."""
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable

import giantfm
from giantfm import cli, vocab
from giantfm.exceptions import GiantfmWarning, InvalidNameError
from giantfm.model import ModelConfig, loop
from giantfm.model.network import AdapterConfig
from giantfm.teaching import (CHECKPOINT_DIR, METHODS, MIN_STARS, FinetuneSettings, finetune,
                              validation_split)
from giantfm.tokens import TokenBatch, column_in_unit

#: The mechanics, not the accuracy (docs/results has that): the probe, fitted in closed
#: form (no epochs, so no warning that more epochs might do better).
QUICK = {"method": "probe", "progress": "off", "seed": 1}
#: An epoch-based method, few epochs, no early stop: the best epoch may be the last, which
#: warns (tests that run it expect the warning or ignore it, as `quietly`).
EPOCHS = {"epochs": 4, "patience": 0, "progress": "off", "seed": 1}


def quietly(call, *args, **kwargs):
    """``call`` with the warning that the best epoch was the last ignored (a few epochs:
    the mechanics)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*the best epoch was the last",
                                category=GiantfmWarning)
        return call(*args, **kwargs)


@pytest.fixture(scope="module")
def stars():
    table = giantfm.examples.cn_ages()
    return table[table["split"] == "train"], table[table["split"] == "test"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, net, stars):
    out = tmp_path_factory.mktemp("cn") / "model"
    model, report = finetune(stars[0], "age_cn", out, log=["age_cn"], model=net, **QUICK)
    return out, model, report


@pytest.fixture(scope="module")
def every_method(tmp_path_factory, net, stars):
    """One fine-tune per method on the same 120 stars."""
    out = {}
    for method in METHODS:
        folder = tmp_path_factory.mktemp(method) / "model"
        settings = QUICK if method == "probe" else dict(EPOCHS, method=method)
        out[method] = (folder, *quietly(finetune, stars[0][:120], "age_cn", folder,
                                        log=["age_cn"], model=net, **settings))
    return out


# ---------------------------------------------------------------------------- the fine-tune

def test_report_counts_and_calibrates_on_the_folds(stars, tuned):
    _, model, report = tuned
    assert report.n_rows == len(stars[0]) == report.n_train and not report.left_out
    assert report.n_folds == FinetuneSettings.default("folds") and report.method == {
        "age_cn": "probe"}
    assert report.labels["age_cn"] == {"column": "age_cn", "unit": "Gyr", "scale": "log10",
                                       "error_column": "age_cn_err"}
    scores = report.validation["age_cn"]
    # every star is scored once, by the fit of the folds that did not learn from it
    assert scores["n"] == report.n_train and scores["method"] == "probe"
    # the calibration makes the out-of-fold z-scores' MAD-std 1
    assert scores["z_mad_std"] == pytest.approx(1.0, abs=1e-3)
    assert model.metadata.uncertainty_scale["age_cn"] == scores["uncertainty_scale"] > 0
    assert scores["mad_std_dex"] == scores["mad_std_token"] < 0.6
    record = model.metadata.training["finetune"]
    assert record["n_train"] == report.n_train and record["method"] == {"age_cn": "probe"}
    assert record["config"]["method"] == ["probe"]
    probe = report.runs["probe"]["labels"][0]
    assert probe["penalty"] in FinetuneSettings.default("probe_penalties")


@pytest.mark.parametrize("method", METHODS)
def test_every_method_leaves_giantfm_answers_bit_identical(net, stars, every_method, method):
    """giantfm's labels, errors, evolutionary state, ood_score, flags and embeddings of the
    fine-tuned model are the starting model's, bit for bit, whatever the method."""
    out, model, report = every_method[method]
    assert report.method == {"age_cn": method}
    for name, change in report.old_labels.items():
        assert change["max_abs_change"] == 0.0, name
    before = giantfm.predict(stars[1], model=net, progress=False)
    after = giantfm.predict(stars[1], model=out, progress=False)
    assert after.colnames == before.colnames[:-4] + ["age_cn", "age_cn_err"] + \
        before.colnames[-4:]
    for column in before.colnames:
        if column != "reason":
            np.testing.assert_array_equal(np.asarray(getattr(after[column], "unmasked",
                                                             after[column])),
                                          np.asarray(getattr(before[column], "unmasked",
                                                             before[column])), err_msg=column)
    np.testing.assert_array_equal(giantfm.embed(stars[1], model=out)["embedding"],
                                  giantfm.embed(stars[1], model=net)["embedding"])
    # the bundled vocabulary stays as it was
    assert "age_cn" not in vocab.VOCABULARY and vocab.N_TOKENS == len(vocab.VOCABULARY)
    # a real answer: finite, positive, not one constant
    age = after["age_cn"].unmasked.to_value(u.Gyr)[~np.asarray(after["flag"])]
    assert np.all(np.isfinite(age) & (age > 0)) and np.std(np.log10(age)) > 0.01


@pytest.mark.parametrize("method, kind", [("prompt", None), ("probe", "probe"),
                                          ("decoder", "decoder")])
def test_each_method_is_part_of_the_saved_network(stars, every_method, method, kind):
    out, model, _ = every_method[method]
    config = json.loads((out / "config.json").read_text())["model_config"]
    row = model.rows_of(["age_cn"])[0]
    expected = [] if kind is None else [kind]
    assert [a["kind"] for a in config["adapters"]] == expected
    assert all(a["row"] == row for a in config["adapters"])
    reloaded = giantfm.load_model(out)
    assert reloaded.config == model.config
    batch = giantfm.prediction.as_batch(stars[1][:20], model)
    np.testing.assert_array_equal(reloaded.request(batch, ["age_cn"])[0],
                                  model.request(batch, ["age_cn"])[0])


def test_auto_cross_validates_every_method_on_the_same_folds(tmp_path, net, stars):
    model, report = quietly(finetune, stars[0][:100], "age_cn", tmp_path / "m",
                            log=["age_cn"], model=net, method="auto",
                            **{k: v for k, v in EPOCHS.items() if k != "method"})
    scores = report.cross_validation["age_cn"]
    assert set(scores) == set(METHODS) and set(report.runs) == set(METHODS)
    best = min(scores, key=lambda m: scores[m]["mad_std_token"])
    assert report.method == {"age_cn": best}
    assert report.validation["age_cn"]["mad_std"] == scores[best]["mad_std"]
    assert all(s["n"] == 100 for s in scores.values())
    for method in ("prompt", "decoder"):
        assert report.runs[method]["epochs_run"] == EPOCHS["epochs"]
    assert model.metadata.training["finetune"]["config"]["method"] == "auto"
    # what was chosen is what answers: the model built with the chosen method alone agrees
    alone, _ = quietly(finetune, stars[0][:100], "age_cn", tmp_path / "alone", log=["age_cn"],
                       model=net, method=best, **{k: v for k, v in EPOCHS.items()
                                                  if k != "method"})
    batch = giantfm.prediction.as_batch(stars[1][:10], model)
    np.testing.assert_allclose(model.request(batch, ["age_cn"])[0],
                               alone.request(batch, ["age_cn"])[0], rtol=1e-5)


def test_the_best_epoch_being_the_last_warns(tmp_path, net, stars):
    with pytest.warns(GiantfmWarning, match=r"fine-tuning \(prompt\): the best epoch was the "
                                            r"last \(1 of 1\)"):
        _, report = finetune(stars[0][:60], "age_cn", tmp_path / "m", model=net,
                             method="prompt", epochs=1, progress="off")
    assert report.runs["prompt"]["still_improving"] is True


def test_the_schedule_scales_with_the_stars():
    settings = FinetuneSettings()
    epochs = {n: settings.schedule(n)[0] for n in (50, 200, 1000, 3000, 100_000)}
    # a few stars: many one-step epochs; many: fewer, longer ones; the bounds hold
    assert epochs[50] == settings.steps and epochs[200] == settings.steps // 4
    assert epochs[1000] == 125 and epochs[3000] == 50 and epochs[100_000] == 50
    assert settings.schedule(1000)[1] == 25 and settings.schedule(50)[1] == 400
    assert FinetuneSettings(epochs=7, patience=3).schedule(1000) == (7, 3)


def test_new_labels_are_answers_only(stars, tuned):
    """The encoder never learned the new token: given as an input it is not read."""
    _, model, _ = tuned
    assert model.config.n_input_tokens == vocab.N_TOKENS
    assert "age_cn" not in model.input_names
    batch = giantfm.prediction.as_batch(stars[1][:5], model)
    given = batch.appended([model.tokens.token_id("age_cn")], np.full((5, 1), 1.0),
                           np.full((5, 1), 0.1))
    np.testing.assert_array_equal(model.request(given, ["teff", "age_cn"])[0],
                                  model.request(batch, ["teff", "age_cn"])[0])


def test_resume_continues_an_interrupted_fine_tune(tmp_path, net, stars, monkeypatch):
    table = stars[0][:120]
    settings = dict(EPOCHS, epochs=6, method="prompt")
    whole, _ = quietly(finetune, table, "age_cn", tmp_path / "whole", log=["age_cn"],
                       model=net, **settings)
    save = loop.write_checkpoint
    calls = []

    def interrupt_after_three(path, state):
        save(path, state)
        calls.append(state["epoch"])
        if len(calls) == 3:
            raise KeyboardInterrupt
    monkeypatch.setattr(loop, "write_checkpoint", interrupt_after_three)
    with pytest.raises(KeyboardInterrupt):
        quietly(finetune, table, "age_cn", tmp_path / "parts", log=["age_cn"], model=net,
                **settings)
    monkeypatch.setattr(loop, "write_checkpoint", save)
    with pytest.raises(ValueError, match="other settings"):
        quietly(finetune, table, "age_cn", tmp_path / "parts", log=["age_cn"], model=net,
                resume=True, **dict(settings, epochs=7))
    resumed, report = quietly(finetune, table, "age_cn", tmp_path / "parts", log=["age_cn"],
                              model=net, resume=True, **settings)
    assert report.runs["prompt"]["epochs_run"] == 6
    assert not (tmp_path / "parts" / CHECKPOINT_DIR).exists()   # served
    row = whole.rows_of(["age_cn"])[0]
    np.testing.assert_allclose(resumed.network.name_embedding.weight[row].numpy(),
                               whole.network.name_embedding.weight[row].numpy(), rtol=1e-6)


def test_resume_takes_a_method_that_had_finished_from_its_checkpoint(tmp_path, net, stars,
                                                                     monkeypatch):
    table = stars[0][:120]
    settings = dict(EPOCHS, method=["prompt", "decoder"])
    _, whole = quietly(finetune, table, "age_cn", tmp_path / "whole", log=["age_cn"],
                       model=net, **settings)
    save = loop.write_checkpoint

    def interrupt_the_decoder(path, state):
        save(path, state)
        if Path(path).parent.name == "decoder":
            raise KeyboardInterrupt
    monkeypatch.setattr(loop, "write_checkpoint", interrupt_the_decoder)
    with pytest.raises(KeyboardInterrupt):
        quietly(finetune, table, "age_cn", tmp_path / "parts", log=["age_cn"], model=net,
                **settings)
    monkeypatch.setattr(loop, "write_checkpoint", save)
    _, resumed = quietly(finetune, table, "age_cn", tmp_path / "parts", log=["age_cn"],
                         model=net, resume=True, **settings)
    prompt = {k: v for k, v in resumed.runs["prompt"].items() if k != "elapsed_s"}
    assert prompt == {k: v for k, v in whole.runs["prompt"].items() if k != "elapsed_s"}
    assert prompt["stopped"] == "epochs" and prompt["epochs_run"] == EPOCHS["epochs"]
    assert resumed.cross_validation == whole.cross_validation


def test_time_limit_keeps_the_best_epoch(tmp_path, net, stars):
    _, report = quietly(finetune, stars[0][:100], "age_cn", tmp_path / "m", log=["age_cn"],
                        model=net, **dict(EPOCHS, method="prompt", epochs=500,
                                          max_minutes=1e-4))
    assert report.runs["prompt"]["epochs_run"] == 1 and report.runs["prompt"]["best_epoch"] == 1
    assert report.runs["prompt"]["stopped"] == "time"


# ---------------------------------------------------------------------------- every input

@pytest.fixture(scope="module")
def spectra(stars):
    """The training stars as one 2-D specutils.Spectrum of their sampled flux, with their
    magnitudes and source_id in its meta (what a user with sampled spectra holds)."""
    specutils = pytest.importorskip("specutils")
    from astropy.nddata import StdDevUncertainty
    from giantfm.xp import coefficients_to_flux
    from giantfm.xp.basis import DEFAULT_WAVELENGTH

    table = stars[0][:80]
    flux, error = coefficients_to_flux(table["bp_coefficients"], table["rp_coefficients"],
                                       table["bp_coefficient_errors"],
                                       table["rp_coefficient_errors"])
    unit = u.W / u.m ** 2 / u.nm
    meta = {name: np.asarray(table[name].value) for name in
            ("phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag")}
    return table, specutils.Spectrum(flux=flux * unit, spectral_axis=DEFAULT_WAVELENGTH * u.nm,
                                     uncertainty=StdDevUncertainty(error * unit),
                                     meta={"source_id": np.asarray(table["source_id"]), **meta})


def test_a_spectrum_with_photometry_and_labels_as_quantities(tmp_path, net, spectra):
    table, spectrum = spectra
    labels = {"age_cn": table["age_cn"], "age_cn_err": table["age_cn_err"]}
    model, report = finetune(spectrum, labels, tmp_path / "m", log=["age_cn"], model=net,
                             **QUICK)
    assert report.n_train == 80 and report.labels["age_cn"]["error_column"] == "age_cn_err"
    # the same stars as an archive table give the same fine-tune but for the fit of the
    # coefficients to the sampled flux: close, not equal -- two fine-tunes, each on its own
    # inputs, agree to a small part of the label's own scatter (0.4 dex on these stars)
    from_table, table_report = finetune(table, "age_cn", tmp_path / "t", log=["age_cn"],
                                        model=net, **QUICK)
    answer = giantfm.predict(spectrum, model=model, progress=False)["age_cn"]
    direct = giantfm.predict(table, model=from_table, progress=False)["age_cn"]
    scatter = table_report.cross_validation["age_cn"]["probe"]["mad_std_dex"]
    assert np.median(np.abs(np.log10(answer.unmasked / direct.unmasked))) < 0.25 * scatter


def test_coefficients_and_a_label_table_aligned_row_by_row(tmp_path, net, stars):
    from giantfm.xp import archive_table, read_xp

    table = stars[0][:80]
    xp = read_xp(table)
    labels = QTable({"source_id": table["source_id"], "cn": table["age_cn"],
                     "cn_err": table["age_cn_err"]})
    model, report = finetune(xp, labels, tmp_path / "m", log=["cn"], model=net, **QUICK)
    assert report.labels["cn"] == {"column": "cn", "unit": "Gyr", "scale": "log10",
                                   "error_column": "cn_err"}
    # the archive layout of the coefficients is what read_xp reads back
    again = read_xp(archive_table(xp))
    for name in ("source_id", "bp", "rp", "bp_err", "rp_err", "bp_n_relevant"):
        np.testing.assert_array_equal(getattr(again, name), getattr(xp, name), err_msg=name)
    assert set(again.mags) == set(xp.mags)
    same, _ = finetune(archive_table(xp), labels, tmp_path / "a", log=["cn"], model=net,
                       **QUICK)
    batch = giantfm.prediction.as_batch(stars[1][:10], model)
    np.testing.assert_array_equal(same.request(batch, ["cn"])[0],
                                  model.request(batch, ["cn"])[0])


def test_archive_table_of_a_spectrum_reads_as_its_coefficients(spectra):
    from giantfm.xp import archive_table, read_xp, spectrum_to_coefficients

    _, spectrum = spectra
    table = archive_table(spectrum)
    fitted = spectrum_to_coefficients(spectrum)
    assert table["phot_g_mean_mag"].unit == u.mag and len(table) == 80
    np.testing.assert_array_equal(read_xp(table).bp, fitted.bp)
    np.testing.assert_array_equal(table["source_id"], spectrum.meta["source_id"])


@pytest.mark.parametrize("labels, error, match", [
    (lambda t: "age_cn", TypeError,
     r"labels names columns \('age_cn'\), but the stars are a Spectrum, not a table"),
    (lambda t: {"age_cn": t["age_cn"][:-1]}, ValueError,
     r"label 'age_cn' has 79 values for 80 stars"),
    (lambda t: {"age_cn": t["age_cn"].value}, ValueError,
     r"label column 'age_cn' has no unit"),
    (lambda t: {"age_cn": t["age_cn"], "x": "age_cn"}, ValueError,
     r"labels mixes column names \('x': 'age_cn'\) with values"),
    (lambda t: QTable({"age_cn": t["age_cn"][:70]}), ValueError,
     r"the label table has 70 rows for 80 stars"),
    (lambda t: QTable({"source_id": t["source_id"][::-1], "age_cn": t["age_cn"]}), ValueError,
     r"the label table's source_id \d+ in row 0 is not the stars' \(\d+\).*80 rows differ"),
])
def test_labels_not_aligned_with_the_stars_are_refused(tmp_path, net, spectra, labels, error,
                                                        match):
    table, spectrum = spectra
    with pytest.raises(error, match=match):
        finetune(spectrum, labels(table), tmp_path / "m", model=net, **QUICK)
    assert not (tmp_path / "m" / "config.json").exists()


# ---------------------------------------------------------------------------- bad input

def test_bad_rows_are_left_out_with_a_count(tmp_path, net, stars):
    table = stars[0][:100].copy()
    table["age_cn"][:7] = np.nan
    table["age_cn"][7:9] = -1 * u.Gyr          # not a valid log10 label
    table["bp_coefficients"][9:12] = np.nan     # no XP tokens
    table["rp_coefficients"][9:12] = np.nan
    with pytest.warns(GiantfmWarning, match=r"left out 12 of 100 rows: 3 no XP tokens.*"
                                            r"9 no usable label"):
        _, report = finetune(table, "age_cn", tmp_path / "m", log=["age_cn"], model=net,
                             **QUICK)
    assert report.n_train == 88
    (reason_xp, n_xp), (reason_label, n_label) = report.left_out.items()
    assert n_xp == 3 and n_label == 9
    assert "age_cn not finite: 7" in reason_label and "age_cn not positive: 2" in reason_label


@pytest.mark.parametrize("label, change, error, match", [
    ("age_cn", lambda t: t.replace_column("age_cn", t["age_cn"].value), ValueError,
     r"label column 'age_cn' has no unit"),
    ("age_cn", lambda t: t.__setitem__("age_cn", np.full(len(t), np.nan) * u.Gyr), ValueError,
     r"label column 'age_cn' has no finite value"),
    ("teff", lambda t: t.rename_column("age_cn", "teff"), InvalidNameError,
     r"label name 'teff' is already a token"),
    ("flag", lambda t: t.rename_column("age_cn", "flag"), InvalidNameError,
     r"label name 'flag' is already a result column"),
    ("age_cn", lambda t: t.remove_columns(["bp_coefficients", "rp_coefficients"]), ValueError,
     r"no XP coefficient columns found"),
])
def test_bad_tables_are_refused_by_name(tmp_path, net, stars, label, change, error, match):
    table = stars[0][:80].copy()
    change(table)
    with pytest.raises(error, match=match):
        finetune(table, label, tmp_path / "m", model=net, **QUICK)
    assert not (tmp_path / "m" / "config.json").exists()


def test_too_few_stars_are_refused(tmp_path, net, stars):
    with pytest.raises(ValueError, match=rf"{MIN_STARS - 1} usable stars .* of {MIN_STARS - 1}; "
                                         rf"a fine-tune needs at least {MIN_STARS}"):
        finetune(stars[0][:MIN_STARS - 1], "age_cn", tmp_path / "m", model=net, **QUICK)


@pytest.mark.parametrize("settings, match", [
    ({"method": "lasso"}, r"method 'lasso': choose 'auto' or one or more of prompt, probe, "
                          r"decoder"),
    ({"method": ("probe", "ridge")}, r"method \('probe', 'ridge'\)"),
    ({"folds": 1}, r"folds must be an integer >= 2, got 1"),
    ({"epochs": 0}, r"epochs must be an integer >= 1, got 0"),
    ({"learning_rate": -1.0}, r"learning_rate must be > 0, got -1.0"),
])
def test_bad_settings_are_refused_by_name(tmp_path, net, stars, settings, match):
    with pytest.raises(ValueError, match=match):
        finetune(stars[0][:80], "age_cn", tmp_path / "m", model=net,
                 **{**QUICK, **settings})


def test_other_refusals(tmp_path, net, stars, tuned):
    table = stars[0][:80]
    with pytest.raises(ValueError, match="label column 'nope' is not in the table"):
        finetune(table, "nope", tmp_path / "m", model=net, **QUICK)
    with pytest.raises(ValueError, match=r"log names \['age'\]"):
        finetune(table, "age_cn", tmp_path / "m", log=["age"], model=net, **QUICK)
    with pytest.raises(ValueError, match="already holds a model"):
        finetune(table, "age_cn", tuned[0], model=net, **QUICK)
    with pytest.raises(u.UnitConversionError, match="error column 'age_cn_err' is in K"):
        bad = table.copy()
        bad["age_cn_err"] = bad["age_cn_err"].value * u.K
        finetune(bad, "age_cn", tmp_path / "m", model=net, **QUICK)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        finetune(table, "age_cn", tmp_path / "fresh", model=net, resume=True, **QUICK)
    with pytest.raises(TypeError, match="settings must be a FinetuneSettings, got dict"):
        finetune(table, "age_cn", tmp_path / "m", model=net, settings={"folds": 3})


def test_val_fraction_is_deprecated_and_ignored(tmp_path, net, stars):
    from astropy.utils.exceptions import AstropyDeprecationWarning
    with pytest.warns(AstropyDeprecationWarning, match="val_fraction is deprecated"):
        _, report = finetune(stars[0][:60], "age_cn", tmp_path / "m", model=net,
                             val_fraction=0.3, **QUICK)
    assert report.n_train == 60


# ---------------------------------------------------------------------------- pieces

def test_validation_split_is_seeded_and_disjoint():
    train, val = validation_split(np.arange(100, 200), 0.2, seed=3)
    assert len(val) == 20 and len(train) == 80 and not set(train) & set(val)
    assert set(train) | set(val) == set(range(100, 200))
    np.testing.assert_array_equal(validation_split(np.arange(100, 200), 0.2, seed=3)[1], val)
    assert len(validation_split(np.arange(30), 0.2)[1]) == 10   # at least 10


def test_folds_are_seeded_and_even():
    from giantfm.model.adaptation import fold_of
    folds = fold_of(103, 5, seed=2)
    assert sorted(np.bincount(folds).tolist()) == [20, 20, 21, 21, 21]
    np.testing.assert_array_equal(fold_of(103, 5, seed=2), folds)
    assert not np.array_equal(fold_of(103, 5, seed=3), folds)


def test_ridge_leave_one_out_is_exact_and_chooses_the_penalty():
    from giantfm.utils._ridge import fit_ridge
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    y = x @ np.array([1.0, -2.0, 0.5, 0.0, 0.0]) + 0.3 * rng.normal(size=60)
    fit = fit_ridge(x, y, [1e-3, 1.0, 100.0])
    assert fit.penalty == 1e-3       # little noise: a small penalty wins
    loo = []
    for i in range(60):          # brute force, with the same standardisation and penalty
        keep = np.arange(60) != i
        a = (x[keep] - fit.centre) / fit.scale
        centred, mean = a - a.mean(axis=0), y[keep].mean()
        coef = np.linalg.solve(centred.T @ centred + fit.penalty * 60 * np.eye(5),
                               centred.T @ (y[keep] - mean))
        loo.append(y[i] - (((x[i] - fit.centre) / fit.scale - a.mean(axis=0)) @ coef + mean))
    np.testing.assert_allclose(fit.loo_residuals, loo, atol=1e-10)
    with pytest.raises(ValueError, match="x has values that are not finite"):
        fit_ridge(np.where(x > 2, np.nan, x), y)


def test_model_config_reads_configs_without_adapters_and_checks_them():
    old = {k: v for k, v in ModelConfig().to_dict().items() if k != "adapters"}
    assert ModelConfig.from_dict(old).adapters == ()
    grown = {**old, "n_tokens": 126, "n_input_tokens": 124}
    config = ModelConfig.from_dict({**grown, "adapters": [
        {"kind": "probe", "row": 124, "feature_rows": [118, 119], "rank": 0},
        {"kind": "decoder", "row": 125, "rank": 4}]})
    assert config.adapters == (AdapterConfig("probe", 124, (118, 119)),
                               AdapterConfig("decoder", 125, rank=4))
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    for adapters, match in (
            ([{"kind": "probe", "row": 12, "feature_rows": [1]}],
             r"row 12 is not an answer-only row \(124..125\)"),
            ([{"kind": "probe", "row": 124, "feature_rows": [125]}],
             r"the probe of row 124 reads rows \[125\]"),
            ([{"kind": "decoder", "row": 124, "rank": 0}], r"a 'decoder' adapter has a rank"),
            ([{"kind": "lora", "row": 124}], r"AdapterConfig.kind must be one of"),
            ([{"kind": "decoder", "row": 124, "rank": 2}] * 2, r"answer row\(s\) \[124\] twice")):
        with pytest.raises(ValueError, match=match):
            ModelConfig.from_dict({**grown, "adapters": adapters})


def test_token_batch_appended_adds_tokens_where_finite():
    batch = TokenBatch(np.array([[1, 2], [3, 0]]), np.ones((2, 2)), np.zeros((2, 2)))
    more = batch.appended([200], np.array([[5.0], [np.nan]]), np.array([[0.5], [np.nan]]))
    assert more.ids.tolist() == [[1, 2, 200], [3, 0, 0]]
    assert more.values[0, 2] == 5.0 and more.errors[0, 2] == 0.5
    with pytest.raises(ValueError, match=r"must be \(2, 1\)"):
        batch.appended([200], np.ones((3, 1)), np.ones((3, 1)))


def test_column_in_unit_converts_and_fills_masks():
    from astropy.utils.masked import Masked
    column = Masked([1.0, 2.0, 3.0] * u.Gyr, mask=[False, True, False])
    np.testing.assert_array_equal(column_in_unit(column, u.Myr, "x"), [1000, np.nan, 3000])
    np.testing.assert_array_equal(column_in_unit(np.array([1.0, 2.0]), u.K, "x"), [1, 2])
    with pytest.raises(u.UnitConversionError, match="x is in Gyr"):
        column_in_unit([1.0] * u.Gyr, u.K, "x")


# ---------------------------------------------------------------------------- command line

def test_cli_finetune_then_predict_with_the_model(tmp_path, capsys, stars):
    path = tmp_path / "stars.fits"
    stars[0][:80].write(path)
    out = tmp_path / "model"
    status = cli.main(["finetune", str(path), "--label", "cn=age_cn", "--log", "cn",
                       "--out", str(out), "--method", "probe", "--folds", "4",
                       "--no-progress"])
    assert status == cli.EXIT_OK
    err = capsys.readouterr().err
    assert "cn: method probe; out-of-fold MAD-std" in err and "giantfm's labels unchanged" in err
    assert "80 stars, 4-fold cross-validated" in err
    result_path = tmp_path / "out.ecsv"
    assert cli.main(["predict", str(path), "-o", str(result_path), "--model", str(out),
                     "--no-progress"]) == cli.EXIT_OK
    result = QTable.read(result_path)
    assert result["cn"].unit == u.Gyr and len(result) == 80


def test_cli_finetune_bad_input_exits_1(tmp_path, capsys, stars):
    path = tmp_path / "stars.fits"
    table = stars[0][:80].copy()
    table.replace_column("age_cn", table["age_cn"].value)
    table.write(path)
    status = cli.main(["finetune", str(path), "--label", "age_cn", "--out",
                       str(tmp_path / "m"), "--no-progress"])
    assert status == 1
    assert "label column 'age_cn' has no unit" in capsys.readouterr().err


def test_cli_predict_refuses_a_folder_without_a_model(tmp_path, capsys):
    status = cli.main(["predict", "in.fits", "-o", str(tmp_path / "o.ecsv"),
                       "--model", str(tmp_path)])
    assert status == cli.EXIT_UNAVAILABLE
    assert "no saved giantfm model" in capsys.readouterr().err


def test_quiet_by_default_for_clean_tables(tmp_path, net, stars):
    with warnings.catch_warnings():
        warnings.simplefilter("error", GiantfmWarning)
        finetune(stars[0][:60], "age_cn", tmp_path / "m", model=net, **QUICK)


def test_encode_gives_what_request_decodes(net, stars):
    """The encoder output a fine-tune caches answers as `request` does, for stars with
    different token counts and a star without XP (left out)."""
    import torch

    table = stars[1][:6].copy()
    table["bp_coefficients"][2] = np.nan
    table["rp_coefficients"][2] = np.nan
    table["j_m"][3] = np.nan
    batch = giantfm.prediction.as_batch(table, net)
    batch = batch.keeping(~((np.arange(batch.ids.shape[1])[None, :] > 40)
                            & (np.arange(6)[:, None] == 4)))      # star 4: fewer tokens
    rows, memory, mask = net.encode(batch)
    assert sorted(rows) == [0, 1, 3, 4, 5]
    row = net.rows_of(["teff"])
    with torch.no_grad():
        mean = net.network.decode(memory, mask, torch.as_tensor(row).expand(len(rows), -1))[0]
        # the path the fine-tune learns by: query vectors, keys and values computed once
        query = net.network.name_embedding.weight[row].expand(len(rows), 1, -1)
        again = net.network.decode_queries(query, memory, mask,
                                           keys_values=net.network.keys_values(memory))[0]
    np.testing.assert_allclose(again.numpy(), mean.numpy(), rtol=1e-6, atol=1e-6)
    mean = mean.numpy()[:, 0] * net.normalisation.scale[row[0]] + net.normalisation.median[row[0]]
    np.testing.assert_allclose(mean, net.request(batch, ["teff"])[0][rows, 0], rtol=1e-6)


def test_a_fine_tuned_model_learns_more_labels(tmp_path, stars, every_method):
    out, model, _ = every_method["decoder"]
    table = stars[0].copy()
    table["age_cn_again"] = table["age_cn"]
    again, report = finetune(table, {"cn2": "age_cn_again"}, tmp_path / "m", model=out,
                             errors={"cn2": "age_cn_err"}, **QUICK)
    assert again.tokens.names[-2:] == ("age_cn", "cn2")
    assert "age_cn" not in again.input_names and "cn2" not in again.input_names
    assert [a.kind for a in again.config.adapters] == ["decoder", "probe"]
    assert report.old_labels["teff"]["max_abs_change"] == 0.0
    result = giantfm.predict(stars[1][:4], model=again, progress=False)
    first = giantfm.predict(stars[1][:4], model=out, progress=False)
    np.testing.assert_array_equal(result["age_cn"].unmasked.value, first["age_cn"].unmasked.value)
    assert result["cn2"].unit == u.Gyr


def test_predict_files_takes_the_fine_tuned_model(tmp_path, stars, tuned):
    pytest.importorskip("pyarrow", reason="predict_files writes Parquet (pyarrow)")
    out, _, _ = tuned
    path = tmp_path / "in" / "stars.fits"
    path.parent.mkdir()
    stars[1][:20].write(path)
    manifest = giantfm.predict_files([path], tmp_path / "out", client="sync", progress=False,
                                     model=out)
    assert list(manifest["status"]) == ["done"] and manifest["rows_out"][0] == 20
    result = QTable.read(tmp_path / "out" / "stars.parquet")
    assert len(result) == 20 and "age_cn" in result.colnames and "age_cn_err" in result.colnames


@pytest.mark.parametrize("method", ["probe", "decoder"])
def test_a_model_of_an_older_vocabulary_learns_a_label(tmp_path, net, stars, as_version_2,
                                                       method):
    """A model without p_rc (vocabulary version 2) has fewer network rows than giantfm
    has names: the new label's row follows its own rows, and the probe reads the labels
    it knows."""
    old = as_version_2(net)
    settings = QUICK if method == "probe" else dict(EPOCHS, method=method, epochs=2)
    model, report = quietly(finetune, stars[0][:80], "age_cn", tmp_path / "m", log=["age_cn"],
                            model=old, **settings)
    assert model.config.n_tokens == old.config.n_tokens + 1
    assert model.config.n_input_tokens == old.config.n_tokens
    assert not model.knows("p_rc") and model.knows("age_cn")
    assert report.old_labels["teff"]["max_abs_change"] == 0.0
    if method == "probe":
        assert model.config.adapters[0].feature_rows == tuple(
            old.rows_of([n for n in vocab.LABEL_NAMES if old.knows(n)]))
    batch = giantfm.prediction.as_batch(stars[1][:3], model)
    assert np.all(np.isfinite(model.request(batch, ["age_cn"])[0]))
