"""Tables in any format astropy reads and writes: the one reading path, and atomic writes.

`TABLE_FORMATS` is a registry, as specutils' loaders and astropy's I/O
registry are: one `TableFormat` entry per format, naming its file extensions,
the package it needs and how it is read and written. `read_table` -- which
`giantfm.predict` (given a path), the ``giantfm`` command line and
`giantfm.predict_files` all read files through -- picks the entry by the
file's extension (``.gz`` looked through), so a new format is one more entry;
a file of an extension no entry names is read as astropy guesses it.

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
"""
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..utils import atomic_write
from ..utils._files import read_file
from ..utils._optional import require
from .parquet import iter_parquet

__all__ = ["TableFormat", "TABLE_FORMATS", "FORMATS", "HDF5_PATH", "table_format",
           "format_suffix", "require_format_package", "read_table", "write_table",
           "iter_table_chunks"]

#: HDF5 files can hold several tables: giantfm writes its results under this path.
HDF5_PATH = "predictions"


@dataclass(frozen=True)
class TableFormat:
    """One table format (an entry of `TABLE_FORMATS`).

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
    table.meta.update(_json_meta_from_fits(table.meta))
    return table


#: The formats `read_table` and `write_table` know, one entry each.
TABLE_FORMATS = [
    TableFormat("fits", (".fits", ".fit", ".fts"), "FITS binary table (dict metadata as JSON "
                "text in the header)", read=_read_fits),
    TableFormat("ascii.ecsv", (".ecsv",), "ECSV: units and metadata in its header"),
    TableFormat("ascii.csv", (".csv",), "CSV: plain, GaiaXPy-style with array strings, or ECSV "
                "with commas (read as ECSV when it is one; written so)", read=_read_csv,
                write_format="ascii.ecsv", write_options={"delimiter": ","}),
    TableFormat("votable", (".vot", ".votable", ".xml"), "VOTable (the archive's default)"),
    TableFormat("parquet", (".parquet", ".pq"), "Apache Parquet (units in astropy's metadata; "
                "read row group by row group)", needs="pyarrow", chunks=iter_parquet),
    TableFormat("hdf5", (".h5", ".hdf5"), f"HDF5 (giantfm writes its table at {HDF5_PATH!r})",
                needs="h5py", write_options={"path": HDF5_PATH, "serialize_meta": True}),
]

#: File extension -> astropy format name, from `TABLE_FORMATS`.
FORMATS = {ext: f.name for f in TABLE_FORMATS for ext in f.extensions}
_BY_EXTENSION = {ext: f for f in TABLE_FORMATS for ext in f.extensions}


def format_suffix(path):
    """The extension that names ``path``'s format: lower case, ``.gz`` looked through, or ''."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _entry(path):
    """The `TableFormat` of ``path``'s extension, or None."""
    return _BY_EXTENSION.get(format_suffix(path))


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
    """The dict and list values that `write_table` wrote to a FITS header as JSON text."""
    decoded = {}
    for key, value in meta.items():
        if isinstance(value, str) and value[:1] in "{[":
            try:
                decoded[key] = json.loads(value)
            except ValueError:  # text that merely looks like JSON stays text
                continue
    return decoded


def write_table(table, path, *, overwrite=False):
    """Write ``table`` to ``path`` atomically, in the format its extension names.

    The table goes to a temporary file in the same directory, which is then
    renamed onto ``path`` (`os.replace`): readers never see a half-written
    file, and an interruption leaves no partial output behind. In FITS, dict
    and list values of ``table.meta`` are written as JSON text (FITS headers
    hold scalars only; `read_table` decodes them), and astropy's notes about
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
    if entry.name == "fits" and any(isinstance(v, (dict, list, tuple))
                                    for v in table.meta.values()):
        table = table.copy(copy_data=False)
        table.meta.update({key: json.dumps(value) for key, value in table.meta.items()
                           if isinstance(value, (dict, list, tuple))})

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
