"""Edge cases of the input edge found in review: each once gave a wrong answer or a bare error."""
import numpy as np
import pytest
from astropy import units as u
from astropy.table import MaskedColumn, QTable, Table

import giantfm
from giantfm import tokens
from giantfm.xp import read_xp
from giantfm.xp.noise import faint_copy
from giantfm.xp.readers import read_source_ids


@pytest.fixture(scope="module")
def stars():
    table = giantfm.examples.load()
    keep = [name for name in table.colnames if not name.startswith(("apogee", "labelmodel"))]
    return table[keep][:4]


def test_predict_takes_a_dict_of_archive_columns(stars):
    pytest.importorskip("torch", reason="prediction needs torch")
    as_dict = {name: stars[name] for name in stars.colnames}
    from_dict = giantfm.predict(as_dict, progress=False)
    from_table = giantfm.predict(stars, progress=False)
    assert np.allclose(from_dict["teff"].value, from_table["teff"].value)


def test_a_result_read_back_is_predicted_despite_its_reason_column(stars):
    pytest.importorskip("torch", reason="prediction needs torch")
    table = stars.copy()
    table["reason"] = ["ignored j_m = 99: a catalogue's missing-value sentinel", "", "", ""]
    result = giantfm.predict(table, progress=False)
    assert not result["teff"].mask.any()
    # a reason on a row without coefficients (fetch_xp's) is kept
    empty = stars.copy()
    bp = np.array(empty["bp_coefficients"])
    rp = np.array(empty["rp_coefficients"])
    bp[1], rp[1] = np.nan, np.nan
    empty["bp_coefficients"], empty["rp_coefficients"] = bp, rp
    empty["reason"] = ["", "not in the archive (test)", "", ""]
    assert read_xp(empty).reason[1] == "not in the archive (test)"


def test_tokenising_leaves_the_callers_reasons_alone(stars):
    xp = read_xp(stars)
    xp.bp[0] = 0.0                                   # not a spectrum: the row gets a reason
    before = list(xp.reason)
    batch = tokens.from_xp(xp)
    assert "not a star's" in batch.reason[0]
    assert list(xp.reason) == before


def test_a_copy_at_its_own_g_keeps_unknown_errors_unknown(stars):
    xp = read_xp(stars)
    xp.bp_err[0] = np.nan
    copy = faint_copy(xp, np.full(len(xp), 5.0), rng=np.random.default_rng(1))  # brighter
    assert np.isnan(copy.bp_err[0]).all()
    assert np.array_equal(copy.bp, xp.bp, equal_nan=True)


def test_exact_label_errors_are_not_bad_errors():
    batch = tokens.from_arrays(labels={"mass": (np.array([1.2]), np.array([0.0])),
                                       "teff": (np.array([4800.0]), np.array([-5.0]))})
    assert "mass_err" not in batch.notes[0]
    assert "teff_err (-5) with none (unknown)" in batch.notes[0]


def test_source_ids_from_floats_and_text():
    notes = np.full(3, "", dtype=object)
    ids = read_source_ids(MaskedColumn([1.0, np.nan, 3.0], name="source_id"), notes)
    assert ids.tolist() == [1, -1, 3]
    with pytest.raises(ValueError, match="floating-point"):
        read_source_ids(np.array([4.0e18]), notes)


def test_photometry_joined_on_text_and_missing_source_ids(stars):
    xp = stars[:2]
    phot = Table({"source_id": [f"Gaia DR3 {sid}" for sid in stars["source_id"][:2]] + [""],
                  "j_m": [12.0, 12.5, 13.0]})
    batch = tokens.tokenize(xp, photometry=phot)
    assert np.all(batch.n_tokens > 0)


def test_label_columns_with_units_are_converted(stars):
    labels = QTable({"teff": [4.5, 4.8] * u.kK, "age": [2000.0, 3000.0] * u.Myr})
    batch = tokens.tokenize(stars[:2], labels=labels)
    teff = batch.values[batch.ids == giantfm.vocab.token_id("teff")]
    age = batch.values[batch.ids == giantfm.vocab.token_id("age")]
    assert np.allclose(teff, [4500.0, 4800.0])
    assert np.allclose(age, np.log10([2.0, 3.0]))       # token scale: log10(age / Gyr)


def test_domain_mask_on_a_request_result(stars):
    pytest.importorskip("torch", reason="prediction needs torch")
    from giantfm.results import mask_outside_label_domain
    result = giantfm.request(stars, ["teff", "logg"], progress=False)
    before = result.copy()
    # no mass or age: no error, and nothing to mask
    mask_outside_label_domain(result, {"teff": (4000.0, 5000.0)}, giantfm.tokenize(stars))
    assert result.colnames == before.colnames
    assert (result["teff"].mask == before["teff"].mask).all()


def test_one_saves_metadata_does_not_reach_the_next(tmp_path):
    torch = pytest.importorskip("torch", reason="models need torch")
    from giantfm.model import load_model
    model = load_model(giantfm.prediction.get_model().path, device="cpu")
    model.save(tmp_path / "a", metadata=model.metadata.replace(
        training={**model.metadata.training, "last_epoch": 3}))
    model.save(tmp_path / "b")
    assert "last_epoch" in load_model(tmp_path / "a").metadata.training
    assert "last_epoch" not in load_model(tmp_path / "b").metadata.training
    assert torch is not None
