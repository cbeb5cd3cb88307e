"""Generate the documentation's tables from the package and from measured results.

Run by ``docs/conf.py`` at every build (and by hand)::

    python docs/scripts/make_tables.py --results docs/results --out docs/_generated

Inputs, all optional except the package itself:

- `giantfm.vocab.vocabulary_table` -> ``vocabulary.rst``
- `giantfm.flags.reasons_table` (every reason a result row can carry) -> ``flags_table.rst``
- ``RESULTS/metrics.ecsv``: the table `giantfm.train.evaluation.evaluate.evaluate` writes
  (``giantfm evaluate ... --out DIR`` puts it in ``DIR/metrics.ecsv``; copy it
  here) -> ``accuracy_headline.rst``, ``accuracy_experiments.rst``,
  ``calibration.rst``, ``comparison.rst`` and ``metrics_all.csv``
- ``RESULTS/magnitudes.ecsv``: the table of ``giantfm evaluate --magnitudes``
  -> ``magnitudes_model.rst``, ``magnitudes_baseline.rst``, ``magnitudes_mass_age.rst``
- ``RESULTS/states.ecsv`` and ``RESULTS/states_by_threshold.ecsv``: the tables
  of ``giantfm evaluate ... --magnitudes LEVELS --states`` (the network's
  ``p_rc`` against the state model's state, `giantfm.train.evaluation.states`)
  -> ``states_scores.rst``, ``states_thresholds.rst``
- ``RESULTS/label_model_state.ecsv`` and ``RESULTS/state_reliability.ecsv``:
  the label model's floors with and without the evolutionary state, and the
  out-of-fold reliability of its state classifier on the seismic giants
  (``python -m giantfm.train.seismic.fit --out RUN``) -> substitutions only
- ``RESULTS/generative.ecsv``: the table ``python -m giantfm.train.evaluation.generative``
  writes -> ``generative_inpainting.rst``, ``generative_generation.rst`` and
  ``generative_physics.rst``
- ``RESULTS/finetune_cn.ecsv``, ``RESULTS/finetune_k2.ecsv``,
  ``RESULTS/finetune_relearned.ecsv``, ``RESULTS/finetune_cn_age.ecsv`` and
  ``RESULTS/embedding_neighbours.ecsv``: the tables of ``python -m
  giantfm.train.evaluation.finetune_evidence`` (teaching the bundled model [C/N] ages,
  APO-K2 seismic quantities and two of its own labels again, against XGBoost and a
  ridge from scratch; the new token and giantfm's age; the labels of embedding
  neighbours) -> ``finetune_cn.rst``, ``finetune_k2.rst``, ``finetune_relearned.rst``,
  ``finetune_cn_age.rst``, ``embedding_neighbours.rst``
- ``RESULTS/bench_*.ecsv``: benchmark results, one table per file, any
  columns; ``meta['title']``, ``meta['machine']``, ``meta['date']`` and
  ``meta['notes']`` are shown when present
  -> ``performance.rst``
- ``RESULTS/dataset.ecsv``: the numbers of the training-set file that the
  datasheet quotes (``docs/scripts/dataset_results.py DATASET`` writes it)
- all of these -> ``numbers.rst``: RST substitution definitions
  (``.. |v_teff_native| replace:: 47.0 K``) of the numbers the prose quotes;
  ``docs/conf.py`` includes it in every page (``rst_prolog``), so that a page
  writes ``|v_teff_native|`` instead of typing the number (`numbers` lists
  every name and where it comes from; ``tests/test_docs_numbers.py`` checks
  that every ``|name|`` a page uses is defined here)

Where an input is missing the page gets a note saying which command produces
it, so that the documentation builds before the numbers exist and never shows
numbers typed by hand (apart from the published reference values in
`REFERENCE_ROWS`, which cite their papers).
"""
import argparse
import math
import os
import tempfile
from pathlib import Path

import numpy as np

LABELS = ("teff", "logg", "m_h", "alpha_m", "mass", "age")
LABEL_TEXT = {"teff": "Teff", "logg": "log g", "m_h": "[M/H]", "alpha_m": "[alpha/M]",
              "mass": "mass", "age": "age"}
# Significant decimals per label (units: K, dex, dex, dex, solMass, Gyr).
DECIMALS = {"teff": 1, "logg": 3, "m_h": 3, "alpha_m": 3, "mass": 3, "age": 2}
# The evaluation's headline experiment: all XP coefficients + colours, what predict sees.
HEADLINE_EXPERIMENT = "xp_colours"

#: Published scatter (MAD-std of residuals) of the reference systems (see comparison.rst).
REFERENCE_ROWS = [
    ("Leung & Bovy 2024 transformer, BP/RP[0-29] + colours (APOGEE test set, all stars)",
     {"teff": "47 K", "logg": "0.11", "m_h": "0.07"}),
    ("Leung & Bovy 2024 XGBoost (2000 trees), same inputs",
     {"teff": "51 K", "logg": "0.13", "m_h": "0.08"}),
    ("Leung & Bovy 2024 transformer, BP/RP[0-4] + colours",
     {"teff": "63 K", "logg": "0.15", "m_h": "0.11"}),
    ("Zhang, Bu et al. 2026, test set vs DistMass labels",
     {"mass": "0.114 solMass", "age": "1.334 Gyr"}),
]


