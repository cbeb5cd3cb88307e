"""The one table of token names, units and meanings.

Every quantity the network sees or returns is a *token*: a name from this
vocabulary plus a value and an error. The token id is the row index of the name
in `VOCABULARY`; id 0 is reserved for padding. New names are only ever
appended, so saved models stay readable: a model records the vocabulary it was
trained with and refuses data built with another.

Values are carried in the *token scale* given by the ``scale`` column:
``linear`` tokens hold the quantity in ``unit``; ``log10`` tokens hold
``log10(quantity / unit)`` (ages, whose errors are close to log-normal).
XP coefficients are divided by the star's G-band flux (see
`giantfm.tokens.g_flux`), which makes them dimensionless.

This module is the one home of the names that the rest of giantfm groups
tokens by: the XP coefficients (`BP_NAMES`, `RP_NAMES`, `XP_NAMES`), the
colours and the magnitudes they are made of (`COLOURS`), and the labels
(`LABEL_NAMES`, of which `SPECTROSCOPIC_LABEL_NAMES` come from APOGEE and
mass and age from the label model).
"""
from dataclasses import dataclass

import numpy as np
from astropy import units as u

from .exceptions import InvalidNameError

__all__ = ["Token", "VOCABULARY", "VOCAB_VERSION", "NAMES", "N_TOKENS", "PAD_ID",
           "token_id", "token_ids", "token_unit", "N_COEFFICIENTS", "BP_NAMES", "RP_NAMES",
           "XP_NAMES", "BP_IDS", "RP_IDS", "MAGNITUDE_NAMES", "COLOURS", "COLOUR_NAMES",
           "SPECTROSCOPIC_LABEL_NAMES", "MASS_AGE_NAMES", "LABEL_NAMES", "vocabulary_table"]

#: Coefficients per band in Gaia DR3 (DR4 has 51 BP coefficients on another basis).
N_COEFFICIENTS = 55
#: The XP coefficient tokens of each band, in coefficient order, and both (BP first).
BP_NAMES = tuple(f"bp{i}" for i in range(N_COEFFICIENTS))
RP_NAMES = tuple(f"rp{i}" for i in range(N_COEFFICIENTS))
XP_NAMES = BP_NAMES + RP_NAMES
#: Short names of the magnitudes colours are made of: Gaia G, BP, RP and 2MASS J, H, Ks.
MAGNITUDE_NAMES = ("g", "bp", "rp", "j", "h", "k")
#: Colour token -> (first magnitude, second magnitude): the colour is their difference.
COLOURS = {"bp_rp": ("bp", "rp"), "g_rp": ("g", "rp"), "j_h": ("j", "h"),
           "j_k": ("j", "k"), "g_k": ("g", "k")}
COLOUR_NAMES = tuple(COLOURS)
#: The APOGEE labels.
SPECTROSCOPIC_LABEL_NAMES = ("teff", "logg", "m_h", "alpha_m")
#: The labels that the label model gives the training giants (masked outside its domain).
MASS_AGE_NAMES = ("mass", "age")
#: All labels.
LABEL_NAMES = SPECTROSCOPIC_LABEL_NAMES + MASS_AGE_NAMES


@dataclass(frozen=True)
class Token:
    """One vocabulary entry.

    ``valid`` is the range of values a measurement of it can have, in ``unit``
    (`giantfm.validation` leaves out a value outside it, naming the column).
    ``symbol`` is how papers write it, in matplotlib mathtext / LaTeX (e.g.
    ``$T_{\\rm eff}$``; empty: none), used by `giantfm.plotting.axis_label`.
    """

    name: str
    unit: u.UnitBase
    scale: str
    description: str
    valid: tuple = (-np.inf, np.inf)
    symbol: str = ""


