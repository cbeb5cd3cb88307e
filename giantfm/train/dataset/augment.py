"""Training that knows about noise: faint copies of the training stars, made at every step.

The training library stops at G = 15 and its spectra are brighter and cleaner
than most Gaia XP spectra. `FaintCopies` shows the network each training star
as Gaia DR3 would have published it at a random fainter magnitude: a
`giantfm.xp.noise.faint_copy` (coefficients and magnitudes scaled, errors,
correlated noise and ``n_relevant_bases`` from the noise model, 2MASS bands
lost below detection), tokenised by `giantfm.tokens.from_arrays` exactly as
`giantfm.predict` tokenises an archive table. A share of the stars is shown as
it is in the dataset, so that the bright, complete spectra stay in the
training distribution. Label tokens are carried over unchanged.

The copies are made from the raw inputs the dataset keeps for its XP stars
(coefficients and errors in the archive's units, magnitudes; see
`giantfm.train.dataset.datafile.load_dataset`), not from the tokens: projected
coefficients of high order are linear mixtures of the low orders, many times
larger than the archive's own, and would pass the truncation rule of the
noise model where the archive's coefficients do not.
"""
import numpy as np

from ... import vocab
from ...tokens import TokenBatch, from_arrays, from_token_scale
from ...xp.noise import faint_copy, load_noise_model
from ...xp.photometry import SYNTHETIC_MAGNITUDES
from ...xp.coefficients import XPCoefficients

__all__ = ["FaintCopies", "with_faint_copies", "FAINT_LIMIT"]

#: The faintest G of Gaia DR3 XP spectra.
FAINT_LIMIT = 17.65

_CARRIED = tuple(vocab.LABEL_NAMES) + ("a_k",)


