"""How often `giantfm.predict` flags honest stars and garbage: the ``ood_score`` at work.

Usage::

    python benchmarks/bench_ood.py --dataset DATASET.h5 [--model DIR] [--seed 0]
        [--save docs/results/bench_ood.ecsv]

Every case is a real table in the Gaia archive's layout (array columns
``bp_coefficients`` ..., ``phot_g_mean_mag`` ..., 2MASS ``j_m`` ...) put
through `giantfm.predict`, and the fraction of its rows with ``flag`` set is
reported, with the fraction flagged for being out of distribution alone and,
per label (Teff, log g, [M/H], mass), the fraction unusable: masked, or in a
flagged row (target for the test-split giants: at most 2 % for Teff, log g and
[M/H]; mass is masked outside its label domain, by design):

* honest stars, which should pass: the test-split giants as stored; the
  test-split dwarfs (the training set has dwarfs too); faint copies of the
  test giants at G = 16, 17 and 17.65 (`giantfm.xp.noise.faint_copy`); the
  2,000 real DR3 sources of ``xp_continuous_first2000.fits`` (mostly faint,
  of all kinds; no photometry with them, as the archive gives them, so
  `giantfm.predict` synthesises G, BP and RP from their own spectra and only
  the embedding measure can flag them); the test giants with their G, BP and
  RP removed (synthesised likewise);
* manipulated test giants, which should be flagged (target: 95 %): all
  coefficients zero; negated; scaled by 0.5, 2, 10 and 1000; the BP and RP
  bands swapped; the spectrum of another star under this star's photometry;
  this star's spectrum with another star's BP and RP magnitudes; with another
  star's G, BP and RP; with another star's 2MASS magnitudes.
"""
import argparse
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.table import QTable

import giantfm
from giantfm.train.dataset.datafile import load_dataset
from giantfm.train.sources import shared_data_dir
from giantfm.xp import read_xp
from giantfm.xp.coefficients import ARCHIVE_MAGNITUDES, XPCoefficients
from giantfm.xp.noise import faint_copy
from results import machine_description, save_table


def archive_table(source_id, bp, rp, bp_err, rp_err, mags, n_relevant=None):
    """A QTable in the Gaia archive's layout from plain arrays."""
    table = QTable()
    table["source_id"] = np.asarray(source_id, dtype=np.int64)
    table["bp_coefficients"], table["rp_coefficients"] = bp, rp
    table["bp_coefficient_errors"], table["rp_coefficient_errors"] = bp_err, rp_err
    if n_relevant is not None:
        table["bp_n_relevant_bases"], table["rp_n_relevant_bases"] = n_relevant
    for short, name in ARCHIVE_MAGNITUDES.items():
        if short in mags:
            table[name] = np.asarray(mags[short], dtype=float) * u.mag
    return table


#: The labels whose usability is reported: each is unusable where masked or where ``flag``.
USABILITY_LABELS = ("teff", "logg", "m_h", "mass")


