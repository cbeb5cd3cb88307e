"""Per-token standardisation: training-set median and MAD-based standard deviation.

The network sees ``(value - median[name]) / scale[name]`` and errors
``error / scale[name]``, where ``scale`` is the median absolute deviation
scaled to a Gaussian standard deviation (`scipy.stats.median_abs_deviation`
with ``scale='normal'``), robust to the outliers real catalogues carry. Tokens
of kind ``probability`` are not standardised (median 0, scale 1): the network
reads the probability and answers its log-odds. Plain numpy: it is computed
once from the training set and stored with the weights, keyed by the names of
the model's vocabulary.
"""
from dataclasses import dataclass

import numpy as np
from scipy.stats import median_abs_deviation

from .. import vocab

__all__ = ["Normalisation"]


@dataclass
class Normalisation:
    """Median and scale of every token of a model's vocabulary (arrays indexed by id).

    Tokens never seen in training keep median 0 and scale 1; so do padding and
    tokens of kind ``probability``. ``names`` are the vocabulary's names
    (default giantfm's, `giantfm.vocab.NAMES`).
    """

    median: np.ndarray
    scale: np.ndarray
    names: tuple = vocab.NAMES

    def __post_init__(self):
        self.median = np.asarray(self.median, dtype=np.float64)
        self.scale = np.asarray(self.scale, dtype=np.float64)
        self.names = tuple(self.names)
        n = len(self.names)
        if self.median.shape != (n,) or self.scale.shape != (n,):
            raise ValueError(f"normalisation arrays must have one entry per token "
                             f"({n}), got {self.median.shape} and {self.scale.shape}")
        if not (np.all(np.isfinite(self.median)) and np.all(np.isfinite(self.scale))
                and np.all(self.scale > 0)):
            raise ValueError("normalisation medians must be finite and scales finite and > 0")

    @classmethod
    def fit(cls, ids, values, vocabulary=vocab.VOCABULARY):
        """Statistics of each token over the stars that have it.

        Parameters
        ----------
        ids : int array (n, L)
            Token ids (0 = padding).
        values : float array (n, L)
            Token-scale values.
        vocabulary : `giantfm.vocab.Vocabulary`, optional
            Of the ids: giantfm's, or a model's extended one.
        """
        ids = np.asarray(ids).ravel()
        values = np.asarray(values, dtype=np.float64).ravel()
        present = (ids != vocab.PAD_ID) & np.isfinite(values)
        ids, values = ids[present], values[present]
        # One sort, then a median per run of equal ids (faster than a mask per token).
        order = np.argsort(ids, kind="stable")
        ids, values = ids[order], values[order]
        bounds = np.flatnonzero(np.diff(ids)) + 1
        median = np.zeros(len(vocabulary))
        scale = np.ones(len(vocabulary))
        unscaled = set(vocabulary.probability_ids.tolist())
        for tid, chunk in zip(ids[np.r_[0, bounds]] if ids.size else [],
                              np.split(values, bounds)):
            if tid in unscaled:
                continue
            median[tid] = np.median(chunk)
            mad = median_abs_deviation(chunk, scale="normal")
            # A constant token (or one seen once) would divide by zero: fall back to the
            # plain standard deviation, then to 1.
            if not mad > 0:
                mad = np.std(chunk)
            scale[tid] = mad if mad > 0 else 1.0
        return cls(median, scale, vocabulary.names)

    def standardise(self, ids, values, errors=None):
        """Standardised ``values`` (and ``errors``) as float32; padding gives 0."""
        ids = np.asarray(ids, dtype=np.int64)
        med, sc = self.median[ids], self.scale[ids]
        pad = ids == vocab.PAD_ID
        v = np.where(pad, 0.0, (np.asarray(values, dtype=np.float64) - med) / sc)
        if errors is None:
            return v.astype(np.float32)
        e = np.where(pad, 0.0, np.asarray(errors, dtype=np.float64) / sc)
        return v.astype(np.float32), e.astype(np.float32)

    def destandardise(self, ids, mean, std):
        """Token-scale mean and standard deviation from standardised ones (float64)."""
        ids = np.asarray(ids, dtype=np.int64)
        return (np.asarray(mean, dtype=np.float64) * self.scale[ids] + self.median[ids],
                np.asarray(std, dtype=np.float64) * self.scale[ids])

    def to_dict(self):
        """JSON-serialisable form, keyed by token name (readable, and checked on load)."""
        return {"median": dict(zip(self.names, self.median.tolist())),
                "scale": dict(zip(self.names, self.scale.tolist()))}

    @classmethod
    def from_dict(cls, d, names=None):
        """Inverse of `to_dict`; its names must be ``names`` (a model's vocabulary) when given."""
        keys = list(d["median"])
        if list(d["scale"]) != keys or (names is not None and keys != list(names)):
            raise ValueError("normalisation is keyed by a different vocabulary than the model's")
        return cls(np.array(list(d["median"].values())), np.array(list(d["scale"].values())),
                   keys)
