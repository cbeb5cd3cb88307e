"""Model folders that fail say why: damaged files of a model (its weights, its configuration,
its label model) are refused by name with the cause and the fix, and a save -- of a model,
a fine-tuned model or a bundle -- that cannot finish leaves the folder whole or absent.

The damaged folders are copies of the bundled model, cut, overwritten or mixed."""
import errno
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import giantfm
from giantfm.exceptions import ModelFileError
from giantfm.labelmodel import load_label_model
from giantfm.metadata import BUNDLED_MODEL_DIR, read_metadata
from giantfm.model import core, load_model

DAMAGED = "the model folder is damaged: copy it again or re-save the model"


@pytest.fixture
def folder(tmp_path):
    """A copy of the bundled model folder, to damage."""
    return Path(shutil.copytree(BUNDLED_MODEL_DIR, tmp_path / "model"))


@pytest.fixture
def saved(tmp_path, net):
    """The bundled network saved by this giantfm (its configuration records the weights'
    digest), without a label model."""
    return net.save(tmp_path / "saved")


def _cut(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def _refused(path, *patterns):
    """The message of loading the model in ``path``, checked to be a ModelFileError that
    matches every pattern."""
    with pytest.raises(ModelFileError) as info:
        load_model(path, device="cpu")
    message = str(info.value)
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)
    return message


def _files(path):
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------- reading

def test_truncated_weights(folder):
    _cut(folder / "weights.pt")
    _refused(folder, re.escape(f"{folder / 'weights.pt'} is not a readable torch file "
                               "(truncated or corrupt: RuntimeError: PytorchStreamReader "
                               "failed reading zip archive"), re.escape(DAMAGED))


@pytest.mark.parametrize("content", [os.urandom(4096), b"", b"PK\x03\x04" + bytes(100)],
                         ids=["random", "empty", "zip-header"])
def test_corrupt_weights(folder, content):
    (folder / "weights.pt").write_bytes(content)
    _refused(folder, re.escape(f"{folder / 'weights.pt'} is not a readable torch file "
                               "(truncated or corrupt: "), re.escape(DAMAGED))


def test_a_file_given_for_the_folder(folder):
    with pytest.raises(ModelFileError, match=re.escape(
            f"{folder / 'weights.pt'} is a file, not a model folder: give the folder that "
            f"holds config.json and weights.pt ({folder})")):
        load_model(folder / "weights.pt", device="cpu")
    with pytest.raises(FileNotFoundError, match="no saved giantfm model"):
        read_metadata(folder / "weights.pt")


def test_missing_weights(folder):
    (folder / "weights.pt").unlink()
    _refused(folder, f"holds config.json but no weights.pt .*{re.escape(DAMAGED)}")