def _write(path, text):
    """Write ``text`` atomically (temporary file in the same directory, then rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def list_table(header, rows, *, title=None, widths=None):
    """An RST ``list-table`` (strings in, text out)."""
    lines = [f".. list-table::{' ' + title if title else ''}", "   :header-rows: 1"]
    if widths:
        lines.append(f"   :widths: {' '.join(str(w) for w in widths)}")
    lines.append("")
    for row in [header, *rows]:
        for k, cell in enumerate(row):
            text = _escape(str(cell).replace("\n", " ")) or " "
            lines.append(f"   {'* -' if k == 0 else '  -'} {text}")
    return "\n".join(lines) + "\n"


def _escape(text):
    """``text`` with "|" escaped: it would start an RST substitution reference."""
    return text.replace("|", "\\|")


def _note(text):
    return f".. note::\n\n   {text}\n"


def _number(value, label):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "--"
    return f"{value:.{DECIMALS.get(label, 3)}f}"


def vocabulary_rst():
    """The token vocabulary as an RST table."""
    from giantfm.vocab import VOCAB_VERSION, vocabulary_table

    table = vocabulary_table()
    rows = [(str(r["id"]), f"``{r['name']}``", r["unit"] or "--", r["scale"], r["kind"],
             r["description"]) for r in table]
    head = (f"Vocabulary version {VOCAB_VERSION}, {len(table)} tokens "
            "(generated from :func:`giantfm.vocab.vocabulary_table`). Kind ``value``: the "
            "network answers a mean and an uncertainty; ``probability``: a probability in "
            "[0, 1], without an uncertainty.\n\n")
    return head + list_table(("id", "name", "unit", "scale", "kind", "meaning"), rows,
                             widths=(5, 12, 14, 8, 10, 51))


#: What each ``effect`` of a `giantfm.flags.Reason` does to the row, in words.
EFFECT_TEXT = {
    "row": "nothing predicted: every output masked",
    "label_model": "mass, age and the evolutionary state (p_rc, evstate) masked; Teff, "
                   "log g, [M/H], [alpha/M] kept",
    "input": "the value left out (or its error replaced); the star predicted from the rest",
    "none": "prediction kept, with this warning",
}


def flags_rst():
    """Every reason a result row can carry (`giantfm.flags.reasons_table`) as an RST table."""
    from giantfm.flags import reasons_table

    table = reasons_table()
    rows = [(f"{r['bit']} ({r['value']})", f"``{r['code']}``", r["step"],
             EFFECT_TEXT.get(r["effect"], r["effect"]), "yes" if r["sets_flag"] else "no",
             f"``{r['text']}``", r["description"])
            for r in table]
    head = (f"{len(table)} reasons (generated from :func:`giantfm.flags.reasons_table`). "
            "The bit is the reason's place in the ``flags`` bitmask (its value, 2 to that "
            "power, in brackets; :func:`giantfm.decode_flags` turns a ``flags`` value back "
            "into codes). In the text templates, ``{name}`` stands for a value filled in per "
            "star.\n\n")
    return head + list_table(("bit (value)", "code", "step", "what it does to the row",
                              "sets flag", "text template", "description"), rows,
                             widths=(7, 11, 7, 16, 6, 24, 29))


def _rows(metrics, **where):
    import numpy as np

    keep = np.ones(len(metrics), dtype=bool)
    for column, value in where.items():
        keep &= metrics[column] == value
    return metrics[keep]


def _get(metrics, column="sigma", **where):
    rows = _rows(metrics, **where)
    return float(rows[column][0]) if len(rows) else None


def headline_rst(metrics):
    """Model vs XGBoost baseline on the test-split giants, per label and reference."""
    baselines = sorted(set(_rows(metrics, system="xgboost")["experiment"]))
    header = ["label", "reference", "unit", "N", "model sigma", "model bias"]
    for name in baselines:
        header += [f"XGBoost ({name}) sigma", "ratio"]
    rows = []
    for label in LABELS:
        for reference in sorted(set(_rows(metrics, label=label)["reference"])):
            where = {"label": label, "reference": reference, "sample": "giants"}
            model = _rows(metrics, system="model", experiment=HEADLINE_EXPERIMENT, **where)
            if not len(model):
                continue
            sigma = float(model["sigma"][0])
            row = [LABEL_TEXT[label], reference, model["unit"][0], str(model["n"][0]),
                   _number(sigma, label), _number(float(model["bias"][0]), label)]
            for name in baselines:
                base = _get(metrics, system="xgboost", experiment=name, **where)
                row += [_number(base, label),
                        "--" if not base else f"{sigma / base:.2f}"]
            rows.append(row)
    text = (f"Test-split giants; model inputs: ``{HEADLINE_EXPERIMENT}`` (all BP/RP "
            "coefficients + colours). sigma = MAD-std and bias = median of prediction - "
            "reference; ratio = model sigma / baseline sigma (target <= 0.95).\n\n")
    return text + list_table(header, rows)


def experiments_rst(metrics):
    """Scatter of the model per input experiment (rows) and label (columns), giants."""
    from_first = _rows(metrics, system="model", sample="giants")
    experiments = list(dict.fromkeys(from_first["experiment"]))
    description = metrics.meta.get("experiments", {})
    header = ["experiment", "inputs"] + [f"{LABEL_TEXT[label]} sigma" for label in LABELS]
    rows = []
    for name in experiments:
        row = [f"``{name}``", description.get(name, "")]
        for label in LABELS:
            reference = "apogee" if label in ("teff", "logg", "m_h", "alpha_m") else "label_model"
            row.append(_number(_get(metrics, system="model", experiment=name, label=label,
                                    reference=reference, sample="giants"), label))
        rows.append(row)
    growth = metrics.meta.get("uncertainty_growth")
    text = list_table(header, rows)
    if growth:
        text += ("\nMedian predicted uncertainty of experiment (e) over (b): "
                 + ", ".join(f"{LABEL_TEXT.get(k, k)} {v:.2f}" for k, v in growth.items()
                             if v == v) + " (must be > 1).\n")
    return text


def calibration_rst(metrics):
    """MAD-std and median of z = (pred - ref) / combined uncertainty, model, giants."""
    rows = []
    for row in _rows(metrics, system="model", experiment=HEADLINE_EXPERIMENT, sample="giants"):
        rows.append([LABEL_TEXT[row["label"]], row["reference"], str(row["z_n"]),
                     f"{row['z_sigma']:.2f}", f"{row['z_median']:.2f}"])
    return ("z = (prediction - reference) / sqrt(sigma_pred^2 + sigma_ref^2); a calibrated "
            "model has MAD-std(z) close to 1.\n\n"
            + list_table(["label", "reference", "N", "MAD-std(z)", "median(z)"], rows))


def comparison_rst(metrics):
    """Published reference values beside this package's measured values."""
    columns = ("teff", "logg", "m_h", "mass", "age")
    header = ["system"] + [LABEL_TEXT[c] for c in columns]
    rows = [[name] + [values.get(c, "--") for c in columns] for name, values in REFERENCE_ROWS]
    if metrics is not None:
        units = {"teff": " K", "mass": " solMass", "age": " Gyr"}
        systems = [("model", e, f"giantfm, {e} (this package, test-split giants)")
                   for e in ("xp30_colours", HEADLINE_EXPERIMENT, "xp5_colours")]
        systems += [("xgboost", e, f"giantfm XGBoost baseline, {e} (test-split giants)")
                    for e in sorted(set(_rows(metrics, system="xgboost")["experiment"]))]
        for system, experiment, name in systems:
            values = []
            for c in columns:
                reference = "apogee" if c in ("teff", "logg", "m_h") else "label_model"
                sigma = _get(metrics, system=system, experiment=experiment, label=c,
                             reference=reference, sample="giants")
                values.append("--" if sigma is None else _number(sigma, c) + units.get(c, ""))
            if any(v != "--" for v in values):
                rows.append([name] + values)
    return list_table(header, rows)


def magnitudes_rst(table):
    """Accuracy against G level (``giantfm evaluate --magnitudes``): the tables of the page."""
    giants = _rows(table, sample="giants")
    levels = list(dict.fromkeys(giants["level"]))
    systems = list(dict.fromkeys(giants["system"]))
    model = "model"
    baselines = [s for s in systems if s.startswith("xgboost")]
    out = {}
    header = ["G", *[f"{LABEL_TEXT[label]} sigma" for label in LABELS],
              *[f"{LABEL_TEXT[label]} z" for label in LABELS], "mass coverage"]
    rows = []
    for level in levels:
        row = [level]
        for label in LABELS:
            row.append(_number(_get(giants, system=model, level=level, label=label), label))
        for label in LABELS:
            z = _get(giants, "z_sigma", system=model, level=level, label=label)
            row.append("--" if z is None else f"{z:.2f}")
        coverage = _get(giants, "coverage", system=model, level=level, label="mass")
        row.append("--" if coverage is None else f"{coverage:.1%}")
        rows.append(row)
    out["model"] = ("Test-split giants, the bundled model as ``giantfm.predict`` answers "
                    "(mass and age chained through the label model). sigma = MAD-std of "
                    "prediction - reference; z = MAD-std of the z-scores (1: calibrated); mass "
                    "coverage = the share of the giants with a label-model mass that get "
                    "one.\n\n" + list_table(header, rows))
    header = ["G"]
    for label in LABELS:
        header += [f"{LABEL_TEXT[label]} model", *(["XGBoost", "ratio"] if baselines else [])]
    rows = []
    for level in levels:
        row = [level]
        for label in LABELS:
            sigma = _get(giants, system=model, level=level, label=label)
            row.append(_number(sigma, label))
            if baselines:
                base = _get(giants, system=baselines[0], level=level, label=label)
                row += [_number(base, label),
                        "--" if not (base and sigma) else f"{sigma / base:.2f}"]
        rows.append(row)
    out["baseline"] = ((f"The same, against the XGBoost baseline ``{baselines[0][8:]}`` fitted "
                        "on faint copies too (sigma; ratio = model / XGBoost).\n\n"
                        if baselines else "No baseline in this run.\n\n")
                       + list_table(header, rows))
    header = ["G", "sample", "mass: direct", "mass: chain", "mass: combined", "age: direct",
              "age: chain", "age: combined"]
    samples = [s for s in MASS_AGE_SAMPLES if s in set(table["sample"])]
    rows = []
    for level in levels:
        for sample in samples:
            row = [level, sample]
            for label in ("mass", "age"):
                for system in ("model: direct", "model: chain", "model"):
                    value = _get(_rows(table, sample=sample), system=system, level=level,
                                 label=label)
                    row.append(_number(value, label))
            rows.append(row)
    out["mass_age"] = ("Mass and age: the network's direct estimate, its labels put through the "
                       "label model (chain), and their combination that ``predict`` gives "
                       "(sigma against the label model's values from the true APOGEE labels; "
                       "rc / rgb: the red-clump-like and the other giants, by the Teff-log g "
                       "cut of Bovy et al. 2014 on the APOGEE labels"
                       + ("; rc_state / rgb_state: the giants of each evolutionary state by the "
                          "state model on the APOGEE labels" if "rc_state" in samples else "")
                       + ").\n\n" + list_table(header, rows))
    return out


#: The samples of the mass and age table, in order (those in the file are shown).
MASS_AGE_SAMPLES = ("giants", "rgb", "rc", "rgb_state", "rc_state")


#: How the systems of ``states.ecsv`` are named in substitutions (`state_numbers`).
STATE_SYSTEM_PREFIX = {"model": "", "state model on predicted labels": "sm_"}
#: The levels of the purity-completeness table (those in the file are shown).
THRESHOLD_TABLE_LEVELS = ("native", "17.0")


def _fraction(value, decimals=1):
    """A fraction as per cent, or ``--`` where it is undefined (NaN)."""
    return "--" if value is None or math.isnan(value) else _percent(value, decimals)


