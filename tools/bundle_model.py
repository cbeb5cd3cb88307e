"""Bundle a trained model into ``giantfm/data/model/`` with its model card.

Copies the weights and config of a trained model folder, adds what `predict`
needs to know about the labels it was trained on -- where the training labels
lie (`giantfm.generate_spectrum` flags requests outside), the label model's
calibration domain (mass and age are masked outside it) and its scatter
against asteroseismology (added in quadrature to the network's mass and age
errors, so that they are uncertainties on the seismic scale) -- and writes a
model card from the evaluation metrics.

The model records a clean version, ``metadata['version']``: giantfm's version
without its local part (no commit hash, no date of uncommitted changes), the
version users see in ``giantfm example``; the full version it was bundled with
is kept in ``metadata['bundled_with']``. Usage::

    python tools/bundle_model.py MODEL_DIR DATASET.h5 EVAL_DIR NAME "TRAINING NOTE"
"""
import json
import shutil
import sys
from pathlib import Path

from astropy.table import Table

from giantfm import __version__
from giantfm.io.dataset import load_arrays
from giantfm.train.dataset import label_support
from giantfm.utils._version import public_version

DEST = Path("giantfm/data/model")


def main(model_dir, dataset, eval_dir, name, training_note):
    model_dir, eval_dir = Path(model_dir), Path(eval_dir)
    arrays = load_arrays(dataset)
    attrs = arrays["attrs"]
    validation = attrs["label_model"]["validation"]
    chosen = validation[validation["chosen"]]
    domain = validation["domain"]
    config = json.loads((model_dir / "config.json").read_text())
    metadata = config.get("metadata") or {}
    if isinstance(metadata, str):  # older saves stored a repr
        metadata = {"training": metadata}
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
    config["metadata"] = metadata
    DEST.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_dir / "weights.pt", DEST / "weights.pt")
    (DEST / "config.json").write_text(json.dumps(config, indent=1))
    metrics = Table.read(eval_dir / "metrics.ecsv")
    giants = metrics[metrics["sample"] == "giants"]
    lines = [f"# Model card: {name}", "", training_note, "",
             f"giantfm {public_version(__version__)} (bundled with {__version__}); model size "
             f"{config['model_config']}.", "",
             f"Training data: {Path(dataset).name} (labels on the {attrs['label_scale']} "
             "scale; mass and age from giantfm's label model, see the datasheet). Test split: "
             "the fixed `test_apogee_ids.txt`, never used for training or model selection.", "",
             "Mass and age are defined inside the label model's calibration domain "
             f"{metadata['label_domain']} and masked outside it. Their errors include the "
             "label model's scatter against asteroseismology "
             f"({100 * metadata['label_floor']['mass_fractional']:.1f} % in mass, "
             f"{metadata['label_floor']['log10_age']:.3f} dex in age).", "",
             "## Test-split giants (sigma = MAD-std of residuals)", "",
             "| system | inputs | label | reference | N | sigma | bias | z MAD-std |",
             "|---|---|---|---|---|---|---|---|"]
    for row in giants:
        lines.append(f"| {row['system']} | {row['experiment']} | {row['label']} | "
                     f"{row['reference']} | {row['n']} | {row['sigma']:.4g} | "
                     f"{row['bias']:.3g} | {row['z_sigma']:.3g} |")
    (DEST / "model_card.md").write_text("\n".join(lines) + "\n")
    print(f"bundled {name} into {DEST}")


if __name__ == "__main__":
    main(*sys.argv[1:6])
