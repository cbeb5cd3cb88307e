"""Speed of `giantfm.similar` (k-d tree against brute force) and of `giantfm.embed`.

Usage::

    python benchmarks/bench_similar.py [--sizes 100000 1000000] [--queries 1000] [--k 10]
        [--dataset DATASET.h5] [--real-stars 20000] [--brute-max 100000]
        [--spreads gaussian real-like] [--embed-stars 5000] [--repeats 3] [--device cpu]
        [--save docs/results/bench_similar.ecsv]

``similar``: the catalogues are *synthetic* embeddings of the model's
dimension (64 for the bundled model): embedding a million real stars on this
CPU would take longer than the search it times. A k-d tree's speed depends on
how the points are spread, not on their number alone, so two spreads are timed:

* ``gaussian``: a normal distribution with the mean and covariance of the
  model's own embeddings of the validation giants (its OOD calibration,
  `giantfm.metadata.OODCalibration`). It has no structure beyond that: the
  worst case for a k-d tree in 64 dimensions.
* ``real-like`` (with ``--dataset``, a training-set file of
  ``giantfm build-dataset``): ``--real-stars`` stars of its training split are
  embedded with the model, and the catalogue's points are drawn on the
  segments between a random one of them and one of its 10 nearest
  neighbours: the structure of real embeddings, made denser.

For each spread and catalogue size the timings, each the median of
``--repeats`` (no warm-up: nothing is compiled or cached), are:
`giantfm.similar` end to end on two embedding tables (``--queries`` query
stars, ``k`` = ``--k``), the build of its tree (`scipy.spatial.cKDTree`)
alone, and their difference (the tree's query and the table handling). Up to
``--brute-max`` catalogue rows the same search is also done by brute force
(exact squared distances by matrix products over catalogue chunks, float64,
``numpy.argpartition``), with the share of query stars whose k neighbours
both methods agree on. The tree queries on one thread (as `similar` does)
and the brute force runs with BLAS limited to one thread (threadpoolctl),
so that both compare like for like on a loaded machine.

``embed``: the bundled real example stars (Gaia archive layout) repeated to
``--embed-stars`` rows, `giantfm.embed` end to end, with `giantfm.predict` on
the same rows beside it, the two interleaved.

``--save PATH`` writes the figures as an ECSV table with ``meta['title']``
and ``meta['machine']`` (docs/scripts/make_tables.py reads
``docs/results/bench_*.ecsv``).
"""
import argparse
import contextlib
import os
import statistics
import time

import numpy as np
from astropy import units as u
from astropy.table import QTable, vstack
from astropy.utils.masked import Masked
from scipy.spatial import cKDTree

import giantfm
from giantfm.prediction import get_model
from results import machine_description, save_table


def median_time(fn, repeats, warm_up=True):
    """Median wall time of ``fn()`` over ``repeats`` calls (after one warm-up call unless
    ``warm_up`` is False); and its last result."""
    out = fn() if warm_up else None
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def brute_force(catalogue, queries, k, chunk=16384):
    """The exact ``k`` nearest rows of ``catalogue`` to each query: (distance, index)."""
    q_norm = np.einsum("ij,ij->i", queries, queries)
    best_d2 = np.full((len(queries), k), np.inf)
    best_i = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(catalogue), chunk):
        block = catalogue[start:start + chunk]
        d2 = q_norm[:, None] - 2 * (queries @ block.T) + np.einsum("ij,ij->i", block, block)
        kk = min(k, d2.shape[1])
        part = np.argpartition(d2, kk - 1, axis=1)[:, :kk]
        all_d2 = np.concatenate([best_d2, np.take_along_axis(d2, part, axis=1)], axis=1)
        all_i = np.concatenate([best_i, part + start], axis=1)
        keep = np.argpartition(all_d2, k - 1, axis=1)[:, :k]
        best_d2 = np.take_along_axis(all_d2, keep, axis=1)
        best_i = np.take_along_axis(all_i, keep, axis=1)
    order = np.argsort(best_d2, axis=1)
    best_d2 = np.take_along_axis(best_d2, order, axis=1)
    return np.sqrt(np.maximum(best_d2, 0)), np.take_along_axis(best_i, order, axis=1)