def _fixed(value, decimals=3):
    return "--" if value is None or math.isnan(value) else f"{value:.{decimals}f}"


def _level_text(level):
    return "native" if level == "native" else f"G = {float(level):g}"


def states_rst(scores):
    """The state scores of ``states.ecsv``: per level and system. Returns ``{"scores": rst}``
    for ``states_scores.rst``."""
    rows = []
    for row in scores:
        rows.append([_level_text(row["level"]), row["system"], f"{int(row['n']):,}",
                     f"{int(row['n_rc']):,}", _fraction(float(row["coverage"])),
                     _fraction(float(row["accuracy"])), _fixed(float(row["roc_auc"])),
                     _fixed(float(row["log_loss"])), _fixed(float(row["brier"])),
                     _fixed(float(row["ece"])), _fraction(float(row["purity"])),
                     _fraction(float(row["completeness"]))])
    reference = scores.meta.get("reference", "the state model on the APOGEE labels")
    text = ("Test-split giants answered a state (inside the label model's domain), against "
            f"the reference state: {_escape(reference)}. model: the network's ``p_rc`` as "
            "``giantfm.predict`` answers it (the network's, combined in log-odds with the "
            "state model on the network's labels by the weight measured on the validation "
            "split); network: the network's own ``p_rc`` alone; state model on predicted "
            "labels: the state model applied to the network's Teff, log g, [M/H] and "
            "[alpha/M] alone. N: giants "
            "scored; RC: those of them that are red clump by the reference; coverage: the "
            "share of the reference giants scored; accuracy, purity and completeness of "
            "``evstate`` (``p_rc`` >= 0.5); ROC AUC, log loss, Brier score and expected "
            "calibration error (ECE) of ``p_rc``.\n\n")
    return {"scores": text + list_table(
        ["G", "system", "N", "RC", "coverage", "accuracy", "ROC AUC", "log loss", "Brier",
         "ECE", "purity", "completeness"], rows)}


def seismic_rst(scores):
    """The seismic scores of ``seismic.ecsv``: per role, system and state. Returns
    ``{"test": rst, "validation": rst}`` for ``seismic_test.rst`` and
    ``seismic_validation.rst``."""
    out = {}
    for role in ("test", "validation"):
        rows = []
        for row in scores[scores["role"] == role]:
            state = row["state"]
            rows.append([row["system"], state, f"{int(row['n'])}",
                         _fixed(float(row["mass_scatter_gross"])),
                         _fixed(float(row["mass_bias"])),
                         _fixed(float(row["mass_scatter_net"])), _fixed(float(row["mass_z"]), 2),
                         f"{int(row['n_age'])}" if row["n_age"] else "--",
                         _fixed(float(row["age_scatter"]), 2) if row["n_age"] else "--",
                         _fixed(float(row["age_z"]), 2) if row["n_age"] else "--",
                         (f"{_fraction(float(row['accuracy']))} ({int(row['n_p_rc'])}, "
                          f"{int(row['n_p_rc_masked'])} masked)")
                         if state == "all" and "accuracy" in scores.colnames
                         and np.isfinite(float(row["accuracy"])) else "--",
                         _fixed(float(row["roc_auc"]))
                         if state == "all" and "roc_auc" in scores.colnames
                         and np.isfinite(float(row["roc_auc"])) else "--"])
        what = ("the fixed test split's, scored only" if role == "test" else
                "the validation stars every choice touching mass, age or state was made on")
        text = (f"APO-K2 giants of the XP library, {what}. model: as ``giantfm.predict`` "
                "answers; direct: the network's own mass and age; chain: its labels through "
                "the label model. N: stars with a mass; mass scatter: MAD-std against K2's "
                "masses as they are (Msun); bias: median against them harmonised to the "
                "answers' Kepler scale; net: that scatter with K2's median error taken out "
                "in quadrature; z: MAD-std of (answer - seismic) / (both errors); age: "
                "Warfield et al. (2024) RGB ages (Gyr); p_rc: accuracy of ``evstate`` "
                "against the seismic state over the rows with a ``p_rc``.\n\n")
        out[role] = text + list_table(
            ["system", "state", "N", "mass scatter", "bias", "net", "z", "N age",
             "age scatter", "age z", "p_rc accuracy", "ROC AUC"], rows)
    return out


def seismic_models_rst(table):
    """Models side by side (``seismic_models.ecsv``). Returns ``{"compare": rst}``."""
    rows = []
    for row in table:
        accuracy = "--"
        if row["state"] == "all" and "accuracy" in table.colnames \
                and not np.ma.is_masked(row["accuracy"]) and np.isfinite(row["accuracy"]):
            accuracy = (f"{_fraction(float(row['accuracy']))} ({int(row['n_p_rc_masked'])} "
                        "masked)")
        rows.append([row["model"], row["role"], row["state"], f"{int(row['n'])}",
                     _fixed(float(row["mass_scatter_gross"])), _fixed(float(row["mass_bias"])),
                     _fixed(float(row["mass_z"]), 2),
                     _fixed(float(row["age_scatter"]), 2) if row["n_age"] else "--",
                     accuracy])
    text = (_escape(table.meta.get("description", "")) + ". Mass scatter against K2's "
            "masses as they are (Msun), bias against them on the Kepler scale; age scatter "
            "in Gyr (RGB); p_rc accuracy over the rows with a p_rc.\n\n")
    return {"compare": text + list_table(
        ["model", "stars", "state", "N", "mass scatter", "bias", "z", "age scatter",
         "p_rc accuracy"], rows)}


def mass_luminosity_rst(table):
    """The slopes of ``mass_luminosity.ecsv``. Returns ``{"slopes": rst}``."""
    def slope(row, key):
        return f"{float(row[key]):.2f} +- {float(row[key + '_err']):.2f}"
    rows = [[row["state"], f"{int(row['n'])}", slope(row, "slope_giantfm"),
             slope(row, "slope_seismic"), slope(row, "slope_fixed_giantfm"),
             slope(row, "slope_fixed_seismic")] for row in table]
    return {"slopes": _escape(table.meta.get("luminosity", "")) + ". " +
            _escape(table.meta.get("fixed", "")) + ".\n\n" + list_table(
        ["state", "N", "log L on log M (giantfm)", "(seismic masses)",
         "log L g/Teff^4 on log M (giantfm)", "(seismic masses)"], rows)}


def seismic_ambiguous_rst(table):
    """The P(RC) bands of ``seismic_ambiguous.ecsv``. Returns ``{"bands": rst}``."""
    rows = [[f"{float(row['p_rc_low']):.1f}-{float(row['p_rc_high']):.1f}", f"{int(row['n'])}",
             *(_fixed(float(row[c])) for c in ("chain_aware", "chain_blind", "direct",
                                                "model"))]
            for row in table]
    return {"bands": _escape(table.meta.get("description", "")) + "\n\n" + list_table(
        ["P(RC)", "N", "chain, states mixed", "chain, state-blind", "network alone",
         "as predict answers"], rows)}


def states_thresholds_rst(table):
    """Purity and completeness of ``p_rc >= threshold`` for the model at the levels of
    `THRESHOLD_TABLE_LEVELS` (``states_by_threshold.ecsv``). Returns ``{"thresholds":
    rst}`` for ``states_thresholds.rst``."""
    model = _rows(table, system="model")
    levels = [lv for lv in THRESHOLD_TABLE_LEVELS if lv in set(model["level"])]
    thresholds = list(dict.fromkeys(float(t) for t in model["threshold"]))
    header = ["threshold"]
    for level in levels:
        name = _level_text(level)
        header += [f"{name}: selected", f"{name}: purity", f"{name}: completeness"]
    rows = []
    for t in thresholds:
        row = [f"{t:g}"]
        for level in levels:
            sel = [r for r in model if r["level"] == level and float(r["threshold"]) == t]
            if sel:
                r = sel[0]
                row += [f"{int(r['selected']):,}", _fraction(float(r["purity"])),
                        _fraction(float(r["completeness"]))]
            else:
                row += ["--", "--", "--"]
        rows.append(row)
    text = ("The test-split giants with ``p_rc >= threshold`` as a red-clump sample "
            "(the network's ``p_rc``, as ``giantfm.predict`` answers it): selected, the "
            "giants chosen; purity, the share of them that are red clump by the reference "
            "state (the state model on the APOGEE labels); completeness, the share of the "
            "reference's red-clump giants chosen. -- where none is chosen.\n\n")
    return {"thresholds": text + list_table(header, rows)}