@pytest.mark.parametrize("damage, pattern", [
    (lambda text: "", r"config.json is not a readable JSON file \(truncated or corrupt: "
                      "ValueError: the file is empty\\)"),
    (lambda text: text[:len(text) // 2], r"config.json is not a readable JSON file "
                                         r"\(truncated or corrupt: JSONDecodeError: "),
    (lambda text: "[1, 2]", r"config.json holds a JSON list, not the object"),
], ids=["empty", "truncated", "not-an-object"])
def test_damaged_config(folder, damage, pattern):
    path = folder / "config.json"
    path.write_text(damage(path.read_text()))
    _refused(folder, pattern, re.escape(DAMAGED))
    with pytest.raises(ModelFileError, match=pattern):   # the verbs' own reading of it
        read_metadata(folder)


@pytest.mark.parametrize("key", ["normalisation", "model_config", "vocab_names"])
def test_config_missing_a_key(folder, key):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    del config[key]
    path.write_text(json.dumps(config))
    _refused(folder, re.escape(f"{path} lacks '{key}'"), re.escape(DAMAGED))


def test_config_with_a_part_that_cannot_be_read(folder):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config["model_config"]["no_such_size"] = 3
    path.write_text(json.dumps(config))
    _refused(folder, re.escape(f"{path} does not describe a network giantfm can build"),
             "no_such_size")


def test_weights_of_another_model(folder, tmp_path, net, as_version_2):
    """The weights of a model of the older vocabulary (fewer token rows) beside the bundled
    model's configuration: their shapes do not fit it."""
    other = as_version_2(net).save(tmp_path / "other")
    shutil.copyfile(other / "weights.pt", folder / "weights.pt")
    _refused(folder, re.escape(f"{folder / 'weights.pt'} does not fit the network "
                               f"{folder / 'config.json'} describes"),
             r"wrong shapes: name_embedding.weight is \(\d+, \d+\), not \(\d+, \d+\)",
             "the two files are of different models")


def test_weights_missing_a_tensor(folder):
    state = torch.load(folder / "weights.pt", weights_only=True)
    first = next(iter(state))
    torch.save({k: v for k, v in state.items() if k != first}, folder / "weights.pt")
    _refused(folder, f"missing tensors: {re.escape(first)}")


def test_weights_not_the_ones_the_config_was_saved_with(saved, tmp_path, net):
    """Same shapes, other values: what a save cut short between its two files leaves (new
    weights beside the old configuration); the digest the configuration records tells."""
    assert "weights_sha256" in json.loads((saved / "config.json").read_text())
    load_model(saved, device="cpu")                    # as saved, it loads
    state = torch.load(saved / "weights.pt", weights_only=True)
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = state[key] + 1.0
    torch.save(state, saved / "weights.pt")
    _refused(saved, re.escape(f"{saved / 'weights.pt'} is not the weights "
                              f"{saved / 'config.json'} was saved with"),
             "a save was cut short between the two files")


def test_truncated_label_model_json(folder):
    _cut(folder / "label_model" / "label_model.json")
    with pytest.raises(ModelFileError, match=re.escape(
            f"{folder / 'label_model' / 'label_model.json'} is not a readable JSON file "
            "(truncated or corrupt: JSONDecodeError")):
        load_label_model(folder / "label_model")


@pytest.mark.parametrize("damage", ["cut", "random"])
def test_corrupt_booster_is_named_by_every_verb(folder, damage):
    """A corrupt .ubj of the label model: the verbs that chain through it say which file."""
    pytest.importorskip("xgboost")
    path = folder / "label_model" / "mass_RC.ubj"
    if damage == "cut":
        _cut(path)
    else:
        path.write_bytes(os.urandom(3000))
    pattern = re.escape(f"{path} is not a readable XGBoost model (truncated or corrupt: ")
    with pytest.raises(ModelFileError, match=pattern + r".*the label model's folder is "
                       "damaged"):
        load_label_model(folder / "label_model")
    with pytest.raises(ModelFileError, match=pattern):
        giantfm.predict(giantfm.examples.load()[:2], model=str(folder), device="cpu",
                        progress=False)


@pytest.mark.parametrize("name", ["domain_points.npy", "log_age_RGB.ubj"])
def test_label_model_file_cut_or_missing(folder, name):
    pytest.importorskip("xgboost")
    path = folder / "label_model" / name
    _cut(path, keep=0.3)
    with pytest.raises(ModelFileError, match=re.escape(f"{path} is not a readable")):
        load_label_model(folder / "label_model")
    path.unlink()
    with pytest.raises(ModelFileError, match=re.escape(f"has no {name}")):
        load_label_model(folder / "label_model")


# ---------------------------------------------------------------------------- saving

def test_saving_onto_a_file_is_refused(tmp_path, net):
    path = tmp_path / "model.pt"
    path.write_text("a file of one's own")
    with pytest.raises(ModelFileError, match=re.escape(
            f"cannot save the model to {str(path)!r}: it is a file, and a model is saved as "
            "a folder of files")):
        net.save(path)
    with pytest.raises(ModelFileError, match=f"it lies under {re.escape(repr(str(path)))}"):
        net.save(path / "inside")
    assert path.read_text() == "a file of one's own"


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("when", ["weights", "config"])
def test_a_full_disk_leaves_no_new_folder(tmp_path, net, monkeypatch, when):
    if when == "weights":
        monkeypatch.setattr(core.torch, "save", _no_space)
    else:
        monkeypatch.setattr(core.json, "dump", _no_space)
    with pytest.raises(OSError, match=re.escape(
            f"cannot save the model to {str(tmp_path / 'new')!r}: no space left on the device")
            ) as info:
        net.save(tmp_path / "new")
    assert info.value.errno == errno.ENOSPC and "nothing was left there" in str(info.value)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("when", ["weights", "config"])
def test_a_full_disk_leaves_the_old_model_as_it_was(saved, net, monkeypatch, when):
    before = _files(saved)
    changed = giantfm.model.TrainedModel(net.network, net.normalisation, device="cpu",
                                         metadata=net.metadata.replace(name="changed"))
    if when == "weights":
        def cut_short(obj, path):   # half a file, then the disk is full
            Path(path).write_bytes(b"PK\x03\x04")
            _no_space()
        monkeypatch.setattr(core.torch, "save", cut_short)
    else:
        monkeypatch.setattr(core.json, "dump", _no_space)
    with pytest.raises(OSError, match="the model that was there is left as it was"):
        changed.save(saved)
    monkeypatch.undo()
    assert _files(saved) == before        # the same files, byte for byte, and no others
    assert load_model(saved, device="cpu").metadata.name == net.metadata.name


def test_a_second_save_replaces_the_first_whole(saved):
    first = json.loads((saved / "config.json").read_text())["weights_sha256"]
    # a model of its own: save(half=True) rounds the in-memory weights, and the shared
    # bundled model must stay as it is for the tests after this one
    load_model(saved, device="cpu").save(saved, half=True)
    config = json.loads((saved / "config.json").read_text())
    assert config["weights_sha256"] != first and config["weights_dtype"] == "float16"
    assert sorted(p.name for p in saved.iterdir()) == ["config.json", "weights.pt"]
    load_model(saved, device="cpu")


# ---------------------------------------------------------------------------- finetune, bundle

def test_finetune_save_onto_a_file_is_refused(tmp_path, net):
    from giantfm.teaching import _save

    path = tmp_path / "tuned"
    path.write_text("not a folder")
    with pytest.raises(ModelFileError, match="cannot save the fine-tuned model to .*it is a "
                       "file"):
        _save(net, path, net)
    assert path.read_text() == "not a folder"


def test_finetune_onto_a_file_fails_before_training(tmp_path, net):
    table = giantfm.examples.cn_ages()[:80]
    path = tmp_path / "tuned"
    path.write_text("not a folder")
    with pytest.raises(ModelFileError, match=re.escape(str(path))):
        giantfm.finetune(table, "age_cn", path, log=["age_cn"], model=net, epochs=1,
                         progress="off")
    assert path.read_text() == "not a folder"


def test_finetune_save_is_whole_or_absent(tmp_path, net, monkeypatch):
    """The fine-tuned model is saved with the starting model's label model; a copy that
    fails leaves no model (and no part of a label model) behind."""
    from giantfm import teaching

    out = tmp_path / "tuned"
    out.mkdir()
    monkeypatch.setattr(teaching.shutil, "copytree", _no_space)
    with pytest.raises(OSError, match="no space left on the device"):
        teaching._save(net, out, net)
    assert list(out.iterdir()) == []
    monkeypatch.undo()
    teaching._save(net, out, net)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "label_model",
                                                     "weights.pt"]
    assert load_model(out, device="cpu").path == out


