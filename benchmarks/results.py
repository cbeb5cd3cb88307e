"""Saving benchmark figures where the documentation's performance page reads them.

Each benchmark script's ``--save PATH`` writes its figures as an ECSV table
(``docs/results/bench_<name>.ecsv``), which ``docs/scripts/make_tables.py``
turns into a table of the performance page, with ``meta['title']`` as its
heading and ``meta['machine']`` saying where it was measured.
"""
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

from astropy.table import Table

from giantfm.utils import atomic_write


def machine_description(device=None, load=None):
    """CPU model, core count and load average (and the GPU's name when ``device`` is one).

    ``load``: the 1-minute load average to report (e.g. taken before the run);
    default now.
    """
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if load is None else load
    text = f"{cpu}, {os.cpu_count()} cores, load average {load:.1f}"
    if device is not None and getattr(device, "type", str(device)).startswith("cuda"):
        import torch
        text = f"{torch.cuda.get_device_name(device)}; host {text}"
    return text


def save_table(rows, path, *, title, machine, notes=None):
    """Write ``rows`` (a `~astropy.table.Table`, or a list of dicts with the same keys)
    as an ECSV table, atomically."""
    table = rows if isinstance(rows, Table) else Table(rows=rows)
    table.meta.update(title=title, machine=machine,
                      date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    if notes:
        table.meta["notes"] = notes
    atomic_write(Path(path), lambda tmp: table.write(tmp, format="ascii.ecsv", overwrite=True))
    print(f"saved {path}")
    return table
