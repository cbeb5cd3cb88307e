"""Metadata made strict JSON (model files, evaluation metrics)."""
import math

import numpy as np

__all__ = ["json_safe"]


def json_safe(obj):
    """``obj`` with numpy scalars as Python ones, NaN and infinities as None, keys as strings.

    Strict JSON (``json.dump(..., allow_nan=False)``) has no NaN, and numpy
    scalars are not JSON types; dicts, lists and tuples are converted
    throughout, anything else is returned as it is.
    """
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj
