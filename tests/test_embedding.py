"""giantfm.embed and giantfm.similar with the bundled model on the bundled example stars."""
import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable

import giantfm
from giantfm.flags import REASONS, decode_flags


@pytest.fixture(scope="module")
def stars():
    return giantfm.examples.load()


@pytest.fixture(scope="module")
def embedded(net, stars):
    return giantfm.embed(stars, model=net, progress=False)


@pytest.fixture(scope="module")
def bad_stars(stars):
    """Four stars; the second without XP, the third without G and with one band only."""
    bad = stars[:4].copy()
    bad["bp_coefficients"][1] = np.nan
    bad["rp_coefficients"][1] = np.nan
    bad["phot_g_mean_mag"][2] = np.nan
    bad["rp_coefficients"][2] = np.nan
    return bad


@pytest.fixture(scope="module")
def bad_embedded(net, bad_stars):
    return giantfm.embed(bad_stars, model=net, progress=False)


# ---------------------------------------------------------------------------- embed

def test_embed_keeps_rows_order_and_describes_the_model(net, stars, embedded):
    assert isinstance(embedded, QTable) and len(embedded) == len(stars)
    np.testing.assert_array_equal(embedded["source_id"], stars["source_id"])
    assert embedded.colnames == ["source_id", "embedding", "ood_score", "flag", "flags",
                                 "reason"]
    column = embedded["embedding"]
    assert column.shape == (len(stars), net.config.d_model)
    assert column.unit == u.dimensionless_unscaled and column.dtype == np.float32
    assert not column.mask.any() and np.all(np.isfinite(column.unmasked.value))
    meta = embedded.meta
    assert meta["giantfm_model"] == net.metadata.name
    assert meta["giantfm_model_version"] == net.metadata.version
    assert meta["embedding_dim"] == net.config.d_model
    assert "BP" in meta["inputs"] and "bp_rp" in meta["inputs"]


def test_embedding_is_the_networks_register_output(net, stars, embedded):
    batch = giantfm.tokenize(stars, truncate=net.metadata.truncate)
    *_, expected = net.request(batch, ["teff"], progress=False, embedding=True)
    np.testing.assert_allclose(embedded["embedding"].unmasked.value, expected, rtol=1e-5,
                               atol=1e-5)


def test_embed_masks_rows_it_cannot_read_with_reasons(bad_stars, bad_embedded, embedded):
    out = bad_embedded
    assert len(out) == 4
    np.testing.assert_array_equal(out["source_id"], bad_stars["source_id"])
    mask = out["embedding"].mask
    assert mask[[1, 2]].all() and not mask[[0, 3]].any()
    assert list(out["flag"]) == [False, True, True, False]
    assert out["reason"][1].startswith("no XP coefficients")
    assert "no_xp" in decode_flags(out["flags"][1])
    assert out["reason"][2] != "" and out["flags"][2] != 0
    # each star is embedded on its own: the good rows are those of the whole table
    np.testing.assert_allclose(out["embedding"].unmasked.value[[0, 3]],
                               embedded["embedding"].unmasked.value[[0, 3]], atol=1e-5)


# ---------------------------------------------------------------------------- similar

def test_each_star_is_its_own_nearest_neighbour(stars, embedded):
    found = giantfm.similar(embedded, embedded, k=3)
    assert len(found) == len(stars)
    np.testing.assert_array_equal(found["source_id"], stars["source_id"])
    index = found["neighbour_index"]
    assert index.shape == (len(stars), 3) and index.dtype == np.int64
    np.testing.assert_array_equal(index[:, 0], np.arange(len(stars)))
    distance = found["distance"].unmasked.value
    np.testing.assert_array_equal(distance[:, 0], 0)
    assert np.all(np.diff(distance, axis=1) >= 0) and np.all(distance[:, 1] > 0)
    np.testing.assert_array_equal(found["neighbour_source_id"],
                                  np.asarray(stars["source_id"])[np.asarray(index)])
    # the distances are those between the embeddings
    values = embedded["embedding"].unmasked.value.astype(float)
    direct = np.linalg.norm(values[:, None, :] - values[np.asarray(index)], axis=-1)
    np.testing.assert_allclose(distance, direct, rtol=1e-6, atol=1e-6)
    assert found.meta["k"] == 3 and found.meta["embedding_dim"] == values.shape[1]
    assert found.meta["catalogue_rows_left_out"] == 0
    assert found.meta["giantfm_model"] == embedded.meta["giantfm_model"]


