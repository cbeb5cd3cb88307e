"""Project XP coefficients onto what a sampled spectrum determines (the model's input space).

giantfm learns from coefficients recovered from sampled spectra, which pin
down only part of each band's 55 coefficients; the rest come back as
numerical noise. Every XP input -- archive coefficients, fitted library
spectra, a `specutils.Spectrum` -- is therefore mapped through the same fixed
per-band projector before it becomes tokens, so that the network sees the
same quantity in training and in use. How the projectors and their ranks were
chosen, with the measurements, is in ``tools/make_xp_projection.py``; the
arrays ship in ``giantfm/data/xp_projection.npz``.
"""
from functools import lru_cache
from importlib import resources

import numpy as np

from ..utils._blas import single_threaded_blas

__all__ = ["project_coefficients", "projectors"]


@lru_cache(maxsize=1)
def projectors():
    """The BP and RP projectors, (55, 55) read-only arrays (``p @ c`` projects ``c``)."""
    with resources.files("giantfm.data").joinpath("xp_projection.npz").open("rb") as f:
        data = np.load(f)
        bp, rp = data["bp_projector"], data["rp_projector"]
    bp.setflags(write=False)
    rp.setflags(write=False)
    return bp, rp


# Stars per block: a block's coefficients, errors and their projections stay in
# the core's cache (4 x 1,024 x 55 x 8 bytes = 1.8 MB). Measured for 100,000 stars,
# masking and projecting one band as `giantfm.tokens.from_arrays` does (2 shared
# cores, load average 4): 1.6-2x faster than whole-array operations (90 against
# 210 ms); blocks of 256 to 4,096 alike.
_BLOCK = 1024


@lru_cache(maxsize=2)
def _operators(band):
    """``P^T`` and ``(P * P)^T`` of a band, C-contiguous and read-only."""
    p = projectors()[0 if band == "bp" else 1]
    transposed, squared = np.ascontiguousarray(p.T), np.ascontiguousarray((p * p).T)
    transposed.setflags(write=False)
    squared.setflags(write=False)
    return transposed, squared


def project_coefficients(coefficients, errors=None, band="bp", keep=None):
    """Project one band's coefficients (and their errors) for many stars.

    Parameters
    ----------
    coefficients : array (n, 55)
        Coefficients of one band; a star with any NaN keeps NaN.
    errors : array (n, 55), optional
        Their standard errors, propagated as independent (the diagonal of
        ``P diag(e**2) P^T``).
    band : {'bp', 'rp'}
    keep : boolean array shaped like ``coefficients``, optional
        The coefficients to project: the others enter as zero, and so do
        their errors and non-finite errors (how `giantfm.tokens.from_arrays`
        leaves out truncated and absent coefficients).

    Returns
    -------
    projected, projected_errors : arrays (n, 55)
        ``projected_errors`` is None when ``errors`` is.
    """
    if band not in ("bp", "rp"):
        raise ValueError(f"band must be 'bp' or 'rp', got {band!r}")
    c = np.asarray(coefficients, dtype=float)
    e = None if errors is None else np.asarray(errors, dtype=float)
    if c.ndim == 0 or (e is not None and e.ndim == 0):
        raise ValueError("coefficients and errors must have at least one axis of 55 values")
    if keep is not None:
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != c.shape:
            raise ValueError(f"keep has shape {keep.shape}, expected {c.shape}")
        keep = keep.reshape(-1, c.shape[-1])
    # Any leading axes, as the rows of one 2-D array.
    projected, projected_errors = _project(c.reshape(-1, c.shape[-1]),
                                           None if e is None else e.reshape(-1, e.shape[-1]),
                                           band, keep)
    return (projected.reshape(c.shape[:-1] + projected.shape[-1:]),
            None if e is None else projected_errors.reshape(e.shape[:-1] + projected.shape[-1:]))


def _project(coefficients, errors, band, keep=None):
    """`project_coefficients` of float64 arrays, block by block (one BLAS thread).

    With ``keep`` (boolean, shaped like ``coefficients``) the coefficients
    outside it enter as zero, and so do the errors outside it or non-finite
    (see `project_coefficients`).
    """
    transposed, squared = _operators(band)
    projected = np.empty((len(coefficients), transposed.shape[1]))
    projected_errors = None if errors is None else np.empty((len(errors), squared.shape[1]))
    n = max(len(coefficients), 0 if errors is None else len(errors))
    with single_threaded_blas():
        for start in range(0, n, _BLOCK):
            block = slice(start, start + _BLOCK)
            c = coefficients[block]
            if keep is not None:
                c = np.where(keep[block], c, 0.0)
            np.matmul(c, transposed, out=projected[block])
            if errors is None:
                continue
            e = errors[block]
            e = np.square(e) if keep is None else np.square(np.where(
                keep[block] & np.isfinite(e), e, 0.0))
            out = projected_errors[block]
            np.matmul(e, squared, out=out)
            np.sqrt(out, out=out)
    return projected, projected_errors
