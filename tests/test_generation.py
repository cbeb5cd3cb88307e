"""giantfm.inpaint and giantfm.generate_spectrum with the bundled model on real stars."""
import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.nddata import StdDevUncertainty
from astropy.utils.exceptions import AstropyUserWarning
from specutils import Spectrum

import giantfm
from giantfm.exceptions import GiantfmWarning
from giantfm.generation import ABSOLUTE_FLUX_UNIT, RELATIVE_FLUX_UNIT
from giantfm.metadata import LabelSupport
from giantfm.results import label_support_reasons
from giantfm.xp.readers import read_xp


@pytest.fixture(scope="module")
def stars():
    return giantfm.examples.load()


@pytest.fixture(scope="module")
def giants(stars):
    return stars[(stars["apogee_logg"].value < 3.3) & (stars["apogee_teff"].value < 5200)]


# ---------------------------------------------------------------------------- inpaint
def test_inpaint_hidden_band_leaves_given_coefficients_untouched(stars):
    result = giantfm.inpaint(stars, hide="rp", truncate=False)
    xp = read_xp(stars)
    assert len(result) == len(stars)
    np.testing.assert_array_equal(result["source_id"], stars["source_id"])
    assert result["rp_inpainted"].all() and not result["bp_inpainted"].any()
    # the given band comes back bit for bit, values and errors
    np.testing.assert_array_equal(result["bp_coefficients"], xp.bp)
    np.testing.assert_array_equal(result["bp_coefficient_errors"], xp.bp_err)
    assert np.isfinite(result["rp_coefficients"]).all()
    assert (result["rp_coefficient_errors"] > 0).all()
    # with one band hidden a star may look unlike the training stars (flagged, labels kept:
    # a few of these, just over the threshold), but nothing else flags a row
    score = np.asarray(result["ood_score"].filled(0))
    ood = score > 1
    assert not (result["flag"] & ~ood).any()
    assert ood.sum() <= len(stars) // 6 and score.max() < 1.5


def test_inpainted_rp_is_close_to_the_hidden_truth(giants):
    """RP from BP and colours on test-split giants: the leading coefficients to a few per cent,
    and the residuals are of the order of the predicted uncertainties."""
    result = giantfm.inpaint(giants, hide="rp", truncate=False)
    truth = read_xp(giants).rp
    rel = np.abs(result["rp_coefficients"][:, 0] / truth[:, 0] - 1)
    assert np.median(rel) < 0.02
    pull = (result["rp_coefficients"][:, :10] - truth[:, :10]) / \
        result["rp_coefficient_errors"][:, :10]
    assert 0.2 < np.median(np.abs(pull)) < 3


def test_inpaint_truncation_and_token_names(stars):
    stars = stars.copy()
    nrel = np.arange(len(stars)) % 30 + 20
    stars["bp_n_relevant_bases"] = nrel
    result = giantfm.inpaint(stars, hide=["rp54", "bp3"], truncate=True)
    order = np.arange(55)
    expected_bp = (order[None, :] >= nrel[:, None]) | (order[None, :] == 3)
    np.testing.assert_array_equal(result["bp_inpainted"], expected_bp)
    assert result["rp_inpainted"][:, 54].all()
    given = ~result["bp_inpainted"]
    np.testing.assert_array_equal(result["bp_coefficients"][given], read_xp(stars).bp[given])


def test_inpaint_boolean_masks_and_labels(stars):
    mask = np.zeros(55, bool)
    mask[10:] = True
    result = giantfm.inpaint(stars[:4], hide={"bp": mask, "rp": mask}, truncate=False,
                             labels={"teff": stars["apogee_teff"][:4].value})
    assert result["bp_inpainted"][:, 10:].all() and not result["bp_inpainted"][:, :10].any()