def test_bundle_onto_a_file_is_refused_before_any_work(tmp_path, capsys):
    from giantfm.train.bundling import bundle

    dest = tmp_path / "bundled"
    dest.write_text("not a folder")
    missing = tmp_path / "no-model"     # refused for the file before these are looked at
    with pytest.raises(ModelFileError, match="cannot save the bundled model to .*it is a file"):
        bundle.bundle_model(missing, tmp_path / "no.h5", name="x", training_note="",
                            dest=dest, say=None)
    assert bundle.main([str(missing), str(tmp_path / "no.h5"), "--name", "x", "--dest",
                        str(dest)]) == 1
    assert "giantfm bundle: error: cannot save the bundled model" in capsys.readouterr().err
    assert dest.read_text() == "not a folder"
    assert not dest.with_name("bundled.staging").exists()


def _measuring_stand_ins(monkeypatch, bundle, label_models):
    """Stand-ins for what a bundle reads and measures from its dataset (that part is tested,
    on a real small dataset, in test_contract.py): here only the writing is tested."""
    from giantfm.metadata import OODCalibration

    validation = {"chosen": "m", "m": {"mass_fractional": {"overall": {"scatter": 0.1}},
                                       "log_age": {"overall": {"scatter": 0.1}}},
                  "domain": {"features": ["teff"], "low": [3500.0], "high": [5500.0]}}
    attrs = {"label_model": {"validation": validation}, "format_version": 1, "counts": {},
             "label_scale": "test"}
    monkeypatch.setattr(bundle, "label_model_path", lambda dataset: label_models)
    monkeypatch.setattr(bundle, "load_arrays", lambda dataset: {"attrs": attrs})
    monkeypatch.setattr(bundle, "label_support", lambda arrays: {"ranges": {}, "kiel": None})
    monkeypatch.setattr(bundle, "calibrate_answers", lambda *args, **kwargs: (None, {}))
    monkeypatch.setattr(bundle, "calibrate_ood", lambda *args, **kwargs: OODCalibration(
        np.zeros(2), np.eye(2), {"g": 1.0, "colour": 1.0, "embedding": 1.0}))


