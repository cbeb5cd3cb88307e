"""Tables in any format astropy reads and writes: the one reading path, and atomic writes.

`TABLE_FORMATS` is a registry, as specutils' loaders and astropy's I/O
registry are: one `TableFormat` entry per format, naming its file extensions,
the package it needs and how it is read and written. `read_table` -- which
`giantfm.predict` (given a path), the ``giantfm`` command line and
`giantfm.predict_files` all read files through -- picks the entry by the
file's extension (``.gz`` looked through), so a new format is one call of
`register_table_format` (which checks the entry, as the built-in ones are
registered); a file of an extension no entry names is read as astropy guesses
it.

The entries: FITS (``.fits``, ``.fit``, ``.fts``), ECSV (``.ecsv``), CSV
(``.csv``: plain CSV, GaiaXPy-style CSV with array strings, or ECSV with comma
delimiter), VOTable (``.vot``, ``.votable``, ``.xml``), Parquet (``.parquet``,
``.pq``, needs pyarrow), HDF5 (``.h5``, ``.hdf5``), each optionally gzipped
(``.gz``) where astropy can read it so; the Gaia archive's ``XP_CONTINUOUS``
products are ECSV, VOTable or CSV files. Written ``.csv`` is ECSV with a comma
delimiter, so that the units travel in its ``#`` header
(``pandas.read_csv(path, comment="#")`` and
``Table.read(path, format="ascii.ecsv")`` both read it).

Writes are atomic (a temporary file in the same folder, renamed into place),
and a result's metadata survives every format: FITS headers hold scalars
only, so dict and list values of ``meta`` (a prediction's ``label_domain`` and
``label_floor``) are written there as JSON text, which `read_table` turns back.
FITS keywords are upper case unless written as ``HIERARCH`` cards, so every
key of ``meta`` that is not already an upper-case FITS keyword is written as
one: its case comes back as written, to `read_table` and to
``QTable.read`` alike; `read_table` reads FITS text columns as ``str``, not
``bytes``.
"""
import json
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..utils import Registry, atomic_write
from ..utils._files import read_file
from ..utils._optional import require
from ..utils._registry import check_callable, check_text
from .parquet import iter_parquet

__all__ = ["TableFormat", "TABLE_FORMATS", "FORMATS", "HDF5_PATH", "register_table_format",
           "table_format", "format_suffix", "require_format_package", "read_table",
           "write_table", "iter_table_chunks"]

#: HDF5 files can hold several tables: giantfm writes its results under this path.
HDF5_PATH = "predictions"


@dataclass(frozen=True)
class TableFormat:
    """One table format (an entry of `TABLE_FORMATS`, made by `register_table_format`).

    ``name`` is astropy's format name; ``extensions`` the file extensions
    (lower case, with the dot) that mean it; ``needs`` the import name of a
    package it needs beyond astropy (None: none). ``read(path)`` returns the
    file's `~astropy.table.Table` (default: astropy's reader of ``name``,
    failing clearly); ``chunks(path, rows)``, where given, yields it in blocks of
    at most ``rows`` rows without reading it whole (`iter_table_chunks`);
    ``write_format`` and ``write_options`` are what `write_table` passes to
    ``Table.write``.
    """

    name: str
    extensions: tuple
    description: str
    needs: str = None
    read: Callable = None
    chunks: Callable = None
    write_format: str = None
    write_options: dict = field(default_factory=dict)

    def read_file(self, path):
        """The table in ``path`` (see `read_table`)."""
        return read_file(path, self.name) if self.read is None else self.read(path)


def _is_ecsv(path):
    """Whether a (possibly gzipped) text file starts with the ECSV signature."""
    from astropy.utils.data import get_readable_fileobj
    with get_readable_fileobj(os.fspath(path)) as f:
        return f.readline().startswith("# %ECSV")


def _read_csv(path):
    return read_file(path, "ascii.ecsv" if _is_ecsv(path) else "ascii.csv")


def _read_fits(path):
    table = read_file(path, "fits")
    # FITS text comes as bytes; astropy's own conversion keeps the masks of empty strings
    # (character_as_bytes=False at reading would lose them)
    table.convert_bytestring_to_unicode()
    table.meta.update(_json_meta_from_fits(table.meta))
    return table


#: The formats `read_table` and `write_table` know, one `TableFormat` each, in the
#: order of their priority (a registry: add one with `register_table_format`, remove one
#: with ``TABLE_FORMATS.unregister(name)``).
TABLE_FORMATS = Registry("table format", "giantfm.io.tables.register_table_format")

