"""The version of giantfm that is running."""
from functools import lru_cache

__all__ = ["package_version", "public_version", "FALLBACK_VERSION"]

#: The version of a source tree that was never installed (pyproject's fallback_version).
FALLBACK_VERSION = "0.1.dev0"


@lru_cache(maxsize=1)
def package_version():
    """giantfm's version from the installed package's metadata (``importlib.metadata``).

    A source tree that is on the path without being installed (the training
    machines run ``PYTHONPATH=. python -m giantfm.train.trainer``) has no
    metadata: it reports `FALLBACK_VERSION`.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("giantfm")
    except PackageNotFoundError:
        return FALLBACK_VERSION


def public_version(version):
    """``version`` without its local part: ``0.1.dev14+gde18e37b8.d20261201`` -> ``0.1.dev14``.

    setuptools_scm's local part names the commit and, for a tree with
    uncommitted changes, the date: provenance, not a version a user can ask
    for. A string that is not a version is returned as it is.
    """
    from packaging.version import InvalidVersion, Version

    try:
        return Version(str(version)).public
    except InvalidVersion:
        return str(version)
