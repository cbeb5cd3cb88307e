"""The rules every input value meets before it becomes a token, checked once, row by row.

`giantfm.tokens.from_arrays` -- the one place where inputs become tokens, for
`giantfm.predict`, `giantfm.request`, `giantfm.inpaint`,
`giantfm.generate_spectrum`, `giantfm.predict_files`, `giantfm.predict_catalog`
and the command line alike -- applies them. A value that breaks a rule is left
out of *its* star only (the token is absent, as a missing value is) and the
star's notes say which column held what and why (`giantfm.flags`, reason
``bad_value``); every other star is tokenised exactly as without it.

The rules:

* every value must be finite;
* magnitudes must lie in `MAGNITUDE_RANGE`, which leaves out every survey's
  missing-value sentinel (`SENTINELS`: 2MASS and many catalogues write 99 or
  -99, others 999, 9999, -9999 for "no measurement"; the note calls them so);
* labels must lie in their vocabulary range (`giantfm.vocab.Token.valid`, e.g.
  Teff 1000-100,000 K, mass > 0.05 Msun), which leaves out the sentinels
  that no star can have (-9999 K) but not a value that is a sentinel
  elsewhere (9999 K);
* errors must be finite and positive where given (a bad one is replaced: the
  default error model for coefficients, "unknown" for labels);
* a band's spectrum must be one a star can have: not all zero, and a positive
  zeroth coefficient (the integral of the spectrum); the reason names every
  band that fails;
* a star with one band of the two is read from it, with a note naming the
  band it lacks (`note_missing_band`).

Every note and reason carries its `giantfm.flags` bit beside its text
(`Notes`), so that a result's ``flags`` is never read back from the texts.

It also measures how well each spectrum agrees with the photometry that came
with it (`photometric_consistency`): the G and BP - RP that the coefficients
synthesise (`giantfm.xp.photometry`) against the measured ones, in units of
their combined errors. A spectrum of another star, or scaled, or with its
bands swapped, disagrees by many of them; `giantfm.results` turns this into
part of the ``ood_score``.
"""
import numpy as np

from . import vocab
from .flags import REASONS, reason
from .xp.photometry import synthetic_photometry

__all__ = ["MAGNITUDE_RANGE", "SENTINELS", "CONSISTENCY_FLOOR", "Notes", "bad_values",
           "note_bad", "clean", "check_spectrum", "note_missing_band", "check_errors",
           "label_range", "photometric_consistency"]

#: Magnitudes outside this range (mag) are no star's: the brightest stars are near -1.5
#: in G, and nothing fainter than ~21 has a Gaia XP spectrum or a 2MASS magnitude.
MAGNITUDE_RANGE = (-2.0, 25.0)
#: Values that catalogues write for "no measurement".
SENTINELS = (99.0, -99.0, 99.99, -99.99, 999.0, -999.0, 9999.0, -9999.0, 99999.0, -99999.0,
             999999.0, -999999.0)
_SENTINELS = np.array(SENTINELS)
#: Magnitudes (mag) added in quadrature to the errors of the synthetic-against-measured
#: differences: the scatter of real stars with honest photometry (test-split giants:
#: MAD-std 0.003 mag in G and BP, 99.5 % within 0.04-0.07 mag).
CONSISTENCY_FLOOR = 0.01


class Notes:
    """Per-star notes, each a reason of `giantfm.flags` with its bit, collected cheaply (only
    the rows that have one cost anything).

    ``flags`` holds, per star, the bits of its notes (`giantfm.flags.Reason.value`).
    """

    def __init__(self, n):
        self.n = n
        self._rows, self._texts = [], []
        self.flags = np.zeros(n, dtype=np.int64)

    def add(self, rows, code, **values):
        """Add the reason ``code`` (its text with ``values``, and its bit) to each of ``rows``."""
        rows = np.asarray(rows).reshape(-1)
        if rows.size == 0:
            return
        text = reason(code, **values)
        self._rows.extend(rows.tolist())
        self._texts.extend([text] * rows.size)
        self.flags[rows] |= REASONS[code].value

    def joined(self):
        """One string per star: its notes joined with ``"; "`` (empty without notes)."""
        out = np.full(self.n, "", dtype=object)
        for row, text in zip(self._rows, self._texts):
            out[row] = text if not out[row] else f"{out[row]}; {text}"
        return out


def bad_values(values, low=-np.inf, high=np.inf, *, present=None):
    """Which values break the rules, and why (see the module docstring).

    Parameters
    ----------
    values : float array
    low, high : float
        The valid range (closed). A catalogue's missing-value sentinel
        (`SENTINELS`) outside it is named as such; inside it (a Teff of
        9999 K) it is a value like any other.
    present : bool array, optional
        Only these values are checked (NaN is "missing", not bad, unless
        ``present`` says it was given); default: the non-NaN ones.

    Returns
    -------
    bad : bool array
    why : function
        ``why(index)`` -> the text for the value at ``index`` of ``values``.
    """
    values = np.asarray(values, dtype=float)
    given = ~np.isnan(values) if present is None else np.asarray(present, bool)
    with np.errstate(invalid="ignore"):
        bad = given & ~(np.isfinite(values) & (values >= low) & (values <= high))

    def why(index):
        value = values[index]
        if not np.isfinite(value):
            return "not finite"
        if value in _SENTINELS:
            return "a catalogue's missing-value sentinel"
        return f"outside the valid range {low:g} to {high:g}"
    return bad, why