_EXTENSION = re.compile(r"^\.[a-z0-9][a-z0-9_+-]*$")


def register_table_format(name, extensions, description, *, needs=None, read=None,
                          chunks=None, write_format=None, write_options=None, priority=0,
                          replace=False):
    """Teach giantfm a table format: files of ``extensions`` are then read and written as it
    by every verb (`read_table`, `write_table`, `giantfm.predict`, `giantfm.predict_files`,
    the command line).

    Parameters
    ----------
    name : str
        Its name; astropy's format name when astropy reads (``read`` None) or
        writes (``write_format`` None) it.
    extensions : str or sequence of str
        Its file extensions, lower case with the dot (``'.fits'``); a gzipped
        file (``.gz``) is read as the extension before it.
    description : str
        What it is and keeps, in a line.
    needs : str, optional
        The import name of a package it needs beyond astropy (the error then
        says what to install).
    read : callable, optional
        ``read(path)`` returns the file's `~astropy.table.Table`; default
        astropy's reader of ``name``, failing clearly.
    chunks : callable, optional
        ``chunks(path, rows)`` yields the table in blocks of at most ``rows``
        rows without reading it whole (`iter_table_chunks`).
    write_format : str, optional
        The astropy format `write_table` writes it with (default ``name``).
    write_options : dict, optional
        Keywords `write_table` passes to ``Table.write``.
    priority : int, optional
        The order of `TABLE_FORMATS` (highest first). An extension that a
        registered format has already is refused unless ``priority`` is
        higher than that format's: then files of that extension are read as
        this one.
    replace : bool, optional
        Replace the format registered as ``name`` (default: refuse the name).

    Returns
    -------
    `TableFormat`
        The entry registered.

    Raises
    ------
    TypeError
        An argument of the wrong type (a ``read`` that is not a function of
        the path, ...).
    ValueError
        An extension that is not lower case with a dot, ``'.gz'``, an
        extension another format has at the same or a higher priority, a
        name registered already, or no ``read`` for a format astropy cannot
        read.
    """
    check_text(name, "the name of a table format")
    if isinstance(extensions, str):
        extensions = (extensions,)
    try:
        extensions = tuple(extensions)
    except TypeError:
        raise TypeError(f"extensions of table format {name!r} must be a string or a sequence "
                        f"of strings, got {extensions!r}") from None
    if not extensions:
        raise ValueError(f"table format {name!r} needs at least one file extension")
    for ext in extensions:
        check_text(ext, f"an extension of table format {name!r}")
        if ext == ".gz":
            raise ValueError(f"'.gz' cannot be the extension of table format {name!r}: a "
                             "gzipped file is read as the extension before .gz")
        if not _EXTENSION.match(ext):
            raise ValueError(f"extension {ext!r} of table format {name!r} must be lower case "
                             f"and start with a dot, as {'.' + ext.lstrip('.').lower()!r}")
    check_text(description, f"the description of table format {name!r}")
    if needs is not None:
        check_text(needs, f"needs (the package table format {name!r} needs)")
    if read is not None:
        check_callable(read, f"read of table format {name!r}", 1, "read(path) -> Table")
    if chunks is not None:
        check_callable(chunks, f"chunks of table format {name!r}", 2,
                       "chunks(path, rows) yielding Tables")
    if write_format is not None:
        check_text(write_format, f"write_format of table format {name!r}")
    if write_options is None:
        write_options = {}
    if not isinstance(write_options, Mapping):
        raise TypeError(f"write_options of table format {name!r} must be a dict of "
                        f"Table.write keywords, got {write_options!r}")
    if read is None:
        from astropy.io import registry
        from astropy.table import Table
        try:
            registry.get_reader(name, Table)
        except registry.IORegistryError:
            raise ValueError(f"astropy has no reader of a table format named {name!r}: give "
                             "read=, a function read(path) -> Table") from None
    if isinstance(priority, int) and not isinstance(priority, bool):
        for other in TABLE_FORMATS:
            taken = sorted(set(extensions) & set(other.extensions))
            if other.name != name and taken and TABLE_FORMATS.priority(other.name) >= priority:
                raise ValueError(
                    f"extension {taken[0]!r} is table format {other.name!r}'s already "
                    f"(priority {TABLE_FORMATS.priority(other.name)}): give {name!r} a higher "
                    "priority to read such files as it instead, or another extension")
    entry = TableFormat(name, extensions, description, needs=needs, read=read, chunks=chunks,
                        write_format=write_format, write_options=dict(write_options))
    return TABLE_FORMATS.register(entry, priority=priority, replace=replace)


