"""Gaia XP coefficients written back in the layout of the Gaia archive.

`archive_table` is the inverse of reading: whatever `giantfm.xp.read_xp`
reads -- an `XPCoefficients`, a `specutils.Spectrum` of sampled spectra (its
fitted coefficients), a flattened table -- becomes one table with the
archive's column names (``gaiadr3.xp_continuous_mean_spectrum``: array
columns ``bp_coefficients``, ``bp_coefficient_errors``, ... and the
photometry of ``gaiadr3.gaia_source`` and 2MASS), the layout every verb,
`giantfm.finetune` and the examples read, and that keeps in any format that
holds array columns (ECSV, FITS, VOTable, Parquet).
"""
import numpy as np

from ..vocab import N_COEFFICIENTS
from .coefficients import ARCHIVE_MAGNITUDES, XPCoefficients

__all__ = ["archive_table"]


def archive_table(xp, *, correlations=True):
    """Gaia DR3 XP coefficients as a table in the Gaia archive's layout.

    Parameters
    ----------
    xp : `~giantfm.xp.XPCoefficients`, `specutils.Spectrum` or table
        Coefficients, or anything `giantfm.xp.read_xp` reads (a Spectrum's
        coefficients are fitted to its sampled flux, as `giantfm.predict`
        fits them).
    correlations : bool, optional
        Write the coefficient correlations (``{bp,rp}_coefficient_correlations``,
        the archive's 1485 values of each matrix's strict lower triangle) where
        the coefficients have them.

    Returns
    -------
    `~astropy.table.QTable`
        One row per star, in order: ``source_id`` (-1 where unknown), per band
        ``{band}_coefficients`` and ``{band}_coefficient_errors`` (55 values, NaN
        where absent), ``{band}_coefficient_correlations`` (with
        ``correlations``, where known), ``{band}_n_relevant_bases`` (masked where
        not given) and ``{band}_standard_deviation`` (NaN where not given); then
        the magnitudes found (``phot_g_mean_mag``, ``phot_bp_mean_mag``,
        ``phot_rp_mean_mag``, ``j_m``, ``h_m``, ``ks_m``, in mag).
        `giantfm.xp.read_xp` reads it back to the same coefficients.

    Raises
    ------
    TypeError, ValueError
        As `giantfm.xp.read_xp`, for input it cannot read.

    Examples
    --------
    >>> import giantfm
    >>> from giantfm.xp import archive_table, read_xp
    >>> xp = read_xp(giantfm.examples.load()[:2])
    >>> table = archive_table(xp)
    >>> table["bp_coefficients"].shape, table["phot_g_mean_mag"].unit
    ((2, 55), Unit("mag"))
    """
    from astropy import units as u
    from astropy.table import MaskedColumn, QTable

    from .readers import read_xp

    if not isinstance(xp, XPCoefficients):
        xp = read_xp(xp, correlations=correlations)
    table = QTable()
    table["source_id"] = np.asarray(xp.source_id, dtype=np.int64)
    rows, cols = np.tril_indices(N_COEFFICIENTS, k=-1)
    for band in ("bp", "rp"):
        table[f"{band}_coefficients"] = getattr(xp, band)
        table[f"{band}_coefficient_errors"] = getattr(xp, f"{band}_err")
        corr = getattr(xp, f"{band}_corr")
        if correlations and corr is not None and np.isfinite(corr).any():
            table[f"{band}_coefficient_correlations"] = corr[:, rows, cols]
        relevant = getattr(xp, f"{band}_n_relevant")
        table[f"{band}_n_relevant_bases"] = MaskedColumn(np.where(relevant >= 0, relevant, 0),
                                                         mask=relevant < 0, dtype=np.int64)
        table[f"{band}_standard_deviation"] = getattr(xp, f"{band}_standard_deviation")
    for short, column in ARCHIVE_MAGNITUDES.items():
        if short in xp.mags:
            table[column] = xp.mags[short] * u.mag
    return table
