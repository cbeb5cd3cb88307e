"""Files: atomic writes (no reader sees a half-written file), and reading that fails clearly."""
import os
import tempfile
import warnings
from pathlib import Path

__all__ = ["atomic_write", "read_file"]


def atomic_write(path, write):
    """Create or replace the file ``path`` atomically.

    Parameters
    ----------
    path : str or path-like
        The file to write; its folder must exist.
    write : callable
        ``write(tmp)`` fills the temporary file ``tmp``. It lies in the same
        folder and keeps ``path``'s suffix, since some writers (XGBoost,
        matplotlib, astropy) choose the format from it; it is then renamed
        onto ``path`` with `os.replace`, so readers never see a half-written
        file and a failure or an interruption leaves nothing behind.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes the file private (0600): give it a normal new file's permissions
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_file(path, fmt=None):
    """`Table.read` of one file, its failures said as a user can act on them.

    A file that astropy finds shorter than its header promises, or a gzip
    stream that ends early, is called truncated; any other failure corrupt or
    not of the format ``fmt`` (None: astropy guesses it).
    """
    from astropy.table import Table

    name = os.fspath(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            table = Table.read(path, **({} if fmt is None else {"format": fmt}))
        except Exception as exc:  # astropy raises many kinds for unreadable files
            truncated = isinstance(exc, EOFError) or any(
                "truncated" in str(w.message) for w in caught) or "end-of-stream" in str(exc)
            state = "is truncated" if truncated else "is corrupt or of another format"
            # astropy's "format could not be identified" lists every format it knows
            detail = str(exc).splitlines()[0] if str(exc) else ""
            lead = f"cannot read {name!r} as {fmt}" if fmt else \
                f"could not read {name!r} as a table (ECSV, VOTable, FITS, CSV, ...)"
            raise ValueError(f"{lead}: the file {state} ({type(exc).__name__}: {detail}); "
                             "download or write it again") from None
    for w in caught:   # what astropy said about a file it could read, said again
        if "truncated" in str(w.message):
            raise ValueError(f"cannot read {name!r} as {fmt or 'a table'}: the file is "
                             f"truncated ({w.message}); download or write it again")
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return table
