"""Stars as sets of tokens: the arrays the network consumes, and the way back.

A batch of ``n`` stars is a `TokenBatch`: three ``(n, L)`` arrays -- token ids
(`giantfm.vocab`; 0 is padding), values and errors in each token's *token
scale* (see `giantfm.vocab`) -- plus, per star, its ``source_id``, a
``reason`` that is empty for usable stars, ``notes`` on input values that
were left out or replaced (`giantfm.validation`), the `giantfm.flags` bits
of both (``flags``) and the ``consistency`` of its spectrum with its
photometry. Each row lists its tokens first and pads on the right; the order
of the tokens within a row carries no meaning. A star
that cannot be tokenised (all coefficients NaN or masked, say) keeps its row,
with no tokens and a reason, so that a batch never loses or reorders rows.

`from_arrays` is the one place where physical inputs become tokens, and
where every input value is checked (`giantfm.validation`), once:
XP coefficients are divided by the G-band flux ``10**(-0.4 (G - 25.6873668671))``
(the Gaia DR3 G zero point, as Leung & Bovy 2024 normalise), colours are
differences of magnitudes (`giantfm.vocab.COLOURS`), and labels go to their
token scale. The ways in lead to it: `tokenize` (any XP input, in two steps:
`read_inputs`, then `from_xp`) and `from_mapping` (token names to values).

Which model will read the tokens is not this module's business: ``truncate``
is a plain choice here, and the verbs make it for their model
(`giantfm.metadata.ModelMetadata.truncation`). `column_in_unit` and
`value_in_unit` are giantfm's one reading of a column or value in a unit
(`giantfm.utils._columns`), given here under the names the verbs use.
"""
from dataclasses import dataclass, field

import numpy as np

from . import validation, vocab
from .exceptions import InvalidNameError
from .flags import REASONS, SEPARATOR
from .flags import reason as reason_text
from .utils._columns import floats as column_in_unit
from .utils._columns import value_in_unit
from .xp.coefficients import ARCHIVE_MAGNITUDES, SOURCE_ID_ALIASES, find_column
from .xp.noise import load_noise_model, photometric_errors
from .xp.photometry import (SYNTHETIC_MAGNITUDES, SYNTHETIC_OFFSET, SYNTHETIC_SCATTER,
                            synthetic_photometry)
from .xp.projection import project_coefficients
from .xp.readers import as_table, note_flags, read_photometry, read_source_ids, read_xp

__all__ = ["TokenBatch", "from_arrays", "from_xp", "from_mapping", "read_inputs", "tokenize",
           "g_flux", "to_token_scale", "from_token_scale", "value_in_unit", "column_in_unit",
           "error_columns", "ERROR_COLUMN_PATTERNS", "G_ZERO_POINT"]

#: Gaia DR3 G-band zero point (Riello et al. 2021), magnitudes.
G_ZERO_POINT = 25.6873668671


def g_flux(g_mag):
    """G-band flux in e-/s from the G magnitude (the XP normalisation)."""
    return 10.0 ** (-0.4 * (np.asarray(g_mag, dtype=float) - G_ZERO_POINT))


def to_token_scale(name, value, error=None, vocabulary=vocab.VOCABULARY):
    """Convert a quantity in the vocabulary unit of ``name`` to its token scale.

    Returns ``(value, error)``; for ``log10`` tokens the error is propagated to
    first order. Non-positive values of a ``log10`` token become NaN.
    ``vocabulary``: giantfm's, or a model's with its own labels
    (`giantfm.model.TrainedModel.tokens`).
    """
    value = np.asarray(value, dtype=float)
    error = None if error is None else np.asarray(error, dtype=float)
    if vocabulary.token(name).scale == "log10":
        with np.errstate(divide="ignore", invalid="ignore"):
            positive = value > 0
            logv = np.where(positive, np.log10(np.where(positive, value, 1.0)), np.nan)
            if error is not None:
                error = np.where(positive, error / (np.where(positive, value, 1.0) * np.log(10)),
                                 np.nan)
        value = logv
    return value, error


def from_token_scale(name, value, error=None, vocabulary=vocab.VOCABULARY):
    """Inverse of `to_token_scale`: token-scale mean and error to the vocabulary unit."""
    value = np.asarray(value, dtype=float)
    error = None if error is None else np.asarray(error, dtype=float)
    if vocabulary.token(name).scale == "log10":
        value = 10.0 ** value
        if error is not None:
            error = value * np.log(10) * error
    return value, error


