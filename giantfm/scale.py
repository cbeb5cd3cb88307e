"""Predictions for all of Gaia: many files on a Dask cluster, or a HATS catalogue with lsdb.

Two entry points, both built on existing engines rather than home-made
batching:

* `predict_files` -- a glob or list of files in the formats the Gaia archive
  distributes (``XP_CONTINUOUS`` ECSV/CSV, gzipped or not), FITS, VOTable,
  HDF5 or Parquet -> one output file per input, on a `dask.distributed`
  cluster (a `~distributed.LocalCluster` by default, any ``Client`` you pass,
  GPU workers when present) or sequentially in this process
  (``client='sync'``). Outputs are written atomically, a JSON manifest
  accounts for every input and every row, and a rerun resumes where an
  interrupted one stopped.
* `predict_catalog` -- an `lsdb` catalogue (HATS, HEALPix-partitioned Parquet)
  with Gaia XP coefficient and photometry columns -> a lazy `lsdb` catalogue
  with the prediction columns added, to cross-match, filter and write with
  lsdb's own tools (``write_catalog``, formerly ``to_hats``).

Memory is bounded: a worker holds one input file at a time (Parquet inputs
only one block of ``chunk_rows`` rows, read row group by row group), predicts
it ``chunk_rows`` rows at a time and streams Parquet outputs chunk by chunk.
The model is loaded once per worker process (`giantfm.prediction.get_model`
caches it there) and reused by every task that worker runs.

dask, distributed, lsdb and pyarrow are optional (``pip install
'giantfm[scale]'``) and imported only inside the functions that use them.
"""
import glob
import json
import os
import resource
import socket
import sys
import time
import uuid
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .utils import atomic_write

__all__ = ["predict_files", "predict_catalog", "read_manifest", "output_path",
           "MANIFEST_NAME", "PREDICTION_COLUMNS", "prediction_units"]

#: Name of the manifest `predict_files` keeps in its output directory.
MANIFEST_NAME = "giantfm_manifest.json"

#: The columns `predict` adds for each star (besides ``source_id``), in order.
PREDICTION_COLUMNS = tuple(c for name in ("teff", "logg", "m_h", "alpha_m", "mass", "age")
                           for c in (name, f"{name}_err")) + ("flag", "reason")

#: Rows per `predict` call inside a task (and per Parquet row-group block read).
DEFAULT_CHUNK_ROWS = 50_000

# Manifest statuses: 'done' (predicted in this run), 'skipped' (done by an earlier
# run and reused on resume), 'failed' (with the reason in 'error').
_FINISHED = ("done", "skipped")

_MANIFEST_FIELDS = ("input", "output", "status", "rows_in", "rows_out", "rows_flagged",
                    "seconds", "error", "input_size", "input_mtime", "worker", "peak_rss_mb")

# Seconds between manifest rewrites while a run goes on (always rewritten at the end).
_MANIFEST_INTERVAL = 5.0


def prediction_units():
    """The unit of each prediction column, as strings (``flag`` and ``reason`` have none).

    Returns
    -------
    dict
        Column name -> unit string, e.g. ``{'teff': 'K', 'logg': 'dex(cm / s2)', ...}``:
        the units of the plain float columns `predict_catalog` adds.
    """
    from . import vocab

    units = {}
    for column in PREDICTION_COLUMNS[:-2]:
        name = column[:-4] if column.endswith("_err") else column
        units[column] = vocab.VOCABULARY[vocab.token_id(name)].unit.to_string()
    return units


# ---------------------------------------------------------------------------- inputs

def _expand_inputs(inputs):
    """A glob, path, directory or a list of them -> list of Paths (order kept, unique)."""
    if isinstance(inputs, (str, os.PathLike)):
        items = [inputs]
    elif isinstance(inputs, (list, tuple)):
        items = list(inputs)
    else:
        raise TypeError(f"inputs must be a glob pattern, a path or a list of them, "
                        f"got {type(inputs).__name__}")
    if not items:
        raise ValueError("inputs is empty: give a glob pattern or a list of files")
    from .cli import _FORMATS  # the formats giantfm reads (cli is light)

    paths = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"inputs must hold paths or glob patterns, got "
                            f"{type(item).__name__} ({item!r})")
        text = os.fspath(item)
        if glob.has_magic(text):
            matched = sorted(glob.glob(text))
            if not matched:
                raise ValueError(f"inputs: the pattern {text!r} matches no files")
            paths.extend(Path(m) for m in matched if not Path(m).is_dir())
        elif Path(text).is_dir():
            found = sorted(p for p in Path(text).iterdir()
                           if p.is_file() and _format_suffix(p) in _FORMATS)
            if not found:
                raise ValueError(f"inputs: the directory {text!r} holds no table files "
                                 f"({', '.join(sorted(_FORMATS))}, optionally + .gz)")
            paths.extend(found)
        else:
            paths.append(Path(text))  # a missing file becomes a manifest failure
    unique = list(dict.fromkeys(p.resolve() for p in paths))
    return unique


