"""The numbers the documentation quotes come from docs/results, and cannot drift.

``docs/scripts/make_tables.py`` turns the measured results (``docs/results/*.ecsv``)
into RST substitutions (``|v_teff_native|`` -> ``47.0 K``) that every page
includes (``rst_prolog`` in ``docs/conf.py``). These tests, fast and without a
Sphinx build, check that

* every ``|name|`` a page uses is defined (a build would fail later, and
  only with ``-W``);
* the generator picks the rows the names promise (recomputed here from the
  ECSV files directly);
* the pages converted to substitutions type none of those numbers by hand;
* the claims the prose makes in words about those numbers ("close to 1",
  "by less", "falls") still hold for the current results;
* ``docs/results/dataset.ecsv`` matches the dataset file, where it is here.
"""
import math
import re
import sys
from pathlib import Path

import pytest
from astropy.table import Table

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RESULTS = DOCS / "results"
sys.path.insert(0, str(DOCS / "scripts"))

import make_tables  # noqa: E402

#: Pages whose measured numbers are substitutions (none typed by hand).
CONVERTED = ("accuracy.rst", "comparison.rst", "generative.rst", "performance.rst",
             "datasheet.rst", "cli.rst", "tutorials/generation.rst", "tutorials/gaia_scale.rst",
             "tutorials/training.rst", "tutorials/red_clump.rst", "tutorials/finetune.rst")
#: Directives whose content is literal text (no substitutions); parsed-literal is not one.
LITERAL_DIRECTIVES = ("code-block", "code", "sourcecode", "doctest", "testcode", "testoutput",
                      "plot", "literalinclude", "math", "doctest-requires", "csv-table")
#: Defined outside the generator (docs/conf.py's rst_epilog).
CONF_SUBSTITUTIONS = {"giantfm"}

_REFERENCE = re.compile(r"(?<![\w\\|])\|([A-Za-z0-9_][A-Za-z0-9_.\-]*)\|(?![\w|])")
_DEFINITION = re.compile(r"^\.\. \|([^|]+)\| [\w-]+::", re.MULTILINE)


@pytest.fixture(scope="module")
def numbers():
    return make_tables.numbers(RESULTS)


def _pages():
    skip = {"_build", "_generated", "api", "results", "scripts"}
    pages = [p for p in DOCS.rglob("*") if p.suffix in (".rst", ".txt")
             and not skip & set(p.relative_to(DOCS).parts)]
    return sorted(pages)


def prose(text):
    """``text`` without literal blocks, doctest blocks, comments and inline literals:
    the parts where RST resolves substitutions."""
    out, skip_indent, in_doctest = [], None, False
    for line in text.splitlines():
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if skip_indent is not None:
            if not stripped or indent > skip_indent:
                continue
            skip_indent = None
        if in_doctest:
            if stripped:
                continue
            in_doctest = False
        if stripped.startswith(">>>"):
            in_doctest = True
            continue
        directive = re.match(r"\.\.\s+([\w-]+)::", stripped)
        if directive and directive.group(1) in LITERAL_DIRECTIVES:
            skip_indent = indent
            continue
        if stripped.startswith("..") and not directive and not _DEFINITION.match(stripped):
            skip_indent = indent  # a comment, and its indented continuation
            continue
        if stripped.endswith("::") and not directive:
            skip_indent = indent  # "paragraph::" starts a literal block
            out.append(line[:-1])
            continue
        out.append(line)
    text = "\n".join(out)
    return re.sub(r"``.+?``", "``...``", text, flags=re.DOTALL)


def references(text):
    return set(_REFERENCE.findall(prose(text)))


def test_prose_parser_finds_references_only_where_rst_resolves_them():
    text = """A |v_teff_native| and |ds_size|.

.. parsed-literal::

    giantfm build-dataset --out work_data/|ds_file|

.. code-block:: console

    $ giantfm predict-files [--format parquet|same|other]

Literal::

    |not_a_reference|

    >>> x = "|nor_this|"

``|nor_that|`` and a\\|b| and |last|.
"""
    assert references(text) == {"v_teff_native", "ds_size", "ds_file", "last"}


