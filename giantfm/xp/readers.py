"""Read Gaia DR3 XP coefficients from every form in which astronomers hold them.

`read_xp` turns any of these into one `XPCoefficients` without the user
reshaping anything. It is a registry: `READERS` holds one entry per kind of
input object, tried in order, and `COLUMN_LAYOUTS` one entry per layout of
coefficient columns in a table, tried for each band:

* readers: an `XPCoefficients` (returned as it is); a `specutils.Spectrum`
  (sampled spectra, fitted with `giantfm.xp.spectrum.spectrum_to_coefficients`);
  anything tabular -- an astropy `~astropy.table.Table` / `~astropy.table.QTable`,
  the dictionary that ``astroquery.gaia.Gaia.load_data(retrieval_type='XP_CONTINUOUS')``
  returns (or one of its tables), a `pandas.DataFrame`, a dict of columns, a
  numpy structured array, or the path of a file in any format `Table.read`
  reads -- read through the column layouts;
* column layouts: the archive's array columns ``bp_coefficients`` ... (numeric
  2-D columns; object or masked cells of ECSV and VOTable files; the
  ``"(c0, c1, ...)"`` string cells of GaiaXPy-style CSV, whose correlations
  are the 1485 entries above the diagonal); the flattened style
  ``bp_coeff_0 .. bp_coeff_54`` with errors ``e_bp_coeff_0 ..`` (VizieR /
  ``xp_continuous_first2000.fits``).

A new input layout is one more entry of either registry, added with
`register_column_layout` or `register_reader` (which check it), and a new file
format one call of `giantfm.io.tables.register_table_format`; the built-in
entries are registered through the same calls. (A new *release* takes more: see
"Developing giantfm" in the documentation for what Gaia DR4 will need.)
Photometry found next to the coefficients is picked up by name (see
`PHOTOMETRY_ALIASES`). A star whose coefficients are all missing, NaN or masked
keeps its row, with NaN coefficients and a ``reason``; nothing is dropped or
reordered. Cells of text are read as numbers where they are numbers (a CSV
column of magnitudes, ``'Gaia DR3 123'`` as a source_id); a cell that is not
is left out of its row only, and the row's ``notes`` say which and why.
"""
import os
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..flags import REASONS, flag_bits, reason
from ..io.tables import read_table
from ..utils import Registry
from ..utils._columns import floats
from ..utils._registry import check_callable, check_text
from ..vocab import N_COEFFICIENTS
from .coefficients import (PHOTOMETRY_ALIASES, SOURCE_ID_ALIASES, XPCoefficients, find_column,
                           missing_reason)
from .sampling import correlation_matrix
from .spectrum import spectrum_to_coefficients

__all__ = ["XPCoefficients", "read_xp", "read_photometry", "read_source_ids", "as_table",
           "note_flags", "PHOTOMETRY_ALIASES", "SOURCE_ID_ALIASES", "Reader", "READERS",
           "register_reader", "TABLE_READER_PRIORITY", "ColumnLayout", "COLUMN_LAYOUTS",
           "register_column_layout"]

_N_CORRELATIONS = N_COEFFICIENTS * (N_COEFFICIENTS - 1) // 2  # 1485, above the diagonal

# flattened columns: bp_coeff_3, bp_coefficients_3, bp_coefficient_3 (values) and
# e_bp_coeff_3, bp_coeff_err_3, bp_coeff_3_err, bp_coeff_error_3, bp_coefficient_errors_3 (errors)
_FLAT = re.compile(r"^(?P<e>e_)?(?P<band>bp|rp)_coeff(?:icients?)?"
                   r"(?P<e2>_errors?|_err)?_(?P<i>\d+)(?P<e3>_errors?|_err)?$", re.IGNORECASE)

_RELEASE_HINT = ("Gaia DR3 XP spectra have 55 coefficients per band; Gaia DR4 has 51 BP "
                 "coefficients on a different basis, which this model does not know")


# --------------------------------------------------------------------------- input forms