def _format_suffix(path):
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def output_path(input_path, output_dir, output_format="parquet"):
    """Where `predict_files` writes the predictions of ``input_path``.

    Parameters
    ----------
    input_path, output_dir : str or path-like
    output_format : {'parquet', 'same'}
        ``'parquet'``: ``<name>.parquet``; ``'same'``: the input's extension
        (without ``.gz``), e.g. ``XpContinuous_0001.csv.gz`` ->
        ``XpContinuous_0001.csv``.

    Returns
    -------
    `~pathlib.Path`
    """
    name = Path(input_path).name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    if output_format == "parquet" or not ext:
        return Path(output_dir) / f"{stem}.parquet"
    return Path(output_dir) / f"{stem}.{ext}"


# ---------------------------------------------------------------------------- reading

def _arrow_to_table(batch):
    """A pyarrow RecordBatch/Table -> astropy Table (list columns as 2-D or object arrays).

    Columns ``X.mask`` that astropy's Parquet writer adds for masked columns
    are applied to ``X`` (its stored values under the mask are fill values).
    """
    import pyarrow as pa
    from astropy.table import MaskedColumn, Table

    table = Table()
    names = list(batch.schema.names)
    for name in names:
        if name.endswith(".mask") and name[:-5] in names:
            continue
        column = batch.column(name)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        kind = column.type
        nulls = np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        if pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind) \
                or pa.types.is_large_list(kind):
            if not nulls.any() and len(column) and column.offset == 0:
                import pyarrow.compute as pc

                lengths = pc.list_value_length(column)
                size = pc.min(lengths).as_py()
                if size == pc.max(lengths).as_py() and size:  # the common case: fast
                    values = column.flatten().to_numpy(zero_copy_only=False)
                    table[name] = np.asarray(values, dtype=float).reshape(len(column), size)
                    continue
            cells = column.to_pylist()
            sizes = {len(c) for c in cells if c is not None}
            if len(sizes) == 1 and not nulls.any():
                values = np.array(cells, dtype=float)
            else:
                values = np.empty(len(cells), dtype=object)
                values[:] = [None if c is None else np.asarray(c, dtype=float) for c in cells]
            table[name] = values
            continue
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            values = np.array(["" if c is None else c for c in column.to_pylist()], dtype=str)
        elif pa.types.is_floating(kind) or pa.types.is_integer(kind) \
                or pa.types.is_boolean(kind):
            filled = column.fill_null(0) if nulls.any() else column
            values = np.asarray(filled.to_numpy(zero_copy_only=False))
        else:
            values = np.asarray(column.to_pylist(), dtype=object)
        mask = nulls
        if f"{name}.mask" in names:
            mask = mask | np.asarray(batch.column(f"{name}.mask").to_numpy(
                zero_copy_only=False), dtype=bool)
        table[name] = MaskedColumn(values, mask=mask) if mask.any() else values
    return table


def _parquet_units(path):
    """Column units recorded by astropy in a Parquet file's metadata (may be empty)."""
    import pyarrow.parquet as pq
    from astropy.table import meta

    md = pq.read_schema(path).metadata or {}
    text = md.get(b"table_meta_yaml")
    if not text:
        return {}
    try:
        header = meta.get_header_from_yaml(text.decode("utf-8").splitlines())
    except Exception:  # foreign or damaged metadata: the values still read
        return {}
    return {c["name"]: c["unit"] for c in header.get("datatype", []) if c.get("unit")}


def _iter_chunks(path, chunk_rows):
    """Yield astropy Tables of at most ``chunk_rows`` rows, in file order."""
    if _format_suffix(path) in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            reader = pq.ParquetFile(path)
        except Exception as exc:
            raise ValueError(f"cannot read {os.fspath(path)!r} as parquet: "
                             f"{type(exc).__name__}: {exc}") from exc
        units = _parquet_units(path)
        for batch in reader.iter_batches(batch_size=chunk_rows):
            table = _arrow_to_table(batch)
            for name, unit in units.items():
                if name in table.colnames:
                    table[name].unit = unit
            yield table
        return
    from astropy.utils.exceptions import AstropyWarning

    from .cli import read_table

    with warnings.catch_warnings():
        # astropy's readers warn about harmless header details of real files (units
        # outside the VOUnit standard, FITS cards); the values are read regardless
        warnings.simplefilter("ignore", category=AstropyWarning)
        table = read_table(path)
    for start in range(0, len(table), chunk_rows):
        yield table[start:start + chunk_rows]


# ---------------------------------------------------------------------------- writing

