"""End-to-end tests of giantfm.predict / giantfm.request with the bundled model on real stars."""
import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable, Table

import giantfm
from giantfm.prediction import get_model


@pytest.fixture(scope="module")
def stars():
    return giantfm.examples.load()


@pytest.fixture(scope="module")
def result(stars):
    return giantfm.predict(stars, device="cpu", progress=False)


def test_bundled_model_is_found_and_described():
    net = get_model(device="cpu")
    assert str(net.device) == "cpu"
    assert net.metadata.name.startswith("giantfm")
    assert set(net.metadata.label_domain) >= {"teff", "logg"}


def test_predict_examples_units_order_and_meta(stars, result):
    assert isinstance(result, QTable)
    assert len(result) == len(stars)
    np.testing.assert_array_equal(result["source_id"], stars["source_id"])
    units = {"teff": u.K, "logg": u.dex(u.cm / u.s**2), "m_h": u.dex, "alpha_m": u.dex,
             "mass": u.solMass, "age": u.Gyr}
    for name, unit in units.items():
        assert result[name].unit == unit and result[f"{name}_err"].unit == unit
        assert np.all(result[f"{name}_err"].unmasked.value[~result[name].mask] > 0)
    assert result.meta["device"] == "cpu"
    assert "BP" in result.meta["inputs"] and "bp_rp" in result.meta["inputs"]


def test_predict_agrees_with_apogee_within_uncertainties(stars, result):
    """Test-split stars the model never saw: pulls against APOGEE DR17 are order one."""
    for name in ("teff", "logg", "m_h"):
        truth = stars[f"apogee_{name}"].value
        err = np.hypot(result[f"{name}_err"].unmasked.value, stars[f"apogee_{name}_err"].value)
        pull = (result[name].unmasked.value - truth) / err
        assert np.median(np.abs(pull)) < 1.5, name
        assert np.mean(np.abs(pull) < 3) >= 0.9, name


def test_mass_and_age_masked_outside_label_domain(stars, result):
    dwarfs = stars["apogee_logg"].value > 4
    assert dwarfs.sum() >= 3
    assert np.all(result["mass"].mask[dwarfs]) and np.all(result["age"].mask[dwarfs])
    # flag means "do not use this row": a dwarf's Teff, log g, [M/H] are good, so no flag;
    # the bitmask and the reason say why mass and age are masked, naming the limit broken
    ood = np.asarray(result["ood_score"].filled(0)) > 1
    assert not np.any(result["flag"][dwarfs] & ~ood[dwarfs])
    assert all("outside_label_domain" in giantfm.decode_flags(f) for f in result["flags"][dwarfs])
    logg_high = result.meta["label_domain"]["logg"][1]
    assert all("label model's domain (" in r and "logg " in r and f" > {logg_high:.4g}" in r
               for r in result["reason"][dwarfs])
    # the labels that are defined for dwarfs are still given
    assert not np.any(result["teff"].mask[dwarfs])
    giants = np.isfinite(stars["labelmodel_mass"].value) & ~result["mass"].mask
    assert giants.sum() >= 10
    # mass errors include the label model's scatter against seismology
    floor = result.meta["label_floor"]["mass_fractional"]
    assert np.all(result["mass_err"][giants] >= floor * result["mass"][giants] * 0.999)


def test_bad_rows_are_masked_not_dropped(stars):
    bad = stars[:4].copy()
    bad["bp_coefficients"][1] = np.nan
    bad["rp_coefficients"][1] = np.nan
    bad["phot_g_mean_mag"][2] = np.nan    # with one band only, no G can be synthesised either
    bad["rp_coefficients"][2] = np.nan
    out = giantfm.predict(bad, device="cpu", progress=False)
    assert len(out) == 4
    np.testing.assert_array_equal(out["source_id"], bad["source_id"])
    assert list(out["flag"][[1, 2]]) == [True, True]
    assert "no XP coefficients" in out["reason"][1]
    assert "G magnitude" in out["reason"][2]
    assert out["teff"].mask[1] and out["teff"].mask[2]
    assert not out["teff"].mask[0] and not out["teff"].mask[3]


def test_table_and_flattened_forms_give_the_same_answer(stars, result):
    flat = Table()
    flat["source_id"] = stars["source_id"]
    for band in ("bp", "rp"):
        for i in range(55):
            flat[f"{band}_coeff_{i}"] = stars[f"{band}_coefficients"][:, i]
            flat[f"e_{band}_coeff_{i}"] = stars[f"{band}_coefficient_errors"][:, i]
    for col in ("phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag", "j_m", "h_m", "ks_m"):
        flat[col] = stars[col]
    out = giantfm.predict(flat, device="cpu", progress=False)
    np.testing.assert_allclose(out["teff"].unmasked.value, result["teff"].unmasked.value,
                               rtol=1e-5)


