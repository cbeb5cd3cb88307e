"""Write the numbers of a training-set file that the documentation quotes.

Usage (from the project root, after ``giantfm build-dataset``)::

    python docs/scripts/dataset_results.py work_data/giantfm-dataset-v4.h5 \
        [--out docs/results/dataset.ecsv]

The datasheet and the training tutorial quote the dataset's size, build time,
quality cuts, counts per split and the label model's cross-validation. They
come from the file (its attributes and arrays), which is not part of the
repository; this script copies them into ``docs/results/dataset.ecsv``, from
which ``docs/scripts/make_tables.py`` makes the substitutions ``|ds_<name>|``
that the pages use (so no number is typed by hand). Rerun it, and commit the
table, whenever the dataset is rebuilt.

The table has one row per number: ``name``, ``value`` (float), ``unit``,
``format`` (a Python format spec for the value, e.g. ``,.0f``) and
``description``.
"""
import argparse
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
#: The counts of the datasheet's "Contents" table, per split.
COUNT_KEYS = ("stars", "xp", "seismic", "xp_giants", "xp_giants_with_mass", "with_m_h",
              "with_a_k", "with_age_cn")
#: Evolutionary states of the label model's validation, as the attribute names them.
STATES = ("overall", "RGB", "RC", "unknown")