class _ParquetStream:
    """Append prediction QTables to one Parquet file that astropy reads back with units.

    astropy's own Parquet writer takes a whole table, adds ``X.mask`` columns
    only when something is masked and records string lengths from the data
    seen; here every chunk gets the same columns (all masks present) and the
    string lengths are recorded at the end, so the file reads back exactly as
    if it had been written in one go.
    """

    def __init__(self, path):
        self.path = path
        self.writer = None
        self.strlen = {}
        self.rows = 0

    @staticmethod
    def _encode(table):
        from astropy.table import serialize
        from astropy.utils.data_info import serialize_context_as

        with serialize_context_as("parquet"):
            return serialize.represent_mixins_as_columns(table)

    def write(self, result):
        import pyarrow as pa
        import pyarrow.parquet as pq
        from astropy.table import meta

        if self.writer is None:
            # a one-row template with every column masked fixes the serialized layout
            template = result[:1].copy()
            for name in template.colnames:
                if hasattr(template[name], "mask") and name not in ("flag", "reason"):
                    template[name].mask = True
            encoded = self._encode(template)
            self.columns = encoded.colnames
            yaml = "\n".join(meta.get_yaml_from_table(encoded))
            fields = [(name, pa.from_numpy_dtype(encoded[name].dtype.type)
                       if encoded[name].dtype.kind != "U" else pa.string())
                      for name in self.columns]
            encoded = self._encode(result)
            # string lengths as astropy records them; a longer string in a later
            # chunk makes close() rewrite the metadata (rare: reasons are few and short)
            self.declared = {name: max(1, encoded[name].dtype.itemsize // 4)
                             for name in self.columns
                             if name in encoded.colnames and encoded[name].dtype.kind == "U"}
            metadata = {b"table_meta_yaml": yaml.encode("utf-8")}
            metadata.update(self._lengths(self.declared))
            self.schema = pa.schema(fields, metadata=metadata)
            self.writer = pq.ParquetWriter(self.path, self.schema, version="2.4")
        else:
            encoded = self._encode(result)
        arrays = []
        for field in self.schema:
            name = field.name
            if name in encoded.colnames:
                values = np.asarray(encoded[name])
            elif name.endswith(".mask"):  # nothing masked in this chunk
                values = np.zeros(len(result), dtype=bool)
            else:
                raise RuntimeError(f"internal error: column {name!r} missing from a chunk")
            if values.dtype.kind == "U":
                self.strlen[name] = max(self.strlen.get(name, 1), values.dtype.itemsize // 4)
                arrays.append(pa.array(values.tolist(), type=pa.string()))
            else:
                arrays.append(pa.array(values.astype(values.dtype.newbyteorder("<"),
                                                     copy=False), type=field.type))
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.rows += len(result)

    @staticmethod
    def _lengths(lengths):
        return {f"table::len::{name}".encode("utf-8"): str(n).encode("utf-8")
                for name, n in lengths.items()}

    def close(self):
        import pyarrow.parquet as pq

        if self.writer is None:
            return
        self.writer.close()
        longer = {name: n for name, n in self.strlen.items() if n > self.declared.get(name, 0)}
        if not longer:
            return
        # rewrite row group by row group with the final lengths (memory stays bounded)
        metadata = dict(self.schema.metadata)
        metadata.update(self._lengths({**self.declared, **longer}))
        schema = self.schema.with_metadata(metadata)
        fixed = f"{self.path}.strlen"
        try:
            source = pq.ParquetFile(self.path)
            with pq.ParquetWriter(fixed, schema, version="2.4") as writer:
                for group in range(source.num_row_groups):
                    writer.write_table(source.read_row_group(group).replace_schema_metadata(
                        metadata))
            os.replace(fixed, self.path)
        finally:
            Path(fixed).unlink(missing_ok=True)


def _write_same_format(results, path):
    from astropy.table import vstack

    from .cli import write_table

    table = results[0] if len(results) == 1 else vstack(results, metadata_conflicts="silent")
    write_table(table, path, overwrite=True)


def _empty_result(rows):
    """The result of zero rows: an empty QTable with the prediction columns."""
    from astropy.table import QTable

    units = prediction_units()
    result = QTable()
    for name in PREDICTION_COLUMNS[:-2]:
        result[name] = np.zeros(rows) * _unit(units[name])
    result["flag"] = np.zeros(rows, dtype=bool)
    result["reason"] = np.zeros(rows, dtype="U1")
    return result


def _unit(text):
    from astropy import units as u
    return u.Unit(text) if not text.startswith("dex") else u.dex(u.Unit(text[4:-1]))


# ---------------------------------------------------------------------------- one file

def _predict_chunk(table, device, batch_size, model):
    """Predict one block of rows (the unit of work inside a task)."""
    from .prediction import predict

    kwargs = {} if model is None else {"model": model}
    return predict(table, device=device, batch_size=batch_size, progress=False, **kwargs)


def _process_file(job):
    """Read, predict and write one input file; returns its manifest entry.

    Runs on a worker. Never raises for a problem with the file: the entry's
    status is then 'failed' with the reason.
    """
    start = time.perf_counter()
    path, out = Path(job["input"]), Path(job["output"])
    entry = {"input": os.fspath(path), "output": os.fspath(out), "status": "failed",
             "rows_in": None, "rows_out": None, "rows_flagged": None, "error": "",
             "worker": f"{socket.gethostname()}:{os.getpid()}"}
    try:
        stat = path.stat()
        entry["input_size"], entry["input_mtime"] = stat.st_size, stat.st_mtime
    except OSError as exc:
        entry["error"] = f"input file {os.fspath(path)!r} cannot be read: {exc.strerror}"
        return _finish(entry, start)
    counts = {"in": 0, "out": 0, "flagged": 0}

    def run(tmp):
        stream = _ParquetStream(tmp) if job["output_format"] == "parquet" else None
        results = []
        try:
            for chunk in _iter_chunks(path, job["chunk_rows"]):
                counts["in"] += len(chunk)
                if len(chunk) == 0:
                    continue
                result = _predict_chunk(chunk, job["device"], job["batch_size"], job["model"])
                if len(result) != len(chunk):  # the contract of predict; never misalign
                    raise RuntimeError(f"predict returned {len(result)} rows for "
                                       f"{len(chunk)} input rows")
                counts["out"] += len(result)
                counts["flagged"] += int(np.count_nonzero(np.asarray(result["flag"])))
                if stream is not None:
                    stream.write(result)
                else:
                    results.append(result)
            if counts["in"] == 0:
                raise ValueError(f"input file {os.fspath(path)!r} has no rows")
        finally:
            if stream is not None:
                stream.close()
        if stream is None:
            _write_same_format(results, tmp)

    try:
        atomic_write(out, run)
    except MemoryError:
        entry["error"] = "out of memory (lower chunk_rows or use fewer workers per machine)"
    except Exception as exc:  # any problem with this file fails this file only
        entry["error"] = _reason(exc)
    else:
        entry["status"] = "done"
    entry["rows_in"] = counts["in"] if counts["in"] or entry["status"] == "done" else None
    if entry["status"] == "done":
        entry["rows_out"], entry["rows_flagged"] = counts["out"], counts["flagged"]
    return _finish(entry, start)


def _reason(exc):
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return f"{type(exc).__name__}: {message}"


def _finish(entry, start):
    entry["seconds"] = round(time.perf_counter() - start, 3)
    # peak resident memory of this worker process so far (Linux: KiB; macOS: bytes)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    entry["peak_rss_mb"] = round(rss / (1024 ** 2 if sys.platform == "darwin" else 1024), 1)
    return entry


# ---------------------------------------------------------------------------- manifest

def read_manifest(output_dir):
    """The manifest of a `predict_files` run as an astropy Table (one row per input).

    Parameters
    ----------
    output_dir : str or path-like
        The output directory of the run.

    Returns
    -------
    `~astropy.table.Table`
        Columns ``input, output, status, rows_in, rows_out, rows_flagged,
        seconds, error, ...``; ``meta`` holds the run's settings and totals.
        Missing counts (a file that could not be read) are -1.

    Raises
    ------
    FileNotFoundError
        No manifest in ``output_dir``.
    """
    path = Path(output_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no manifest {MANIFEST_NAME!r} in {os.fspath(output_dir)!r}")
    data = json.loads(path.read_text(encoding="utf-8"))
    return _manifest_table(list(data["inputs"].values()),
                           {k: v for k, v in data.items() if k != "inputs"})


def _manifest_table(entries, meta):
    from astropy.table import Table

    table = Table(meta=meta)
    for name in _MANIFEST_FIELDS:
        values = [e.get(name) for e in entries]
        if name in ("rows_in", "rows_out", "rows_flagged", "input_size"):
            table[name] = np.array([-1 if v is None else v for v in values], dtype=np.int64)
        elif name in ("seconds", "input_mtime", "peak_rss_mb"):
            table[name] = np.array([np.nan if v is None else v for v in values], dtype=float)
        else:
            table[name] = np.array(["" if v is None else str(v) for v in values], dtype=str)
    return table


def _load_previous(path):
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data
    except (OSError, ValueError) as exc:
        warnings.warn(f"ignoring the unreadable manifest {os.fspath(path)!r} ({exc}): "
                      "every input is predicted again", RuntimeWarning, stacklevel=3)
        return {}


def _can_skip(entry, path, out):
    """Whether an earlier run's entry shows ``path`` finished, with its output intact."""
    if not entry or entry.get("status") not in _FINISHED or not out.is_file():
        return False
    try:
        stat = path.stat()
    except OSError:
        return False
    if entry.get("input_size") != stat.st_size or entry.get("input_mtime") != stat.st_mtime:
        return False  # the input changed since
    if entry.get("rows_in") != entry.get("rows_out"):
        return False
    if out.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
            return pq.ParquetFile(out).metadata.num_rows == entry.get("rows_out")
        except Exception:  # a damaged output: predict again
            return False
    return True


class _Manifest:
    """The run's manifest, rewritten atomically (at most every few seconds, and at the end)."""

    def __init__(self, path, header):
        self.path, self.header = path, header
        self.entries = {}
        self.last = 0.0

    def record(self, entry, force=False):
        self.entries[entry["input"]] = entry
        self.save(force=force)

    def totals(self):
        entries = self.entries.values()
        count = {s: sum(e["status"] == s for e in entries) for s in ("done", "skipped", "failed")}
        return {"files": len(self.entries), **{f"files_{k}": v for k, v in count.items()},
                "rows_in": sum(e.get("rows_in") or 0 for e in entries),
                "rows_out": sum(e.get("rows_out") or 0 for e in entries),
                "rows_flagged": sum(e.get("rows_flagged") or 0 for e in entries)}

    def save(self, force=True):
        now = time.monotonic()
        if not force and now - self.last < _MANIFEST_INTERVAL:
            return
        self.last = now
        data = dict(self.header, updated=_now(), totals=self.totals(), inputs=self.entries)
        text = json.dumps(data, indent=1)

        def write(tmp):
            Path(tmp).write_text(text, encoding="utf-8")
        atomic_write(self.path, write)


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _remove_stale_temporaries(out):
    """Remove temporary files that a killed writer of ``out`` left (see `atomic_write`)."""
    for stale in out.parent.glob(f".{glob.escape(out.stem)}.*{out.suffix}"):
        stale.unlink(missing_ok=True)


# ---------------------------------------------------------------------------- predict_files

def predict_files(inputs, output_dir, *, client=None, n_workers=None, device=None,
                  batch_size=None, resume=True, output_format="parquet",
                  chunk_rows=DEFAULT_CHUNK_ROWS, progress=True, model=None):
    """Predict labels, masses and ages for every star of many files, one output per input.

    Parameters
    ----------
    inputs : str, path-like or list of them
        A glob pattern (``'gaia/XpContinuousMeanSpectrum_*.csv.gz'``), a
        file, a directory (its table files) or a list of these. Formats: the
        Gaia archive's ``XP_CONTINUOUS`` ECSV / CSV / VOTable products,
        GaiaXPy-style CSV, flattened ``bp_coeff_*`` tables, FITS, HDF5,
        Parquet; ``.gz`` where astropy reads it (see ``giantfm predict``).
        Each file needs the XP coefficients and ``phot_g_mean_mag`` (and,
        when present, the other magnitudes) as `giantfm.predict` does.
    output_dir : str or path-like
        Directory for the outputs and the manifest (`MANIFEST_NAME`); made
        if missing.
    client : `distributed.Client`, None or 'sync', optional
        Where to run: a ``Client`` of any cluster (local, SLURM/PBS through
        dask-jobqueue, Kubernetes, GPU workers through dask-cuda); None (default)
        starts a `~distributed.LocalCluster` of ``n_workers`` processes with
        one thread each and closes it at the end; ``'sync'`` runs the files
        one after another in this process, without dask.
    n_workers : int, optional
        Workers of the LocalCluster started when ``client`` is None; default
        the number of CPU cores, at most 8.
    device : str, optional
        Device of every worker ('cpu', 'cuda', ...); default
        ``giantfm.conf.device`` ('auto': a worker uses its GPU when it has one).
    batch_size : int, optional
        Stars per network call (see `giantfm.predict`).
    resume : bool, optional
        Skip inputs that an earlier run into ``output_dir`` finished: the
        manifest says done, the output exists with as many rows and the
        input's size and modification time are unchanged (default True).
        False predicts everything again.
    output_format : {'parquet', 'same'}, optional
        'parquet' (default): ``<name>.parquet`` with units and table meta in
        astropy's metadata (``QTable.read`` restores units and masks;
        pandas/pyarrow read the plain values and ``<col>.mask`` columns);
        'same': the input's format (``.csv`` as ECSV with commas).
    chunk_rows : int, optional
        Rows predicted (and, for Parquet inputs, read) at a time inside a
        file; bounds a worker's memory together with the file size.
    progress : bool, optional
        A progress bar over files (needs tqdm; default True).
    model : str or path-like, optional
        A model name or path (default the bundled model); loaded once per
        worker process.

    Returns
    -------
    `~astropy.table.Table`
        The manifest: one row per input with ``input``, ``output``,
        ``status`` ('done', 'skipped' -- finished by an earlier run -- or
        'failed'), ``rows_in``, ``rows_out``, ``rows_flagged``, ``seconds``,
        ``error`` (the reason of a failure), ``worker`` and ``peak_rss_mb``
        (the worker's peak memory); ``meta['totals']`` sums them. The same
        is in ``output_dir/giantfm_manifest.json``. For a done file
        ``rows_out == rows_in``, every input row; a failed file writes no
        output (``rows_out`` -1) and ``rows_in`` is the rows read before the
        failure (-1 when it could not be read at all).

    Notes
    -----
    dask starts its worker processes by spawning Python afresh, so a script
    that calls this with ``client=None`` (or makes a LocalCluster) must do so
    under ``if __name__ == "__main__":``. Workers need giantfm (and its
    model) installed; each loads the model once, on its first file.

    Raises
    ------
    ValueError, TypeError
        Bad arguments, a pattern that matches nothing, two inputs that
        would write the same output. A file that cannot be read or
        predicted is not raised: it is a 'failed' row of the manifest while
        the other files go on.
    """
    paths = _expand_inputs(inputs)
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"output_dir {os.fspath(output_dir)!r} is not a directory")
    if output_format not in ("parquet", "same"):
        raise ValueError(f"output_format must be 'parquet' or 'same', got {output_format!r}")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) \
            or chunk_rows <= 0:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    if n_workers is not None and (isinstance(n_workers, bool) or
                                  not isinstance(n_workers, (int, np.integer)) or n_workers <= 0):
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise TypeError("model must be a model name or path (each worker loads it once), "
                        f"got {type(model).__name__}")
    if device is not None and not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda', got {device!r}")
    if batch_size is not None:
        from .prediction import _batch_size
        _batch_size(batch_size)  # raises a clear ValueError
    if output_format == "parquet":
        _require("pyarrow", "Parquet outputs")
    if not (client is None or client == "sync" or _is_client(client)):
        raise TypeError(f"client must be a distributed.Client, None (a LocalCluster) or 'sync', "
                        f"got {client!r}")

    jobs, seen = [], {}
    for path in paths:
        out = output_path(path, output_dir, output_format).resolve()
        if out in seen:
            raise ValueError(f"inputs {os.fspath(seen[out])!r} and {os.fspath(path)!r} would both "
                             f"write {os.fspath(out)!r}: give files with distinct names, or "
                             "run them into different output directories")
        seen[out] = path
        jobs.append({"input": os.fspath(path), "output": os.fspath(out), "device": device,
                     "batch_size": batch_size, "model": None if model is None else
                     os.fspath(model), "chunk_rows": int(chunk_rows),
                     "output_format": output_format})
    output_dir.mkdir(parents=True, exist_ok=True)

    manifest_path = output_dir / MANIFEST_NAME
    header = {"giantfm_version": _version(), "model": "bundled" if model is None else
              os.fspath(model), "output_format": output_format, "created": _now()}
    previous = _load_previous(manifest_path) if resume else {}
    if previous and (previous.get("model") != header["model"]
                     or previous.get("output_format") != output_format):
        previous = {}  # another model or format: nothing of that run can be reused
    if previous.get("created"):
        header["created"] = previous["created"]
    manifest = _Manifest(manifest_path, header)
    old = previous.get("inputs", {})
    todo = []
    for job in jobs:
        entry = old.get(job["input"])
        if resume and _can_skip(entry, Path(job["input"]), Path(job["output"])):
            manifest.entries[job["input"]] = dict(entry, status="skipped")
        else:
            _remove_stale_temporaries(Path(job["output"]))
            todo.append(job)
    # largest first: the long files start early, the short ones fill the gaps
    todo.sort(key=lambda job: -_size(job["input"]))
    manifest.save()

    try:
        if todo:
            if client == "sync":
                _run_sync(todo, manifest, progress)
            else:
                _run_distributed(todo, manifest, client, n_workers, progress)
    finally:
        manifest.save()
        for job in todo:
            _remove_stale_temporaries(Path(job["output"]))
    ordered = [manifest.entries[job["input"]] for job in jobs if job["input"] in manifest.entries]
    return _manifest_table(ordered, dict(header, totals=manifest.totals()))


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _version():
    from . import __version__
    return __version__


def _require(module, what):
    import importlib.util
    if importlib.util.find_spec(module) is None:
        raise ImportError(f"{what} need the package {module!r}: pip install 'giantfm[scale]'")


def _is_client(client):
    try:
        from distributed import Client
    except ImportError:
        return False
    return isinstance(client, Client)


def _bar(progress, total):
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="file", desc="giantfm predict_files", file=sys.stderr)


