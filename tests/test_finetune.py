"""giantfm.finetune: teaching the bundled model a label of one's own, on real giants with
[C/N] ages (`giantfm.examples.cn_ages`), and the ``giantfm finetune`` command."""
import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable

import giantfm
from giantfm import cli, vocab
from giantfm.exceptions import GiantfmWarning, InvalidNameError
from giantfm.model import loop
from giantfm.tokens import TokenBatch, column_in_unit
from giantfm.teaching import MIN_STARS, finetune, validation_split

#: Few epochs: the mechanics, not the accuracy (docs/results has that).
QUICK = {"epochs": 12, "patience": 0, "progress": "off", "seed": 1}


@pytest.fixture(scope="module")
def stars():
    table = giantfm.examples.cn_ages()
    return table[table["split"] == "train"], table[table["split"] == "test"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, net, stars):
    out = tmp_path_factory.mktemp("cn") / "model"
    model, report = finetune(stars[0], "age_cn", out, log=["age_cn"], model=net, **QUICK)
    return out, model, report


# ---------------------------------------------------------------------------- the fine-tune

def test_report_counts_and_calibrates(stars, tuned):
    _, model, report = tuned
    assert report.n_rows == len(stars[0]) == report.n_train + report.n_val
    assert report.n_val == round(0.2 * len(stars[0])) and not report.left_out
    assert report.labels["age_cn"] == {"column": "age_cn", "unit": "Gyr", "scale": "log10",
                                       "error_column": "age_cn_err"}
    scores = report.validation["age_cn"]
    assert scores["n"] == report.n_val
    # the calibration makes the validation z-scores' MAD-std 1
    assert scores["z_mad_std"] == pytest.approx(1.0, abs=1e-3)
    assert model.metadata.uncertainty_scale["age_cn"] == scores["uncertainty_scale"] > 0
    assert report.epochs_run == QUICK["epochs"] and 1 <= report.best_epoch <= QUICK["epochs"]
    assert model.metadata.training["finetune"]["n_train"] == report.n_train


def test_old_labels_and_embeddings_are_untouched(net, stars, tuned):
    out, model, report = tuned
    for name, change in report.old_labels.items():
        assert change["max_abs_change"] == 0.0, name
    before = giantfm.predict(stars[1], model=net, progress=False)
    after = giantfm.predict(stars[1], model=out, progress=False)
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


def test_saved_model_reloads_and_predicts_the_new_label_with_its_unit(stars, tuned):
    out, model, _ = tuned
    reloaded = giantfm.load_model(out)
    assert reloaded.tokens.token("age_cn").unit == u.Gyr
    assert reloaded.tokens.token("age_cn").scale == "log10"
    assert reloaded.metadata.name.endswith("+age_cn")
    result = giantfm.predict(stars[1], model=reloaded, progress=False)
    assert result.colnames[-6:] == ["age_cn", "age_cn_err", "ood_score", "flag", "flags",
                                    "reason"]
    assert result["age_cn"].unit == u.Gyr and result["age_cn_err"].unit == u.Gyr
    usable = ~np.asarray(result["flag"])
    age = result["age_cn"].unmasked.to_value(u.Gyr)[usable]
    assert usable.sum() > 90 and np.all((age > 0.1) & (age < 30))
    # a real answer: correlated with the catalogue's [C/N] ages, not a constant
    truth = stars[1]["age_cn"].to_value(u.Gyr)[usable]
    assert np.corrcoef(np.log10(age), np.log10(truth))[0, 1] > 0.3
    # the other verbs take it too
    asked = giantfm.request(stars[1][:3], ["age_cn"], model=out)
    np.testing.assert_allclose(asked["age_cn"].unmasked.value,
                               result["age_cn"].unmasked.value[:3], rtol=1e-5)
    assert "bp_inpainted" in giantfm.inpaint(stars[1][:3], model=out).colnames


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
    settings = dict(QUICK, epochs=6)
    whole, _ = finetune(table, "age_cn", tmp_path / "whole", log=["age_cn"], model=net,
                        **settings)
    save = loop.write_checkpoint
    calls = []

    def interrupt_after_three(path, state):
        save(path, state)
        calls.append(state["epoch"])
        if len(calls) == 3:
            raise KeyboardInterrupt
    monkeypatch.setattr(loop, "write_checkpoint", interrupt_after_three)
    with pytest.raises(KeyboardInterrupt):
        finetune(table, "age_cn", tmp_path / "parts", log=["age_cn"], model=net, **settings)
    monkeypatch.setattr(loop, "write_checkpoint", save)
    with pytest.raises(ValueError, match="other settings"):
        finetune(table, "age_cn", tmp_path / "parts", log=["age_cn"], model=net,
                 resume=True, **dict(settings, epochs=7))
    resumed, report = finetune(table, "age_cn", tmp_path / "parts", log=["age_cn"], model=net,
                               resume=True, **settings)
    assert report.epochs_run == 6
    assert not (tmp_path / "parts" / loop.CHECKPOINT_FILE).exists()   # served
    row = whole.rows_of(["age_cn"])[0]
    np.testing.assert_allclose(resumed.network.name_embedding.weight[row].numpy(),
                               whole.network.name_embedding.weight[row].numpy(), rtol=1e-6)


