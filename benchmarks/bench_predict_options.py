"""What each way of running predict's network and label model gives on this CPU.

Usage::

    python benchmarks/bench_predict_options.py [--stars 8000] [--repeats 5]
        [--groups threads batch packing grad attention precision label_model]
        [--compile] [--onnx] [--save docs/results/bench_predict_options.ecsv]

Each group times its options alternating run by run in this process, on the
same stars (the bundled examples repeated to ``--stars``; the packing group
leaves 15 % of the tokens out at random so that the stars' token counts
differ), and gives each option's rate over the group's first (the reference):
by wall time and by the CPU time of the process (which a busy machine
disturbs less, but which cannot show what parallel threads gain). The column
``change`` is the largest |answer change| / predicted error over all stars
and labels against the reference: below 1e-4 is float32 rounding.

Groups (the network runs on the bundled model, the label model on its labels):

* ``threads``: as giantfm 1be7e3b ran the network (one thread calling torch,
  torch's own threads = the cores, 1024 stars a call), torch's threads = 1,
  and giantfm's thread pool (`giantfm.utils._threads`) of 1 and of all cores,
  64 stars a call;
* ``batch``: stars per network call on the pool;
* ``packing``: the stars sorted by token count and left-packed (as predict
  runs), not sorted, and neither (every call padded to the full width, masked);
* ``grad``: ``torch.inference_mode`` against ``torch.no_grad`` and autograd on;
* ``attention``: torch's fused (flash) attention kernel against the math one;
* ``precision``: bfloat16 autocast, and int8 dynamic quantization of the
  linear layers (``torch.ao``, deprecated: its warnings are caught here);
* ``label_model``: XGBoost predict on a DMatrix with one thread (1be7e3b),
  ``inplace_predict`` with ``nthread`` = 1 and = the cores, and split over
  giantfm's pool; and the latency of a one-star call with 1 and with all threads;
* ``--compile``: ``torch.compile`` (its warm-up is printed), ``--onnx``: ONNX
  Runtime on the exported network (needs ``onnx`` and ``onnxruntime``).
"""
import argparse
import contextlib
import copy
import io
import os
import statistics
import time
import warnings

import numpy as np
import torch
from astropy.table import vstack

import giantfm
from giantfm.model.core import _cpu_pool
from giantfm.prediction import get_model, label_model_of
from giantfm.tokens import TokenBatch
from giantfm.utils._threads import available_cores
from results import machine_description, save_table

GROUPS = ("threads", "batch", "packing", "grad", "attention", "precision", "label_model")


class Network:
    """The network's answers for prepared stars, run as an option says."""

    def __init__(self, net, batch, names):
        self.net = net
        self.names = names
        self.req = torch.as_tensor(net.rows_of(names))
        self.rows, self.ids, self.values, self.errors, self.counts = net._prepare(batch)

    def call(self, start, stop, network=None, width=None):
        ids, values, errors, counts = self.ids, self.values, self.errors, self.counts
        width = width or max(int(counts[start:stop].max()), 1)
        i, v, e = self.net._network_inputs(ids, values, errors, start, stop, width)
        network = self.net.network if network is None else network
        out = network(i, v, self.req.expand(stop - start, -1), e)
        return out[0].detach().float().numpy()

    def serial(self, batch_size, torch_threads, mode=torch.inference_mode, network=None,
               context=contextlib.nullcontext, full_width=False):
        def run():
            previous = torch.get_num_threads()
            torch.set_num_threads(torch_threads)
            try:
                with mode(), context():
                    width = self.ids.shape[1] if full_width else None
                    return np.concatenate([self.call(s, min(s + batch_size, len(self.rows)),
                                                     network, width)
                                           for s in range(0, len(self.rows), batch_size)])
            finally:
                torch.set_num_threads(previous)
        return run

    def pooled(self, batch_size, threads):
        def run():
            pool = _cpu_pool(threads)

            def one(start):
                with torch.inference_mode():
                    return self.call(start, min(start + batch_size, len(self.rows)))
            return np.concatenate(list(pool.map(one, range(0, len(self.rows), batch_size))))
        return run


def measure(options, repeats, reference=None):
    """Alternating runs of ``options`` ({name: fn}); medians of wall and CPU seconds, and
    the largest change of each answer against the first option's (in its own units)."""
    answers = {name: fn() for name, fn in options.items()}   # warm-up
    wall = {name: [] for name in options}
    cpu = {name: [] for name in options}
    for _ in range(repeats):
        for name, fn in options.items():
            c, t = time.process_time(), time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    first = next(iter(options))
    out = {}
    for name in options:
        change = np.nan
        if reference is not None:
            change = reference(answers[first], answers[name])
        out[name] = (statistics.median(wall[name]), statistics.median(cpu[name]), change)
    return out


def network_change(std):
    def change(a, b):
        ok = np.isfinite(std) & np.isfinite(a) & np.isfinite(b)
        return float(np.max(np.abs(a - b)[ok] / std[ok])) if ok.any() else np.nan
    return change