def test_a_bundle_is_written_whole_or_not_at_all(tmp_path, folder, monkeypatch):
    from giantfm.train.bundling import bundle

    dest = Path(shutil.copytree(folder, tmp_path / "bundled"))
    before = _files(dest)
    _measuring_stand_ins(monkeypatch, bundle, folder / "label_model")
    dump = json.dump
    monkeypatch.setattr(core.json, "dump", _no_space)   # the disk fills at the last write
    with pytest.raises(OSError, match="no space left on the device"):
        bundle.bundle_model(folder, tmp_path / "data.h5", name="new", training_note="",
                            dest=dest, say=None)
    assert _files(dest) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundled", "model"]  # no staging
    monkeypatch.setattr(core.json, "dump", dump)
    bundled = bundle.bundle_model(folder, tmp_path / "data.h5", name="new", training_note="",
                                  dest=dest, say=None)
    assert bundled.metadata.name == "new" and read_metadata(dest).name == "new"
    assert (dest / "label_model" / "label_model.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundled", "model"]


def test_the_bundled_model_still_loads(net):
    assert np.isfinite(net.normalisation.scale).all()
    assert load_model(device="cpu").config == net.config


def test_label_model_save_is_whole_or_absent(folder, tmp_path, monkeypatch):
    """A label model's save cut short (a full disk while writing its last file) leaves the
    label model that was there, every file of it; onto a file it is refused."""
    from giantfm import labelmodel

    model = load_label_model(folder / "label_model")
    target = tmp_path / "lm"
    model.save(target)
    before = _files(target)
    real = labelmodel.atomic_write

    def fail_on_meta(path, write):
        if Path(path).name == "label_model.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, write)
    monkeypatch.setattr(labelmodel, "atomic_write", fail_on_meta)
    with pytest.raises(OSError, match="no space left"):
        model.save(target)
    assert _files(target) == before
    assert not list(tmp_path.glob("lm.*"))          # no staging folder left behind
    monkeypatch.setattr(labelmodel, "atomic_write", real)
    load_label_model(target)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ModelFileError, match="is a file"):
        model.save(tmp_path / "a_file")


def test_a_staged_folder_that_cannot_take_its_place_puts_the_old_one_back(tmp_path,
                                                                          monkeypatch):
    """The last step of a whole-folder save (the staging folder renamed onto the folder,
    the old one moved aside) fails: the old folder is back, no staging folder is left."""
    from giantfm.utils._modelfiles import staged_folder

    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    real = Path.rename

    def refuse_the_staging_folder(self, where):
        if self.name == "model.staging":
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(self))
        return real(self, where)
    monkeypatch.setattr(Path, "rename", refuse_the_staging_folder)
    with pytest.raises(OSError, match="cross-device"):
        with staged_folder(target) as staging:
            staging.mkdir()
            (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    monkeypatch.setattr(Path, "rename", real)
    with staged_folder(target) as staging:
        staging.mkdir()
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert [p.name for p in target.iterdir()] == ["new.txt"]


def test_command_line_names_a_damaged_model(folder, tmp_path, capsys):
    """``giantfm predict --model DAMAGED`` blames the model, not the input table."""
    from giantfm import cli

    _cut(folder / "weights.pt")
    table = giantfm.examples.load()[:3]
    table.write(tmp_path / "in.ecsv")
    status = cli.main(["predict", os.fspath(tmp_path / "in.ecsv"), "-o",
                       os.fspath(tmp_path / "out.fits"), "--model", os.fspath(folder),
                       "--no-progress"])
    err = capsys.readouterr().err
    assert status == cli.EXIT_USAGE
    assert "cannot use the model" in err and "weights.pt" in err
    assert "cannot predict from" not in err