register_table_format("fits", (".fits", ".fit", ".fts"), "FITS binary table (dict metadata as "
                      "JSON text in the header, keys as HIERARCH cards)", read=_read_fits)
register_table_format("ascii.ecsv", ".ecsv", "ECSV: units and metadata in its header")
register_table_format("ascii.csv", ".csv", "CSV: plain, GaiaXPy-style with array strings, or "
                      "ECSV with commas (read as ECSV when it is one; written so)",
                      read=_read_csv, write_format="ascii.ecsv",
                      write_options={"delimiter": ","})
register_table_format("votable", (".vot", ".votable", ".xml"), "VOTable (the archive's "
                      "default)")
register_table_format("parquet", (".parquet", ".pq"), "Apache Parquet (units in astropy's "
                      "metadata; read row group by row group)", needs="pyarrow",
                      chunks=iter_parquet)
register_table_format("hdf5", (".h5", ".hdf5"), f"HDF5 (giantfm writes its table at "
                      f"{HDF5_PATH!r})", needs="h5py",
                      write_options={"path": HDF5_PATH, "serialize_meta": True})


class _Extensions(Mapping):
    """File extension -> astropy format name, read from `TABLE_FORMATS` when asked (so a
    format registered later is in it)."""

    def _mapping(self):
        found = {}
        for entry in TABLE_FORMATS:  # by priority: the first format naming an extension has it
            for ext in entry.extensions:
                found.setdefault(ext, entry.name)
        return found

    def __getitem__(self, ext):
        return self._mapping()[ext]

    def __iter__(self):
        return iter(self._mapping())

    def __len__(self):
        return len(self._mapping())

    def __repr__(self):
        return repr(self._mapping())


#: File extension -> astropy format name, from `TABLE_FORMATS` (a read-only view).
FORMATS = _Extensions()


def format_suffix(path):
    """The extension that names ``path``'s format: lower case, ``.gz`` looked through, or ''."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _entry(path):
    """The `TableFormat` of ``path``'s extension, or None."""
    suffix = format_suffix(path)
    return next((entry for entry in TABLE_FORMATS if suffix in entry.extensions), None)


def table_format(path):
    """The astropy format name for ``path``, from its extension (``.gz`` is looked through).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    str
        E.g. ``'fits'``, ``'ascii.ecsv'``, ``'votable'``.

    Raises
    ------
    ValueError
        For an extension giantfm does not know, listing the known ones.
    """
    entry = _entry(path)
    if entry is None:
        raise ValueError(f"cannot tell the table format of {os.fspath(path)!r} from its "
                         f"extension; known extensions: {', '.join(sorted(FORMATS))} "
                         "(optionally + .gz)")
    return entry.name


def require_format_package(path):
    """Check that the package the format of ``path`` needs (pyarrow, h5py) is installed.

    Raises
    ------
    ImportError
        It is not; the message says what to install.
    ValueError
        Unknown extension.
    """
    table_format(path)  # unknown extensions raise, listing the known ones
    _require(_entry(path), path)


def _require(entry, path):
    if entry is not None and entry.needs:
        require(entry.needs, f"{entry.name} files ({os.fspath(path)!r})")


def read_table(path):
    """Read a table file: the one reading path of giantfm (see the module docstring).

    Parameters
    ----------
    path : str or path-like
        A file of any format of `TABLE_FORMATS`, by its extension (optionally
        + ``.gz``); a file of another extension is read as astropy guesses it.

    Returns
    -------
    `~astropy.table.Table`

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        A file that cannot be read as its format (the message names the file
        and the format, and says "truncated" for a file cut short).
    ImportError
        The format needs a package that is not installed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file {os.fspath(path)!r} does not exist")
    entry = _entry(path)
    if entry is None:
        try:
            return read_file(path)
        except ValueError as exc:
            raise ValueError(f"{exc} (giantfm reads the extensions {', '.join(sorted(FORMATS))}, "
                             "optionally + .gz; other files as astropy guesses them)") from None
    _require(entry, path)
    return entry.read_file(path)


def _json_meta_from_fits(meta):
    """The dict and list values that `write_table` wrote to a FITS header as JSON text, and
    the None values it wrote as FITS's undefined value."""
    from astropy.io.fits.card import Undefined

    decoded = {}
    for key, value in meta.items():
        if isinstance(value, Undefined):
            decoded[key] = None
        elif isinstance(value, str) and value[:1] in "{[":
            try:
                decoded[key] = json.loads(value)
            except ValueError:  # text that merely looks like JSON stays text
                continue
    return decoded


