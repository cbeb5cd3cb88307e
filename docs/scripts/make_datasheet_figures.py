"""Make the figures of the training-set datasheet (docs/datasheet.rst).

Usage (from the project root, after building the dataset)::

    python docs/scripts/make_datasheet_figures.py [work_data/giantfm-dataset-v4.h5]
        [--only NAME ...] [--shared ../shared/data]

Writes PNG files to ``docs/_static/datasheet/``: the label model's
cross-validation against seismology, the label distributions per split, and
the Kiel diagram of the XP stars (from the dataset file); and the Gaia XP
noise model against real DR3 sources (``noise_vs_g.png``, from the shared DR3
file ``xp/xp_continuous_first2000.fits`` only: ``--only noise`` makes it
without a dataset). The label model's out-of-fold predictions are recomputed
from the shared seismic catalogues with the file's settings (same folds and
seed), which takes about a minute on a laptop. Axis labels are written as
papers write them (`giantfm.plotting.axis_label`: ``$T_{\\rm eff}$ [K]``).
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from giantfm.train.dataset import datafile as dataset  # noqa: E402
from giantfm.plotting import axis_label  # noqa: E402
from giantfm.train.seismic import fit as labelmodel  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "_static" / "datasheet"
STATE_STYLE = {"RGB": ("tab:red", 1), "RC": ("tab:blue", 2), "unknown": ("0.4", 0)}
SHARED = ROOT.parent / "shared" / "data"
#: Coefficients shown in the noise figure, and the G of the faint copies.
NOISE_COEFFICIENTS = (0, 5, 20)
COPY_G = np.arange(13.0, 17.51, 0.5)
COPY_SOURCES_G = (12.0, 14.0)


def cross_validation_figure(attrs):
    """Predicted vs seismic mass and age, out of fold, per evolutionary state."""
    calibration = labelmodel.calibration_from_shared(SHARED, say=lambda *a: None)
    validation = attrs["label_model"]["validation"]["xgboost"]
    cv = labelmodel.cross_validate(calibration, n_folds=validation["n_folds"],
                                   seed=validation["seed"])
    evstate = np.asarray(calibration["evstate"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), constrained_layout=True)
    # the statistics stored for "mass" are in solar masses, those for "age" in Gyr
    panels = (("mass", np.asarray(calibration["mass"]), cv["predictions"]["mass"],
               axis_label("mass"), (0.5, 3.5), "mass", ("$M$", r" $M_\odot$")),
              ("age", np.asarray(calibration["age"]), 10 ** cv["predictions"]["log_age"],
               axis_label("age"), (0.3, 20), "age", ("age", " Gyr")))
    for ax, (name, truth, pred, label, lim, key, (what, unit)) in zip(axes, panels):
        for state, (colour, code) in STATE_STYLE.items():
            sel = evstate == code
            stats = validation[key][state]
            ax.scatter(truth[sel], pred[sel], s=3, alpha=0.5, color=colour,
                       label=f"{state} (n={stats['n']}): bias {stats['bias']:+.3f}{unit}, "
                             f"scatter {stats['scatter']:.3f}{unit}")
        ax.plot(lim, lim, color="k", lw=0.8)
        if name == "age":
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_xlabel(f"APOKASC-2 seismic {label}")
        ax.set_ylabel(f"label-model {label}, {validation['n_folds']}-fold CV")
        overall = validation[key]["overall"]
        ax.set_title(f"{what}: scatter {overall['scatter']:.3f}{unit}, "
                     f"bias {overall['bias']:+.3f}{unit}")
        ax.legend(fontsize=7, loc="upper left", markerscale=3)
    fig.savefig(OUT / "labelmodel_cv.png", dpi=110)
    plt.close(fig)


def distributions_figure(data):
    """Histograms of the labels per split (XP stars and label-only stars)."""
    labels, split, source = data["labels"], data["split"], data["source"]
    names = [(name, axis_label(name)) for name in ("teff", "logg", "m_h", "alpha_m", "mass",
                                                   "age")]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), constrained_layout=True)
    for ax, (name, label) in zip(axes.flat, names):
        values = labels[name]
        finite = values[np.isfinite(values)]
        bins = np.linspace(*np.percentile(finite, [0.5, 99.5]), 40)
        for split_name, code in dataset.SPLITS.items():
            sel = (split == code) & np.isfinite(values)
            ax.hist(values[sel], bins=bins, histtype="step", density=True,
                    label=f"{split_name} ({sel.sum()})")
        seismic = (source == dataset.SOURCES["seismic"]) & np.isfinite(values)
        ax.hist(values[seismic], bins=bins, histtype="stepfilled", density=True, alpha=0.2,
                color="k", label=f"label-only seismic ({seismic.sum()})")
        ax.set_xlabel(label)
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("probability density")
        ax.legend(fontsize=7)
    fig.savefig(OUT / "label_distributions.png", dpi=110)
    plt.close(fig)


def kiel_figure(data):
    """Kiel diagram of the XP stars: dwarfs, giants, giants with mass/age labels."""
    labels, source, giant = data["labels"], data["source"], data["giant"]
    xp = source == dataset.SOURCES["xp"]
    with_mass = np.isfinite(labels["mass"])
    fig, ax = plt.subplots(figsize=(6, 5), constrained_layout=True)
    for sel, colour, text in ((xp & ~giant, "0.7", "XP dwarfs / hot stars"),
                              (xp & giant & ~with_mass, "tab:orange",
                               "XP giants outside the label-model domain"),
                              (xp & giant & with_mass, "tab:purple",
                               "XP giants with mass and age")):
        ax.scatter(labels["teff"][sel], labels["logg"][sel], s=1, color=colour,
                   label=f"{text} ({sel.sum()})", rasterized=True)
    ax.invert_xaxis()
    ax.invert_yaxis()
    ax.set_xlabel("APOGEE DR17 " + axis_label("teff"))
    ax.set_ylabel("APOGEE DR17 " + axis_label("logg"))
    ax.legend(fontsize=7, markerscale=6)
    fig.savefig(OUT / "kiel.png", dpi=110)
    plt.close(fig)


def noise_figure(shared=SHARED, seed=20261127):
    """Relative coefficient errors and ``n_relevant_bases`` against G: real DR3 vs faint copies.

    Real: the 2,000 sources of ``xp_continuous_first2000.fits`` at their G
    synthesised from the coefficients. Simulated: `giantfm.xp.noise.faint_copy`
    of the real sources with G in `COPY_SOURCES_G`, made at each G of `COPY_G`
    (each target from the sources brighter than it), summarised by the median
    (and 16-84 % range for ``n_relevant_bases``).
    """
    from giantfm.xp import read_xp, synthetic_g
    from giantfm.xp.coefficients import XPCoefficients
    from giantfm.xp.noise import faint_copy

    xp = read_xp(Path(shared) / "xp" / "xp_continuous_first2000.fits")
    with np.errstate(divide="ignore", invalid="ignore"):
        g = synthetic_g(xp.bp, xp.rp)
    keep = np.isfinite(g) & (xp.bp[:, 0] > 0) & (xp.rp[:, 0] > 0)
    xp, g = xp[keep], g[keep]
    xp = XPCoefficients(xp.source_id, xp.bp, xp.rp, xp.bp_err, xp.rp_err,
                        bp_n_relevant=xp.bp_n_relevant, rp_n_relevant=xp.rp_n_relevant,
                        mags={"g": g})
    rng = np.random.default_rng(seed)
    bright = (g >= COPY_SOURCES_G[0]) & (g <= COPY_SOURCES_G[1])
    copies = {}
    for target in COPY_G:
        rows = np.flatnonzero(bright & (g <= target))
        copies[target] = faint_copy(xp[rows], target, rng=rng)

    def relative(x, band, k):
        return getattr(x, f"{band}_err")[:, k] / np.abs(getattr(x, band)[:, 0])

    # The copied sources are bluer than the faint real ones, and the errors of a band at a
    # given G depend on colour: the running median of the real sources (0.5 mag bins, at
    # least 15 sources) is taken over those in the copies' 16-84 % colour range.
    colour = np.log10(xp.rp[:, 0] / xp.bp[:, 0])
    colour_range = np.percentile(colour[bright], [16, 84])
    like = (colour >= colour_range[0]) & (colour <= colour_range[1])
    edges = np.arange(7.0, 20.01, 0.5)
    which = np.where(like, np.digitize(g, edges), -1)
    bins = [b for b in range(1, len(edges)) if np.sum(which == b) >= 15]
    centres = np.array([np.median(g[which == b]) for b in bins])

    def running_median(values):
        return np.array([np.nanmedian(values[which == b]) for b in bins])

    # Agreement, printed: each copy against the real source nearest in colour within
    # 0.25 mag of the copy's G; median of the copies over median of those real sources.
    print("faint copies / colour-matched real sources (medians):")
    for target in COPY_G[COPY_G >= 14.5]:
        near_g = np.flatnonzero(np.abs(g - target) < 0.25)
        made = copies[target]
        made_colour = np.log10(made.rp[:, 0] / made.bp[:, 0])
        twin = near_g[np.nanargmin(np.abs(colour[near_g][None, :] - made_colour[:, None]), 1)]
        ratios = [f"{band}{k} " + format(np.nanmedian(relative(made, band, k))
                                         / np.nanmedian(relative(xp[twin], band, k)), ".2f")
                  for band in ("bp", "rp") for k in NOISE_COEFFICIENTS]
        n_rel = [f"{band}_n_relevant {np.median(getattr(made, f'{band}_n_relevant')):g} vs "
                 f"{np.median(getattr(xp, f'{band}_n_relevant')[twin]):g}"
                 for band in ("bp", "rp")]
        print(f"  G = {target:g}: error ratio " + ", ".join(ratios) + "; " + ", ".join(n_rel))

    rows = [(f"coefficient {k}", k) for k in NOISE_COEFFICIENTS] + [("n_relevant_bases", None)]
    colours = {"bp": "tab:blue", "rp": "tab:red"}
    fig, axes = plt.subplots(len(rows), 2, figsize=(10.5, 13), sharex=True,
                             constrained_layout=True)
    for col, band in enumerate(("bp", "rp")):
        name, colour = band.upper(), colours[band]
        for row, (title, k) in enumerate(rows):
            ax = axes[row, col]
            if k is not None:
                real = relative(xp, band, k)
                copy = np.array([np.nanmedian(relative(copies[t], band, k)) for t in COPY_G])
                ylabel = rf"$\sigma({{\rm {name}}}_{{{k}}}) / |{{\rm {name}}}_0|$"
            else:
                real = getattr(xp, f"{band}_n_relevant").astype(float)
                spread = np.array([np.percentile(getattr(copies[t], f"{band}_n_relevant"),
                                                 [16, 84]) for t in COPY_G])
                copy = np.array([np.median(getattr(copies[t], f"{band}_n_relevant"))
                                 for t in COPY_G])
                ax.fill_between(COPY_G, spread[:, 0], spread[:, 1], color=colour, alpha=0.2,
                                label="faint copies, 16-84 %")
                ylabel = f"{band}_n_relevant_bases"
            ax.scatter(g, real, s=3, alpha=0.3, color="0.45", rasterized=True,
                       label=f"real DR3 sources ({len(g)})")
            ax.plot(centres, running_median(real), "--", color="k", lw=1.2,
                    label=f"real, log10(RP0/BP0) {colour_range[0]:.2f} to "
                          f"{colour_range[1]:.2f}: median")
            ax.plot(COPY_G, copy, "o-", ms=7, lw=1.5, color=colour, mec="k",
                    label="faint copies, median")
            ax.set_yscale("log")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{name} {title}", fontsize=10)
            ax.grid(alpha=0.3, which="major")
            if k is None:
                ax.set_ylim(1.5, 400)  # room for the legend above the data
                ax.set_yticks([2, 3, 5, 10, 20, 55])
                ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
                ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
                ax.set_xlabel("$G$ [mag], synthesised from the coefficients")
            else:
                finite = real[np.isfinite(real) & (real > 0)]
                ax.set_ylim(*np.percentile(finite, [0.2, 99.8]) * [0.7, 1.5])
            ax.legend(fontsize=7.5, loc="upper left")
    n_sources = int(bright.sum())
    fig.suptitle(f"Gaia DR3 XP noise against G: {len(g)} real sources and faint copies of "
                 f"the {n_sources} with G {COPY_SOURCES_G[0]:g}-{COPY_SOURCES_G[1]:g}, "
                 f"made at G = {COPY_G[0]:g}, {COPY_G[1]:g}, ..., {COPY_G[-1]:g}",
                 fontsize=11)
    for ax in axes.flat:
        ax.set_xlim(7, 20)
    fig.savefig(OUT / "noise_vs_g.png", dpi=110)
    plt.close(fig)


FIGURES = ("kiel", "distributions", "cross_validation", "noise")


def main(argv=None):
    """Make the figures (all by default) from the dataset file and the shared DR3 file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?",
                        default=str(ROOT / "work_data" / "giantfm-dataset-v4.h5"),
                        help="the dataset file (for every figure but 'noise')")
    parser.add_argument("--only", nargs="+", choices=FIGURES, default=list(FIGURES),
                        help="make only these figures")
    parser.add_argument("--shared", default=str(SHARED),
                        help="the shared data folder (for the 'noise' figure)")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    if set(args.only) - {"noise"}:
        data = dataset.load_arrays(Path(args.dataset))
        if "kiel" in args.only:
            kiel_figure(data)
        if "distributions" in args.only:
            distributions_figure(data)
        if "cross_validation" in args.only:
            cross_validation_figure(data["attrs"])
    if "noise" in args.only:
        noise_figure(args.shared)
    print(f"figures written to {OUT}")


if __name__ == "__main__":
    main()