def performance_rst(results):
    """One table per benchmark result file ``bench_*.ecsv``."""
    from astropy.table import Table

    files = sorted(Path(results).glob("bench_*.ecsv"))
    if not files:
        return _note("No benchmark results yet: run the scripts in ``benchmarks/`` and save "
                     "their tables as ``docs/results/bench_<name>.ecsv``.")
    parts = []
    for path in files:
        table = Table.read(path, format="ascii.ecsv")
        title = table.meta.get("title", path.stem)
        parts.append(f"{title}\n{'~' * len(title)}\n")
        if "machine" in table.meta:
            parts.append(f"Machine: {table.meta['machine']}"
                         + (f" ({table.meta['date']})" if "date" in table.meta else "") + "\n")
        if "notes" in table.meta:
            parts.append(f"{_escape(table.meta['notes'])}\n")
        rows = [[_cell(row[c]) for c in table.colnames] for row in table]
        header = [f"{c} [{table[c].unit}]" if table[c].unit else c for c in table.colnames]
        parts.append(list_table(header, rows) + "\n")
    return "\n".join(parts)


def generative_rst(table):
    """The inpainting, generation and physics tables from ``generative.ecsv``.

    Returns ``{name: rst}`` for ``generative_<name>.rst``.
    """
    out = {}
    inpainting = table[table["experiment"] == "inpainting"]
    cases = list(dict.fromkeys(inpainting["case"]))
    metrics = list(dict.fromkeys(inpainting["metric"]))
    rows = []
    for metric in metrics:
        sel = inpainting[inpainting["metric"] == metric]
        value = {row["case"]: f"{row['value']:.3g}" for row in sel}
        rows.append([metric.replace("_", " "), *(value.get(c, "") for c in cases),
                     sel["description"][0]])
    n = inpainting["n"][0] if len(inpainting) else 0
    out["inpainting"] = list_table(["metric", *(c.replace("_", " ") for c in cases),
                                    "definition"], rows,
                                   title=f"Inpainting, {n} test-split stars") + "\n"
    generation = table[table["experiment"] == "generation"]
    metrics = list(dict.fromkeys(generation["metric"]))
    rows = []
    for case in dict.fromkeys(generation["case"]):
        sel = generation[generation["case"] == case]
        value = {row["metric"]: f"{row['value']:.3g}" for row in sel}
        system, sample = case.rsplit("; ", 1)
        rows.append([system, sample, str(sel["n"][0]), *(value.get(m, "--") for m in metrics)])
    out["generation"] = list_table(["system (conditioned on)", "stars", "N",
                                    *(m.replace("_", " ") for m in metrics)], rows,
                                   title="Generation from the test stars' labels") + "\n"
    physics = table[table["experiment"] == "physics"]
    rows = [[row["case"], row["metric"].replace("_", " "),
             f"{row['value']:.3g}" + (f" {row['unit']}" if row["unit"] else ""),
             str(row["n"]), row["description"]] for row in physics]
    out["physics"] = list_table(["check", "metric", "value", "N", "definition"], rows,
                                title="Physics checks") + "\n"
    return out


#: Short names of the rows of ``finetune_cn_age.ecsv`` in substitutions.
_AGE_ESTIMATES = {"giantfm age (without the token)": "giantfm", "fine-tuned age_cn": "token",
                  "inverse-variance mean of both": "combined"}
_AGE_REFERENCES = {"label model age": "lm", "[C/N] age (age_cn)": "cn"}
#: Short names of the spaces of ``embedding_neighbours.ecsv`` in substitutions.
_NEIGHBOUR_SPACES = {"embedding": "embedding", "XP coefficients": "coefficients",
                     "random": "random"}


#: The fine-tuning issue's targets: the fine-tune's MAD-std at least this share below
#: XGBoost's at N <= 300 (``[C/N]`` ages: their own errors set a floor both approach), no
#: more than `FINETUNE_WORSE` above it at any N, and test z within `FINETUNE_Z` from
#: N = 100 on.
FINETUNE_GAIN = {"age_cn": 0.05}
FINETUNE_DEFAULT_GAIN = 0.20
FINETUNE_WORSE = 0.05
FINETUNE_Z = (0.8, 1.25)
#: The result files of ``finetune_evidence`` (``finetune_<family>.ecsv``).
FINETUNE_FAMILIES = ("cn", "k2", "relearned")


def _pool_of(table, task):
    pool = table.meta.get("n_pool", {})
    return int(pool.get(task, -1)) if isinstance(pool, dict) else int(pool)


def _size_name(n, table, task):
    """A training-set size of a ``finetune_<family>.ecsv`` in substitution names: ``100``,
    or ``all`` for the whole pool of its task."""
    return "all" if int(n) == _pool_of(table, task) else str(int(n))


def finetune_summary(table):
    """Per (label, N): per method the median, min and max test MAD-std over the draws,
    the fine-tune's median z and the methods it picked, and whether the targets
    (`FINETUNE_GAIN`, `FINETUNE_WORSE`, `FINETUNE_Z`) are met."""
    out = {}
    for label in dict.fromkeys(table["label"]):
        mine = table[table["label"] == label]
        task = str(mine["task"][0])
        for n in sorted(set(int(x) for x in mine["n_stars"])):
            rows = mine[mine["n_stars"] == n]
            cell = {"task": task, "size": _size_name(n, table, task)}
            for method in ("finetune", "xgboost", "ridge"):
                scores = np.asarray(rows["mad_std"][rows["method"] == method], float)
                if scores.size:
                    cell[method] = (float(np.median(scores)), float(scores.min()),
                                    float(scores.max()))
            tuned = rows[rows["method"] == "finetune"]
            cell["draws"] = len(tuned)
            cell["z"] = float(np.median(tuned["z_mad_std"])) if len(tuned) else math.nan
            picks = list(tuned["chosen"])
            cell["picks"] = ", ".join(f"{m} x{picks.count(m)}" if picks.count(m) > 1 else m
                                      for m in dict.fromkeys(picks))
            if "finetune" in cell and "xgboost" in cell:
                gain = 1 - cell["finetune"][0] / cell["xgboost"][0]
                cell["gain"] = gain
                wanted = FINETUNE_GAIN.get(label, FINETUNE_DEFAULT_GAIN)
                ok = gain >= -FINETUNE_WORSE and (n > 300 or gain >= wanted)
                if n >= 100 and not FINETUNE_Z[0] <= cell["z"] <= FINETUNE_Z[1]:
                    ok = False
                cell["met"] = ok
            out[label, n] = cell
    return out


def finetune_rst(table):
    """One family's table of ``finetune_<family>.ecsv`` (``finetune_<family>.rst``)."""
    summary = finetune_summary(table)
    rows = []
    for (label, n), cell in summary.items():
        def score(method):
            if method not in cell:
                return "--"
            centre, low, high = cell[method]
            return f"{centre:.3f}" + (f" ({low:.3f}-{high:.3f})" if cell["draws"] > 1 else "")
        rows.append([label, f"{n:,}" + (" (all)" if cell["size"] == "all" else ""),
                     str(cell["draws"]), score("finetune"), cell["picks"],
                     f"{cell['z']:.2f}", score("xgboost"), score("ridge"),
                     f"{100 * cell['gain']:+.0f} %" if "gain" in cell else "--",
                     ("met" if cell["met"] else "**missed**") if "met" in cell else "--"])
    header = ["label", "stars given", "draws", "fine-tune", "method picked", "z",
              "XGBoost", "ridge", "fine-tune below XGBoost", "targets"]
    tests = table.meta.get("n_test_stars", {})
    test_text = ", ".join(f"{v:,} ({k})" for k, v in tests.items()) \
        if isinstance(tests, dict) else str(tests)
    text = (f"{table.meta.get('title', '')}: test-split MAD-std of the residuals in token "
            "scale (dex for every label here), median over the draws of random stars "
            "(range in brackets), of `giantfm.finetune` (``method='auto'``, starting from "
            f"{table.meta.get('model', 'the bundled model')}), of XGBoost from scratch "
            f"({table.meta.get('features_xgboost', '')}, early stopping on a 20 % "
            "validation cut of the same stars) and of a ridge on "
            f"{table.meta.get('features_ridge', 'the raw coefficients')} (penalty by "
            "leave-one-out); z, the MAD-std of the fine-tune's calibrated z-scores "
            "(the catalogue's errors in quadrature); the targets: "
            f"{100 * FINETUNE_DEFAULT_GAIN:.0f} % below XGBoost at N <= 300 "
            f"({', '.join(f'{k}: {100 * v:.0f} %' for k, v in FINETUNE_GAIN.items())}), "
            f"never more than {100 * FINETUNE_WORSE:.0f} % above it, z within "
            f"{FINETUNE_Z[0]}-{FINETUNE_Z[1]} from N = 100 on. Test stars: {test_text}. "
            "The fit times are in the ECSV file; they were taken on a shared, loaded "
            "machine, and ``benchmarks/bench_finetune.py`` times a fine-tune on its own.\n\n")
    return text + list_table(header, rows)


