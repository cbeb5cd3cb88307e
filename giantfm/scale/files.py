"""`predict_files`: many files on a Dask cluster, one output per input, resumable.

A glob or list of files in the formats the Gaia archive distributes
(``XP_CONTINUOUS`` ECSV/CSV, gzipped or not), FITS, VOTable, HDF5 or Parquet
-> one output file per input, on a `dask.distributed` cluster (a
`~distributed.LocalCluster` by default, any ``Client`` you pass, GPU workers
when present) or sequentially in this process (``client='sync'``). Outputs
are written atomically, the manifest (`giantfm.scale.manifest`) accounts for
every input and every row, and a rerun resumes where an interrupted one
stopped.

Memory is bounded: a worker holds one input file at a time (Parquet inputs
only one block of ``chunk_rows`` rows, read row group by row group), predicts
it ``chunk_rows`` rows at a time and streams Parquet outputs chunk by chunk.
The model is loaded once per worker process (`giantfm.prediction.get_model`
caches it there) and reused by every task that worker runs.
"""
import glob
import os
import resource
import socket
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from ..config import resolve_batch_size
from ..io.parquet import ParquetStream
from ..io.tables import FORMATS, format_suffix, iter_table_chunks, write_table
from .. import prediction
from ..utils import atomic_write
from ..utils._optional import HAS_DISTRIBUTED, require
from ..utils._progress import progress_bar
from ..utils._threads import available_cores, threads_of_this_task
from ..utils._version import package_version
from .manifest import MANIFEST_NAME, Manifest, can_skip, load_previous, manifest_table, timestamp

__all__ = ["predict_files", "output_path", "DEFAULT_CHUNK_ROWS"]

#: Rows per `predict` call inside a task (and per Parquet row-group block read).
DEFAULT_CHUNK_ROWS = 50_000


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
                           if p.is_file() and format_suffix(p) in FORMATS)
            if not found:
                raise ValueError(f"inputs: the directory {text!r} holds no table files "
                                 f"({', '.join(sorted(FORMATS))}, optionally + .gz)")
            paths.extend(found)
        else:
            paths.append(Path(text))  # a missing file becomes a manifest failure
    unique = list(dict.fromkeys(p.resolve() for p in paths))
    return unique


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


# ---------------------------------------------------------------------------- one file

def _write_same_format(results, path):
    from astropy.table import vstack

    table = results[0] if len(results) == 1 else vstack(results, metadata_conflicts="silent")
    write_table(table, path, overwrite=True)


def _predict_chunk(table, device, batch_size, model):
    """Predict one block of rows (the unit of work inside a task)."""
    kwargs = {} if model is None else {"model": model}
    # looked up when called (not imported by name), so that a test can stand in for predict
    return prediction.predict(table, device=device, batch_size=batch_size, progress=False, **kwargs)


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
        stream = ParquetStream(tmp) if job["output_format"] == "parquet" else None
        results = []
        try:
            for chunk in iter_table_chunks(path, job["chunk_rows"]):
                counts["in"] += len(chunk)
                if len(chunk) == 0:
                    continue
                with threads_of_this_task(job.get("threads")):
                    result = _predict_chunk(chunk, job["device"], job["batch_size"],
                                            job["model"])
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
    return f"{type(exc).__name__}: {exc}"


def _finish(entry, start):
    entry["seconds"] = round(time.perf_counter() - start, 3)
    # peak resident memory of this worker process so far (Linux: KiB; macOS: bytes)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    entry["peak_rss_mb"] = round(rss / (1024 ** 2 if sys.platform == "darwin" else 1024), 1)
    return entry


# ---------------------------------------------------------------------------- predict_files

