"""The giantfm command line: file handling, formats, atomic writes, exit codes and messages.

`giantfm.prediction.predict` is replaced by a fake with the same contract (one
output row per input row, in order, with units, a masked row with a reason)
so that these tests exercise the command line's mechanics, not the model.
"""
import importlib
import os
import subprocess
import sys
import types

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable, Table
from astropy.utils.masked import Masked

from giantfm import cli
from giantfm.flags import REASONS, reason
from giantfm.io import tables

# (extension, astropy format used to write the *input* file, optional package)
FORMATS = [
    (".fits", "fits", None),
    (".ecsv", "ascii.ecsv", None),
    (".vot", "votable", None),
    (".csv", "ascii.csv", None),
    (".h5", "hdf5", "h5py"),
    (".parquet", "parquet", "pyarrow"),
]


def fake_predict(data, *, photometry=None, device=None, batch_size=None, progress=None,
                 truncate=True):
    """Stands in for giantfm.predict: same rows, units, a masked row where G is missing
    (``bp_rp`` stands in for the XP coefficients, without which predict refuses a table)."""
    if "bp_rp" not in data.colnames:
        raise ValueError("no XP coefficient columns found. Expected the Gaia archive / "
                         "GaiaXPy array columns 'bp_coefficients' and/or 'rp_coefficients'")
    g = as_float(data["phot_g_mean_mag"])
    bad = ~np.isfinite(g)
    result = QTable()
    result["source_id"] = np.asarray(data["source_id"])
    result["teff"] = Masked(np.where(bad, np.nan, 4000.0 + 10 * g) * u.K, mask=bad)
    result["teff_err"] = Masked(np.full(len(g), 50.0) * u.K, mask=bad)
    result["logg"] = Masked(np.where(bad, np.nan, 2.5) << u.dex(u.cm / u.s**2), mask=bad)
    result["mass"] = Masked(np.where(bad, np.nan, 1.2) * u.solMass, mask=bad)
    result["age"] = Masked(np.where(bad, np.nan, 4.0) * u.Gyr, mask=bad)
    result["flag"] = bad
    result["flags"] = np.where(bad, REASONS["no_g"].value, 0)
    result["reason"] = np.where(bad, "no G magnitude: coefficients cannot be normalised", "")
    result.meta.update({"giantfm_model": "fake", "device": str(device),
                        "batch_size": str(batch_size), "progress": str(progress)})
    return result


@pytest.fixture
def fake(monkeypatch):
    """Replace giantfm.prediction.predict by the fake; returns the list of calls."""
    calls = []

    def recording(data, **kwargs):
        calls.append((data, kwargs))
        return fake_predict(data, **kwargs)
    module = importlib.import_module("giantfm.prediction")
    monkeypatch.setattr(module, "predict", recording)
    return calls


def stars(n=5):
    t = Table()
    t["source_id"] = np.arange(1000, 1000 + n, dtype=np.int64)[::-1]  # not sorted: order matters
    t["phot_g_mean_mag"] = np.linspace(10.0, 14.0, n)
    t["phot_g_mean_mag"].unit = u.mag
    t["phot_g_mean_mag"][2] = np.nan  # this star cannot be predicted
    t["bp_rp"] = np.linspace(1.0, 1.5, n)
    return t


def as_float(column):
    """Values of a (masked) Quantity column as floats, NaN where masked."""
    if isinstance(column, Masked):
        column = column.filled(np.nan)
    return np.ma.filled(np.ma.asarray(getattr(column, "value", column), dtype=float), np.nan)


def write_input(table, path, fmt):
    kwargs = {"path": "stars", "serialize_meta": True} if fmt == "hdf5" else {}
    table.write(path, format=fmt, **kwargs)
    return path