def _is_spectrum(data):
    # specutils costs seconds to import: only look when the object comes from it
    if not any(cls.__module__.startswith("specutils") for cls in type(data).__mro__):
        return False
    from specutils import Spectrum
    return isinstance(data, Spectrum)


def as_table(data):
    """Any tabular input as an astropy `~astropy.table.Table` (columns are not copied).

    A Table or QTable is returned as it is; a path is read by
    `giantfm.io.tables.read_table` (the one reading path, by the file's extension);
    the dict of ``Gaia.load_data`` (``{file name: [Table, ...]}``) becomes one
    stacked table; a `pandas.DataFrame`, a dict of columns or a numpy
    structured array becomes a Table.

    Raises
    ------
    FileNotFoundError
        A path that does not exist.
    ValueError
        A file that cannot be read as a table.
    TypeError
        Anything else.
    """
    from astropy.table import Table, vstack

    if isinstance(data, Table):
        return data
    if isinstance(data, (str, os.PathLike)):
        return read_table(data)
    if isinstance(data, dict) and data and all(
            isinstance(v, (list, tuple)) and v and all(isinstance(t, Table) for t in v)
            for v in data.values()):
        # what astroquery's Gaia.load_data returns: {file name: [Table, ...]}
        tables = [t for key in sorted(data) for t in data[key]]
        if len(tables) == 1:
            return tables[0]
        return vstack(tables, join_type="outer", metadata_conflicts="silent")
    if hasattr(data, "columns") and hasattr(data, "to_numpy"):  # pandas DataFrame
        return Table.from_pandas(data)
    if isinstance(data, (dict, np.ndarray)):
        return Table(data)
    what = "a table" if _is_spectrum(data) or isinstance(data, XPCoefficients) else \
        "XP coefficients"
    raise TypeError(f"cannot read {what} from a {type(data).__name__}: give a Table, "
                    "QTable, file path, pandas DataFrame or the dict returned by "
                    "Gaia.load_data" + ("" if what == "a table" else
                                        ", or a specutils Spectrum or XPCoefficients to "
                                        "read_xp and the verbs"))


def _plain(column):
    """A column's values as a numpy (masked) array without units."""
    value = getattr(column, "value", column)  # Quantity columns
    if hasattr(column, "mask") and not np.ma.isMaskedArray(value):
        value = np.ma.MaskedArray(np.asarray(value), mask=np.ma.getmaskarray(column))
    return value


_MISSING_TEXT = ("", "nan", "null", "none", "--", "n/a", "na")
# 'Gaia DR3 123', 'Gaia EDR3 123', 'DR3 123' or '123'
_SOURCE_ID_TEXT = re.compile(r"\s*(?:gaia\s*)?(?:e?dr\d\s*)?(\d+)\s*", re.IGNORECASE)


def _add_note(notes, row, text):
    notes[row] = text if not notes[row] else f"{notes[row]}; {text}"


def note_flags(notes):
    """The `giantfm.flags` bits of the readers' notes (one string per row).

    A reader notes only a cell it cannot read -- a text that is not a number, an
    array cell that is not a list of numbers, a source_id that is not one
    (see `ColumnLayout`) -- which is left out of its row: reason ``bad_value``.
    """
    return np.where(np.asarray(notes, dtype=object) != "", REASONS["bad_value"].value,
                    0).astype(np.int64)


def _text_cells(value, name, notes, parse):
    """Cells of a text/object column parsed one by one; unreadable ones noted by ``name``."""
    mask = np.ma.getmaskarray(value)
    data = np.ma.getdata(value)
    out = []
    for row, cell in enumerate(data):
        text = cell.decode() if isinstance(cell, bytes) else str(cell)
        if mask[row] or text.strip().lower() in _MISSING_TEXT:
            out.append(None)
            continue
        parsed = parse(text)
        if parsed is None:
            _add_note(notes, row, reason("bad_value", column=name, value=repr(text),
                                         why="not a number"))
        out.append(parsed)
    return out


