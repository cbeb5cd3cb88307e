"""The one table of token names, units and meanings.

Every quantity the network sees or returns is a *token*: a name from this
vocabulary plus a value and an error. The token id is the row index of the name
in `VOCABULARY` (a `Vocabulary`); id 0 is reserved for padding. New names are
only ever appended, so saved models stay readable: a model records the names
it was trained with, and one made before a name was appended still loads and
answers everything it knew (`VOCAB_VERSION` says which versions mean the same
by the same names).

Most tokens are *values*: the network answers a mean and an uncertainty
(a Gaussian). A token of kind ``probability`` (``p_rc``, the probability that
a giant burns helium in its core) holds a probability in [0, 1]: the network
answers its log-odds, learned with the cross-entropy of soft targets, and
returns the probability without an uncertainty of its own.

Values are carried in the *token scale* given by the ``scale`` column:
``linear`` tokens hold the quantity in ``unit``; ``log10`` tokens hold
``log10(quantity / unit)`` (ages, whose errors are close to log-normal).
XP coefficients are divided by the star's G-band flux (see
`giantfm.tokens.g_flux`), which makes them dimensionless.

This module is the one home of the names that the rest of giantfm groups
tokens by: the XP coefficients (`BP_NAMES`, `RP_NAMES`, `XP_NAMES`), the
colours and the magnitudes they are made of (`COLOURS`), and the labels
(`LABEL_NAMES`, of which `SPECTROSCOPIC_LABEL_NAMES` come from APOGEE,
`MASS_AGE_NAMES` and `STATE_NAMES` from the label model).
"""
from dataclasses import dataclass

import numpy as np
from astropy import units as u

from .exceptions import InvalidNameError

__all__ = ["Token", "Vocabulary", "token_to_dict", "token_from_dict", "VOCABULARY",
           "VOCAB_VERSION", "COMPATIBLE_VERSIONS",
           "NAMES", "N_TOKENS", "PAD_ID", "KINDS", "token_id", "token_ids", "token_unit",
           "is_probability", "N_COEFFICIENTS", "BP_NAMES", "RP_NAMES", "XP_NAMES", "BP_IDS",
           "RP_IDS", "MAGNITUDE_NAMES", "COLOURS", "COLOUR_NAMES",
           "SPECTROSCOPIC_LABEL_NAMES", "MASS_AGE_NAMES", "P_RC", "STATE_NAMES", "LABEL_NAMES",
           "VALUE_LABEL_NAMES", "PROBABILITY_EPS", "vocabulary_table"]

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
#: The token of the evolutionary state: the probability of core-helium burning (red clump),
#: from the label model's state classifier.
P_RC = "p_rc"
#: The evolutionary-state labels.
STATE_NAMES = (P_RC,)
#: All labels.
LABEL_NAMES = SPECTROSCOPIC_LABEL_NAMES + MASS_AGE_NAMES + STATE_NAMES
#: The labels of kind ``value``: each has a mean and an uncertainty (``<name>_err``).
VALUE_LABEL_NAMES = SPECTROSCOPIC_LABEL_NAMES + MASS_AGE_NAMES
#: What the network answers for a token of each kind: ``value``, a mean and an uncertainty;
#: ``probability``, a probability in [0, 1] (learned as log-odds).
KINDS = ("value", "probability")
#: A probability is clipped to [PROBABILITY_EPS, 1 - PROBABILITY_EPS] before its log-odds or
#: log loss is taken, so that an answer of exactly 0 or 1 neither diverges nor decides alone.
PROBABILITY_EPS = 1e-6


