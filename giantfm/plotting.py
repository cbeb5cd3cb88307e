r"""Validation figures: one-to-one, residuals, Kiel diagram, mass-age plane, calibration, spectra.

Every function draws on the `~matplotlib.axes.Axes` it is given (``ax=None``:
the current Axes, ``plt.gca()``) and returns the Axes it drew on, so that
figures can be composed and restyled by the caller; nothing here calls
``plt.show()``. matplotlib is imported only when a function is called.

Inputs may be plain arrays, `~astropy.units.Quantity` (masked or not) or
`~astropy.table.Table` / `~astropy.table.QTable` columns: masked entries and
NaN are left out of the plots and of the statistics. Axis labels are
written as papers write them (`axis_label`): the symbol of a label or colour
(``$T_{\rm eff}$``, ``$\log g$``, ``[M/H]``, from `giantfm.vocab`) and the unit
of the data (or the ``unit`` asked for) in brackets, e.g. ``$T_{\rm eff}$ [K]``;
residual axes as differences, ``$\Delta T_{\rm eff}$ [K]``.

Statistics follow the rest of giantfm: the scatter ``sigma`` is the MAD-based
standard deviation (`astropy.stats.mad_std`) of the residuals and the bias is
their median.
"""
import numpy as np
from astropy import units as u

__all__ = ["one_to_one", "residual_vs", "kiel_diagram", "mass_age", "calibration_histogram",
           "normalised_residuals", "residual_stats", "spectrum", "axis_label",
           "reliability_diagram"]

# The XP sampling of giantfm and GaiaXPy's default grid: used as the spectral
# axis of a plain array of that length.
_DEFAULT_GRID_NM = np.arange(336.0, 1020.0 + 1.0, 2.0)


def _as_values(x, unit=None, name="values"):
    """Float array (NaN where masked) and its unit (None for plain numbers).

    ``x`` may be an array, a (masked) Quantity, a Column or MaskedColumn with
    or without a unit. With ``unit`` the values are converted to it.
    """
    from astropy.table import Column
    from astropy.utils.masked import Masked

    mask = None
    if isinstance(x, Masked):
        mask = np.asarray(x.mask)
        x = x.unmasked
    elif np.ma.isMaskedArray(x):  # MaskedColumn is a MaskedArray
        mask = np.ma.getmaskarray(x)
        x_unit = getattr(x, "unit", None)
        x = np.ma.getdata(x)
        if x_unit is not None:
            x = np.asarray(x, dtype=float) << x_unit  # << also makes Dex for logg units
    if isinstance(x, Column) and x.unit is not None:
        x = x.quantity
    if isinstance(x, u.Quantity):
        if unit is not None:
            try:
                x = x.to(unit, equivalencies=u.temperature() + u.spectral())
            except u.UnitConversionError:
                raise u.UnitConversionError(
                    f"{name} is in {x.unit}, which cannot be converted to {unit}") from None
        unit, values = x.unit, np.asarray(x.value, dtype=float)
    else:
        values = np.asarray(x, dtype=float)
        unit = None if unit is None else u.Unit(unit)
    values = np.array(values, dtype=float, ndmin=1)
    if mask is not None:
        values[np.broadcast_to(mask, values.shape)] = np.nan
    return values, unit


def _pair(truth, pred, unit):
    """Truth and prediction as float arrays in one unit (truth's unless ``unit`` is given)."""
    t, t_unit = _as_values(truth, unit, "truth")
    p, p_unit = _as_values(pred, unit if unit is not None else t_unit, "pred")
    if t.shape != p.shape:
        raise ValueError(f"truth and pred must have one value per star, got {t.shape} and "
                         f"{p.shape}")
    # A plain-number side is taken to be in the other side's unit.
    return t, p, t_unit or p_unit


#: Units that papers write otherwise than astropy's LaTeX does.
_UNIT_TEXT = {"solMass": r"$M_\odot$", "solLum": r"$L_\odot$", "solRad": r"$R_\odot$"}


def _token(name):
    """The `giantfm.vocab.Token` called ``name``, or None for any other text."""
    from . import vocab

    if not isinstance(name, str) or name not in vocab.NAMES:
        return None
    return vocab.VOCABULARY[vocab.token_id(name)]