def test_time_limit_keeps_the_best_epoch(tmp_path, net, stars):
    _, report = finetune(stars[0][:100], "age_cn", tmp_path / "m", log=["age_cn"], model=net,
                         **dict(QUICK, epochs=500, max_minutes=1e-4))
    assert report.epochs_run == 1 and report.best_epoch == 1


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
                             **dict(QUICK, epochs=2))
    assert report.n_train + report.n_val == 88
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


# ---------------------------------------------------------------------------- pieces

def test_validation_split_is_seeded_and_disjoint():
    train, val = validation_split(np.arange(100, 200), 0.2, seed=3)
    assert len(val) == 20 and len(train) == 80 and not set(train) & set(val)
    assert set(train) | set(val) == set(range(100, 200))
    np.testing.assert_array_equal(validation_split(np.arange(100, 200), 0.2, seed=3)[1], val)
    assert len(validation_split(np.arange(30), 0.2)[1]) == 10   # at least 10


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
                       "--out", str(out), "--epochs", "3", "--no-progress"])
    assert status == cli.EXIT_OK
    err = capsys.readouterr().err
    assert "cn: validation MAD-std" in err and "giantfm's labels unchanged" in err
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
        finetune(stars[0][:60], "age_cn", tmp_path / "m", model=net, **dict(QUICK, epochs=1))


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
    mean = mean.numpy()[:, 0] * net.normalisation.scale[row[0]] + net.normalisation.median[row[0]]
    np.testing.assert_allclose(mean, net.request(batch, ["teff"])[0][rows, 0], rtol=1e-6)


def test_a_fine_tuned_model_learns_more_labels(tmp_path, stars, tuned):
    out, model, _ = tuned
    table = stars[0].copy()
    table["age_cn_again"] = table["age_cn"]
    again, report = finetune(table, {"cn2": "age_cn_again"}, tmp_path / "m", model=out,
                             errors={"cn2": "age_cn_err"}, **QUICK)
    assert again.tokens.names[-2:] == ("age_cn", "cn2")
    assert "age_cn" not in again.input_names and "cn2" not in again.input_names
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


def test_a_model_of_an_older_vocabulary_learns_a_label(tmp_path, net, stars, as_version_2):
    """A model without p_rc (vocabulary version 2) has fewer network rows than giantfm
    has names: the new label's row follows its own rows."""
    old = as_version_2(net)
    model, report = finetune(stars[0][:80], "age_cn", tmp_path / "m", log=["age_cn"],
                             model=old, **dict(QUICK, epochs=2))
    assert model.config.n_tokens == old.config.n_tokens + 1
    assert model.config.n_input_tokens == old.config.n_tokens
    assert not model.knows("p_rc") and model.knows("age_cn")
    assert report.old_labels["teff"]["max_abs_change"] == 0.0
    batch = giantfm.prediction.as_batch(stars[1][:3], model)
    assert np.all(np.isfinite(model.request(batch, ["age_cn"])[0]))
