"""Measure synthetic against measured Gaia photometry on a training-set file.

    python tools/measure_synthetic_photometry.py work_data/giantfm-dataset-v3.h5

prints, per band (G, BP, RP) and split, the median and MAD-std of synthetic
(`giantfm.xp.synthetic_photometry` of the stars' XP coefficients) minus
measured magnitudes: the numbers behind `giantfm.xp.photometry.SYNTHETIC_OFFSET`
and `SYNTHETIC_SCATTER`, which are measured on the training split.
"""
import sys

import numpy as np

from giantfm.train.dataset.datafile import load_dataset
from giantfm.utils._stats import mad_std
from giantfm.xp.photometry import SYNTHETIC_MAGNITUDES, synthetic_photometry


def main(path):
    data = load_dataset(path)
    for split in ("train", "val", "test"):
        xp, mags = data["inputs"][split]["xp"], data["inputs"][split]["mags"]
        both = np.isfinite(xp["bp"]).any(axis=1) & np.isfinite(xp["rp"]).any(axis=1)
        synthetic, _ = synthetic_photometry(xp["bp"][both], xp["rp"][both])
        for name in SYNTHETIC_MAGNITUDES:
            diff = synthetic[name] - np.asarray(mags[name], dtype=float)[both]
            diff = diff[np.isfinite(diff)]
            print(f"{split:5s} {name:2s} n={len(diff):6d} median {np.median(diff):+.4f} "
                  f"MAD-std {mad_std(diff):.4f} mag")


if __name__ == "__main__":
    main(sys.argv[1])