def _tick(bar, entry):
    if bar is not None:
        bar.update(1)
        if entry.get("status") == "failed":
            bar.set_postfix_str(f"failed: {Path(entry['input']).name}")


def _run_sync(jobs, manifest, progress):
    bar = _bar(progress, len(jobs))
    try:
        for job in jobs:
            entry = _process_file(job)
            manifest.record(entry)
            _tick(bar, entry)
    finally:
        if bar is not None:
            bar.close()


def _run_distributed(jobs, manifest, client, n_workers, progress):
    _require("distributed", "predict_files on a cluster (client other than 'sync')")
    from distributed import Client, LocalCluster, as_completed

    own = client is None
    if own:
        workers = n_workers or max(1, min(os.cpu_count() or 1, 8))
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    futures = {}
    bar = _bar(progress, len(jobs))
    try:
        for job in jobs:
            # priority: larger files first; pure=False: a rerun is real work, not a cache hit
            future = client.submit(_process_file, job, pure=False,
                                   key=f"giantfm-{Path(job['input']).name}-{uuid.uuid4().hex}",
                                   priority=_size(job["input"]))
            futures[future] = job
        for future in as_completed(list(futures)):
            job = futures.pop(future)
            if future.status == "finished":
                entry = future.result()
            else:  # the worker died repeatedly (KilledWorker) or the task was cancelled
                exc = future.exception() if future.status == "error" else None
                entry = {"input": job["input"], "output": job["output"], "status": "failed",
                         "rows_in": None, "rows_out": None, "rows_flagged": None,
                         "seconds": None, "error": f"worker failure: "
                         f"{_reason(exc) if exc else future.status}"}
            manifest.record(entry)
            _tick(bar, entry)
            future.release()
    finally:
        if bar is not None:
            bar.close()
        for future in futures:
            future.cancel()
        if own:
            client.close()
            cluster.close()


