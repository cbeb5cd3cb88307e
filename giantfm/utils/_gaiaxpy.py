"""GaiaXPy kept quiet: it is the reference that giantfm's tests and benchmarks compare with.

giantfm itself never imports GaiaXPy (the ``test`` extra installs it).
"""
import contextlib
import gc
import os
import warnings

__all__ = ["quiet_gaiaxpy"]


@contextlib.contextmanager
def quiet_gaiaxpy():
    """Silence GaiaXPy 2.1.5 while it runs, and only what it says.

    Its progress bars write to the original standard output file descriptor
    (so `contextlib.redirect_stdout` does not catch them), and under pandas 3
    it warns about pandas-4 deprecations and leaves its configuration files
    open (ResourceWarning, emitted by the garbage collection at the end).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The 'mode.chained_assignment' option is "
                                "deprecated")
        warnings.filterwarnings("ignore", message="The 'float_precision' argument is deprecated")
        warnings.filterwarnings("ignore", category=ResourceWarning, message="unclosed file")
        saved = os.dup(1)
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            try:
                yield
            finally:
                os.dup2(saved, 1)
                os.close(saved)
                gc.collect()   # emit the ResourceWarnings inside the filters
