"""Model folders (a network's, a label model's): files that fail to read say which and why,
and saves that leave either the new folder or the old one, never half of each.

The network's folder is written by `giantfm.model.TrainedModel.save`, the label
model's by `giantfm.labelmodel.LabelModel.save`; both read through here, so that
a damaged file is reported the same way, as a `~giantfm.exceptions.ModelFileError`.
"""
import contextlib
import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

from ..exceptions import ModelFileError

__all__ = ["DAMAGED_FIX", "cause", "damaged", "read_json", "require_keys", "folder_to_write",
           "file_sha256", "saving_folder", "keep_previous", "staged_folder"]

#: What a damaged model folder asks of its user.
DAMAGED_FIX = "the model folder is damaged: copy it again or re-save the model"


def cause(exc, detail=None):
    """An exception as ``Type: its first sentence`` (library messages run to paragraphs of
    advice that does not apply here), or ``Type: detail``."""
    if detail is None:
        lines = str(exc).strip().splitlines()
        detail = lines[0].split(". ")[0].rstrip(".") if lines else ""
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def damaged(path, what, exc, fix=DAMAGED_FIX):
    """The `ModelFileError` of a file that cannot be read as ``what``: it names the file,
    the library's reason (an exception, or a text from `cause`) and ``fix``."""
    reason = exc if isinstance(exc, str) else cause(exc)
    return ModelFileError(f"{os.fspath(path)} is not {what} (truncated or corrupt: "
                          f"{reason}); {fix}")


def read_json(path, fix=DAMAGED_FIX):
    """The JSON object in the file ``path``.

    Raises
    ------
    FileNotFoundError
        No file there (callers say what was expected).
    ModelFileError
        A file that is empty, cut short, not UTF-8 text or not a JSON object.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        if not text.strip():
            raise ValueError("the file is empty")
        content = json.loads(text)
    except FileNotFoundError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise damaged(path, "a readable JSON file", exc, fix) from None
    if not isinstance(content, dict):
        raise ModelFileError(f"{os.fspath(path)} holds a JSON {type(content).__name__}, not "
                             f"the object a model folder keeps there; {fix}")
    return content


def require_keys(content, keys, path, fix=DAMAGED_FIX):
    """Refuse a JSON object read from ``path`` that lacks any of ``keys``, naming them."""
    missing = [key for key in keys if key not in content]
    if missing:
        raise ModelFileError(f"{os.fspath(path)} lacks {', '.join(map(repr, missing))} "
                             f"(written by another program, or edited); {fix}")


def folder_to_write(path, what="model"):
    """``path`` as a `~pathlib.Path` to save a folder into, refused if a file is in the way.

    Raises
    ------
    ModelFileError
        ``path``, or a folder above it, is an existing file.
    """
    path = Path(path)
    for folder in (path, *path.parents):
        if folder.exists() and not folder.is_dir():
            where = "is" if folder == path else f"lies under {os.fspath(folder)!r}, which is"
            raise ModelFileError(
                f"cannot save the {what} to {os.fspath(path)!r}: it {where} a file, and a "
                f"{what} is saved as a folder of files; give the path of a folder (new or "
                "holding a model to replace), or move the file away")
        if folder.exists():
            break
    return path


def file_sha256(path):
    """The SHA-256 of the file ``path``, in hex (what a configuration records of its weights)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def keep_previous(path):
    """While the block replaces the file ``path``, keep its previous version: put back if
    the block fails, dropped if it succeeds.

    The copy is a hard link where the file system allows (no bytes copied).
    """
    path = Path(path)
    backup = path.with_name(f".{path.name}.previous")
    backup.unlink(missing_ok=True)
    if path.is_file():
        try:
            os.link(path, backup)
        except OSError:  # no hard links here (some network and FAT file systems)
            shutil.copy2(path, backup)
    try:
        yield
    except BaseException:
        if backup.exists():
            if path.exists() and os.path.samefile(backup, path):
                backup.unlink()  # never replaced; rename() of a file onto itself does nothing
            else:
                os.replace(backup, path)
        raise
    backup.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_folder(path):
    """A whole folder written at once: the block writes into the staging folder it is
    given (``<path>.staging``, beside ``path``; not yet made), which then replaces
    ``path``. A block that fails leaves ``path`` as it was and no staging folder.

    The folder that was there is moved aside (``<path>.old``) before the staging folder
    takes its name, put back if that fails, and removed after.
    """
    path = Path(path)
    staging = path.with_name(path.name + ".staging")
    old = path.with_name(path.name + ".old")
    shutil.rmtree(staging, ignore_errors=True)   # what an earlier failed save left
    try:
        yield staging
        shutil.rmtree(old, ignore_errors=True)
        moved = path.exists()
        if moved:
            path.rename(old)
        try:
            staging.rename(path)
        except BaseException:
            if moved:
                old.rename(path)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def saving_folder(path, what="model"):
    """Saving a folder: a folder this save made is removed if the save fails, and an
    `OSError` (a full disk, no permission) is said plainly, with its errno kept.

    The block must leave a folder that existed before as it was when it fails
    (`keep_previous`).
    """
    path = Path(path)
    made = not path.exists()
    try:
        yield
    except BaseException as exc:
        if made:
            shutil.rmtree(path, ignore_errors=True)
        if not isinstance(exc, OSError):
            raise
        reason = "no space left on the device" if exc.errno == errno.ENOSPC else \
            (exc.strerror or str(exc))
        where = f" (writing {os.fspath(exc.filename)!r})" if exc.filename else ""
        left = ("nothing was left there" if made else
                "the model that was there is left as it was")
        message = (f"cannot save the {what} to {os.fspath(path)!r}: {reason}{where}; {left}. "
                   "Free some space (or choose a writable folder) and save again")
        # OSError(errno, text) is the subclass of that errno (PermissionError, ...)
        raise (OSError(exc.errno, message) if exc.errno else OSError(message)) from exc
