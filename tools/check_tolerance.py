"""Do predict's answers stay inside the tolerance when it runs another way?

Usage::

    python tools/check_tolerance.py [--change exact bf16 int8] [--dataset DATASET]
        [--model MODEL] [--stars N]

Runs `giantfm.predict` the reference way -- float32, one thread, 1024 stars a
network call -- and each ``--change``, on the test split of ``DATASET``
(default ``work_data/giantfm-dataset-v5.h5``: its stars as the Gaia archive
gives them, `giantfm.train.dataset.datafile.xp_table`) and on the bundled
example stars, and prints each criterion with its verdict:

* the test split's giants' scores, as ``giantfm evaluate`` measures them
  (MAD-std of the residuals against the APOGEE labels, and against the label
  model's mass and age, `giantfm.train.evaluation.scoring`), and the MAD-std of
  their z, each within 1 % of the reference's;
* each label's median |change| / predicted error below 0.05, on the test split
  and on the examples; ``p_rc``'s median |change| below 0.01 and fewer than
  0.5 % of the ``evstate`` answers flipped;
* for a change meant to be exact, every answer within float32 rounding: the
  largest |change| below 1e-4 of its error.

Changes: ``exact``, predict as giantfm now runs it (its threads, 64 stars a
call); ``bf16``, the network under bfloat16 autocast; ``int8``, its linear
layers quantized to int8 dynamically (``torch.ao.quantization``, deprecated:
its warnings are caught here).
"""
import argparse
import copy
import warnings

import numpy as np

import giantfm
from giantfm.prediction import get_model
from giantfm.results import EVSTATE_COLUMN
from giantfm.utils._columns import floats
from giantfm.vocab import P_RC, VALUE_LABEL_NAMES
from giantfm.train.evaluation.scoring import REFERENCES, calibration, metrics, reference_error

def changed_model(net, change):
    """A copy of ``net`` that runs the network the way ``change`` says (None: as it is)."""
    if change in (None, "exact"):
        return net
    other = copy.copy(net)
    if change == "bf16":
        import torch
        other.inference_dtype = torch.bfloat16
    elif change == "int8":
        import torch
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # torch.ao.quantization is deprecated
            other.network = torch.ao.quantization.quantize_dynamic(
                copy.deepcopy(net.network), {torch.nn.Linear}, dtype=torch.qint8)
    else:
        raise SystemExit(f"unknown change {change!r}")
    return other


def run(table, net, change):
    """predict's answers the reference way (change None) or as ``change`` says."""
    if change is None:
        with giantfm.conf.set_temp("threads", 1):
            return giantfm.predict(table, model=net, progress=False, batch_size=1024)
    return giantfm.predict(table, model=changed_model(net, change), progress=False)


def column(result, name):
    return floats(result[name])


def answer_changes(new, old):
    """{criterion: (value, limit)} of the changes of the answers."""
    out = {}
    worst = 0.0
    for label in VALUE_LABEL_NAMES:
        delta = np.abs(column(new, label) - column(old, label)) / column(old, f"{label}_err")
        delta = delta[np.isfinite(delta)]
        out[f"{label}: median |change| / err"] = (float(np.median(delta)), 0.05)
        worst = max(worst, float(delta.max()))
    if P_RC in old.colnames:
        delta = np.abs(column(new, P_RC) - column(old, P_RC))
        out["p_rc: median |change|"] = (float(np.nanmedian(delta)), 0.01)
        a, b = np.ma.getdata(new[EVSTATE_COLUMN]), np.ma.getdata(old[EVSTATE_COLUMN])
        both = ~(np.ma.getmaskarray(new[EVSTATE_COLUMN]) | np.ma.getmaskarray(old[EVSTATE_COLUMN]))
        out["evstate: share flipped"] = (float(np.mean(a[both] != b[both])), 0.005)
    out["largest |change| / err (exact: float32 rounding)"] = (worst, 1e-4)
    return out


def scores(result, labels, giants):
    """{label: (sigma, z sigma)} of the giants against their references."""
    out = {}
    for label in VALUE_LABEL_NAMES:
        reference, key = REFERENCES[label][0]
        truth = np.asarray(labels[key], dtype=float)[giants]
        truth_err = np.asarray(reference_error(reference, labels, key, truth), dtype=float)
        truth_err = truth_err[giants] if truth_err.shape != truth.shape else truth_err
        pred, err = column(result, label)[giants], column(result, f"{label}_err")[giants]
        out[label] = (metrics(pred, truth)["sigma"],
                      calibration(pred, err, truth, truth_err)["sigma"])
    return out


def verdict(value, limit):
    return "pass" if value < limit else "FAIL"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--change", nargs="+", default=["exact", "bf16", "int8"],
                        choices=("exact", "bf16", "int8"))
    parser.add_argument("--dataset", default="work_data/giantfm-dataset-v5.h5")
    parser.add_argument("--model", default=None, help="saved model (default: the bundled one)")
    parser.add_argument("--stars", type=int, default=None,
                        help="the first N stars of the test split only (a quick look)")
    args = parser.parse_args()

    from giantfm.train.dataset.datafile import load_dataset, xp_table

    net = get_model(device="cpu", model=args.model)
    data = load_dataset(args.dataset)
    rows = None if args.stars is None else np.arange(min(args.stars, len(data["test"])))
    test = xp_table(data, "test", rows=rows, labels=())
    labels = {k: np.asarray(v)[rows] if rows is not None else np.asarray(v)
              for k, v in data["labels"]["test"].items()}
    giants = np.asarray(labels["giant"], dtype=bool)
    examples = giantfm.examples.load()
    reference = {"test": run(test, net, None), "examples": run(examples, net, None)}
    reference_scores = scores(reference["test"], labels, giants)
    print(f"# model {net.metadata.name}; test split of {args.dataset}: {len(test)} stars "
          f"({giants.sum()} giants scored); {len(examples)} example stars")
    failed = False
    for change in args.change:
        print(f"\n[{change}]")
        new = {"test": run(test, net, change), "examples": run(examples, net, change)}
        changed_scores = scores(new["test"], labels, giants)
        for label, (sigma, z) in reference_scores.items():
            s_new, z_new = changed_scores[label]
            for what, old, now in (("score", sigma, s_new), ("z", z, z_new)):
                ratio = abs(now / old - 1)
                failed |= ratio >= 0.01 and change != "exact"
                print(f"  test giants {label:8s} {what:5s} {old:10.4g} -> {now:10.4g} "
                      f"({ratio:6.2%} change, limit 1 %): {verdict(ratio, 0.01)}")
        for where in ("test", "examples"):
            for criterion, (value, limit) in answer_changes(new[where], reference[where]).items():
                exact_only = criterion.startswith("largest")
                if exact_only and change != "exact":
                    print(f"  {where:8s} {criterion:48s} {value:10.3g} (for exact changes)")
                    continue
                failed |= value >= limit
                print(f"  {where:8s} {criterion:48s} {value:10.3g} (limit {limit:g}): "
                      f"{verdict(value, limit)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
