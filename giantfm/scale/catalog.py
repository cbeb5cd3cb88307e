"""`predict_catalog`: predictions added to an lsdb catalogue (HATS), lazily, partition by partition.

An `lsdb` catalogue (HATS, HEALPix-partitioned Parquet) with Gaia XP
coefficient and photometry columns becomes a lazy catalogue with the
prediction columns added, to cross-match, filter and write with lsdb's own
tools (``write_catalog``, formerly ``to_hats``). lsdb, dask, pandas and
pyarrow are imported only when it runs (``pip install 'giantfm[scale]'``).
"""
import os
import threading

import numpy as np

from ..config import resolve_batch_size
from ..io.parquet import arrow_to_table
from .. import prediction
from ..results import EVSTATE_COLUMN, PREDICTION_COLUMNS, empty_result
from ..utils._optional import require
from ..utils._threads import available_cores, cpu_threads, threads_of_this_task

__all__ = ["predict_catalog"]


def _frame_to_table(frame):
    """A (nested-)pandas partition -> astropy Table that `read_xp` reads.

    pyarrow-backed columns become numpy arrays (nulls -> masked), list
    columns 2-D arrays (or object arrays when lengths differ or cells are
    missing); nested columns are left out.
    """
    import pandas as pd
    import pyarrow as pa
    from astropy.table import MaskedColumn, Table

    table = Table()
    for name in frame.columns:
        series = frame[name]
        dtype = series.dtype
        if isinstance(dtype, pd.ArrowDtype) and (pa.types.is_list(dtype.pyarrow_dtype) or
                                                 pa.types.is_fixed_size_list(dtype.pyarrow_dtype)
                                                 or pa.types.is_large_list(dtype.pyarrow_dtype)):
            table[name] = arrow_to_table(pa.table({"c": pa.array(series)}))["c"]
            continue
        if dtype == object:
            cells = series.to_numpy()
            # a missing cell of a list column is None or NaN: anything not a sequence
            is_array = [isinstance(c, (list, tuple, np.ndarray)) for c in cells]
            if any(is_array):
                sizes = {len(c) for c, a in zip(cells, is_array) if a}
                if len(sizes) == 1 and all(is_array):
                    table[name] = np.array([np.asarray(c, dtype=float) for c in cells])
                else:
                    values = np.empty(len(cells), dtype=object)
                    values[:] = [np.asarray(c, dtype=float) if a else None
                                 for c, a in zip(cells, is_array)]
                    table[name] = values
                continue
        if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            missing = series.isna().to_numpy()
            kind = float if pd.api.types.is_float_dtype(dtype) or missing.any() else None
            if kind is None:
                values = series.to_numpy()
                values = np.asarray(values, dtype=values.dtype if values.dtype != object
                                    else np.int64)
            else:
                values = series.to_numpy(dtype=float, na_value=np.nan)
            table[name] = MaskedColumn(values, mask=missing) if missing.any() else values
        elif pd.api.types.is_string_dtype(dtype):
            table[name] = np.array(series.fillna("").astype(str).to_numpy(), dtype=str)
        # other kinds (nested frames, timestamps) are not inputs of the model
    return table


_PARTITION_DTYPES = {"flag": "bool[pyarrow]", "flags": "int64[pyarrow]",
                     "reason": "string[pyarrow]", EVSTATE_COLUMN: "string[pyarrow]"}


