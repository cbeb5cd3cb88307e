"""Gaia-scale throughput of `giantfm.predict_files`: stars/s against dask workers.

Usage::

    python benchmarks/bench_scale.py [--files 8] [--stars-per-file 5000] [--workers 1 2]
                                     [--format parquet] [--gpu-rate 391000] [--save PATH]

The inputs are the bundled real example stars (Gaia archive layout: array
columns and photometry) repeated and slightly perturbed to ``--files`` files
of ``--stars-per-file`` rows each, in ``--format`` (Parquet, or the archive's
ECSV). For each number of workers a `distributed.LocalCluster` (processes,
one thread each) is started, the model is loaded on every worker first (a
one-off cost, reported apart as ``startup_s``), then `predict_files` runs over
all files with ``resume=False``; the wall time of that run gives the
throughput. Peak memory is the largest resident set size any worker reached
(``ru_maxrss``, read on the workers).

Projections for the ~220 million Gaia DR3 sources with XP spectra:

* on N CPU workers: 220e6 / (measured stars/s per worker at the largest
  worker count measured) / N -- assumes the per-worker rate holds, i.e.
  one core per worker and no shared bottleneck (the file system);
* on one GPU: the network alone at ``--gpu-rate`` stars/s (default 391,000,
  the rate of benchmarks/bench_model.py measured on one H100 in bf16), *not*
  measured here; the input side (reading + tokenising, CPU) must keep up, so
  the table also gives the CPU cores needed to feed it, from the measured
  rate of `giantfm.tokenize` per core.

``--save PATH`` writes the measurements as an ECSV table with ``meta['title']``
and ``meta['machine']``, and the projections beside it as
``<PATH stem>_projection.ecsv`` (docs/scripts/make_tables.py turns
``docs/results/bench_*.ecsv`` into the performance page).
"""
import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack

import giantfm
from giantfm import scale
from results import machine_description, save_table

GAIA_XP_SOURCES = 220_000_000


def make_inputs(folder, n_files, n_stars, fmt):
    examples = giantfm.examples.load()
    rng = np.random.default_rng(0)
    paths = []
    for k in range(n_files):
        rows = vstack([examples] * int(np.ceil(n_stars / len(examples))))[:n_stars]
        for name in ("bp_coefficients", "rp_coefficients"):
            values = np.asarray(rows[name], dtype=float)
            rows[name] = values * (1 + 1e-3 * rng.standard_normal(values.shape))
        rows["source_id"] = 10**15 + k * 10**7 + np.arange(n_stars)
        path = Path(folder) / f"XpContinuousMeanSpectrum_{k:06d}.{fmt}"
        Table(rows).write(path, format="parquet" if fmt == "parquet" else "ascii.ecsv")
        paths.append(path)
    return paths


def _load_model(device):
    from giantfm.prediction import get_model
    get_model(device=device)
    return True


def run_workers(n_workers, paths, out, device):
    from distributed import Client, LocalCluster

    start = time.perf_counter()
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    try:
        client.run(_load_model, device)  # once per worker, outside the timed run
        startup = time.perf_counter() - start
        start = time.perf_counter()
        manifest = scale.predict_files(paths, out, client=client, device=device, resume=False,
                                       progress=False)
        seconds = time.perf_counter() - start
    finally:
        client.close()
        cluster.close()
    failed = manifest[manifest["status"] != "done"]
    if len(failed):
        raise RuntimeError(f"{len(failed)} files failed: {list(failed['error'])}")
    # the manifest records each worker's peak resident memory after each of its files
    return int(manifest["rows_out"].sum()), seconds, startup, float(manifest["peak_rss_mb"].max())