def gaussian(net, n, rng):
    """``n`` points from the normal distribution of the model's calibration embeddings."""
    ood = net.metadata.ood
    if ood is None:
        raise SystemExit("the model records no OOD calibration (embedding mean and "
                         "covariance): give --dataset to time real-like embeddings only")
    chol = np.linalg.cholesky(np.linalg.inv(ood.embedding_precision))
    out = np.empty((n, len(ood.embedding_mean)), dtype=np.float32)
    for start in range(0, n, 100_000):          # in blocks: bounded temporary memory
        m = min(100_000, n - start)
        out[start:start + m] = ood.embedding_mean + rng.standard_normal((m, chol.shape[0])) \
            @ chol.T
    return out


def real_embeddings(net, dataset, n_stars, batch_size):
    """Embeddings of ``n_stars`` stars of the dataset's training split (NaN rows left out)."""
    from giantfm.train.dataset.datafile import load_dataset
    batch = load_dataset(dataset)["train"][:n_stars]
    table = giantfm.embed(batch, model=net, batch_size=batch_size, progress=False)
    values = table["embedding"].unmasked.value
    return values[~table["embedding"].mask.any(axis=1)]


def real_like(seed_points, n, rng):
    """``n`` points on segments between random real embeddings and their near neighbours."""
    seed = seed_points.astype(np.float64)
    _, neighbours = cKDTree(seed).query(seed, k=11)
    a = rng.integers(len(seed), size=n)
    b = neighbours[a, rng.integers(1, 11, size=n)]
    t = rng.random((n, 1))
    out = np.empty((n, seed.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        s = slice(start, start + 100_000)
        out[s] = seed[a[s]] + t[s] * (seed[b[s]] - seed[a[s]])
    return out


def embedding_table(values):
    """An embedding table as `giantfm.embed` makes it (the model recorded in ``meta``)."""
    table = QTable()
    table["embedding"] = Masked(values << u.dimensionless_unscaled,
                                mask=np.zeros(values.shape, bool))
    return table


def time_search(name, catalogue, queries, args, net):
    """Rows of figures for one spread and one catalogue size."""
    n, k = len(catalogue), args.k
    meta = {"giantfm_model": net.metadata.name, "giantfm_model_version": net.metadata.version}
    c_table, q_table = embedding_table(catalogue), embedding_table(queries)
    c_table.meta.update(meta)
    q_table.meta.update(meta)
    # no warm-up: nothing is compiled or cached, and at 10^6 a call can take minutes
    t_similar, found = median_time(lambda: giantfm.similar(q_table, c_table, k=k), args.repeats,
                                   warm_up=False)
    c64, q64 = catalogue.astype(np.float64), queries.astype(np.float64)
    t_build, _ = median_time(lambda: cKDTree(c64), args.repeats, warm_up=False)
    t_query = t_similar - t_build
    kd_index = np.asarray(found["neighbour_index"])
    rows = [(name, n, "similar (end to end)", t_similar, "query star"),
            (name, n, "cKDTree build (in similar)", t_build, "catalogue row"),
            (name, n, "tree query and the rest", t_query, "query star")]
    line = (f"{name:9s} {n:>9,d}  similar {t_similar:8.3f} s  (tree build {t_build:7.3f} s, "
            f"query and the rest {t_query:7.3f} s)")
    if n <= args.brute_max:
        with one_blas_thread():
            t_brute, (_, brute_index) = median_time(lambda: brute_force(c64, q64, k),
                                                    args.repeats, warm_up=False)
        agree = np.mean([set(a) == set(b) for a, b in zip(kd_index, brute_index)])
        rows.append((name, n, "brute force (numpy, chunked)", t_brute, "query star"))
        line += (f"  brute force {t_brute:8.3f} s ({t_brute / t_similar:.2f} times similar's); "
                 f"same neighbours for {agree:.1%} of queries")
    print(line, flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--dataset", default=None,
                        help="training-set file: also time real-like embeddings")
    parser.add_argument("--spreads", nargs="+", default=["gaussian", "real-like"],
                        choices=["gaussian", "real-like"],
                        help="which synthetic spreads to time (real-like needs --dataset)")
    parser.add_argument("--real-stars", type=int, default=20_000)
    parser.add_argument("--brute-max", type=int, default=100_000,
                        help="largest catalogue also searched by brute force")
    parser.add_argument("--embed-stars", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None)
    parser.add_argument("--model", default=None, help="saved model (default: the bundled one)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="write the figures to this ECSV file")
    args = parser.parse_args()

    load = os.getloadavg()[0]
    rng = np.random.default_rng(args.seed)
    net = get_model(device=args.device, model=args.model)
    d = net.config.d_model
    print(f"# model {net.metadata.name} {net.metadata.version}, embeddings of {d} dimensions; "
          f"{args.queries} queries, k={args.k}; medians of {args.repeats}; "
          f"{machine_description(net.device, load=load)}", flush=True)

    # ------------------------------------------------------------------ embed
    examples = giantfm.examples.load()
    table = vstack([examples] * int(np.ceil(args.embed_stars / len(examples))))
    table = table[:args.embed_stars]
    kwargs = {"model": net, "progress": False, "batch_size": args.batch_size}
    # interleaved (embed, predict, embed, ...) after one warm-up call of each, so that a
    # change of the machine's load during the run affects both alike
    giantfm.embed(table[:200], **kwargs)
    giantfm.predict(table[:200], **kwargs)
    times = {"embed": [], "predict": []}
    for _ in range(args.repeats):
        for name, verb in (("embed", giantfm.embed), ("predict", giantfm.predict)):
            start = time.perf_counter()
            verb(table, **kwargs)
            times[name].append(time.perf_counter() - start)
    t_embed, t_predict = (statistics.median(times[name]) for name in ("embed", "predict"))
    n = len(table)
    print(f"embed   {n / t_embed:10,.0f} stars/s; predict on the same {n} stars "
          f"{n / t_predict:10,.0f} stars/s ({net.device})", flush=True)
    rows = [{"spread": "examples", "catalogue_rows": n, "step": step, "seconds": t,
             "per_s": n / t, "per": "star"}
            for step, t in (("embed (end to end)", t_embed), ("predict (end to end)", t_predict))]

    # ------------------------------------------------------------------ similar
    spreads = [("gaussian", lambda m: gaussian(net, m, rng))] \
        if "gaussian" in args.spreads else []
    if args.dataset and "real-like" in args.spreads:
        start = time.perf_counter()
        seed = real_embeddings(net, args.dataset, args.real_stars, args.batch_size)
        print(f"# embedded {len(seed)} training stars of {args.dataset} in "
              f"{time.perf_counter() - start:.0f} s for the real-like spread", flush=True)
        spreads.append(("real-like", lambda m: real_like(seed, m, rng)))
    for name, draw in spreads:
        for size in args.sizes:
            points = draw(size + args.queries)
            for spread, n_rows, step, seconds, per in time_search(
                    name, points[:size], points[size:], args, net):
                count = n_rows if per == "catalogue row" else args.queries
                rows.append({"spread": spread, "catalogue_rows": n_rows, "step": step,
                             "seconds": seconds, "per_s": count / seconds, "per": per})
            del points
    if args.save:
        for row in rows:
            row["seconds"] = float(f"{row['seconds']:.4g}")
            row["per_s"] = float(f"{row['per_s']:.4g}")
        save_table(rows, args.save,
                   title=f"giantfm.similar and giantfm.embed ({net.device})",
                   machine=machine_description(net.device, load=load),
                   notes=(f"similar: {args.queries} query stars, k={args.k}, synthetic "
                          f"{d}-dimensional embeddings (gaussian: the model's calibration "
                          "mean and covariance; real-like: between real embedded training "
                          "stars and their neighbours); per_s counts what `per` names. "
                          f"embed and predict: the bundled examples repeated to "
                          f"{args.embed_stars} rows. Medians of {args.repeats}."))


if __name__ == "__main__":
    main()
