"""Speed of `giantfm.predict` end to end and by stage; against an earlier giantfm.

Usage::

    python benchmarks/bench_predict.py [--stars 20000] [--repeats 5] [--device cpu]
        [--threads N] [--model MODEL] [--compare MODEL]
        [--against TREE [--against-model MODEL]] [--save docs/results/bench_predict.ecsv]

The input is the bundled real example stars (Gaia archive layout, array
columns) repeated to ``--stars`` rows. Every run is one whole
``giantfm.predict`` call, table in -> QTable out, with the time of each of its
stages taken inside it:

* ``tokenise``: reading the table and building tokens (``prediction.as_batch``);
* ``network``: `TrainedModel.request` (the transformer);
* ``label model``: ``prediction.finish_answers`` (mass and age chained through
  the XGBoost label model, uncertainties scaled);
* ``results``: the rest (the table, its units, masks, flags and ``ood_score``).

Each figure is the median of ``--repeats`` runs after a warm-up.

``--against TREE`` compares this tree with another checkout of giantfm, e.g.
``git worktree add /tmp/before 1be7e3b``: that tree's package is imported
beside this one (as ``giantfm_baseline``) and its ``predict`` runs with that
tree's own bundled model (or ``--against-model``), alternating run by run with
this tree's on the same input in this process, so that both see the same load.
It prints both stage splits and the ratio of the rates, and, where the two
models are the same weights, the largest change of any answer over its error.
The one command of a back-to-back comparison::

    python benchmarks/bench_predict.py --against /tmp/before --save docs/results/bench_predict.ecsv

``--compare MODEL`` times this tree's ``predict`` with another saved model too
(alternating). ``--save`` writes the stage split (and the comparison) as an
ECSV table with the machine, its load average and the date, which
docs/scripts/make_tables.py shows on the performance page. Run it on an idle
machine: a figure measured beside other work says little.
"""
import argparse
import contextlib
import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.table import vstack

import giantfm
from giantfm.prediction import get_model
from giantfm.utils._columns import floats
from giantfm.utils._threads import cpu_threads
from results import machine_description, save_table

STAGES = ("tokenise", "network", "label model", "results")
TOTAL = "predict, end to end"


@contextlib.contextmanager
def stage_clock(package, clock):
    """Time the stages of ``package``'s predict (this giantfm or an earlier one) into
    ``clock`` (a dict of lists), by wrapping the functions predict calls for them."""
    prediction, core = package.prediction, package.model.core
    wrapped = [(prediction, "as_batch", "tokenise"), (prediction, "finish_answers", "label model"),
               (core.TrainedModel, "request", "network")]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in wrapped]

    def timed(fn, stage):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                clock[stage][-1] += time.perf_counter() - start
        return call
    for (owner, name, stage), (_, _, fn) in zip(wrapped, originals):
        setattr(owner, name, timed(fn, stage))
    try:
        yield
    finally:
        for owner, name, fn in originals:
            setattr(owner, name, fn)


def timed_predict(package, table, clock, **kwargs):
    """One predict call of ``package`` with its stage times appended to ``clock``."""
    for stage in (*STAGES, TOTAL):
        clock.setdefault(stage, []).append(0.0)
    with stage_clock(package, clock):
        start = time.perf_counter()
        result = package.predict(table, progress=False, **kwargs)
        clock[TOTAL][-1] = time.perf_counter() - start
    clock["results"][-1] = clock[TOTAL][-1] - sum(clock[s][-1] for s in STAGES[:-1])
    return result


def earlier_giantfm(tree):
    """The ``giantfm`` package of another source tree, imported as ``giantfm_baseline``.

    Its modules import each other relatively, so a copy under another name
    lives beside this one in the process. Its package data (``giantfm.data``:
    the XP design matrices, the examples) are this tree's; its model is given
    by path.
    """
    source = Path(tree) / "giantfm"
    if not (source / "__init__.py").is_file():
        raise SystemExit(f"--against: {tree} holds no giantfm package")
    folder = Path(tempfile.mkdtemp(prefix="giantfm_baseline_"))
    shutil.copytree(source, folder / "giantfm_baseline",
                    ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, str(folder))
    return importlib.import_module("giantfm_baseline")


