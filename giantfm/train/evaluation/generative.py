"""How well the generative verbs work: inpainting, generation and physics checks.

Everything is measured on the fixed test split of a dataset file (stars the
model never saw), with the model's own request machinery -- the same calls
`giantfm.inpaint` and `giantfm.generate_spectrum` make -- and written as one
table ``generative.ecsv`` (one row per number) plus figures:

Inpainting (`inpainting`)
    Hide RP given BP, BP given RP, and the coefficients of order >= 20 in both
    bands given the lower orders; the other XP tokens and the Gaia/2MASS
    colours are the inputs (no labels). Errors are reported in units of the
    hidden coefficients' own errors, of the flux errors (the sampled flux of
    the truth and of the completed coefficients, on the 336-1020 nm grid,
    where the hidden part contributes), and as the calibration of the
    predicted uncertainties (MAD-std of residual / combined error, ideally 1).
    The test stars' coefficients were fitted to the library's sampled spectra,
    and their errors were fitted so that their propagated flux errors match the
    library's (`giantfm.xp.recover.estimate_coefficient_errors`, good to
    10-20 %); those propagated errors are the flux errors used here.

Generation (`generation`)
    Spectra generated from each test star's APOGEE labels (Teff, log g, [M/H],
    [alpha/M]; with and without its A_K) against its observed spectrum:
    reduced chi^2 per star with the observed flux errors alone and with the
    generated spectrum's uncertainty added, and the median absolute flux
    residual as a fraction of the flux; beside the XGBoost labels ->
    coefficients baselines (`giantfm.train.evaluation.baseline`, ``--features labels``
    or ``labels_ak``, ``--targets generation``) fitted on the same split.

Physics (`kiel_sweep`, `extinction_sweep`, `mass_age_sweep`)
    Teff requested along log g at fixed [M/H] against the training giants'
    median Teff (the giant branch and its metallicity dependence); spectra
    generated along an A_K sweep at fixed Teff, log g, [M/H] against the
    Fitzpatrick (1999) extinction curve of ``dust_extinction`` (R_V fitted);
    age requested along mass at fixed [M/H] (mass up, age down).

Command line::

    python -m giantfm.train.evaluation.generative --dataset FILE --out DIR [--model PATH]
        [--baseline DIR ...] [--stars N]
"""
import argparse
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import Table

from ... import plotting, vocab
from ...generation import RELATIVE_FLUX_UNIT, generate_spectrum
from ...prediction import request
from ...utils import atomic_write
from ...utils._stats import mad_std
from ...vocab import XP_NAMES
from ...xp.basis import DEFAULT_WAVELENGTH
from ...xp.sampling import coefficients_to_flux
from .baseline import predict_baseline
from ..dataset.datafile import SPLITS, load_arrays
from .evaluate import NO_INPUTS, load_baselines, load_split, save_figure

__all__ = ["inpainting", "generation", "kiel_sweep", "extinction_sweep", "mass_age_sweep",
           "evaluate_generative", "INPAINTING_CASES", "main"]

_N = vocab.N_COEFFICIENTS
_BP, _RP = vocab.BP_NAMES, vocab.RP_NAMES
#: Order from which coefficients count as "high" in the high-from-low case.
HIGH_ORDER = 20
#: Hidden tokens of each inpainting case, and where on the wavelength grid they matter
#: (GaiaXPy's merge: BP alone below 635 nm, RP alone above 643 nm).
INPAINTING_CASES = {
    "rp_from_bp": (_RP, (635.0, 1020.0)),
    "bp_from_rp": (_BP, (336.0, 643.0)),
    "high_from_low": (_BP[HIGH_ORDER:] + _RP[HIGH_ORDER:], (336.0, 1020.0)),
}
# The labels spectra are generated from (with and without A_K).
_GENERATION_LABELS = vocab.SPECTROSCOPIC_LABEL_NAMES