@dataclass
class TokenBatch:
    """Padded token arrays for a batch of stars (see the module docstring).

    ``consistency`` (n, 2) holds, per star, its spectrum's synthetic G and
    BP - RP minus the measured ones in units of their errors
    (`giantfm.validation.photometric_consistency`), NaN where not known;
    ``g_mag`` (n,) the G magnitude its coefficients were divided by (measured,
    or synthesised from them), NaN where none. ``flags`` (n,) int64 holds the
    `giantfm.flags` bits of each star's ``reason`` and ``notes``, OR-ed in
    wherever one is given; without it, the ``no_tokens`` bit of the default
    ``reason`` (a ``reason`` given without ``flags`` has no bits: give both).
    """

    ids: np.ndarray
    values: np.ndarray
    errors: np.ndarray
    source_id: np.ndarray = None
    reason: np.ndarray = field(default=None)
    notes: np.ndarray = field(default=None)
    consistency: np.ndarray = field(default=None)
    g_mag: np.ndarray = field(default=None)
    flags: np.ndarray = field(default=None)

    def __post_init__(self):
        self.ids = np.asarray(self.ids, dtype=np.int16)
        self.values = np.asarray(self.values, dtype=np.float32)
        self.errors = np.asarray(self.errors, dtype=np.float32)
        if self.ids.ndim != 2 or self.ids.shape != self.values.shape \
                or self.ids.shape != self.errors.shape:
            raise ValueError("ids, values and errors must be 2-D arrays of one shape, got "
                             f"{self.ids.shape}, {self.values.shape}, {self.errors.shape}")
        n = len(self.ids)
        if self.source_id is None:
            self.source_id = np.full(n, -1, dtype=np.int64)
        self.source_id = np.asarray(self.source_id, dtype=np.int64)
        if self.reason is None:
            empty = self.n_tokens == 0
            self.reason = np.where(empty, reason_text("no_tokens"), "")
            if self.flags is None:
                self.flags = np.where(empty, REASONS["no_tokens"].value, 0)
        self.reason = np.asarray(self.reason, dtype=object)
        self.flags = np.zeros(n, dtype=np.int64) if self.flags is None \
            else np.asarray(self.flags, dtype=np.int64)
        self.notes = np.full(n, "", dtype=object) if self.notes is None \
            else np.asarray(self.notes, dtype=object)
        self.consistency = np.full((n, 2), np.nan, dtype=np.float32) \
            if self.consistency is None else np.asarray(self.consistency, dtype=np.float32)
        self.g_mag = np.full(n, np.nan) if self.g_mag is None \
            else np.asarray(self.g_mag, dtype=np.float64)
        if self.source_id.shape != (n,) or self.reason.shape != (n,) \
                or self.notes.shape != (n,) or self.consistency.shape != (n, 2) \
                or self.g_mag.shape != (n,) or self.flags.shape != (n,):
            raise ValueError("source_id, reason, notes, consistency, g_mag and flags must have "
                             "one entry per star")

    def __len__(self):
        return len(self.ids)

    @property
    def n_tokens(self):
        """Number of (non-padding) tokens of each star."""
        return (self.ids != vocab.PAD_ID).sum(axis=1)

    @property
    def ok(self):
        """Boolean mask of the stars that can be given to the network."""
        return (self.reason == "") & (self.n_tokens > 0)

    def __getitem__(self, rows):
        return TokenBatch(self.ids[rows], self.values[rows], self.errors[rows],
                          self.source_id[rows], self.reason[rows], self.notes[rows],
                          self.consistency[rows], self.g_mag[rows], self.flags[rows])

    def value_of(self, name):
        """Token-scale value and error of ``name`` per star (NaN where absent)."""
        tid = vocab.token_id(name)
        hit = self.ids == tid
        has = hit.any(axis=1)
        col = hit.argmax(axis=1)
        rows = np.arange(len(self))
        value = np.where(has, self.values[rows, col], np.nan)
        error = np.where(has, self.errors[rows, col], np.nan)
        return value, error

    def values_of(self, names, vocabulary=vocab.VOCABULARY):
        """Token-scale values and errors of ``names`` for every star, one column per name.

        Returns two float64 arrays (n_stars, len(names)), NaN where a star lacks
        the token (`value_of` for many names at once, without a loop over them).
        ``vocabulary``: the one the batch's ids index (a model's with its own labels).
        """
        names = [names] if isinstance(names, str) else list(names)
        column = np.full(max(len(vocabulary), int(self.ids.max(initial=0)) + 1), -1)
        column[vocabulary.token_ids(names)] = np.arange(len(names))
        col = column[self.ids.astype(np.intp)]
        rows, slots = np.nonzero(col >= 0)
        values = np.full((len(self), len(names)), np.nan)
        errors = np.full((len(self), len(names)), np.nan)
        values[rows, col[rows, slots]] = self.values[rows, slots]
        errors[rows, col[rows, slots]] = self.errors[rows, slots]
        return values, errors

    def without(self, names):
        """A copy with the tokens ``names`` removed (e.g. to hide labels before predicting)."""
        return self.keeping(~np.isin(self.ids, vocab.token_ids(names)))

    def only(self, names, reason=None):
        """A copy with only the tokens ``names`` (e.g. the inputs of an experiment).

        ``reason``, when given, marks the stars left without tokens (see `keeping`).
        """
        return self.keeping(np.isin(self.ids, vocab.token_ids(names)), reason)

    def keeping(self, keep, reason=None):
        """A copy with only the tokens where ``keep`` (boolean, shaped like ``ids``).

        Each row's tokens move to the front, in their order. With ``reason``,
        a usable star left without tokens gets it as its reason.
        """
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != self.ids.shape:
            raise ValueError(f"keep has shape {keep.shape}, expected {self.ids.shape}")
        ids = np.where(keep, self.ids, vocab.PAD_ID)
        rows_reason = self.reason
        if reason is not None:
            emptied = (self.reason == "") & ~(ids != vocab.PAD_ID).any(axis=1)
            rows_reason = np.where(emptied, reason, self.reason)
        return _pack(ids, self.values, self.errors, self.source_id, rows_reason, self.notes,
                     self.consistency, self.g_mag, self.flags)

    def appended(self, ids, values, errors):
        """A copy with more tokens per star: ``ids`` (k,) with ``values`` and ``errors``
        (n, k) in token scale; a NaN value adds no token (e.g. a star's missing label)."""
        ids = np.asarray(ids)
        values, errors = np.asarray(values, dtype=float), np.asarray(errors, dtype=float)
        if values.shape != (len(self), len(ids)) or errors.shape != values.shape:
            raise ValueError(f"values and errors must be ({len(self)}, {len(ids)}), got "
                             f"{values.shape} and {errors.shape}")
        present = np.isfinite(values)
        return _pack(np.concatenate([self.ids, np.where(present, ids[None, :], vocab.PAD_ID)],
                                    axis=1),
                     np.concatenate([self.values, np.where(present, values, 0.0)], axis=1),
                     np.concatenate([self.errors, np.where(present, np.nan_to_num(errors), 0.0)],
                                    axis=1),
                     self.source_id, self.reason, self.notes, self.consistency, self.g_mag,
                     self.flags)

    @classmethod
    def concatenate(cls, batches):
        """Stack batches of possibly different widths into one."""
        width = max(b.ids.shape[1] for b in batches)

        def pad(a, fill):
            return np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=fill)
        return cls(np.concatenate([pad(b.ids, vocab.PAD_ID) for b in batches]),
                   np.concatenate([pad(b.values, 0) for b in batches]),
                   np.concatenate([pad(b.errors, 0) for b in batches]),
                   np.concatenate([b.source_id for b in batches]),
                   np.concatenate([b.reason for b in batches]),
                   np.concatenate([b.notes for b in batches]),
                   np.concatenate([b.consistency for b in batches]),
                   np.concatenate([b.g_mag for b in batches]),
                   np.concatenate([b.flags for b in batches]))