def _remove_stale_temporaries(out):
    """Remove temporary files that a killed writer of ``out`` left (see `atomic_write`)."""
    for stale in out.parent.glob(f".{glob.escape(out.stem)}.*{out.suffix}"):
        stale.unlink(missing_ok=True)


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
        Parquet; ``.gz`` where astropy reads it: any format of
        `giantfm.io.tables.TABLE_FORMATS`, read as `giantfm.predict` reads it.
        Each file needs the XP coefficients, and is read with its magnitudes
        where it has them (a missing G, BP or RP is synthesised from the
        coefficients, so the archive's XP files are answered as they come).
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
        the number of CPU cores this process may run on, at most 8. Each predicts with its share of
        the cores (cores // workers threads). The workers of a ``client`` of
        yours use ``OMP_NUM_THREADS`` threads per task (Dask's nanny sets 1),
        or ``giantfm.conf.threads`` where a worker sets it; ``'sync'``, every core.
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
        resolve_batch_size(batch_size)  # raises a clear ValueError
    if output_format == "parquet":
        require("pyarrow", "Parquet outputs")
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
    header = {"giantfm_version": package_version(), "model": "bundled" if model is None else
              os.fspath(model), "output_format": output_format, "created": timestamp()}
    previous = load_previous(manifest_path) if resume else {}
    if previous and (previous.get("model") != header["model"]
                     or previous.get("output_format") != output_format):
        previous = {}  # another model or format: nothing of that run can be reused
    if previous.get("created"):
        header["created"] = previous["created"]
    manifest = Manifest(manifest_path, header)
    old = previous.get("inputs", {})
    todo = []
    for job in jobs:
        entry = old.get(job["input"])
        if resume and can_skip(entry, Path(job["input"]), Path(job["output"])):
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
    return manifest_table(ordered, dict(header, totals=manifest.totals()))


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _is_client(client):
    if not HAS_DISTRIBUTED:
        return False
    from distributed import Client
    return isinstance(client, Client)


def _tick(bar, entry):
    if bar is not None:
        bar.update(1)
        if entry.get("status") == "failed":
            bar.set_postfix_str(f"failed: {Path(entry['input']).name}")


def _run_sync(jobs, manifest, progress):
    bar = progress_bar(len(jobs), progress=progress, unit="file",
                       desc="giantfm predict_files")
    try:
        for job in jobs:
            entry = _process_file(job)
            manifest.record(entry)
            _tick(bar, entry)
    finally:
        if bar is not None:
            bar.close()


_GUARD_HINT = ("dask starts its workers by running the calling script again: in a script, "
               "call predict_files under `if __name__ == \"__main__\":` (or pass "
               "client='sync' to run in this process without dask)")


def _check_main_is_guarded():
    """Refuse, in words, a LocalCluster started while a worker re-runs an unguarded script.

    A spawned worker imports the script as ``__mp_main__``; an unguarded
    ``predict_files`` call in it would start a cluster from inside each
    worker, and dask would fail with "Nanny failed to start".
    """
    import multiprocessing

    main = sys.modules.get("__main__")
    if multiprocessing.parent_process() is not None and \
            getattr(main, "__name__", "") == "__mp_main__":
        raise RuntimeError(f"predict_files was called while a dask worker started: "
                           f"{_GUARD_HINT}")


def _run_distributed(jobs, manifest, client, n_workers, progress):
    distributed = require("distributed", "predict_files on a cluster (client other than 'sync')")
    Client, LocalCluster, as_completed = (distributed.Client, distributed.LocalCluster,
                                          distributed.as_completed)

    own = client is None
    if own:
        _check_main_is_guarded()
        workers = n_workers or max(1, min(available_cores(), 8))
        # each worker predicts with its share of the cores (its nanny would say one each)
        threads = max(1, available_cores() // workers)
        jobs = [dict(job, threads=threads) for job in jobs]
        try:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
        except Exception as exc:   # dask's own words ("Nanny failed to start") say too little
            raise RuntimeError(f"the dask LocalCluster of predict_files could not start its "
                               f"workers ({type(exc).__name__}: {exc}). {_GUARD_HINT}") from exc
        client = Client(cluster)
    futures = {}
    bar = progress_bar(len(jobs), progress=progress, unit="file",
                       desc="giantfm predict_files")
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
