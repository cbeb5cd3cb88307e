import numpy as np
import pytest

from giantfm import tokens, vocab
from giantfm.xp.noise import load_noise_model, photometric_errors
from giantfm.xp.photometry import SYNTHETIC_OFFSET, SYNTHETIC_SCATTER, synthetic_photometry


def test_from_arrays_normalises_truncates_and_keeps_rows():
    rng = np.random.default_rng(1)
    bp, rp = rng.normal(size=(3, 55)), rng.normal(size=(3, 55))
    bp[:, 0], rp[:, 0] = 5.0, 5.0   # a star's zeroth coefficients are positive
    rp[2] = np.nan                   # star 2: BP alone, so no G can be synthesised either
    g = np.array([10.0, 12.0, np.nan])
    batch = tokens.from_arrays(bp=bp, rp=rp, mags={"g": g, "bp": g + 0.5, "rp": g - 0.7},
                               labels={"teff": [4500, np.nan, 4000], "age": ([2, 4, 8], [1, 1, 1])},
                               bp_n_relevant=[55, 10, 55], source_id=[7, 8, 9], project=False,
                               truncate=True)
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
    with pytest.raises(ValueError, match="unknown token name 'radius'"):
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
    bp[:, 0], rp[:, 0] = 5.0, 5.0   # a star's zeroth coefficients are positive
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


def test_packing_matches_a_row_by_row_reference():
    """Each star's tokens: its kept BP, RP, colour and label tokens in that order, then
    padding; with holes (masked coefficients, missing magnitudes and labels),
    truncation, missing bands, stars without G and rows with a reason."""
    rng = np.random.default_rng(4)
    n = 300
    bp, rp = rng.normal(size=(n, 55)), rng.normal(size=(n, 55))
    bp[:, 0], rp[:, 0] = np.abs(bp[:, 0]) + 0.1, np.abs(rp[:, 0]) + 0.1   # positive, as a star's
    bp_err, rp_err = np.abs(rng.normal(size=(n, 55))), np.abs(rng.normal(size=(n, 55)))
    bp[rng.random((n, 55)) < 0.05] = np.nan
    rp[rng.random(n) < 0.1] = np.nan
    bp_err[rng.random((n, 55)) < 0.05] = np.nan
    g = rng.uniform(8, 17, n)
    g[rng.random(n) < 0.05] = np.nan
    mags = {"g": g, "bp": g + 0.5, "rp": np.where(rng.random(n) < 0.1, np.nan, g - 0.7)}
    nrel = rng.integers(0, 56, n).astype(float)
    nrel[rng.random(n) < 0.1] = np.nan
    teff = np.where(rng.random(n) < 0.3, np.nan, rng.uniform(4000, 5000, n))
    reason = np.where(rng.random(n) < 0.05, "flagged", "").astype(object)
    batch = tokens.from_arrays(bp=bp, rp=rp, bp_err=bp_err, rp_err=rp_err, mags=mags,
                               labels={"teff": teff}, bp_n_relevant=nrel, project=False,
                               reason=reason, truncate=True)
    # errors not given get the default error model; colours the photometric error model
    default = dict(zip(("bp", "rp"), load_noise_model().median_errors(bp[:, 0], rp[:, 0])))
    given = {"bp": np.where(bp_err > 0, bp_err, default["bp"]), "rp": rp_err}
    mag_error, _ = photometric_errors(
        {name: mags.get(name, np.full(n, np.nan)) for name in ("g", "bp", "rp", "j", "h", "k")},
        {band: np.abs(c[:, 0]) / given[band][:, 0] for band, c in (("bp", bp), ("rp", rp))})
    # a missing G, BP or RP of a star with both bands is synthesised from its coefficients
    mags = {name: np.array(value, dtype=float) for name, value in mags.items()}
    synthetic, synthetic_err = synthetic_photometry(bp, rp, given["bp"], given["rp"])
    both = np.isfinite(bp).any(axis=1) & np.isfinite(rp).any(axis=1) & (reason == "")
    for name in ("g", "bp", "rp"):
        fill = both & ~np.isfinite(mags[name]) & np.isfinite(synthetic[name])
        mags[name][fill] = synthetic[name][fill] - SYNTHETIC_OFFSET[name]
        mag_error[name][fill] = np.hypot(synthetic_err[name][fill], SYNTHETIC_SCATTER[name])
    g = mags["g"]
    flux = tokens.g_flux(g)
    inverse = (1.0 / flux).astype(np.float32)
    for i in range(n):
        expected = []                                   # (id, value, error)
        if reason[i] == "" and np.isfinite(flux[i]):
            for c, e, ids, limit in ((bp, given["bp"], vocab.BP_IDS, nrel[i]),
                                     (rp, given["rp"], vocab.RP_IDS, 55)):
                limit = limit if np.isfinite(limit) and limit > 0 else 55
                for k in range(55):
                    if np.isfinite(c[i, k]) and k < limit:
                        err = np.float32(abs(e[i, k])) * inverse[i] if np.isfinite(e[i, k]) else 0
                        expected.append((ids[k], np.float32(c[i, k]) * inverse[i], err))
        no_g = not np.isfinite(flux[i]) and (np.isfinite(bp[i]).any() or np.isfinite(rp[i]).any())
        if reason[i] == "" and not no_g:
            for name, value, error in (
                    ("bp_rp", mags["bp"][i] - mags["rp"][i],
                     np.hypot(mag_error["bp"][i], mag_error["rp"][i])),
                    ("g_rp", g[i] - mags["rp"][i], np.hypot(mag_error["g"][i], mag_error["rp"][i])),
                    ("teff", tokens.to_token_scale("teff", teff[i])[0], 0)):
                if np.isfinite(value):
                    expected.append((vocab.token_id(name), np.float32(value), np.float32(error)))
        count = len(expected)
        assert batch.n_tokens[i] == count, i
        if count:
            ids, values, errors = map(np.array, zip(*expected))
            np.testing.assert_array_equal(batch.ids[i, :count], ids)
            np.testing.assert_array_equal(batch.values[i, :count], values.astype(np.float32))
            np.testing.assert_array_equal(batch.errors[i, :count], errors.astype(np.float32))
        assert not batch.ids[i, count:].any() and not batch.values[i, count:].any()
        assert not batch.errors[i, count:].any()
        if reason[i]:
            assert batch.reason[i] == "flagged"
        elif no_g:
            assert "G magnitude" in batch.reason[i]
    assert batch.ids.shape[1] == batch.n_tokens.max()


