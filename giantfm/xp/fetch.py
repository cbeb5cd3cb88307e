"""Retrieve Gaia DR3 XP coefficients (and photometry) from the Gaia archive.

`fetch_xp` goes through ``astroquery.gaia`` (DataLink ``XP_CONTINUOUS`` products,
and an ADQL query for photometry). astroquery is imported inside the function:
``import astroquery.gaia`` contacts the archive and prints a status line, which
``import giantfm`` must never do.
"""
import inspect
import warnings

import numpy as np

from ..exceptions import GiantfmWarning
from ..flags import reason as reason_text
from ..vocab import N_COEFFICIENTS
from .coefficients import ARCHIVE_MAGNITUDES

__all__ = ["fetch_xp", "MAX_IDS_PER_CALL", "PHOTOMETRY_QUERY", "MISSING_REASON"]

#: The Gaia archive's limit on identifiers per DataLink call.
MAX_IDS_PER_CALL = 5000

#: Why a requested source has no XP coefficients.
MISSING_REASON = reason_text("not_in_archive")

#: ADQL for ``photometry=True``: Gaia G, BP, RP and the 2MASS best neighbour's
#: J, H, Ks (the archive's documented cross-match path), for the uploaded
#: table ``tap_upload.ids`` of source ids. A source without a 2MASS match gets
#: masked J, H, Ks.
PHOTOMETRY_QUERY = """\
SELECT ids.source_id, g.phot_g_mean_mag, g.phot_bp_mean_mag, g.phot_rp_mean_mag,
       tm.j_m, tm.h_m, tm.ks_m
FROM tap_upload.ids AS ids
JOIN gaiadr3.gaia_source AS g ON g.source_id = ids.source_id
LEFT OUTER JOIN gaiadr3.tmass_psc_xsc_best_neighbour AS xm ON xm.source_id = g.source_id
LEFT OUTER JOIN gaiadr3.tmass_psc_xsc_join AS xj
     ON xj.clean_tmass_psc_xsc_oid = xm.clean_tmass_psc_xsc_oid
LEFT OUTER JOIN gaiadr1.tmass_original_valid AS tm ON tm.designation = xj.original_psc_source_id
"""

_PHOTOMETRY_COLUMNS = tuple(ARCHIVE_MAGNITUDES.values())


def _gaia():
    """The astroquery Gaia client (imported here: the import contacts the archive)."""
    from astroquery.gaia import Gaia
    return Gaia


def _from_archive(call, what, *args, **kwargs):
    """``call(*args, **kwargs)``, with a failure to reach the archive said in one clear line.

    Without network astroquery fails deep inside its HTTP stack (socket.gaierror,
    urllib / requests connection errors: all OSErrors); the user is told what
    failed and what to do instead.
    """
    try:
        return call(*args, **kwargs)
    except OSError as err:
        raise ConnectionError(
            f"cannot reach the Gaia archive ({what}): {type(err).__name__}: {err}. Check the "
            "network connection, or download the XP_CONTINUOUS spectra elsewhere and give "
            "giantfm the file") from None


def _source_ids(source_ids):
    """Validate the requested ids: a 1-D int64 array (duplicates allowed)."""
    if np.isscalar(source_ids):
        source_ids = [source_ids]
    ids = np.ma.asarray(source_ids)
    if np.ma.getmaskarray(ids).any():
        raise ValueError("source_ids has masked entries at positions "
                         f"{np.flatnonzero(np.ma.getmaskarray(ids))[:10].tolist()}")
    ids = np.ma.getdata(ids).reshape(-1)
    if ids.size == 0:
        raise ValueError("source_ids is empty: there is nothing to fetch")
    if ids.dtype.kind in "US":
        ids = np.char.replace(np.char.strip(ids.astype(str)), "Gaia DR3 ", "")
        bad = ~np.char.isdigit(ids)
        if bad.any():
            raise ValueError(f"source_ids must be Gaia source ids (integers); got "
                             f"{ids[bad][:5].tolist()}")
        ids = ids.astype(np.int64)
    elif ids.dtype.kind == "f":
        bad = ~np.isfinite(ids) | (ids != np.round(ids))
        if bad.any():
            raise ValueError(f"source_ids must be integers; got {ids[bad][:5].tolist()}")
        if np.abs(ids).max() > 2 ** 53:
            raise ValueError("source_ids given as floats lose precision above 2**53: "
                             "pass them as integers")
    elif ids.dtype.kind not in "iu":
        raise ValueError(f"source_ids must be integers, got dtype {ids.dtype}")
    ids = ids.astype(np.int64)
    if (ids <= 0).any():
        raise ValueError(f"source_ids must be positive; got {ids[ids <= 0][:5].tolist()}")
    return ids