def run(argv, capsys):
    status = cli.main([os.fspath(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("ext, fmt, needs", FORMATS)
def test_predict_formats_by_extension(tmp_path, capsys, fake, ext, fmt, needs):
    if needs:
        pytest.importorskip(needs, reason=f"{fmt} files need {needs}")
    table = stars()
    src = write_input(table, tmp_path / f"in{ext}", fmt)
    out = tmp_path / f"out{ext}"
    status, stdout, err = run(["predict", src, "-o", out, "--device", "cpu", "--batch-size",
                               "7", "--no-progress"], capsys)
    assert status == cli.EXIT_OK, err
    assert stdout == ""  # results go to the file; notes to stderr
    # flagged rows and masked labels counted apart; one note per reason code
    assert f"wrote 5 rows to {out}: 1 flagged; masked: teff, logg, mass, age in 1 row" in err
    assert "note: no_g, 1 row (flagged): e.g. no G magnitude" in err
    _, kwargs = fake[0]
    assert kwargs == {"photometry": None, "device": "cpu", "batch_size": 7, "progress": False}

    read_kwargs = {"format": "ascii.ecsv"} if ext == ".csv" else {}
    back = QTable.read(out, **read_kwargs)
    assert len(back) == len(table)
    np.testing.assert_array_equal(back["source_id"], table["source_id"])  # same order
    assert back["teff"].unit == u.K and back["mass"].unit == u.solMass
    assert back["age"].unit == u.Gyr
    # VOTable's unit syntax (VOUnit) has no logarithmic units: astropy writes logg's unit as
    # the string "dex(cm / s2)" and reads it back as an UnrecognizedUnit of that name.
    assert u.Unit(back["logg"].unit.to_string()) == u.dex(u.cm / u.s**2)
    expected = 4000.0 + 10 * np.asarray(table["phot_g_mean_mag"])
    teff = as_float(back["teff"].to(u.K))
    np.testing.assert_allclose(teff[[0, 1, 3, 4]], expected[[0, 1, 3, 4]])
    assert np.isnan(teff[2])  # the masked row stays, masked or NaN, never dropped
    assert list(np.asarray(back["flag"])) == [False, False, True, False, False]
    assert "no G magnitude" in str(back["reason"][2])
    # nothing but the input and the output in the directory: no temporary files left
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, out.name])


def test_csv_output_is_csv_with_units_in_header(tmp_path, capsys, fake):
    import csv

    src = write_input(stars(), tmp_path / "in.ecsv", "ascii.ecsv")
    out = tmp_path / "out.csv"
    assert run(["predict", src, "-o", out], capsys)[0] == cli.EXIT_OK
    lines = out.read_text().splitlines()
    assert lines[0].startswith("# %ECSV")
    assert any("unit: K" in line for line in lines if line.startswith("#"))
    rows = list(csv.reader(line for line in lines if not line.startswith("#")))
    assert rows[0][:3] == ["source_id", "teff", "teff_err"]
    assert len(rows) == 1 + 5
    # and giantfm reads its own CSV output back as a table with units
    again = tables.read_table(out)
    assert again["teff"].unit == u.K and len(again) == 5


def test_gzipped_input(tmp_path, capsys, fake):
    import gzip

    plain = write_input(stars(), tmp_path / "in.ecsv", "ascii.ecsv")
    gz = tmp_path / "in.ecsv.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert run(["predict", gz, "-o", tmp_path / "out.fits"], capsys)[0] == cli.EXIT_OK


@pytest.mark.parametrize("name, n_rows", [
    ("datalink_XP_CONTINUOUS_5937083312263887616.ecsv", 1),
    ("datalink_XP_CONTINUOUS_5937083312263887616.xml", 1),
    ("XP_CONTINUOUS_RAW.csv", 2),
    ("xp_continuous_first2000.fits", 2000),
])
def test_read_table_reads_archive_products(xp_data, name, n_rows):
    table = tables.read_table(xp_data / name)
    assert len(table) == n_rows
    assert "source_id" in table.colnames
    assert "bp_coefficients" in table.colnames or "bp_coeff_0" in table.colnames


def test_photometry_table_is_passed(tmp_path, capsys, fake):
    table = stars()
    phot = table["source_id", "phot_g_mean_mag"]
    src = write_input(table, tmp_path / "in.fits", "fits")
    phot_file = write_input(phot, tmp_path / "phot.ecsv", "ascii.ecsv")
    status, _, err = run(["predict", src, "--photometry", phot_file, "-o",
                          tmp_path / "out.ecsv"], capsys)
    assert status == cli.EXIT_OK, err
    np.testing.assert_array_equal(fake[0][1]["photometry"]["source_id"], table["source_id"])


def interrupted_write(self, path, **kwargs):
    """A writer that is interrupted after writing half a file."""
    with open(path, "w") as f:
        f.write("# %ECSV 1.0\n# half a file")
    raise KeyboardInterrupt


def test_interrupted_write_leaves_no_partial_output(tmp_path, capsys, fake, monkeypatch):
    src = write_input(stars(), tmp_path / "in.ecsv", "ascii.ecsv")
    out = tmp_path / "out.ecsv"
    monkeypatch.setattr(QTable, "write", interrupted_write)
    status, _, err = run(["predict", src, "-o", out], capsys)
    assert status == cli.EXIT_INTERRUPTED
    assert err.strip() == "giantfm: error: interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ecsv"]


