"""Helpers shared by several rooms of giantfm.

The public ones are `atomic_write` and `Registry` (the type of giantfm's
registries of table formats and XP input layouts). The private modules beside
it hold one shared job each, with public names inside, for giantfm's own use:

- ``_optional``: optional dependencies (``HAS_*``) and the one install hint;
- ``_progress``: the one progress bar;
- ``_blas``: BLAS limited to one thread for the many small matrix products;
- ``_stats``: robust statistics (MAD-std);
- ``_json``: metadata made strict JSON;
- ``_version``: the installed giantfm version;
- ``_gaiaxpy``: GaiaXPy, the reference the tests and benchmarks compare with, kept quiet;
- ``_registry``: registries of named entries by priority, and the checks of what is
  registered;
- ``_modelfiles``: model folders read so that a damaged file says which and why, and
  saved whole or not at all.
"""
from ._files import atomic_write
from ._registry import Registry

__all__ = ["atomic_write", "Registry"]