@dataclass(frozen=True)
class Token:
    """One vocabulary entry.

    ``valid`` is the range of values a measurement of it can have, in ``unit``
    (`giantfm.validation` leaves out a value outside it, naming the column).
    ``symbol`` is how papers write it, in matplotlib mathtext / LaTeX (e.g.
    ``$T_{\\rm eff}$``; empty: none), used by `giantfm.plotting.axis_label`.
    ``kind`` is one of `KINDS`. ``format`` is how a result shows the value and its
    ``_err`` (a format spec such as ``'.0f'``, chosen by the label's precision; empty: astropy's
    default); it is for display only (`giantfm.results.Result`), never for the data or files.
    """

    name: str
    unit: u.UnitBase
    scale: str
    description: str
    valid: tuple = (-np.inf, np.inf)
    symbol: str = ""
    kind: str = "value"
    format: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"token {self.name!r}: kind must be one of {KINDS}, "
                             f"got {self.kind!r}")


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
              (1000.0, 100000.0), symbol=r"$T_{\rm eff}$", format=".0f"),
        Token("logg", u.dex(u.cm / u.s**2), "linear", "log10 surface gravity", (-2.0, 10.0),
              symbol=r"$\log g$", format=".3f"),
        Token("m_h", u.dex, "linear", "metallicity [M/H] (APOGEE DR17 [Fe/H])", (-6.0, 2.0),
              symbol="[M/H]", format=".3f"),
        Token("alpha_m", u.dex, "linear", "alpha-element enhancement [alpha/M]", (-2.0, 2.0),
              symbol=r"[$\alpha$/M]", format=".3f"),
        Token("mass", u.solMass, "linear", "stellar mass (asteroseismic scale)", (0.05, 300.0),
              symbol="$M$", format=".3f"),
        Token("age", u.Gyr, "log10", "stellar age; token value is log10(age / Gyr)",
              (1e-5, 20.0), symbol="age", format=".2f"),
        Token("a_k", u.mag, "linear", "K-band extinction A_K (APOGEE targeting AK_TARG)",
              (-1.0, 30.0), symbol="$A_K$", format=".3f"),
        Token(P_RC, u.dimensionless_unscaled, "linear", "probability that the star burns "
              "helium in its core (red clump) rather than hydrogen in a shell (red-giant "
              "branch), from the label model's state classifier on seismic states",
              (0.0, 1.0), symbol=r"$P_{\rm RC}$", kind="probability", format=".3f"),
    ]
    return tuple(tokens)


class Vocabulary:
    """An ordered table of tokens: a token's id is its place in it (0 is padding).

    `VOCABULARY` is giantfm's; a model may know fewer of its names (one saved
    before a name was appended) or more (one taught its own labels, whose
    tokens follow giantfm's), and records which.
    """

    def __init__(self, tokens):
        self.tokens = tuple(tokens)
        self.names = tuple(t.name for t in self.tokens)
        self._id = {}
        for i, name in enumerate(self.names):
            if name in self._id:
                raise InvalidNameError(f"token name {name!r} appears twice in the vocabulary")
            self._id[name] = i

    def __len__(self):
        return len(self.tokens)

    def __getitem__(self, index):
        return self.tokens[index]

    def __iter__(self):
        return iter(self.tokens)

    def __contains__(self, name):
        return name in self._id

    def token_id(self, name):
        """Id of the token called ``name``; `InvalidNameError` (a `ValueError`) for a name
        not in the vocabulary, listing the known ones."""
        try:
            return self._id[name]
        except (KeyError, TypeError):
            others = self.names[2 * N_COEFFICIENTS + 1:]
            raise InvalidNameError(f"unknown token name {name!r}; known names are bp0..bp54, "
                                   f"rp0..rp54 and {', '.join(others)}") from None

    def token_ids(self, names):
        """Ids of a sequence of token names, as an int array."""
        if isinstance(names, str):
            names = [names]
        return np.array([self.token_id(n) for n in names], dtype=np.int64)

    def token(self, name):
        """The `Token` called ``name``."""
        return self.tokens[self.token_id(name)]

    def extended(self, tokens):
        """This vocabulary with ``tokens`` appended; a name it has already is refused."""
        tokens = tuple(tokens)
        taken = [t.name for t in tokens if t.name in self]
        if taken:
            raise InvalidNameError(f"{taken} {'is' if len(taken) == 1 else 'are'} already "
                                   "token names of the vocabulary: choose other names")
        return Vocabulary(self.tokens + tokens)

    def split(self):
        """``(n_base, extension)``: how many of giantfm's names (`VOCABULARY`) this vocabulary
        starts with, and its tokens after them (a model's own labels).

        Raises
        ------
        ValueError
            Its first names are not giantfm's in giantfm's order.
        """
        n_base = 0
        while (n_base < min(len(self), len(VOCABULARY))
               and self.names[n_base] == VOCABULARY.names[n_base]):
            n_base += 1
        extension = self.tokens[n_base:]
        clash = [t.name for t in extension if t.name in VOCABULARY]
        if n_base <= 2 * N_COEFFICIENTS or clash:
            raise ValueError(f"a vocabulary must start with giantfm's names in giantfm's order; "
                             f"this one differs from name {n_base} on"
                             + (f" (and has {clash} out of place)" if clash else ""))
        return n_base, extension

    @property
    def probability_ids(self):
        """Ids of the tokens of kind ``probability``."""
        return np.array([i for i, t in enumerate(self.tokens) if t.kind == "probability"],
                        dtype=np.int64)