def _load_data_kwargs(load_data, data_release, user_kwargs):
    """Keyword arguments for ``Gaia.load_data`` that this astroquery accepts.

    ``data_structure`` is left to astroquery's default (the archive is renaming
    its values, e.g. INDIVIDUAL -> DATAMODEL_STANDARD): the tables are read the
    same way whatever the structure, one file or one per source.
    """
    params = inspect.signature(load_data).parameters
    kwargs = {"retrieval_type": "XP_CONTINUOUS", "data_release": data_release, "verbose": False}
    kwargs.update(user_kwargs)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    unknown = [k for k in user_kwargs if k not in params and not accepts_any]
    if unknown:
        raise TypeError(f"Gaia.load_data of this astroquery does not take {unknown}; it takes "
                        f"{[p for p in params if p not in ('self', 'ids')]}")
    return {k: v for k, v in kwargs.items() if k in params or accepts_any}


def _xp_tables(result):
    """The XP_CONTINUOUS tables in what ``load_data`` returned ({file: [Table, ...]})."""
    from astropy.table import Table
    tables = []
    for key in sorted(result or {}):
        items = result[key]
        for table in items if isinstance(items, (list, tuple)) else [items]:
            if isinstance(table, Table) and "source_id" in [c.lower() for c in table.colnames]:
                tables.append(table)
    return tables


