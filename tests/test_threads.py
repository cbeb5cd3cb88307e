"""CPU threads: how many a call uses, and that they change no answer."""
import os
import threading

import numpy as np
import pytest

import giantfm
from giantfm.tokens import TokenBatch
from giantfm.utils._threads import cpu_threads, thread_pool, threads_of_this_task


def test_cpu_threads_resolution(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with giantfm.conf.set_temp("threads", 0):
        assert cpu_threads() >= 1
        assert cpu_threads(3) == 3
        monkeypatch.setenv("OMP_NUM_THREADS", "1")          # what a Dask nanny sets
        assert cpu_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
        assert cpu_threads() >= 1
    with giantfm.conf.set_temp("threads", 5):
        assert cpu_threads() == 5
        with threads_of_this_task(2):
            assert cpu_threads() == 2
            seen = []
            other = threading.Thread(target=lambda: seen.append(cpu_threads()))
            other.start()
            other.join()
            assert seen == [5]                               # this thread only
            with threads_of_this_task(None):
                assert cpu_threads() == 2
        assert cpu_threads() == 5
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads must be"):
            cpu_threads(bad)


def test_thread_pool_is_made_once_per_thread_and_started():
    started = []
    pool = thread_pool(2, "giantfm-test", initializer=lambda: started.append(1))
    assert len(started) == 2
    assert thread_pool(2, "giantfm-test") is pool
    assert pool.submit(os.getpid).result() == os.getpid()
    other = []
    caller = threading.Thread(target=lambda: other.append(thread_pool(2, "giantfm-test")))
    caller.start()
    caller.join()
    assert other[0] is not pool       # another calling thread: its own pool


@pytest.fixture(scope="module")
def mixed_batch():
    """The example stars, some with tokens left out, so that the token counts differ and
    some network calls have padding."""
    batch = giantfm.tokenize(giantfm.examples.load())
    ids, values, errors = batch.ids.copy(), batch.values.copy(), batch.errors.copy()
    rng = np.random.default_rng(1)
    n = len(ids)
    ids, values, errors = (np.concatenate([a] * 5) for a in (ids, values, errors))
    drop = rng.random(ids.shape) < 0.15
    drop[:n] = False
    ids[drop] = 0
    values[drop] = 0
    errors[drop] = 0
    return TokenBatch(ids, values, errors)


def test_threads_change_no_answer(net, mixed_batch):
    import torch

    names = ["teff", "logg", "m_h", "mass", "p_rc"]
    before = torch.get_num_threads()
    with giantfm.conf.set_temp("threads", 1):
        one = net.request(mixed_batch, names, batch_size=7, embedding=True, progress=False)
    with giantfm.conf.set_temp("threads", 3):
        three = net.request(mixed_batch, names, batch_size=7, embedding=True, progress=False)
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a, b)                  # bit for bit
    assert torch.get_num_threads() == before                # the caller's setting is kept
    # one call of all stars at once: the same answers to float32 rounding
    mean, std = net.request(mixed_batch, names, batch_size=4096, progress=False)
    ok = np.isfinite(std)
    assert np.max(np.abs(mean - one[0])[ok] / std[ok]) < 1e-4


def test_label_model_split_over_threads(net, monkeypatch):
    from giantfm import labelmodel
    from giantfm.prediction import label_model_of

    model = label_model_of(net)
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(4700, 300, 500), rng.normal(2.5, 0.5, 500),
                         rng.normal(-0.2, 0.3, 500), rng.normal(0.05, 0.05, 500)])
    whole = model.quantiles(x)
    monkeypatch.setattr(labelmodel, "_ROWS_PER_THREAD", 10)
    with giantfm.conf.set_temp("threads", 3):
        split = model.quantiles(x)
    for name in whole:
        for a, b in zip(whole[name], split[name]):
            np.testing.assert_array_equal(a, b)


def test_partition_threads_share_the_cores():
    dask = pytest.importorskip("dask")
    from giantfm.scale.catalog import _partition_threads

    assert _partition_threads() is None                     # the main thread: the default
    got = []
    worker = threading.Thread(target=lambda: got.append(_partition_threads()))
    with giantfm.conf.set_temp("threads", 4):
        with dask.config.set(num_workers=2):
            worker.start()
            worker.join()
    assert got == [2]


def test_device_path_answers_as_the_threads(net, mixed_batch, monkeypatch):
    """The loop CUDA and MPS run (one thread, out-of-memory retries), run here on the CPU."""
    names = ["teff", "mass", "p_rc"]
    pooled = net.request(mixed_batch, names, batch_size=7, embedding=True, progress=False)
    monkeypatch.setattr(net, "_answer_on_cpu_threads", net._answer_on_device)
    serial = net.request(mixed_batch, names, batch_size=7, embedding=True, progress=False)
    for a, b in zip(pooled, serial):
        np.testing.assert_array_equal(a, b)


def test_predict_files_task_threads(tmp_path, monkeypatch):
    """A task of predict_files predicts with the threads its job names (a worker's share of
    the cores, when predict_files starts the cluster), and as configured without."""
    from giantfm.scale import files

    seen = []

    def fake_predict(table, *args):
        seen.append(cpu_threads())
        return table[["source_id"]] if "source_id" in table.colnames else table[:]
    monkeypatch.setattr(files, "_predict_chunk", fake_predict)
    path = tmp_path / "stars.ecsv"
    giantfm.examples.load()[:3].write(path, format="ascii.ecsv")
    job = {"input": str(path), "output": str(tmp_path / "out.ecsv"), "device": "cpu",
           "batch_size": None, "model": None, "chunk_rows": 10, "output_format": "same"}
    with giantfm.conf.set_temp("threads", 5):
        files._process_file(dict(job, threads=3))
        files._process_file(job)
    assert seen == [3, 5]