def _pack(ids, values, errors, source_id=None, reason=None, notes=None, consistency=None,
          g_mag=None, flags=None):
    """Move each row's tokens to the front (stable), trim all-padding columns."""
    present = ids != vocab.PAD_ID
    width = max(int(present.sum(axis=1).max(initial=0)), 1)
    # Only the first `width` slots of each row are gathered, in the batch's own
    # dtypes (int16, float32): the gathers took a third of the time in float64.
    order = np.argsort(~present, axis=1, kind="stable")[:, :width]
    ids = np.take_along_axis(ids.astype(np.int16, copy=False), order, axis=1)
    values = np.take_along_axis(np.asarray(values, dtype=np.float32), order, axis=1)
    errors = np.take_along_axis(np.asarray(errors, dtype=np.float32), order, axis=1)
    padding = ids == vocab.PAD_ID
    values[padding] = 0
    errors[padding] = 0
    return TokenBatch(ids, values, errors, source_id, reason, notes, consistency, g_mag, flags)


def _column(x, n, what):
    if x is None:
        return np.full(n, np.nan)
    x = np.ma.filled(np.ma.asarray(x, dtype=float), np.nan).reshape(-1)
    if x.shape != (n,):
        raise ValueError(f"{what} has {x.size} entries for {n} stars")
    return x