def finetune_numbers(table):
    """Substitutions from a ``finetune_<family>.ecsv``, per label and size (``100``, ...,
    ``all``): ``ft_<label>_<method>_<size>`` (median MAD-std, dex; methods ``finetune``,
    ``xgboost``, ``ridge``), ``ft_<label>_gain_<size>`` (how far the fine-tune is below
    XGBoost, %), ``ft_<label>_z_<size>``, ``ft_<label>_picks_<size>``,
    ``ft_<label>_targets_<size>`` (met or missed); per task ``ft_<task>_n_pool`` and
    ``ft_<task>_n_test``."""
    out = {}
    for key in ("n_pool", "n_test_stars"):
        value = table.meta.get(key, {})
        for task, n in (value.items() if isinstance(value, dict) else ()):
            out[f"ft_{task}_{key.replace('_stars', '')}"] = f"{int(n):,}"
    for (label, n), cell in finetune_summary(table).items():
        size = cell["size"]
        for method in ("finetune", "xgboost", "ridge"):
            if method in cell:
                out[f"ft_{label}_{method}_{size}"] = f"{cell[method][0]:.3f} dex"
        if "gain" in cell:
            out[f"ft_{label}_gain_{size}"] = f"{100 * cell['gain']:.0f} %"
            out[f"ft_{label}_targets_{size}"] = "met" if cell["met"] else "missed"
        out[f"ft_{label}_z_{size}"] = f"{cell['z']:.2f}"
        out[f"ft_{label}_picks_{size}"] = cell["picks"]
        out[f"ft_{label}_draws_{size}"] = str(cell["draws"])
    return out


def finetune_cn_age_rst(table):
    """``finetune_cn_age.rst``: the age scatter with and without the new token."""
    rows = [[row["estimate"], row["reference"], f"{row['mad_std_dex']:.3f}",
             f"{row['bias_dex']:+.3f}", f"{int(row['n']):,}"] for row in table]
    return ("Test-split scatter of log10 age (MAD-std and median of the difference, dex) "
            "of giantfm's own age, of the fine-tuned ``age_cn`` token (all training stars) "
            "and of their inverse-variance mean.\n\n"
            + list_table(["estimate", "against", "MAD-std [dex]", "bias [dex]", "N"], rows))


def finetune_age_numbers(table):
    """Substitutions from ``finetune_cn_age.ecsv``: ``ft_age_<estimate>_<reference>``
    (MAD-std, dex) and ``..._bias``, with estimates ``giantfm``, ``token``, ``combined``
    and references ``lm`` (the label model's age) and ``cn`` (the [C/N] age)."""
    out = {}
    for row in table:
        name = (f"ft_age_{_AGE_ESTIMATES[row['estimate']]}_"
                f"{_AGE_REFERENCES[row['reference']]}")
        out[name] = f"{row['mad_std_dex']:.3f} dex"
        out[name + "_bias"] = f"{row['bias_dex']:+.3f} dex"
    return out


def _neighbour_space(space):
    return next(short for key, short in _NEIGHBOUR_SPACES.items() if space.startswith(key))


def embedding_neighbours_rst(table):
    """``embedding_neighbours.rst``: the median label differences to the neighbours."""
    units = dict(table.meta.get("units", {}))
    labels = [c[len("median_abs_d_"):] for c in table.colnames if c.startswith("median_abs_d_")]
    rows = [[row["space"], *(f"{row['median_abs_d_' + name]:.3g}" for name in labels)]
            for row in table]
    header = ["neighbours in"] + [f"|d {name}| [{units.get(name, '')}]" for name in labels]
    n, k = int(table["n_stars"][0]), int(table["k"][0])
    return (f"Median absolute difference of the labels (APOGEE DR17; mass: the label "
            f"model's) between each of {n:,} test-split giants and its {k} nearest "
            "neighbours among them, by space.\n\n" + list_table(header, rows))


def embedding_numbers(table):
    """Substitutions from ``embedding_neighbours.ecsv``: ``nn_<label>_<space>`` (median
    |difference| with unit; spaces ``embedding``, ``coefficients``, ``random``) and
    ``nn_n_stars``."""
    units = {"teff": " K", "logg": " dex", "m_h": " dex", "mass": " Msun"}
    out = {"nn_n_stars": f"{int(table['n_stars'][0]):,}"}
    for row in table:
        space = _neighbour_space(row["space"])
        for name, unit in units.items():
            value = float(row[f"median_abs_d_{name}"])
            # two decimals: the neighbours' medians are not known better than that
            out[f"nn_{name}_{space}"] = (f"{value:.0f}" if name == "teff"
                                         else f"{value:.2f}") + unit
    return out


# ---------------------------------------------------------------- numbers for the prose
#: Unit text of each label in the prose (RST, not TeX).
PROSE_UNIT = {"teff": " K", "logg": " dex", "m_h": " dex", "alpha_m": " dex", "mass": " Msun",
              "age": " Gyr"}


def _level_name(level):
    """A magnitude level of ``magnitudes.ecsv`` as part of a substitution name:
    ``native``, ``17.0`` -> ``17``, ``17.65`` -> ``17_65``."""
    if level == "native":
        return level
    return f"{float(level):g}".replace(".", "_")


def _slug(text):
    """``text`` as part of a substitution name: lower case, a sign before a digit as ``m`` /
    ``p``, runs of other characters as ``_`` (``kiel [M/H]=-0.5`` -> ``kiel_m_h_m0_5``)."""
    import re

    text = re.sub(r"\+(?=\d)", "p", re.sub(r"-(?=\d)", "m", text.lower()))  # signs kept
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


def _percent(value, decimals=1):
    return f"{100 * value:.{decimals}f} %"


def _range(values, fmt, unit=""):
    """``min-max`` of ``values`` (or the one value when they agree at that precision)."""
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return (lo if lo == hi else f"{lo} to {hi}" if lo.startswith("-") or hi.startswith("-")
            else f"{lo}-{hi}") + unit


def metrics_numbers(metrics):
    """Substitutions from ``metrics.ecsv``: the model's headline experiment on the test giants.

    ``acc_<label>_sigma`` / ``_bias`` (with unit), ``acc_<label>_z`` (MAD-std of
    the z-scores), ``acc_<label>_n``, ``acc_<label>_ratio`` (model sigma over
    the first XGBoost baseline's), ``acc_n_test_giants``.
    """
    out = {}
    baselines = sorted(set(_rows(metrics, system="xgboost")["experiment"]))
    for label in LABELS:
        reference = "apogee" if label in ("teff", "logg", "m_h", "alpha_m") else "label_model"
        where = {"label": label, "reference": reference, "sample": "giants"}
        model = _rows(metrics, system="model", experiment=HEADLINE_EXPERIMENT, **where)
        if not len(model):
            continue
        sigma = float(model["sigma"][0])
        out[f"acc_{label}_sigma"] = _number(sigma, label) + PROSE_UNIT[label]
        out[f"acc_{label}_bias"] = _number(float(model["bias"][0]), label) + PROSE_UNIT[label]
        out[f"acc_{label}_z"] = f"{float(model['z_sigma'][0]):.2f}"
        out[f"acc_{label}_n"] = f"{int(model['n'][0]):,}"
        if baselines:
            base = _get(metrics, system="xgboost", experiment=baselines[0], **where)
            if base:
                out[f"acc_{label}_ratio"] = f"{sigma / base:.2f}"
    if "n_test_giants" in metrics.meta:
        out["acc_n_test_giants"] = f"{int(metrics.meta['n_test_giants']):,}"
    return out


def magnitudes_numbers(table):
    """Substitutions from ``magnitudes.ecsv`` (the model as ``predict`` answers, test giants).

    Per G level (``native``, ``14``, ..., ``17_65``): ``v_<label>_<level>``
    (sigma with unit), ``z_<label>_<level>``, ``ratio_<label>_<level>`` (over
    the XGBoost baseline), ``coverage_<mass|age>_<level>`` (the share of the
    giants with a label-model mass that get one, in per cent).
    """
    out = {}
    giants = _rows(table, sample="giants")
    baselines = [s for s in dict.fromkeys(giants["system"]) if s.startswith("xgboost")]
    for level in dict.fromkeys(giants["level"]):
        name = _level_name(level)
        for label in LABELS:
            rows = _rows(giants, system="model", level=level, label=label)
            if not len(rows):
                continue
            sigma = float(rows["sigma"][0])
            out[f"v_{label}_{name}"] = _number(sigma, label) + PROSE_UNIT[label]
            out[f"z_{label}_{name}"] = f"{float(rows['z_sigma'][0]):.2f}"
            if baselines:
                base = _get(giants, system=baselines[0], level=level, label=label)
                if base:
                    out[f"ratio_{label}_{name}"] = f"{sigma / base:.2f}"
            if label in ("mass", "age"):
                out[f"coverage_{label}_{name}"] = _percent(float(rows["coverage"][0]))
    return out