def _unit_text(unit):
    """``unit`` as axis labels write it ("" for none or dimensionless)."""
    if unit is None:
        return ""
    if not isinstance(unit, u.UnitBase | u.FunctionUnitBase):
        unit = u.Unit(unit)
    if isinstance(unit, u.FunctionUnitBase):  # dex(cm / s2) -> dex, as papers write log g
        unit = unit.function_unit
    if unit == u.dimensionless_unscaled:
        return ""
    text = unit.to_string()
    if text in _UNIT_TEXT:
        return _UNIT_TEXT[text]
    if text.isalpha() and text != "Angstrom":  # K, Gyr, dex, mag, nm: plain text
        return text
    return unit.to_string("latex_inline")


def axis_label(name, unit=None, *, delta=False):
    r"""An axis (or colour-bar) label as papers write it: symbol and unit in brackets.

    Parameters
    ----------
    name : str
        A token name of `giantfm.vocab` (``"teff"``, ``"logg"``, ``"m_h"``,
        ``"alpha_m"``, ``"mass"``, ``"age"``, ``"a_k"``, ``"bp_rp"``, ...),
        shown as its symbol (`giantfm.vocab.Token.symbol`, e.g.
        ``$T_{\rm eff}$``); any other text is used as it is (e.g.
        ``"wavelength"`` or ``"predicted $M$"``).
    unit : `~astropy.units.Unit` or str, optional
        The unit in brackets; default the token's vocabulary unit (none for
        other text). Logarithmic units show their function unit
        (``dex(cm / s2)`` as ``dex``), solar masses as ``$M_\odot$``, simple
        units as plain text (K, Gyr, mag, nm) and others in LaTeX
        (``unit.to_string("latex_inline")``); a dimensionless unit shows none.
    delta : bool, optional
        Label a difference (a residual, prediction - reference):
        ``$\Delta T_{\rm eff}$ [K]``.

    Returns
    -------
    label : str
        Text for matplotlib (mathtext between ``$``; also valid LaTeX).

    Examples
    --------
    >>> import astropy.units as u
    >>> from giantfm.plotting import axis_label
    >>> axis_label("teff")
    '$T_{\\rm eff}$ [K]'
    >>> axis_label("logg"), axis_label("m_h"), axis_label("mass"), axis_label("age")
    ('$\\log g$ [dex]', '[M/H] [dex]', '$M$ [$M_\\odot$]', 'age [Gyr]')
    >>> axis_label("teff", delta=True)
    '$\\Delta T_{\\rm eff}$ [K]'
    >>> axis_label("wavelength", u.nm), axis_label("predicted $M$", "solMass")
    ('wavelength [nm]', 'predicted $M$ [$M_\\odot$]')
    """
    token = _token(name)
    text = (token.symbol or token.name) if token is not None else str(name)
    if unit is None and token is not None:
        unit = token.unit
    if delta:
        if text.startswith("$") and text.endswith("$") and text.count("$") == 2:
            text = r"$\Delta " + text[1:]
        else:
            text = r"$\Delta$" + text
    unit_text = _unit_text(unit)
    return f"{text} [{unit_text}]".strip() if unit_text else text


def _name_of(*columns):
    """The first of ``columns`` that is a table column named after a token: its name."""
    for column in columns:
        info = getattr(column, "info", None)
        name = getattr(info, "name", None) if info is not None else None
        if _token(name) is not None:
            return name
    return None


def _get_ax(ax):
    if ax is None:
        import matplotlib.pyplot as plt
        ax = plt.gca()
    return ax


def residual_stats(truth, pred, *, unit=None):
    """Bias (median), scatter (MAD-std) and count of the residuals ``pred - truth``.

    Parameters
    ----------
    truth, pred : array-like or `~astropy.units.Quantity`
        Reference and predicted values, one per star. Masked or non-finite
        pairs are ignored.
    unit : `~astropy.units.Unit`, optional
        Unit of the statistics; default the unit of ``truth``.

    Returns
    -------
    bias, sigma : float
        Median and MAD-based standard deviation of the residuals, in ``unit``
        (NaN when no pair is finite).
    n : int
        Number of finite pairs used.

    Examples
    --------
    >>> import astropy.units as u
    >>> from giantfm.plotting import residual_stats
    >>> residual_stats([4000, 4500, 5000] * u.K, [4010, 4530, 5010] * u.K)
    (10.0, 0.0, 3)
    """
    from astropy.stats import mad_std

    t, p, _ = _pair(truth, pred, unit)
    resid = (p - t)[np.isfinite(p - t)]
    if resid.size == 0:
        return np.nan, np.nan, 0
    return float(np.median(resid)), float(mad_std(resid)), int(resid.size)