def largest_change(new, old, labels):
    """max over stars and labels of |new - old| / old's error (NaN where either is masked)."""
    worst = {}
    for label in labels:
        if label not in new.colnames or label not in old.colnames:
            continue
        a, b = floats(new[label]), floats(old[label])
        err = f"{label}_err"
        scale = floats(old[err]) if err in old.colnames else np.ones_like(b)
        with np.errstate(invalid="ignore", divide="ignore"):
            worst[label] = float(np.nanmax(np.abs(a - b) / scale))
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stars", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0,
                        help="giantfm.conf.threads for this tree (default 0: automatic)")
    parser.add_argument("--model", default=None, help="saved model (default: the bundled one)")
    parser.add_argument("--compare", default=None, metavar="MODEL",
                        help="also time this tree's predict with this saved model, alternating")
    parser.add_argument("--against", default=None, metavar="TREE",
                        help="also time predict of the giantfm in this source tree (an earlier "
                             "checkout) with its own bundled model, alternating")
    parser.add_argument("--against-model", default=None, metavar="MODEL",
                        help="the model of --against (default: TREE/giantfm/data/model)")
    parser.add_argument("--save", default=None, help="write the figures to this ECSV file")
    args = parser.parse_args()
    giantfm.conf.threads = args.threads

    examples = giantfm.examples.load()
    table = vstack([examples] * int(np.ceil(args.stars / len(examples))))[:args.stars]
    n = len(table)
    net = get_model(device=args.device, model=args.model)
    runs = {"this": (giantfm, {"device": args.device, "model": net})}
    if args.compare:
        runs["compared"] = (giantfm, {"device": args.device,
                                      "model": get_model(device=args.device, model=args.compare)})
    if args.against:
        before = earlier_giantfm(args.against)
        before_model = args.against_model or str(Path(args.against) / "giantfm/data/model")
        runs["before"] = (before, {"device": args.device, "model": before.prediction.get_model(
            device=args.device, model=before_model)})
    load_before = os.getloadavg()[0]
    clocks = {key: {} for key in runs}
    answers = {}
    for key, (package, kwargs) in runs.items():      # warm-up: caches, lazy imports
        answers[key] = timed_predict(package, table, {}, **kwargs)
    for _ in range(args.repeats):                    # alternating: the same load for all
        for key, (package, kwargs) in runs.items():
            timed_predict(package, table, clocks[key], **kwargs)
    load_after = os.getloadavg()[0]
    median = {key: {stage: statistics.median(times) for stage, times in clock.items()}
              for key, clock in clocks.items()}

    def name_of(key):
        return runs[key][1]["model"].metadata.name
    print(f"# {n} stars, medians of {args.repeats} alternating runs; device {net.device}; "
          f"{cpu_threads()} threads; load average {load_before:.1f} before, "
          f"{load_after:.1f} after")
    header = f"{'stage':22s}" + "".join(f"{key + ' (' + name_of(key) + ')':>34s}"
                                         for key in runs)
    print(header)
    for stage in (*STAGES, TOTAL):
        cells = "".join(f"{median[key][stage]:9.3f} s {n / median[key][stage]:10,.0f} stars/s"
                        for key in runs)
        print(f"{stage:22s}{cells}")
    rows = [{"step": stage, "seconds": round(median["this"][stage], 3),
             "stars_per_s": round(n / median["this"][stage]),
             "share": round(median["this"][stage] / median["this"][TOTAL], 3)}
            for stage in (*STAGES, TOTAL)]
    for key in runs:
        if key == "this":
            continue
        ratio = median[key][TOTAL] / median["this"][TOTAL]
        print(f"rate ratio, this / {key}: {ratio:.2f} end to end; by stage "
              + ", ".join(f"{stage} {median[key][stage] / median['this'][stage]:.2f}"
                          for stage in STAGES))
        for row in rows:
            row[f"{key}_stars_per_s"] = round(n / median[key][row["step"]])
            row[f"speedup_over_{key}"] = round(median[key][row["step"]] /
                                               median["this"][row["step"]], 2)
        if _same_weights(runs["this"][1]["model"], runs[key][1]["model"]):
            worst = largest_change(answers["this"], answers[key], giantfm.vocab.LABEL_NAMES)
            print(f"same weights as {key}: largest |change| / err "
                  + ", ".join(f"{label} {value:.1e}" for label, value in worst.items()))
    if args.save:
        against = (f"; against {args.against} ({name_of('before')}), alternating run by run"
                   if args.against else "")
        save_table(rows, args.save,
                   title=f"giantfm.predict end to end and by stage ({net.device})",
                   machine=machine_description(net.device, load=max(load_before, load_after)),
                   notes=(f"{n} stars (the bundled examples repeated), model {name_of('this')}, "
                          f"{cpu_threads()} threads, medians of {args.repeats}{against}; load "
                          f"average {load_before:.1f} before and {load_after:.1f} after"))


def _same_weights(a, b):
    """Whether two loaded models hold the same network weights."""
    sa, sb = a.network.state_dict(), b.network.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and bool((sa[k].cpu() == sb[k].cpu()).all()) for k in sa)


if __name__ == "__main__":
    main()