#: The samples of the mass and age of each state, the model before beside the bundled
#: one (``state_masses.rst``).
STATE_SAMPLES = (("giants", "all giants"), ("rc", "RC by the Bovy et al. (2014) cut"),
                 ("rc_state", "RC by the state model"), ("rgb", "RGB by the cut"),
                 ("rgb_state", "RGB by the state model"))


def state_masses(current, previous):
    """Mass and age scatter of the bundled model and the previous one per state sample
    (``magnitudes.ecsv`` and ``magnitudes_previous.ecsv``: the same test split).

    Returns ``(rst, numbers)``: the table for ``state_masses.rst`` and the
    substitutions ``sm_<label>_<now|before>_<sample>_<level>`` (sigma with
    unit) for the native and G = 17 levels.
    """
    levels = [lv for lv in ("native", "17.0") if lv in set(current["level"])]
    names = {"now": current.meta.get("model", "bundled model"),
             "before": previous.meta.get("model", "previous model")}
    rows, numbers = [], {}
    for label in ("mass", "age"):
        for sample, text in STATE_SAMPLES:
            row = [label, text]
            for level in levels:
                for key, table in (("before", previous), ("now", current)):
                    sigma = _get(table, system="model", level=level, label=label,
                                 sample=sample)
                    row.append("--" if sigma is None else _number(sigma, label))
                    if sigma is not None:
                        numbers[f"sm_{label}_{key}_{sample}_{_level_name(level)}"] = \
                            _number(sigma, label) + PROSE_UNIT[label]
                n = _get(current, "n", system="model", level=level, label=label, sample=sample)
                row.append("--" if n is None else f"{int(n):,}")
            rows.append(row)
    header = ["label", "test giants"]
    for level in levels:
        name = _level_text(level)
        header += [f"{name}: {names['before']}", f"{name}: {names['now']}", f"{name}: N"]
    text = ("Scatter (MAD-std) of mass [Msun] and age [Gyr] against the label model's, per "
            "state, for the bundled model and the one before it, scored on the same test "
            "split as ``giantfm.predict`` answers each (N: giants with a mass answered by the "
            "bundled model).\n\n")
    return text + list_table(header, rows), numbers


def generative_numbers(table):
    """Substitutions from ``generative.ecsv``.

    Every row as ``gen_<case>_<metric>`` (3 significant digits and its unit;
    fractions of the flux also as ``..._percent``), and the summaries the
    generative page quotes: ``gen_kiel_teff_rms`` (range over [M/H]),
    ``gen_dteff_dmh_model`` / ``_data`` / ``_ratio``,
    ``gen_mass_age_slope_model`` / ``_data`` (ranges over [M/H]),
    ``gen_chi2_without_a_k`` / ``gen_chi2_with_a_k`` (median reduced chi^2 of
    the giants' generated spectra, observed errors only).
    """
    out = {}
    for row in table:
        name = f"gen_{_slug(row['case'])}_{_slug(row['metric'])}"
        out[name] = f"{row['value']:.3g}" + (f" {row['unit']}" if row["unit"] else "")
        if "fractional" in row["metric"]:
            out[name + "_percent"] = _percent(row["value"])

    def values(experiment, metric, case_start=""):
        sel = table[(table["experiment"] == experiment) & (table["metric"] == metric)]
        return [float(r["value"]) for r in sel if r["case"].startswith(case_start)]

    rms = values("physics", "teff_rms_vs_data", "kiel")
    if rms:
        out["gen_kiel_teff_rms"] = _range(rms, ".0f", " K")
    model, data = values("physics", "dteff_dmh_model"), values("physics", "dteff_dmh_data")
    if model and data:
        out["gen_dteff_dmh_model"] = f"{model[0]:.0f} K/dex"
        out["gen_dteff_dmh_data"] = f"{data[0]:.0f} K/dex"
        out["gen_dteff_dmh_ratio"] = _percent(model[0] / data[0], 0)
    model = values("physics", "dlogage_dlogmass_model")
    data = values("physics", "dlogage_dlogmass_data")
    if model and data:
        out["gen_mass_age_slope_model"] = _range(model, ".1f")
        out["gen_mass_age_slope_data"] = _range(data, ".1f")
    for case, key in (("giantfm (teff, logg, m_h, alpha_m); giants", "without"),
                      ("giantfm (teff, logg, m_h, alpha_m, a_k); giants", "with")):
        sel = table[(table["case"] == case) & (table["metric"] == "chi2_reduced_obs_errors")]
        if len(sel):
            out[f"gen_chi2_{key}_a_k"] = f"{float(sel['value'][0]):.0f}"
    return out


def bench_numbers(results):
    """Substitutions from the benchmark tables ``bench_*.ecsv`` that the prose quotes.

    ``scale_worker_rss`` (largest peak memory of a ``predict_files`` worker,
    GB), ``scale_stars_per_s_per_worker`` (the smallest per-worker throughput
    measured), ``predict_stars_per_s`` (``predict`` end to end, CPU);
    ``finetune_bench_stars``, ``finetune_bench_auto_s``, ``finetune_bench_pick``,
    ``finetune_bench_s`` (the method auto picks), ``finetune_bench_xgb_s``,
    ``finetune_bench_machine`` and
    ``finetune_bench_predict_ratio`` (``bench_finetune.ecsv``: a fine-tune, XGBoost on
    the same stars, and predict with the fine-tuned model over the bundled one).
    """
    from astropy.table import Table

    out = {}
    path = Path(results) / "bench_scale.ecsv"
    if path.is_file():
        table = Table.read(path, format="ascii.ecsv")
        out["scale_worker_rss"] = f"{max(table['peak_rss_mb_per_worker']) / 1000:.1f} GB"
        out["scale_stars_per_s_per_worker"] = \
            f"{min(table['stars_per_s_per_worker']):,.0f} stars/s"
    path = Path(results) / "bench_predict.ecsv"
    if path.is_file():
        table = Table.read(path, format="ascii.ecsv")
        rows = table[table["step"] == "predict, end to end"]
        if len(rows):
            out["predict_stars_per_s"] = f"{float(rows['stars_per_s'][0]):,.0f} stars/s"
    path = Path(results) / "bench_ood.ecsv"
    if path.is_file():
        out.update(ood_numbers(Table.read(path, format="ascii.ecsv")))
    path = Path(results) / "bench_finetune.ecsv"
    if path.is_file():
        table = Table.read(path, format="ascii.ecsv")
        seconds = dict(zip(table["what"], table["seconds"]))
        out["finetune_bench_stars"] = f"{int(table['stars'][0]):,}"
        out["finetune_bench_auto_s"] = f"{seconds['finetune, method auto']:.0f} s"
        pick = next(w for w in seconds if w.endswith("(the pick)"))
        out["finetune_bench_pick"] = pick.split("method ")[1].split(" ")[0]
        out["finetune_bench_s"] = f"{seconds[pick]:.0f} s"
        out["finetune_bench_xgb_s"] = f"{seconds['xgboost from scratch (same stars)']:.0f} s"
        out["finetune_bench_machine"] = table.meta.get("machine", "")
        out["finetune_bench_predict_ratio"] = \
            f"{float(table['ratio'][table['what'] == 'predict, fine-tuned model'][0]):.2f}"
    return out


#: The cases of ``bench_ood.ecsv`` that the prose quotes, by the start of their name.
OOD_CASES = {"test_giants": "test-split giants", "dwarfs": "test-split dwarfs",
             "first2000": "real DR3 sources", "synthetic": "test-split giants without",
             "g17": "test giants as faint copies at G = 17"}