def test_similar_on_tables_equals_similar_on_embeddings(net, stars, embedded):
    on_tables = giantfm.similar(stars[5:9], stars, k=4, model=net, progress=False)
    on_embeddings = giantfm.similar(embedded[5:9], embedded, k=4)
    np.testing.assert_array_equal(on_tables["neighbour_index"], on_embeddings["neighbour_index"])
    np.testing.assert_allclose(on_tables["distance"].unmasked.value,
                               on_embeddings["distance"].unmasked.value, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(on_tables["neighbour_index"][:, 0], np.arange(5, 9))


def test_query_row_without_embedding_comes_back_masked(embedded, bad_embedded):
    found = giantfm.similar(bad_embedded, embedded, k=2)
    assert len(found) == 4
    for name in ("neighbour_index", "neighbour_source_id", "distance"):
        assert found[name].mask[[1, 2]].all() and not found[name].mask[[0, 3]].any(), name
    assert list(found["flag"]) == [False, True, True, False]
    assert found["reason"][1] == bad_embedded["reason"][1]
    np.testing.assert_array_equal(found["flags"], bad_embedded["flags"])
    np.testing.assert_array_equal(found["neighbour_index"][[0, 3], 0], [0, 3])


def test_catalogue_rows_without_embedding_are_left_out(bad_embedded):
    found = giantfm.similar(bad_embedded, bad_embedded, k=2)
    assert found.meta["catalogue_rows_left_out"] == 2
    assert set(np.asarray(found["neighbour_index"][[0, 3]]).ravel()) == {0, 3}
    with pytest.raises(ValueError, match=r"k=3 is more than the 2 catalogue rows with an "
                                         r"embedding \(of 4; 2 have none\)"):
        giantfm.similar(bad_embedded, bad_embedded, k=3)


def test_k_is_validated(embedded):
    with pytest.raises(ValueError, match=r"k=25 is more than the 24 catalogue rows"):
        giantfm.similar(embedded, embedded, k=25)
    with pytest.raises(ValueError, match="k must be a positive integer, got k=0"):
        giantfm.similar(embedded, embedded, k=0)
    for k in (2.5, True, "3"):
        with pytest.raises(TypeError, match="k must be a positive integer"):
            giantfm.similar(embedded, embedded, k=k)
    assert giantfm.similar(embedded, embedded, k=np.int64(1))["neighbour_index"].shape == (24, 1)


def test_embeddings_of_different_models_are_refused(net, embedded):
    other = embedded.copy()
    other.meta["giantfm_model_version"] = "9.9"
    with pytest.raises(ValueError, match=r"version 0.*version 9\.9: their versions differ"):
        giantfm.similar(embedded, other, k=2)
    with pytest.raises(ValueError, match="the model given is model giantfm"):
        giantfm.similar(other, other, k=2, model=net)   # the model given made neither
    other.meta["giantfm_model"] = "someone-elses"
    with pytest.raises(ValueError, match="their names and versions differ"):
        giantfm.similar(other, embedded, k=2)
    small = QTable({"embedding": np.zeros((3, 32))})   # no metadata: the shapes are compared
    with pytest.raises(ValueError, match="have 32 dimensions and the catalogue's 64"):
        giantfm.similar(small, embedded, k=2)


def test_embedding_tables_are_validated(embedded):
    flat = QTable({"embedding": np.zeros(3)})
    with pytest.raises(ValueError, match=r"query\['embedding'\] must be 2-D.*shape \(3,\)"):
        giantfm.similar(flat, embedded, k=1)
    metres = QTable({"embedding": np.zeros((3, 64)) * u.m})
    with pytest.raises(ValueError, match=r"catalogue\['embedding'\] has unit m"):
        giantfm.similar(embedded, metres, k=1)
    words = QTable({"embedding": np.full((3, 64), "a")})
    with pytest.raises(TypeError, match="must hold numbers"):
        giantfm.similar(words, embedded, k=1)
    with pytest.raises(ValueError, match="catalogue has no 'embedding' column and cannot be "
                                         "embedded"):
        giantfm.similar(embedded, QTable({"x": [1.0, 2.0]}), k=1, device="cpu")


def test_embeddings_made_elsewhere_say_which_rows_have_none():
    values = np.arange(12.0).reshape(4, 3)
    values[2] = np.nan
    found = giantfm.similar(QTable({"embedding": values}), QTable({"embedding": values}), k=1)
    assert found.colnames == ["neighbour_index", "distance", "flag", "flags", "reason"]
    assert bool(found["neighbour_index"].mask[2, 0]) and found["flag"][2]
    assert found["reason"][2] == REASONS["no_embedding"].template
    assert decode_flags(found["flags"][2]) == ["no_embedding"]
    np.testing.assert_array_equal(found["neighbour_index"][[0, 1, 3], 0], [0, 1, 3])
    assert found.meta["catalogue_rows_left_out"] == 1 and found.meta["giantfm_model"] is None
