"""Make the figures of the training-set datasheet (docs/datasheet.rst).

Usage (from the project root, after building the dataset)::

    python docs/scripts/make_datasheet_figures.py [work_data/giantfm-dataset-v1.h5]

Writes PNG files to ``docs/_static/datasheet/``: the label model's
cross-validation against seismology, the label distributions per split, and
the Kiel diagram of the XP stars. The label model's out-of-fold predictions
are recomputed from the shared seismic catalogues with the file's settings
(same folds and seed), which takes about a minute on a laptop.
"""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from giantfm.io import dataset  # noqa: E402
from giantfm.train import labelmodel, sources  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "_static" / "datasheet"
STATE_STYLE = {"RGB": ("tab:red", 1), "RC": ("tab:blue", 2), "unknown": ("0.4", 0)}


def cross_validation_figure(attrs):
    """Predicted vs seismic mass and age, out of fold, per evolutionary state."""
    offsets = attrs["label_model"]["offsets_apokasc2_minus_dr17"]
    calibration = labelmodel.seismic_calibration_set(
        sources.read_apokasc2(), miglio=sources.read_miglio2021(), offsets=offsets)
    validation = attrs["label_model"]["validation"]["xgboost"]
    cv = labelmodel.cross_validate(calibration, n_folds=validation["n_folds"],
                                   seed=validation["seed"])
    evstate = np.asarray(calibration["evstate"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), constrained_layout=True)
    panels = (("mass", np.asarray(calibration["mass"]), cv["predictions"]["mass"],
               r"mass [$M_\odot$]", (0.5, 3.5), "mass"),
              ("age", np.asarray(calibration["age"]), 10 ** cv["predictions"]["log_age"],
               "age [Gyr]", (0.3, 20), "age"))
    for ax, (name, truth, pred, label, lim, key) in zip(axes, panels):
        for state, (colour, code) in STATE_STYLE.items():
            sel = evstate == code
            stats = validation[key][state]
            ax.scatter(truth[sel], pred[sel], s=3, alpha=0.5, color=colour,
                       label=f"{state} (n={stats['n']}): bias {stats['bias']:+.3f}, "
                             f"scatter {stats['scatter']:.3f}")
        ax.plot(lim, lim, color="k", lw=0.8)
        if name == "age":
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_xlabel(f"seismic (APOKASC-2) {label}")
        ax.set_ylabel(f"label model {label} ({validation['n_folds']}-fold CV)")
        overall = validation[key]["overall"]
        ax.set_title(f"{name}: scatter {overall['scatter']:.3f}, bias {overall['bias']:+.3f}")
        ax.legend(fontsize=7, loc="upper left", markerscale=3)
    fig.savefig(OUT / "labelmodel_cv.png", dpi=110)
    plt.close(fig)


def distributions_figure(data):
    """Histograms of the labels per split (XP stars and label-only stars)."""
    labels, split, source = data["labels"], data["split"], data["source"]
    names = (("teff", "Teff [K]"), ("logg", "log g"), ("m_h", "[M/H]"),
             ("alpha_m", "[alpha/M]"), ("mass", r"mass [$M_\odot$]"), ("age", "age [Gyr]"))
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
    ax.set_xlabel("Teff [K] (APOGEE DR17)")
    ax.set_ylabel("log g")
    ax.legend(fontsize=7, markerscale=6)
    fig.savefig(OUT / "kiel.png", dpi=110)
    plt.close(fig)


def main(argv=None):
    """Make all figures from the dataset file given as the first argument."""
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else ROOT / "work_data" / "giantfm-dataset-v1.h5"
    OUT.mkdir(parents=True, exist_ok=True)
    data = dataset.load_arrays(path)
    kiel_figure(data)
    distributions_figure(data)
    cross_validation_figure(data["attrs"])
    print(f"figures written to {OUT}")


if __name__ == "__main__":
    main()
