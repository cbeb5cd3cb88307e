"""Predictions at Gaia scale: many files (sequentially and on a dask LocalCluster), resume,
failures in the manifest, exact row accounting, and the lsdb catalogue path.

The inputs are real-format files synthesised from real rows: the bundled example
stars (archive layout with photometry) and the shared Gaia archive samples
(``XP_CONTINUOUS`` CSV with correlations, the flattened ``first2000`` FITS), repeated
and slightly perturbed, with G magnitudes added where a sample has none. They are
small (about 200 rows in all) so that the real model runs in seconds.

The LocalCluster tests share one cluster of 2 worker processes (1 thread each),
started once for the module.
"""
import gzip
import json
import os
import sys
import warnings

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable, Table, vstack

import giantfm
from giantfm import scale

#: The prediction columns that are values with units (not ood_score, flag, flags, reason).
LABEL_COLUMNS = [c for c in scale.PREDICTION_COLUMNS
                 if c not in ("evstate", "flag", "flags", "reason")]

pytest.importorskip("pyarrow", reason="predict_files writes Parquet: needs pyarrow")

N_ARCHIVE, N_CSV_REPEAT, N_FLAT, N_PARQUET = 40, 10, 36, 48


def perturbed(table, n, seed):
    """``n`` rows of ``table`` repeated, coefficients and magnitudes slightly perturbed."""
    rng = np.random.default_rng(seed)
    rows = vstack([table] * int(np.ceil(n / len(table))))[:n]
    for name in ("bp_coefficients", "rp_coefficients"):
        values = np.asarray(rows[name], dtype=float)
        rows[name] = values * (1 + 1e-3 * rng.standard_normal(values.shape))
    rows["phot_g_mean_mag"] = rows["phot_g_mean_mag"] + rng.normal(0, 0.01, n) * u.mag
    rows["source_id"] = 10**15 + seed * 10**6 + np.arange(n)
    return rows


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, xp_data):
    """A directory of real-format input files; returns {name: (path, rows)}."""
    folder = tmp_path_factory.mktemp("gaia_files")
    examples = giantfm.examples.load()
    files = {}

    # 1. the archive's XP_CONTINUOUS ECSV layout (array columns), as astroquery returns it
    archive = perturbed(examples, N_ARCHIVE, 1)
    archive.write(folder / "XpContinuous_000001.ecsv")
    files["XpContinuous_000001.ecsv"] = N_ARCHIVE

    # 2. the archive's CSV (GaiaXPy layout: array strings, correlations, a source without
    #    BP), gzipped, repeated, with the G magnitudes the archive keeps in gaia_source
    raw = Table.read(xp_data / "XP_CONTINUOUS_RAW_with_missing_BP.csv", format="ascii.csv")
    csv_rows = vstack([raw] * N_CSV_REPEAT)
    csv_rows["source_id"] = np.arange(len(csv_rows)) + 2 * 10**15
    csv_rows["phot_g_mean_mag"] = np.linspace(11.0, 15.0, len(csv_rows))
    text = "\n".join(_csv_lines(csv_rows)) + "\n"
    with gzip.open(folder / "XpContinuous_000002.csv.gz", "wt") as f:
        f.write(text)
    files["XpContinuous_000002.csv.gz"] = len(csv_rows)

    # 3. the flattened form (bp_coeff_0..54, e_bp_coeff_*) of real DR3 sources, FITS
    flat = Table.read(xp_data / "xp_continuous_first2000.fits")[:N_FLAT]
    flat["phot_g_mean_mag"] = np.linspace(12.0, 16.0, N_FLAT) * u.mag
    flat.write(folder / "xp_flat_000003.fits")
    files["xp_flat_000003.fits"] = N_FLAT

    # 4. Parquet (astropy's writer: fixed-size list columns, units in the metadata)
    Table(perturbed(examples, N_PARQUET, 4)).write(folder / "XpContinuous_000004.parquet")
    files["XpContinuous_000004.parquet"] = N_PARQUET
    return folder, files


def _csv_lines(table):
    import io
    buffer = io.StringIO()
    table.write(buffer, format="ascii.csv")
    return buffer.getvalue().splitlines()


