"""Robust statistics shared by the training, evaluation and baseline code."""
import numpy as np

__all__ = ["mad_std"]


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