# a FITS header's own keyword: what any reader gives back as it was written
_FITS_KEYWORD = re.compile(r"^[A-Z0-9_-]{1,8}$")
# meta keys that astropy writes as COMMENT and HISTORY cards, each item of a list one card
_CARD_LISTS = ("comments", "comment", "history")


def _fits_meta(meta):
    """``meta`` as a FITS header keeps it: dict and list values as JSON text, and every
    key that is not an upper-case FITS keyword as a HIERARCH card, which keeps its case
    (FITS keywords are upper case: ``device`` would come back as ``DEVICE``)."""
    out = {}
    for key, value in meta.items():
        if key.lower() in _CARD_LISTS:
            out[key] = value  # astropy writes one card per item of the list
            continue
        if isinstance(value, (dict, list, tuple)):
            value = json.dumps(value)
        plain = _FITS_KEYWORD.match(key) or key.upper().startswith("HIERARCH ")
        out[key if plain else f"HIERARCH {key}"] = value
    return out


def write_table(table, path, *, overwrite=False):
    """Write ``table`` to ``path`` atomically, in the format its extension names.

    The table goes to a temporary file in the same directory, which is then
    renamed onto ``path`` (`os.replace`): readers never see a half-written
    file, and an interruption leaves no partial output behind. In FITS, dict
    and list values of ``table.meta`` are written as JSON text (FITS headers
    hold scalars only; `read_table` decodes them), keys that are not upper-case
    FITS keywords as HIERARCH cards (which keep their case), and astropy's notes about
    the FITS standard -- no ``dex`` unit, long header keywords -- are not
    shown: astropy keeps the units in the file's own metadata (``QTable.read``
    restores them) and writes long keywords as HIERARCH cards.

    Parameters
    ----------
    table : `~astropy.table.Table` or `~astropy.table.QTable`
    path : str or path-like
        Output file; its extension chooses the format (see `table_format`).
    overwrite : bool, optional
        Replace an existing file (default False: refuse).

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    FileNotFoundError
        The output directory does not exist.
    ValueError
        Unknown extension.
    ImportError
        The format needs a package that is not installed.
    """
    path = Path(path)
    require_format_package(path)
    entry = _entry(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"output file {os.fspath(path)!r} exists; use --overwrite "
                              "(overwrite=True) to replace it")
    directory = path.parent
    if not directory.is_dir():
        raise FileNotFoundError(f"output directory {os.fspath(directory)!r} does not exist")
    if entry.name == "fits" and table.meta:
        table = table.copy(copy_data=False)
        table.meta = _fits_meta(table.meta)

    def write(tmp):
        with warnings.catch_warnings():
            # Notes of astropy's writers that do not apply here (see the docstring): the
            # dex(cm s-2) unit of logg round-trips through astropy's metadata, long meta
            # keys become HIERARCH cards, and VOTable keeps dex as a plain string (W50).
            warnings.filterwarnings("ignore", message=".*could not be saved in native FITS")
            warnings.filterwarnings("ignore", message=".*HIERARCH card will be created")
            warnings.filterwarnings("ignore", message=".*W50: Invalid unit string 'dex")
            table.write(tmp, format=entry.write_format or entry.name, overwrite=True,
                        **entry.write_options)
    atomic_write(path, write)


def iter_table_chunks(path, chunk_rows):
    """Yield the table in ``path`` as astropy Tables of at most ``chunk_rows`` rows, in order.

    A format that can be streamed (its entry's ``chunks``: Parquet, row group
    by row group, `giantfm.io.parquet.iter_parquet`) keeps only one block in
    memory; other formats are read whole (`read_table`) and cut.
    """
    entry = _entry(path)
    if entry is not None and entry.chunks is not None:
        _require(entry, path)
        yield from entry.chunks(path, chunk_rows)
        return
    from astropy.utils.exceptions import AstropyWarning

    with warnings.catch_warnings():
        # astropy's readers warn about harmless header details of real files (units
        # outside the VOUnit standard, FITS cards); the values are read regardless
        warnings.simplefilter("ignore", category=AstropyWarning)
        table = read_table(path)
    for start in range(0, len(table), chunk_rows):
        yield table[start:start + chunk_rows]