def dataset_rows(path):
    """The rows of ``dataset.ecsv`` for the dataset file ``path`` (a list of dicts)."""
    from giantfm.train.dataset import datafile as dataset

    data = dataset.load_arrays(path)
    attrs = data["attrs"]
    rows = []

    def add(name, value, unit="", fmt=",.0f", description=""):
        rows.append({"name": name, "value": float(value), "unit": unit, "format": fmt,
                     "description": description})

    add("format_version", attrs["format_version"], fmt=".0f",
        description="dataset file format version")
    add("vocab_version", attrs["vocab_version"], fmt=".0f", description="vocabulary version")
    add("size", os.path.getsize(path) / 1e6, "MB", ".1f", "size of the file")
    add("build_seconds", attrs["build_seconds"], "s", ".0f",
        "build time recorded in the file (attribute build_seconds)")

    for cut in attrs["cuts"]:
        if "remaining" in cut:
            add(f"cut_{cut['cut']}_removed", cut["removed"],
                description=f"stars removed by the cut: {cut['description']}")
            add(f"cut_{cut['cut']}_remaining", cut["remaining"],
                description=f"stars left after the cut: {cut['description']}")
        else:
            add(f"cut_{cut['cut']}_affected", cut["affected"],
                description=f"stars without the token: {cut['description']}")

    for key in ("xp_stars", "label_only_stars"):
        add(key, attrs["counts"][key], description=f"{key.replace('_', ' ')}, all splits")
    split, source, giant = data["split"], data["source"], data["giant"]
    labels = data["labels"]
    xp = source == dataset.SOURCES["xp"]
    masks = {"stars": np.ones(split.size, bool), "xp": xp,
             "seismic": source == dataset.SOURCES["seismic"], "xp_giants": xp & giant,
             "xp_giants_with_mass": xp & giant & np.isfinite(labels["mass"]),
             "with_m_h": np.isfinite(labels["m_h"]), "with_a_k": np.isfinite(labels["a_k"]),
             "with_age_cn": np.isfinite(labels["age_cn"])}
    for name, code in dataset.SPLITS.items():
        for key in COUNT_KEYS:
            add(f"{name}_{key}", np.sum(masks[key] & (split == code)),
                description=f"{key.replace('_', ' ')}, {name} split")
    for key in ("xp_giants", "xp_giants_with_mass"):
        add(f"all_{key}", np.sum(masks[key]), description=f"{key.replace('_', ' ')}, all splits")
    add("xp_giants_in_label_domain", np.sum(xp & giant & (labels["in_label_domain"] > 0)),
        description="XP giants inside the label model's domain (box and neighbour distance)")
    g = data["mags"]["g"][xp]
    add("xp_g_min", np.nanmin(g), "mag", ".1f", "brightest G of the XP stars")
    add("xp_g_max", np.nanmax(g), "mag", ".1f", "faintest G of the XP stars")

    model = attrs["label_model"]
    add("offset_n_overlap", model["offsets_apokasc2_minus_dr17"]["n_overlap"],
        description="APOKASC-2 stars in the XP library (same APOGEE ID)")
    for label, fit in model["offsets_apokasc2_minus_dr17"].items():
        if not isinstance(fit, dict):
            continue
        unit, fmt = ("K", "+.1f") if label == "teff" else ("", "+.3f")
        add(f"offset_{label}", fit["offset"], unit, fmt,
            f"APOKASC-2 minus DR17 {label}, sigma-clipped median")
        add(f"offset_{label}_scatter", fit["scatter"], unit, ".0f" if unit else ".3f",
            "scatter of that difference")
        add(f"offset_{label}_n", fit["n"], description="stars used for that offset")
    calibration = model["calibration_set"]
    # format 4: the calibration set's record per catalogue (format 3: APOKASC-2's alone)
    kepler = calibration.get("apokasc2", calibration)
    limit, dropped = kepler["n_age_dropped_log_age_err_gt"]
    add("calibration_ages_dropped", dropped,
        description=f"seismic ages left out of the calibration: log age error > {limit} dex")
    if "apok2" in calibration:
        k2 = calibration["apok2"]
        add("apok2_n_input", k2["n_input"], description="rows of the APO-K2 catalogue")
        add("apok2_excluded", calibration["n_excluded"]["apok2"],
            description="APO-K2 giants left out of the calibration: the XP library's (and the "
                        "test split's)")
        factors = k2["harmonisation"]
        for state in ("RGB", "RC"):
            add(f"apok2_mass_ratio_{state.lower()}", factors[state]["overall_mass_ratio"], "",
                ".3f", f"K2 mass over the Kepler-only label model's, {state}, median")
            ratios = [r for r in factors[state]["mass_ratio"] if r is not None]
            add(f"apok2_mass_ratio_{state.lower()}_brightest", ratios[0], "", ".3f",
                f"the same in the brightest 2MASS K bin ({state})")
            add(f"apok2_mass_ratio_{state.lower()}_faintest", ratios[-1], "", ".3f",
                f"the same in the faintest 2MASS K bin with enough stars ({state})")
        add("apok2_log_age_offset_rgb", factors["RGB"]["overall_log_age_offset"], "dex",
            "+.3f", "Warfield RGB log age minus the Kepler-only label model's, median")
        offsets = model.get("offsets_apok2_minus_dr17", {})
        for label in ("teff", "logg", "m_h", "alpha_m"):
            if label in offsets:
                unit, fmt = ("K", "+.2f") if label == "teff" else ("", "+.4f")
                add(f"apok2_offset_{label}", offsets[label]["offset"], unit, fmt,
                    f"APO-K2 minus DR17 {label} on the library's stars, sigma-clipped median")
    if "seismic_role" in data["labels"]:
        from giantfm.train.dataset.datafile import SEISMIC_ROLES

        role = np.asarray(data["labels"]["seismic_role"])
        for name, code in SEISMIC_ROLES.items():
            if name != "none":
                add(f"seismic_{name}", np.sum(role == code),
                    description=f"XP library giants with seismic values of role {name}")
    miglio = model["miglio_vs_apokasc2"]
    add("miglio_n", miglio["m_h"]["n"], description="stars in both APOKASC-2 and Miglio et al.")
    add("miglio_m_h", miglio["m_h"]["median"], "dex", "+.3f",
        "median APOKASC-2 minus Miglio et al. [Fe/H]")
    add("miglio_alpha_m", miglio["alpha_m"]["median"], "dex", ".3f",
        "median APOKASC-2 [Mg/Fe] minus Miglio et al. [alpha/M]")
    add("miglio_mass_lower", 1 - 10 ** -miglio["log_mass"]["median"], "", ".1%",
        "how much lower Miglio et al.'s masses are than APOKASC-2's (median)")
    add("miglio_age_older", -miglio["log_age"]["median"], "dex", ".3f",
        "how much older Miglio et al.'s ages are than APOKASC-2's (median, dex)")
    validation = model["validation"]
    # the chosen label model's numbers are lm_*; the others' lm_<system>_*
    for system in [s for s in ("xgboost_state", "xgboost", "knn") if s in validation]:
        cv = validation[system]
        prefix = "lm" if system == validation["chosen"] else f"lm_{system}"
        for target, (unit, fmt) in {"mass": ("Msun", ".3f"), "mass_fractional": ("", ".1%"),
                                    "log_age": ("dex", ".3f"), "age": ("Gyr", ".2f"),
                                    "age_fractional": ("", ".0%")}.items():
            for state in STATES:
                stats = cv[target][state]
                what = f"label model ({system}) {target}, {state}, {cv['n_folds']}-fold CV"
                add(f"{prefix}_{target}_{state.lower()}_scatter", stats["scatter"], unit, fmt,
                    f"MAD-std of model - seismic: {what}")
                if not target.endswith("fractional"):
                    add(f"{prefix}_{target}_{state.lower()}_bias", stats["bias"], unit,
                        "+" + fmt, f"median of model - seismic: {what}")
                    add(f"{prefix}_{target}_{state.lower()}_z", stats["z_mad_std"], "", ".2f",
                        f"MAD-std of the residuals over the uncertainties: {what}")
                    add(f"{prefix}_{target}_{state.lower()}_n", stats["n"],
                        description=f"stars: {what}")
        for target, factor in cv["error_scale"].items():
            add(f"{prefix}_error_scale_{target}", factor, "", ".2f",
                f"cross-validated scale of the label model's {target} uncertainty")
    domain = validation["domain"]
    for name, low, high in zip(domain["features"], domain["low"], domain["high"]):
        unit, fmt = {"teff": ("K", ".0f"), "m_h": ("", "+.2f"),
                     "alpha_m": ("", "+.2f")}.get(name, ("", ".2f"))
        add(f"domain_{name}_low", low, unit, fmt, f"lower edge of the label-model box: {name}")
        add(f"domain_{name}_high", high, unit, fmt, f"upper edge of the label-model box: {name}")
    return rows, {"dataset": Path(path).name, "created": attrs.get("created", ""),
                  "giantfm_version": attrs.get("giantfm_version", "")}


def main(argv=None):
    """Write ``dataset.ecsv`` (see the module docstring); returns 0."""
    from astropy.table import Table

    from giantfm.utils import atomic_write

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="the dataset file (giantfm build-dataset --out FILE)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "dataset.ecsv"),
                        help="the table to write (default docs/results/dataset.ecsv)")
    args = parser.parse_args(argv)
    rows, meta = dataset_rows(args.dataset)
    table = Table(rows=rows, names=("name", "value", "unit", "format", "description"))
    table.meta.update(meta)
    table.meta["written_by"] = "docs/scripts/dataset_results.py"
    out = Path(args.out)
    atomic_write(out, lambda tmp: table.write(tmp, format="ascii.ecsv", overwrite=True))
    print(f"wrote {len(table)} numbers of {meta['dataset']} to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