def test_every_substitution_a_page_uses_is_defined(numbers):
    missing = {}
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        defined = set(numbers) | CONF_SUBSTITUTIONS | set(_DEFINITION.findall(text))
        unknown = references(text) - defined
        if unknown:
            missing[page.relative_to(DOCS).as_posix()] = sorted(unknown)
    assert not missing, (f"substitutions not defined by docs/scripts/make_tables.py "
                         f"(numbers) from docs/results: {missing}")


def test_readme_uses_no_substitutions():
    # README.rst is rendered by GitHub and PyPI, which know nothing of the generated
    # substitutions: a |name| there would show as it is (or break the PyPI page).
    text = (ROOT / "README.rst").read_text(encoding="utf-8")
    assert not references(text) - set(_DEFINITION.findall(text))


def test_converted_pages_use_substitutions(numbers):
    used = set()
    for name in CONVERTED:
        used |= references((DOCS / name).read_text(encoding="utf-8"))
    for name in ("v_teff_native", "coverage_mass_native", "gen_dteff_dmh_model",
                 "gen_dteff_dmh_data", "scale_worker_rss", "ds_file", "ds_size",
                 "ds_build_seconds", "ds_format_version", "ds_test_stars"):
        assert name in numbers, name
    assert {"coverage_mass_native", "gen_dteff_dmh_model", "gen_dteff_dmh_data",
            "scale_worker_rss", "ds_file", "ds_size", "ds_build_seconds",
            "ds_lm_mass_overall_scatter"} <= used


def _distinctive(text):
    """Generated texts worth looking for in the prose: a number with a unit or per
    cent, a thousands separator or three decimals ("47.0 K", "3,400", "0.185"), not
    short plain numbers ("2", "0.97") that other prose has by chance."""
    return bool(re.search(r"\d", text)) and len(text) >= 4 and (
        " " in text or "," in text or re.search(r"\.\d{3}", text) is not None)


def test_converted_pages_type_no_generated_number_by_hand(numbers):
    texts = {text for name, text in numbers.items()
             if _distinctive(text) and not name.startswith(("dsv_", "ds_file"))}
    typed = {}
    for name in CONVERTED:
        page = prose((DOCS / name).read_text(encoding="utf-8"))
        page = _REFERENCE.sub("", page)
        found = sorted(t for t in texts
                       if re.search(r"(?<![\w.,+-])" + re.escape(t) + r"(?![\w])", page))
        if found:
            typed[name] = found
    assert not typed, f"numbers from docs/results typed by hand (use the substitutions): {typed}"


def _row(table, **where):
    keep = [all(str(row[k]) == str(v) for k, v in where.items()) for row in table]
    rows = table[keep]
    assert len(rows) == 1, (where, len(rows))
    return rows[0]


def test_magnitudes_numbers_are_those_of_the_results_file(numbers):
    table = Table.read(RESULTS / "magnitudes.ecsv", format="ascii.ecsv")
    row = _row(table, system="model", level="native", label="teff", sample="giants")
    assert numbers["v_teff_native"] == f"{row['sigma']:.1f} K"
    row = _row(table, system="model", level="native", label="mass", sample="giants")
    assert numbers["coverage_mass_native"] == f"{100 * row['coverage']:.1f} %"
    assert numbers["v_mass_native"] == f"{row['sigma']:.3f} Msun"
    row = _row(table, system="model", level="17.65", label="age", sample="giants")
    assert numbers["v_age_17_65"] == f"{row['sigma']:.2f} Gyr"
    assert numbers["z_age_17_65"] == f"{row['z_sigma']:.2f}"


def test_metrics_numbers_are_those_of_the_results_file(numbers):
    table = Table.read(RESULTS / "metrics.ecsv", format="ascii.ecsv")
    row = _row(table, system="model", experiment=make_tables.HEADLINE_EXPERIMENT,
               label="logg", reference="apogee", sample="giants")
    assert numbers["acc_logg_sigma"] == f"{row['sigma']:.3f} dex"
    assert numbers["acc_logg_n"] == f"{row['n']:,}"


