"""Tables in any format astropy reads and writes, chosen by the file extension.

FITS (``.fits``, ``.fit``, ``.fts``), ECSV (``.ecsv``), VOTable (``.vot``,
``.votable``, ``.xml``), CSV (``.csv``: plain CSV, GaiaXPy-style CSV with
array strings, or ECSV with comma delimiter), Parquet (``.parquet``, ``.pq``,
needs pyarrow), HDF5 (``.h5``, ``.hdf5``), each optionally gzipped (``.gz``)
where astropy can read it so; the Gaia archive's ``XP_CONTINUOUS`` products
are ECSV, VOTable or CSV files. Written ``.csv`` is ECSV with a comma
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
from pathlib import Path

from ..utils import atomic_write
from ..utils._files import read_file
from ..utils._optional import require
from .parquet import iter_parquet

__all__ = ["FORMATS", "HDF5_PATH", "table_format", "format_suffix", "require_format_package",
           "read_table", "write_table", "iter_table_chunks"]

#: File extension -> astropy format name (``.csv`` is read as ECSV when it is one).
FORMATS = {
    ".fits": "fits", ".fit": "fits", ".fts": "fits",
    ".ecsv": "ascii.ecsv",
    ".csv": "ascii.csv",
    ".vot": "votable", ".votable": "votable", ".xml": "votable",
    ".parquet": "parquet", ".pq": "parquet",
    ".h5": "hdf5", ".hdf5": "hdf5",
}
# packages some formats need beyond astropy: format -> import name
_FORMAT_NEEDS = {"parquet": "pyarrow", "hdf5": "h5py"}
#: HDF5 files can hold several tables: giantfm writes its results under this path.
HDF5_PATH = "predictions"


def format_suffix(path):
    """The extension that names ``path``'s format: lower case, ``.gz`` looked through, or ''."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


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
    suffix = format_suffix(path)
    if suffix in FORMATS:
        return FORMATS[suffix]
    raise ValueError(f"cannot tell the table format of {os.fspath(path)!r} from its extension; "
                     f"known extensions: {', '.join(sorted(FORMATS))} (optionally + .gz)")


def _is_ecsv(path):
    """Whether a (possibly gzipped) text file starts with the ECSV signature."""
    from astropy.utils.data import get_readable_fileobj
    with get_readable_fileobj(os.fspath(path)) as f:
        return f.readline().startswith("# %ECSV")


def require_format_package(path):
    """Check that the package the format of ``path`` needs (pyarrow, h5py) is installed.

    Raises
    ------
    ImportError
        It is not; the message says what to install.
    ValueError
        Unknown extension.
    """
    fmt = table_format(path)
    if fmt in _FORMAT_NEEDS:
        require(_FORMAT_NEEDS[fmt], f"{fmt} files ({os.fspath(path)!r})")


def read_table(path):
    """Read a table in any format of `FORMATS` (see the module docstring).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    `~astropy.table.Table`

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Unknown extension, or a file that cannot be read as that format
        (the message names the file and the format, and says "truncated"
        for a file cut short).
    ImportError
        The format needs a package that is not installed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file {os.fspath(path)!r} does not exist")
    require_format_package(path)
    fmt = table_format(path)
    if fmt == "ascii.csv" and _is_ecsv(path):
        fmt = "ascii.ecsv"
    table = read_file(path, fmt)
    if fmt == "fits":
        table.meta.update(_json_meta_from_fits(table.meta))
    return table


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


def _write_kwargs(fmt):
    if fmt == "ascii.csv":  # ECSV with commas: a CSV file whose '#' header carries the units
        return "ascii.ecsv", {"delimiter": ","}
    if fmt == "hdf5":
        return fmt, {"path": HDF5_PATH, "serialize_meta": True}
    return fmt, {}


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
    fmt = table_format(path)
    require_format_package(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"output file {os.fspath(path)!r} exists; use --overwrite "
                              "(overwrite=True) to replace it")
    directory = path.parent
    if not directory.is_dir():
        raise FileNotFoundError(f"output directory {os.fspath(directory)!r} does not exist")
    write_format, kwargs = _write_kwargs(fmt)
    if fmt == "fits" and any(isinstance(v, (dict, list, tuple)) for v in table.meta.values()):
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
            table.write(tmp, format=write_format, overwrite=True, **kwargs)
    atomic_write(path, write)


def iter_table_chunks(path, chunk_rows):
    """Yield the table in ``path`` as astropy Tables of at most ``chunk_rows`` rows, in order.

    Parquet files are streamed row group by row group
    (`giantfm.io.parquet.iter_parquet`), so that only one block is in memory;
    other formats are read whole (`read_table`) and cut.
    """
    if FORMATS.get(format_suffix(path)) == "parquet":
        yield from iter_parquet(path, chunk_rows)
        return
    from astropy.utils.exceptions import AstropyWarning

    with warnings.catch_warnings():
        # astropy's readers warn about harmless header details of real files (units
        # outside the VOUnit standard, FITS cards); the values are read regardless
        warnings.simplefilter("ignore", category=AstropyWarning)
        table = read_table(path)
    for start in range(0, len(table), chunk_rows):
        yield table[start:start + chunk_rows]
