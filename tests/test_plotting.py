"""Data-level tests of giantfm.plotting: what is drawn, not just that something is."""
import matplotlib

matplotlib.use("Agg")  # before pyplot: no display in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from astropy import units as u  # noqa: E402
from astropy.nddata import InverseVariance, StdDevUncertainty  # noqa: E402
from astropy.stats import mad_std  # noqa: E402
from astropy.table import MaskedColumn, QTable, Table  # noqa: E402
from astropy.utils.masked import Masked  # noqa: E402

from giantfm import plotting  # noqa: E402


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


@pytest.fixture
def rng():
    return np.random.default_rng(42)


def _numbers(text):
    """The numbers in an annotation, as floats, in order."""
    import re
    return [float(x) for x in re.findall(r"[-+]?\d+(?:\.\d*)?(?:e[-+]?\d+)?", text)]


def test_import_is_lazy():
    # giantfm.plotting must not pull in pyplot by itself (checked in a fresh interpreter).
    import subprocess
    import sys
    code = ("import sys, giantfm.plotting; "
            "print('matplotlib.pyplot' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_one_to_one_data_and_annotation(ax, rng):
    truth = rng.normal(4700, 300, 200) * u.K
    pred = truth + rng.normal(20, 50, 200) * u.K
    pred[3] = np.nan * u.K  # a star without a prediction is left out
    main, resid = plotting.one_to_one(truth, pred, ax=ax, label="teff")
    assert main is ax and resid is not ax
    offsets = main.collections[0].get_offsets()
    good = np.isfinite(pred)
    np.testing.assert_allclose(offsets[:, 0], truth[good].value)
    np.testing.assert_allclose(offsets[:, 1], pred[good].value)
    np.testing.assert_allclose(resid.collections[0].get_offsets()[:, 1],
                               (pred - truth)[good].value)
    # one-to-one line along the diagonal
    line = [ln for ln in main.lines if ln.get_label() == "one-to-one"][0]
    np.testing.assert_allclose(line.get_xdata(), line.get_ydata())
    text = main.texts[0].get_text()
    bias, sigma, n = _numbers(text)
    r = (pred - truth)[good].value
    assert bias == pytest.approx(np.median(r), rel=1e-3)
    assert sigma == pytest.approx(mad_std(r), rel=1e-3)
    assert n == 199
    assert "K" in text
    assert main.get_ylabel() == r"predicted $T_{\rm eff}$ [K]"
    assert resid.get_xlabel() == r"reference $T_{\rm eff}$ [K]"
    assert resid.get_ylabel() == r"$\Delta T_{\rm eff}$ [K]"  # residuals have units
    # the residual panel shares the x axis of the main panel
    assert resid.get_shared_x_axes().joined(main, resid)


def test_one_to_one_masked_qtable_columns_and_unit_conversion(ax):
    t = QTable()
    t["teff"] = [4000.0, 4500.0, 5000.0, 5500.0] * u.K
    t["teff_pred"] = Masked([4010.0, 4480.0, 5020.0, 5000.0] * u.K,
                            mask=[False, False, False, True])
    main, _ = plotting.one_to_one(t["teff"], t["teff_pred"], ax=ax, unit=u.deg_C)
    offsets = main.collections[0].get_offsets()
    np.testing.assert_allclose(offsets[:, 0], [4000 - 273.15, 4500 - 273.15, 5000 - 273.15])
    np.testing.assert_allclose(offsets[:, 1], [4010 - 273.15, 4480 - 273.15, 5020 - 273.15])
    assert _numbers(main.texts[0].get_text())[-1] == 3


def test_one_to_one_table_columns_with_units_and_dex(ax):
    t = Table()
    t["logg"] = MaskedColumn([2.0, 2.5, 3.0], unit=u.dex(u.cm / u.s**2), mask=[False, True, False])
    t["logg_pred"] = [2.1, 2.6, 2.9]  # plain numbers: taken in the reference's unit
    main, resid = plotting.one_to_one(t["logg"], t["logg_pred"], ax=ax, label="log g",
                                      pred_err=[0.1, 0.1, 0.1])
    np.testing.assert_allclose(resid.collections[0].get_offsets()[:, 1], [0.1, -0.1], atol=1e-12)
    # label text is used as given; a logarithmic unit shows as papers write it
    assert main.get_ylabel() == "predicted log g [dex]"
    assert resid.get_ylabel() == r"$\Delta$log g [dex]"


def test_one_to_one_names_itself_from_columns_and_vocabulary_units(ax):
    # a QTable column named after a token gives the label; plain numbers of a token
    # are in its vocabulary unit
    result = QTable({"mass": [1.0, 1.2, 1.5] * u.solMass})
    main, resid = plotting.one_to_one([1.1, 1.2, 1.4], result["mass"], ax=ax)
    assert main.get_ylabel() == r"predicted $M$ [$M_\odot$]"
    assert resid.get_ylabel() == r"$\Delta M$ [$M_\odot$]"
    assert r"$M_\odot$" in main.texts[0].get_text()
    _, resid = plotting.one_to_one([2.0, 3.0], [2.1, 2.9], ax=plt.figure().subplots(),
                                   label="m_h")
    assert resid.get_xlabel() == "reference [M/H] [dex]"
    assert resid.get_ylabel() == r"$\Delta$[M/H] [dex]"
    plt.close("all")


@pytest.mark.parametrize("name, unit, expected", [
    ("teff", None, r"$T_{\rm eff}$ [K]"),
    ("logg", None, r"$\log g$ [dex]"),
    ("logg", u.dex(u.cm / u.s**2), r"$\log g$ [dex]"),
    ("m_h", None, "[M/H] [dex]"),
    ("alpha_m", None, r"[$\alpha$/M] [dex]"),
    ("mass", None, r"$M$ [$M_\odot$]"),
    ("age", None, "age [Gyr]"),
    ("age", u.Myr, "age [Myr]"),
    ("a_k", None, "$A_K$ [mag]"),
    ("bp_rp", None, r"$G_{\rm BP}-G_{\rm RP}$ [mag]"),
    ("bp3", None, "bp3"),                         # a coefficient: dimensionless, no symbol
    ("teff", u.dimensionless_unscaled, r"$T_{\rm eff}$"),
    ("wavelength", "nm", "wavelength [nm]"),
    ("flux", u.W / u.m**2 / u.nm, r"flux [$\mathrm{W\,nm^{-1}\,m^{-2}}$]"),
    ("G", None, "G"),
])
def test_axis_label(name, unit, expected):
    assert plotting.axis_label(name, unit) == expected


def test_axis_label_delta_and_vocabulary_symbols():
    from giantfm import vocab

    assert plotting.axis_label("teff", delta=True) == r"$\Delta T_{\rm eff}$ [K]"
    assert plotting.axis_label("age", delta=True) == r"$\Delta$age [Gyr]"
    # every label and colour of the vocabulary has a symbol (what papers write)
    for name in vocab.LABEL_NAMES + vocab.COLOUR_NAMES + ("a_k",):
        assert vocab.VOCABULARY[vocab.token_id(name)].symbol, name


def test_one_to_one_rejects_mismatched_inputs(ax):
    with pytest.raises(ValueError, match="one value per star"):
        plotting.one_to_one([1, 2, 3], [1, 2], ax=ax)
    with pytest.raises(u.UnitConversionError, match="pred is in solMass"):
        plotting.one_to_one([4000] * u.K, [1.0] * u.solMass, ax=ax)


def test_residual_stats_ignores_nan():
    bias, sigma, n = plotting.residual_stats([1.0, 2.0, 3.0, 4.0], [1.5, 2.5, np.nan, 4.5])
    assert (bias, sigma, n) == (0.5, 0.0, 3)


def test_residual_vs_running_median(ax, rng):
    x = np.linspace(0, 10, 1000)
    truth = rng.normal(0, 1, x.size)
    pred = truth + 0.3 * x  # residual grows linearly with x
    plotting.residual_vs(x * u.mag, truth, pred, ax=ax, bins=5, xlabel="G", label="[M/H]")
    np.testing.assert_allclose(ax.collections[0].get_offsets()[:, 1], 0.3 * x)
    median = [ln for ln in ax.lines if ln.get_label() == "running median"][0]
    np.testing.assert_allclose(median.get_xdata(), [1, 3, 5, 7, 9])
    np.testing.assert_allclose(median.get_ydata(), 0.3 * np.array([1, 3, 5, 7, 9]), atol=0.01)
    assert ax.get_xlabel() == "G [mag]"
    assert ax.get_ylabel() == r"$\Delta$[M/H]"  # plain numbers, free text: no unit
    ax.clear()
    plotting.residual_vs(x * u.mag, truth * u.dex, pred * u.dex, ax=ax, label="m_h")
    assert ax.get_ylabel() == r"$\Delta$[M/H] [dex]"


def test_kiel_diagram_reversed_and_coloured(ax):
    teff = [4000.0, 4500.0, 5000.0, np.nan] * u.K
    logg = [1.5, 2.5, 3.2, 2.0]
    mass = Masked([1.0, 1.5, 2.0, 1.2] * u.solMass, mask=[False, True, False, False])
    out = plotting.kiel_diagram(teff, logg, color=mass, ax=ax, color_label="predicted $M$")
    assert out is ax
    assert ax.xaxis_inverted() and ax.yaxis_inverted()
    sc = ax.collections[0]
    np.testing.assert_allclose(sc.get_offsets(), [[4000, 1.5], [5000, 3.2]])
    np.testing.assert_allclose(sc.get_array(), [1.0, 2.0])
    colorbar = sc.colorbar
    assert colorbar is not None and colorbar.ax.get_ylabel() == r"predicted $M$ [$M_\odot$]"
    assert ax.get_xlabel() == r"$T_{\rm eff}$ [K]"
    assert ax.get_ylabel() == r"$\log g$ [dex]"  # plain numbers: the vocabulary unit


def test_colour_bar_named_after_the_column(ax):
    result = QTable({"teff": [4000.0, 4500.0] * u.K, "logg": [1.5, 2.5] * u.dex(u.cm / u.s**2),
                     "m_h": [-0.3, 0.1] * u.dex})
    plotting.kiel_diagram(result["teff"], result["logg"], color=result["m_h"], ax=ax)
    assert ax.collections[0].colorbar.ax.get_ylabel() == "[M/H] [dex]"


def test_kiel_diagram_calling_twice_keeps_axes_reversed(ax):
    plotting.kiel_diagram([4000, 4500], [2.0, 2.5], ax=ax)
    plotting.kiel_diagram([4200, 4700], [2.2, 2.7], ax=ax)
    assert ax.xaxis_inverted() and ax.yaxis_inverted()
    assert len(ax.collections) == 2


def test_mass_age_units_and_log_axis(ax):
    mass = [1000.0, 1500.0] * u.g * 1.98840987e30  # mass in grams, shown in solMass
    age = [10.0, 3.0] * u.Gyr
    plotting.mass_age(mass, age.to(u.Myr), ax=ax, color=[-0.5, 0.2])
    np.testing.assert_allclose(ax.collections[0].get_offsets(), [[1.0, 10.0], [1.5, 3.0]],
                               rtol=1e-4)
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == r"$M$ [$M_\odot$]" and ax.get_ylabel() == "age [Gyr]"


def test_calibration_histogram_against_unit_gaussian(ax, rng):
    z = rng.normal(0, 2, 5000)
    plotting.calibration_histogram(z, ax=ax, bins=20, range=(-4, 4), label="mass")
    # 'stepfilled' draws one Polygon whose top edge is the density of each bin
    density, _ = np.histogram(z, bins=20, range=(-4, 4), density=True)
    (polygon,) = ax.patches
    tops = polygon.get_xy()[1:-1:2, 1][:20]
    np.testing.assert_allclose(tops, density)
    gauss = [ln for ln in ax.lines if ln.get_label() == "unit Gaussian"][0]
    assert np.trapezoid(gauss.get_ydata(), gauss.get_xdata()) == pytest.approx(1.0, abs=1e-3)
    width, median, n = _numbers(ax.texts[0].get_text())
    assert width == pytest.approx(mad_std(z), rel=1e-2)
    assert width == pytest.approx(2.0, rel=0.05)
    assert n == 5000
    assert ax.get_xlabel() == r"$\Delta M$ / combined $\sigma$"


def test_normalised_residuals():
    z = plotting.normalised_residuals([1.0, 2.0] * u.solMass, [1.3, 2.0] * u.solMass,
                                      [0.3, 0.1] * u.solMass, truth_err=[0.4, 0.0] * u.solMass)
    np.testing.assert_allclose(z, [0.3 / 0.5, 0.0])


def test_spectrum_from_arrays_default_grid(ax):
    flux = np.linspace(1.0, 2.0, 343)
    plotting.spectrum(flux, ax=ax, uncertainty=np.full(343, 0.1), label="star")
    line = ax.lines[0]
    np.testing.assert_allclose(line.get_xdata(), np.arange(336, 1021, 2))
    np.testing.assert_allclose(line.get_ydata(), flux)
    band = ax.collections[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(0.9) and band[:, 1].max() == pytest.approx(2.1)
    assert ax.get_xlabel() == "wavelength [nm]"


def test_spectrum_from_specutils(ax):
    specutils = pytest.importorskip("specutils", reason="spectrum() on Spectrum needs specutils")
    wl = np.linspace(400, 900, 50) * u.nm
    flux = np.linspace(1, 2, 50) * u.W / u.m**2 / u.nm
    ivar = InverseVariance(np.full(50, 100.0) * (u.W / u.m**2 / u.nm) ** -2)
    mask = np.zeros(50, dtype=bool)
    mask[10] = True
    spec = specutils.Spectrum(flux=flux, spectral_axis=wl, uncertainty=ivar, mask=mask)
    plotting.spectrum(spec, ax=ax, spectral_unit=u.AA)
    line = ax.lines[0]
    np.testing.assert_allclose(line.get_xdata(), wl.to_value(u.AA))
    y = line.get_ydata()
    assert np.isnan(y[10]) and np.allclose(np.delete(y, 10), np.delete(flux.value, 10))
    # the masked pixel splits the band in two; its half-width is 1/sqrt(ivar) = 0.1
    verts = np.concatenate([p.vertices for p in ax.collections[0].get_paths()])
    assert verts[:, 1].min() == pytest.approx(0.9) and verts[:, 1].max() == pytest.approx(2.1)
    assert ax.get_xlabel() == r"wavelength [$\mathrm{\mathring{A}}$]"
    assert ax.get_ylabel() == f"flux [{flux.unit.to_string('latex_inline')}]"


def test_spectrum_batch_needs_row(ax):
    specutils = pytest.importorskip("specutils", reason="spectrum() on Spectrum needs specutils")
    flux = np.vstack([np.ones(20), 2 * np.ones(20)]) * u.Jy
    spec = specutils.Spectrum(flux=flux, spectral_axis=np.linspace(500, 600, 20) * u.nm,
                              uncertainty=StdDevUncertainty(0.1 * np.ones((2, 20))))
    with pytest.raises(ValueError, match="row="):
        plotting.spectrum(spec, ax=ax)
    plotting.spectrum(spec, ax=ax, row=1)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), 2.0)


def test_functions_default_to_current_axes():
    fig = plt.figure()
    try:
        ax = plotting.kiel_diagram([4000, 4500], [2.0, 2.5])
        assert ax is fig.axes[0]
    finally:
        plt.close(fig)