def from_arrays(*, bp=None, rp=None, bp_err=None, rp_err=None, mags=None, mag_errors=None,
                labels=None, bp_n_relevant=None, rp_n_relevant=None, truncate=False, project=True,
                source_id=None, reason=None, notes=None, flags=None, columns=None):
    """Build a `TokenBatch` from plain arrays (the core of all tokenisers).

    Every value is checked first (`giantfm.validation`): one that cannot be a
    measurement -- not finite, a catalogue's missing-value sentinel, outside
    the range of real values -- is left out of its star only, and the star's
    ``notes`` name the column and the value; a band that is no star's
    spectrum makes its star unusable, with a ``reason`` naming every band
    that fails; a star with one band of the two is read from it, with a note.
    Every other star is tokenised exactly as it would be without the bad ones.

    Parameters
    ----------
    bp, rp : array (n, 55), optional
        Gaia DR3 XP coefficients in the archive's units (e-/s); NaN or masked
        entries become absent tokens. A whole band may be None.
    bp_err, rp_err : array (n, 55), optional
        Their standard errors. Where they are not given (None or NaN) a
        coefficient gets the default error model of
        `giantfm.xp.noise.XPNoiseModel.median_errors`: the typical Gaia DR3
        error of a star with that band's flux; an error that is given but not
        finite and positive gets it too, with a note.
    mags : dict, optional
        Magnitudes by short name: ``g``, ``bp``, ``rp`` (Gaia), ``j``, ``h``,
        ``k`` (2MASS). ``g`` is needed to normalise coefficients: without it
        (NaN) the star's coefficients are left out and ``reason`` says so.
    mag_errors : dict, optional
        Their errors (mag), by the same names; where not given, those of
        `giantfm.xp.noise.photometric_errors`. A colour token's error is the
        quadrature sum of its two magnitudes' errors.
    labels : dict, optional
        ``{name: value}`` or ``{name: (value, error)}`` in vocabulary units
        (e.g. ``teff`` in K, ``age`` in Gyr); NaN values are absent tokens.
        Values outside the token's valid range (`giantfm.vocab.Token.valid`)
        are left out with a note.
    bp_n_relevant, rp_n_relevant : array (n,), optional
        Gaia's ``*_n_relevant_bases``. With ``truncate`` the coefficients of
        higher order are left out (Gaia: they carry noise, not signal).
    truncate : bool, optional
        Leave out the coefficients beyond ``*_n_relevant`` (default False:
        every coefficient given is read). The verbs choose it for their model
        (`giantfm.metadata.ModelMetadata.truncation`).
    project : bool, optional
        Map each band's coefficients through `giantfm.xp.project_coefficients`
        (on by default): onto the part of the spectrum that a sampled XP
        spectrum determines, the input space the models are trained in.
    source_id, reason, notes, flags : array (n,), optional
        Carried through; a non-empty ``reason`` marks a row unusable, ``notes``
        are added to, and ``flags`` (the `giantfm.flags` bits of ``reason`` and
        ``notes``) is OR-ed with the bits of every reason and note added.
    columns : dict, optional
        The input's own names of the magnitudes (by short name) and of the
        coefficients (by their archive names, ``bp_coefficients``,
        ``bp_coefficient_errors``, ...), for the notes; default the Gaia
        archive's names.
    """
    mags = {} if mags is None else dict(mags)
    labels = {} if labels is None else dict(labels)
    n = None
    for arr in (bp, rp, *mags.values(), *(v[0] if isinstance(v, tuple) else v
                                          for v in labels.values())):
        if arr is not None:
            n = len(np.atleast_1d(np.asarray(arr, dtype=object if np.ma.isMaskedArray(arr)
                                             else None)))
            break
    if n is None:
        raise ValueError("nothing to tokenise: give coefficients, magnitudes or labels")
    reason = np.full(n, "", dtype=object) if reason is None else np.array(reason, dtype=object)
    flags = np.zeros(n, dtype=np.int64) if flags is None else np.array(flags, dtype=np.int64)
    note = validation.Notes(n)
    columns = dict(columns or {})
    # the input's own names, for the notes: of the coefficients (by their archive names) ...
    names_of = {key: columns.get(key, key) for key in ("bp_coefficients", "rp_coefficients",
                                                       "bp_coefficient_errors",
                                                       "rp_coefficient_errors")}
    # ... and of the magnitudes (by short name)
    magnitude_names = {short: columns.get(short, archive)
                       for short, archive in ARCHIVE_MAGNITUDES.items()}

    unknown = set(mags) - set(vocab.MAGNITUDE_NAMES)
    if unknown:
        raise InvalidNameError(f"unknown magnitude name(s) {sorted(unknown)}; expected "
                               f"{', '.join(vocab.MAGNITUDE_NAMES)}")
    mag = {name: validation.clean(_column(mags.get(name), n, f"magnitude {name!r}"),
                                  magnitude_names[name], note, *validation.MAGNITUDE_RANGE)
           for name in vocab.MAGNITUDE_NAMES}
    # Segments of tokens, each (keep, ids, values, errors, scale): which of its columns
    # each star has, their token ids, and the values and errors to gather from (times
    # ``scale`` per star where not None). They are packed in this order.
    segments = []
    raw, errors_of = {}, {}
    for band, coeffs in (("bp", bp), ("rp", rp)):
        if coeffs is None:
            continue
        c = np.ma.filled(np.ma.asarray(coeffs, dtype=float), np.nan)
        if c.ndim != 2 or c.shape[0] != n:
            raise ValueError(f"{band} coefficients must be an (n_stars, n_coefficients) array, "
                             f"got shape {c.shape} for {n} stars")
        if c.shape[1] != vocab.N_COEFFICIENTS:
            raise ValueError(
                f"{band.upper()} has {c.shape[1]} coefficients per star; this model knows Gaia "
                f"DR3 XP spectra with {vocab.N_COEFFICIENTS} per band (Gaia DR4 has 51 BP "
                "coefficients on a different basis and is not supported)")
        infinite = np.isinf(c)
        for row in np.flatnonzero(infinite.any(axis=1)):
            index = int(np.flatnonzero(infinite[row])[0])
            note.add(row, "bad_value", column=f"{names_of[band + '_coefficients']}[{index}]",
                     value=str(c[row, index]), why="not finite")
        raw[band] = np.where(infinite, np.nan, c)
    xp_snr, present, unlike_a_star = {}, {}, {}
    for band, errs in (("bp", bp_err), ("rp", rp_err)):
        if band not in raw:
            continue
        c = raw[band]
        e = (np.full_like(c, np.nan) if errs is None
             else np.ma.filled(np.ma.asarray(errs, dtype=float), np.nan))
        if e.shape != c.shape:
            raise ValueError(f"{band}_err has shape {e.shape}, expected {c.shape}")
        bad_error = validation.check_errors(e, names_of[f"{band}_coefficient_errors"],
                                            "coefficient", note)
        missing = np.isnan(e) | bad_error
        rows = np.flatnonzero(missing.any(axis=1))
        if rows.size:
            # the default error model, evaluated only for the rows that need it (it costs
            # as much as the rest of the tokenisation)
            defaults = load_noise_model().band_errors(band, c[rows, 0])
            e = e.copy()
            e[rows] = np.where(missing[rows], defaults, e[rows])
        errors_of[band] = e
        present[band] = np.isfinite(c).any(axis=1)
        _, texts = validation.check_spectrum(band, c, present[band])
        for row, text in texts.items():
            unlike_a_star.setdefault(row, []).append(text)
        with np.errstate(invalid="ignore", divide="ignore"):
            xp_snr[band] = np.abs(c[:, 0]) / e[:, 0]

    for row, texts in unlike_a_star.items():   # every band that fails is named
        if reason[row] == "":
            reason[row] = SEPARATOR.join(texts)
            flags[row] |= REASONS["not_a_spectrum"].value
    if present:
        none = np.zeros(n, dtype=bool)
        validation.note_missing_band({band: present.get(band, none) for band in ("bp", "rp")},
                                     note)

    mag_error, _ = photometric_errors(mag, xp_snr)
    for name, error in (mag_errors or {}).items():
        if name not in mag:
            raise InvalidNameError(f"unknown magnitude name {name!r} in mag_errors; expected "
                                   f"{', '.join(vocab.MAGNITUDE_NAMES)}")
        given = _column(error, n, f"error of magnitude {name!r}")
        bad = validation.check_errors(given, f"the error of {magnitude_names[name]}",
                                      "magnitude", note)
        mag_error[name] = np.where(np.isnan(given) | bad, mag_error[name], given)
    measured = {name: np.isfinite(mag[name]) for name in SYNTHETIC_MAGNITUDES}
    if "bp" in raw and "rp" in raw:
        _synthesise_missing(mag, mag_error, raw, errors_of, reason, note, magnitude_names)

    flux = g_flux(mag["g"])
    # The normalisation is applied in float32, the batch's dtype, to the kept tokens only.
    inverse_flux = (1.0 / flux).astype(np.float32)
    kept = {}
    for band, nrel, band_ids in (("bp", bp_n_relevant, vocab.BP_IDS),
                                 ("rp", rp_n_relevant, vocab.RP_IDS)):
        if band not in raw:
            continue
        c, e = raw[band], errors_of[band]
        keep = np.isfinite(c) & np.isfinite(flux)[:, None]
        if truncate and nrel is not None:
            nrel = np.ma.filled(np.ma.asarray(nrel, dtype=float), np.nan).reshape(-1)
            nrel = np.where(np.isfinite(nrel) & (nrel > 0), nrel, vocab.N_COEFFICIENTS)
            keep &= np.arange(vocab.N_COEFFICIENTS)[None, :] < nrel[:, None]
        kept[band] = np.where(keep, c, np.nan)
        if project:
            # Gaia: coefficients beyond the relevant bases are noise; they enter the
            # projection as zero, and absent coefficients likewise.
            c, e = project_coefficients(c, e, band, keep=keep)
        segments.append((keep, band_ids, c, e, inverse_flux))
        no_g = ~np.isfinite(flux) & np.isfinite(raw[band]).any(axis=1) & (reason == "")
        reason = np.where(no_g, reason_text("no_g"), reason)
        flags[no_g] |= REASONS["no_g"].value

    consistency = None
    if "bp" in kept and "rp" in kept:
        consistency = validation.photometric_consistency(
            kept["bp"], kept["rp"], errors_of["bp"], errors_of["rp"], mag, mag_error)
        # a synthesised magnitude says nothing about whether the spectrum is the star's
        consistency[~measured["g"], 0] = np.nan
        consistency[~(measured["bp"] & measured["rp"]), 1] = np.nan
    # Tokens every star has at most once (colours and labels): one column each.
    names, scalar_values, scalar_errors = [], [], []
    for name, (m1, m2) in vocab.COLOURS.items():
        names.append(name)
        scalar_values.append(mag[m1] - mag[m2])
        scalar_errors.append(np.hypot(mag_error[m1], mag_error[m2]))
    for name, item in labels.items():
        value, error = item if isinstance(item, tuple) else (item, None)
        low, high = validation.label_range(name)
        value = validation.clean(_column(value, n, f"label {name!r}"), name, note, low, high)
        if error is not None:
            error = _column(error, n, f"{name} error")
            bad = validation.check_errors(error, f"{name}_err", "label", note,
                                          exact_allowed=True, replacement="none (unknown)")
            error = np.where(bad, np.nan, error)
        value, error = to_token_scale(name, value, error)
        names.append(name)
        scalar_values.append(value)
        scalar_errors.append(np.zeros(n) if error is None else error)
    scalar_values = np.column_stack(scalar_values)
    segments.append((np.isfinite(scalar_values), vocab.token_ids(names), scalar_values,
                     np.column_stack(scalar_errors), None))

    usable = reason == ""
    ids, values, errors, counts = _pack_segments(segments, usable)
    emptied = usable & (counts == 0)
    reason = np.where(emptied, reason_text("no_tokens"), reason)
    flags[emptied] |= REASONS["no_tokens"].value
    found = note.joined()
    if notes is not None:
        given = np.asarray(notes, dtype=object)
        found = np.array([f"{a}; {b}" if a and b else a or b for a, b in zip(given, found)],
                         dtype=object)
    return TokenBatch(ids, values, errors, source_id, reason, found, consistency, mag["g"],
                      flags | note.flags)


