"""Speed of `giantfm.finetune` on 1,000 stars: the automatic choice of method, the method
it picks, XGBoost from scratch and predict.

Usage::

    python benchmarks/bench_finetune.py --dataset work_data/giantfm-dataset-v4.h5
        [--stars 1000] [--repeats 1] [--threads 2] [--device cpu]
        [--save docs/results/bench_finetune.ecsv]

The stars are ``--stars`` training-split giants of the training-set file with XP
coefficients and a [C/N] age (Hasselquist et al. 2020), drawn with a fixed seed, in
Gaia archive layout (`giantfm.train.dataset.datafile.xp_table`); the label is ``age_cn``
(log10). Timed, each the median of ``--repeats`` runs in this process, torch on
``--threads`` threads:

* ``finetune, method auto``: `giantfm.finetune` end to end with its defaults: reading
  and tokenising the table, the encoder's output once, every method of
  `giantfm.teaching.METHODS` cross-validated on the same folds (the epoch-based
  ones to the epochs `giantfm.FinetuneSettings.schedule` gives 1,000 stars, or
  their patience), the choice, the calibration and writing the model;
* ``finetune, method <picked>``: the same with the method ``auto`` picked (its
  folds included: they calibrate the errors);
* ``xgboost``: an XGBoost regressor from scratch on the same stars (a 20 % validation
  cut) and the project's baseline features
  (`giantfm.train.evaluation.baseline.fit_baseline`, its default grid of four depths),
  the tokenisation included;
* ``predict``: `giantfm.predict` of the same stars with the fine-tuned model and
  with the bundled one.

The goals (the fine-tuning issue): the method ``auto`` picks within 2 minutes and the
choice itself within 6 minutes, on 2 idle cores; the machine's load average is saved
with the figures.
"""
import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import giantfm
from giantfm import prediction
from giantfm.teaching import validation_split
from giantfm.train.evaluation.baseline import fit_baseline
from giantfm.train.dataset.datafile import load_dataset, xp_table
from giantfm.train.evaluation.finetune_evidence import cn_vocabulary, stars_with_cn_age, with_cn_age
from results import machine_description, save_table

#: The goals, in seconds, on 2 idle cores.
GOALS = {"picked": 120, "auto": 360}


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main(argv=None):
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--stars", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--save")
    args = parser.parse_args(argv)

    import torch
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    data = load_dataset(args.dataset)
    pool = stars_with_cn_age(data, "train")
    rows = np.sort(np.random.default_rng(0).choice(pool, args.stars, replace=False))
    table = xp_table(data, "train", rows)
    net = prediction.get_model(device=args.device)
    out = Path(tempfile.mkdtemp()) / "model"

    def tune(method):
        def run():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = giantfm.finetune(table, "age_cn", out, log=["age_cn"], model=net,
                                          method=method, overwrite=True, progress="off",
                                          device=args.device)
            for w in caught:
                print(f"  warning: {w.message}")
            return result
        return run
    auto_s, (model, report) = timed(tune("auto"), args.repeats)
    picked = report.method["age_cn"]
    picked_s, (model, picked_report) = timed(tune(picked), args.repeats)

    vocabulary = cn_vocabulary(net)

    def xgboost():
        batch = with_cn_age(table, net, vocabulary)
        train, val = validation_split(np.flatnonzero(batch.ok), 0.2, 0)
        return fit_baseline(batch[train], batch[val], targets=["age_cn"], vocabulary=vocabulary,
                            nthread=args.threads)
    xgb_s, _ = timed(xgboost, args.repeats)

    giantfm.predict(table[:50], model=model, progress=False)    # warm both up
    giantfm.predict(table[:50], model=net, progress=False)
    tuned_predict_s, _ = timed(lambda: giantfm.predict(table, model=model, progress=False),
                               max(args.repeats, 3))
    bundled_predict_s, _ = timed(lambda: giantfm.predict(table, model=net, progress=False),
                                 max(args.repeats, 3))

    def cv(method):
        return report.cross_validation["age_cn"][method]["mad_std_dex"]

    def epochs(method):
        return int(report.runs[method].get("epochs_run", 0))
    rows = [
        {"what": "finetune, method auto", "method": "auto", "stars": args.stars,
         "seconds": auto_s, "goal_s": GOALS["auto"], "cv_mad_std_dex": cv(picked),
         "epochs": -1, "ratio": auto_s / xgb_s},
        *({"what": f"  of which {method}", "method": method, "stars": args.stars,
           "seconds": float(report.runs[method]["elapsed_s"]), "goal_s": np.nan,
           "cv_mad_std_dex": cv(method), "epochs": epochs(method), "ratio": np.nan}
          for method in report.runs),
        {"what": f"finetune, method {picked} (the pick)", "method": picked,
         "stars": args.stars, "seconds": picked_s, "goal_s": GOALS["picked"],
         "cv_mad_std_dex": picked_report.cross_validation["age_cn"][picked]["mad_std_dex"],
         "epochs": -1, "ratio": picked_s / xgb_s},
        {"what": "xgboost from scratch (same stars)", "method": "", "stars": args.stars,
         "seconds": xgb_s, "goal_s": np.nan, "cv_mad_std_dex": np.nan, "epochs": -1,
         "ratio": 1.0},
        {"what": "predict, fine-tuned model", "method": picked, "stars": args.stars,
         "seconds": tuned_predict_s, "goal_s": np.nan, "cv_mad_std_dex": np.nan,
         "epochs": -1, "ratio": tuned_predict_s / bundled_predict_s},
        {"what": "predict, bundled model", "method": "", "stars": args.stars,
         "seconds": bundled_predict_s, "goal_s": np.nan, "cv_mad_std_dex": np.nan,
         "epochs": -1, "ratio": 1.0},
    ]
    for row in rows:
        print(f"{row['what']:40s} {row['seconds']:8.2f} s"
              + (f"  (goal <= {row['goal_s']:.0f} s: "
                 f"{'met' if row['seconds'] <= row['goal_s'] else 'MISSED'})"
                 if np.isfinite(row["goal_s"]) else "")
              + (f"  CV {row['cv_mad_std_dex']:.3f} dex"
                 if np.isfinite(row["cv_mad_std_dex"]) else ""))
    if args.save:
        save_table(rows, args.save, title=f"giantfm.finetune on {args.stars} stars",
                   machine=machine_description(args.device, load=load_before)
                   + f" before the run, {os.getloadavg()[0]:.1f} after; torch on "
                   f"{args.threads} threads",
                   notes=(f"medians of {args.repeats} runs in one process (predict: of "
                          f"{max(args.repeats, 3)}); ratio: fine-tune / XGBoost, and "
                          "fine-tuned / bundled model for predict; the label is the [C/N] age "
                          "(log10) of training-split giants; goal_s: the issue's goals on 2 "
                          "idle cores"))


if __name__ == "__main__":
    main()
