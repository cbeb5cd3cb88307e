"""End-to-end speed of `giantfm.predict`, with the network's own time separated.

Usage::

    python benchmarks/bench_predict.py [--stars 20000] [--repeats 3] [--device cpu]
        [--save docs/results/bench_predict.ecsv]

The input is the bundled real example stars (Gaia archive layout, array
columns) repeated to ``--stars`` rows. Three timings, each the median of
``--repeats`` runs after a warm-up, all in this process on the same input:

* ``predict``: the whole call, table in -> QTable out;
* ``tokenize``: reading the table and building tokens (input handling);
* ``network``: `TrainedModel.request` on the ready tokens (the model's time).

The ratio network/predict says how much of the call is the model, and
tokenize/predict bounds what input validation can cost (it runs inside
tokenisation). ``predict without the ood_score`` is the same model with its
``ood`` calibration left out (no embedding asked of the network), timed
alternating with the main call, so their ratio is the cost of the score. With
``--compare MODEL`` the end-to-end rate of ``predict(..., model=MODEL)`` (an
earlier model, say) is measured in the same process, alternating with the
main model's, and the ratio of the two is given. With ``--against TREE`` (a
checkout of an earlier giantfm, e.g. ``git worktree add /tmp/before HEAD~3``)
that code's ``predict`` is timed in this process too, alternating with this
tree's on the same input and model weights, and their rate ratio is given:
the back-to-back comparison of a change's speed.
"""
import argparse
import copy
import importlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.table import vstack

import giantfm
from giantfm.prediction import PREDICTED_LABELS, get_model
from results import machine_description, save_table


def median_time(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stars", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None)
    parser.add_argument("--model", default=None, help="saved model (default: the bundled one)")
    parser.add_argument("--compare", default=None, metavar="MODEL",
                        help="also time predict with this saved model, alternating")
    parser.add_argument("--against", default=None, metavar="TREE",
                        help="also time predict of the giantfm in this source tree "
                             "(an earlier checkout), alternating")
    parser.add_argument("--save", default=None, help="write the figures to this ECSV file")
    args = parser.parse_args()

    examples = giantfm.examples.load()
    table = vstack([examples] * int(np.ceil(args.stars / len(examples))))[:args.stars]
    net = get_model(device=args.device, model=args.model)
    batch = giantfm.tokenize(table)

    def run(model):
        return lambda: giantfm.predict(table, device=args.device, progress=False, model=model)
    no_ood = copy.copy(net)
    no_ood.metadata = net.metadata.replace(ood=None)
    steps = [("predict, end to end", run(net)), ("predict without the ood_score", run(no_ood))]
    other = None
    if args.compare:
        other = get_model(device=args.device, model=args.compare)
        steps.append((f"predict with {other.metadata.name}", run(other)))
    if args.against:
        before = earlier_giantfm(args.against)
        before_net = before.prediction.get_model(device=args.device, model=args.model)
        steps.append((f"predict of the code in {args.against}", lambda: before.predict(
            table, device=args.device, progress=False, model=before_net)))
    times = {step: [] for step, _ in steps}
    for _ in range(args.repeats):        # alternating, so that both see the same load
        for step, fn in steps:
            times[step].append(median_time(fn, 1))
    t_predict = statistics.median(times["predict, end to end"])
    t_tokens = median_time(lambda: giantfm.tokenize(table), args.repeats)
    t_network = median_time(lambda: net.request(batch, list(PREDICTED_LABELS), progress=False),
                            args.repeats)
    n = len(table)
    print(f"# device: {net.device}; model: {net.metadata.name}; "
          f"{n} stars; medians of {args.repeats}")
    print(f"predict (end to end)  {n / t_predict:12,.0f} stars/s")
    print(f"tokenize (inputs)     {n / t_tokens:12,.0f} stars/s")
    print(f"network (request)     {n / t_network:12,.0f} stars/s")
    print(f"network share of predict: {t_network / t_predict:.2f}; "
          f"tokenize share (validation included): {t_tokens / t_predict:.3f}")
    t_no_ood = statistics.median(times["predict without the ood_score"])
    print(f"predict without the ood_score {n / t_no_ood:8,.0f} stars/s; the score costs "
          f"{1 - t_no_ood / t_predict:.1%} of the end-to-end time")
    rows = [("predict, end to end", t_predict), ("tokenize (input handling)", t_tokens),
            ("network (TrainedModel.request)", t_network),
            ("predict without the ood_score", t_no_ood)]
    if other is not None:
        step = steps[2][0]
        t_other = statistics.median(times[step])
        print(f"{step:22s}{n / t_other:12,.0f} stars/s; rate ratio (main / compared) "
              f"{t_other / t_predict:.2f}")
        rows.append((step, t_other))
    if args.against:
        step = steps[-1][0]
        t_before = statistics.median(times[step])
        print(f"{step}: {n / t_before:,.0f} stars/s; rate ratio (this / that) "
              f"{t_before / t_predict:.3f}")
        rows.append((step, t_before))
    if args.save:
        save_table([{"step": step, "stars_per_s": round(n / t)} for step, t in rows],
                   args.save, title=f"giantfm.predict end to end ({net.device})",
                   machine=machine_description(net.device),
                   notes=f"{n} stars (the bundled examples repeated), medians of {args.repeats}")


def earlier_giantfm(tree):
    """The ``giantfm`` package of another source tree, imported as ``giantfm_baseline``.

    Its modules import each other relatively, so a copy under another name
    lives beside this one in the process (its data files are found through
    ``giantfm.data``, this tree's: the same bundled model and examples).
    """
    source = Path(tree) / "giantfm"
    if not (source / "__init__.py").is_file():
        raise SystemExit(f"--against: {tree} holds no giantfm package")
    folder = Path(tempfile.mkdtemp(prefix="giantfm_baseline_"))
    shutil.copytree(source, folder / "giantfm_baseline")
    sys.path.insert(0, str(folder))
    return importlib.import_module("giantfm_baseline")


if __name__ == "__main__":
    main()