def ood_numbers(table):
    """``ood_<case>_flagged``, ``ood_<case>_ood`` and ``ood_<case>_unusable_<label>`` (per
    cent) of the honest cases in `OOD_CASES`, and ``ood_manipulated`` (per cent flagged of
    all manipulated stars)."""
    out = {}
    for key, start in OOD_CASES.items():
        rows = [r for r in table if r["kind"] == "honest" and str(r["case"]).startswith(start)
                and not (key == "test_giants" and "without" in str(r["case"]))]
        if not rows:
            continue
        row = rows[0]
        out[f"ood_{key}_flagged"] = _percent(float(row["flagged"]), 2)
        out[f"ood_{key}_ood"] = _percent(float(row["flagged_as_ood"]), 2)
        for column in row.colnames:
            if column.startswith("unusable_"):
                out[f"ood_{key}_{column}"] = _percent(float(row[column]), 1 if
                                                      column == "unusable_mass" else 2)
    manipulated = table[table["kind"] == "manipulated"]
    if len(manipulated):
        fraction = float(sum(manipulated["flagged"] * manipulated["stars"])
                         / sum(manipulated["stars"]))
        out["ood_manipulated"] = _percent(fraction, 1)
    return out


def dataset_numbers(table):
    """Substitutions from ``dataset.ecsv``: ``ds_<name>`` for every row (value in its
    ``format``, ``%`` formats as per cent, then the unit), ``dsv_<name>`` the same
    without the unit (for table cells whose header gives it), and ``ds_file`` (the
    file name)."""
    out = {"ds_file": str(table.meta.get("dataset", "the dataset file"))}
    for row in table:
        fmt, value = str(row["format"]), float(row["value"])
        text = (_percent(value, int(fmt.strip("+.%") or 0)) if fmt.endswith("%")
                else format(value, fmt))
        out[f"ds_{row['name']}"] = text + (f" {row['unit']}" if row["unit"] else "")
        out[f"dsv_{row['name']}"] = text
    return out


def _threshold_name(threshold):
    """A ``p_rc`` threshold as part of a substitution name: ``0.5`` -> ``t0_5``."""
    return "t" + f"{float(threshold):g}".replace(".", "_")


def _state_prefix(system):
    return STATE_SYSTEM_PREFIX.get(system, _slug(system) + "_")


def state_numbers(scores):
    """Substitutions from ``states.ecsv`` (the network's ``p_rc`` on the test giants).

    Per G level (``native``, ``14``, ..., ``17_65``), for the model:
    ``state_acc_<level>`` (accuracy of ``evstate``, per cent), ``state_auc_<level>``
    (ROC AUC), ``state_log_loss_<level>``, ``state_brier_<level>``,
    ``state_ece_<level>``, ``state_purity_<level>`` and
    ``state_completeness_<level>`` (of ``evstate`` = 'RC', per cent),
    ``state_coverage_<level>`` (per cent), ``state_n_<level>`` and
    ``state_n_rc_<level>``; the same with ``state_sm_`` for the state model
    applied to the predicted labels.
    """
    out = {}
    for row in scores:
        name = f"state_{_state_prefix(row['system'])}" + "{}_" + _level_name(row["level"])
        out[name.format("n")] = f"{int(row['n']):,}"
        out[name.format("n_rc")] = f"{int(row['n_rc']):,}"
        for column, key in (("coverage", "coverage"), ("accuracy", "acc"),
                            ("purity", "purity"), ("completeness", "completeness")):
            out[name.format(key)] = _fraction(float(row[column]))
        for column, key in (("roc_auc", "auc"), ("log_loss", "log_loss"), ("brier", "brier"),
                            ("ece", "ece")):
            out[name.format(key)] = _fixed(float(row[column]))
    return out


def state_threshold_numbers(table):
    """Substitutions from ``states_by_threshold.ecsv``: ``rc_purity_<level>_t<threshold>``,
    ``rc_completeness_<level>_t<threshold>`` (per cent; ``--`` where none is selected)
    and ``rc_selected_<level>_t<threshold>`` of the model (``rc_purity_native_t0_5``,
    ``rc_completeness_17_t0_8``), and the same with ``rc_sm_`` for the state model
    applied to the predicted labels."""
    out = {}
    for row in table:
        name = (f"rc_{_state_prefix(row['system'])}" + "{}_" + _level_name(row["level"])
                + "_" + _threshold_name(row["threshold"]))
        out[name.format("selected")] = f"{int(row['selected']):,}"
        out[name.format("purity")] = _fraction(float(row["purity"]))
        out[name.format("completeness")] = _fraction(float(row["completeness"]))
    return out


#: Unit text of the targets of ``label_model_state.ecsv`` (``None``: a fraction, per cent).
FLOOR_UNIT = {"mass": (" Msun", 3), "log_age": (" dex", 3), "age": (" Gyr", 2),
              "mass_fractional": (None, 1), "age_fractional": (None, 0)}


def label_model_state_numbers(table):
    """Substitutions from ``label_model_state.ecsv``: the label model's floor (MAD-std of
    its out-of-fold values minus the seismic ones) per state (``rgb``, ``rc``,
    ``unknown``, ``overall``) and target (``mass``, ``mass_fractional``, ``log_age``,
    ``age``): ``lm_state_floor_<state>_<target>_blind`` (fitted without states),
    ``..._state`` (per-state models combined by the classifier's P(RC)) and
    ``..._given`` (each star through its own state's model), and
    ``lm_state_floor_<state>_<target>_n``."""
    out = {}
    for row in table:
        unit, decimals = FLOOR_UNIT.get(str(row["target"]), ("", 3))
        name = f"lm_state_floor_{_slug(row['state'])}_{_slug(row['target'])}_" + "{}"
        out[name.format("n")] = f"{int(row['n']):,}"
        for column, key in (("floor_blind", "blind"), ("floor_state", "state"),
                            ("floor_given_state", "given")):
            value = float(row[column])
            out[name.format(key)] = (_fraction(value, decimals) if unit is None
                                     else _fixed(value, decimals) + unit)
    return out


def state_reliability_numbers(table):
    """Substitutions from ``state_reliability.ecsv``: the state classifier of the label
    model, out of fold on the seismic giants of known state, with the calibration it
    uses (``meta['calibration_method']``): ``lm_state_acc`` (per cent), ``lm_state_auc``,
    ``lm_state_log_loss``, ``lm_state_brier``, ``lm_state_ece``, ``lm_state_calibration``
    (the method), ``lm_state_n`` (giants of known state), ``lm_state_n_rc``,
    ``lm_state_n_rgb``, ``lm_state_n_unknown`` (those of unknown state, left out),
    ``lm_state_ambiguous`` (per cent of the scored giants with P(RC) between 0.1 and
    0.9)."""
    out = {}
    method = table.meta.get("calibration_method")
    metrics = (table.meta.get("metrics") or {}).get(method)
    if metrics:
        out["lm_state_calibration"] = str(method)
        out["lm_state_acc"] = _fraction(float(metrics["accuracy"]))
        for column, key in (("roc_auc", "auc"), ("log_loss", "log_loss"), ("brier", "brier"),
                            ("ece", "ece")):
            out[f"lm_state_{key}"] = _fixed(float(metrics[column]))
    if "n_known" in table.meta:
        out["lm_state_n"] = f"{int(table.meta['n_known']):,}"
    for state, count in (table.meta.get("evstate_counts") or {}).items():
        out[f"lm_state_n_{_slug(state)}"] = f"{int(count):,}"
    if len(table) and "count" in table.colnames:
        middle = (table["bin_low"] >= 0.1 - 1e-9) & (table["bin_high"] <= 0.9 + 1e-9)
        out["lm_state_ambiguous"] = _fraction(float(table["count"][middle].sum()
                                                    / table["count"].sum()))
    return out


def seismic_numbers(table):
    """Substitutions from ``seismic.ecsv`` (as `giantfm.predict` answers): per role
    (``test``, ``validation``) and state (``all``, ``rgb``, ``rc``)
    ``seis_<role>_<state>_n``, ``_mass`` (MAD-std against K2's masses as they are, Msun),
    ``_mass_bias`` (against them harmonised), ``_mass_net``, ``_mass_z``, ``_age``
    (Gyr), ``_age_z``; per role ``seis_<role>_p_rc_acc`` (per cent), ``_p_rc_auc``,
    ``_p_rc_n``, ``_p_rc_masked``."""
    out = {}
    for row in table[table["system"] == "model"]:
        key = f"seis_{row['role']}_{_slug(row['state'])}"
        out[f"{key}_n"] = f"{int(row['n'])}"
        for column, name, decimals in (("mass_scatter_gross", "mass", 3),
                                       ("mass_bias", "mass_bias", 3),
                                       ("mass_scatter_net", "mass_net", 3), ("mass_z", "mass_z", 2),
                                       ("age_scatter", "age", 2), ("age_z", "age_z", 2)):
            out[f"{key}_{name}"] = _fixed(float(row[column]), decimals)
        if row["state"] == "all" and "accuracy" in table.colnames:
            out[f"seis_{row['role']}_p_rc_acc"] = _fraction(float(row["accuracy"]))
            out[f"seis_{row['role']}_p_rc_auc"] = _fixed(float(row["roc_auc"]))
            out[f"seis_{row['role']}_p_rc_n"] = f"{int(row['n_p_rc'])}"
            out[f"seis_{row['role']}_p_rc_masked"] = f"{int(row['n_p_rc_masked'])}"
    return out