def _as_float(text):
    try:
        return float(text)
    except ValueError:
        return None


def _float_column(column, what, n, notes=None):
    """A 1-D numeric column as float64 with NaN where masked.

    Text cells are read as numbers; with ``notes`` (one string per row) a cell
    that is not a number becomes NaN and its row's note says so, without it
    the column is refused.
    """
    if column is None:
        return np.full(n, np.nan)
    unit = getattr(column, "unit", None)
    if unit is not None and what.endswith("magnitude"):
        from astropy import units as u
        if u.Unit(unit) not in (u.mag, u.dimensionless_unscaled) \
                and not isinstance(u.Unit(unit), u.MagUnit):
            raise ValueError(f"column {column.info.name!r} ({what}) has unit {unit}, "
                             "expected magnitudes")
    name = getattr(getattr(column, "info", None), "name", what)
    try:
        out = floats(column)
    except (TypeError, ValueError) as err:
        if notes is None:
            raise ValueError(f"column {name!r} ({what}) is not numeric: {err}") from None
        cells = _text_cells(np.ma.asarray(_plain(column)).reshape(-1), name, notes, _as_float)
        out = np.array([np.nan if c is None else c for c in cells], dtype=np.float64)
    return out.reshape(n)


def read_source_ids(column, notes):
    """Gaia source ids as int64 (-1 where absent), from numbers or from text like 'Gaia DR3 123'.

    ``notes`` (an object array, one string per row) receives why a cell could
    not be read. Floating-point ids (a column with missing values read by
    pandas, say) are taken where finite, and refused beyond 2**53, where a
    float cannot hold a 19-digit id exactly.
    """
    value = _plain(column)
    name = getattr(getattr(column, "info", None), "name", "source_id")
    array = np.ma.asarray(value)
    if array.dtype.kind == "f":
        floats = np.ma.filled(array.astype(np.float64), np.nan).reshape(-1)
        finite = np.isfinite(floats)
        if (np.abs(floats[finite]) > 2.0 ** 53).any():
            raise ValueError(f"column {name!r} holds source ids as floating-point numbers, "
                             "which cannot hold 19-digit Gaia ids exactly: read it as "
                             "integers (int64) or text")
        return np.where(finite, floats, -1).astype(np.int64)
    try:
        return np.ma.filled(np.ma.asarray(value).astype(np.int64), -1).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        pass

    def parse(text):
        match = _SOURCE_ID_TEXT.fullmatch(text)
        return int(match.group(1)) if match and len(match.group(1)) <= 19 else None
    cells = _text_cells(np.ma.asarray(value).reshape(-1), name, notes, parse)
    # the note of an unreadable source_id says "not a number": say what it should be
    for row, cell in enumerate(cells):
        if cell is None and notes[row].endswith("not a number"):
            notes[row] = notes[row][:-len("not a number")] + "not a Gaia source_id"
    return np.array([-1 if c is None else c for c in cells], dtype=np.int64)


def _parse_cell(cell):
    """One array cell -> 1-D float array (None if absent)."""
    if cell is None or cell is np.ma.masked:
        return None
    if isinstance(cell, (str, bytes, np.str_, np.bytes_)):
        text = cell.decode() if isinstance(cell, bytes) else str(cell)
        text = text.strip().strip("()[]{}").replace(",", " ")
        if not text.strip() or text.strip().lower() in ("nan", "null", "none", "--"):
            return None
        return np.array(text.split(), dtype=np.float64)
    if np.ma.isMaskedArray(cell):
        if np.ma.getmaskarray(cell).all():
            return None
        return np.ma.filled(cell.astype(np.float64), np.nan).reshape(-1)
    arr = np.asarray(cell, dtype=np.float64).reshape(-1)
    if arr.size == 0 or (arr.size == 1 and not np.isfinite(arr[0])):
        return None
    return arr


