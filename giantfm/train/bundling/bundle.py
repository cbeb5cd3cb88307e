"""Bundling a trained model: the model contract measured and written beside its weights.

A model folder that ``giantfm train`` writes holds the network; what the verbs
need to turn its answers into results (`giantfm.metadata.ModelMetadata`) is
measured here, on the validation split of the dataset it was trained on, and
written with it, together with the label model that made the dataset's masses
and ages. Two steps, because the model card reports the evaluation of the
*bundled* model::

    giantfm bundle MODEL_DIR DATASET.h5 --name NAME --note "TRAINING NOTE" [--dest DIR]
    giantfm evaluate --model DIR --dataset DATASET.h5 --out EVAL_DIR --magnitudes ...
    giantfm bundle --card EVAL_DIR [--dest DIR]

The first (`bundle_model`) copies the weights and the label model (saved
beside the dataset by ``giantfm build-dataset``), records where the training
labels lie (`giantfm.generate_spectrum` and `giantfm.request` flag inputs
outside), the label model's calibration box (mass and age are masked outside
it) and its scatter against asteroseismology (added to the mass and age
errors), whether to truncate the coefficients, and then measures how to
combine the direct and the chained mass and age and how to scale the
uncertainties (`giantfm.train.bundling.answers.calibrate_answers`) and the
calibration of ``ood_score`` (`giantfm.train.bundling.ood.calibrate_ood`). The model is
built in a staging folder beside ``DIR`` and replaces it only when complete.
The second (`write_model_card`) writes ``model_card.md`` from the
evaluation's ``metrics.ecsv`` and ``magnitudes.ecsv``. ``DIR`` defaults to the
package's own model folder (`giantfm.metadata.BUNDLED_MODEL_DIR`), which is
what a release ships.

The model records a clean version (``version``: giantfm's version without its
local part, no commit hash or date, the version users see in ``giantfm
example``); the full one it was bundled with is ``bundled_with``.
"""
import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from ... import __version__
from ...labelmodel import LABEL_MODEL_DIR, load_label_model
from ...metadata import BUNDLED_MODEL_DIR, CONFIG_FILE, LabelFloor, LabelSupport
from ...model import load_model
from ...model.core import WEIGHTS_FILE
from ...utils import atomic_write
from ...utils._modelfiles import folder_to_write, saving_folder, staged_folder
from ...utils._version import public_version
from .answers import calibrate_answers
from ..dataset.datafile import load_arrays
from ..dataset.build import label_model_path, label_support
from .ood import calibrate_ood

__all__ = ["bundle_model", "chain_score", "write_model_card", "MODEL_CARD", "main"]

#: The model card's file name in a model folder.
MODEL_CARD = "model_card.md"


def _folder(dest):
    return Path(BUNDLED_MODEL_DIR) if dest is None else Path(dest)