def numbers(results):
    """Every substitution of ``numbers.rst``: ``{name: text}`` from the files in ``results``
    (those missing give no names, and a page using them fails the build and the test)."""
    from astropy.table import Table

    results = Path(results)
    out = {}
    for name, make in (("metrics.ecsv", metrics_numbers), ("magnitudes.ecsv", magnitudes_numbers),
                       ("generative.ecsv", generative_numbers),
                       ("dataset.ecsv", dataset_numbers), ("states.ecsv", state_numbers),
                       ("states_by_threshold.ecsv", state_threshold_numbers),
                       ("label_model_state.ecsv", label_model_state_numbers),
                       ("state_reliability.ecsv", state_reliability_numbers),
                       ("seismic.ecsv", seismic_numbers),
                       *((f"finetune_{family}.ecsv", finetune_numbers)
                         for family in FINETUNE_FAMILIES),
                       ("finetune_cn_age.ecsv", finetune_age_numbers),
                       ("embedding_neighbours.ecsv", embedding_numbers)):
        if (results / name).is_file():
            out.update(make(Table.read(results / name, format="ascii.ecsv")))
    previous = results / "magnitudes_previous.ecsv"
    if (results / "magnitudes.ecsv").is_file() and previous.is_file():
        out.update(state_masses(Table.read(results / "magnitudes.ecsv", format="ascii.ecsv"),
                                Table.read(results / "magnitudes_previous.ecsv",
                                           format="ascii.ecsv"))[1])
    out.update(bench_numbers(results))
    return out


def numbers_rst(results):
    """``numbers.rst``: one substitution definition per number, sorted by name."""
    lines = [".. Generated by docs/scripts/make_tables.py from docs/results/: do not edit.", ""]
    for name, text in sorted(numbers(results).items()):
        lines.append(f".. |{name}| replace:: {text}")
    return "\n".join(lines) + "\n"


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _tables_from(path, out, prefix, make, names, missing):
    """Write ``<prefix>_<name>.rst`` for the tables ``make`` draws from the ECSV ``path``,
    or the note ``missing`` in each where the file is not there yet."""
    if path.is_file():
        from astropy.table import Table

        for name, text in make(Table.read(path, format="ascii.ecsv")).items():
            _write(out / f"{prefix}_{name}.rst", text)
    else:
        for name in names:
            _write(out / f"{prefix}_{name}.rst", _note(missing))


def main(argv=None):
    """Write every generated table; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(Path(__file__).parents[1] / "results"),
                        help="folder with metrics.ecsv and bench_*.ecsv")
    parser.add_argument("--out", default=str(Path(__file__).parents[1] / "_generated"),
                        help="folder for the generated .rst/.csv files")
    args = parser.parse_args(argv)
    results, out = Path(args.results), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    _write(out / "vocabulary.rst", vocabulary_rst())
    _write(out / "flags_table.rst", flags_rst())

    metrics_file = results / "metrics.ecsv"
    if metrics_file.is_file():
        from astropy.table import Table

        metrics = Table.read(metrics_file, format="ascii.ecsv")
        for column in metrics.itercols():
            if column.dtype.kind == "f":
                column.info.format = ".4g"
        _write(out / "accuracy_headline.rst", headline_rst(metrics))
        _write(out / "accuracy_experiments.rst", experiments_rst(metrics))
        _write(out / "calibration.rst", calibration_rst(metrics))
        _write(out / "comparison.rst", comparison_rst(metrics))
        with tempfile.NamedTemporaryFile("w", suffix=".csv", dir=out, delete=False) as f:
            tmp = f.name
        metrics.write(tmp, format="ascii.csv", overwrite=True)
        os.replace(tmp, out / "metrics_all.csv")
    else:
        missing = _note("No evaluation results yet: run ``giantfm evaluate --model DIR "
                        "--dataset FILE --baseline DIR --out RUN`` and copy "
                        "``RUN/metrics.ecsv`` to ``docs/results/metrics.ecsv``.")
        for name in ("accuracy_headline", "accuracy_experiments", "calibration"):
            _write(out / f"{name}.rst", missing)
        _write(out / "comparison.rst", comparison_rst(None) + "\n" + missing)
        _write(out / "metrics_all.csv", "note\nno evaluation results yet\n")
    _tables_from(results / "magnitudes.ecsv", out, "magnitudes", magnitudes_rst,
                 ("model", "baseline", "mass_age"),
                 "No evaluation against magnitude yet: run ``giantfm evaluate ... --magnitudes "
                 "native,14,15,16,17,17.65 --out RUN`` and copy ``RUN/magnitudes.ecsv`` to "
                 "``docs/results/magnitudes.ecsv``.")
    no_states = ("No evaluation of the evolutionary state yet: run ``giantfm evaluate "
                 "--model MODEL ... --magnitudes native,14,15,16,17,17.65 --states --out "
                 "RUN`` and copy ``RUN/{0}`` to ``docs/results/{0}``.")
    _tables_from(results / "states.ecsv", out, "states", states_rst, ("scores",),
                 no_states.format("states.ecsv"))
    _tables_from(results / "states_by_threshold.ecsv", out, "states", states_thresholds_rst,
                 ("thresholds",), no_states.format("states_by_threshold.ecsv"))
    no_seismic = ("No evaluation against asteroseismology yet: run ``giantfm evaluate "
                  "--model MODEL --dataset FILE --seismic --out RUN`` and copy ``RUN/{0}`` to "
                  "``docs/results/{0}``.")
    _tables_from(results / "seismic.ecsv", out, "seismic", seismic_rst,
                 ("test", "validation"), no_seismic.format("seismic.ecsv"))
    _tables_from(results / "seismic_models.ecsv", out, "seismic_models", seismic_models_rst,
                 ("compare",), "No comparison of models against asteroseismology yet: run "
                 "``python docs/scripts/seismic_models.py DATASET NAME=MODEL ...``.")
    _tables_from(results / "mass_luminosity.ecsv", out, "mass_luminosity",
                 mass_luminosity_rst, ("slopes",), no_seismic.format("mass_luminosity.ecsv"))
    _tables_from(results / "seismic_ambiguous.ecsv", out, "seismic_ambiguous",
                 seismic_ambiguous_rst, ("bands",),
                 no_seismic.format("seismic_ambiguous.ecsv"))
    if (results / "magnitudes_previous.ecsv").is_file() and \
            (results / "magnitudes.ecsv").is_file():
        from astropy.table import Table

        _write(out / "state_masses.rst", state_masses(
            Table.read(results / "magnitudes.ecsv", format="ascii.ecsv"),
            Table.read(results / "magnitudes_previous.ecsv", format="ascii.ecsv"))[0])
    else:
        _write(out / "state_masses.rst", _note(
            "No comparison with the previous model yet: copy its ``RUN/magnitudes.ecsv`` "
            "(scored on the same dataset) to ``docs/results/magnitudes_previous.ecsv``."))
    _tables_from(results / "generative.ecsv", out, "generative", generative_rst,
                 ("inpainting", "generation", "physics"),
                 "No generative evaluation yet: run ``python -m giantfm.train.evaluation.generative "
                 "--dataset FILE --out RUN`` and copy ``RUN/generative.ecsv`` to "
                 "``docs/results/generative.ecsv``.")
    no_evidence = ("No fine-tuning evidence yet: run ``python -m "
                   "giantfm.train.evaluation.finetune_evidence --dataset FILE --out RUN`` and copy "
                   "``RUN/{0}`` to ``docs/results/{0}``.")
    for name, make in (*((f"finetune_{family}", finetune_rst) for family in FINETUNE_FAMILIES),
                       ("finetune_cn_age", finetune_cn_age_rst),
                       ("embedding_neighbours", embedding_neighbours_rst)):
        path = results / f"{name}.ecsv"
        if path.is_file():
            from astropy.table import Table

            _write(out / f"{name}.rst", make(Table.read(path, format="ascii.ecsv")))
        else:
            _write(out / f"{name}.rst", _note(no_evidence.format(f"{name}.ecsv")))
    _write(out / "performance.rst", performance_rst(results))
    _write(out / "numbers.rst", numbers_rst(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
