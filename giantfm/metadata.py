"""The model contract: what a saved model records about itself, and how every verb reads it.

A saved giantfm model (`giantfm.model.TrainedModel.save`) keeps beside its
weights a `ModelMetadata`: which model it is, and what the verbs need to turn
the network's answers into results -- whether to truncate the coefficients,
the label domain of mass and age, the label model's scatter, how to combine
the direct and the chained mass and age, how to scale the uncertainties and
how to score ``ood_score``. It is written when a model is bundled
(`giantfm.train.bundling.bundle`, which measures those on the validation split) and
read by `giantfm.predict`, `giantfm.request`, `giantfm.inpaint`,
`giantfm.generate_spectrum`, `giantfm.tokenize`, `giantfm.predict_files` and
`giantfm.predict_catalog` through its attributes. `read_metadata` reads it
without loading the network (no torch), which is how `giantfm.tokenize` follows
the model's choice of truncation.

In the model folder's ``config.json`` it is the ``metadata`` object, written by
`ModelMetadata.to_dict` and read by `ModelMetadata.from_dict`, which also reads
the flat layout of models saved before this class existed.
"""
import dataclasses
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .utils._json import json_safe
from .utils._modelfiles import read_json

__all__ = ["ModelMetadata", "Chain", "LabelFloor", "LabelSupport", "OODCalibration",
           "read_metadata", "model_folder", "BUNDLED_MODEL_DIR", "CONFIG_FILE",
           "DEFAULT_LABEL_DOMAIN", "FINETUNE_METHODS"]

#: Where the model shipped with giantfm lives (package data, found as all giantfm's data is).
BUNDLED_MODEL_DIR = resources.files("giantfm.data") / "model"
#: The file of a model folder that holds its configuration and this metadata.
CONFIG_FILE = "config.json"
#: Domain of mass and age of a model that records none: the giant branch, broadly.
DEFAULT_LABEL_DOMAIN = {"logg": (0.0, 3.5), "teff": (3500.0, 5500.0)}
#: The ways a model can be taught a label of one's own (`giantfm.finetune`, which records
#: the one kept in ``training['finetune']``; `giantfm.model.adaptation` implements them),
#: here, below both, as the one home of their names.
FINETUNE_METHODS = ("prompt", "probe", "decoder")


@dataclass
class Chain:
    """How the network's own mass and age are combined with its labels put through the
    label model (`giantfm.labelmodel.chain_answers`).

    ``weights``: the label model's share per target (``{'mass': w, 'age': w}``; a
    share may be ``{'RGB': w, 'RC': w}``, mixed by each star's P(RC)), and of the
    state (``'p_rc': w``), measured on the validation stars
    (`giantfm.train.bundling.answers`); ``state_calibration``: how the combined P(RC)
    is calibrated on seismic states (`giantfm.labelmodel.calibrate_probability`; None:
    as it is); ``scatter``: the residuals of the direct, chained and combined
    estimates there; ``n``: the stars they were measured on, and ``decided_on`` which.
    """

    weights: dict
    scatter: dict = field(default_factory=dict)
    n: int = 0
    state_calibration: dict = None
    decided_on: str = ""


@dataclass
class LabelFloor:
    """The label model's scatter against asteroseismology (cross-validated): added to
    the mass and age errors, so that they are uncertainties on the seismic scale."""

    mass_fractional: float
    log10_age: float


@dataclass
class LabelSupport:
    """Where the training labels lie (`giantfm.train.dataset.build.label_support`).

    ``ranges``: ``{name: (low, high)}``, the 0.5-99.5 percentiles of each
    training label; ``kiel``: training stars counted on a Teff-log g grid
    (``teff_edges``, ``logg_edges``, ``counts``, ``min_count``), or None.
    """

    ranges: dict
    kiel: dict = None


@dataclass
class OODCalibration:
    """What `giantfm.results.add_ood_score` needs (`giantfm.train.bundling.ood.calibrate_ood`).

    ``embedding_mean`` (d,) and ``embedding_precision`` (d, d): the training
    stars' embeddings; ``scales``: the 99.7th percentile of each measure
    (``g``, ``colour``, ``embedding``) over the validation giants.
    """

    embedding_mean: np.ndarray
    embedding_precision: np.ndarray
    scales: dict
    quantile: float = 99.7
    n_reference: int = 0
    n_validation: int = 0
    seed: int = 0

    def __post_init__(self):
        self.embedding_mean = np.asarray(self.embedding_mean, dtype=np.float64)
        self.embedding_precision = np.asarray(self.embedding_precision, dtype=np.float64)
        missing = {"g", "colour", "embedding"} - set(self.scales)
        if missing:
            raise ValueError(f"the ood calibration has no scale for {sorted(missing)}: "
                             "calibrate it again (giantfm bundle)")


# the keys of each part in config.json, and the class that reads it
_PARTS = {"chain": Chain, "label_floor": LabelFloor, "label_support": LabelSupport,
          "ood": OODCalibration}


