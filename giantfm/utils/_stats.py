"""Robust statistics shared by the training, evaluation and baseline code."""
import numpy as np

__all__ = ["mad_std", "uncertainty_factor"]


def mad_std(values):
    """MAD-std of the finite ``values``: the scatter statistic of the method papers.

    ``scipy.stats.median_abs_deviation(..., scale="normal")`` of the finite
    values (the median absolute deviation scaled to a Gaussian's standard
    deviation); NaN when none is finite.
    """
    from scipy.stats import median_abs_deviation

    values = np.asarray(values)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan")
    return float(median_abs_deviation(values, scale="normal"))


def uncertainty_factor(mean, std, value, error=None, iterations=30):
    """The factor ``f`` on the predicted ``std`` that makes the MAD-std of the z-scores
    ``(mean - value) / hypot(f std, error)`` 1 (``error``: the reference's own, 0 for none).

    Found by fixed-point iteration (``f *= MAD-std(z)``), which converges in a few steps
    for the nearly Gaussian residuals of real labels.
    """
    mean, std, value = (np.asarray(a, dtype=float) for a in (mean, std, value))
    error = np.zeros_like(value) if error is None \
        else np.nan_to_num(np.asarray(error, dtype=float))
    factor = 1.0
    for _ in range(iterations):
        factor *= float(mad_std((mean - value) / np.hypot(factor * std, error)))
    return factor
