"""giantfm: masses, ages and labels of red giants from Gaia DR3 XP spectra.

A transformer foundation model (Leung & Bovy 2024; Zhang, Bu et al. 2026)
over sets of tokens -- XP coefficients, colours, stellar labels -- that
answers any request with a mean and an uncertainty.
"""
from .utils._version import package_version

#: The installed version (``importlib.metadata``); a source tree that was never installed
#: reports the fallback version "0.1.dev0".
__version__ = package_version()

from .config import conf
from .flags import decode_flags
# both are light: astroquery and specutils are imported only when they are used
from . import examples
from .prediction import predict, request
from .generation import generate_spectrum, inpaint
from .embedding import embed, similar
from .teaching import FinetuneSettings, finetune
# dask, distributed, lsdb and pyarrow are imported only when these run
from .scale import predict_catalog, predict_files
from .io.tables import read_table, write_table
from .tokens import tokenize
from .xp.fetch import fetch_xp

__citation__ = __bibtex__ = """\
@misc{giantfm,
  title  = {giantfm: masses and ages of red giants from Gaia XP spectra},
  author = {{The giantfm developers}},
  year   = {2026},
  note   = {Software, https://github.com/giantfm/giantfm; please also cite
            Zhang, Bu et al. 2026 (arXiv:2603.03732) and Leung & Bovy 2024
            (MNRAS, arXiv:2308.10944)}
}
"""

__all__ = ["conf", "__version__", "__citation__", "predict", "request", "inpaint",
           "generate_spectrum", "embed", "similar", "finetune", "FinetuneSettings", "predict_files", "predict_catalog",
           "load_model", "fetch_xp", "tokenize", "examples", "read_table", "write_table",
           "decode_flags"]


def load_model(path_or_name=None, device=None):
    """Load a saved giantfm model (see `giantfm.model.load_model`); imports torch."""
    from .model import load_model as _load
    return _load(path_or_name, device=device)