@pytest.fixture(scope="module")
def corrupt(tmp_path_factory):
    """Three bad files: not Parquet, a cut-off gzip download, a table without XP columns."""
    folder = tmp_path_factory.mktemp("bad_files")
    (folder / "broken.parquet").write_bytes(b"PAR1 this is not a parquet file")
    giantfm.examples.load()[:10].write(folder / "full.ecsv")
    data = gzip.compress((folder / "full.ecsv").read_bytes())
    (folder / "full.ecsv").unlink()
    (folder / "cut_download.ecsv.gz").write_bytes(data[:len(data) // 2])
    giantfm.examples.load()[:5]["source_id", "phot_g_mean_mag"].write(folder / "no_xp.ecsv")
    return folder


def paths(inputs):
    folder, files = inputs
    return [folder / name for name in files]


def assert_outputs_exact(manifest, inputs, out_dir):
    """Every input done, its output with exactly its rows, in order, with units."""
    folder, files = inputs
    by_name = {os.path.basename(row["input"]): row for row in manifest}
    for name, n in files.items():
        row = by_name[name]
        assert row["status"] in ("done", "skipped"), (name, row["error"])
        assert row["rows_in"] == row["rows_out"] == n, name
        result = QTable.read(row["output"])
        assert len(result) == n
        assert result["teff"].unit == u.K and result["mass"].unit == u.solMass
        assert result["logg"].unit == u.dex(u.cm / u.s**2)
        assert int(np.count_nonzero(result["flag"])) == row["rows_flagged"]
    # no temporary file left behind by an interrupted writer
    assert not [p.name for p in out_dir.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------------- sequential

def test_sync_run_formats_and_exact_rows(inputs, corrupt, tmp_path):
    out = tmp_path / "out"
    files = paths(inputs) + sorted(corrupt.iterdir())
    manifest = scale.predict_files(files, out, client="sync", chunk_rows=16, progress=False)
    assert list(manifest["input"]) == [os.fspath(p.resolve()) for p in files]  # input order
    assert_outputs_exact(manifest[:4], inputs, out)

    # the failures are in the manifest with their reasons; the other files finished
    failed = {os.path.basename(r["input"]): r for r in manifest if r["status"] == "failed"}
    assert set(failed) == {"broken.parquet", "cut_download.ecsv.gz", "no_xp.ecsv"}
    assert "parquet" in failed["broken.parquet"]["error"]
    assert failed["broken.parquet"]["rows_in"] == -1  # nothing could be read
    assert "cut_download.ecsv.gz" in failed["cut_download.ecsv.gz"]["error"]
    assert "no XP coefficient columns" in failed["no_xp.ecsv"]["error"]
    assert failed["no_xp.ecsv"]["rows_in"] == 5 and failed["no_xp.ecsv"]["rows_out"] == -1
    assert not [p for p in out.iterdir() if p.stem in ("broken", "cut_download", "no_xp")]

    # the manifest file says the same, with totals
    data = json.loads((out / scale.MANIFEST_NAME).read_text())
    n_good = sum(inputs[1].values())
    assert data["totals"]["rows_out"] == n_good and data["totals"]["files_failed"] == 3
    assert data["totals"]["rows_in"] == n_good + 5
    assert len(scale.read_manifest(out)) == len(files)

    # the numbers are those of predict on the same file, masked rows in place
    archive = inputs[0] / "XpContinuous_000001.ecsv"
    expected = giantfm.predict(QTable.read(archive), progress=False)
    result = QTable.read(out / "XpContinuous_000001.parquet")
    np.testing.assert_array_equal(result["source_id"], expected["source_id"])
    assert result.colnames == expected.colnames
    for name in [c for c in LABEL_COLUMNS if c in expected.colnames]:
        np.testing.assert_array_equal(result[name].mask, expected[name].mask, err_msg=name)
        np.testing.assert_allclose(result[name].filled(np.nan).value,
                                   expected[name].filled(np.nan).value, rtol=1e-5, atol=1e-6,
                                   equal_nan=True, err_msg=name)
    for name in ("evstate", "reason"):
        if name in expected.colnames:
            np.testing.assert_array_equal(result[name], expected[name], err_msg=name)
    np.testing.assert_array_equal(result["flags"], expected["flags"])
    # the archive CSV (with a source without BP) keeps its rows and their order
    csv_result = QTable.read(out / "XpContinuous_000002.parquet")
    np.testing.assert_array_equal(csv_result["source_id"], np.arange(30) + 2 * 10**15)


def test_parquet_nulls_keep_their_rows(tmp_path):
    """Parquet from other tools: list columns with a missing cell, null magnitudes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    stars = giantfm.examples.load()[:6]
    columns = {"source_id": pa.array(np.asarray(stars["source_id"]))}
    for name in ("bp_coefficients", "bp_coefficient_errors", "rp_coefficients",
                 "rp_coefficient_errors"):
        cells = [list(row) for row in np.asarray(stars[name], dtype=float)]
        if name.startswith("rp"):
            cells[2] = None  # a source without an RP spectrum
        columns[name] = pa.array(cells, type=pa.list_(pa.float64()))
    g = list(np.asarray(stars["phot_g_mean_mag"].value, dtype=float))
    g[2] = g[4] = None   # 2 has no RP: no G can be synthesised; 4 has both bands: it can
    columns["phot_g_mean_mag"] = pa.array(g, type=pa.float64())
    pq.write_table(pa.table(columns), tmp_path / "other_tool.parquet")
    manifest = scale.predict_files(tmp_path / "other_tool.parquet", tmp_path / "o",
                                   client="sync", chunk_rows=4, progress=False)
    assert manifest["status"][0] == "done" and manifest["rows_out"][0] == 6
    result = QTable.read(manifest["output"][0])
    np.testing.assert_array_equal(result["source_id"], stars["source_id"])
    assert result["flag"][2] and "G magnitude" in result["reason"][2]
    assert result["teff"].mask[2] and not result["teff"].mask[0]
    assert not result["flag"][4] and "synthesised" in result["reason"][4]


def test_same_format_output(inputs, tmp_path):
    folder, files = inputs
    src = folder / "XpContinuous_000002.csv.gz"
    manifest = scale.predict_files(src, tmp_path, client="sync", output_format="same",
                                   progress=False)
    assert manifest["output"][0].endswith("XpContinuous_000002.csv")
    back = QTable.read(manifest["output"][0], format="ascii.ecsv")
    assert len(back) == files[src.name] and back["age"].unit == u.Gyr


def test_resume_after_interrupted_run(inputs, tmp_path):
    out = tmp_path / "out"
    files = paths(inputs)
    # a run interrupted after two files ...
    first = scale.predict_files(files[:2], out, client="sync", progress=False)
    assert list(first["status"]) == ["done", "done"]
    done_mtime = (out / "XpContinuous_000001.parquet").stat().st_mtime_ns
    # ... killed while writing the third (its temporary file stays) ...
    stale = out / ".xp_flat_000003.k1ll3d.parquet"
    stale.write_bytes(b"half a file")
    # ... and after writing the fourth but before the manifest recorded it
    (out / "XpContinuous_000004.parquet").write_bytes(b"output of unknown state")
    # and the second file's output damaged since (fewer rows than the manifest says)
    second = QTable.read(out / "XpContinuous_000002.parquet")
    second[:3].write(out / "XpContinuous_000002.parquet", overwrite=True)

    manifest = scale.predict_files(files, out, client="sync", progress=False)
    status = dict(zip((os.path.basename(p) for p in manifest["input"]), manifest["status"]))
    assert status == {"XpContinuous_000001.ecsv": "skipped", "XpContinuous_000002.csv.gz": "done",
                      "xp_flat_000003.fits": "done", "XpContinuous_000004.parquet": "done"}
    assert (out / "XpContinuous_000001.parquet").stat().st_mtime_ns == done_mtime  # not redone
    assert not stale.exists()
    assert_outputs_exact(manifest, inputs, out)
    # a finished run resumes to nothing; resume=False does everything again
    again = scale.predict_files(files, out, client="sync", progress=False)
    assert set(again["status"]) == {"skipped"}
    assert_outputs_exact(again, inputs, out)
    assert set(scale.predict_files(files[:1], out, client="sync", resume=False,
                                   progress=False)["status"]) == {"done"}


def test_changed_input_is_predicted_again(inputs, tmp_path):
    folder, _ = inputs
    src = tmp_path / "one.ecsv"
    giantfm.examples.load()[:4].write(src)
    assert scale.predict_files(src, tmp_path / "o", client="sync", progress=False)["status"][0] \
        == "done"
    giantfm.examples.load()[:6].write(src, overwrite=True)
    manifest = scale.predict_files(src, tmp_path / "o", client="sync", progress=False)
    assert manifest["status"][0] == "done" and manifest["rows_out"][0] == 6


def test_input_validation(inputs, tmp_path):
    folder, _ = inputs
    with pytest.raises(ValueError, match="matches no files"):
        scale.predict_files(str(tmp_path / "nothing_*.csv"), tmp_path, client="sync")
    with pytest.raises(ValueError, match="output_format"):
        scale.predict_files(folder, tmp_path, client="sync", output_format="hdf6")
    with pytest.raises(ValueError, match="chunk_rows"):
        scale.predict_files(folder, tmp_path, client="sync", chunk_rows=0)
    with pytest.raises(ValueError, match="n_workers"):
        scale.predict_files(folder, tmp_path, n_workers=-1)
    with pytest.raises(TypeError, match="client"):
        scale.predict_files(folder, tmp_path, client="cluster please")
    with pytest.raises(TypeError, match="model must be a model name or path"):
        scale.predict_files(folder, tmp_path, client="sync", model=object())
    with pytest.raises(TypeError, match="inputs"):
        scale.predict_files(42, tmp_path)
    with pytest.raises(ValueError, match="inputs is empty"):
        scale.predict_files([], tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for sub in "ab":
        giantfm.examples.load()[:2].write(tmp_path / sub / "same.ecsv")
    with pytest.raises(ValueError, match="would both write"):
        scale.predict_files(str(tmp_path / "*" / "same.ecsv"), tmp_path / "o", client="sync")
    with pytest.raises(NotADirectoryError, match="output_dir"):
        scale.predict_files(folder, tmp_path / "a" / "same.ecsv", client="sync")


def test_missing_and_unknown_files_are_failures(tmp_path):
    (tmp_path / "notes.txt").write_text("not a table")
    manifest = scale.predict_files([tmp_path / "gone.ecsv", tmp_path / "notes.txt"],
                                   tmp_path / "o", client="sync", progress=False)
    assert list(manifest["status"]) == ["failed", "failed"]
    assert "gone.ecsv" in manifest["error"][0]
    assert "extension" in manifest["error"][1] and ".ecsv" in manifest["error"][1]


def test_output_path():
    assert scale.output_path("/a/XpContinuous_1.csv.gz", "/o").as_posix() == \
        "/o/XpContinuous_1.parquet"
    assert scale.output_path("/a/b.fits", "/o", "same").as_posix() == "/o/b.fits"
    assert scale.prediction_units()["logg"] == "dex(cm / s2)"


# ---------------------------------------------------------------------------- LocalCluster

@pytest.fixture(scope="module")
def client():
    """One LocalCluster (2 worker processes, 1 thread each) for this module's cluster tests."""
    distributed = pytest.importorskip("distributed", reason="the cluster path needs "
                                      "dask.distributed (pip install 'giantfm[scale]')")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def _models_loaded():
    from giantfm import prediction
    return len(prediction._MODELS)


def test_local_cluster_multi_file_run(inputs, corrupt, client, tmp_path):
    out = tmp_path / "out"
    files = paths(inputs) + [corrupt / "broken.parquet"]
    manifest = scale.predict_files(files, out, client=client, chunk_rows=20, progress=True)
    assert_outputs_exact(manifest[:4], inputs, out)
    assert manifest["status"][4] == "failed" and "broken.parquet" in manifest["error"][4]
    assert (manifest["peak_rss_mb"][:4] > 0).all()
    # the model is loaded once per worker process, not once per task
    assert set(client.run(_models_loaded).values()) <= {0, 1}
    # a second run on the same workers reuses their models: resume=False redoes the work
    again = scale.predict_files(files[:4], out, client=client, resume=False, progress=False)
    assert set(again["status"]) == {"done"}
    assert set(client.run(_models_loaded).values()) <= {0, 1}


def _install_crash_once(marker):
    """On a worker: make the first prediction anywhere kill its worker process."""
    from giantfm.scale import files as worker_scale

    original = getattr(worker_scale, "_original_predict_chunk", worker_scale._predict_chunk)
    worker_scale._original_predict_chunk = original

    def crash_once(*args, **kwargs):
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return original(*args, **kwargs)
        os._exit(1)  # the worker dies mid-file, its temporary output half written

    worker_scale._predict_chunk = crash_once


def _uninstall_crash():
    from giantfm.scale import files as worker_scale
    if hasattr(worker_scale, "_original_predict_chunk"):
        worker_scale._predict_chunk = worker_scale._original_predict_chunk


def test_killed_worker_loses_no_rows(inputs, client, tmp_path):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    marker = tmp_path / "crashed"
    client.run(_install_crash_once, os.fspath(marker))
    out = tmp_path / "out"
    try:
        with warnings.catch_warnings():
            # distributed notes the lost worker (its nanny restarts it) when it reconnects
            warnings.filterwarnings("ignore", message=".*[Ww]orker.*", category=RuntimeWarning)
            manifest = scale.predict_files(paths(inputs), out, client=client, progress=False)
    finally:
        client.run(_uninstall_crash)
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert marker.exists()  # a worker did die
    assert_outputs_exact(manifest, inputs, out)  # its file was redone elsewhere, exactly


# ---------------------------------------------------------------------------- lsdb

@pytest.fixture(scope="module")
def lsdb():
    pandas = pytest.importorskip("pandas", reason="predict_catalog needs lsdb (and pandas)")
    with warnings.catch_warnings():
        # lsdb 0.11 sets a pandas option that pandas 3.1 deprecates (Pandas4Warning) on import
        warnings.simplefilter("ignore", pandas.errors.Pandas4Warning)
        return pytest.importorskip("lsdb", reason="predict_catalog needs lsdb")


def xp_frame(seed=7):
    """Real example stars as a DataFrame in Gaia archive names, with sky positions."""
    import pandas as pd

    stars = giantfm.examples.load()
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"source_id": np.asarray(stars["source_id"]),
                          # one patch of sky: a few partitions, not one per star
                          "ra": rng.uniform(40, 50, len(stars)),
                          "dec": rng.uniform(-5, 5, len(stars))})
    for name in ("bp_coefficients", "bp_coefficient_errors", "rp_coefficients",
                 "rp_coefficient_errors"):
        frame[name] = list(np.asarray(stars[name], dtype=float))
    for name in ("phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag", "j_m", "h_m", "ks_m"):
        frame[name] = np.asarray(stars[name].value, dtype=float)
    frame.loc[3, "phot_g_mean_mag"] = np.nan  # a star that cannot be predicted
    return stars, frame


# pandas 3.1 deprecates calls inside lsdb/nested-pandas 0.11 (set_index(inplace=), mode
# options): Pandas4Warning, raised from their code, not ours.
@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")
@pytest.mark.parametrize("flattened", [False, True])
def test_predict_catalog_equals_predict(lsdb, tmp_path, flattened):
    import dask

    stars, frame = xp_frame()
    if flattened:  # the flattened bp_coeff_0..54 layout of some HATS Gaia XP catalogues
        import pandas as pd

        flat = {}
        for band in ("bp", "rp"):
            values = np.stack(frame.pop(f"{band}_coefficients").to_numpy())
            errors = np.stack(frame.pop(f"{band}_coefficient_errors").to_numpy())
            for i in range(values.shape[1]):
                flat[f"{band}_coeff_{i}"] = values[:, i]
                flat[f"e_{band}_coeff_{i}"] = errors[:, i]
        frame = pd.concat([frame, pd.DataFrame(flat, index=frame.index)], axis=1)
    catalog = lsdb.from_dataframe(frame, ra_column="ra", dec_column="dec", lowest_order=0,
                                  highest_order=3, partition_rows=10)
    assert catalog.npartitions > 1
    lazy = scale.predict_catalog(catalog, device="cpu")
    assert isinstance(lazy, lsdb.Catalog)  # lazy: an lsdb catalogue, not a frame
    with dask.config.set(scheduler="sync"):  # in this process: its model is already loaded
        result = lazy.compute().set_index("source_id").loc[np.asarray(stars["source_id"])]
    assert len(result) == len(stars)
    table = QTable(stars)
    table["phot_g_mean_mag"][3] = np.nan * u.mag
    expected = giantfm.predict(table, progress=False)
    for name in LABEL_COLUMNS:
        # a column the model does not answer (p_rc of a model made before it) is all missing
        want = (expected[name].filled(np.nan).value if name in expected.colnames
                else np.full(len(expected), np.nan))
        np.testing.assert_allclose(np.asarray(result[name], dtype=float), want, rtol=1e-5,
                                   atol=1e-6, equal_nan=True, err_msg=name)
    state = expected["evstate"] if "evstate" in expected.colnames else \
        np.ma.masked_all(len(expected), dtype="U3")
    np.testing.assert_array_equal(result["evstate"].isna(), np.ma.getmaskarray(state))
    np.testing.assert_array_equal(result["evstate"].fillna(""), state.filled(""))
    np.testing.assert_array_equal(np.asarray(result["flag"], dtype=bool), expected["flag"])
    np.testing.assert_array_equal(np.asarray(result["reason"], dtype=str), expected["reason"])
    np.testing.assert_array_equal(np.asarray(result["flags"], dtype=np.int64), expected["flags"])
    assert "synthesised" in result["reason"].iloc[3]   # no G: synthesised, as predict does

    if not flattened:  # lsdb's own tools take it from here: write HATS, read it back
        with dask.config.set(scheduler="sync"):
            lazy.write_catalog(tmp_path / "giants")
            back = lsdb.open_catalog(tmp_path / "giants").compute()
        assert len(back) == len(stars) and "age_err" in back.columns


@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")
def test_predict_catalog_validation(lsdb):
    _, frame = xp_frame()
    with pytest.raises(TypeError, match="lsdb.Catalog"):
        scale.predict_catalog(frame)
    # Gaia's XP catalogues carry no photometry: accepted, G, BP and RP are synthesised
    catalog = lsdb.from_dataframe(frame.drop(columns=["phot_g_mean_mag"]), ra_column="ra",
                                  dec_column="dec")
    assert "flags" in scale.predict_catalog(catalog).columns
    catalog = lsdb.from_dataframe(frame.drop(columns=["bp_coefficients"]), ra_column="ra",
                                  dec_column="dec")
    with pytest.raises(ValueError, match="coefficient columns"):
        scale.predict_catalog(catalog)
    frame["teff"] = 4500.0
    catalog = lsdb.from_dataframe(frame, ra_column="ra", dec_column="dec")
    with pytest.raises(ValueError, match="prefix"):
        scale.predict_catalog(catalog)
    assert "giantfm_teff" in scale.predict_catalog(catalog, prefix="giantfm_").columns


def test_unguarded_script_is_told_what_to_add(tmp_path):
    """A script that calls predict_files at module level (no __main__ guard) is told how
    to fix it, instead of dask's "Nanny failed to start"."""
    import subprocess
    import sys
    import textwrap

    pytest.importorskip("distributed", reason="the LocalCluster needs dask.distributed")
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(f"""
        import giantfm
        giantfm.write_table(giantfm.examples.load()[:3], {str(tmp_path / 'in.ecsv')!r})
        giantfm.predict_files({str(tmp_path / 'in.ecsv')!r}, {str(tmp_path / 'out')!r},
                              n_workers=1, progress=False)
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode != 0
    assert 'if __name__ == "__main__":' in done.stderr and "client='sync'" in done.stderr