def _flux(coefficients, errors=None):
    """Sampled flux (token scale: per unit G flux) of (n, 110) coefficients on the default grid."""
    return coefficients_to_flux(coefficients[:, :_N], coefficients[:, _N:],
                                None if errors is None else errors[:, :_N],
                                None if errors is None else errors[:, _N:])


def _row(rows, experiment, case, metric, value, unit="", n=0, description=""):
    rows.append({"experiment": experiment, "case": case, "metric": metric,
                 "value": float(value), "unit": unit, "n": int(n), "description": description})


# ---------------------------------------------------------------------------- inpainting
def inpainting(model, batch, rows, *, batch_size=None):
    """Run the inpainting cases on ``batch`` (stars with both bands); append metric rows.

    Returns ``{case: (mean, std)}`` (n, 110) token-scale predictions, for figures.
    """
    truth, truth_err = batch.values_of(XP_NAMES)
    complete = np.isfinite(truth).all(axis=1)
    if not complete.all():
        raise ValueError(f"{int((~complete).sum())} stars lack some XP coefficient; "
                         "inpainting is scored on stars with all 110")
    flux_true, flux_err = _flux(truth, truth_err)
    wavelength = DEFAULT_WAVELENGTH
    inputs = batch.only(XP_NAMES + vocab.COLOUR_NAMES, reason=NO_INPUTS)
    out = {}
    for case, (hidden, (lo, hi)) in INPAINTING_CASES.items():
        mean, std = model.request(inputs.without(hidden), list(XP_NAMES), batch_size=batch_size)
        cols = np.isin(XP_NAMES, hidden)
        filled = np.where(cols[None, :], mean, truth)
        filled_err = np.where(cols[None, :], std, truth_err)
        resid = (mean - truth)[:, cols]
        per_star = np.sqrt(np.mean((resid / truth_err[:, cols]) ** 2, axis=1))
        z = resid / np.hypot(truth_err[:, cols], std[:, cols])
        flux, flux_pred_err = _flux(filled, filled_err)
        pix = (wavelength >= lo) & (wavelength <= hi)
        flux_z = (flux - flux_true)[:, pix] / flux_err[:, pix]
        flux_rms = np.sqrt(np.mean(flux_z ** 2, axis=1))
        frac = np.median(np.abs(flux - flux_true)[:, pix] / np.abs(flux_true[:, pix]), axis=1)
        flux_cal = (flux - flux_true)[:, pix] / np.hypot(flux_err[:, pix], flux_pred_err[:, pix])
        n = len(batch)
        _row(rows, "inpainting", case, "coefficient_rms_in_errors", np.median(per_star), "", n,
             "median over stars of the RMS of (predicted - true) / true error, hidden coefficients")
        _row(rows, "inpainting", case, "coefficient_rms_in_errors_p90",
             np.percentile(per_star, 90), "", n, "90th percentile of the same")
        _row(rows, "inpainting", case, "coefficient_z_mad_std", mad_std(z), "", n,
             "MAD-std of (predicted - true) / sqrt(true error^2 + predicted sigma^2)")
        _row(rows, "inpainting", case, "flux_rms_in_errors", np.median(flux_rms), "", n,
             "median over stars of the RMS of (flux - true flux) / flux error, "
             f"{lo:.0f}-{hi:.0f} nm")
        _row(rows, "inpainting", case, "flux_rms_in_errors_p90", np.percentile(flux_rms, 90),
             "", n, "90th percentile of the same")
        _row(rows, "inpainting", case, "flux_fractional_residual", np.median(frac), "", n,
             "median over stars of the median |flux - true flux| / |true flux|")
        _row(rows, "inpainting", case, "flux_z_mad_std", mad_std(flux_cal), "", n,
             "MAD-std of (flux - true flux) / sqrt(flux error^2 + propagated predicted sigma^2)")
        out[case] = (filled, filled_err)
    return out