def _synthesise_missing(mag, mag_error, raw, errors_of, reason, note, magnitude_names):
    """Fill a missing G, BP or RP with the magnitude synthesised from the coefficients, in place.

    Gaia's XP files carry no photometry; a spectrum with both bands says what
    G, BP and RP its star has (`giantfm.xp.photometry`). The magnitude is put on
    the scale of measured ones (`giantfm.xp.photometry.SYNTHETIC_OFFSET`
    subtracted), its error is the propagated one widened by their measured
    scatter (`giantfm.xp.photometry.SYNTHETIC_SCATTER`), and each star so
    completed gets a ``synthetic_photometry`` note naming the columns.
    """
    usable = reason == ""
    need = {name: usable & ~np.isfinite(mag[name]) for name in SYNTHETIC_MAGNITUDES}
    rows = np.flatnonzero(np.any(list(need.values()), axis=0))
    if not rows.size:
        return
    synthetic, synthetic_err = synthetic_photometry(
        raw["bp"][rows], raw["rp"][rows], errors_of["bp"][rows], errors_of["rp"][rows])
    filled = np.zeros((len(rows), len(SYNTHETIC_MAGNITUDES)), dtype=bool)
    for k, name in enumerate(SYNTHETIC_MAGNITUDES):
        fill = need[name][rows] & np.isfinite(synthetic[name])
        filled[:, k] = fill
        mag[name][rows[fill]] = synthetic[name][fill] - SYNTHETIC_OFFSET[name]
        mag_error[name][rows[fill]] = np.hypot(synthetic_err[name][fill],
                                               SYNTHETIC_SCATTER[name])
    names = np.array([magnitude_names[name] for name in SYNTHETIC_MAGNITUDES])
    for pattern in np.unique(filled[filled.any(axis=1)], axis=0):
        which = names[pattern]
        note.add(rows[(filled == pattern).all(axis=1)], "synthetic_photometry",
                 bands=", ".join(which[:-1]) + " and " + which[-1] if len(which) > 1
                 else which[0])