def bundle_model(model_dir, dataset, *, name, training_note, dest=None, label_model=None,
                 say=print):
    """Bundle the trained model in ``model_dir`` into ``dest`` (see the module docstring).

    Parameters
    ----------
    model_dir : str or path-like
        A model folder written by ``giantfm train`` (``best/``, say).
    dataset : str or path-like
        The dataset file it was trained on, with its label model beside it.
    name, training_note : str
        The model's name (``'giantfm-default-v5'``) and how it was trained, in words.
    dest : str or path-like, optional
        The folder to write; default the package's bundled model.
    label_model : str, path-like or sequence of them, optional
        The label model of the chain (a folder `giantfm.labelmodel.LabelModel.save`
        wrote); default the one beside the dataset, which made its masses and ages.
        Several are candidates (a chain model fitted on noisy labels, say:
        ``python -m giantfm.train.seismic.fit --feature-noise``): each is calibrated,
        and the one whose combined mass scatters least on the seismic validation
        stars (`chain_score`) is bundled; the scores are recorded in the chain.
    say : callable, optional
        Where progress notes go (``print``; None for none).

    Returns
    -------
    `giantfm.model.TrainedModel`
        The bundled model, loaded from ``dest``.

    Raises
    ------
    FileNotFoundError
        No model in ``model_dir``, no dataset, or no label model beside it.
    ValueError
        A model of another vocabulary version, or a dataset without the
        label model's validation.
    ~giantfm.exceptions.ModelFileError
        ``dest`` is a file (refused before any work), or a file of the model
        folder is damaged.
    OSError
        A write failed (a full disk): ``dest`` is left as it was.
    """
    say = say or (lambda *args: None)
    # refused before the work, not after: a file where the model folder should go
    model_dir, dest = Path(model_dir), folder_to_write(_folder(dest), "bundled model")
    if label_model is None:
        candidates = [label_model_path(dataset)]
    elif isinstance(label_model, (str, os.PathLike)):
        candidates = [Path(label_model)]
    else:
        candidates = [Path(p) for p in label_model]
    for label_models in candidates:
        if not (label_models / "label_model.json").is_file():
            raise FileNotFoundError(f"no label model in {label_models} (a dataset's is "
                                    "beside it, where giantfm build-dataset writes it)")
    model = load_model(model_dir, device="cpu")   # refuses another vocabulary, by name
    arrays = load_arrays(dataset)
    attrs = arrays["attrs"]
    validation = attrs.get("label_model", {}).get("validation")
    if not validation:
        raise ValueError(f"{dataset} records no label-model validation (built with "
                         "--mass-age-source distmass?): its masses have no domain or floor")
    chosen = validation[validation["chosen"]]
    domain = validation["domain"]
    support = label_support(arrays)
    metadata = model.metadata.replace(
        name=name, version=public_version(__version__), bundled_with=__version__,
        training_note=training_note,
        dataset={"file": Path(dataset).name, "format_version": attrs["format_version"],
                 "counts": attrs["counts"], "label_scale": attrs["label_scale"]},
        label_domain={f: (lo, hi)
                      for f, lo, hi in zip(domain["features"], domain["low"], domain["high"])},
        label_floor=LabelFloor(chosen["mass_fractional"]["overall"]["scatter"],
                               chosen["log_age"]["overall"]["scatter"]),
        label_support=LabelSupport(support["ranges"], support["kiel"]),
        # measured (accuracy page): with error inputs all coefficients, with their errors,
        # beat the archive's truncation at every magnitude
        truncate=not model.config.error_inputs,
        chain=None, uncertainty_scale={}, ood=None)
    metadata.training.pop("last_epoch", None)

    # built and calibrated beside the destination, which it replaces only when complete
    with staged_folder(dest) as staging:
        with saving_folder(staging, "bundled model"):
            staging.mkdir(parents=True)
            shutil.copyfile(model_dir / WEIGHTS_FILE, staging / WEIGHTS_FILE)
            shutil.copyfile(model_dir / CONFIG_FILE, staging / CONFIG_FILE)
        staged = load_model(staging, device="cpu")
        staged.metadata = metadata
        scores, best = {}, None
        for label_models in candidates:
            chain, scale = calibrate_answers(staged, load_label_model(label_models), dataset,
                                             label_floor=metadata.label_floor)
            if len(candidates) == 1:   # nothing to choose
                best = (label_models, chain, scale)
                break
            scores[str(label_models)] = chain_score(chain)
            say(f"chain with {label_models}: score {scores[str(label_models)]:.4g}")
            if best is None or scores[str(label_models)] < scores[str(best[0])]:
                best = (label_models, chain, scale)
        label_models, metadata.chain, metadata.uncertainty_scale = best
        if len(candidates) > 1:
            metadata.chain["scatter"]["label_model_candidates"] = scores
        with saving_folder(staging, "bundled model"):
            shutil.copytree(label_models, staging / LABEL_MODEL_DIR)
        say(f"chain: {metadata.chain}")
        say(f"uncertainty scales: {metadata.uncertainty_scale}")
        metadata.ood = calibrate_ood(staged, dataset)
        say(f"ood scales: {metadata.ood.scales}")
        # the weights as trained (a float16 model stays float16), with the metadata measured
        staged.save(staging, half=_saved_half(model_dir))
    say(f"bundled {name} into {dest} (write its model card next: giantfm bundle --card EVAL_DIR)")
    return load_model(dest, device="cpu")


def chain_score(chain):
    """What chooses among label models for the chain: the root mean square of the states'
    mass errors (``hypot(MAD-std, median)``) of the combined answers on the seismic
    validation stars (each state counts alike; `giantfm.train.bundling.answers`), or
    without seismic stars the combined mass MAD-std against the label model's masses."""
    mass = chain["scatter"]["mass"]
    combined = mass.get("combined_error", mass["combined"])
    if isinstance(combined, dict):
        return float(np.sqrt(np.mean(np.square(list(combined.values())))))
    return float(combined)


def _saved_half(model_dir):
    config = json.loads((Path(model_dir) / CONFIG_FILE).read_text())
    return config.get("weights_dtype") == "float16"