# ---------------------------------------------------------------------------- generation
def _chi2(flux, flux_true, flux_err, extra_err=None):
    var = flux_err ** 2 if extra_err is None else flux_err ** 2 + extra_err ** 2
    return np.mean((flux - flux_true) ** 2 / var, axis=1)


def generation(model, batch, rows, *, baselines=(), giant=None, batch_size=None):
    """Spectra from each star's labels against its observed spectrum; append metric rows."""
    truth, truth_err = batch.values_of(XP_NAMES)
    labels, _ = batch.values_of(_GENERATION_LABELS + ("a_k",))
    have = np.isfinite(truth).all(axis=1) & np.isfinite(labels[:, :4]).all(axis=1)
    flux_true, flux_err = _flux(truth[have], truth_err[have])
    samples = {"all": np.ones(int(have.sum()), bool)}
    if giant is not None:
        samples["giants"] = np.asarray(giant)[have]
    systems = {f"giantfm ({', '.join(names)})": names
               for names in (_GENERATION_LABELS, _GENERATION_LABELS + ("a_k",))}
    results = {}
    for system, names in systems.items():
        mean, std = model.request(batch[np.flatnonzero(have)].only(names, reason=NO_INPUTS),
                                  list(XP_NAMES), batch_size=batch_size)
        flux, flux_sigma = _flux(mean, std)
        results[system] = (flux, flux_sigma)
    for baseline in baselines:
        mean = predict_baseline(baseline, batch[np.flatnonzero(have)], XP_NAMES)
        results[f"XGBoost ({', '.join(baseline.features)})"] = (_flux(mean)[0], None)
    for system, (flux, flux_sigma) in results.items():
        chi2_obs = _chi2(flux, flux_true, flux_err)
        frac = np.median(np.abs(flux - flux_true) / np.abs(flux_true), axis=1)
        for sample, sel in samples.items():
            n = int(sel.sum())
            _row(rows, "generation", f"{system}; {sample}", "chi2_reduced_obs_errors",
                 np.median(chi2_obs[sel]), "", n,
                 "median over stars of the reduced chi^2 with the observed flux errors only")
            if flux_sigma is not None:
                chi2_all = _chi2(flux, flux_true, flux_err, flux_sigma)
                _row(rows, "generation", f"{system}; {sample}", "chi2_reduced_with_model_sigma",
                     np.median(chi2_all[sel]), "", n,
                     "median reduced chi^2 with the generated spectrum's uncertainty added")
            _row(rows, "generation", f"{system}; {sample}", "flux_fractional_residual",
                 np.median(frac[sel]), "", n,
                 "median over stars of the median |generated - observed| / observed flux")
    return results, (flux_true, flux_err, have)


# ---------------------------------------------------------------------------- physics checks
def _request_along(model, name, grid, m_h, target):
    """``target`` requested from ``name`` along ``grid`` at fixed [M/H] (vocabulary units)."""
    result = request({name: grid, "m_h": np.full(len(grid), m_h)}, target, model=model,
                     progress=False)
    return result[target].unmasked.value


