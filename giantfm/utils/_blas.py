"""BLAS limited to one thread, for the many small matrix products of the XP layer."""
import contextlib
from functools import lru_cache

from ._optional import HAS_THREADPOOLCTL

__all__ = ["single_threaded_blas"]


@lru_cache(maxsize=1)
def _controller():
    """threadpoolctl's view of the loaded BLAS libraries (None without threadpoolctl).

    Made once: entering its ``limit`` then costs 9 us, against 400 us for a
    fresh ``threadpool_limits`` that inspects the process each time.
    """
    if not HAS_THREADPOOLCTL:  # a bare training machine may lack it: run as BLAS likes
        return None
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController()


def single_threaded_blas():
    """A context that limits BLAS to one thread (when threadpoolctl is installed).

    For the many small products of the XP layer -- 110x110 inversions per star
    in `giantfm.xp.flux_to_coefficients` and the coefficient recovery of the
    training set, the blocked products of `giantfm.xp.coefficients_to_flux`
    and of the token projection -- BLAS threads gain little and lose much:
    measured here (2 cores, shared), OpenBLAS's two threads made the per-star
    fits up to 40x slower (20 against 790 spectra/s; the recovery of 400
    library spectra 50 s against 2.6 s) and the blocked flux products 11x
    slower (15,000 against 171,000 spectra/s) through contention.
    """
    controller = _controller()
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")
