"""Atomic file writes: a reader never sees a half-written file."""
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write"]


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
