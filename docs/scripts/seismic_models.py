"""Models side by side against asteroseismology: ``docs/results/seismic_models.ecsv``.

Usage (from the project root)::

    python docs/scripts/seismic_models.py work_data/giantfm-dataset-v5.h5 \
        giantfm-default-v3=PATH giantfm-default-v4=PATH giantfm-default-v5=giantfm/data/model \
        [--out docs/results/seismic_models.ecsv]

Each model (a saved model folder, its label model beside it) is scored as
`giantfm.predict` answers it on the XP library's APO-K2 giants of the dataset
(`giantfm.train.evaluation.seismic.evaluate_seismic`), on the validation and the
test stars: one row per model, role and state. The earlier models' folders can
be checked out of the repository's history (``git show REV:giantfm/data/model/...``).
"""
import argparse
from pathlib import Path

from astropy.table import vstack

from giantfm.model import load_model
from giantfm.train.dataset.datafile import load_dataset
from giantfm.train.evaluation.seismic import evaluate_seismic
from giantfm.utils import atomic_write

ROOT = Path(__file__).resolve().parents[2]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("models", nargs="+", metavar="NAME=PATH")
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "seismic_models.ecsv"))
    args = parser.parse_args(argv)
    data = load_dataset(args.dataset)
    tables = []
    for item in args.models:
        name, sep, path = item.partition("=")
        if not sep:
            parser.error(f"give each model as NAME=PATH, got {item!r}")
        scores, _ = evaluate_seismic(load_model(path, device="cpu"), data)
        scores = scores[scores["system"] == "model"]
        scores.remove_column("system")
        scores.add_column([name] * len(scores), name="model", index=0)
        tables.append(scores)
        print(f"{name}: scored {len(scores)} rows")
    table = vstack(tables, metadata_conflicts="silent")
    table.meta["description"] = (
        "Models side by side, as giantfm.predict answers, on the APO-K2 giants of the XP "
        f"library ({Path(args.dataset).name}): see giantfm.train.evaluation.seismic")
    out = Path(args.out)
    atomic_write(out, lambda tmp: table.write(tmp, format="ascii.ecsv", overwrite=True))
    shown = table["model", "role", "state", "n", "mass_scatter_gross", "mass_bias",
                  "mass_z", "age_scatter", "age_z"]
    for column in shown.colnames[4:]:
        shown[column].format = ".3f"
    shown.pprint(max_lines=-1, max_width=-1)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
