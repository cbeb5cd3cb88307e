"""The training driver: ``giantfm train``, the command line of `giantfm.model.train`.

Reads a training-set file (`giantfm.io.dataset.load_dataset`: its ``train``
and ``val`` splits), trains the token-set transformer on one device and
writes ``best/`` and ``last/`` (saved models, see `giantfm.model.load_model`),
``metrics.csv`` (one row per epoch) and, with ``--half``, ``final/`` (the best
weights in float16) under ``--out``::

    giantfm train --dataset work_data/giantfm-dataset-v2.h5 --out runs/x --config default

On a training machine with only numpy, torch, h5py and astropy, from a source
tree: ``PYTHONPATH=. python -m giantfm.train.trainer ...`` (`tools/gpu_train.sh`).
"""
import argparse
import json
from pathlib import Path

from ..io.dataset import load_dataset
from ..model.network import PRESETS, ModelConfig
from ..model.training import TrainConfig, train

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
    parser.add_argument("--init", default=None,
                        help="saved model folder to fine-tune from (its size replaces --config)")
    parser.add_argument("--half", action="store_true",
                        help="store the final best weights in float16 as final/")
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
    splits = {name: (data[name].ids, data[name].values, data[name].errors)
              for name in ("train", "val")}
    out = Path(args.out)
    model = train(splits["train"], splits["val"], model_config, train_config, out,
                  device=args.device, init=args.init)
    if args.half:
        model.save(out / "final", half=True)
    best = model.metadata.get("best_metrics", {})
    print(f"trained {model!r}: {model.metadata['epochs_run']} epochs, best epoch "
          f"{model.metadata.get('best_epoch')}, " +
          ", ".join(f"{k}={v:.4f}" for k, v in best.items()))
    return model


if __name__ == "__main__":
    main()
