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


def project_coefficients(coefficients, errors=None, band="bp"):
    """Project one band's coefficients (and their errors) for many stars.

    Parameters
    ----------
    coefficients : array (n, 55)
        Coefficients of one band; a star with any NaN keeps NaN.
    errors : array (n, 55), optional
        Their standard errors, propagated as independent (the diagonal of
        ``P diag(e**2) P^T``).
    band : {'bp', 'rp'}

    Returns
    -------
    projected, projected_errors : arrays (n, 55)
        ``projected_errors`` is None when ``errors`` is.
    """
    if band not in ("bp", "rp"):
        raise ValueError(f"band must be 'bp' or 'rp', got {band!r}")
    p = projectors()[0 if band == "bp" else 1]
    c = np.asarray(coefficients, dtype=float)
    projected = c @ p.T
    projected_errors = None
    if errors is not None:
        e = np.asarray(errors, dtype=float)
        projected_errors = np.sqrt((e * e) @ (p * p).T)
    return projected, projected_errors