def test_generative_numbers_and_claims(numbers):
    table = Table.read(RESULTS / "generative.ecsv", format="ascii.ecsv")

    def value(case, metric):
        return float(_row(table, case=case, metric=metric)["value"])

    model = value("kiel log g=2.5", "dteff_dmh_model")
    data = value("kiel log g=2.5", "dteff_dmh_data")
    assert numbers["gen_dteff_dmh_model"] == f"{model:.0f} K/dex"
    assert numbers["gen_dteff_dmh_data"] == f"{data:.0f} K/dex"
    # generative.rst: "moves with metallicity in the direction the data do (metal-poor
    # giants are hotter), but by less"
    assert model < 0 and data < 0 and abs(model) < abs(data)
    # "the z scatter of the flux is ... close to 1"
    for case in ("rp_from_bp", "bp_from_rp"):
        assert 0.75 < value(case, "flux_z_mad_std") < 1.25
    # "the high orders are predicted to about their own errors"
    assert value("high_from_low", "coefficient_rms_in_errors") < 1.5
    # "given it [A_K], the median reduced chi^2 ... falls"
    assert value("giantfm (teff, logg, m_h, alpha_m, a_k); giants", "chi2_reduced_obs_errors") \
        < value("giantfm (teff, logg, m_h, alpha_m); giants", "chi2_reduced_obs_errors")
    # "it [age] falls as the mass rises"
    physics = table[table["metric"] == "spearman_mass_age_model"]
    assert len(physics) and all(physics["value"] < 0)
    fraction = value("rp_from_bp", "flux_fractional_residual")
    assert numbers["gen_rp_from_bp_flux_fractional_residual_percent"] == f"{100 * fraction:.1f} %"


def test_state_numbers_are_those_of_the_results_files(numbers):
    scores = Table.read(RESULTS / "states.ecsv", format="ascii.ecsv")
    row = _row(scores, system="model", level="native")
    assert numbers["state_acc_native"] == f"{100 * row['accuracy']:.1f} %"
    assert numbers["state_auc_native"] == f"{row['roc_auc']:.3f}"
    assert numbers["state_n_rc_native"] == f"{row['n_rc']:,}"
    row = _row(scores, system="state model on predicted labels", level="17.0")
    assert numbers["state_sm_acc_17"] == f"{100 * row['accuracy']:.1f} %"
    table = Table.read(RESULTS / "states_by_threshold.ecsv", format="ascii.ecsv")
    row = _row(table, system="model", level="native", threshold=0.5)
    assert numbers["rc_completeness_native_t0_5"] == f"{100 * row['completeness']:.1f} %"
    assert numbers["rc_selected_native_t0_5"] == f"{row['selected']:,}"
    # states.ecsv's purity and completeness are those of the threshold of evstate
    for level in set(scores["level"]):
        for system in set(scores["system"]):
            s = _row(scores, system=system, level=level)
            t = _row(table, system=system, level=level, threshold=0.5)
            assert math.isclose(s["completeness"], t["completeness"])
    reliability = Table.read(RESULTS / "state_reliability.ecsv", format="ascii.ecsv")
    chosen = reliability.meta["metrics"][reliability.meta["calibration_method"]]
    assert numbers["lm_state_acc"] == f"{100 * chosen['accuracy']:.1f} %"
    assert numbers["lm_state_n"] == f"{reliability.meta['n_known']:,}"


def test_state_claims(numbers):
    scores = Table.read(RESULTS / "states.ecsv", format="ascii.ecsv")
    table = Table.read(RESULTS / "states_by_threshold.ecsv", format="ascii.ecsv")
    # red_clump.rst: "raising the threshold never raises the completeness"
    for system in set(table["system"]):
        for level in set(table["level"]):
            rows = _rows_sorted(table, system, level)
            assert all(a >= b for a, b in zip(rows["completeness"], rows["completeness"][1:]))
            assert all(a >= b for a, b in zip(rows["selected"], rows["selected"][1:]))
    # "fewer giants are answered a state at all" at G = 17 than native
    assert _row(scores, system="model", level="17.0")["coverage"] < \
        _row(scores, system="model", level="native")["coverage"]
    # the levels and thresholds the tutorial quotes exist
    for name in ("state_acc_17", "state_coverage_17", "rc_purity_17_t0_8",
                 "rc_purity_native_t0_8", "lm_state_ambiguous"):
        assert name in numbers, name


def _rows_sorted(table, system, level):
    rows = table[(table["system"] == system) & (table["level"] == level)]
    rows.sort("threshold")
    return rows