def _pack_segments(segments, usable):
    """Scatter the kept tokens of each star, segment after segment, to the front of its row.

    Only the kept tokens are moved (with truncation by ``*_n_relevant_bases``
    about 20 of the up to 115 columns of a star): np.flatnonzero lists them row
    by row in column order, so a token's slot is its rank in that list minus
    the number of kept tokens of the rows before, plus what the star's earlier
    segments filled. Measured for 100,000 stars of the benchmark (real
    ``*_n_relevant_bases``; 2 shared cores, load average 4): 0.20 s against
    0.84 s for building the full-width (n, 115) arrays and packing them with a
    stable argsort of the padding mask and three gathers (`_pack`).
    Returns ids, values, errors (n, width) and the number of tokens of each star.
    """
    n = len(usable)
    keeps = [keep & usable[:, None] for keep, *_ in segments]
    counts = [keep.sum(axis=1) for keep in keeps]
    total = sum(counts)
    width = max(int(total.max(initial=0)), 1)
    ids = np.full((n, width), vocab.PAD_ID, dtype=np.int16)
    values = np.zeros((n, width), dtype=np.float32)
    errors = np.zeros((n, width), dtype=np.float32)
    filled = np.zeros(n, dtype=np.int64)          # slots of each row taken so far
    row_start = np.arange(n) * width
    for keep, count, (_, column_ids, value, error, scale) in zip(keeps, counts, segments):
        flat = np.flatnonzero(keep)
        rows = np.repeat(np.arange(n), count)
        before = np.cumsum(count) - count         # kept tokens of this segment in earlier rows
        slot = np.arange(flat.size) + np.repeat(row_start + filled - before, count)
        # Assigning through reshape(-1), a view, rather than .flat: measured 3x faster.
        ids.reshape(-1)[slot] = column_ids.astype(np.int16)[flat - rows * keep.shape[1]]
        v = np.take(value, flat).astype(np.float32)
        e = np.take(error, flat)
        e = np.where(np.isfinite(e), np.abs(e).astype(np.float32), np.float32(0))
        if scale is not None:
            v *= scale[rows]
            e *= scale[rows]
        values.reshape(-1)[slot] = v
        errors.reshape(-1)[slot] = e
        filled += count
    return ids, values, errors, total


