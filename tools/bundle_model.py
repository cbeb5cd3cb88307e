"""Bundle a trained model into ``giantfm/data/model/``, then write its model card.

Two steps, because the card reports the evaluation of the *bundled* model:

1. ``python tools/bundle_model.py MODEL_DIR DATASET.h5 NAME "TRAINING NOTE"``
   copies the weights and config of a trained model folder and the label
   model that made the dataset's masses and ages (saved beside the dataset by
   ``giantfm build-dataset``), and records in the config what `predict`
   needs: where the training labels lie (`giantfm.generate_spectrum` flags
   requests outside), the label model's calibration domain (mass and age are
   masked outside it) and its scatter against asteroseismology (added to the
   mass and age errors, so that they are uncertainties on the seismic scale),
   how to combine the direct and the chained mass and age and how to scale
   the uncertainties (`giantfm.train.calibration.calibrate_answers`), whether
   to truncate the coefficients, and the calibration of the
   ``ood_score`` (`giantfm.train.ood.calibrate_ood`), both measured on the
   dataset's validation split.
2. ``python tools/bundle_model.py --card EVAL_DIR`` writes ``model_card.md``
   from ``giantfm evaluate --model giantfm/data/model ... --magnitudes ...``'s
   ``metrics.ecsv`` and ``magnitudes.ecsv`` in EVAL_DIR.

The model records a clean version, ``metadata['version']``: giantfm's version
without its local part (no commit hash, no date of uncommitted changes), the
version users see in ``giantfm example``; the full version it was bundled with
is kept in ``metadata['bundled_with']``.
"""
import json
import shutil
import sys
from pathlib import Path

from astropy.table import Table

from giantfm import __version__, vocab
from giantfm.io.dataset import load_arrays
from giantfm.labelmodel import LABEL_MODEL_DIR, load_label_model
from giantfm.model import load_model
from giantfm.train.calibration import calibrate_answers
from giantfm.train.dataset import label_model_path, label_support
from giantfm.train.ood import calibrate_ood
from giantfm.utils import atomic_write
from giantfm.utils._version import public_version

DEST = Path("giantfm/data/model")


def _write_text(path, text):
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _write_config(folder, config):
    # allow_nan=False: a NaN scatter or scale fails here, not when predict reads it
    _write_text(folder / "config.json", json.dumps(config, indent=1, allow_nan=False))


def bundle(model_dir, dataset, name, training_note):
    model_dir = Path(model_dir)
    arrays = load_arrays(dataset)
    attrs = arrays["attrs"]
    validation = attrs["label_model"]["validation"]
    chosen = validation[validation["chosen"]]
    domain = validation["domain"]
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("vocab_version") != vocab.VOCAB_VERSION:
        raise SystemExit(f"{model_dir} has vocabulary version {config.get('vocab_version')}, "
                         f"not {vocab.VOCAB_VERSION} (see tools/upgrade_vocabulary.py)")
    metadata = config.get("metadata") or {}
    metadata.update(
        name=name, version=public_version(__version__), bundled_with=__version__,
        training_note=training_note,
        dataset={"file": Path(dataset).name, "format_version": attrs["format_version"],
                 "counts": attrs["counts"], "label_scale": attrs["label_scale"]},
        label_domain={f: [lo, hi]
                      for f, lo, hi in zip(domain["features"], domain["low"], domain["high"])},
        label_floor={"mass_fractional": chosen["mass_fractional"]["overall"]["scatter"],
                     "log10_age": chosen["log_age"]["overall"]["scatter"]},
        label_support=label_support(arrays))
    for key in ("chain", "uncertainty_scale", "ood", "last_epoch"):
        metadata.pop(key, None)
    # measured (accuracy page): with error inputs all coefficients, with their errors, beat
    # the archive's truncation at every magnitude
    metadata["truncate"] = not config["model_config"].get("error_inputs", False)
    config["metadata"] = metadata
    # built and calibrated beside the bundled model, which it replaces only when complete
    staging = DEST.with_name(DEST.name + ".staging")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    shutil.copyfile(model_dir / "weights.pt", staging / "weights.pt")
    shutil.copytree(label_model_path(dataset), staging / LABEL_MODEL_DIR)
    _write_config(staging, config)

    model = load_model(staging, device="cpu")
    metadata["chain"], metadata["uncertainty_scale"] = calibrate_answers(
        model, load_label_model(staging / LABEL_MODEL_DIR), dataset)
    print("chain:", json.dumps(metadata["chain"]))
    print("uncertainty scales:", json.dumps(metadata["uncertainty_scale"]))
    metadata["ood"] = calibrate_ood(model, dataset)
    print("ood scales:", metadata["ood"]["scales"])
    _write_config(staging, config)
    old = DEST.with_name(DEST.name + ".old")
    if DEST.exists():
        DEST.rename(old)
    staging.rename(DEST)
    if old.exists():
        shutil.rmtree(old)
    print(f"bundled {name} into {DEST} (write its model card next: --card EVAL_DIR)")


def card(eval_dir):
    eval_dir = Path(eval_dir)
    config = json.loads((DEST / "config.json").read_text())
    metadata = config["metadata"]
    name, dataset = metadata["name"], metadata["dataset"]
    metrics = Table.read(eval_dir / "metrics.ecsv")
    giants = metrics[metrics["sample"] == "giants"]
    chain = metadata.get("chain", {})
    lines = [f"# Model card: {name}", "", metadata.get("training_note", ""), "",
             f"giantfm {metadata['version']} (bundled with {metadata['bundled_with']}); model "
             f"size {config['model_config']}.", "",
             f"Training data: {dataset['file']} (labels on the {dataset['label_scale']} "
             "scale; mass and age from giantfm's label model, see the datasheet). Test split: "
             "the fixed `test_apogee_ids.txt`, never used for training or model selection.", "",
             "Mass and age are defined inside the label model's calibration domain "
             f"{metadata['label_domain']} and masked outside it. They combine the network's "
             "own estimate with its labels put through the label model, with the label "
             f"model's share {chain.get('weights')} (measured on the validation split). "
             "Their errors include the label model's scatter against asteroseismology "
             f"({100 * metadata['label_floor']['mass_fractional']:.1f} % in mass, "
             f"{metadata['label_floor']['log10_age']:.3f} dex in age).", "",
             "## Test-split giants (sigma = MAD-std of residuals)", "",
             "| system | inputs | label | reference | N | sigma | bias | z MAD-std |",
             "|---|---|---|---|---|---|---|---|"]
    for row in giants:
        lines.append(f"| {row['system']} | {row['experiment']} | {row['label']} | "
                     f"{row['reference']} | {row['n']} | {row['sigma']:.4g} | "
                     f"{row['bias']:.3g} | {row['z_sigma']:.3g} |")
    path = eval_dir / "magnitudes.ecsv"
    if path.exists():
        levels = Table.read(path)
        levels = levels[(levels["sample"] == "giants") & (levels["system"] == "model")]
        lines += ["", "## Against magnitude: test-split giants as faint copies "
                  "(giantfm.xp.noise)", "",
                  "| G | label | N | coverage | sigma | bias | z MAD-std |",
                  "|---|---|---|---|---|---|---|"]
        for row in levels:
            lines.append(f"| {row['level']} | {row['label']} | {row['n']} | "
                         f"{row['coverage']:.3f} | {row['sigma']:.4g} | {row['bias']:.3g} | "
                         f"{row['z_sigma']:.3g} |")
    _write_text(DEST / "model_card.md", "\n".join(lines) + "\n")
    print(f"wrote {DEST / 'model_card.md'}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--card"]:
        card(sys.argv[2])
    else:
        bundle(*sys.argv[1:5])