def tokenize_rate(paths):
    table = Table.read(paths[0])
    giantfm.tokenize(table[:100])
    start = time.perf_counter()
    giantfm.tokenize(table)
    return len(table) / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--stars-per-file", type=int, default=5000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--format", choices=("parquet", "ecsv"), default="parquet")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--gpu-rate", type=float, default=391_000.0,
                        help="network stars/s of one GPU for the projection (default: H100, "
                             "bf16, from benchmarks/bench_model.py)")
    parser.add_argument("--save", metavar="PATH", help="write the results as an ECSV table")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="giantfm_bench_scale_"))
    try:
        paths = make_inputs(folder, args.files, args.stars_per_file, args.format)
        load = os.getloadavg()[0]
        rows = []
        for n in args.workers:
            stars, seconds, startup, peak = run_workers(n, paths, folder / f"out{n}", args.device)
            rows.append((n, stars, seconds, stars / seconds, stars / seconds / n, peak, startup))
            print(f"{n} workers: {stars} stars in {seconds:.1f} s = {stars / seconds:,.0f} stars/s "
                  f"({stars / seconds / n:,.0f} per worker); peak RSS per worker "
                  f"{peak:,.0f} MB; cluster start + model load {startup:.1f} s", flush=True)
        per_core_tokens = tokenize_rate(paths)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    table = Table(rows=rows, names=("workers", "stars", "seconds", "stars_per_s",
                                    "stars_per_s_per_worker", "peak_rss_mb_per_worker",
                                    "startup_s"))
    per_worker = table["stars_per_s_per_worker"][-1]
    projections = []
    for n in (1, 2, 16, 64, 256, 1024):
        projections.append((f"{n} CPU workers", GAIA_XP_SOURCES / (per_worker * n) / 3600))
    gpu_hours = GAIA_XP_SOURCES / args.gpu_rate / 3600
    projections.append((f"1 GPU, network only at {args.gpu_rate:,.0f} stars/s (projected)",
                        gpu_hours))
    cores = args.gpu_rate / per_core_tokens
    print(f"\n# {args.files} files x {args.stars_per_file} stars ({args.format}), device "
          f"{args.device}; load average at start {load:.2f}; {os.cpu_count()} CPU cores")
    table.pprint(max_width=-1, max_lines=-1)
    print(f"\nprojected time for {GAIA_XP_SOURCES / 1e6:.0f} M stars:")
    for what, hours in projections:
        print(f"  {what:55s} {hours:10.1f} h ({hours / 24:.1f} d)")
    print(f"  (tokenize runs at {per_core_tokens:,.0f} stars/s per CPU core: one GPU needs about "
          f"{cores:.0f} cores reading and tokenising to be fed at that rate)")

    if args.save:
        machine = f"{machine_description(load=load)}, device {args.device}"
        for name, fmt in (("seconds", ".2f"), ("stars_per_s", ".0f"),
                          ("stars_per_s_per_worker", ".0f"), ("peak_rss_mb_per_worker", ".0f"),
                          ("startup_s", ".1f")):
            table[name].info.format = fmt
        save_table(table, args.save, machine=machine,
                   title=(f"Gaia scale: predict_files throughput against dask workers "
                          f"({args.files} files x {args.stars_per_file} stars, {args.format})"))
        projection = Table(rows=[(what, hours, hours / 24) for what, hours in projections],
                           names=("on", "hours", "days"))
        projection["hours"].info.format = ".2f"
        projection["days"].info.format = ".2f"
        path = Path(args.save)
        save_table(projection, path.with_name(f"{path.stem}_projection{path.suffix}"),
                   machine=machine,
                   title=(f"Gaia scale: projected time for {GAIA_XP_SOURCES / 1e6:.0f} M stars, "
                          f"from {per_worker:,.0f} stars/s per CPU worker (measured) and "
                          f"{args.gpu_rate:,.0f} stars/s network on one GPU (H100 bf16, "
                          f"benchmarks/bench_model.py; the GPU also needs ~{cores:.0f} CPU "
                          f"cores reading and tokenising at {per_core_tokens:,.0f} stars/s "
                          "each)"))


if __name__ == "__main__":
    main()