def write_model_card(eval_dir, dest=None):
    """Write ``model_card.md`` of the model in ``dest`` from an evaluation in ``eval_dir``.

    ``eval_dir`` holds what ``giantfm evaluate --model DEST ... --magnitudes
    ... [--states] [--seismic]`` writes: ``metrics.ecsv`` (needed), ``magnitudes.ecsv``,
    ``states.ecsv`` and ``seismic.ecsv`` (shown when present). Returns the card's path.
    """
    from astropy.table import Table

    from ...metadata import read_metadata

    eval_dir, dest = Path(eval_dir), _folder(dest)
    metadata = read_metadata(dest)
    config = load_model(dest, device="cpu").config
    metrics = Table.read(eval_dir / "metrics.ecsv")
    giants = metrics[metrics["sample"] == "giants"]
    chain = metadata.chain
    domain = {name: [round(low, 4), round(high, 4)]
              for name, (low, high) in (metadata.label_domain or {}).items()}
    lines = [f"# Model card: {metadata.name}", "", metadata.training_note, "",
             f"giantfm {metadata.version} (bundled with {metadata.bundled_with}); model "
             f"size {config.to_dict()}.", "",
             f"Training data: {metadata.dataset.get('file')} (labels on the "
             f"{metadata.dataset.get('label_scale')} scale; mass and age from giantfm's label "
             "model, see the datasheet). Test split: the fixed `test_apogee_ids.txt`, never "
             "used for training or model selection.", ""]
    if chain is not None and metadata.label_floor is not None:
        lines += ["Mass and age are defined inside the label model's calibration domain "
                  f"{domain} and masked outside it. They combine the network's own estimate "
                  "with its labels put through the label model, with the label model's share "
                  f"{chain.weights} (measured on {chain.decided_on or 'the validation split'})."
                  " Their errors include "
                  "the label model's scatter against asteroseismology "
                  f"({100 * metadata.label_floor.mass_fractional:.1f} % in mass, "
                  f"{metadata.label_floor.log10_age:.3f} dex in age).", ""]
    lines += ["## Test-split giants (sigma = MAD-std of residuals)", "",
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
        lines += _markdown_table(
            "Against magnitude: test-split giants as faint copies (giantfm.xp.noise)",
            ["G", "label", "N", "coverage", "sigma", "bias", "z MAD-std"],
            [[row["level"], row["label"], row["n"], f"{row['coverage']:.3f}",
              f"{row['sigma']:.4g}", f"{row['bias']:.3g}", f"{row['z_sigma']:.3g}"]
             for row in levels])
    path = eval_dir / "states.ecsv"
    if path.exists():
        lines += _markdown_table(
            "Evolutionary state: p_rc against the state model on the APOGEE labels "
            "(giantfm.train.evaluation.states)",
            ["system", "G", "N", "N RC", "accuracy", "ROC AUC", "purity", "completeness"],
            [[row["system"], row["level"], row["n"], row["n_rc"], f"{row['accuracy']:.3f}",
              f"{row['roc_auc']:.3f}", f"{row['purity']:.3f}", f"{row['completeness']:.3f}"]
             for row in Table.read(path)])
    path = eval_dir / "seismic.ecsv"
    if path.exists():
        scores = Table.read(path)
        lines += _markdown_table(
            "Against asteroseismology: APO-K2 giants of the XP library "
            "(giantfm.train.evaluation.seismic; mass scatter against K2's masses as they are, "
            "bias against them on the Kepler scale)",
            ["role", "system", "state", "N", "mass scatter", "mass bias", "mass z", "N age",
             "age scatter", "age z", "p_rc accuracy"],
            [[row["role"], row["system"], row["state"], row["n"],
              f"{row['mass_scatter_gross']:.3f}", f"{row['mass_bias']:+.3f}",
              f"{row['mass_z']:.2f}", row["n_age"], f"{row['age_scatter']:.2f}",
              f"{row['age_z']:.2f}",
              f"{row['accuracy']:.3f}" if "accuracy" in scores.colnames
              and row["state"] == "all" and np.isfinite(row["accuracy"]) else ""]
             for row in scores if row["system"] == "model"])
    text = "\n".join(lines) + "\n"
    atomic_write(dest / MODEL_CARD, lambda tmp: Path(tmp).write_text(text))
    return dest / MODEL_CARD


def _markdown_table(title, header, rows):
    """The lines of a model-card section: a heading and a Markdown table."""
    return (["", f"## {title}", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
            + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


def main(argv=None):
    """``giantfm bundle``: bundle a trained model, or write its model card (see the module)."""
    parser = argparse.ArgumentParser(
        prog="giantfm bundle",
        description="Bundle a trained model with its label model and the calibrations the "
                    "verbs need (measured on the dataset's validation split), or write the "
                    "model card of a bundled model from an evaluation.")
    parser.add_argument("model_dir", nargs="?", help="trained model folder (e.g. RUN/best)")
    parser.add_argument("dataset", nargs="?", help="the dataset file it was trained on")
    parser.add_argument("--name", help="the model's name, e.g. giantfm-default-v5")
    parser.add_argument("--note", default="", help="how it was trained, in words")
    parser.add_argument("--dest", help="model folder to write (default: the package's "
                                       "bundled model)")
    parser.add_argument("--label-model", metavar="DIR", nargs="+",
                        help="the label model of the chain (default: the dataset's); "
                             "several: the one that does best on the seismic validation "
                             "stars")
    parser.add_argument("--card", metavar="EVAL_DIR",
                        help="write the model card of --dest from giantfm evaluate's output")
    args = parser.parse_args(argv)
    if not args.card and not (args.model_dir and args.dataset and args.name):
        parser.error("bundling needs MODEL_DIR, DATASET and --name (or --card EVAL_DIR)")
    try:
        if args.card:
            print(f"wrote {write_model_card(args.card, args.dest)}")
        else:
            bundle_model(args.model_dir, args.dataset, name=args.name,
                         training_note=args.note, dest=args.dest,
                         label_model=args.label_model)
    except (ValueError, OSError) as exc:  # bad input, a damaged model, a full disk: said plainly
        print(f"giantfm bundle: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