def test_accuracy_claims(numbers):
    table = Table.read(RESULTS / "magnitudes.ecsv", format="ascii.ecsv")
    native = _row(table, system="model", level="native", label="mass", sample="giants")
    faint = _row(table, system="model", level="17.65", label="mass", sample="giants")
    # accuracy.rst: fewer giants get a mass at G = 17.65 than at their own magnitudes
    assert faint["coverage"] < native["coverage"]


def test_bench_numbers(numbers):
    table = Table.read(RESULTS / "bench_scale.ecsv", format="ascii.ecsv")
    assert numbers["scale_worker_rss"] == f"{max(table['peak_rss_mb_per_worker']) / 1000:.1f} GB"


def test_dataset_numbers_and_claims(numbers):
    table = Table.read(RESULTS / "dataset.ecsv", format="ascii.ecsv")
    value = {row["name"]: float(row["value"]) for row in table}
    assert numbers["ds_file"] == table.meta["dataset"]
    assert numbers["ds_size"] == f"{value['size']:.1f} MB"
    assert numbers["ds_test_stars"] == f"{value['test_stars']:,.0f}"
    assert numbers["ds_lm_mass_fractional_overall_scatter"] == \
        f"{100 * value['lm_mass_fractional_overall_scatter']:.1f} %"
    assert numbers["dsv_lm_mass_overall_z"] == f"{value['lm_mass_overall_z']:.2f}"
    # the cuts: each "remaining" is the previous one minus what the cut removed
    cuts = [name[4:-10] for name in value if name.startswith("cut_") and
            name.endswith("_remaining")]
    for before, after in zip(cuts, cuts[1:]):
        assert value[f"cut_{after}_remaining"] == \
            value[f"cut_{before}_remaining"] - value[f"cut_{after}_removed"]
    # the splits add up to the XP and label-only stars
    assert sum(value[f"{s}_xp"] for s in ("train", "val", "test")) == value["xp_stars"]
    assert sum(value[f"{s}_seismic"] for s in ("train", "val", "test")) == \
        value["label_only_stars"]
    # datasheet.rst: the kNN model is "worse in age", with "the unknown-state stars'
    # uncertainties as underestimated" as the chosen model's
    assert value["lm_knn_log_age_overall_scatter"] > value["lm_log_age_overall_scatter"]
    assert value["lm_knn_mass_unknown_z"] > 1.3 and value["lm_mass_unknown_z"] > 1.3
    # "Miglio et al.'s [Fe/H] equals APOKASC-2's"
    assert abs(value["miglio_m_h"]) < 0.01


def test_dataset_results_match_the_dataset_file():
    pytest.importorskip("h5py")
    table = Table.read(RESULTS / "dataset.ecsv", format="ascii.ecsv")
    path = ROOT / "work_data" / table.meta["dataset"]
    if not path.is_file():
        pytest.skip(f"{path} is not here (build it with giantfm build-dataset)")
    import dataset_results

    rows, meta = dataset_results.dataset_rows(path)
    fresh = {row["name"]: row["value"] for row in rows}
    stored = {row["name"]: float(row["value"]) for row in table}
    assert set(fresh) == set(stored)
    # a rebuild of the same dataset takes other seconds and writes other timestamps (a few
    # bytes of the file): those two are the machine's and the moment's, not the data's
    tolerance = {"build_seconds": 1.0, "size": 1e-3}
    changed = {name: (stored[name], fresh[name]) for name in fresh
               if not math.isclose(stored[name], fresh[name],
                                   rel_tol=tolerance.get(name, 1e-9), abs_tol=1e-12)}
    assert not changed, ("docs/results/dataset.ecsv is out of date: run python "
                         f"docs/scripts/dataset_results.py {path} ({changed})")


def test_code_defaults_quoted_in_prose():
    from giantfm.scale.files import DEFAULT_CHUNK_ROWS

    text = (DOCS / "tutorials" / "gaia_scale.rst").read_text(encoding="utf-8")
    assert f"(default {DEFAULT_CHUNK_ROWS:,})" in text


def test_numbers_rst_without_results(tmp_path):
    # a checkout without results still builds: no names, no crash
    assert make_tables.numbers(tmp_path) == {}
    assert make_tables.numbers_rst(tmp_path).startswith(".. Generated")