def _array_column(column, colname, n, size, what, notes=None):
    """An array column in any of its forms -> (n, size) float64, NaN where absent.

    Returns ``(values, lengths)`` where lengths[i] is the number of entries the
    row had (0 when absent), so callers can name the offending rows. With
    ``notes``, a row whose cell cannot be read as numbers is absent and noted.
    """
    value = _plain(column)
    data = np.ma.getdata(value)
    if data.ndim == 2 and data.dtype.kind in "USO":  # a 2-D column of text: numbers as text
        try:
            value = np.ma.MaskedArray(data.astype(np.float64), mask=np.ma.getmaskarray(value))
            data = np.ma.getdata(value)
        except (TypeError, ValueError):
            data = value = np.array([" ".join(str(x) for x in row) for row in data],
                                    dtype=object)
    if data.dtype.kind in "fiu" and data.ndim == 2:  # a true 2-D numeric column
        out = np.ma.filled(np.ma.asarray(value).astype(np.float64), np.nan)
        lengths = np.where(np.isfinite(out).any(axis=1), out.shape[1], 0)
        return out, lengths
    if data.ndim != 1:
        raise ValueError(f"column {colname!r} ({what}) has shape {data.shape}: expected one "
                         f"array of {size} values per row")
    mask = np.ma.getmaskarray(value)
    rows = []
    for i in range(n):
        cell = None if mask[i] else (value[i] if np.ma.isMaskedArray(value) else data[i])
        try:
            rows.append(None if cell is None else _parse_cell(cell))
        except (TypeError, ValueError):
            if notes is None:
                raise ValueError(f"column {colname!r} ({what}) row {i} cannot be read as "
                                 f"numbers: {str(cell)[:60]!r}") from None
            _add_note(notes, i, reason("bad_value", column=colname,
                                       value=repr(str(cell)[:40]), why="not a list of numbers"))
            rows.append(None)
    lengths = np.array([0 if r is None else r.size for r in rows])
    width = max(size, int(lengths.max(initial=0)))
    out = np.full((n, width), np.nan)
    for i, r in enumerate(rows):
        if r is not None:
            out[i, :r.size] = r
    return out, lengths


def _check_count(lengths, colname, band, size):
    bad = np.flatnonzero((lengths != 0) & (lengths != size))
    if bad.size:
        counts = sorted(set(lengths[bad].tolist()))
        raise ValueError(f"column {colname!r} has {counts} values in row(s) "
                         f"{bad[:10].tolist()}, expected {size}. "
                         + (_RELEASE_HINT if band == "bp" and 51 in counts else
                            "Is this a Gaia DR3 XP_CONTINUOUS table?"))


def _correlation_matrices(flat, colname):
    """(n, 1485) archive-packed correlations (or (n, 3025) full ones) -> (n, 55, 55) matrices.

    Stars without correlations get all-NaN matrices.
    """
    n = len(flat)
    if flat.shape[1] == N_COEFFICIENTS ** 2:  # full matrices, flattened
        flat = flat.reshape(n, N_COEFFICIENTS, N_COEFFICIENTS)
    elif flat.shape[1] != _N_CORRELATIONS:
        raise ValueError(f"column {colname!r} has {flat.shape[1]} values per row, expected "
                         f"{_N_CORRELATIONS} (the correlations above the diagonal of a "
                         f"{N_COEFFICIENTS}x{N_COEFFICIENTS} matrix)")
    out = correlation_matrix(flat)
    out[~np.isfinite(flat).reshape(n, -1).any(axis=1)] = np.nan
    return out