# ---------------------------------------------------------------------------- lsdb

def _frame_to_table(frame):
    """A (nested-)pandas partition -> astropy Table that `read_xp` reads.

    pyarrow-backed columns become numpy arrays (nulls -> masked), list
    columns 2-D arrays (or object arrays when lengths differ or cells are
    missing); nested columns are left out.
    """
    import pandas as pd
    import pyarrow as pa
    from astropy.table import MaskedColumn, Table

    table = Table()
    for name in frame.columns:
        series = frame[name]
        dtype = series.dtype
        if isinstance(dtype, pd.ArrowDtype) and (pa.types.is_list(dtype.pyarrow_dtype) or
                                                 pa.types.is_fixed_size_list(dtype.pyarrow_dtype)
                                                 or pa.types.is_large_list(dtype.pyarrow_dtype)):
            table[name] = _arrow_to_table(pa.table({"c": pa.array(series)}))["c"]
            continue
        if dtype == object:
            cells = series.to_numpy()
            if any(isinstance(c, (list, tuple, np.ndarray)) for c in cells[:5]):
                sizes = {len(c) for c in cells if c is not None}
                if len(sizes) == 1 and all(c is not None for c in cells):
                    table[name] = np.array([np.asarray(c, dtype=float) for c in cells])
                else:
                    values = np.empty(len(cells), dtype=object)
                    values[:] = [None if c is None else np.asarray(c, dtype=float)
                                 for c in cells]
                    table[name] = values
                continue
        if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            missing = series.isna().to_numpy()
            kind = float if pd.api.types.is_float_dtype(dtype) or missing.any() else None
            if kind is None:
                values = series.to_numpy()
                values = np.asarray(values, dtype=values.dtype if values.dtype != object
                                    else np.int64)
            else:
                values = series.to_numpy(dtype=float, na_value=np.nan)
            table[name] = MaskedColumn(values, mask=missing) if missing.any() else values
        elif pd.api.types.is_string_dtype(dtype):
            table[name] = np.array(series.fillna("").astype(str).to_numpy(), dtype=str)
        # other kinds (nested frames, timestamps) are not inputs of the model
    return table