def test_interrupted_overwrite_keeps_old_output(tmp_path, capsys, fake, monkeypatch):
    src = write_input(stars(), tmp_path / "in.ecsv", "ascii.ecsv")
    out = tmp_path / "out.ecsv"
    out.write_text("previous results\n")
    monkeypatch.setattr(QTable, "write", interrupted_write)
    status, _, _ = run(["predict", src, "-o", out, "--overwrite"], capsys)
    assert status == cli.EXIT_INTERRUPTED
    assert out.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ecsv", "out.ecsv"]


def test_overwrite_replaces_with_normal_permissions(tmp_path, capsys, fake):
    src = write_input(stars(), tmp_path / "in.ecsv", "ascii.ecsv")
    out = tmp_path / "out.ecsv"
    out.write_text("previous results\n")
    assert run(["predict", src, "-o", out, "--overwrite"], capsys)[0] == cli.EXIT_OK
    assert len(QTable.read(out)) == 5
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_missing_input_file(tmp_path, capsys, fake):
    status, _, err = run(["predict", tmp_path / "nope.fits", "-o", tmp_path / "o.fits"], capsys)
    assert status == cli.EXIT_BAD_INPUT
    assert err.strip() == f"giantfm: error: input file '{tmp_path / 'nope.fits'}' does not exist"
    assert not fake


def test_unreadable_table(tmp_path, capsys, fake):
    bad = tmp_path / "broken.fits"
    bad.write_bytes(b"this is not a FITS file" * 10)
    status, _, err = run(["predict", bad, "-o", tmp_path / "o.fits"], capsys)
    assert status == cli.EXIT_BAD_INPUT
    assert err.startswith(f"giantfm: error: cannot read '{bad}' as fits:")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.fits").exists()


def test_missing_columns_message(tmp_path, capsys, fake):
    table = stars()
    table.remove_column("bp_rp")
    src = write_input(table, tmp_path / "in.ecsv", "ascii.ecsv")
    status, _, err = run(["predict", src, "-o", tmp_path / "o.fits"], capsys)
    assert status == cli.EXIT_BAD_INPUT
    assert err.startswith(f"giantfm: error: cannot predict from '{src}': no XP coefficient")
    assert "bp_coefficients" in err
    assert not (tmp_path / "o.fits").exists()


def test_empty_table(tmp_path, capsys, fake):
    src = write_input(stars()[:0], tmp_path / "in.ecsv", "ascii.ecsv")
    status, _, err = run(["predict", src, "-o", tmp_path / "o.fits"], capsys)
    assert status == cli.EXIT_BAD_INPUT
    assert "has no rows" in err


def test_unknown_output_extension_is_usage_error(tmp_path, capsys, fake):
    src = write_input(stars(), tmp_path / "in.ecsv", "ascii.ecsv")
    status, _, err = run(["predict", src, "-o", tmp_path / "out.xlsx"], capsys)
    assert status == cli.EXIT_USAGE
    assert "cannot tell the table format" in err and ".fits" in err
    assert not fake


def test_existing_output_refused_before_predicting(tmp_path, capsys, fake):
    src = write_input(stars(), tmp_path / "in.ecsv", "ascii.ecsv")
    out = tmp_path / "out.fits"
    out.write_text("keep me")
    status, _, err = run(["predict", src, "-o", out], capsys)
    assert status == cli.EXIT_OUTPUT
    assert "exists; use --overwrite" in err
    assert not fake and out.read_text() == "keep me"


def test_missing_output_directory(tmp_path, capsys, fake):
    src = write_input(stars(), tmp_path / "in.ecsv", "ascii.ecsv")
    status, _, err = run(["predict", src, "-o", tmp_path / "no" / "out.fits"], capsys)
    assert status == cli.EXIT_OUTPUT
    assert "output directory" in err and "does not exist" in err


