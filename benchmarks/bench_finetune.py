"""Speed of `giantfm.finetune` on 1,000 stars, beside XGBoost from scratch and predict.

Usage::

    python benchmarks/bench_finetune.py --dataset work_data/giantfm-dataset-v4.h5
        [--stars 1000] [--repeats 3] [--device cpu]
        [--save docs/results/bench_finetune.ecsv]

The stars are ``--stars`` training-split giants of the training-set file with XP
coefficients and a [C/N] age (Hasselquist et al. 2020), drawn with a fixed seed, in
Gaia archive layout (`giantfm.train.dataset.datafile.xp_table`); the label is ``age_cn``
(log10). Timed, each the median of ``--repeats`` runs in this process:

* ``finetune``: `giantfm.finetune` end to end with its defaults (300 epochs at
  most, early stopping with patience 100): reading and tokenising the table, the
  encoder's output once, the epochs, the calibration on the validation stars and
  writing the model; also per epoch;
* ``xgboost``: an XGBoost regressor from scratch on the same training and
  validation stars and the project's baseline features
  (`giantfm.train.evaluation.baseline.fit_baseline`, its default grid of four depths), the
  tokenisation included;
* ``predict``: `giantfm.predict` of the same stars with the fine-tuned model and
  with the bundled one (one more answer per star: the ratio should be near 1).
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import giantfm
from giantfm import prediction
from giantfm.teaching import validation_split
from giantfm.train.evaluation.baseline import fit_baseline
from giantfm.train.dataset.datafile import load_dataset, xp_table
from giantfm.train.evaluation.finetune_evidence import cn_vocabulary, stars_with_cn_age, with_cn_age
from results import machine_description, save_table


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--stars", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--save")
    args = parser.parse_args(argv)

    data = load_dataset(args.dataset)
    pool = stars_with_cn_age(data, "train")
    rows = np.sort(np.random.default_rng(0).choice(pool, args.stars, replace=False))
    table = xp_table(data, "train", rows)
    net = prediction.get_model(device=args.device)
    out = Path(tempfile.mkdtemp()) / "model"

    def tune():
        return giantfm.finetune(table, "age_cn", out, log=["age_cn"], model=net,
                                overwrite=True, progress="off", device=args.device)
    tune_s, (model, report) = timed(tune, args.repeats)

    vocabulary = cn_vocabulary(net)

    def xgboost():
        batch = with_cn_age(table, net, vocabulary)
        train, val = validation_split(np.flatnonzero(batch.ok), 0.2, 0)
        return fit_baseline(batch[train], batch[val], targets=["age_cn"], vocabulary=vocabulary)
    xgb_s, _ = timed(xgboost, args.repeats)

    giantfm.predict(table[:50], model=model, progress=False)    # warm both up
    giantfm.predict(table[:50], model=net, progress=False)
    tuned_predict_s, _ = timed(lambda: giantfm.predict(table, model=model, progress=False),
                               args.repeats)
    bundled_predict_s, _ = timed(lambda: giantfm.predict(table, model=net, progress=False),
                                 args.repeats)

    rows = [
        {"what": "finetune (end to end)", "stars": args.stars, "seconds": tune_s,
         "per_epoch_s": tune_s / report.epochs_run, "epochs": report.epochs_run,
         "ratio": tune_s / xgb_s},
        {"what": "xgboost from scratch (same stars)", "stars": args.stars, "seconds": xgb_s,
         "per_epoch_s": np.nan, "epochs": -1, "ratio": 1.0},
        {"what": "predict, fine-tuned model", "stars": args.stars, "seconds": tuned_predict_s,
         "per_epoch_s": np.nan, "epochs": -1, "ratio": tuned_predict_s / bundled_predict_s},
        {"what": "predict, bundled model", "stars": args.stars, "seconds": bundled_predict_s,
         "per_epoch_s": np.nan, "epochs": -1, "ratio": 1.0},
    ]
    for row in rows:
        print(f"{row['what']:36s} {row['seconds']:8.2f} s  ratio {row['ratio']:.2f}"
              + (f"  ({row['epochs']} epochs, {row['per_epoch_s']:.3f} s each)"
                 if row["epochs"] > 0 else ""))
    print(f"goal: <= 600 s on a 2-core CPU for {args.stars} stars: "
          f"{'met' if tune_s <= 600 else 'MISSED'}")
    if args.save:
        save_table(rows, args.save, title=f"giantfm.finetune on {args.stars} stars",
                   machine=machine_description(args.device),
                   notes=(f"medians of {args.repeats} runs in one process; ratio: fine-tune / "
                          "XGBoost, and fine-tuned / bundled model for predict; the label is "
                          "the [C/N] age (log10) of training-split giants"))


if __name__ == "__main__":
    main()