def _archive_band(table, band, n, correlations, notes):
    """Coefficients of one band from archive / GaiaXPy array columns (or None)."""
    names = table.colnames
    coef_name = find_column(names, (f"{band}_coefficients",))
    if coef_name is None:
        return None
    coef, lengths = _array_column(table[coef_name], coef_name, n, N_COEFFICIENTS,
                                  f"{band.upper()} coefficients", notes)
    _check_count(lengths, coef_name, band, N_COEFFICIENTS)
    npar_name = find_column(names, (f"{band}_n_parameters",))
    if npar_name is not None:
        npar = _float_column(table[npar_name], "number of parameters", n)
        bad = np.flatnonzero(np.isfinite(npar) & (npar != N_COEFFICIENTS))
        if bad.size:
            raise ValueError(f"column {npar_name!r} is {int(npar[bad[0]])} in row {bad[0]}, "
                             f"expected {N_COEFFICIENTS}. " + _RELEASE_HINT)
    coef = coef[:, :N_COEFFICIENTS]
    err_name = find_column(names, (f"{band}_coefficient_errors", f"{band}_coefficients_errors"))
    if err_name is not None:
        err, elen = _array_column(table[err_name], err_name, n, N_COEFFICIENTS,
                                  f"{band.upper()} coefficient errors", notes)
        _check_count(elen, err_name, band, N_COEFFICIENTS)
        err = err[:, :N_COEFFICIENTS]
    else:
        err = np.full_like(coef, np.nan)
    corr = None
    corr_name = find_column(names, (f"{band}_coefficient_correlations",))
    if correlations and corr_name is not None:
        flat, _ = _array_column(table[corr_name], corr_name, n, _N_CORRELATIONS,
                                f"{band.upper()} coefficient correlations", notes)
        corr = _correlation_matrices(flat, corr_name)
    return coef, err, corr


def _flat_band(table, band, n, correlations, notes):
    """Coefficients of one band from flattened ``bp_coeff_i`` columns (or None; no correlations)."""
    values, errors = {}, {}
    for name in table.colnames:
        match = _FLAT.match(name)
        if match is None or match["band"].lower() != band:
            continue
        target = errors if (match["e"] or match["e2"] or match["e3"]) else values
        target[int(match["i"])] = name
    if not values:
        return None
    indices = sorted(values)
    if indices != list(range(len(indices))):
        missing = sorted(set(range(max(indices) + 1)) - set(indices))
        raise ValueError(f"flattened {band.upper()} coefficient columns are incomplete: "
                         f"no column for index(es) {missing[:10]}")
    if len(indices) != N_COEFFICIENTS:
        raise ValueError(f"found {len(indices)} flattened {band.upper()} coefficient columns "
                         f"({values[0]!r} ...), expected {N_COEFFICIENTS}. "
                         + (_RELEASE_HINT if band == "bp" and len(indices) == 51 else
                            "Is this a Gaia DR3 XP_CONTINUOUS table?"))
    coef = np.column_stack([_float_column(table[values[i]], "coefficient", n, notes)
                            for i in range(N_COEFFICIENTS)])
    if errors:
        missing = sorted(set(range(N_COEFFICIENTS)) - set(errors))
        if missing:
            raise ValueError(f"flattened {band.upper()} error columns are incomplete: no "
                             f"column for index(es) {missing[:10]}")
        err = np.column_stack([_float_column(table[errors[i]], "coefficient error", n, notes)
                               for i in range(N_COEFFICIENTS)])
    else:
        err = np.full_like(coef, np.nan)
    return coef, err, None


# --------------------------------------------------------------------------- column layouts

@dataclass(frozen=True)
class ColumnLayout:
    """One layout of XP coefficient columns in a table (an entry of `COLUMN_LAYOUTS`, made
    by `register_column_layout`).

    ``read_band(table, band, n, correlations, notes)`` returns the band's
    ``(coefficients, errors, correlations)`` -- (n, 55), (n, 55) and
    (n, 55, 55) or None -- or None when the table has no columns of this
    layout for ``band`` ('bp' or 'rp'); it raises `ValueError` for columns
    of this layout that do not hold Gaia DR3 coefficients, and notes a cell
    it cannot read in that row's entry of ``notes`` (one string per row).
    """

    name: str
    description: str
    read_band: Callable


#: The layouts `read_xp` looks for in a table, for each band, in the order of their
#: priority (a registry: add one with `register_column_layout`, remove one with
#: ``COLUMN_LAYOUTS.unregister(name)``).
COLUMN_LAYOUTS = Registry("column layout", "giantfm.xp.readers.register_column_layout")