_PARTITION_DTYPES = {"flag": "bool[pyarrow]", "reason": "string[pyarrow]"}


def _predict_partition(frame, device=None, batch_size=None, model=None, prefix=""):
    """map_partitions function: the partition with the prediction columns appended."""
    import pandas as pd

    out = frame.copy()
    if len(frame) == 0:
        result = _empty_result(0)
    else:
        result = _predict_chunk(_frame_to_table(frame), device, batch_size, model)
        if len(result) != len(frame):
            raise RuntimeError(f"predict returned {len(result)} rows for a partition of "
                               f"{len(frame)} rows")
    for name in PREDICTION_COLUMNS:
        column = result[name]
        if name == "flag":
            values = pd.array(np.asarray(column, dtype=bool), dtype=_PARTITION_DTYPES[name])
        elif name == "reason":
            values = pd.array(np.asarray(column, dtype=str), dtype=_PARTITION_DTYPES[name])
        else:
            plain = np.asarray(getattr(column, "unmasked", column).value, dtype=float).copy()
            mask = np.asarray(getattr(column, "mask", np.zeros(len(plain), bool)))
            plain[mask] = np.nan
            values = pd.array(plain, dtype="double[pyarrow]")
        out[prefix + name] = pd.Series(values, index=frame.index)
    return out


