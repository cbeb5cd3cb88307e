"""The manifest of a `giantfm.predict_files` run: every input, its rows in and out, failures.

It is a JSON file in the output directory (`MANIFEST_NAME`), rewritten
atomically while the run goes on; a rerun reads it to skip the inputs already
done (`can_skip`), and `read_manifest` gives it as an astropy Table.
"""
import json
import os
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..exceptions import GiantfmWarning
from ..utils import atomic_write

__all__ = ["MANIFEST_NAME", "FIELDS", "FINISHED", "read_manifest", "manifest_table",
           "load_previous", "can_skip", "Manifest", "timestamp"]

#: Name of the manifest `giantfm.predict_files` keeps in its output directory.
MANIFEST_NAME = "giantfm_manifest.json"

#: Manifest statuses of a finished input: 'done' (predicted in this run) and 'skipped'
#: (done by an earlier run and reused on resume); the other is 'failed' (reason in 'error').
FINISHED = ("done", "skipped")

#: The fields of an entry, in the order of the manifest table's columns.
FIELDS = ("input", "output", "status", "rows_in", "rows_out", "rows_flagged",
          "seconds", "error", "input_size", "input_mtime", "worker", "peak_rss_mb")

# Seconds between manifest rewrites while a run goes on (always rewritten at the end).
_MANIFEST_INTERVAL = 5.0


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
    return manifest_table(list(data["inputs"].values()),
                          {k: v for k, v in data.items() if k != "inputs"})


def manifest_table(entries, meta):
    """The manifest entries as an astropy Table (see `read_manifest`), with ``meta``."""
    from astropy.table import Table

    table = Table(meta=meta)
    for name in FIELDS:
        values = [e.get(name) for e in entries]
        if name in ("rows_in", "rows_out", "rows_flagged", "input_size"):
            table[name] = np.array([-1 if v is None else v for v in values], dtype=np.int64)
        elif name in ("seconds", "input_mtime", "peak_rss_mb"):
            table[name] = np.array([np.nan if v is None else v for v in values], dtype=float)
        else:
            table[name] = np.array(["" if v is None else str(v) for v in values], dtype=str)
    return table


def load_previous(path):
    """The manifest an earlier run left at ``path``, or {} (with a warning when unreadable)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data
    except (OSError, ValueError) as exc:
        warnings.warn(f"ignoring the unreadable manifest {os.fspath(path)!r} ({exc}): "
                      "every input is predicted again", GiantfmWarning, stacklevel=3)
        return {}


def can_skip(entry, path, out):
    """Whether an earlier run's entry shows ``path`` finished, with its output intact."""
    if not entry or entry.get("status") not in FINISHED or not out.is_file():
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


class Manifest:
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
        data = dict(self.header, updated=timestamp(), totals=self.totals(), inputs=self.entries)
        text = json.dumps(data, indent=1)

        def write(tmp):
            Path(tmp).write_text(text, encoding="utf-8")
        atomic_write(self.path, write)


def timestamp():
    """The time now (UTC, ISO 8601, seconds): the manifest's ``created`` and ``updated``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