class FaintCopies:
    """Callable augmentation for `giantfm.model.training.train` (``augment=``).

    Parameters
    ----------
    batch : `giantfm.tokens.TokenBatch`
        The training stars in token scale, as stored in the dataset.
    inputs : dict
        Their raw inputs, ``{"xp": {...}, "mags": {...}}`` as
        `giantfm.train.dataset.datafile.load_dataset` gives them per split.
    g_range : (float, float), optional
        A copy's G is drawn uniformly between the star's own G (at least the
        lower end) and the upper end.
    p_native : float, optional
        Fraction of the stars shown as stored, without a copy.
    p_untruncated : float, optional
        Fraction of the copies that keep all their coefficients (with their
        errors) rather than those within ``n_relevant_bases``: what
        ``giantfm.predict(..., truncate=False)`` gives the network.
    model : `giantfm.xp.noise.XPNoiseModel`, optional
        Default: the bundled noise model.
    """

    def __init__(self, batch, inputs, *, g_range=(10.0, FAINT_LIMIT), p_native=0.25,
                 p_untruncated=0.5, model=None):
        for name, p in (("p_native", p_native), ("p_untruncated", p_untruncated)):
            if not 0 <= p <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {p!r}")
        low, high = g_range
        if not low < high:
            raise ValueError(f"g_range must be (low, high) with low < high, got {g_range!r}")
        xp, mags = inputs.get("xp") or {}, inputs.get("mags") or {}
        if "bp" not in xp or "g" not in mags:
            raise ValueError("the dataset has no raw XP inputs to make faint copies from: "
                             "rebuild it with this giantfm (giantfm build-dataset)")
        n = len(batch)
        for name, value in (*xp.items(), *mags.items()):
            if len(value) != n:
                raise ValueError(f"inputs {name!r} has {len(value)} rows for {n} stars")
        self.batch, self.xp, self.mags = batch, xp, mags
        self.g_range, self.p_native = (float(low), float(high)), float(p_native)
        self.p_untruncated = float(p_untruncated)
        self.model = load_noise_model() if model is None else model
        self.has_xp = (np.isfinite(xp["bp"]).all(axis=1) & np.isfinite(xp["rp"]).all(axis=1)
                       & np.isfinite(mags["g"]))
        carried, carried_errors = batch.values_of(_CARRIED)
        self.labels = {}
        for k, name in enumerate(_CARRIED):
            self.labels[name] = from_token_scale(name, carried[:, k], carried_errors[:, k])
        self.description = (f"faint copies (giantfm.xp.noise.faint_copy) at G uniform in "
                            f"[max(G, {low:g}), {high:g}] for {1 - p_native:.0%} of the XP stars, "
                            f"{p_untruncated:.0%} of them with all coefficients")

    def copies(self, rows, target_g, rng, truncate=None, gaia_photometry=True):
        """Token batch of faint copies of the stars ``rows`` at ``target_g`` (XP stars only).

        ``truncate`` (bool, or a boolean array per star): leave out the
        coefficients beyond ``n_relevant_bases``; None draws it per star
        (``p_untruncated``). Without ``gaia_photometry`` the copies come
        without their G, BP and RP, as Gaia's XP files do, and are tokenised
        with the magnitudes synthesised from their coefficients.
        """
        rows = np.asarray(rows)
        xp = XPCoefficients(
            source_id=self.batch.source_id[rows], bp=self.xp["bp"][rows], rp=self.xp["rp"][rows],
            bp_err=self.xp["bp_err"][rows], rp_err=self.xp["rp_err"][rows],
            bp_n_relevant=self.xp["bp_n_relevant"][rows],
            rp_n_relevant=self.xp["rp_n_relevant"][rows],
            mags={name: m[rows] for name, m in self.mags.items()})
        copy = faint_copy(xp, target_g, rng=rng, model=self.model)
        if truncate is None:
            truncate = rng.random(len(rows)) >= self.p_untruncated
        truncate = np.broadcast_to(np.asarray(truncate, dtype=bool), (len(rows),))
        labels = {name: (value[rows], error[rows]) for name, (value, error) in self.labels.items()}
        mags = copy.mags if gaia_photometry else {
            name: m for name, m in copy.mags.items() if name not in SYNTHETIC_MAGNITUDES}
        return from_arrays(bp=copy.bp, rp=copy.rp, bp_err=copy.bp_err, rp_err=copy.rp_err,
                           mags=mags, labels=labels,
                           bp_n_relevant=np.where(truncate, copy.bp_n_relevant, -1),
                           rp_n_relevant=np.where(truncate, copy.rp_n_relevant, -1),
                           truncate=True, source_id=copy.source_id)

    def draw_g(self, rows, rng):
        """Target G per star of ``rows``: NaN (as stored) or a fainter G (see the class)."""
        rows = np.asarray(rows)
        low, high = self.g_range
        start = np.maximum(self.mags["g"][rows], low)
        target = start + rng.random(len(rows)) * np.clip(high - start, 0, None)
        native = (rng.random(len(rows)) < self.p_native) | ~self.has_xp[rows]
        return np.where(native, np.nan, target)

    def mixed(self, rows, target_g, rng, truncate=None, gaia_photometry=True):
        """The stars ``rows`` in order: copies at ``target_g`` where it is finite, the
        stars as stored where it is NaN (``truncate`` and ``gaia_photometry`` as in
        `copies`)."""
        rows = np.asarray(rows)
        faint = np.isfinite(target_g)
        if not faint.any():
            return self.batch[rows]
        parts = [self.batch[rows[~faint]],
                 self.copies(rows[faint], target_g[faint], rng, truncate=truncate,
                             gaia_photometry=gaia_photometry)]
        stacked = TokenBatch.concatenate(parts)
        order = np.empty(len(rows), dtype=np.int64)
        order[np.flatnonzero(~faint)] = np.arange((~faint).sum())
        order[np.flatnonzero(faint)] = (~faint).sum() + np.arange(faint.sum())
        return stacked[order]

    def __call__(self, rows, rng):
        """The stars ``rows`` as the network sees them at this step (token scale)."""
        rows = np.asarray(rows)
        return self.mixed(rows, self.draw_g(rows, rng), rng)


def with_faint_copies(batch, inputs, n_copies=1, *, seed=0, g_range=(10.0, FAINT_LIMIT),
                      truncate=None):
    """A fixed sample: the stars as stored, then ``n_copies`` faint copies of each XP star.

    For what cannot augment as it trains (the XGBoost baselines) and for a
    validation set that covers every magnitude: each copy's G is drawn as in
    `FaintCopies` (seeded, so the same sample at every call). ``truncate`` as
    in `FaintCopies.copies` (None: drawn per copy).

    Returns
    -------
    `giantfm.tokens.TokenBatch`
        ``len(batch) + n_copies * n_xp`` rows: ``batch`` first.
    """
    copies = FaintCopies(batch, inputs, g_range=g_range, p_native=0.0)
    rows = np.flatnonzero(copies.has_xp)
    rng = np.random.default_rng(seed)
    parts = [batch]
    for _ in range(int(n_copies)):
        parts.append(copies.copies(rows, copies.draw_g(rows, rng), rng, truncate=truncate))
    return TokenBatch.concatenate(parts)
