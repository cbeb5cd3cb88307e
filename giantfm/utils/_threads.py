"""How many CPU threads one call of giantfm uses: the one answer for every room.

The network (`giantfm.model.TrainedModel.request`) runs its batches on that
many threads and the label model (`giantfm.labelmodel`) splits its XGBoost
predictions over as many, so that a call uses the cores it was given and no
more: inside a Dask worker (whose nanny sets ``OMP_NUM_THREADS=1``), several
workers on one machine do not each start a thread per core.

Both run their work as whole pieces on a pool of plain threads (`thread_pool`)
rather than through the OpenMP threads of torch and XGBoost: those wait for
each other at every operation, which on a busy machine costs far more than
it gains (XGBoost with ``nthread=2`` took 34 ms for one star at load 6 on 2
cores, against 0.5 ms with one thread).
"""
import contextlib
import operator
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from ..config import conf

__all__ = ["cpu_threads", "available_cores", "thread_pool", "threads_of_this_task"]

_POOLS = threading.local()   # the calling thread's pools (see thread_pool)
_TASK = threading.local()


def available_cores():
    """The CPU cores this process may run on (its affinity: taskset, a batch system's
    cpuset), else the machine's."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # not Linux
        return max(os.cpu_count() or 1, 1)


@contextlib.contextmanager
def threads_of_this_task(threads):
    """Within the context, calls made from this thread use ``threads`` CPU threads (None:
    as they would). For a task that shares its machine with others running at once (the
    tasks of `giantfm.predict_files` and `giantfm.predict_catalog`): unlike
    ``giantfm.conf``, it concerns this thread alone."""
    previous = getattr(_TASK, "threads", None)
    _TASK.threads = previous if threads is None else threads
    try:
        yield
    finally:
        _TASK.threads = previous


def cpu_threads(threads=None):
    """CPU threads for one call: ``threads``, else those of `threads_of_this_task`, else
    ``giantfm.conf.threads``, else ``OMP_NUM_THREADS`` (a Dask worker's nanny sets it
    to 1), else `available_cores`.

    Raises
    ------
    ValueError
        ``threads`` (or ``conf.threads``) is not an integer >= 0.
    """
    if threads is None:
        threads = getattr(_TASK, "threads", None)
    if threads is None:
        threads = conf.threads
    try:
        valid = not isinstance(threads, bool) and operator.index(threads) >= 0
    except TypeError:
        valid = False
    if not valid:
        raise ValueError(f"threads must be a positive integer (or 0 for automatic), "
                         f"got {threads!r}")
    threads = operator.index(threads)
    if threads:
        return threads
    try:
        omp = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        omp = 0
    return omp if omp > 0 else available_cores()


def thread_pool(threads, name, initializer=None):
    """A pool of ``threads`` threads for ``name``, all started (each has run
    ``initializer``) before it is returned; one per calling thread, process, name and size.

    A pool is kept for the next call, its threads idle, and ends with the thread
    that made it: calls from several threads at once (the partitions of dask's
    threaded scheduler, say) each get their own, rather than queueing on one.
    A forked child makes its own (it has none of its parent's threads).
    """
    pools = getattr(_POOLS, "pools", None)
    if pools is None:
        pools = _POOLS.pools = {}
    key = (os.getpid(), name, threads)
    pool = pools.get(key)
    if pool is None:
        pool = ThreadPoolExecutor(threads, thread_name_prefix=name, initializer=initializer)
        # the pool starts its threads one per task: start them all now
        started = threading.Barrier(threads)
        list(pool.map(lambda _: started.wait(timeout=60), range(threads)))
        pools[key] = pool
    return pool