def _partition_threads():
    """CPU threads of one partition's predict, None for giantfm's default: a Dask worker's
    (``OMP_NUM_THREADS``, which its nanny sets to 1 for each of its task threads) and
    that of dask's synchronous scheduler (every core); in dask's local threaded
    scheduler, which runs a partition on each of its threads at once, its share."""
    if threading.current_thread() is threading.main_thread():
        return None
    try:
        from distributed import get_worker
        get_worker()
        return None
    except (ImportError, ValueError):   # not in a distributed worker
        pass
    import dask
    return max(1, cpu_threads() // (dask.config.get("num_workers", None) or available_cores()))


def _predict_partition(frame, device=None, batch_size=None, model=None, prefix=""):
    """map_partitions function: the partition with the prediction columns appended."""
    import pandas as pd

    out = frame.copy()
    if len(frame) == 0:
        result = empty_result(0)
    else:
        kwargs = {} if model is None else {"model": model}
        with threads_of_this_task(_partition_threads()):
            result = prediction.predict(_frame_to_table(frame), device=device,
                                        batch_size=batch_size, progress=False, **kwargs)
        if len(result) != len(frame):
            raise RuntimeError(f"predict returned {len(result)} rows for a partition of "
                               f"{len(frame)} rows")
    for name in PREDICTION_COLUMNS:
        if name not in result.colnames:   # a model made before the label existed (p_rc)
            dtype = _PARTITION_DTYPES.get(name, "double[pyarrow]")
            out[prefix + name] = pd.Series(pd.array([None] * len(frame), dtype=dtype),
                                           index=frame.index)
            continue
        column = result[name]
        if name == "flag":
            values = pd.array(np.asarray(column, dtype=bool), dtype=_PARTITION_DTYPES[name])
        elif name == "flags":
            values = pd.array(np.asarray(column, dtype=np.int64), dtype=_PARTITION_DTYPES[name])
        elif name == "reason":
            values = pd.array(np.asarray(column, dtype=str), dtype=_PARTITION_DTYPES[name])
        elif name == EVSTATE_COLUMN:   # masked (no state) -> missing
            values = pd.array(np.where(np.ma.getmaskarray(column), None,
                                       np.asarray(column, dtype=object)),
                              dtype=_PARTITION_DTYPES[name])
        else:
            plain = getattr(column, "unmasked", column)
            plain = np.asarray(getattr(plain, "value", plain), dtype=float).copy()
            mask = np.asarray(getattr(column, "mask", np.zeros(len(plain), bool)))
            plain[mask] = np.nan
            values = pd.array(plain, dtype="double[pyarrow]")
        out[prefix + name] = pd.Series(values, index=frame.index)
    return out


def predict_catalog(catalog, *, device=None, batch_size=None, model=None, prefix=""):
    """Add predictions to an lsdb catalogue of Gaia XP spectra, lazily.

    Parameters
    ----------
    catalog : `lsdb.Catalog`
        A catalogue (e.g. ``lsdb.open_catalog(...)`` of a HATS Gaia DR3 XP
        catalogue, or a cross-match of one) with the XP coefficients under
        Gaia archive names -- array columns ``bp_coefficients``,
        ``rp_coefficients`` (and ``*_errors``, optional) or flattened
        ``bp_coeff_0..54`` -- and, when present, ``phot_g_mean_mag``,
        ``phot_bp_mean_mag``, ``phot_rp_mean_mag``, ``j_m``, ``h_m``, ``ks_m``
        (a missing G, BP or RP is synthesised from the coefficients, as
        `giantfm.predict` does).
    device, batch_size, model
        As in `giantfm.predict`; the model is loaded once per worker.
    prefix : str, optional
        Put before the names of the added columns (e.g. ``'giantfm_'``)
        when the catalogue already has columns of these names.

    Returns
    -------
    `lsdb.Catalog`
        Lazy: nothing is computed until ``.compute()``, ``.write_catalog()``,
        ``.head()`` ... Every row of ``catalog``, in place, with the added
        columns ``teff``, ``teff_err`` [K], ``logg``, ``logg_err``
        [dex(cm s-2)], ``m_h``, ``m_h_err``, ``alpha_m``, ``alpha_m_err``
        [dex], ``mass``, ``mass_err`` [solMass], ``age``, ``age_err`` [Gyr]
        as plain doubles (NaN where not predicted; `prediction_units` gives
        the units), ``ood_score``, ``flag``, ``flags`` (the reasons' bitmask) and
        ``reason``. The numbers are those of `giantfm.predict` on the same rows.

    Raises
    ------
    TypeError
        ``catalog`` is not an lsdb catalogue.
    ValueError
        It has no XP coefficient columns, or already has columns of the
        names to add (use ``prefix``).
    """
    lsdb = require("lsdb", "predict_catalog")
    import pandas as pd

    if not isinstance(catalog, lsdb.Catalog):
        raise TypeError(f"catalog must be an lsdb.Catalog (lsdb.open_catalog, "
                        f"lsdb.from_dataframe), got {type(catalog).__name__}")
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a string, got {prefix!r}")
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise TypeError("model must be a model name or path (each worker loads it once), "
                        f"got {type(model).__name__}")
    columns = list(catalog.columns)
    lower = {c.lower() for c in columns}
    has_array = {"bp_coefficients", "rp_coefficients"} <= lower
    has_flat = {"bp_coeff_0", "rp_coeff_0"} <= lower
    if not (has_array or has_flat):
        raise ValueError("catalog has no Gaia XP coefficient columns: expected "
                         "'bp_coefficients' and 'rp_coefficients' (array columns) or "
                         f"'bp_coeff_0..54' and 'rp_coeff_0..54'; it has {columns[:20]}"
                         + (" ..." if len(columns) > 20 else ""))
    clash = [prefix + c for c in PREDICTION_COLUMNS if prefix + c in columns]
    if clash:
        raise ValueError(f"catalog already has the columns {clash}: pass prefix= "
                         "(e.g. prefix='giantfm_') to name the added columns apart")
    if batch_size is not None:
        resolve_batch_size(batch_size)  # raises a clear ValueError

    meta = catalog.meta.copy()  # an empty frame with the columns and dtypes
    for name in PREDICTION_COLUMNS:
        dtype = _PARTITION_DTYPES.get(name, "double[pyarrow]")
        meta[prefix + name] = pd.Series([], dtype=dtype, index=meta.index)
    return catalog.map_partitions(_predict_partition, device=device, batch_size=batch_size,
                                  model=None if model is None else os.fspath(model),
                                  prefix=prefix, meta=meta)