# widths of the archive's array columns, for a file in which every cell is empty
_ARRAY_WIDTHS = {"coefficients": N_COEFFICIENTS, "coefficient_errors": N_COEFFICIENTS,
                 "coefficient_correlations": N_COEFFICIENTS * (N_COEFFICIENTS - 1) // 2}


def _to_common_form(table):
    """Lower-case names; array cells as 2-D masked float64 columns (NaN and masked where absent).

    VOTable gives masked object cells, ECSV plain object arrays, and a DataLink
    bundle may hold one file per source: this makes any mix stackable, and the
    result writable to FITS / ECSV and readable by `giantfm.read_xp`.
    """
    from astropy.table import MaskedColumn, Table
    out = Table()
    for name in table.colnames:
        column = table[name]
        lname = name.lower()
        data = np.ma.getdata(column)
        if data.dtype.kind == "O":
            mask = np.ma.getmaskarray(column)
            cells = [None if mask[i] or column[i] is None
                     else np.ma.filled(np.ma.asarray(column[i], dtype=np.float64), np.nan).ravel()
                     for i in range(len(column))]
            width = max((c.size for c in cells if c is not None),
                        default=_ARRAY_WIDTHS.get(lname[3:], 1))
            values = np.full((len(cells), width), np.nan)
            absent = np.ones((len(cells), width), bool)
            for i, cell in enumerate(cells):
                if cell is not None:
                    values[i, :cell.size] = cell
                    absent[i, :cell.size] = False
            out[lname] = MaskedColumn(values, mask=absent, description=column.description)
        else:
            out[lname] = MaskedColumn(np.ma.asarray(column), unit=column.unit,
                                      description=column.description)
    return out


def _stack(tables):
    from astropy.table import vstack
    tables = [_to_common_form(t) for t in tables]
    if len(tables) == 1:
        return tables[0]
    return vstack(tables, join_type="outer", metadata_conflicts="silent")


def _photometry(gaia, ids, chunk_size):
    """G, BP, RP and 2MASS J, H, Ks for ``ids`` (one row per unique id)."""
    from astropy.table import Table, vstack
    unique = np.unique(ids)
    parts = []
    for start in range(0, len(unique), chunk_size):
        upload = Table({"source_id": unique[start:start + chunk_size]})
        job = _from_archive(gaia.launch_job_async, "photometry query", PHOTOMETRY_QUERY,
                            upload_resource=upload, upload_table_name="ids", verbose=False)
        result = _from_archive(job.get_results, "photometry query results")
        result.rename_columns(result.colnames, [c.lower() for c in result.colnames])
        parts.append(result[["source_id", *_PHOTOMETRY_COLUMNS]])
    return vstack(parts, metadata_conflicts="silent") if len(parts) > 1 else parts[0]


def fetch_xp(source_ids, *, photometry=True, data_release="Gaia DR3",
             chunk_size=MAX_IDS_PER_CALL, **load_data_kwargs):
    """Fetch Gaia DR3 XP coefficients from the Gaia archive, in the caller's order.

    Parameters
    ----------
    source_ids : int, str or array-like of them
        Gaia DR3 source ids (``"Gaia DR3 123"`` strings are accepted).
        Duplicates are fetched once and returned at each of their positions.
    photometry : bool, optional
        Also query ``gaiadr3.gaia_source`` for ``phot_g_mean_mag``,
        ``phot_bp_mean_mag``, ``phot_rp_mean_mag`` and the 2MASS best
        neighbour's ``j_m``, ``h_m``, ``ks_m`` (see `PHOTOMETRY_QUERY`; one
        asynchronous ADQL job per chunk, the ids uploaded as a table). The G
        magnitude normalises the coefficients, so the model needs it.
    data_release : str, optional
        Passed to ``Gaia.load_data``; XP coefficients exist in ``'Gaia DR3'``,
        the only release this model knows.
    chunk_size : int, optional
        Ids per archive call, at most `MAX_IDS_PER_CALL` (the archive's limit).
    **load_data_kwargs
        Further arguments of ``astroquery.gaia.Gaia.load_data`` (e.g.
        ``format='ecsv'``, or ``data_structure=...``: by default astroquery's
        own default is used, whatever the installed version calls it).

    Returns
    -------
    table : `~astropy.table.Table`
        One row per requested id, in the order given, with the archive's
        ``xp_continuous_mean_spectrum`` columns (array columns as object
        columns of float arrays, which `giantfm.read_xp` and
        `giantfm.tokenize` read directly), the photometry columns when asked
        for, and a ``reason`` column: empty, or why the row is empty. Rows
        of sources the archive does not have are kept, masked.

    Warns
    -----
    `~giantfm.exceptions.GiantfmWarning`
        When some sources have no XP spectrum (the count and the first ids).

    Notes
    -----
    Needs network access to the Gaia archive (https://gea.esac.esa.int).
    astroquery writes each DataLink bundle to a temporary folder under the
    current working directory and removes it afterwards.
    """
    from astropy.table import MaskedColumn, Table

    ids = _source_ids(source_ids)
    chunk_size = int(chunk_size)
    if not 1 <= chunk_size <= MAX_IDS_PER_CALL:
        raise ValueError(f"chunk_size must be between 1 and {MAX_IDS_PER_CALL} (the archive's "
                         f"limit), got {chunk_size}")
    gaia = _gaia()
    kwargs = _load_data_kwargs(gaia.load_data, data_release, load_data_kwargs)
    unique = np.unique(ids)
    tables = []
    for start in range(0, len(unique), chunk_size):
        chunk = unique[start:start + chunk_size]
        tables += _xp_tables(_from_archive(gaia.load_data, "XP_CONTINUOUS spectra",
                                           ids=chunk.tolist(), **kwargs))
    if tables:
        found = _stack(tables)
        sid = np.asarray(found["source_id"], dtype=np.int64)
        found = found[np.unique(sid, return_index=True)[1]]  # one row per source
        sid = np.asarray(found["source_id"], dtype=np.int64)
    else:
        found, sid = None, np.array([], dtype=np.int64)

    where = np.searchsorted(sid, ids)
    have = (where < len(sid)) & (sid[np.minimum(where, max(len(sid) - 1, 0))] == ids) \
        if len(sid) else np.zeros(len(ids), bool)
    out = Table()
    out["source_id"] = ids
    if found is not None:
        rows = np.where(have, where, 0)
        for name in found.colnames:
            if name == "source_id":
                continue
            column = found[name]
            values = np.ma.asarray(column)[rows]
            absent = ~have.reshape((-1,) + (1,) * (values.ndim - 1))
            out[name] = MaskedColumn(np.ma.getdata(values),
                                     mask=np.ma.getmaskarray(values) | absent,
                                     unit=column.unit, description=column.description)
    else:
        # nothing found at all: keep the columns readers look for, all absent
        for name in ("bp_coefficients", "rp_coefficients"):
            out[name] = MaskedColumn(np.full((len(ids), N_COEFFICIENTS), np.nan), mask=True)
    out["reason"] = np.where(have, "", MISSING_REASON)
    n_missing = int((~have).sum())
    if n_missing:
        missing = np.unique(ids[~have])
        warnings.warn(f"{n_missing} of {len(ids)} requested sources have no Gaia DR3 XP "
                      f"spectrum in the archive (e.g. {missing[:10].tolist()}); their rows "
                      "are masked with a reason", GiantfmWarning)
    if photometry:
        phot = _photometry(gaia, unique, chunk_size)
        psid = np.asarray(phot["source_id"], dtype=np.int64)
        order = np.argsort(psid)
        pos = np.searchsorted(psid[order], ids)
        pos = np.minimum(pos, max(len(psid) - 1, 0))
        hit = (psid[order][pos] == ids) if len(psid) else np.zeros(len(ids), bool)
        for name in _PHOTOMETRY_COLUMNS:
            col = phot[name]
            values = np.ma.filled(np.ma.asarray(col, dtype=np.float64), np.nan)[order][pos] \
                if len(psid) else np.full(len(ids), np.nan)
            out[name] = MaskedColumn(values, mask=~hit | ~np.isfinite(values),
                                     unit=getattr(col, "unit", None))
    return out