def test_device_checked_before_reading(tmp_path, capsys, fake):
    torch = pytest.importorskip("torch", reason="device selection needs torch")
    src = write_input(stars(), tmp_path / "in.ecsv", "ascii.ecsv")
    status, _, err = run(["predict", src, "-o", tmp_path / "o.fits", "--device", "gpu9"], capsys)
    assert status == cli.EXIT_USAGE
    assert err.startswith("giantfm: error: --device: ") and "gpu9" in err
    absent = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU: never present
    status, _, err = run(["predict", src, "-o", tmp_path / "o.fits", "--device", absent], capsys)
    assert status == cli.EXIT_UNAVAILABLE
    assert absent in err
    assert not fake  # refused before predicting


def test_usage_errors_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["predict", "in.fits"])  # no -o
    assert info.value.code == cli.EXIT_USAGE
    with pytest.raises(SystemExit) as info:
        cli.main(["predict", "in.fits", "-o", "o.fits", "--batch-size", "0"])
    assert info.value.code == cli.EXIT_USAGE
    assert "expected a positive integer" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == cli.EXIT_USAGE


def test_internal_error_is_5_with_hint(tmp_path, capsys, monkeypatch):
    def broken(data, **kwargs):
        raise RuntimeError("CUDA exploded")
    monkeypatch.setattr(importlib.import_module("giantfm.prediction"), "predict", broken)
    src = write_input(stars(), tmp_path / "in.ecsv", "ascii.ecsv")
    status, _, err = run(["predict", src, "-o", tmp_path / "o.fits"], capsys)
    assert status == cli.EXIT_INTERNAL
    assert err.strip() == ("giantfm: error: internal error: RuntimeError: CUDA exploded "
                           "(run with --traceback for details)")
    status, _, err = run(["--traceback", "predict", src, "-o", tmp_path / "o.fits"], capsys)
    assert status == cli.EXIT_INTERNAL
    assert "Traceback (most recent call last)" in err
    assert not (tmp_path / "o.fits").exists()


def test_predict_returning_wrong_rows_is_not_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(importlib.import_module("giantfm.prediction"), "predict",
                        lambda data, **kw: fake_predict(data, **kw)[:-1])
    src = write_input(stars(), tmp_path / "in.ecsv", "ascii.ecsv")
    status, _, err = run(["predict", src, "-o", tmp_path / "o.fits"], capsys)
    assert status == cli.EXIT_INTERNAL and "4 rows for 5 input rows" in err
    assert not (tmp_path / "o.fits").exists()


# ---------------------------------------------------------------------------- predict-files

def test_predict_files_sequential(tmp_path, capsys, fake):
    pytest.importorskip("pyarrow", reason="predict-files writes Parquet: needs pyarrow")
    write_input(stars(5), tmp_path / "a.ecsv", "ascii.ecsv")
    write_input(stars(3), tmp_path / "b.fits", "fits")
    (tmp_path / "c.parquet").write_bytes(b"not parquet")
    out = tmp_path / "out"
    status, stdout, err = run(["predict-files", tmp_path / "*.*", "-o", out, "--workers", "0",
                               "--no-progress", "--device", "cpu", "--batch-size", "4"], capsys)
    assert status == cli.EXIT_BAD_INPUT  # one input failed; the others are written
    assert stdout == ""
    assert "3 files: 2 done, 0 already done, 1 failed; 8 rows written (2 flagged)" in err
    assert "failed: " in err and "c.parquet" in err and "giantfm_manifest.json" in err
    assert len(QTable.read(out / "a.parquet")) == 5 and len(QTable.read(out / "b.parquet")) == 3
    assert all(kwargs["device"] == "cpu" and kwargs["batch_size"] == 4 for _, kwargs in fake)
    # the rerun skips what is done, and succeeds once the bad file is gone
    (tmp_path / "c.parquet").unlink()
    status, _, err = run(["predict-files", tmp_path / "*.*", "-o", out, "--workers", "0",
                          "--no-progress"], capsys)
    assert status == cli.EXIT_OK, err
    assert "2 files: 0 done, 2 already done, 0 failed" in err
    status, _, err = run(["predict-files", tmp_path / "a.ecsv", "-o", out, "--workers", "0",
                          "--no-progress", "--no-resume", "--format", "same"], capsys)
    assert status == cli.EXIT_OK and "1 done" in err
    assert len(QTable.read(out / "a.ecsv")) == 5


