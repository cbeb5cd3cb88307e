import numpy as np
import pytest

from giantfm import tokens, vocab


def test_from_arrays_normalises_truncates_and_keeps_rows():
    rng = np.random.default_rng(1)
    bp, rp = rng.normal(size=(3, 55)), rng.normal(size=(3, 55))
    g = np.array([10.0, 12.0, np.nan])
    batch = tokens.from_arrays(bp=bp, rp=rp, mags={"g": g, "bp": g + 0.5, "rp": g - 0.7},
                               labels={"teff": [4500, np.nan, 4000], "age": ([2, 4, 8], [1, 1, 1])},
                               bp_n_relevant=[55, 10, 55], source_id=[7, 8, 9], project=False)
    assert len(batch) == 3 and list(batch.source_id) == [7, 8, 9]
    # star 0: 110 coefficients + bp_rp + g_rp + teff + age
    assert batch.n_tokens[0] == 114
    # star 1: BP truncated to 10 relevant bases, no teff
    assert batch.n_tokens[1] == 10 + 55 + 2 + 1
    # star 2 has no G magnitude: its row stays, empty, with a reason
    assert batch.n_tokens[2] == 0 and "G magnitude" in batch.reason[2]
    assert list(batch.ok) == [True, True, False]
    value, _ = batch.value_of("bp3")
    assert value[0] == pytest.approx(bp[0, 3] / tokens.g_flux(10.0), rel=1e-6)
    age, age_err = batch.value_of("age")
    assert age[0] == pytest.approx(np.log10(2))
    assert age_err[0] == pytest.approx(0.5 / np.log(10), rel=1e-6)
    colour, _ = batch.value_of("bp_rp")
    assert colour[0] == pytest.approx(1.2)


def test_dr4_sized_spectrum_is_refused_by_name():
    with pytest.raises(ValueError, match="DR4"):
        tokens.from_arrays(bp=np.ones((2, 51)), mags={"g": [10, 11]})


def test_token_scale_round_trip_and_unknown_names():
    v, e = tokens.to_token_scale("age", [1.0, 10.0], [0.1, 1.0])
    back, back_err = tokens.from_token_scale("age", v, e)
    np.testing.assert_allclose(back, [1.0, 10.0])
    np.testing.assert_allclose(back_err, [0.1, 1.0])
    with pytest.raises(KeyError, match="unknown token name 'radius'"):
        vocab.token_id("radius")


def test_without_and_concatenate():
    a = tokens.from_arrays(labels={"teff": [4000.0, 5000.0], "logg": [2.0, 3.0]})
    b = tokens.from_arrays(labels={"teff": [4100.0]})
    both = tokens.TokenBatch.concatenate([a, b])
    assert both.ids.shape == (3, 2) and list(both.n_tokens) == [2, 2, 1]
    hidden = both.without(["teff"])
    assert list(hidden.n_tokens) == [1, 1, 0]
    assert np.isnan(hidden.value_of("teff")[0]).all()


def test_projection_is_applied_idempotent_and_band_wise():
    from giantfm.xp import project_coefficients
    rng = np.random.default_rng(2)
    bp, rp = rng.normal(size=(4, 55)), rng.normal(size=(4, 55))
    batch = tokens.from_arrays(bp=bp, rp=rp, mags={"g": np.full(4, 12.0)})
    expected, _ = project_coefficients(bp, band="bp")
    value, _ = batch.value_of("bp7")
    np.testing.assert_allclose(value, expected[:, 7] / tokens.g_flux(12.0), rtol=1e-5)
    # a projector: applying it twice changes nothing
    twice, _ = project_coefficients(expected, band="bp")
    np.testing.assert_allclose(twice, expected, atol=1e-8 * np.abs(expected).max())
    # BP tokens do not depend on RP
    other = tokens.from_arrays(bp=bp, rp=2 * rp, mags={"g": np.full(4, 12.0)})
    np.testing.assert_array_equal(other.value_of("bp7")[0], value)