def register_column_layout(name, description, read_band, *, priority=0, replace=False):
    """Teach `read_xp` (and so every verb) a layout of XP coefficient columns in a table.

    Parameters
    ----------
    name : str
        The layout's name.
    description : str
        Its columns, in a line.
    read_band : callable
        ``read_band(table, band, n, correlations, notes)``: see `ColumnLayout`.
    priority : int, optional
        The order in which `read_xp` tries the layouts (highest first; the
        built-in ones have 0, and among equal priorities the first registered
        is tried first).
    replace : bool, optional
        Replace the layout registered as ``name`` (default: refuse the name).

    Returns
    -------
    `ColumnLayout`
        The entry registered.

    Raises
    ------
    TypeError
        A name or description that is not text, a ``read_band`` that cannot be
        called with those five arguments, a priority that is not an integer.
    ValueError
        A name registered already (without ``replace``).
    """
    check_text(name, "the name of a column layout")
    check_text(description, f"the description of column layout {name!r}")
    check_callable(read_band, f"read_band of column layout {name!r}", 5,
                   "read_band(table, band, n, correlations, notes)")
    return COLUMN_LAYOUTS.register(ColumnLayout(name, description, read_band),
                                   priority=priority, replace=replace)


register_column_layout("archive", "Gaia archive / astroquery / GaiaXPy array columns "
                       "{bp,rp}_coefficients, {bp,rp}_coefficient_errors, "
                       "{bp,rp}_coefficient_correlations (numeric, object or string cells)",
                       _archive_band)
register_column_layout("flattened", "one column per coefficient: {bp,rp}_coeff_0..54 and "
                       "errors e_{bp,rp}_coeff_0..54 (VizieR, xp_continuous_first2000.fits)",
                       _flat_band)


def _read_columns(table, correlations):
    """`XPCoefficients` of a table in the layouts of `COLUMN_LAYOUTS` (with its photometry)."""
    n = len(table)
    if n == 0:
        raise ValueError("the table is empty: there are no stars to read")
    bands = {}
    notes = np.full(n, "", dtype=object)
    for band in ("bp", "rp"):
        bands[band] = next((found for layout in COLUMN_LAYOUTS
                            if (found := layout.read_band(table, band, n, correlations, notes))
                            is not None), None)
    if bands["bp"] is None and bands["rp"] is None:
        shown = ", ".join(table.colnames[:20]) + (" ..." if len(table.colnames) > 20 else "")
        raise ValueError(
            "no XP coefficient columns found. Expected the Gaia archive / GaiaXPy array "
            "columns 'bp_coefficients' and/or 'rp_coefficients' (with "
            "'bp_coefficient_errors', 'rp_coefficient_errors', optional "
            "'*_coefficient_correlations' and '*_n_relevant_bases'), or the flattened "
            "columns 'bp_coeff_0'..'bp_coeff_54' and/or 'rp_coeff_0'..'rp_coeff_54' (with "
            "'e_bp_coeff_0'.. errors); layouts known: "
            f"{', '.join(layout.name for layout in COLUMN_LAYOUTS)}. The table has columns: "
            f"{shown}")
    empty = np.full((n, N_COEFFICIENTS), np.nan)
    out = {}
    for band in ("bp", "rp"):
        coef, err, corr = bands[band] if bands[band] is not None else (empty, empty, None)
        out[band], out[f"{band}_err"], out[f"{band}_corr"] = coef, err, corr
        nrel_name = find_column(table.colnames, (f"{band}_n_relevant_bases",))
        nrel = _float_column(table[nrel_name] if nrel_name else None, "n_relevant_bases", n,
                             notes)
        out[f"{band}_n_relevant"] = np.where(np.isfinite(nrel), nrel, -1).astype(np.int64)
        sd_name = find_column(table.colnames, (f"{band}_standard_deviation",))
        out[f"{band}_standard_deviation"] = _float_column(
            table[sd_name] if sd_name else None, "standard deviation", n, notes)
    if (out["bp_corr"] is None) != (out["rp_corr"] is None):
        present = out["bp_corr"] if out["bp_corr"] is not None else out["rp_corr"]
        missing = np.full_like(present, np.nan)
        out["bp_corr"] = present if out["bp_corr"] is not None else missing
        out["rp_corr"] = present if out["rp_corr"] is not None else missing
    sid_name = find_column(table.colnames, SOURCE_ID_ALIASES)
    if sid_name is None:
        source_id = np.full(n, -1, np.int64)
    else:
        source_id = read_source_ids(table[sid_name], notes)
    reason = missing_reason(out["bp"], out["rp"])
    flags = np.where(reason != "", REASONS["no_xp"].value, 0)
    if "reason" in table.colnames:
        # e.g. fetch_xp's rows of sources the archive lacks: a given reason explains a row
        # without coefficients; a row with them (a result table read back) is predicted
        given = np.ma.filled(np.ma.asarray(table["reason"]).astype(str), "")
        explained = (given != "") & (reason != "")
        reason = np.where(explained, given, reason).astype(object)
        # text read back from a file: its bits are recovered from it
        flags = np.where(explained, flag_bits(given), flags)
    columns = {short: find_column(table.colnames, aliases)
               for short, aliases in PHOTOMETRY_ALIASES.items()}
    for band in ("bp", "rp"):
        columns[f"{band}_coefficients"] = find_column(table.colnames, (f"{band}_coefficients",))
        columns[f"{band}_coefficient_errors"] = find_column(
            table.colnames, (f"{band}_coefficient_errors", f"{band}_coefficients_errors"))
    mags = read_photometry(table, n, notes)
    return XPCoefficients(source_id=source_id, mags=mags, reason=reason, notes=notes,
                          columns={k: v for k, v in columns.items() if v is not None},
                          flags=flags | note_flags(notes), **out)