def note_bad(notes, bad, why, values, column):
    """Add a ``bad_value`` note for every True of ``bad`` (1-D, one per star)."""
    for row in np.flatnonzero(bad):
        notes.add(row, "bad_value", column=column, value=_show(values[row]), why=why(row))


def clean(values, column, notes, low=-np.inf, high=np.inf):
    """``values`` (1-D) with the bad ones (`bad_values`) set to NaN and noted by ``column``."""
    values = np.array(values, dtype=float)
    bad, why = bad_values(values, low, high)
    if bad.any():
        note_bad(notes, bad, why, values, column)
        values[bad] = np.nan
    return values


def check_errors(errors, column, what, notes, exact_allowed=False,
                 replacement="the default error model"):
    """Errors that are given but not finite and positive, noted, as a boolean mask.

    ``errors`` is (n,) or (n, k); NaN means "not given" and is not bad. With
    ``exact_allowed`` an error of 0 is good too: a label known exactly (the
    training set's label-model masses and ages are exact targets). The note
    says that a bad error was replaced with ``replacement``.
    """
    errors = np.asarray(errors, dtype=float)
    with np.errstate(invalid="ignore"):
        good = (errors >= 0) if exact_allowed else (errors > 0)
        bad = ~np.isnan(errors) & ~(np.isfinite(errors) & good)
    rows = bad if bad.ndim == 1 else bad.any(axis=1)
    for row in np.flatnonzero(rows):
        first = errors[row] if bad.ndim == 1 else errors[row][bad[row]][0]
        count = 1 if bad.ndim == 1 else int(bad[row].sum())
        notes.add(row, "bad_error", count=count, what=what, column=column, value=_show(first),
                  replacement=replacement)
    return bad


def check_spectrum(band, coefficients, present):
    """Stars whose ``band`` coefficients no star can have, with the reason per star.

    Parameters
    ----------
    band : {'bp', 'rp'}
    coefficients : array (n, 55)
        The band's coefficients (NaN where absent).
    present : bool array (n,)
        Stars that have the band at all.

    Returns
    -------
    bad : bool array (n,)
    texts : dict
        ``{row: reason text}`` for the bad rows.
    """
    c = np.where(np.isfinite(coefficients), coefficients, 0.0)
    zero = present & ~np.any(c != 0, axis=1)
    with np.errstate(invalid="ignore"):
        # a NaN zeroth coefficient is a missing token, not an impossible spectrum
        negative = present & ~zero & (coefficients[:, 0] <= 0)
    texts = {}
    for row in np.flatnonzero(zero):
        texts[row] = reason("not_a_spectrum", band=band.upper(),
                            detail="all its coefficients are zero")
    for row in np.flatnonzero(negative):
        texts[row] = reason("not_a_spectrum", band=band.upper(),
                            detail=f"its zeroth coefficient {band}0 = "
                                   f"{_show(coefficients[row, 0])} is not positive")
    return zero | negative, texts


def note_missing_band(present, notes):
    """Note the stars that have one band of the two, naming the band they lack.

    Parameters
    ----------
    present : dict
        ``{'bp': bool array (n,), 'rp': bool array (n,)}``: which stars have
        any coefficient of each band.
    notes : `Notes`
    """
    for band, other in (("bp", "rp"), ("rp", "bp")):
        notes.add(np.flatnonzero(~present[band] & present[other]), "missing_band",
                  band=band.upper(), other=other.upper())


def label_range(name):
    """The valid range of the label ``name`` in its vocabulary unit."""
    return vocab.VOCABULARY[vocab.token_id(name)].valid


def _show(value):
    return f"{value:.6g}" if np.isfinite(value) else str(value)


def photometric_consistency(bp, rp, bp_err, rp_err, mags, mag_errors):
    """How far each spectrum's synthetic G and BP - RP lie from the measured ones.

    Parameters
    ----------
    bp, rp, bp_err, rp_err : arrays (n, 55)
        The coefficients the star is read with (NaN = absent) and their errors.
    mags, mag_errors : dict
        Measured magnitudes and their errors by short name (``g``, ``bp``, ``rp``).

    Returns
    -------
    array (n, 2)
        ``(synthetic - measured) / error`` for G and for BP - RP, the error
        combining the synthetic one, the measured one and `CONSISTENCY_FLOOR`;
        NaN where a quantity is missing.
    """
    synthetic, synthetic_err = synthetic_photometry(bp, rp, bp_err, rp_err)
    n = len(bp)
    missing = np.full(n, np.nan)

    def get(d, key):
        return np.asarray(d.get(key, missing), dtype=float)
    dg = synthetic["g"] - get(mags, "g")
    sg = np.sqrt(synthetic_err["g"] ** 2 + np.nan_to_num(get(mag_errors, "g")) ** 2
                 + CONSISTENCY_FLOOR ** 2)
    dc = (synthetic["bp"] - synthetic["rp"]) - (get(mags, "bp") - get(mags, "rp"))
    sc = np.sqrt(synthetic_err["bp"] ** 2 + synthetic_err["rp"] ** 2
                 + np.nan_to_num(get(mag_errors, "bp")) ** 2
                 + np.nan_to_num(get(mag_errors, "rp")) ** 2 + CONSISTENCY_FLOOR ** 2)
    return np.column_stack([dg / sg, dc / sc])