def _photometry_for(xp, photometry):
    """Magnitudes of ``photometry`` aligned with the stars of ``xp``, and notes on its cells.

    Joined on ``source_id`` when both have it (every star of ``xp`` must be
    found; no source_id may appear twice in ``photometry``), else
    matched by row order (the lengths must agree).
    """
    table = as_table(photometry)
    cell_notes = np.full(len(table), "", dtype=object)
    mags = read_photometry(table, notes=cell_notes)
    if not mags:
        raise ValueError("photometry has no magnitude columns; expected some of "
                         "phot_g_mean_mag, phot_bp_mean_mag, phot_rp_mean_mag, j_m, h_m, ks_m "
                         "(or the aliases in giantfm.xp.coefficients.PHOTOMETRY_ALIASES); got "
                         f"{table.colnames[:20]}")
    sid_name = find_column(table.colnames, SOURCE_ID_ALIASES)
    if sid_name is not None and (xp.source_id >= 0).all():
        sid = read_source_ids(table[sid_name], cell_notes)
        unique, first = np.unique(sid, return_index=True)
        counts = np.bincount(np.searchsorted(unique, sid))
        dup = unique[(counts > 1) & (unique >= 0)]     # rows without an id (-1) join nothing
        if dup.size:
            raise ValueError(f"photometry lists source_id {dup[:5].tolist()} more than once: "
                             "cannot join it on source_id")
        pos = np.minimum(np.searchsorted(unique, xp.source_id), len(unique) - 1)
        hit = unique[pos] == xp.source_id
        if not hit.all():
            raise ValueError(f"photometry has no row for source_id "
                             f"{xp.source_id[~hit][:10].tolist()} "
                             f"({int((~hit).sum())} of {len(xp)} stars)")
        rows = first[pos]
        return {name: values[rows] for name, values in mags.items()}, cell_notes[rows]
    if len(table) != len(xp):
        raise ValueError(f"photometry has {len(table)} rows for {len(xp)} stars and no "
                         "source_id column to join on: give it in the same row order")
    return mags, cell_notes


def _labels_from(labels, n):
    """``labels`` as the dict `from_arrays` takes (a table's label columns, with ``*_err``)."""
    if labels is None or isinstance(labels, dict):
        return labels
    table = as_table(labels)
    if len(table) != n:
        raise ValueError(f"labels has {len(table)} rows for {n} stars")
    found = {}
    for name in vocab.LABEL_NAMES:
        column = find_column(table.colnames, (name,))
        if column is None:
            continue
        error = find_column(table.colnames, error_columns(name))
        value = _label_column(table[column], name)
        found[name] = value if error is None else (value, _label_column(table[error], name))
    if not found:
        raise ValueError(f"labels has none of the label columns {list(vocab.LABEL_NAMES)}; "
                         f"got {table.colnames[:20]}")
    return found


#: How the error column of a label column ``x`` may be called (the first found is used).
ERROR_COLUMN_PATTERNS = ("{}_err", "{}_error", "e_{}")


def error_columns(column):
    """The names the error column of the label column ``column`` may have, in the order
    they are looked for (`ERROR_COLUMN_PATTERNS`)."""
    return tuple(pattern.format(column) for pattern in ERROR_COLUMN_PATTERNS)


def _label_column(column, name):
    """A label column as floats in the vocabulary unit (NaN where masked); a column without
    a unit is taken to be in it."""
    return column_in_unit(column, vocab.token_unit(name), f"label column {name!r}")


def read_inputs(data, photometry=None, labels=None):
    """The reading step of `tokenize`: coefficients, magnitudes and labels of the stars.

    Parameters
    ----------
    data, photometry, labels
        As in `tokenize`.

    Returns
    -------
    xp : `~giantfm.xp.XPCoefficients`
        The stars' coefficients (read without correlations).
    mags : dict
        Their magnitudes by short name: those found in ``data``, overridden
        or completed by ``photometry``.
    labels : dict or None
        ``{name: value}`` or ``{name: (value, error)}``, as `from_arrays` takes them.
    """
    xp = read_xp(data, correlations=False)
    mags = dict(xp.mags)
    if photometry is not None:
        found, cell_notes = _photometry_for(xp, photometry)
        mags.update(found)
        xp.notes = np.array([f"{a}; {b}" if a and b else a or b
                             for a, b in zip(xp.notes, cell_notes)], dtype=object)
        xp.flags = xp.flags | note_flags(cell_notes)
    return xp, mags, _labels_from(labels, len(xp))