def flagged(table, model):
    """The fraction of rows flagged, flagged as out of distribution, and unusable per label."""
    result = giantfm.predict(table, model=model, progress=False)
    bits = np.asarray(result["flags"])
    ood = (bits & giantfm.flags.REASONS["out_of_distribution"].value) != 0
    flag = np.asarray(result["flag"])
    unusable = {name: float(np.mean(flag | np.asarray(result[name].mask)))
                for name in USABILITY_LABELS}
    return float(np.mean(flag)), float(np.mean(ood)), unusable, len(result)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", default=None, help="saved model (default: the bundled one)")
    parser.add_argument("--shared-data", default=None,
                        help="the shared data folder (default: as giantfm build-dataset finds it)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    model = giantfm.prediction.get_model(model=args.model)

    data = load_dataset(args.dataset)
    xp, mags = data["inputs"]["test"]["xp"], data["inputs"]["test"]["mags"]
    giant = np.asarray(data["labels"]["test"]["giant"], dtype=bool)
    has_xp = np.isfinite(xp["bp"][:, 0])
    source_id = data["test"].source_id

    def stars(rows, **replace):
        arrays = {"bp": xp["bp"][rows], "rp": xp["rp"][rows], "bp_err": xp["bp_err"][rows],
                  "rp_err": xp["rp_err"][rows],
                  "mags": {k: v[rows] for k, v in mags.items()}}
        arrays.update(replace)
        return archive_table(source_id[rows], arrays["bp"], arrays["rp"], arrays["bp_err"],
                             arrays["rp_err"], arrays["mags"])

    giants = np.flatnonzero(has_xp & giant)
    other = rng.permutation(giants)
    base = {k: v[giants] for k, v in mags.items()}
    cases = [("honest", "test-split giants", stars(giants)),
             ("honest", "test-split dwarfs", stars(np.flatnonzero(has_xp & ~giant)))]
    source = XPCoefficients(source_id=source_id[giants], bp=xp["bp"][giants],
                            rp=xp["rp"][giants], bp_err=xp["bp_err"][giants],
                            rp_err=xp["rp_err"][giants], mags=base)
    for level in (16.0, 17.0, 17.65):
        copy = faint_copy(source, level, rng=rng)
        cases.append(("honest", f"test giants as faint copies at G = {level:g}",
                      archive_table(copy.source_id, copy.bp, copy.rp, copy.bp_err, copy.rp_err,
                                    copy.mags, (copy.bp_n_relevant, copy.rp_n_relevant))))
    shared = Path(args.shared_data) if args.shared_data else shared_data_dir()
    real = read_xp(shared / "xp" / "xp_continuous_first2000.fits")
    cases.append(("honest", "real DR3 sources (xp_continuous_first2000, as the archive gives "
                  "them: no photometry)",
                  archive_table(real.source_id, real.bp, real.rp, real.bp_err, real.rp_err, {},
                                (real.bp_n_relevant, real.rp_n_relevant))))
    cases.append(("honest", "test-split giants without their G, BP and RP (synthesised)",
                  stars(giants, mags={k: v[giants] for k, v in mags.items()
                                      if k not in ("g", "bp", "rp")})))
    bp, rp = xp["bp"][giants], xp["rp"][giants]
    manipulated = {
        "all coefficients zero": dict(bp=0 * bp, rp=0 * rp),
        "coefficients negated": dict(bp=-bp, rp=-rp),
        "coefficients x 0.5": dict(bp=0.5 * bp, rp=0.5 * rp),
        "coefficients x 2": dict(bp=2 * bp, rp=2 * rp),
        "coefficients x 10": dict(bp=10 * bp, rp=10 * rp),
        "coefficients x 1000": dict(bp=1000 * bp, rp=1000 * rp),
        "BP and RP swapped": dict(bp=rp, rp=bp, bp_err=xp["rp_err"][giants],
                                  rp_err=xp["bp_err"][giants]),
        "another star's spectrum": dict(bp=xp["bp"][other], rp=xp["rp"][other],
                                        bp_err=xp["bp_err"][other], rp_err=xp["rp_err"][other]),
        "another star's BP and RP magnitudes": dict(mags={**base, "bp": mags["bp"][other],
                                                          "rp": mags["rp"][other]}),
        "another star's G, BP and RP": dict(mags={**base, **{k: mags[k][other]
                                                             for k in ("g", "bp", "rp")}}),
        "another star's 2MASS magnitudes": dict(mags={**base, **{k: mags[k][other]
                                                                 for k in ("j", "h", "k")}}),
    }
    for name, replace in manipulated.items():
        cases.append(("manipulated", name, stars(giants, **replace)))

    rows = []
    for kind, name, table in cases:
        fraction, ood_fraction, unusable, n = flagged(table, model)
        rows.append({"kind": kind, "case": name, "stars": n,
                     "flagged": round(fraction, 4), "flagged_as_ood": round(ood_fraction, 4),
                     **{f"unusable_{k}": round(v, 4) for k, v in unusable.items()}})
        print(f"{kind:12s} {name:58s} {n:6d}  flagged {fraction:7.2%}  (ood {ood_fraction:7.2%})"
              "  unusable " + ", ".join(f"{k} {v:.2%}" for k, v in unusable.items()))
    manipulated_rows = [r for r in rows if r["kind"] == "manipulated"]
    overall = np.average([r["flagged"] for r in manipulated_rows],
                         weights=[r["stars"] for r in manipulated_rows])
    print(f"manipulated, all cases together: flagged {overall:.2%}")
    if args.save:
        save_table(rows, args.save, title="Flagged fractions of honest and manipulated stars "
                   "(ood_score and input checks)", machine=machine_description(),
                   notes=f"model {model.metadata.name}; manipulated cases "
                         f"together: {overall:.2%} flagged; seed {args.seed}")


if __name__ == "__main__":
    main()