def kiel_sweep(model, train_labels, rows, *, metallicities=(-1.0, -0.5, 0.0, 0.3),
               logg_grid=None):
    """Teff requested along log g at fixed [M/H], against the training giants.

    Returns ``{m_h: (logg_grid, model_teff, data_median_teff)}``.
    """
    logg_grid = np.round(np.arange(1.0, 3.41, 0.1), 2) if logg_grid is None else logg_grid
    teff, logg, m_h = (np.asarray(train_labels[k], dtype=float) for k in ("teff", "logg", "m_h"))
    out = {}
    for feh in metallicities:
        pred = _request_along(model, "logg", logg_grid, feh, "teff")
        near = np.abs(m_h - feh) < 0.15
        median = np.full(len(logg_grid), np.nan)
        for k, g in enumerate(logg_grid):
            sel = near & (np.abs(logg - g) < 0.05)
            if sel.sum() >= 20:
                median[k] = np.median(teff[sel])
        ok = np.isfinite(median)
        _row(rows, "physics", f"kiel [M/H]={feh:+.1f}", "teff_rms_vs_data",
             np.sqrt(np.mean((pred[ok] - median[ok]) ** 2)), "K", int(ok.sum()),
             "RMS of requested Teff(log g) - median training Teff in 0.1 dex log g bins "
             "(|[M/H] - value| < 0.15, bins with >= 20 stars)")
        _row(rows, "physics", f"kiel [M/H]={feh:+.1f}", "dteff_dlogg_model",
             np.polyfit(logg_grid, pred, 1)[0], "K/dex", len(logg_grid),
             "slope of the requested Teff along log g 1.0-3.4")
        out[feh] = (logg_grid, pred, median)
    # Metallicity dependence at log g 2.5: model (through the sweep) and data (regression).
    at = np.argmin(np.abs(logg_grid - 2.5))
    fehs = np.array(metallicities)
    slope_model = np.polyfit(fehs, [out[f][1][at] for f in metallicities], 1)[0]
    sel = (np.abs(logg - 2.5) < 0.1) & (m_h > fehs.min() - 0.2) & (m_h < fehs.max() + 0.1) \
        & np.isfinite(teff)
    slope_data = np.polyfit(m_h[sel], teff[sel], 1)[0]
    _row(rows, "physics", "kiel log g=2.5", "dteff_dmh_model", slope_model, "K/dex",
         len(fehs), "Teff change per dex of [M/H] at log g 2.5, requested")
    _row(rows, "physics", "kiel log g=2.5", "dteff_dmh_data", slope_data, "K/dex",
         int(sel.sum()),
         "the same from a linear fit to the training stars with |log g - 2.5| < 0.1")
    return out