def one_to_one(truth, pred, ax=None, *, label=None, unit=None, pred_err=None, resid_size="30%",
               **scatter_kwargs):
    r"""Predicted against reference values, with a residual panel and the scatter and bias.

    The residual panel (``pred - truth`` against ``truth``) is a second Axes
    attached below ``ax`` with `mpl_toolkits.axes_grid1.make_axes_locatable`,
    sharing its x axis; both Axes are returned. The main panel carries the
    one-to-one line and a text box with the bias (median residual), the
    scatter sigma (MAD-std of the residuals) and the number of stars.
    The residual panel is carved out of ``ax``'s own area, which matplotlib's
    ``layout="constrained"`` does not track: with several panels, space them
    with ``fig.subplots_adjust`` and save with ``bbox_inches="tight"``.

    Parameters
    ----------
    truth, pred : array-like, `~astropy.units.Quantity` or table column
        Reference (e.g. APOGEE) and predicted values, one per star.
        Masked or non-finite pairs are left out of the plot and the statistics.
    ax : `~matplotlib.axes.Axes`, optional
        Where to draw; default the current Axes.
    label : str, optional
        The quantity, for the axis labels (`axis_label`): a token name such as
        ``"teff"`` (shown as ``$T_{\rm eff}$``, with the vocabulary unit when
        the data have none) or any text. Default: the name of the ``pred``
        (or ``truth``) table column when it is a token name.
    unit : `~astropy.units.Unit` or str, optional
        Unit to show (both inputs are converted to it); default the unit of
        ``truth``.
    pred_err : array-like or `~astropy.units.Quantity`, optional
        1-sigma uncertainties of ``pred``, drawn as vertical error bars.
    resid_size : str or float, optional
        Height of the residual panel (a percentage of ``ax`` or inches).
    **scatter_kwargs
        Passed to `~matplotlib.axes.Axes.scatter` (e.g. ``c=`` to colour by a
        column, ``s=``, ``alpha=``).

    Returns
    -------
    ax, ax_resid : `~matplotlib.axes.Axes`
        The main panel (y: "predicted $T_{\rm eff}$ [K]") and the residual
        panel (x: "reference $T_{\rm eff}$ [K]", y: "$\Delta T_{\rm eff}$ [K]");
        to name the reference, set the x label again, e.g.
        ``ax_resid.set_xlabel("APOGEE " + axis_label("teff"))``.
    """
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    ax = _get_ax(ax)
    t, p, unit = _pair(truth, pred, unit)
    good = np.isfinite(t) & np.isfinite(p)
    bias, sigma, n = residual_stats(t, p)
    name = label or _name_of(pred, truth) or "value"

    scatter_kwargs.setdefault("s", 6)
    if "c" in scatter_kwargs and np.ndim(scatter_kwargs["c"]) == 1:
        scatter_kwargs["c"] = _as_values(scatter_kwargs["c"], name="c")[0][good]
    if pred_err is not None:
        err = _as_values(pred_err, unit, "pred_err")[0]
        ax.errorbar(t[good], p[good], yerr=err[good], fmt="none", ecolor="0.7", lw=0.5,
                    zorder=1)
    ax.scatter(t[good], p[good], zorder=2, **scatter_kwargs)
    if n:
        lo, hi = min(t[good].min(), p[good].min()), max(t[good].max(), p[good].max())
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        lo, hi = lo - pad, hi + pad
        ax.plot([lo, hi], [lo, hi], color="k", lw=1, zorder=3, label="one-to-one")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    if unit is None and _token(name) is not None:
        unit = _token(name).unit  # plain numbers: in the vocabulary unit
    unit_text = _unit_text(unit)
    unit_text = f" {unit_text}" if unit_text else ""
    ax.text(0.04, 0.96,
            f"bias = {bias:.3g}{unit_text}\n$\\sigma$ = {sigma:.3g}{unit_text}\nN = {n}",
            transform=ax.transAxes, va="top", ha="left",
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"})
    ax.set_ylabel("predicted " + axis_label(name, unit))
    ax.tick_params(labelbottom=False)

    ax_resid = make_axes_locatable(ax).append_axes("bottom", size=resid_size, pad=0.08, sharex=ax)
    ax_resid.scatter(t[good], (p - t)[good], **scatter_kwargs)
    ax_resid.axhline(0.0, color="k", lw=1)
    ax_resid.set_xlabel("reference " + axis_label(name, unit))
    ax_resid.set_ylabel(axis_label(name, unit, delta=True))
    return ax, ax_resid


def residual_vs(x, truth, pred, ax=None, *, xlabel=None, label=None, unit=None, bins=10,
                **scatter_kwargs):
    r"""Residuals ``pred - truth`` against another quantity, with their running median.

    Parameters
    ----------
    x : array-like, `~astropy.units.Quantity` or table column
        The quantity on the horizontal axis (e.g. G magnitude, S/N, [M/H]).
    truth, pred : array-like, `~astropy.units.Quantity` or table column
        Reference and predicted values; masked or non-finite entries (of
        ``x`` too) are left out.
    ax : `~matplotlib.axes.Axes`, optional
        Where to draw; default the current Axes.
    xlabel, label : str, optional
        Names of ``x`` and of the predicted quantity for the axis labels:
        token names (e.g. ``"m_h"``, shown as ``[M/H]``) or any text
        (`axis_label`); the residual axis is labelled as a difference,
        ``$\Delta$[M/H] [dex]``. Default ``label``: the name of the ``pred``
        (or ``truth``) column when it is a token name.
    unit : `~astropy.units.Unit` or str, optional
        Unit of the residuals; default the unit of ``truth``.
    bins : int or sequence, optional
        Bins in ``x`` for the running median and 16th/84th percentiles of the
        residuals (drawn as a line and a band); bins with fewer than 3 stars
        are skipped.
    **scatter_kwargs
        Passed to `~matplotlib.axes.Axes.scatter`.

    Returns
    -------
    ax : `~matplotlib.axes.Axes`
    """
    from scipy.stats import binned_statistic

    ax = _get_ax(ax)
    xv, x_unit = _as_values(x, name="x")
    t, p, unit = _pair(truth, pred, unit)
    if xv.shape != t.shape:
        raise ValueError(f"x has {xv.size} values for {t.size} stars")
    resid = p - t
    good = np.isfinite(xv) & np.isfinite(resid)
    scatter_kwargs.setdefault("s", 6)
    scatter_kwargs.setdefault("color", "0.5")
    ax.scatter(xv[good], resid[good], **scatter_kwargs)
    ax.axhline(0.0, color="k", lw=1)
    if good.sum() >= 3:
        xs, rs = xv[good], resid[good]
        stats = [binned_statistic(xs, rs, statistic=s, bins=bins)
                 for s in ("median", lambda r: np.percentile(r, 16),
                           lambda r: np.percentile(r, 84), "count")]
        edges = stats[0].bin_edges
        centres = 0.5 * (edges[1:] + edges[:-1])
        enough = stats[3].statistic >= 3
        ax.plot(centres[enough], stats[0].statistic[enough], color="C3", lw=2,
                label="running median")
        ax.fill_between(centres[enough], stats[1].statistic[enough], stats[2].statistic[enough],
                        color="C3", alpha=0.2, label="16th-84th percentile")
    ax.set_xlabel(axis_label(xlabel or _name_of(x) or "x", x_unit))
    ax.set_ylabel(axis_label(label or _name_of(pred, truth) or "value", unit, delta=True))
    return ax


def _coloured_scatter(ax, x, y, color, color_label, colorbar, scatter_kwargs):
    scatter_kwargs.setdefault("s", 6)
    if color is None:
        good = np.isfinite(x) & np.isfinite(y)
        return ax.scatter(x[good], y[good], **scatter_kwargs), good
    c, c_unit = _as_values(color, name="color")
    if c.shape != x.shape:
        raise ValueError(f"color has {c.size} values for {x.size} stars")
    good = np.isfinite(x) & np.isfinite(y) & np.isfinite(c)
    artist = ax.scatter(x[good], y[good], c=c[good], **scatter_kwargs)
    if colorbar:
        ax.figure.colorbar(artist, ax=ax,
                           label=axis_label(color_label or _name_of(color) or "", c_unit))
    return artist, good


def kiel_diagram(teff, logg, color=None, ax=None, *, color_label=None, colorbar=True,
                 **scatter_kwargs):
    r"""Kiel diagram (log g against Teff), both axes reversed, optionally coloured by a column.

    Parameters
    ----------
    teff : array-like, `~astropy.units.Quantity` or table column
        Effective temperature; Quantities are shown in K.
    logg : array-like, `~astropy.units.Quantity` or table column
        log10 surface gravity (dex, cm s^-2).
    color : array-like, `~astropy.units.Quantity` or table column, optional
        Any per-star quantity to colour the points by (e.g. predicted mass);
        stars where it is masked or NaN are left out.
    ax : `~matplotlib.axes.Axes`, optional
        Where to draw; default the current Axes.
    color_label : str, optional
        Name of the colour bar: a token name (``"mass"``: ``$M$ [$M_\odot$]``)
        or text, e.g. ``"predicted $M$"``, to which the unit of ``color`` is
        appended (`axis_label`). Default: the name of the ``color`` table
        column when it is a token name.
    colorbar : bool, optional
        Draw a colour bar when ``color`` is given (default True).
    **scatter_kwargs
        Passed to `~matplotlib.axes.Axes.scatter` (e.g. ``cmap=``, ``vmin=``).

    Returns
    -------
    ax : `~matplotlib.axes.Axes`
        Hot stars on the left and giants (low log g) at the top, as
        astronomers draw it.
    """
    ax = _get_ax(ax)
    t, t_unit = _as_values(teff, u.K if isinstance(teff, u.Quantity) else None, "teff")
    g, g_unit = _as_values(logg, name="logg")
    if t.shape != g.shape:
        raise ValueError(f"teff has {t.size} values and logg {g.size}")
    _coloured_scatter(ax, t, g, color, color_label, colorbar, scatter_kwargs)
    if not ax.xaxis_inverted():
        ax.invert_xaxis()
    if not ax.yaxis_inverted():
        ax.invert_yaxis()
    ax.set_xlabel(axis_label("teff", t_unit))
    ax.set_ylabel(axis_label("logg", g_unit))
    return ax


def mass_age(mass, age, ax=None, color=None, *, color_label=None, colorbar=True, log_age=True,
             **scatter_kwargs):
    """The age-mass plane of red giants, optionally coloured by a column (e.g. [M/H]).

    Parameters
    ----------
    mass : array-like, `~astropy.units.Quantity` or table column
        Stellar mass; Quantities are shown in solar masses.
    age : array-like, `~astropy.units.Quantity` or table column
        Age; Quantities are shown in Gyr.
    ax : `~matplotlib.axes.Axes`, optional
        Where to draw; default the current Axes.
    color : array-like, `~astropy.units.Quantity` or table column, optional
        Per-star quantity for the colours.
    color_label : str, optional
        Name of the colour bar, as for `kiel_diagram`.
    colorbar : bool, optional
        Draw a colour bar when ``color`` is given (default True).
    log_age : bool, optional
        Logarithmic age axis (default True: age errors are close to log-normal).
    **scatter_kwargs
        Passed to `~matplotlib.axes.Axes.scatter`.

    Returns
    -------
    ax : `~matplotlib.axes.Axes`
    """
    ax = _get_ax(ax)
    m, m_unit = _as_values(mass, u.solMass if isinstance(mass, u.Quantity) else None, "mass")
    a, a_unit = _as_values(age, u.Gyr if isinstance(age, u.Quantity) else None, "age")
    if m.shape != a.shape:
        raise ValueError(f"mass has {m.size} values and age {a.size}")
    if log_age:
        a = np.where(a > 0, a, np.nan)
    _coloured_scatter(ax, m, a, color, color_label, colorbar, scatter_kwargs)
    if log_age:
        ax.set_yscale("log")
    ax.set_xlabel(axis_label("mass", m_unit))
    ax.set_ylabel(axis_label("age", a_unit))
    return ax


def normalised_residuals(truth, pred, pred_err, truth_err=None, *, unit=None):
    """Residuals in units of the combined uncertainty, for `calibration_histogram`.

    ``z = (pred - truth) / sqrt(pred_err**2 + truth_err**2)``; for calibrated
    uncertainties z follows a unit Gaussian (MAD-std 1).

    Parameters
    ----------
    truth, pred, pred_err : array-like, `~astropy.units.Quantity` or table column
        Reference values, predictions and their 1-sigma uncertainties.
    truth_err : array-like, `~astropy.units.Quantity` or table column, optional
        Uncertainties of the reference values (default zero).
    unit : `~astropy.units.Unit`, optional
        Common unit (default that of ``truth``).

    Returns
    -------
    z : `~numpy.ndarray`
        One value per star, NaN where any input is missing.
    """
    t, p, unit = _pair(truth, pred, unit)
    s_pred = _as_values(pred_err, unit, "pred_err")[0]
    s_truth = 0.0 if truth_err is None else _as_values(truth_err, unit, "truth_err")[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        return (p - t) / np.hypot(s_pred, s_truth)


def calibration_histogram(z, ax=None, *, bins=40, range=(-5.0, 5.0), label=None,
                          **hist_kwargs):
    r"""Histogram of normalised residuals against the unit Gaussian they should follow.

    Parameters
    ----------
    z : array-like
        Normalised residuals, e.g. from `normalised_residuals`; masked and
        non-finite values are ignored. Values outside ``range`` count in the
        statistics but are not drawn.
    ax : `~matplotlib.axes.Axes`, optional
        Where to draw; default the current Axes.
    bins : int, optional
        Number of bins over ``range``.
    range : (float, float), optional
        Range of the histogram.
    label : str, optional
        The quantity: a token name (``"teff"``) or text (`axis_label`); the
        x label is then ``$\Delta T_{\rm eff}$ / combined $\sigma$`` (the
        residual over its combined uncertainty), else
        ``(pred - ref) / combined $\sigma$``.
    **hist_kwargs
        Passed to `~matplotlib.axes.Axes.hist`.

    Returns
    -------
    ax : `~matplotlib.axes.Axes`
        The histogram is a probability density, so that it compares with the
        drawn unit Gaussian; the text box gives the MAD-std and the median of
        ``z`` (ideal: 1 and 0) and the number of stars.
    """
    from astropy.stats import mad_std

    ax = _get_ax(ax)
    zv = _as_values(z, name="z")[0]
    zv = zv[np.isfinite(zv)]
    hist_kwargs.setdefault("histtype", "stepfilled")
    hist_kwargs.setdefault("alpha", 0.6)
    ax.hist(zv, bins=bins, range=range, density=True, label="residuals", **hist_kwargs)
    grid = np.linspace(range[0], range[1], 401)
    ax.plot(grid, np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi), color="k", lw=1.5,
            label="unit Gaussian")
    width = float(mad_std(zv)) if zv.size else np.nan
    centre = float(np.median(zv)) if zv.size else np.nan
    ax.text(0.04, 0.96, f"MAD-std = {width:.3g}\nmedian = {centre:.3g}\nN = {zv.size}",
            transform=ax.transAxes, va="top", ha="left")
    what = axis_label(label, u.dimensionless_unscaled, delta=True) if label else "(pred - ref)"
    ax.set_xlabel(f"{what} / combined $\\sigma$")
    ax.set_ylabel("probability density")
    return ax


def spectrum(spec, ax=None, *, spectral_axis=None, uncertainty=None, row=None, label=None,
             spectral_unit=None, band_alpha=0.3, **plot_kwargs):
    """A spectrum with its 1-sigma uncertainty band.

    Parameters
    ----------
    spec : `specutils.Spectrum`, `~astropy.units.Quantity` or array-like
        A Spectrum (its spectral axis, flux, uncertainty of any
        `~astropy.nddata.NDUncertainty` type, and mask are used; masked pixels
        are left as gaps), or plain flux values.
    ax : `~matplotlib.axes.Axes`, optional
        Where to draw; default the current Axes.
    spectral_axis : array-like or `~astropy.units.Quantity`, optional
        For plain flux: the wavelengths. Default: giantfm's XP grid
        (336-1020 nm, 2 nm) when the flux has its 343 samples, else the pixel
        index.
    uncertainty : array-like or `~astropy.units.Quantity`, optional
        For plain flux: 1-sigma flux uncertainties.
    row : int, optional
        Which spectrum of a 2-D batch (a Spectrum or array of several stars)
        to draw; required for a batch.
    label : str, optional
        Legend label of the line.
    spectral_unit : `~astropy.units.Unit` or str, optional
        Unit of the horizontal axis (any spectral unit); default that of the
        spectrum.
    band_alpha : float, optional
        Opacity of the uncertainty band.
    **plot_kwargs
        Passed to `~matplotlib.axes.Axes.plot`.

    Returns
    -------
    ax : `~matplotlib.axes.Axes`
    """
    ax = _get_ax(ax)
    mask = None
    if hasattr(spec, "spectral_axis") and hasattr(spec, "flux"):  # a specutils Spectrum
        from astropy.nddata import StdDevUncertainty

        if spectral_axis is not None or uncertainty is not None:
            raise ValueError("spectral_axis and uncertainty are taken from the Spectrum; "
                             "give them only with plain flux arrays")
        flux = spec.flux
        x = spec.spectral_axis
        if spec.uncertainty is not None:
            uncertainty = spec.uncertainty.represent_as(StdDevUncertainty).quantity
        mask = spec.mask
    else:
        flux = spec
        x = spectral_axis
    y, y_unit = _as_values(flux, name="flux")
    err = None if uncertainty is None else _as_values(uncertainty, y_unit, "uncertainty")[0]
    if y.ndim == 2:
        if row is None:
            raise ValueError(f"spec holds {y.shape[0]} spectra: choose one with row=")
        y = y[row]
        err = None if err is None else err[row]
        mask = None if mask is None else np.asarray(mask)[row]
    elif y.ndim != 1:
        raise ValueError(f"spec must be one spectrum or a 2-D batch, got flux shape {y.shape}")
    if x is None:
        x = _DEFAULT_GRID_NM * u.nm if y.size == _DEFAULT_GRID_NM.size else np.arange(y.size)
    xv, x_unit = _as_values(x, spectral_unit, "spectral_axis")
    if xv.shape != y.shape:
        raise ValueError(f"spectral axis has {xv.size} samples for {y.size} flux values")
    if mask is not None:
        y = np.where(mask, np.nan, y)
        err = None if err is None else np.where(mask, np.nan, err)

    line, = ax.plot(xv, y, label=label, **plot_kwargs)
    if err is not None:
        ax.fill_between(xv, y - err, y + err, color=line.get_color(), alpha=band_alpha, lw=0,
                        label="1-sigma uncertainty")
    if x_unit is None:
        x_name = "pixel"
    else:
        x_name = "wavelength" if x_unit.physical_type == "length" else "spectral axis"
    ax.set_xlabel(axis_label(x_name, x_unit))
    ax.set_ylabel(axis_label("flux", y_unit))
    return ax


def reliability_diagram(p_mean, fraction, count=None, ax=None, *, fraction_err=None,
                        label=None, annotate=True, **plot_kwargs):
    r"""Reliability diagram of predicted probabilities: observed fraction against predicted.

    Calibrated probabilities lie on the diagonal, which is drawn. Made for the
    label model's red-clump probability (axes ``predicted $P(\rm RC)$`` and
    ``observed RC fraction``), e.g. from the ``reliability`` of
    `giantfm.train.seismic.fit.cross_validate_state`.

    Parameters
    ----------
    p_mean, fraction : array-like
        Per bin of predicted probability, the mean prediction and the observed
        fraction of positives; empty (NaN) bins are left out.
    count : array-like, optional
        Stars per bin, written beside each point when ``annotate``.
    ax : `~matplotlib.axes.Axes`, optional
        Where to draw; default the current Axes.
    fraction_err : array-like, optional
        Standard errors of ``fraction``, drawn as error bars.
    label : str, optional
        Legend label of the points.
    annotate : bool, optional
        Write the counts beside the points (needs ``count``).
    **plot_kwargs
        Passed to `~matplotlib.axes.Axes.errorbar`.

    Returns
    -------
    ax : `~matplotlib.axes.Axes`
    """
    ax = _get_ax(ax)
    x = _as_values(p_mean, name="p_mean")[0]
    y = _as_values(fraction, name="fraction")[0]
    if x.shape != y.shape:
        raise ValueError(f"p_mean has {x.size} bins and fraction {y.size}")
    err = None if fraction_err is None else _as_values(fraction_err, name="fraction_err")[0]
    good = np.isfinite(x) & np.isfinite(y)
    ax.plot([0, 1], [0, 1], color="0.5", lw=1, ls="--", label="calibrated")
    plot_kwargs.setdefault("marker", "o")
    plot_kwargs.setdefault("ls", "-")
    ax.errorbar(x[good], y[good], yerr=None if err is None else err[good], label=label,
                capsize=2, **plot_kwargs)
    if count is not None and annotate:
        n = _as_values(count, name="count")[0]
        for xi, yi, ni in zip(x[good], y[good], n[good]):
            ax.annotate(f"{int(ni)}", (xi, yi), textcoords="offset points", xytext=(4, -10),
                        fontsize="x-small")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel(r"predicted $P(\rm RC)$")
    ax.set_ylabel("observed RC fraction")
    return ax
