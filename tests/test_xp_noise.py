"""The Gaia DR3 XP noise model and faint copies (giantfm.xp.noise), against real DR3 sources."""
import numpy as np
import pytest
from astropy.stats import mad_std

from giantfm.xp import read_xp, synthetic_g
from giantfm.xp.noise import (TWOMASS_LIMITS, faint_copy, load_noise_model,
                              photometric_errors)


@pytest.fixture(scope="module")
def real(xp_data):
    """The 2,000 real DR3 sources with their synthetic G as ``mags['g']``."""
    xp = read_xp(xp_data / "xp_continuous_first2000.fits")
    xp.mags["g"] = synthetic_g(xp.bp, xp.rp)
    return xp


def test_median_errors_follow_real_sources(real):
    """The default error model reproduces the real errors to ~0.1 dex, at every G."""
    model = load_noise_model()
    bp_err, rp_err = model.median_errors(real.bp[:, 0], real.rp[:, 0])
    for model_err, real_err in ((bp_err, real.bp_err), (rp_err, real.rp_err)):
        ratio = np.log10(model_err / real_err)
        assert abs(np.median(ratio)) < 0.02
        assert mad_std(ratio) < 0.12
    g = real.mags["g"]
    faint, bright = (g > 16.5) & (g < 17.5), (g > 12) & (g < 13)
    # absolute errors fall with the flux, relative errors grow
    assert np.median(bp_err[faint, 0]) < np.median(bp_err[bright, 0])
    relative = bp_err[:, 0] / real.bp[:, 0]
    assert np.median(relative[faint]) > 3 * np.median(relative[bright])
    # no flux, no error: NaN rather than a made-up value
    assert np.isnan(model.median_errors([-1.0], [np.nan])[0]).all()


def test_faint_copies_look_like_real_faint_sources(real):
    """Copies of G 12-14 sources at G 16.5 against the real sources at G 16.3-16.7."""
    g = real.mags["g"]
    source, target = real[(g > 12) & (g < 14)], real[(g > 16.3) & (g < 16.7)]
    copy = faint_copy(source, 16.5, rng=0)
    np.testing.assert_allclose(copy.mags["g"], 16.5)
    for band in ("bp", "rp"):
        sim = getattr(copy, f"{band}_err") / np.abs(getattr(copy, band)[:, :1])
        obs = getattr(target, f"{band}_err") / np.abs(getattr(target, band)[:, :1])
        for i in (0, 5, 10, 30):
            assert 0.7 < np.median(sim[:, i]) / np.median(obs[:, i]) < 1.4, (band, i)
        # truncation like the real sources' (the upper quartile differs with the colour
        # mix of the two samples: the bright ones are bluer)
        for q in (25, 50):
            assert abs(np.percentile(getattr(copy, f"{band}_n_relevant"), q)
                       - np.percentile(getattr(target, f"{band}_n_relevant"), q)) <= 1
    # the noise added is what the errors say: coefficient 0 scatters by its error
    pulls = (copy.bp[:, 0] - source.bp[:, 0] * 10 ** (-0.4 * (16.5 - source.mags["g"]))) \
        / copy.bp_err[:, 0]
    assert 0.8 < mad_std(pulls) < 1.2


def test_faint_copy_rules(real):
    stars = real[:50]
    stars.mags.update(bp=stars.mags["g"] + 0.8, rp=stars.mags["g"] - 0.9,
                      j=stars.mags["g"] - 2.5, k=stars.mags["g"] - 3.2)
    a = faint_copy(stars, 17.0, rng=4)
    b = faint_copy(stars, 17.0, rng=4)
    np.testing.assert_array_equal(a.bp, b.bp)                      # seeded: repeatable
    shift = 17.0 - stars.mags["g"]
    brighter = shift < 0
    assert brighter.any()
    # never brighter: a star fainter than the target is itself
    np.testing.assert_array_equal(a.bp[brighter], stars.bp[brighter])
    np.testing.assert_allclose(a.mags["g"][brighter], stars.mags["g"][brighter])
    fainter = ~brighter
    # every magnitude moves with G (up to its noise); 2MASS lost below detection
    assert np.all(np.abs(a.mags["rp"][fainter] - (stars.mags["rp"] + shift)[fainter]) < 0.1)
    k = stars.mags["k"] + shift
    lost = np.isnan(a.mags["k"])
    assert lost[fainter & (k > TWOMASS_LIMITS["k"] + 1.0)].all()
    assert not lost[fainter & (k < TWOMASS_LIMITS["k"])].any()
    # the copy is at least as noisy as the star, scaled
    scale = 10 ** (-0.4 * shift[fainter])[:, None]
    assert np.all(a.bp_err[fainter] >= stars.bp_err[fainter] * scale * (1 - 1e-12))
    with pytest.raises(ValueError, match="target_g has 3 values for 50 stars"):
        faint_copy(stars, [16, 17, 18])


def test_photometric_errors():
    errors, detected = photometric_errors({"k": np.array([10.0, 14.3, 15.2, np.nan]),
                                           "bp": np.array([15.0, 17.0, np.nan, 16.0])},
                                          {"bp": np.array([1000.0, 100.0, 50.0, np.nan])})
    np.testing.assert_allclose(errors["k"][1], np.hypot(0.02, 0.1086), rtol=1e-3)
    assert errors["k"][0] < 0.025 and detected["k"].tolist() == [True, True, False, False]
    assert np.isnan(errors["k"][3]) and np.isnan(errors["bp"][2])
    np.testing.assert_allclose(errors["bp"][:2], np.hypot(0.003, 1.0857 / np.array([1e3, 1e2])),
                               rtol=1e-3)
    assert errors["bp"][3] == pytest.approx(0.003)   # no S/N known: the floor