def extinction_sweep(model, rows, *, teff=4750.0, logg=2.5, m_h=0.0, alpha_m=0.0,
                     a_k=(0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4), fit_range=(420.0, 1000.0)):
    """Spectra generated along A_K, fitted with Fitzpatrick (1999) extinction.

    The generated flux is per unit G-band flux, so ``-2.5 log10(F / F(A_K=0))``
    is ``A(lambda) - A_G``: it is fitted, over all A_K at once, as
    ``A_K * r * k(lambda; R_V) + c(A_K)`` with ``k = A(lambda)/A_V`` of
    ``dust_extinction``'s F99, ``r = A_V / A_K`` and one offset per A_K, over
    ``fit_range`` (nm): below ~420 nm a cool giant's XP flux is close to zero and
    the flux ratio is noise.

    Returns ``(wavelength, a_k, extinction curves (len(a_k) - 1, n_wl), fitted model curves,
    R_V, r)``.
    """
    from dust_extinction.parameter_averages import F99
    from scipy.optimize import least_squares

    a_k = np.asarray(a_k, dtype=float)
    spec = generate_spectrum(teff=teff, logg=logg, m_h=m_h, alpha_m=alpha_m, extinction=a_k,
                             model=model)
    wavelength = spec.spectral_axis.to_value(u.nm)
    flux = spec.flux.value
    with np.errstate(invalid="ignore", divide="ignore"):
        # NaN where a generated flux is not positive (the far blue of a cool giant)
        curves = -2.5 * np.log10(flux[1:] / flux[0])
    a = a_k[1:]
    x = (wavelength * u.nm).to(u.micron)
    pix = (wavelength >= fit_range[0]) & (wavelength <= fit_range[1]) \
        & np.isfinite(curves).all(axis=0)

    def model_curves(p):
        rv, r = p[0], p[1]
        k = F99(Rv=rv)(x)
        return a[:, None] * r * k[None, :] + p[2:, None]

    start = np.r_[3.1, 8.0, np.zeros(len(a))]
    lo, hi = F99.Rv_range
    fit = least_squares(lambda p: (model_curves(p) - curves)[:, pix].ravel(), start,
                        bounds=(np.r_[lo, 0.0, np.full(len(a), -np.inf)],
                                np.r_[hi, np.inf, np.full(len(a), np.inf)]))
    rv, r = fit.x[0], fit.x[1]
    fitted = model_curves(fit.x)
    fixed = least_squares(lambda p: (model_curves(np.r_[3.1, p]) - curves)[:, pix].ravel(),
                          start[1:])
    rms_31 = np.sqrt(np.mean((model_curves(np.r_[3.1, fixed.x]) - curves)[:, pix] ** 2))
    k_band = float(F99(Rv=rv)(2.16 * u.micron))
    _row(rows, "physics", "extinction", "rv_fitted", rv, "", len(a),
         f"R_V of the F99 curve fitted to generated spectra (Teff {teff:g} K, log g {logg:g}, "
         f"[M/H] {m_h:g}), A_K {a.min():g}-{a.max():g}, {fit_range[0]:g}-{fit_range[1]:g} nm")
    _row(rows, "physics", "extinction", "av_per_ak_fitted", r, "", len(a),
         "A_V / A_K of the fit")
    _row(rows, "physics", "extinction", "av_per_ak_f99", 1.0 / k_band, "", 0,
         "A_V / A_K that F99 itself gives at that R_V (Ks, 2.16 micron)")
    _row(rows, "physics", "extinction", "fit_rms",
         np.sqrt(np.mean((fitted - curves)[:, pix] ** 2)), "mag", curves[:, pix].size,
         f"RMS of generated - fitted A(lambda) - A_G, {fit_range[0]:g}-{fit_range[1]:g} nm")
    _row(rows, "physics", "extinction", "fit_rms_rv_3.1", rms_31, "mag", curves[:, pix].size,
         "the same with R_V fixed at 3.1")
    _row(rows, "physics", "extinction", "blue_minus_red_per_ak",
         np.polyfit(a, curves[:, np.argmin(np.abs(wavelength - 400))]
                    - curves[:, np.argmin(np.abs(wavelength - 900))], 1)[0], "mag/mag", len(a),
         "reddening E(400 nm - 900 nm) per magnitude of A_K")
    return wavelength, a, curves, fitted, rv, r


def mass_age_sweep(model, train_labels, rows, *, metallicities=(-0.5, 0.0, 0.3),
                   mass_grid=None):
    """Age requested along mass at fixed [M/H] (giants: mass up, age down).

    Returns ``{m_h: (mass_grid, age)}``.
    """
    from scipy.stats import spearmanr

    mass_grid = np.round(np.arange(0.9, 2.51, 0.1), 2) if mass_grid is None else mass_grid
    mass, age, m_h = (np.asarray(train_labels[k], dtype=float) for k in ("mass", "age", "m_h"))
    out = {}
    for feh in metallicities:
        pred = _request_along(model, "mass", mass_grid, feh, "age")
        rho = spearmanr(mass_grid, pred).statistic
        slope = np.polyfit(np.log10(mass_grid), np.log10(pred), 1)[0]
        sel = (np.abs(m_h - feh) < 0.15) & np.isfinite(mass) & np.isfinite(age) & (age > 0) \
            & (mass >= mass_grid.min()) & (mass <= mass_grid.max())
        slope_data = np.polyfit(np.log10(mass[sel]), np.log10(age[sel]), 1)[0]
        case = f"mass-age [M/H]={feh:+.1f}"
        _row(rows, "physics", case, "spearman_mass_age_model", rho, "", len(mass_grid),
             "rank correlation of requested age with mass (-1: age falls as mass rises)")
        _row(rows, "physics", case, "dlogage_dlogmass_model", slope, "", len(mass_grid),
             f"slope of log age vs log mass, requested, mass {mass_grid.min():g}-"
             f"{mass_grid.max():g}")
        _row(rows, "physics", case, "dlogage_dlogmass_data", slope_data, "", int(sel.sum()),
             "the same fitted to the training labels with |[M/H] - value| < 0.15")
        out[feh] = (mass_grid, pred)
    return out


