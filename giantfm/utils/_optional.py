"""Optional dependencies: whether each is installed (``HAS_*``) and the one install hint.

``HAS_TQDM``, ``HAS_PYARROW``, ... are found with `importlib.util.find_spec`,
which does not import the package, so that ``import giantfm`` stays light.
`require` imports a package for a job that needs it, or says in one form which
``pip install`` brings it.
"""
import importlib
import importlib.util

__all__ = ["require", "install_hint", "HAS_TQDM", "HAS_PYARROW", "HAS_H5PY", "HAS_DISTRIBUTED",
           "HAS_LSDB", "HAS_XGBOOST", "HAS_DUST_EXTINCTION", "HAS_THREADPOOLCTL", "HAS_GAIAXPY"]

# import name -> what ``pip install`` brings it (an extra of giantfm where one does)
_INSTALL = {
    "tqdm": "tqdm",
    "pyarrow": "'giantfm[scale]'",
    "h5py": "h5py",
    "distributed": "'giantfm[scale]'",
    "dask": "'giantfm[scale]'",
    "lsdb": "'giantfm[scale]'",
    "xgboost": "'giantfm[train]'",
    "dust_extinction": "'giantfm[train]'",
    "threadpoolctl": "threadpoolctl",
    "gaiaxpy": "'giantfm[test]'",
}


def _installed(module):
    return importlib.util.find_spec(module) is not None


HAS_TQDM = _installed("tqdm")
HAS_PYARROW = _installed("pyarrow")
HAS_H5PY = _installed("h5py")
HAS_DISTRIBUTED = _installed("distributed")
HAS_LSDB = _installed("lsdb")
HAS_XGBOOST = _installed("xgboost")
HAS_DUST_EXTINCTION = _installed("dust_extinction")
HAS_THREADPOOLCTL = _installed("threadpoolctl")
HAS_GAIAXPY = _installed("gaiaxpy")


def install_hint(module):
    """``pip install ...`` that brings ``module``."""
    return f"pip install {_INSTALL.get(module, module)}"


def require(module, what):
    """Import and return ``module``, which ``what`` needs.

    Raises
    ------
    ImportError
        ``module`` is not installed; the message names ``what`` and the
        ``pip install`` that brings it.
    """
    package = module.partition(".")[0]
    if not _installed(package):
        raise ImportError(f"{what} needs the package {package!r}: {install_hint(package)}")
    return importlib.import_module(module)
