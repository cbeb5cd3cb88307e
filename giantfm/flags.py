"""Every reason giantfm gives for a row: the one registry, from which the docs' flags page is made.

A result row carries its reasons three ways, all made from this registry:

* ``reason``: the texts of every reason that applies to the star, joined
  with ``"; "``, for people;
* ``flags``: an integer bitmask with the `Reason.bit` of every reason that
  applies, for selections (`decode_flags` turns it back into codes), as
  photutils' PSF photometry flags do;
* ``flag``: True when the row should not be used as it stands: nothing was
  predicted, or the inputs are unlike the training stars' (the reasons with
  ``Reason.sets_flag`` True). A star whose mass and age lie outside the label
  domain is *not* flagged: its Teff, log g, [M/H] and [alpha/M] are good, and
  its mass and age columns are masked (each label is usable on its own where
  it is not masked).

Each reason has a stable ``code`` and ``bit``, the step of the flow that
finds it and what it does to the row (``effect``):

* ``'row'``: nothing is predicted, every output is masked;
* ``'label_model'``: what the label model teaches -- mass, age and the
  evolutionary state (``p_rc``, ``evstate``) -- is masked, the other labels kept;
* ``'input'``: an input value was left out, replaced or made up (with a note
  saying how) and the star predicted from the rest;
* ``'none'``: the prediction stands, with a warning (``flags`` says whether
  to trust it).

Code that gives a reason calls `reason` with the code and the values it
names, so the texts users read and the page that documents them cannot
drift apart. The bit is the record that decides: wherever a reason is
attached to a row (an `~giantfm.xp.XPCoefficients`, a
`~giantfm.tokens.TokenBatch`, a result) its `Reason.value` is OR-ed into the
row's ``flags`` beside its text, and ``flag`` is computed from the bits
alone. Only a text read back from a file -- a table given with a ``reason``
column, as `giantfm.fetch_xp` writes them -- has its bits recovered from the
text (`flag_bits`).
"""
from dataclasses import dataclass

import numpy as np

__all__ = ["Reason", "REASONS", "reason", "reasons_table", "flag_bits", "reason_texts",
           "decode_flags", "FLAG_MASK", "SEPARATOR"]

#: How the texts of several reasons of one row are joined in its ``reason``.
SEPARATOR = "; "


@dataclass(frozen=True)
class Reason:
    """One reason a row can carry.

    ``bit`` is its place in a result's ``flags`` bitmask; ``sets_flag`` says whether it
    makes the row's ``flag`` True (`FLAG_MASK`): three things, three names.
    """

    code: str
    bit: int
    template: str
    effect: str
    sets_flag: bool
    step: str
    description: str

    def format(self, **values):
        """The text of this reason with ``values`` filled in."""
        return self.template.format(**values)

    @property
    def value(self):
        """This reason's value in the ``flags`` bitmask: ``2 ** bit``."""
        return 1 << self.bit

    @property
    def prefix(self):
        """The literal start of every text of this reason (up to its first placeholder)."""
        return self.template.split("{", 1)[0]