def predict_catalog(catalog, *, device=None, batch_size=None, model=None, prefix=""):
    """Add predictions to an lsdb catalogue of Gaia XP spectra, lazily.

    Parameters
    ----------
    catalog : `lsdb.Catalog`
        A catalogue (e.g. ``lsdb.open_catalog(...)`` of a HATS Gaia DR3 XP
        catalogue, or a cross-match of one) with the XP coefficients under
        Gaia archive names -- array columns ``bp_coefficients``,
        ``rp_coefficients`` (and ``*_errors``, optional) or flattened
        ``bp_coeff_0..54`` -- and ``phot_g_mean_mag`` (plus, when present,
        ``phot_bp_mean_mag``, ``phot_rp_mean_mag``, ``j_m``, ``h_m``, ``ks_m``).
    device, batch_size, model
        As in `giantfm.predict`; the model is loaded once per worker.
    prefix : str, optional
        Put before the names of the added columns (e.g. ``'giantfm_'``)
        when the catalogue already has columns of these names.

    Returns
    -------
    `lsdb.Catalog`
        Lazy: nothing is computed until ``.compute()``, ``.write_catalog()``,
        ``.head()`` ... Every row of ``catalog``, in place, with the added
        columns ``teff``, ``teff_err`` [K], ``logg``, ``logg_err``
        [dex(cm s-2)], ``m_h``, ``m_h_err``, ``alpha_m``, ``alpha_m_err``
        [dex], ``mass``, ``mass_err`` [solMass], ``age``, ``age_err`` [Gyr]
        as plain doubles (NaN where not predicted; `prediction_units` gives
        the units), ``flag`` and ``reason``. The numbers are those of
        `giantfm.predict` on the same rows.

    Raises
    ------
    TypeError
        ``catalog`` is not an lsdb catalogue.
    ValueError
        It lacks the columns the model needs, or already has columns of the
        names to add (use ``prefix``).
    """
    try:
        import lsdb
    except ImportError:
        raise ImportError("predict_catalog needs lsdb: pip install lsdb") from None
    import pandas as pd

    if not isinstance(catalog, lsdb.Catalog):
        raise TypeError(f"catalog must be an lsdb.Catalog (lsdb.open_catalog, "
                        f"lsdb.from_dataframe), got {type(catalog).__name__}")
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a string, got {prefix!r}")
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise TypeError("model must be a model name or path (each worker loads it once), "
                        f"got {type(model).__name__}")
    columns = list(catalog.columns)
    lower = {c.lower() for c in columns}
    has_array = {"bp_coefficients", "rp_coefficients"} <= lower
    has_flat = {"bp_coeff_0", "rp_coeff_0"} <= lower
    if not (has_array or has_flat):
        raise ValueError("catalog has no Gaia XP coefficient columns: expected "
                         "'bp_coefficients' and 'rp_coefficients' (array columns) or "
                         f"'bp_coeff_0..54' and 'rp_coeff_0..54'; it has {columns[:20]}"
                         + (" ..." if len(columns) > 20 else ""))
    from .xp.readers import PHOTOMETRY_ALIASES
    if not lower & {a.lower() for a in PHOTOMETRY_ALIASES["g"]}:
        raise ValueError("catalog has no G magnitude column ('phot_g_mean_mag'), which the "
                         "model needs to normalise the XP coefficients: cross-match with "
                         "Gaia DR3 gaia_source first")
    clash = [prefix + c for c in PREDICTION_COLUMNS if prefix + c in columns]
    if clash:
        raise ValueError(f"catalog already has the columns {clash}: pass prefix= "
                         "(e.g. prefix='giantfm_') to name the added columns apart")
    if batch_size is not None:
        from .prediction import _batch_size
        _batch_size(batch_size)

    meta = catalog.meta.copy()  # an empty frame with the columns and dtypes
    for name in PREDICTION_COLUMNS:
        dtype = _PARTITION_DTYPES.get(name, "double[pyarrow]")
        meta[prefix + name] = pd.Series([], dtype=dtype, index=meta.index)
    return catalog.map_partitions(_predict_partition, device=device, batch_size=batch_size,
                                  model=None if model is None else os.fspath(model),
                                  prefix=prefix, meta=meta)