# ---------------------------------------------------------------------------- driver
def evaluate_generative(model, dataset_path, out_dir, *, baselines=(), n_stars=None,
                        batch_size=None, seed=0):
    """Run every check on ``dataset_path``'s test split; write the table and figures.

    Parameters
    ----------
    model : `giantfm.model.TrainedModel`
    dataset_path : str or path-like
    out_dir : str or path-like
        Receives ``generative.ecsv`` and ``*.png``.
    baselines : sequence of `giantfm.train.evaluation.baseline.BaselineModel`, optional
        Labels -> coefficients baselines to compare generation with.
    n_stars : int, optional
        Score a random subset (seeded) of this many test stars.

    Returns
    -------
    `~astropy.table.Table`
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    test = load_split(dataset_path, "test")
    rows_idx = np.arange(len(test.batch))
    if n_stars is not None and n_stars < len(rows_idx):
        rows_idx = np.sort(np.random.default_rng(seed).choice(rows_idx, n_stars, replace=False))
    batch, giant = test.batch[rows_idx], test.giant[rows_idx]
    arrays = load_arrays(dataset_path)
    train_sel = arrays["split"] == SPLITS["train"]
    train_labels = {k: np.asarray(v[train_sel], dtype=float) for k, v in arrays["labels"].items()}
    giants_train = arrays["giant"][train_sel]
    train_giant_labels = {k: v[giants_train] for k, v in train_labels.items()}

    rows = []
    inpainted = inpainting(model, batch, rows, batch_size=batch_size)
    generated, observed = generation(model, batch, rows, baselines=baselines, giant=giant,
                                     batch_size=batch_size)
    kiel = kiel_sweep(model, train_giant_labels, rows)
    extinction = extinction_sweep(model, rows)
    mass_age = mass_age_sweep(model, train_giant_labels, rows)

    table = Table(rows=[tuple(r.values()) for r in rows], names=list(rows[0]))
    table.meta.update(model=model.metadata.name, dataset=Path(dataset_path).name,
                      n_test_stars=len(batch), seed=seed)
    atomic_write(out_dir / "generative.ecsv",
                 lambda tmp: table.write(tmp, format="ascii.ecsv", overwrite=True))
    _figures(out_dir, batch, inpainted, generated, observed, kiel, train_giant_labels,
             extinction, mass_age)
    return table


def _figures(out_dir, batch, inpainted, generated, observed, kiel, train_labels, extinction,
             mass_age):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth, truth_err = batch.values_of(XP_NAMES)
    flux_true, flux_err = _flux(truth, truth_err)
    stars = np.linspace(0, len(batch) - 1, 3).astype(int)
    fig, axes = plt.subplots(len(stars), len(inpainted), figsize=(12, 8), sharex=True,
                             squeeze=False, layout="constrained")
    for j, (case, (filled, filled_err)) in enumerate(inpainted.items()):
        flux, flux_sigma = _flux(filled[stars], filled_err[stars])
        for i, star in enumerate(stars):
            ax = axes[i, j]
            plotting.spectrum(flux_true[star], ax, uncertainty=flux_err[star], label="truth",
                              color="k", lw=1)
            plotting.spectrum(flux[i], ax, uncertainty=flux_sigma[i], label="inpainted",
                              color="C1", lw=1)
            lo, hi = INPAINTING_CASES[case][1]
            ax.axvspan(lo, hi, color="C0", alpha=0.06)
            ax.set_xlabel("")  # one label for each axis of the figure, below
            ax.set_ylabel("")
            if i == 0:
                ax.set_title(case.replace("_", " "))
            ax.text(0.02, 0.9, f"Gaia DR3 {batch.source_id[star]}", transform=ax.transAxes,
                    fontsize=7)
    axes[0, 0].legend(fontsize=8)
    fig.supxlabel(plotting.axis_label("wavelength", u.nm))
    # flux per unit G-band flux (the token scale of the coefficients)
    fig.supylabel(plotting.axis_label(r"$F_\lambda / F_G$", RELATIVE_FLUX_UNIT))
    save_figure(fig, out_dir / "inpainting_examples.png")
    plt.close(fig)

    flux_true_g, flux_err_g, have = observed
    fig, ax = plt.subplots(figsize=(6, 4))
    for system, (flux, _) in generated.items():
        chi2 = _chi2(flux, flux_true_g, flux_err_g)
        ax.hist(np.log10(chi2), bins=50, histtype="step", label=system)
    ax.set_xlabel(r"$\log_{10} \chi^2_\nu$ (observed errors only)")
    ax.set_ylabel("test stars")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out_dir / "generation_chi2.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 5))
    plotting.kiel_diagram(train_labels["teff"] * u.K, train_labels["logg"], ax=ax, colorbar=False,
                          s=2, alpha=0.15)
    for k, (feh, (grid, pred, median)) in enumerate(kiel.items()):
        ax.plot(pred, grid, color=f"C{k}", lw=2, label=f"model, [M/H] = {feh:+.1f} dex")
        ax.plot(median, grid, color=f"C{k}", ls=":", lw=1.5)
    ax.legend(fontsize=8, title="dotted: training median", title_fontsize=8)
    fig.tight_layout()
    save_figure(fig, out_dir / "kiel_sweep.png")
    plt.close(fig)

    wl, a, curves, fitted, rv, r = extinction
    fig, ax = plt.subplots(figsize=(6, 4))
    for k in range(len(a)):
        ax.plot(wl, curves[k], color=f"C{k}", lw=1.5, label=f"$A_K$ = {a[k]:g} mag")
        ax.plot(wl, fitted[k], color=f"C{k}", ls="--", lw=1)
    ax.set_xlabel(plotting.axis_label("wavelength", u.nm))
    ax.set_ylabel(r"$A_\lambda - A_G$ [mag]")
    ax.set_title(f"generated (solid) vs F99 fit (dashed): $R_V$ = {rv:.2f}, "
                 f"$A_V/A_K$ = {r:.1f}", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save_figure(fig, out_dir / "extinction_sweep.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    plotting.mass_age(train_labels["mass"] * u.solMass, train_labels["age"] * u.Gyr, ax=ax,
                      colorbar=False, s=2, alpha=0.15)
    for k, (feh, (grid, age)) in enumerate(mass_age.items()):
        ax.plot(grid, age, color=f"C{k}", lw=2, label=f"model, [M/H] = {feh:+.1f} dex")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out_dir / "mass_age_sweep.png")
    plt.close(fig)


def main(argv=None):
    """Command line: evaluate the generative verbs on a dataset file's test split."""
    parser = argparse.ArgumentParser(prog="python -m giantfm.train.evaluation.generative",
                                     description=main.__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="dataset HDF5 file")
    parser.add_argument("--out", required=True, help="folder for generative.ecsv and figures")
    parser.add_argument("--model", default=None, help="saved model folder (default: bundled)")
    parser.add_argument("--baseline", nargs="*", default=(),
                        help="labels -> coefficients XGBoost baseline folder(s), or a folder "
                        "holding several")
    parser.add_argument("--stars", type=int, default=None, help="score a subset of test stars")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    from ...model import load_model  # torch, imported when the command runs

    model = load_model(args.model, device=args.device)
    baselines = load_baselines(args.baseline) if args.baseline else ()
    table = evaluate_generative(model, args.dataset, args.out, baselines=baselines,
                                n_stars=args.stars)
    table.pprint(max_lines=-1, max_width=-1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