# Bits are stable: a new reason takes the next free bit, and a retired one keeps its bit unused.
_ALL = (
    # ------------------------------------------------------------------ inputs
    Reason("no_xp", 0, "no XP coefficients (both bands missing, NaN or masked)", "row", True,
           "inputs", "Neither band has a coefficient: nothing to predict from."),
    Reason("not_in_archive", 1,
           "not in gaiadr3.xp_continuous_mean_spectrum (no XP spectrum in the archive)", "row",
           True, "inputs", "`giantfm.fetch_xp` asked the Gaia archive for a source it has no "
           "XP spectrum of."),
    Reason("spectrum_not_fitted", 2, "spectrum cannot be fitted: {detail}", "row", True,
           "inputs", "A `specutils.Spectrum` row has too few good samples to determine "
           "coefficients."),
    Reason("no_g", 3, "no G magnitude: XP coefficients cannot be normalised", "row", True,
           "inputs", "The coefficients are divided by the G-band flux; without a measured G "
           "(missing, or left out as below) and without both bands to synthesise one from "
           "(see ``synthetic_photometry``) they cannot be read."),
    Reason("bad_value", 4, "ignored {column} = {value}: {why}", "input", False, "inputs",
           "A magnitude, label or coefficient that cannot be a measurement: not finite, a "
           "survey's missing-value sentinel (99, -99, 999, 9999, -9999, ...), or outside "
           "the range of real values (magnitudes -2 to 25, Teff 1000-100000 K, a probability "
           "outside 0-1, ...). The token is left out and the star predicted from the rest (a "
           "bad G is then synthesised from the coefficients: see ``synthetic_photometry``)."),
    Reason("bad_error", 5, "replaced {count} {what} error(s) of {column} ({value}) with "
           "{replacement}", "input", False, "inputs",
           "Errors must be finite and positive (a label's may be 0: known exactly); a bad "
           "coefficient or magnitude error is replaced by the typical Gaia DR3 error of such "
           "a star (`giantfm.xp.noise`, which missing errors get silently), a bad label "
           "error by none (unknown)."),
    Reason("not_a_spectrum", 6, "the {band} spectrum is not a star's: {detail}", "row", True,
           "inputs", "All coefficients of a band zero, or its zeroth coefficient (the "
           "integral of the spectrum) not positive: no star has such a spectrum. Each band "
           "that fails has its own text."),
    Reason("synthetic_photometry", 12, "synthesised from the XP coefficients (no measured "
           "value): {bands}", "input", False, "inputs",
           "Gaia's XP files (the archive's ``xp_continuous_mean_spectrum`` table and its bulk "
           "files) carry no photometry. A missing G, BP or RP magnitude is synthesised from "
           "the star's two bands (`giantfm.xp.photometry`), its error widened by the scatter "
           "of synthetic against measured magnitudes, and the star predicted as usual; the "
           "spectrum cannot then be checked against that magnitude (``ood_score``)."),
    Reason("missing_band", 14, "one band only: no {band} coefficients, the star is read from its "
           "{other} coefficients and photometry", "input", False, "inputs",
           "One band of the spectrum has no coefficient (the column is missing, or every value "
           "in it NaN or masked; or the band was hidden, `giantfm.inpaint`). The star is read "
           "from the other band and its colours; without both bands no G, BP or RP can be "
           "synthesised and the spectrum cannot be checked against the photometry, so a star "
           "unlike the training stars shows only in the embedding part of its ``ood_score``."),
    # ------------------------------------------------------------------ tokens
    Reason("no_tokens", 7, "no usable tokens (all inputs missing or non-finite)", "row", True,
           "tokens", "Every input of the star was missing or left out."),
    # ------------------------------------------------------------------ network
    Reason("not_read", 8, "no prediction: none of the star's tokens is an input of this model, "
           "or the network returned a non-finite value", "row", True, "network",
           "The star has tokens, but none the model reads (only high-order coefficients, "
           "say)."),
    # ------------------------------------------------------------------ results
    Reason("outside_label_domain", 9, "outside the label model's domain ({limits}): mass, age "
           "and evolutionary state masked", "label_model", False, "results",
           "The mass, age and evolutionary-state labels the model learnt come from a label "
           "model calibrated on asteroseismic giants inside a box of Teff, log g, [M/H] and "
           "[alpha/M] (``meta['label_domain']``); elsewhere -- dwarfs, the upper giant branch, "
           "metal-poor stars -- they would be extrapolations. The text names the limits the "
           "star's labels (predicted, or given as inputs) break. The other labels are kept "
           "and the row is not flagged."),
    Reason("out_of_distribution", 10, "unlike the training stars (ood_score {score:.2f} > 1: "
           "{detail})", "none", True, "results",
           "The star's inputs are unlike any the model was trained on (see the "
           "``ood_score`` column): its labels are extrapolations, kept but flagged."),
    Reason("outside_training_labels", 11, "outside the training labels: {detail}", "none", True,
           "results", "Labels given as inputs (to `giantfm.request` or "
           "`giantfm.generate_spectrum`) lie outside those of the training set: the answer "
           "is an extrapolation, kept but flagged."),
    Reason("no_embedding", 13, "no embedding (masked or not finite in the embedding column)",
           "row", True, "results",
           "A query star of `giantfm.similar` given as an embedding table whose ``embedding`` "
           "is masked or not finite, with no reason of its own (a table made outside "
           "`giantfm.embed`): it has no neighbours."),
)

