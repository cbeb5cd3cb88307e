"""The training driver: ``giantfm train``, the command line of `giantfm.model.train`.

Reads a training-set file (`giantfm.train.dataset.datafile.load_dataset`: its ``train``
and ``val`` splits), trains the token-set transformer on one device and
writes ``best/`` and ``last/`` (saved models, see `giantfm.model.load_model`),
``metrics.csv`` (one row per epoch), ``checkpoint.pt`` and, with ``--half``,
``final/`` (the best weights in float16) under ``--out``::

    giantfm train --dataset work_data/giantfm-dataset-v4.h5 --out runs/x --config default

By default the training stars are shown as faint copies at random magnitudes
(``--augment faint``, `giantfm.train.dataset.augment.FaintCopies`), and the
validation stars are those as stored plus one fixed faint copy of each XP
star, so that model selection weighs every magnitude. ``--resume`` continues
the run in ``--out`` (weights, optimiser, schedule, random states) and
``--stop-after-minutes`` ends a sitting cleanly, so that one run can span
several CPU sittings.

On a training machine with only numpy, torch, h5py and astropy, from a source
tree: ``PYTHONPATH=. python -m giantfm.train.trainer ...`` (`tools/gpu_train.sh`).
"""
import argparse
import json
from pathlib import Path

from ..model.network import PRESETS, ModelConfig
from ..model.training import TrainConfig, train
from .dataset.augment import FaintCopies, with_faint_copies
from .dataset.datafile import load_dataset

__all__ = ["main"]


def main(argv=None):
    """Train a model from the command line (see the module docstring); returns the model."""
    parser = argparse.ArgumentParser(
        prog="giantfm train",
        description="Train the giantfm token-set transformer on a training-set file "
                    "(giantfm build-dataset): its train split, with the val split for "
                    "early stopping and checkpoints.")
    parser.add_argument("--dataset", required=True, help="HDF5 training set")
    parser.add_argument("--out", required=True, help="output folder (best/, last/, metrics.csv)")
    parser.add_argument("--config", default="default",
                        help=f"model size: {', '.join(PRESETS)} or a JSON object of "
                             "ModelConfig fields")
    parser.add_argument("--train-config", default="{}",
                        help="JSON object of TrainConfig fields")
    parser.add_argument("--epochs", type=int, help="overrides TrainConfig.epochs")
    parser.add_argument("--batch-size", type=int, help="overrides TrainConfig.batch_size")
    parser.add_argument("--max-minutes", type=float, help="overrides TrainConfig.max_minutes")
    parser.add_argument("--seed", type=int, help="overrides TrainConfig.seed")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N, mps (default: auto)")
    parser.add_argument("--start-from", default=None, metavar="MODEL_DIR",
                        help="a saved model to continue training (a warm start; its size "
                             "replaces --config)")
    parser.add_argument("--half", action="store_true",
                        help="store the final best weights in float16 as final/")
    parser.add_argument("--augment", choices=("faint", "none"), default="faint",
                        help="faint: train on faint copies at random G (default); none: the "
                             "stars as stored")
    parser.add_argument("--p-native", type=float, default=0.25,
                        help="with --augment faint: share of stars shown as stored")
    parser.add_argument("--p-untruncated", type=float, default=0.5,
                        help="with --augment faint: share of copies that keep all coefficients")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its checkpoint")
    parser.add_argument("--stop-after-minutes", type=float,
                        help="end this sitting cleanly after this many minutes (resume later)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    model_config = ModelConfig.from_preset(args.config)
    overrides = json.loads(args.train_config)
    for key in ("epochs", "batch_size", "max_minutes", "seed"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.no_progress:
        overrides["progress"] = False
    train_config = TrainConfig.from_dict(overrides)
    data = load_dataset(args.dataset)
    augment, val = None, data["val"]
    if args.augment == "faint":
        augment = FaintCopies(data["train"], data["inputs"]["train"], p_native=args.p_native,
                              p_untruncated=args.p_untruncated)
        val = with_faint_copies(val, data["inputs"]["val"], 1, seed=train_config.seed + 12345)
    out = Path(args.out)
    model = train(data["train"], val, model_config, train_config, out, device=args.device,
                  start_from=args.start_from, augment=augment, resume=args.resume,
                  stop_after_minutes=args.stop_after_minutes)
    if args.half:
        model.save(out / "final", half=True)
    record = model.metadata.training
    best = record.get("best_metrics", {})
    print(f"trained {model!r}: {record['epochs_run']} epochs, best epoch "
          f"{record.get('best_epoch')}, " +
          ", ".join(f"{k}={float('nan') if v is None else v:.4f}" for k, v in best.items()))
    return model


if __name__ == "__main__":
    main()