def from_xp(xp, mags=None, labels=None, truncate=False, project=True):
    """Tokens of an `~giantfm.xp.XPCoefficients` (see `from_arrays` for the arguments).

    ``mags`` defaults to the magnitudes read with the coefficients (``xp.mags``).
    """
    return from_arrays(bp=xp.bp, rp=xp.rp, bp_err=xp.bp_err, rp_err=xp.rp_err,
                       mags=xp.mags if mags is None else mags, labels=labels,
                       bp_n_relevant=xp.bp_n_relevant, rp_n_relevant=xp.rp_n_relevant,
                       truncate=truncate, project=project, source_id=xp.source_id,
                       reason=xp.reason, notes=xp.notes, flags=xp.flags, columns=xp.columns)


def tokenize(data, photometry=None, labels=None, truncate=False, project=True):
    """Tokens of Gaia DR3 XP spectra in any form astronomers hold them.

    Parameters
    ----------
    data : `~astropy.table.Table`, `~astropy.table.QTable`, str or path-like, \
`specutils.Spectrum`, ...
        Anything `giantfm.xp.read_xp` reads: an archive XP_CONTINUOUS table
        (also as returned by ``Gaia.load_data`` or `giantfm.fetch_xp`),
        GaiaXPy-style CSV, the flattened ``bp_coeff_0..54`` style, a table
        with 2-D array columns, a file of any of these, or a
        `specutils.Spectrum` (1-D or a 2-D batch; see
        `giantfm.xp.spectrum_to_coefficients`). Photometry columns in ``data``
        are used (`giantfm.xp.coefficients.PHOTOMETRY_ALIASES`).
    photometry : `~astropy.table.Table` or table-like, optional
        Magnitudes that override or add to those in ``data``: joined on
        ``source_id`` when both have it, else taken in the same row order.
    labels : dict or `~astropy.table.Table`, optional
        Stellar labels to add as tokens: ``{name: value}`` or
        ``{name: (value, error)}`` in vocabulary units, or a table (same row
        order) with columns named as the labels (``teff``, ``logg``, ``m_h``,
        ``alpha_m``, ``mass``, ``age``) and optional ``<name>_err``.
    truncate : bool, optional
        Leave out coefficients beyond Gaia's ``bp_n_relevant_bases`` /
        ``rp_n_relevant_bases`` (default False: every coefficient given is
        read, as the bundled model reads them). `giantfm.predict` and the
        other verbs choose for the model they use
        (`giantfm.metadata.ModelMetadata.truncation`); to tokenise as a
        model reads, pass ``truncate=model.metadata.truncate``.
    project : bool, optional
        Project the coefficients as the models' inputs are (see `from_arrays`).

    Returns
    -------
    batch : `TokenBatch`
        One row per input star, in order. A star without coefficients, or
        without a G magnitude to normalise them (for a Spectrum without G a
        synthetic G is derived from the spectrum itself), has no tokens and
        a ``reason``.

    Raises
    ------
    ValueError, TypeError
        As `giantfm.xp.read_xp`, and for photometry or labels that do not
        match the stars.

    Examples
    --------
    >>> from giantfm import tokenize  # doctest: +SKIP
    >>> batch = tokenize("XP_CONTINUOUS_RAW.csv", photometry=gaia_source_table)  # doctest: +SKIP
    """
    xp, mags, labels = read_inputs(data, photometry, labels)
    return from_xp(xp, mags, labels, truncate=truncate, project=project)


def from_mapping(mapping):
    """Tokens of stars given as token names and values.

    Parameters
    ----------
    mapping : dict
        ``{name: values}`` of vocabulary tokens (Quantities are converted to
        the vocabulary unit, plain numbers are in it), with ``name_err``
        entries for errors, e.g. ``{'teff': [4500, 4800] * u.K, 'logg': [2.4, 2.9]}``.

    Returns
    -------
    `TokenBatch`

    Raises
    ------
    InvalidNameError
        An unknown token name, or ``name_err`` without ``name``.
    ValueError
        An empty mapping.
    """
    labels = {}
    for name, value in mapping.items():
        if name.endswith("_err"):
            if name[:-4] not in mapping:
                raise InvalidNameError(f"{name!r} is given without {name[:-4]!r}")
            continue
        unit = vocab.token_unit(name)
        error = mapping.get(f"{name}_err")
        labels[name] = (value_in_unit(value, unit, name),
                        None if error is None else value_in_unit(error, unit, f"{name}_err"))
    if not labels:
        raise ValueError("inputs is empty: give at least one token, e.g. {'teff': 4500 * u.K}")
    return from_arrays(labels=labels)