# --------------------------------------------------------------------------- readers

@dataclass(frozen=True)
class Reader:
    """How `read_xp` reads one kind of input (an entry of `READERS`, made by
    `register_reader`).

    ``accepts(data)`` says whether ``data`` is of this kind (cheaply: it must
    not import an optional package to find out); ``read(data, correlations)``
    returns its `XPCoefficients`.
    """

    name: str
    description: str
    accepts: Callable
    read: Callable


def _read_spectrum(spectrum, correlations):
    return spectrum_to_coefficients(spectrum, correlations=correlations)


#: The kinds of input `read_xp` reads, tried in the order of their priority (a registry:
#: add one with `register_reader`, remove one with ``READERS.unregister(name)``); the last,
#: ``'table'`` (priority `TABLE_READER_PRIORITY`), takes anything tabular.
READERS = Registry("reader", "giantfm.xp.readers.register_reader")

#: The priority of the reader of anything tabular, which accepts everything: below every
#: other reader's.
TABLE_READER_PRIORITY = -100


def register_reader(name, description, accepts, read, *, priority=0, replace=False):
    """Teach `read_xp` (and so every verb) a kind of input object.

    Parameters
    ----------
    name : str
        The reader's name.
    description : str
        What it reads, in a line.
    accepts : callable
        ``accepts(data)``: whether ``data`` is of this kind. Cheap: it must
        not import an optional package to find out.
    read : callable
        ``read(data, correlations)``: its `XPCoefficients`.
    priority : int, optional
        The order in which `read_xp` tries the readers (highest first; the
        built-in ones have 0, and among equal priorities the first registered
        is tried first). The reader of anything tabular, which accepts
        everything, comes last (`TABLE_READER_PRIORITY`).
    replace : bool, optional
        Replace the reader registered as ``name`` (default: refuse the name).

    Returns
    -------
    `Reader`
        The entry registered.

    Raises
    ------
    TypeError
        A name or description that is not text, ``accepts`` or ``read`` not
        callable with their arguments, a priority that is not an integer.
    ValueError
        A name registered already (without ``replace``), or a priority not
        above `TABLE_READER_PRIORITY` (the reader would never be tried).
    """
    check_text(name, "the name of a reader")
    check_text(description, f"the description of reader {name!r}")
    check_callable(accepts, f"accepts of reader {name!r}", 1, "accepts(data) -> bool")
    check_callable(read, f"read of reader {name!r}", 2,
                   "read(data, correlations) -> XPCoefficients")
    if name != "table" and isinstance(priority, int) and priority <= TABLE_READER_PRIORITY:
        raise ValueError(f"reader {name!r} would never be tried: priority {priority} is not "
                         "above that of the reader of anything tabular "
                         f"({TABLE_READER_PRIORITY})")
    return READERS.register(Reader(name, description, accepts, read),
                            priority=priority, replace=replace)