@dataclass
class ModelMetadata:
    """What a saved model records about itself (see the module docstring).

    Attributes
    ----------
    name, version : str
        The model's name (``'giantfm-default-v3'``; ``'custom'`` when it has
        none) and the giantfm version it was bundled with, without the local
        part (``bundled_with`` has the full one).
    training_note : str
        How it was trained, in words.
    dataset : dict
        The training set it was made from (file, format version, counts, label scale).
    truncate : bool
        Whether to leave out the coefficients beyond Gaia's
        ``*_n_relevant_bases``: what the model was measured to do best with.
        True for a model that records nothing (as the first models were trained).
        A verb's ``truncate=None`` means this (`truncation`).
    label_domain : dict or None
        ``{label: (low, high)}``: the box of Teff, log g, [M/H], [alpha/M]
        outside which mass and age are masked (the label model's calibration
        ranges); None for a model that records none (the verbs then use
        `DEFAULT_LABEL_DOMAIN`).
    label_floor : `LabelFloor` or None
    label_support : `LabelSupport` or None
    chain : `Chain` or None
        None: mass and age are the network's own.
    uncertainty_scale : dict
        ``{token name: factor}`` applied to the network's standard deviations.
    ood : `OODCalibration` or None
        None: ``ood_score`` has only the photometric measures, with default scales.
    training : dict
        The training run's record (settings, metrics, best epoch, ...) and any
        other free-form entries; not read by the verbs.
    """

    name: str = "custom"
    version: str = "unknown"
    bundled_with: str = ""
    training_note: str = ""
    dataset: dict = field(default_factory=dict)
    truncate: bool = True
    label_domain: dict = None
    label_floor: LabelFloor = None
    label_support: LabelSupport = None
    chain: Chain = None
    uncertainty_scale: dict = field(default_factory=dict)
    ood: OODCalibration = None
    training: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.label_domain is not None:
            self.label_domain = {name: (float(low), float(high))
                                 for name, (low, high) in dict(self.label_domain).items()}
        self.uncertainty_scale = {name: float(f) for name, f in self.uncertainty_scale.items()}
        for key, cls in _PARTS.items():
            value = getattr(self, key)
            if isinstance(value, dict):
                setattr(self, key, cls(**value))

    @classmethod
    def from_dict(cls, d):
        """Read the ``metadata`` object of a model's ``config.json`` (None: a model that
        records nothing). Keys this class does not know go into ``training``, so that
        nothing a model records is lost."""
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        training = dict(d.pop("training", None) or {})
        training.update({k: d.pop(k) for k in list(d) if k not in known})
        return cls(**d, training=training)

    def to_dict(self):
        """The metadata as strict-JSON types (what `from_dict` reads back)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                value = {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                         for k, v in dataclasses.asdict(value).items()}
            elif f.name == "label_domain" and value is not None:
                value = {name: list(limits) for name, limits in value.items()}
            out[f.name] = value
        return json_safe(out)

    def truncation(self, truncate=None):
        """Whether the model's inputs leave out the coefficients beyond Gaia's
        ``*_n_relevant_bases``: ``truncate`` where given, else (None) what the model was
        measured to do best with (`truncate`). The one place where a verb's
        ``truncate=None`` is decided; `giantfm.tokens` takes the answer as given."""
        return self.truncate if truncate is None else bool(truncate)

    def replace(self, **changes):
        """A copy with ``changes`` (`dataclasses.replace`; ``training`` is copied)."""
        return dataclasses.replace(self, **{"training": dict(self.training), **changes})


def model_folder(model=None):
    """The folder of the model ``model`` names: None -> ``giantfm.conf.model``;
    ``'bundled'`` -> the bundled one; else the path given."""
    from .config import conf

    name = conf.model if model is None else model
    if isinstance(name, str) and name == "bundled":
        return Path(BUNDLED_MODEL_DIR)
    return Path(os.fspath(name))


_READ = {}


def read_metadata(model=None):
    """The `ModelMetadata` of a model, without loading its network (no torch).

    Parameters
    ----------
    model : None, str, path-like or `giantfm.model.TrainedModel`
        A loaded model (its ``metadata``), a saved model's folder or name
        (``'bundled'``); None: ``giantfm.conf.model``.

    Raises
    ------
    FileNotFoundError
        No saved model there.
    ~giantfm.exceptions.ModelFileError
        Its ``config.json`` is damaged (the message names it).
    """
    if hasattr(model, "metadata") and isinstance(model.metadata, ModelMetadata):
        return model.metadata
    path = model_folder(model) / CONFIG_FILE
    try:
        stamp = path.stat().st_mtime_ns
    except (FileNotFoundError, NotADirectoryError):  # no folder, or a file given for one
        raise FileNotFoundError(f"no saved giantfm model at {path.parent} (no {CONFIG_FILE})") \
            from None
    key = os.fspath(path)
    if _READ.get(key, (None,))[0] != stamp:
        _READ[key] = (stamp, ModelMetadata.from_dict(read_json(path).get("metadata")))
    return _READ[key][1]