def test_request_any_token_from_any_other():
    out = giantfm.request({"teff": [4600.0, 4800.0] * u.K, "logg": [2.4, 2.9],
                           "m_h": [0.0, -0.4] * u.dex}, ["mass", "age"], device="cpu")
    assert out["mass"].unit == u.solMass and len(out) == 2
    assert np.all((out["mass"].value > 0.5) & (out["mass"].value < 4))
    assert np.all(out["age"].value > 0)
    with pytest.raises(ValueError, match="unknown token name 'radius'"):
        giantfm.request({"teff": [4600.0]}, ["radius"], device="cpu")
    with pytest.raises(u.UnitConversionError, match="teff is in m"):
        giantfm.request({"teff": [4600.0] * u.m}, ["mass"], device="cpu")


def test_identity_request_returns_the_input():
    out = giantfm.request({"teff": [4500.0, 5000.0], "logg": [2.5, 3.0], "m_h": [0.0, -0.5]},
                          ["teff"], device="cpu")
    np.testing.assert_allclose(out["teff"].value, [4500.0, 5000.0], atol=50)


def test_unavailable_device_is_refused_clearly(stars):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the refusal is tested where it has none")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        giantfm.predict(stars[:2], device="cuda")


def test_bad_arguments(stars):
    with pytest.raises(ValueError, match="batch_size"):
        giantfm.predict(stars[:2], batch_size=-3, device="cpu")
    with pytest.raises(ValueError, match="progress"):
        giantfm.predict(stars[:2], progress="sometimes", device="cpu")
    with pytest.raises(ValueError, match="outputs is empty"):
        giantfm.request(stars[:2], [], device="cpu")


def test_batch_with_no_usable_star_comes_back_masked(stars):
    """No G magnitude and one band only anywhere: every row flagged with its reason, none
    dropped (no crash)."""
    no_g = stars[:3].copy()
    no_g.remove_column("phot_g_mean_mag")
    no_g.remove_column("rp_coefficients")
    result = giantfm.predict(no_g, progress=False)
    assert len(result) == 3 and result["flag"].all() and result["teff"].mask.all()
    assert all("no G magnitude" in r for r in result["reason"])


def test_star_with_no_token_the_model_reads_gets_no_answer():
    from giantfm import vocab
    from giantfm.tokens import TokenBatch
    high_order = vocab.token_id("bp50")   # the bundled model reads BP/RP orders < 32 only
    batch = TokenBatch(np.array([[high_order], [vocab.token_id("teff")]]),
                       np.array([[0.01], [4700.0]]), np.zeros((2, 1)), np.array([1, 2]),
                       np.array(["", ""]))
    result = giantfm.request(batch, "logg", progress=False)
    assert list(result["flag"]) == [True, False]
    assert "none of the star's tokens is an input" in result["reason"][0]
    assert result["logg"].mask[0] and not result["logg"].mask[1]


def test_larger_input_errors_give_larger_uncertainties(stars):
    """The bundled model reads the coefficient errors: the same spectra with larger errors
    come back less certain, the more so the larger the errors (and not identical)."""
    def with_errors(factor):
        table = stars.copy()
        for band in ("bp", "rp"):
            column = f"{band}_coefficient_errors"
            table[column] = factor * np.asarray(stars[column])
        return giantfm.predict(table, progress=False)

    results = {factor: with_errors(factor) for factor in (1, 30, 100)}
    for name in ("teff", "logg", "m_h"):
        sigma = {f: np.asarray(r[f"{name}_err"].unmasked.value) for f, r in results.items()}
        assert np.median(sigma[30] / sigma[1]) > 1.05, name
        assert np.median(sigma[100] / sigma[30]) > 1.03, name
        assert not np.array_equal(results[100][name].unmasked, results[1][name].unmasked)


def test_a_table_without_errors_gets_the_default_error_model(stars):
    """Without error columns the coefficients get the noise model's typical errors: the
    labels stay close to those with the real errors, and are not the labels of exact data."""
    bare = stars.copy()
    bare.remove_columns(["bp_coefficient_errors", "rp_coefficient_errors"])
    from giantfm.xp.noise import load_noise_model
    batch = giantfm.tokenize(bare)
    default = load_noise_model().median_errors(np.asarray(stars["bp_coefficients"])[:, 0],
                                               np.asarray(stars["rp_coefficients"])[:, 0])
    assert np.isfinite(default[0]).all()
    assert (batch.values_of(["bp0"])[1][:, 0] > 0).all()
    result = giantfm.predict(bare, progress=False)
    with_errors = giantfm.predict(stars, progress=False)
    z = (result["teff"] - with_errors["teff"]) / with_errors["teff_err"]
    assert np.nanmedian(np.abs(z.to_value(u.one))) < 1