def test_predict_files_errors(tmp_path, capsys, fake):
    status, _, err = run(["predict-files", tmp_path / "none_*.fits", "-o", tmp_path / "o",
                          "--workers", "0"], capsys)
    assert status == cli.EXIT_USAGE and "matches no files" in err
    (tmp_path / "file").write_text("")
    status, _, err = run(["predict-files", tmp_path / "x.fits", "-o", tmp_path / "file",
                          "--workers", "0"], capsys)
    assert status == cli.EXIT_OUTPUT and "is a file" in err
    status, _, err = run(["predict-files", tmp_path / "x.fits", "-o", tmp_path / "o",
                          "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], capsys)
    assert status == cli.EXIT_USAGE and "not both" in err
    with pytest.raises(SystemExit) as info:
        cli.main(["predict-files", "x.fits", "-o", "o", "--workers", "-1"])
    assert info.value.code == cli.EXIT_USAGE


def test_delegated_subcommands(monkeypatch, capsys):
    seen = {}

    def fake_main(argv):
        seen["argv"] = argv
        return 3
    module = types.ModuleType("giantfm.train.evaluation.evaluate")
    module.main = fake_main
    monkeypatch.setitem(sys.modules, "giantfm.train.evaluation.evaluate", module)
    assert cli.main(["evaluate", "--split", "test", "--help"]) == 3
    assert seen["argv"] == ["--split", "test", "--help"]

    module.main = lambda argv: None
    assert cli.main(["evaluate"]) == cli.EXIT_OK
    module.main = lambda argv: object()  # e.g. training's main returns the trained model
    assert cli.main(["evaluate"]) == cli.EXIT_OK


def test_delegated_subcommand_missing(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "giantfm.train.trainer", None)  # import fails
    status, _, err = run(["train", "--epochs", "1"], capsys)
    assert status == cli.EXIT_UNAVAILABLE
    assert err.startswith("giantfm: error: 'giantfm train' is not available")


def test_delegated_subcommand_without_main(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "giantfm.train.dataset.build",
                        types.ModuleType("giantfm.train.dataset.build"))
    status, _, err = run(["build-dataset"], capsys)
    assert status == cli.EXIT_UNAVAILABLE
    assert "has no main(argv)" in err


def test_example_prints_prediction_table(monkeypatch, capsys, fake):
    examples = importlib.import_module("giantfm.examples")
    table = stars(3)
    table["apogee_id"] = ["2M0001", "2M0002", "2M0003"]
    monkeypatch.setattr(examples, "load", lambda: QTable(table))
    status, out, err = run(["example"], capsys)
    assert status == cli.EXIT_OK, err
    lines = out.splitlines()
    assert lines[0].split() == ["source_id", "apogee_id", "teff", "teff_err", "logg", "mass", "age"]
    assert lines[1].split() == ["K", "K", "dex(cm", "/", "s2)", "solMass", "Gyr"]
    first = lines[3].split()
    assert first[:4] == [str(table["source_id"][0]), "2M0001", "4100", "50"]
    assert "3 example stars" in out
    assert fake[0][1]["progress"] is False


def test_predict_notes_are_one_line_per_reason_code(tmp_path, capsys, monkeypatch):
    """Reasons whose texts differ only in their numbers make one note, with a count."""
    def predict(data, **kwargs):
        result = fake_predict(data, **kwargs)
        domain = [reason("outside_label_domain", limits=f"logg {4.0 + i / 10:.1f} > 3.29")
                  for i in range(len(result))]
        result["mass"].mask[:] = True
        result["flags"] |= REASONS["outside_label_domain"].value
        result["reason"] = [f"{a}; {b}" if a else b for a, b in zip(result["reason"], domain)]
        return result
    monkeypatch.setattr(importlib.import_module("giantfm.prediction"), "predict", predict)
    src = write_input(stars(), tmp_path / "in.ecsv", "ascii.ecsv")
    status, _, err = run(["predict", src, "-o", tmp_path / "out.ecsv"], capsys)
    assert status == cli.EXIT_OK, err
    assert "1 flagged; masked: teff, logg, age in 1 row; mass in 5 rows" in err
    notes = [line for line in err.splitlines() if "note:" in line]
    assert len(notes) == 2, notes
    assert notes[0].startswith("giantfm: note: outside_label_domain, 5 rows: e.g. outside the "
                               "label model's domain (logg 4.0 > 3.29)")
    assert notes[1].startswith("giantfm: note: no_g, 1 row (flagged): e.g. no G magnitude")


def test_help_names_every_result_column(capsys):
    for argv in (["--help"], ["predict", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
        text = " ".join(capsys.readouterr().out.split())
        assert "p_rc" in text and "evstate" in text, argv
    assert "ood_score, flag, flags, reason" in text


def test_finetune_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        cli.main(["finetune", "--help"])
    text = capsys.readouterr().out
    # the training options (their defaults live with the fine-tune, and may change)
    options = [option for option in ("--val-fraction", "--folds", "--seed", "--epochs",
                                     "--patience", "--learning-rate", "--batch-size")
               if f"{option} " in text]
    assert len(options) >= 5, options
    for option in options:
        line = text[text.index(f"{option} "):].split("\n  -", 1)[0]
        assert "(default" in " ".join(line.split()), option


def test_example_footer_names_the_model_and_package_versions(monkeypatch, capsys, fake):
    from giantfm.utils._version import package_version
    examples = importlib.import_module("giantfm.examples")
    monkeypatch.setattr(examples, "load", lambda: QTable(stars(3)))
    original = fake_predict

    def versioned(data, **kwargs):
        result = original(data, **kwargs)
        result.meta["giantfm_model_version"] = "0.1.dev44"
        return result
    monkeypatch.setattr(importlib.import_module("giantfm.prediction"), "predict", versioned)
    status, out, err = run(["example"], capsys)
    assert status == cli.EXIT_OK, err
    assert (f"model fake (bundled with giantfm 0.1.dev44); giantfm {package_version()}; "
            "device") in " ".join(out.split())
    assert "Rows: 1 flagged; masked: teff, logg, mass, age in 1 row" in out


def test_info(capsys):
    status, out, _ = run(["info"], capsys)
    assert status == cli.EXIT_OK
    import giantfm
    assert out.splitlines()[0] == f"giantfm {giantfm.__version__}"
    assert any(line.startswith("astropy ") for line in out.splitlines())
    assert "devices: " in out and "model card" in out


def test_entry_point_runs_as_a_program():
    out = subprocess.run([sys.executable, "-m", "giantfm.cli", "--version"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("giantfm ")


def test_example_end_to_end_with_bundled_model(capsys):
    """`giantfm example` with the real bundled model and example stars, when installed."""
    try:
        from giantfm.examples import load
        from giantfm.prediction import get_model
        stars = load()
        get_model(device="cpu")
    except Exception as exc:  # no bundled model or examples in this checkout yet
        pytest.skip(f"needs the bundled model and example stars ({type(exc).__name__}: {exc})")
    status, out, err = run(["example", "--device", "cpu"], capsys)
    assert status == cli.EXIT_OK, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["source_id", "apogee_id", "teff"]
    body = lines[3:3 + len(stars)]  # header, units, dashes; then one line per star
    assert [int(line.split()[0]) for line in body] == list(stars["source_id"])


@pytest.mark.parametrize("command", ["build-dataset", "train", "baseline", "evaluate"])
def test_delegated_help_names_the_giantfm_command(command, capsys):
    pytest.importorskip("h5py", reason="the training commands read HDF5 training sets")
    if command == "train":
        pytest.importorskip("torch", reason="training needs torch")
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: giantfm {command} ")


def test_example_compares_with_the_reference_labels(monkeypatch, capsys, fake):
    examples = importlib.import_module("giantfm.examples")
    table = QTable(stars(3))
    table["apogee_id"] = ["2M0001", "2M0002", "2M0003"]
    table["apogee_teff"] = [4110.0, 4100.0, 4150.0] * u.K
    monkeypatch.setattr(examples, "load", lambda: table)
    status, out, err = run(["example"], capsys)
    assert status == cli.EXIT_OK, err
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["source_id", "apogee_id", "teff", "teff_err", "apogee_teff"]
    # the scatter counts the stars with a prediction and a reference (one has no G magnitude)
    assert "teff     scatter" in out and "against apogee_teff" in out and "(2 stars" in out