def test_inpaint_fills_the_missing_band_of_the_archive_sample(xp_data):
    path = xp_data / "XP_CONTINUOUS_RAW_with_missing_BP.csv"
    xp = read_xp(path)
    missing = ~np.isfinite(xp.bp).any(axis=1)
    assert missing.any()
    result = giantfm.inpaint(path, photometry={"phot_g_mean_mag": np.full(len(xp), 15.0)})
    assert result["bp_inpainted"][missing].all()
    assert np.isfinite(result["bp_coefficients"][missing]).all()


def test_inpaint_spectrum_has_units_and_uncertainty(stars):
    table, spec = giantfm.inpaint(stars[:3], hide="bp", spectrum=True,
                                  wavelength=np.arange(400, 1001, 5) * u.nm)
    assert isinstance(spec, Spectrum)
    assert spec.flux.unit == ABSOLUTE_FLUX_UNIT and spec.flux.shape == (3, 121)
    assert isinstance(spec.uncertainty, StdDevUncertainty)
    assert np.all(spec.uncertainty.array > 0)
    np.testing.assert_array_equal(spec.meta["source_id"], table["source_id"])


def test_inpaint_keeps_and_flags_an_unusable_row(stars):
    bad = stars[:3].copy()
    bad["phot_g_mean_mag"][1] = np.nan
    result = giantfm.inpaint(bad, hide="rp")
    assert list(result["flag"]) == [False, True, False]
    assert "G magnitude" in result["reason"][1]
    assert not result["rp_inpainted"][1].any()


def test_inpaint_bad_hide_raises(stars):
    with pytest.raises(ValueError, match="unknown token name 'xx'"):
        giantfm.inpaint(stars[:2], hide=["xx"])
    with pytest.raises(ValueError, match="'teff' is not one"):
        giantfm.inpaint(stars[:2], hide="teff")
    with pytest.raises(ValueError, match="'gp'"):
        giantfm.inpaint(stars[:2], hide={"gp": np.ones(55, bool)})
    with pytest.raises(TypeError, match="boolean"):
        giantfm.inpaint(stars[:2], hide={"bp": np.ones(55)})
    with pytest.raises(ValueError, match="broadcast"):
        giantfm.inpaint(stars[:2], hide={"bp": np.ones(54, bool)})


# ---------------------------------------------------------------------------- generate
def test_generate_shapes_units_and_broadcasting():
    one = giantfm.generate_spectrum(teff=4800 * u.K, logg=2.5, m_h=0.0)
    assert one.flux.shape == (343,) and one.flux.unit == RELATIVE_FLUX_UNIT
    assert isinstance(one.uncertainty, StdDevUncertainty)
    grid = giantfm.generate_spectrum(teff=np.array([[4500.0], [4800.0]]), logg=[2.0, 2.5, 3.0],
                                     m_h=0.0)
    assert grid.flux.shape == (2, 3, 343)
    assert len(grid.meta["labels"]) == 6
    np.testing.assert_array_equal(grid.meta["labels"]["logg"].value, [2.0, 2.5, 3.0] * 2)
    # the same request alone gives the same spectrum (to float32 rounding of the network's
    # sums, which differ with the batch: samples near zero flux need an absolute bound)
    np.testing.assert_allclose(grid.flux[1, 1].value, one.flux.value, rtol=1e-5,
                               atol=1e-6 * np.abs(one.flux.value).max())


def test_generate_absolute_flux_scales_with_g():
    bright = giantfm.generate_spectrum(teff=4800, logg=2.5, m_h=0.0, phot_g_mean_mag=10 * u.mag)
    faint = giantfm.generate_spectrum(teff=4800, logg=2.5, m_h=0.0, phot_g_mean_mag=12.5)
    assert bright.flux.unit == ABSOLUTE_FLUX_UNIT
    np.testing.assert_allclose(bright.flux.value / faint.flux.value, 10.0, rtol=1e-6)