#: Every reason, by code.
REASONS = {r.code: r for r in _ALL}
#: The bits of the reasons that set ``flag`` (``flags & FLAG_MASK != 0`` is ``flag``).
FLAG_MASK = sum(r.value for r in _ALL if r.sets_flag)
_BY_PREFIX = sorted(_ALL, key=lambda r: -len(r.prefix))   # longest first


def reason(code, **values):
    """The text of the reason ``code`` (a key of `REASONS`) with ``values`` filled in."""
    if code not in REASONS:
        raise ValueError(f"unknown reason code {code!r}; the codes are {', '.join(REASONS)}")
    return REASONS[code].format(**values)


def reason_texts(text):
    """The texts of the reasons joined in ``text`` (one ``reason`` value), by code.

    Each part (`SEPARATOR` joins them) is recognised by the literal start of
    its template (`Reason.prefix`); a part of no reason is left out. For
    showing the text of a reason whose bit a row has (the command line's
    summary), and for texts read back (`flag_bits`).

    Returns
    -------
    dict
        ``{code: text}`` (the first text of each code), in the order found.
    """
    found = {}
    for part in str(text).split(SEPARATOR):
        for r in _BY_PREFIX:
            if part.startswith(r.prefix):
                found.setdefault(r.code, part)
                break
    return found


def _bits_of_text(text):
    return sum(REASONS[code].value for code in reason_texts(text))


def flag_bits(texts):
    """The ``flags`` bitmask of each row recovered from its ``reason`` text.

    For texts read back from a file (a table given with a ``reason`` column,
    as `giantfm.fetch_xp` writes them; a `giantfm.similar` query table made
    outside `giantfm.embed`), never for the flow: there every reason carries
    its bit from where it is given. A reason is recognised by the literal
    start of its template (`Reason.prefix`); a text of no reason adds no bit.

    Parameters
    ----------
    texts : str or array-like of str
        Reason texts as a result's ``reason`` column holds them (several joined
        with `SEPARATOR`).

    Returns
    -------
    int or `numpy.ndarray` of int64
        The sum of the `Reason.value` of every reason found. Each text is
        looked at once however many rows share it (most rows share the empty one).
    """
    if isinstance(texts, str):
        return _bits_of_text(texts)
    texts = np.asarray(texts, dtype=object)
    seen = {"": 0}
    # a dictionary of the texts seen: measured 3x faster than np.unique on 10^4 rows
    bits = [seen[t] if t in seen else seen.setdefault(t, _bits_of_text(t))
            for t in map(str, texts.ravel())]
    return np.array(bits, dtype=np.int64).reshape(texts.shape)


def decode_flags(flags):
    """The codes of the reasons in a ``flags`` bitmask (the photutils habit).

    Parameters
    ----------
    flags : int or array-like of int
        One result's ``flags``, or a column of them.

    Returns
    -------
    list of str, or list of lists of str
        For one value, the codes of its reasons in bit order; for an array,
        one such list per value.

    Raises
    ------
    ValueError
        A negative value, or one with a bit that no reason has.

    Examples
    --------
    >>> from giantfm import decode_flags
    >>> decode_flags(512 + 4096)
    ['outside_label_domain', 'synthetic_photometry']
    """
    if np.ndim(flags) == 0:
        value = int(flags)
        if value < 0:
            raise ValueError(f"flags must be >= 0, got {value}")
        known = sum(r.value for r in _ALL)
        unknown = value & ~known
        if unknown:
            bits = [b for b in range(unknown.bit_length()) if unknown >> b & 1]
            raise ValueError(f"flags {value} has bit(s) that no reason has: {bits}; the "
                             "reasons are listed in giantfm.flags.REASONS")
        return [r.code for r in sorted(_ALL, key=lambda r: r.bit) if value & r.value]
    return [decode_flags(v) for v in np.asarray(flags).reshape(-1).tolist()]


def reasons_table():
    """`REASONS` as an astropy `~astropy.table.Table` (for the documentation's flags page)."""
    from astropy.table import Table
    ordered = sorted(_ALL, key=lambda r: r.bit)
    return Table({"bit": [r.bit for r in ordered], "value": [r.value for r in ordered],
                  "code": [r.code for r in ordered], "step": [r.step for r in ordered],
                  "effect": [r.effect for r in ordered], "sets_flag": [r.sets_flag for r in ordered],
                  "text": [r.template for r in ordered],
                  "description": [r.description for r in ordered]})
