"""Build ``giantfm/data/xp_noise.npz``: the Gaia DR3 XP noise model of `giantfm.xp.noise`.

Fitted to real Gaia DR3 archive products in the shared data folder:

* ``xp/xp_continuous_first2000.fits`` (2,000 sources with coefficient errors
  and ``*_n_relevant_bases``): per band and coefficient, a least-squares cubic
  of ``log10(error)`` in ``log10(c0)``, the band's zeroth coefficient, over the
  sources with both ``c0 > 0``; the fit's domain is the 0.5-99.5 % range of
  ``log10(c0)``; the residuals of every source are kept (float16);
* ``xp/XP_CONTINUOUS_RAW*.csv`` and ``xp/datalink_XP_CONTINUOUS_*.ecsv``: the
  full correlation matrices of the distinct sources that have them.

The sources' synthetic G, colour ``log10(rp0 / bp0)`` and ``n_relevant_bases``
are kept too: a faint copy takes its truncation from real sources like it.
Usage (from the repository root)::

    python tools/make_xp_noise.py [SHARED_DATA_DIR]
"""
import sys
from pathlib import Path

import numpy as np

from giantfm.xp import read_xp, synthetic_g

DEGREE = 3
CORRELATION_FILES = ("XP_CONTINUOUS_RAW.csv", "XP_CONTINUOUS_RAW_with_missing_BP.csv",
                     "datalink_XP_CONTINUOUS_5937083312263887616.ecsv")


def fit(xp):
    usable = (xp.bp[:, 0] > 0) & (xp.rp[:, 0] > 0) & np.isfinite(xp.bp_err).all(1) \
        & np.isfinite(xp.rp_err).all(1) & (xp.bp_err > 0).all(1) & (xp.rp_err > 0).all(1)
    xp = xp[usable]
    out, residuals = {}, []
    for band in ("bp", "rp"):
        coeffs, errors = getattr(xp, band), getattr(xp, f"{band}_err")
        x = np.log10(coeffs[:, 0])
        design = x[:, None] ** np.arange(DEGREE + 1)[None, :]
        log_err = np.log10(errors)
        poly = np.linalg.lstsq(design, log_err, rcond=None)[0].T            # (55, 4)
        out[f"{band}_polynomials"] = poly
        out[f"{band}_domain"] = np.percentile(x, [0.5, 99.5])
        residuals.append(log_err - design @ poly.T)
    out["residuals"] = np.hstack(residuals).astype(np.float16)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["source_g"] = synthetic_g(xp.bp, xp.rp)
    out["source_colour"] = np.log10(xp.rp[:, 0] / xp.bp[:, 0])
    out["source_n_relevant"] = np.column_stack([xp.bp_n_relevant, xp.rp_n_relevant]).astype(
        np.int16)
    return out, xp


def correlations(shared):
    matrices = {"bp": {}, "rp": {}}
    for name in CORRELATION_FILES:
        xp = read_xp(shared / "xp" / name, correlations=True)
        for band in ("bp", "rp"):
            for sid, matrix in zip(xp.source_id, getattr(xp, f"{band}_corr")):
                if np.isfinite(matrix).all():
                    matrices[band][int(sid)] = matrix
    return {f"{band}_correlations": np.array([m[k] for k in sorted(m)], dtype=np.float32)
            for band, m in matrices.items()}, {band: sorted(m) for band, m in matrices.items()}


def main(shared):
    shared = Path(shared)
    xp = read_xp(shared / "xp" / "xp_continuous_first2000.fits")
    arrays, used = fit(xp)
    corr, sources = correlations(shared)
    arrays.update(corr)
    np.savez_compressed("giantfm/data/xp_noise.npz", **arrays)
    print(f"wrote giantfm/data/xp_noise.npz from {len(used)} of {len(xp)} sources; "
          f"correlation matrices of sources {sources}")
    for k, band in enumerate(("bp", "rp")):
        res = arrays["residuals"].astype(float)[:, 55 * k:55 * (k + 1)]
        mad = 1.4826 * np.median(np.abs(res - np.median(res, 0)), 0)
        print(f"{band}: log10 error residual MAD-std {mad.min():.3f}-{mad.max():.3f} dex")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