def test_generate_custom_grid_and_quantities():
    spec = giantfm.generate_spectrum(teff=4.8 * u.kK, logg=2.5 * u.dex(u.cm / u.s**2),
                                     m_h=0.1 * u.dex, wavelength=np.linspace(500, 900, 41))
    assert spec.spectral_axis.unit == u.nm and spec.flux.shape == (41,)
    assert spec.meta["labels"]["teff"][0] == 4800 * u.K


def test_generated_spectra_follow_temperature_and_extinction():
    """At fixed extinction hotter giants are bluer; more extinction makes a spectrum redder.

    (Without ``extinction`` the spectrum averages over the training stars' extinctions at
    those labels, which differ with Teff, so the Teff trend is only clean at fixed A_K.)"""
    spec = giantfm.generate_spectrum(teff=[4450, 4750, 5050], logg=2.5, m_h=0.0,
                                     extinction=0.05)
    wl = spec.spectral_axis.value
    blue_red = spec.flux.value[:, (wl > 480) & (wl < 520)].mean(axis=1) / \
        spec.flux.value[:, (wl > 780) & (wl < 820)].mean(axis=1)
    assert np.all(np.diff(blue_red) > 0)
    dusty = giantfm.generate_spectrum(teff=4700, logg=2.5, m_h=0.0, extinction=[0.0, 0.3] * u.mag)
    ratio = dusty.flux.value[1] / dusty.flux.value[0]
    assert ratio[(wl > 480) & (wl < 520)].mean() < ratio[(wl > 780) & (wl < 820)].mean()


def test_generate_outside_training_labels_warns_and_flags():
    with pytest.warns(AstropyUserWarning, match="outside the labels the model was trained on"):
        spec = giantfm.generate_spectrum(teff=[4700, 9000], logg=2.5, m_h=0.0)
    assert list(spec.meta["flag"]) == [False, True]
    assert "teff=9000 outside the training range" in spec.meta["reason"][1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        giantfm.generate_spectrum(teff=4700, logg=2.5, m_h=0.0)


def test_generate_bad_input_raises():
    with pytest.raises(ValueError, match="unknown token name 'metallicity'"):
        giantfm.generate_spectrum(teff=4700, metallicity=0.0)
    with pytest.raises(ValueError, match="giantfm.inpaint"):
        giantfm.generate_spectrum(teff=4700, bp3=0.1)
    with pytest.raises(ValueError, match="at least one label"):
        giantfm.generate_spectrum()
    with pytest.raises(ValueError, match="broadcast"):
        giantfm.generate_spectrum(teff=[4500, 4600], logg=[2.0, 2.5, 3.0])
    with pytest.raises(u.UnitConversionError, match="teff"):
        giantfm.generate_spectrum(teff=4700 * u.m)
    # an impossible label leaves its spectrum out, flagged with the reason; the others stand
    with pytest.warns(GiantfmWarning, match="outside the labels the model was trained on"):
        spectrum = giantfm.generate_spectrum(teff=[4700, np.inf, -100], logg=2.5, m_h=0.0,
                                             extinction=0.05)
    flag, reason = spectrum.meta["flag"], spectrum.meta["reason"]
    assert flag.tolist() == [False, True, True]
    assert "teff = inf: not finite" in reason[1] and "teff = -100" in reason[2]
    assert np.isfinite(spectrum.flux[0].value).all()


def test_label_support_ranges_and_kiel_cells():
    support = LabelSupport(ranges={"m_h": [-1.0, 0.5]},
                           kiel={"teff_edges": [4000.0, 4500.0, 5000.0], "logg_edges": [2.0, 3.0],
                                 "counts": [[10], [0]], "min_count": 5})
    reason = label_support_reasons({"teff": np.array([4200.0, 4700.0, 4200.0]),
                                    "logg": np.array([2.5, 2.5, 2.5]),
                                    "m_h": np.array([0.0, 0.0, -2.0])}, support)
    assert reason[0] == ""
    assert "fewer than 5 stars" in reason[1]
    assert "m_h=-2 outside" in reason[2]