def test_projection_in_blocks_and_of_any_leading_axes():
    from giantfm.xp import project_coefficients
    from giantfm.xp.projection import _BLOCK, projectors
    rng = np.random.default_rng(6)
    c, e = rng.normal(size=(2 * _BLOCK + 3, 55)), np.abs(rng.normal(size=(2 * _BLOCK + 3, 55)))
    c[_BLOCK + 1, 4] = np.nan
    p = projectors()[1]
    projected, projected_err = project_coefficients(c, e, "rp")
    with np.errstate(invalid="ignore"):
        expected = c @ p.T
    np.testing.assert_allclose(projected, expected, rtol=1e-12, atol=1e-12, equal_nan=True)
    assert np.isnan(projected[_BLOCK + 1]).all()
    assert np.isfinite(np.delete(projected, _BLOCK + 1, axis=0)).all()
    np.testing.assert_allclose(projected_err, np.sqrt(e ** 2 @ (p ** 2).T), rtol=1e-12)
    cube, cube_err = project_coefficients(c[:12].reshape(3, 4, 55), e[:12].reshape(3, 4, 55), "rp")
    np.testing.assert_allclose(cube.reshape(12, 55), projected[:12], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cube_err.reshape(12, 55), projected_err[:12], rtol=1e-12)
    one, none = project_coefficients(c[0], band="rp")
    assert one.shape == (55,) and none is None
    np.testing.assert_allclose(one, projected[0], rtol=1e-12, atol=1e-12)


def test_values_of_matches_value_of_per_name():
    batch = tokens.from_arrays(labels={"teff": ([4500.0, np.nan, 4800.0], [50.0, 0.0, 60.0]),
                                       "logg": [2.5, 3.0, np.nan]})
    values, errors = batch.values_of(["logg", "teff", "mass"])
    for k, name in enumerate(("logg", "teff", "mass")):
        value, error = batch.value_of(name)
        np.testing.assert_array_equal(values[:, k], value)
        np.testing.assert_array_equal(errors[:, k], error)
    assert np.isnan(values[:, 2]).all()


def test_only_and_keeping_pack_the_kept_tokens():
    batch = tokens.from_arrays(labels={"teff": np.array([4500.0, np.nan]),
                                       "logg": np.array([2.5, 2.4])})
    teff = batch.only(["teff"], reason="no teff")
    assert teff.ids.shape == (2, 1) and teff.values[0, 0] == 4500.0
    assert teff.reason.tolist() == ["", "no teff"] and teff.ok.tolist() == [True, False]
    assert batch.only(["teff"]).reason[1] == ""  # without a reason the reason is kept
    same = batch.keeping(np.ones(batch.ids.shape, bool))
    np.testing.assert_array_equal(same.ids, batch.ids)
    with pytest.raises(ValueError, match="keep has shape"):
        batch.keeping(np.ones(3, bool))