#: giantfm's vocabulary.
VOCABULARY = Vocabulary(_build())
#: Bump when a name is added or a token's meaning changes; saved models and datasets
#: record it. 1: the first vocabulary, XP tokens the raw coefficients over G-band flux.
#: 2: XP tokens of the projected coefficients (`giantfm.xp.project_coefficients`;
#: giantfm-default-v1 onwards), errors of every token read as inputs (giantfm-default-v3).
#: 3: ``p_rc`` appended (giantfm-default-v4).
VOCAB_VERSION = 3
#: The versions whose names mean what they mean today (each appended names only): a model
#: of one of them loads, and answers every token it knows (`Vocabulary`). Version 1 read
#: raw coefficients under the same names, and is refused.
COMPATIBLE_VERSIONS = (2, 3)
NAMES = VOCABULARY.names
N_TOKENS = len(VOCABULARY)
PAD_ID = 0

BP_IDS = VOCABULARY.token_ids(BP_NAMES)
RP_IDS = VOCABULARY.token_ids(RP_NAMES)


def token_id(name):
    """Id of the token called ``name`` in `VOCABULARY`.

    Raises
    ------
    InvalidNameError
        (a `ValueError`) for a name not in the vocabulary,
        listing the known ones.
    """
    return VOCABULARY.token_id(name)


def token_unit(name):
    """The vocabulary unit of the token called ``name`` (e.g. ``u.K`` for ``teff``)."""
    return VOCABULARY.token(name).unit


def token_ids(names):
    """Ids of a sequence of token names in `VOCABULARY`, as an int array."""
    return VOCABULARY.token_ids(names)


def is_probability(name):
    """Whether the token called ``name`` is of kind ``probability``."""
    return VOCABULARY.token(name).kind == "probability"


def token_to_dict(token):
    """A `Token` as strict-JSON types (a model saves the tokens it adds so)."""
    return {"name": token.name, "unit": token.unit.to_string(), "scale": token.scale,
            "description": token.description,
            "valid": [None if not np.isfinite(v) else float(v) for v in token.valid],
            "symbol": token.symbol, "kind": token.kind, "format": token.format}


def token_from_dict(d):
    """The `Token` that `token_to_dict` wrote."""
    low, high = d.get("valid") or (None, None)
    return Token(d["name"], u.Unit(d["unit"]), d["scale"], d["description"],
                 (-np.inf if low is None else low, np.inf if high is None else high),
                 d.get("symbol", ""), d.get("kind", "value"), d.get("format", ""))


def vocabulary_table():
    """The vocabulary as an astropy `~astropy.table.Table` (id, name, unit, scale, kind, valid
    range, description)."""
    from astropy.table import Table
    return Table(
        {"id": np.arange(N_TOKENS), "name": list(NAMES),
         "unit": [t.unit.to_string() for t in VOCABULARY],
         "scale": [t.scale for t in VOCABULARY],
         "kind": [t.kind for t in VOCABULARY],
         "valid_min": [t.valid[0] for t in VOCABULARY],
         "valid_max": [t.valid[1] for t in VOCABULARY],
         "description": [t.description for t in VOCABULARY]})
