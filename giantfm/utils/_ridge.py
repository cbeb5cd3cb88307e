"""Ridge regression with its penalty chosen by leave-one-out cross-validation.

Shared by the fine-tune's probe (`giantfm.model.adaptation`: a linear map of a
frozen network's features) and the evidence's baseline on raw XP coefficients
(`giantfm.train.evaluation.finetune_evidence`). The fit is closed-form
(`scipy.linalg.svd` of the standardised features): one decomposition gives
the coefficients and the exact leave-one-out residuals of every penalty of the
grid (``r_i / (1 - h_ii - 1/n)``, the intercept's leverage included), so the
penalty costs no refits. The penalty is chosen by the MAD-std of those
residuals, the scatter statistic the project reports, which a few outlying
labels do not sway as they sway a squared error.

A group of columns may be given its own weight (``weighted``): its
standardised columns are multiplied by ``sqrt(w)``, which divides their
penalty by ``w``; ``w`` is chosen with the penalty. The fine-tune's probe
uses it for the few answers of the network beside its many hidden features.
"""
import dataclasses

import numpy as np

__all__ = ["RidgeFit", "fit_ridge", "DEFAULT_PENALTIES"]

#: Penalties tried, per star: the ridge term is ``penalty * n * |coef|^2`` for
#: standardised features (so that a penalty means the same at every n).
DEFAULT_PENALTIES = tuple(float(p) for p in np.logspace(-4, 4, 17))


@dataclasses.dataclass
class RidgeFit:
    """A fitted ridge regression: ``predict(x) = ((x - centre) / scale) @ coef + intercept``.

    Attributes
    ----------
    centre, scale : float arrays (n_features,)
        The features' means and standard deviations (divided by ``sqrt(weight)``
        for the weighted group; 1 for a constant feature).
    coef : float array (n_features,)
    intercept : float
    penalty, weight : float
        The chosen penalty and weight of the weighted group.
    loo_mad_std : float
        The MAD-std of the leave-one-out residuals at the chosen point.
    loo_residuals : float array (n,)
        Those residuals.
    """

    centre: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    penalty: float
    weight: float
    loo_mad_std: float
    loo_residuals: np.ndarray

    def predict(self, x):
        """The fit's answers for the rows of ``x`` (m, n_features)."""
        return ((np.asarray(x, dtype=float) - self.centre) / self.scale) @ self.coef \
            + self.intercept


def _mad_std_rows(residuals):
    """MAD-std of each row (the normal-consistent factor of `scipy.stats`)."""
    from scipy.stats import median_abs_deviation

    return median_abs_deviation(residuals, axis=1, scale="normal")


def fit_ridge(x, y, penalties=DEFAULT_PENALTIES, *, weighted=None, weights=(1.0,)):
    """Ridge regression of ``y`` on ``x``, its penalty chosen by leave-one-out MAD-std.

    Parameters
    ----------
    x : float array (n, n_features)
        Finite features.
    y : float array (n,)
        Finite targets.
    penalties : sequence of float
        Penalties tried (per star, on standardised features).
    weighted : bool array (n_features,), optional
        A group of columns whose penalty is divided by each of ``weights``.
    weights : sequence of float
        The group weights tried (with every penalty).

    Returns
    -------
    `RidgeFit`

    Raises
    ------
    ValueError
        Fewer than 3 rows, rows of ``x`` and ``y`` that do not match, or values
        that are not finite (the message names the array).
    """
    from scipy import linalg

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 2 or y.shape != (len(x),):
        raise ValueError(f"x must be (n, n_features) and y (n,); got {x.shape} and {y.shape}")
    if len(y) < 3:
        raise ValueError(f"a ridge fit needs at least 3 rows, got {len(y)}")
    for name, a in (("x", x), ("y", y)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} has values that are not finite")
    penalties = np.asarray(penalties, dtype=float)
    if penalties.ndim != 1 or not len(penalties) or not (penalties > 0).all():
        raise ValueError(f"penalties must be a non-empty list of positive numbers, "
                         f"got {penalties!r}")
    weighted = np.zeros(x.shape[1], bool) if weighted is None else np.asarray(weighted, bool)
    if weighted.shape != (x.shape[1],):
        raise ValueError(f"weighted must have one entry per feature ({x.shape[1]}), "
                         f"got {weighted.shape}")
    n = len(y)
    centre = x.mean(axis=0)
    spread = x.std(axis=0)
    spread[~(spread > 0)] = 1.0
    y_centre = y.mean()
    best = None
    for weight in (weights if weighted.any() else (1.0,)):
        scale = np.where(weighted, spread / np.sqrt(weight), spread)
        a = (x - centre) / scale
        u, s, vt = linalg.svd(a, full_matrices=False, check_finite=False)
        uty = u.T @ (y - y_centre)
        shrink = s[None, :] ** 2 / (s[None, :] ** 2 + penalties[:, None] * n)   # (p, r)
        fitted = (shrink * uty[None, :]) @ u.T                                    # (p, n)
        leverage = shrink @ (u.T ** 2) + 1.0 / n                                  # (p, n)
        residuals = (y - y_centre - fitted) / np.clip(1.0 - leverage, 1e-9, None)
        scores = _mad_std_rows(residuals)
        i = int(np.argmin(scores))
        if best is None or scores[i] < best.loo_mad_std:
            coef = vt.T @ (s / (s ** 2 + penalties[i] * n) * uty)
            best = RidgeFit(centre, scale, coef, float(y_centre), float(penalties[i]),
                            float(weight), float(scores[i]), residuals[i])
    return best
