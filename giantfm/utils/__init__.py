"""Helpers shared by several rooms of giantfm.

The public one is `atomic_write`. The private modules beside it hold one
shared job each, with public names inside, for giantfm's own use:

- ``_optional``: optional dependencies (``HAS_*``) and the one install hint;
- ``_progress``: the one progress bar;
- ``_blas``: BLAS limited to one thread for the many small matrix products;
- ``_stats``: robust statistics (MAD-std);
- ``_json``: metadata made strict JSON;
- ``_version``: the installed giantfm version;
- ``_gaiaxpy``: GaiaXPy, the reference the tests and benchmarks compare with, kept quiet.
"""
from ._files import atomic_write

__all__ = ["atomic_write"]