register_reader("coefficients", "an XPCoefficients, returned as it is",
                lambda data: isinstance(data, XPCoefficients), lambda data, correlations: data)
register_reader("spectrum", "a specutils.Spectrum of sampled XP spectra (1-D or a 2-D batch), "
                "fitted by giantfm.xp.spectrum.spectrum_to_coefficients", _is_spectrum,
                _read_spectrum)
register_reader("table", "a Table, QTable, file path, Gaia.load_data result, pandas DataFrame, "
                "dict of columns or structured array, in one of the COLUMN_LAYOUTS",
                lambda data: True,
                lambda data, correlations: _read_columns(as_table(data), correlations),
                priority=TABLE_READER_PRIORITY)


def read_photometry(table, n=None, notes=None):
    """Magnitudes of a table by short name, found through `PHOTOMETRY_ALIASES`.

    Parameters
    ----------
    table : `~astropy.table.Table` or anything `read_xp` accepts as a table
        Columns are matched case-insensitively; Quantity columns must be in mag.
    n : int, optional
        Expected number of rows.
    notes : array of str (n,), optional
        Per-row notes: a text cell that is not a number is then NaN and noted
        (without ``notes`` the column is refused).

    Returns
    -------
    mags : dict
        ``{short name: float64 array}`` for the magnitudes present (NaN where
        masked); names absent from the table are absent from the dict.
    """
    table = as_table(table)
    n = len(table) if n is None else n
    mags = {}
    for short, aliases in PHOTOMETRY_ALIASES.items():
        name = find_column(table.colnames, aliases)
        if name is not None:
            mags[short] = _float_column(table[name], f"{short} magnitude", n, notes)
    return mags


def read_xp(data, correlations=True):
    """Read Gaia DR3 XP coefficients (and photometry) from any supported input.

    Parameters
    ----------
    data : `~astropy.table.Table`, `~astropy.table.QTable`, str or path-like, \
`pandas.DataFrame`, dict, `specutils.Spectrum` or `XPCoefficients`
        The stars, in any form of `READERS` (see the module docstring). Column
        names are matched case-insensitively:

        * archive / GaiaXPy names: ``source_id``, ``{bp,rp}_coefficients``,
          ``{bp,rp}_coefficient_errors``, ``{bp,rp}_coefficient_correlations``,
          ``{bp,rp}_n_relevant_bases``, ``{bp,rp}_standard_deviation``,
          ``{bp,rp}_n_parameters`` (checked to be 55);
        * flattened: ``{bp,rp}_coeff_0..54`` and ``e_{bp,rp}_coeff_0..54``;
        * photometry: see `PHOTOMETRY_ALIASES`.

        One band may be absent (its coefficients are then NaN).
    correlations : bool, optional
        Parse the correlation matrices (the slowest part of reading string
        cells). Tokenisation does not need them.

    Returns
    -------
    xp : `XPCoefficients`

    Raises
    ------
    ValueError
        For an empty table, no coefficient columns (the message lists the
        names expected), a coefficient count other than 55 (Gaia DR4's 51 BP
        coefficients are named as such), or unreadable cells.
    TypeError
        For an input of an unsupported type.
    """
    reader = next(reader for reader in READERS if reader.accepts(data))
    return reader.read(data, correlations)