def export_onnx(network):
    """The network as an ONNX Runtime session (dynamic stars, tokens and requests)."""
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
        import onnxruntime
    except ImportError:
        raise SystemExit("--onnx needs onnx and onnxruntime: pip install onnx onnxruntime")

    class Forward(torch.nn.Module):
        def __init__(self, network):
            super().__init__()
            self.network = network

        def forward(self, ids, values, errors, requests):
            return self.network(ids, values, requests, errors)

    ids = torch.full((8, 69), 5, dtype=torch.long)
    args = (ids, torch.zeros(8, 69), torch.zeros(8, 69), torch.ones(8, 7, dtype=torch.long))
    buffer = io.BytesIO()
    axes = {"ids": {0: "n", 1: "L"}, "values": {0: "n", 1: "L"}, "errors": {0: "n", 1: "L"},
            "requests": {0: "n", 1: "k"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Forward(network).eval(), args, buffer, dynamo=False, opset_version=17,
                          input_names=list(axes), output_names=["mean", "log_var"],
                          dynamic_axes=axes)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(buffer.getvalue(), options,
                                           providers=["CPUExecutionProvider"])

    def run(ids, values, requests, errors):
        out = session.run(None, {"ids": ids.numpy(), "values": values.numpy(),
                                 "errors": errors.numpy(), "requests": requests.numpy()})
        return (torch.from_numpy(out[0]),)
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stars", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--groups", nargs="+", default=list(GROUPS), choices=GROUPS)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--onnx", action="store_true", help="also time ONNX Runtime")
    parser.add_argument("--save", default=None, help="write the figures to this ECSV file")
    args = parser.parse_args()

    cores = available_cores()
    examples = giantfm.examples.load()
    table = vstack([examples] * int(np.ceil(args.stars / len(examples))))[:args.stars]
    n = len(table)
    net = get_model(device="cpu")
    names = [name for name in giantfm.prediction.PREDICTED_LABELS if net.knows(name)]
    batch = giantfm.tokenize(table)
    network = Network(net, batch, names)
    mean, std = net.request(batch, names, progress=False)   # std: changes; mean: label model
    std = std[network.rows]
    change = network_change(std)
    groups = {}
    load_before = os.getloadavg()[0]
    if "threads" in args.groups:
        groups["threads"] = measure({
            f"as 1be7e3b: torch threads {torch.get_num_threads()}, 1024 a call":
                network.serial(1024, torch.get_num_threads()),
            "torch threads 1, 1024 a call": network.serial(1024, 1),
            f"torch threads {torch.get_num_threads()}, 64 a call":
                network.serial(64, torch.get_num_threads()),
            "torch threads 1, 64 a call": network.serial(64, 1),
            f"giantfm pool of {cores} (torch threads 1 each), 64 a call":
                network.pooled(64, cores),
        }, args.repeats, change)
    if "batch" in args.groups:
        groups["batch"] = measure({f"{size} a call, pool of {cores}": network.pooled(size, cores)
                                   for size in (1024, 16, 32, 64, 128, 256, 512)},
                                  args.repeats, change)
    if "packing" in args.groups:
        rng = np.random.default_rng(0)
        drop = rng.random(batch.ids.shape) < 0.15
        mixed = TokenBatch(np.where(drop, 0, batch.ids), np.where(drop, 0, batch.values),
                           np.where(drop, 0, batch.errors))
        packed = Network(net, mixed, names)
        unsorted = copy.copy(packed)   # the same prepared stars, to be put out of order
        order = np.argsort(unsorted.rows)
        for name in ("rows", "ids", "values", "errors", "counts"):
            setattr(unsorted, name, getattr(unsorted, name)[order])
        _, mixed_std = net.request(mixed, names, progress=False)
        mixed_change = network_change(mixed_std[np.sort(packed.rows)])

        def in_input_order(run, rows):
            return lambda: run()[np.argsort(rows)]
        groups["packing"] = measure({
            "sorted by token count, left-packed (predict)":
                in_input_order(packed.serial(64, 1), packed.rows),
            "left-packed, not sorted": in_input_order(unsorted.serial(64, 1), unsorted.rows),
            "neither (padded to the full width)":
                in_input_order(unsorted.serial(64, 1, full_width=True), unsorted.rows),
        }, args.repeats, mixed_change)
    if "grad" in args.groups:
        groups["grad"] = measure({
            "torch.inference_mode": network.serial(64, 1),
            "torch.no_grad": network.serial(64, 1, mode=torch.no_grad),
            "autograd on": network.serial(64, 1, mode=contextlib.nullcontext),
        }, args.repeats, change)
    if "attention" in args.groups:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        groups["attention"] = measure({
            "fused (flash) kernel": network.serial(64, 1),
            "math kernel": network.serial(64, 1, context=lambda: sdpa_kernel(SDPBackend.MATH)),
        }, args.repeats, change)
    if "precision" in args.groups:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # torch.ao.quantization is deprecated
            quantized = torch.ao.quantization.quantize_dynamic(
                copy.deepcopy(net.network), {torch.nn.Linear}, dtype=torch.qint8)
        groups["precision"] = measure({
            "float32": network.serial(64, 1),
            "bfloat16 autocast": network.serial(
                64, 1, context=lambda: torch.autocast("cpu", dtype=torch.bfloat16)),
            "int8 dynamic quantization (linear layers)": network.serial(64, 1,
                                                                        network=quantized),
        }, args.repeats, change)
    if args.compile:
        start = time.perf_counter()
        compiled = torch.compile(net.network, dynamic=True)
        network.serial(64, 1, network=compiled)()
        print(f"torch.compile: warm-up (compile and first run) {time.perf_counter() - start:.0f} s")
        groups["compile"] = measure({"eager": network.serial(64, 1),
                                     "torch.compile (dynamic shapes)":
                                         network.serial(64, 1, network=compiled)},
                                    args.repeats, change)
    if args.onnx:
        start = time.perf_counter()
        session = export_onnx(net.network)
        print(f"ONNX export and session: {time.perf_counter() - start:.1f} s")
        groups["onnx"] = measure({
            "torch": network.serial(64, 1),
            "ONNX Runtime (1 thread)": network.serial(64, 1, network=session),
            "torch, 32 a call": network.serial(32, 1),
            "ONNX Runtime, 32 a call": network.serial(32, 1, network=session),
        }, args.repeats, change)
    if "label_model" in args.groups:
        import xgboost
        from giantfm import labelmodel

        lm = label_model_of(net)
        x = np.column_stack([giantfm.tokens.from_token_scale(name, mean[:, names.index(name)])[0]
                             for name in labelmodel.FEATURES])
        boosters = [b for s in lm.state_boosters.values() for b in s.values()] \
            + [lm.state_classifier]

        def xgb(how, threads, rows=x):
            def run():
                for b in boosters:
                    b.set_param({"nthread": threads})
                if how == "dmatrix":
                    data = xgboost.DMatrix(rows, nthread=threads)
                    out = [b.predict(data) for b in boosters]
                else:
                    out = [b.inplace_predict(rows) for b in boosters]
                for b in boosters:
                    b.set_param({"nthread": 1})
                return np.concatenate([o.reshape(len(rows), -1) for o in out], axis=1)
            return run

        def pooled():
            with giantfm.conf.set_temp("threads", cores):
                return np.concatenate([labelmodel._booster_predict(b, x).reshape(len(x), -1)
                                       for b in boosters], axis=1)

        def largest(a, b):
            return float(np.max(np.abs(a - b)))
        groups["label_model"] = measure({
            "DMatrix, nthread 1 (1be7e3b)": xgb("dmatrix", 1),
            "inplace_predict, nthread 1": xgb("inplace", 1),
            f"inplace_predict, nthread {cores}": xgb("inplace", cores),
            f"inplace_predict split over giantfm's pool of {cores}": pooled,
        }, args.repeats, largest)
        one = x[:1]
        groups["label_model, one star"] = measure({
            "inplace_predict, nthread 1": xgb("inplace", 1, one),
            f"inplace_predict, nthread {cores}": xgb("inplace", cores, one),
        }, args.repeats, largest)
    load_after = os.getloadavg()[0]

    print(f"# {n} stars; medians of {args.repeats} alternating runs; {cores} cores; load "
          f"average {load_before:.1f} before, {load_after:.1f} after")
    rows = []
    for group, results in groups.items():
        (first_wall, first_cpu, _), size = next(iter(results.values())), \
            (1 if group == "label_model, one star" else n)
        print(f"\n[{group}]")
        for option, (wall, cpu, delta) in results.items():
            print(f"  {option:58s} {size / wall:9,.0f} /s  x{first_wall / wall:5.2f} wall  "
                  f"x{first_cpu / cpu:5.2f} cpu   change {delta:.1e}")
            rows.append({"group": group, "option": option, "stars_per_s": round(size / wall),
                         "ratio": round(first_wall / wall, 2),
                         "cpu_ratio": round(first_cpu / cpu, 2),
                         "change": float(f"{delta:.1e}") if np.isfinite(delta) else np.nan})
    if args.save:
        save_table(rows, args.save,
                   title="giantfm.predict: what each way of running its network and label "
                         "model gives (cpu)",
                   machine=machine_description(load=max(load_before, load_after)),
                   notes=(f"{n} stars (the bundled examples repeated), medians of "
                          f"{args.repeats} alternating runs; ratio: rate over the group's "
                          "first option by wall time, cpu_ratio by the process's CPU time; "
                          "change: largest |answer change| / predicted error against the "
                          f"first (label model: in its own units); load average "
                          f"{load_before:.1f} before and {load_after:.1f} after"))


if __name__ == "__main__":
    main()