def _build():
    tokens = [Token("[pad]", u.dimensionless_unscaled, "linear", "padding: no token")]
    for names, band, long in ((BP_NAMES, "BP", "blue"), (RP_NAMES, "RP", "red")):
        for i, name in enumerate(names):
            tokens.append(Token(name, u.dimensionless_unscaled, "linear",
                                f"Gaia DR3 {band} ({long}) XP coefficient {i}, "
                                "divided by the G-band flux"))
    tokens += [
        Token("bp_rp", u.mag, "linear", "Gaia BP - RP colour",
              symbol=r"$G_{\rm BP}-G_{\rm RP}$"),
        Token("g_rp", u.mag, "linear", "Gaia G - RP colour", symbol=r"$G-G_{\rm RP}$"),
        Token("j_h", u.mag, "linear", "2MASS J - H colour", symbol=r"$J-H$"),
        Token("j_k", u.mag, "linear", "2MASS J - Ks colour", symbol=r"$J-K_s$"),
        Token("g_k", u.mag, "linear", "Gaia G - 2MASS Ks colour", symbol=r"$G-K_s$"),
        # Valid ranges: what a star can have, generously (no giant near the edges).
        Token("teff", u.K, "linear", "effective temperature (APOGEE DR17 ASPCAP scale)",
              (1000.0, 100000.0), symbol=r"$T_{\rm eff}$"),
        Token("logg", u.dex(u.cm / u.s**2), "linear", "log10 surface gravity", (-2.0, 10.0),
              symbol=r"$\log g$"),
        Token("m_h", u.dex, "linear", "metallicity [M/H] (APOGEE DR17 [Fe/H])", (-6.0, 2.0),
              symbol="[M/H]"),
        Token("alpha_m", u.dex, "linear", "alpha-element enhancement [alpha/M]", (-2.0, 2.0),
              symbol=r"[$\alpha$/M]"),
        Token("mass", u.solMass, "linear", "stellar mass (asteroseismic scale)", (0.05, 300.0),
              symbol="$M$"),
        Token("age", u.Gyr, "log10", "stellar age; token value is log10(age / Gyr)",
              (1e-5, 20.0), symbol="age"),
        Token("a_k", u.mag, "linear", "K-band extinction A_K (APOGEE targeting AK_TARG)",
              (-1.0, 30.0), symbol="$A_K$"),
    ]
    return tuple(tokens)


VOCABULARY = _build()
#: Bump when a name is added or a token's meaning changes; saved models and datasets
#: record it and are refused by a giantfm of another version. 1: the first vocabulary,
#: XP tokens the raw coefficients over G-band flux. 2: XP tokens of the projected
#: coefficients (`giantfm.xp.project_coefficients`; giantfm-default-v1 onwards), errors
#: of every token read as inputs (giantfm-default-v3).
VOCAB_VERSION = 2
NAMES = tuple(t.name for t in VOCABULARY)
N_TOKENS = len(VOCABULARY)
PAD_ID = 0
_ID = {name: i for i, name in enumerate(NAMES)}

BP_IDS = np.array([_ID[name] for name in BP_NAMES])
RP_IDS = np.array([_ID[name] for name in RP_NAMES])


def token_id(name):
    """Id of the token called ``name``.

    Raises
    ------
    InvalidNameError
        (a `ValueError`) for a name not in the vocabulary,
        listing the known ones.
    """
    try:
        return _ID[name]
    except (KeyError, TypeError):
        raise InvalidNameError(f"unknown token name {name!r}; known names are bp0..bp54, "
                               f"rp0..rp54 and {', '.join(NAMES[2 * N_COEFFICIENTS + 1:])}"
                               ) from None


def token_unit(name):
    """The vocabulary unit of the token called ``name`` (e.g. ``u.K`` for ``teff``)."""
    return VOCABULARY[token_id(name)].unit


def token_ids(names):
    """Ids of a sequence of token names, as an int array."""
    if isinstance(names, str):
        names = [names]
    return np.array([token_id(n) for n in names], dtype=np.int64)


def vocabulary_table():
    """The vocabulary as an astropy `~astropy.table.Table` (id, name, unit, scale, valid range,
    description)."""
    from astropy.table import Table
    return Table(
        {"id": np.arange(N_TOKENS), "name": list(NAMES),
         "unit": [t.unit.to_string() for t in VOCABULARY],
         "scale": [t.scale for t in VOCABULARY],
         "valid_min": [t.valid[0] for t in VOCABULARY],
         "valid_max": [t.valid[1] for t in VOCABULARY],
         "description": [t.description for t in VOCABULARY]})
