"""A trained network with its normalisation: batched inference, saving and loading.

A saved model is a folder with two files:

``config.json``
    format version, giantfm version, vocabulary version and names (and the
    tokens the model adds to giantfm's, ``vocab_extension``), the
    `ModelConfig`, the `Normalisation`, the weights' dtype and the model's
    `~giantfm.metadata.ModelMetadata` (the contract the verbs read: truncation,
    label domain, chain, uncertainty scales, OOD calibration, the training record),
    and the SHA-256 of the weights it goes with (``weights_sha256``).
``weights.pt``
    the network's ``state_dict`` written by `torch.save`, read back with
    ``weights_only=True`` (plain tensors only: loading runs no pickled code).

`load_model` refuses a damaged folder with a
`~giantfm.exceptions.ModelFileError` that names the file and the cause: a file
cut short or corrupt, a configuration that lacks a part, weights whose
tensors do not fit the configuration, or weights that are not the ones the
configuration was saved with (its ``weights_sha256``; folders saved before
giantfm recorded it are checked by their tensors' names and shapes only).
`TrainedModel.save` writes the weights and then the configuration, each
atomically; a save that fails leaves the folder as it was (or no folder), and
one cut short between the two files leaves weights that `load_model` refuses.
"""
import contextlib
import json
import warnings
from concurrent.futures import as_completed
from pathlib import Path

import numpy as np
import torch

from .. import vocab
from ..exceptions import InvalidNameError, ModelFileError
from ..metadata import BUNDLED_MODEL_DIR, CONFIG_FILE, ModelMetadata
from ..tokens import TokenBatch
from ..utils import atomic_write
from ..utils._modelfiles import (DAMAGED_FIX, cause, damaged, file_sha256, folder_to_write,
                                 keep_previous, read_json, require_keys, saving_folder)
from ..utils._progress import progress_bar
from ..utils._threads import cpu_threads, thread_pool
from ..utils._version import package_version
from .device import select_device
from .network import ModelConfig, TokenSetTransformer
from .normalisation import Normalisation

__all__ = ["TrainedModel", "load_model", "BUNDLED_MODEL_DIR", "FORMAT_VERSION"]

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.pt"

# Stars per network call when the caller does not say: large enough to amortise the
# per-call overhead, small enough for the activations to stay in memory comfortably. On
# the CPU, small enough to stay in the cache: 64 stars ran the network 1.35x faster than
# 1024 (one thread, 2-core Xeon; 32 to 256 within 5 % of 64), whose 36 MB activations
# page-faulted on every call (benchmarks/bench_predict_options.py).
_DEFAULT_BATCH = {"cpu": 64, "cuda": 32768, "mps": 4096}
# TrainedModel.encode keeps whole batches on the device for a fine-tune: larger calls.
_ENCODE_BATCH = {"cpu": 1024, "cuda": 32768, "mps": 4096}
# CUDA's memory-efficient attention kernel (used with padding masks) launches one grid
# row per star: more than 65535 stars in a call fails with "invalid argument".
_CUDA_MAX_BATCH = 65535


class TrainedModel:
    """A `TokenSetTransformer` with the normalisation it was trained with.

    Parameters
    ----------
    network : `TokenSetTransformer`
    normalisation : `Normalisation`
    device : str or `torch.device`, optional
        See `select_device`; None picks CUDA when available, else the CPU.
    metadata : `~giantfm.metadata.ModelMetadata` or dict, optional
        What the model records about itself (a dict is read by
        `ModelMetadata.from_dict`).
    vocabulary : `giantfm.vocab.Vocabulary`, optional
        The names the network knows, one per row of its embedding tables:
        giantfm's (default), its first names (a model saved before names
        were appended), or giantfm's and then the model's own.
    vocab_version : int, optional
        The vocabulary version it was made with (default the current one).

    Attributes
    ----------
    device : `torch.device`
        Where the network runs.
    inference_dtype : `torch.dtype`
        bfloat16 autocast on CUDA (fast tensor cores), float32 elsewhere.
    path : `pathlib.Path` or None
        The folder the model was loaded from (files saved with it, such as its
        label model, live there); None for a model made in memory.
    tokens : `giantfm.vocab.Vocabulary`
        The token ids its batches are made with: giantfm's vocabulary, then
        the model's own tokens (for a model that has some). Tokens of
        giantfm's the model does not know are not read, and asking for them
        is refused by name.
    """

    def __init__(self, network, normalisation, device=None, metadata=None, vocabulary=None,
                 vocab_version=vocab.VOCAB_VERSION):
        self.network = network
        self.normalisation = normalisation
        self.metadata = metadata if isinstance(metadata, ModelMetadata) \
            else ModelMetadata.from_dict(metadata)
        self.vocabulary = vocab.VOCABULARY if vocabulary is None else vocabulary
        self.vocab_version = int(vocab_version)
        if len(self.vocabulary) != self.config.n_tokens:
            raise ValueError(f"the network has {self.config.n_tokens} token rows for a "
                             f"vocabulary of {len(self.vocabulary)}")
        n_base, extension = self.vocabulary.split()
        self.tokens = vocab.VOCABULARY.extended(extension) if extension else vocab.VOCABULARY
        # the network's row of each token id of `tokens` (-1: a name it does not know)
        self._rows = np.full(len(self.tokens), -1, dtype=np.int64)
        self._rows[:n_base] = np.arange(n_base)
        self._rows[vocab.N_TOKENS:] = n_base + np.arange(len(extension))
        self._identity = n_base == vocab.N_TOKENS
        self._input_lut = np.zeros(len(self.tokens), dtype=bool)
        known = self._rows >= 0
        self._input_lut[known] = np.isin(self._rows[known], self.config.input_ids)
        self.path = None
        self.device = None
        self.to(device)

    @property
    def config(self):
        """The network's `ModelConfig`."""
        return self.network.config

    @property
    def n_parameters(self):
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.network.parameters())

    @property
    def input_names(self):
        """Token names the encoder reads; other tokens in a batch are ignored as inputs."""
        return tuple(self.vocabulary.names[i] for i in self.config.input_ids)

    def knows(self, name):
        """Whether the network has the token ``name`` (a name of `tokens`)."""
        return name in self.tokens and self._rows[self.tokens.token_id(name)] >= 0

    def rows_of(self, names):
        """The network's rows of the tokens ``names``, refusing those it does not know."""
        rows = self._rows[self.tokens.token_ids(names)]
        unknown = [name for name, row in zip(names, rows) if row < 0]
        if unknown:
            raise InvalidNameError(
                f"this model ({self.metadata.name}, vocabulary version {self.vocab_version}) "
                f"does not know {unknown}: it was made before they existed; use a model "
                "trained with them (the bundled one)")
        return rows

    def to(self, device):
        """Move to ``device`` (see `select_device`); returns self."""
        self.device = select_device(device)
        self.network.to(self.device).eval()
        self._median = torch.as_tensor(self.normalisation.median, dtype=torch.float32,
                                       device=self.device)
        self._scale = torch.as_tensor(self.normalisation.scale, dtype=torch.float32,
                                      device=self.device)
        self.inference_dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        return self

    def __repr__(self):
        c = self.config
        return (f"<TrainedModel d_model={c.d_model} encoder={c.n_encoder_layers} "
                f"decoder={c.n_decoder_layers} params={self.n_parameters} device={self.device}>")

    # ------------------------------------------------------------------ inference
    def _prepare(self, batch):
        """The usable rows' input tokens, compacted and grouped by token count.

        Returns the rows' positions in ``batch``, their token ids, token-scale
        values and errors (padding where a token is not read) and their token counts.
        """
        if not isinstance(batch, TokenBatch):
            raise TypeError(f"expected a giantfm.tokens.TokenBatch, got {type(batch).__name__}")
        ids, values, errors = batch.ids, batch.values, batch.errors
        n_ids = len(self.tokens)
        if ids.size and (ids.min() < 0 or ids.max() >= n_ids):
            bad = np.argwhere((ids < 0) | (ids >= n_ids))[0]
            raise ValueError(f"row {bad[0]} has token id {ids[tuple(bad)]}, outside this "
                             f"model's vocabulary (0..{n_ids - 1})")
        ok = batch.ok
        rows = np.flatnonzero(ok)
        if len(rows) < len(ids):
            ids, values, errors = ids[rows], values[rows], errors[rows]
        keep = self._input_lut[ids]
        # Columns no star reads (high XP orders in fixed-layout inputs, padding) go first:
        # cheap, and often all the compaction needed.
        columns = keep.any(axis=0)
        if not columns.all():
            ids, values, errors, keep = (_take_columns(a, columns)
                                         for a in (ids, values, errors, keep))
        bad = keep & ~np.isfinite(values)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueError(f"row {rows[r]} has a non-finite value for token "
                             f"{self.tokens.names[ids[r, c]]!r}; absent tokens must be padding "
                             "(id 0)")
        counts = keep.sum(axis=1)
        if not counts.all():
            # stars with no token this model reads get no answer (NaN), not the prior
            read = counts > 0
            rows, ids, values, errors, keep, counts = (a[read] for a in (rows, ids, values,
                                                                         errors, keep, counts))
        if not keep.all():
            # Left-pack each row and sort the stars by token count, so that every network
            # call trims its padding and calls without padding run unmasked (faster).
            order = np.argsort(~keep, axis=1, kind="stable")
            ids = np.take_along_axis(np.where(keep, ids, vocab.PAD_ID), order, axis=1)
            values = np.take_along_axis(np.where(keep, values, 0), order, axis=1)
            errors = np.take_along_axis(np.where(keep, errors, 0), order, axis=1)
            by_count = np.argsort(counts, kind="stable")
            rows, ids, values, errors, counts = (
                a[by_count] for a in (rows, ids, values, errors, counts))
        if not self._identity:   # a model that knows fewer (or other) names than giantfm
            ids = self._rows[ids]
        return rows, ids, values, errors, counts

    def request(self, batch, names, batch_size=None, progress=None, embedding=False):
        """Ask the network for ``names`` given each star's tokens.

        The encoder runs once per star and all requests are answered from it;
        each answer is independent of the others asked.

        Parameters
        ----------
        batch : `giantfm.tokens.TokenBatch`
            The stars. Tokens the model does not read as inputs (see
            `input_names`) are ignored; rows that are not ``ok`` get NaN.
        names : list of str
            Token names to predict (any vocabulary name).
        batch_size : int, optional
            Stars per network call; default depends on the device. On a CUDA
            out-of-memory error the call is retried with half as many (with a warning).
        progress : bool or {'auto', 'on', 'off'}, optional
            A tqdm progress bar (when tqdm is installed): 'auto' shows it once
            the call has run 2 s. None: ``giantfm.conf.progress``.

        embedding : bool, optional
            Also return each star's embedding: the encoder output at the
            register token, float32 (n_stars, d_model), NaN where not predicted.

        Returns
        -------
        mean, std : float64 arrays (n_stars, len(names))
            Predicted means and standard deviations in token scale (see
            `giantfm.vocab`), in the input's row order. For a token of kind
            ``probability`` the mean is the probability and the standard
            deviation NaN (the probability says how uncertain it is).
        """
        if isinstance(names, str):
            names = [names]
        names = list(names)
        if not names:
            raise ValueError("names must list at least one token to predict")
        request_ids = self.rows_of(names)
        if np.any(request_ids == vocab.PAD_ID):
            raise ValueError("'[pad]' cannot be requested")
        if batch_size is None:
            batch_size = _DEFAULT_BATCH.get(self.device.type, 1024)
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        batch_size = int(batch_size)
        if self.device.type == "cuda":
            batch_size = min(batch_size, _CUDA_MAX_BATCH)

        n, k = len(batch), len(names)
        mean = np.full((n, k), np.nan)
        std = np.full((n, k), np.nan)
        embedded = np.full((n, self.config.d_model), np.nan, dtype=np.float32)
        rows, ids, values, errors, counts = self._prepare(batch)
        if len(rows) == 0:
            return (mean, std, embedded) if embedding else (mean, std)

        bar = progress_bar(len(rows), progress=progress, unit="star", desc="giantfm")
        req = torch.as_tensor(request_ids, device=self.device)
        out_mean = np.empty((len(rows), k), dtype=np.float32)
        out_logvar = np.empty((len(rows), k), dtype=np.float32)
        out_embedding = np.empty((len(rows), self.config.d_model), dtype=np.float32) \
            if embedding else None

        def answer_rows(start, stop):
            """Run the network on the prepared rows start:stop; answers into the outputs."""
            width = max(int(counts[start:stop].max()), 1)
            ids_t, val_t, err_t = self._network_inputs(ids, values, errors, start, stop, width)
            outputs = self.network(ids_t, val_t, req.expand(stop - start, k), err_t,
                                   embedding=embedding)
            out_mean[start:stop] = outputs[0].float().cpu().numpy()
            out_logvar[start:stop] = outputs[1].float().cpu().numpy()
            if embedding:
                out_embedding[start:stop] = outputs[2].float().cpu().numpy()

        try:
            if self.device.type == "cpu":
                self._answer_on_cpu_threads(answer_rows, len(rows), batch_size, bar)
            else:
                self._answer_on_device(answer_rows, len(rows), batch_size, bar)
        finally:
            if bar is not None:
                bar.close()
        m, s = self.normalisation.destandardise(
            request_ids[None, :], out_mean, np.exp(0.5 * out_logvar.astype(np.float64)))
        probability = np.isin(request_ids, self.vocabulary.probability_ids)
        if probability.any():   # their mean is the log-odds (training: cross-entropy)
            m[:, probability] = 1.0 / (1.0 + np.exp(-m[:, probability]))
            s[:, probability] = np.nan
        mean[rows], std[rows] = m, s
        if not embedding:
            return mean, std
        embedded[rows] = out_embedding
        return mean, std, embedded

    @contextlib.contextmanager
    def _inference(self):
        """The context every network call runs in: inference mode and the device's
        autocast (both thread-local: entered by each thread that runs the network)."""
        with torch.inference_mode(), torch.autocast(
                self.device.type, dtype=self.inference_dtype,
                enabled=self.inference_dtype != torch.float32):
            yield

    def _answer_on_device(self, answer_rows, n, batch_size, bar):
        """``answer_rows`` over ``n`` rows in calls of ``batch_size`` rows, in this thread; on
        a CUDA out-of-memory error a call is retried with half as many rows."""
        start = 0
        with self._inference():
            while start < n:
                stop = min(start + batch_size, n)
                try:
                    answer_rows(start, stop)
                    out_of_memory = False
                except torch.OutOfMemoryError:
                    if batch_size == 1:
                        raise
                    out_of_memory = True
                if out_of_memory:   # outside the handler: its traceback no longer holds the
                    batch_size = max(batch_size // 2, 1)   # failed call's tensors
                    torch.cuda.empty_cache()
                    warnings.warn(f"out of memory on {self.device}; retrying with "
                                  f"batch_size={batch_size}", RuntimeWarning, stacklevel=3)
                    continue
                if bar is not None:
                    bar.update(stop - start)
                start = stop

    def _answer_on_cpu_threads(self, answer_rows, n, batch_size, bar):
        """``answer_rows`` over ``n`` rows in calls of ``batch_size`` rows, spread over
        `~giantfm.utils._threads.cpu_threads` threads that each run torch on one core.

        Calls of a few dozen stars are too small for torch's own threads: their
        fork and join at every operation cost more than they gain, and on a busy
        machine, where one thread waits for the other at each, far more (at 64 stars
        a call, two torch threads ran 4x slower than one at load 6 on 2 cores). Whole
        calls on separate threads share nothing but the outputs they fill (torch
        releases the GIL while it computes). The answers are those of one thread,
        bit for bit.
        """
        pool = _cpu_pool(cpu_threads())

        def run(start, stop):
            with self._inference():
                answer_rows(start, stop)
            return stop - start

        futures = [pool.submit(run, start, min(start + batch_size, n))
                   for start in range(0, n, batch_size)]
        try:
            for future in as_completed(futures):
                done = future.result()
                if bar is not None:
                    bar.update(done)
        finally:
            for future in futures:
                future.cancel()

    @torch.no_grad()
    def encode(self, batch, batch_size=None):
        """The encoder's output for every usable star of ``batch``, padded to one width.

        What a frozen encoder gives a fine-tune (`giantfm.model.adaptation`),
        computed once instead of at every step.

        Returns
        -------
        rows : int array (m,)
            The stars' positions in ``batch`` (those that get answers from `request`).
        memory : float32 Tensor (m, W + 1, d_model)
            The encoder output (the register first), on the model's device.
        mask : bool Tensor (m, 1, 1, W + 1)
            True where attention may go (real tokens and the register).
        """
        rows, ids, values, errors, counts = self._prepare(batch)
        width = max(int(counts.max(initial=0)), 1)
        batch_size = batch_size or _ENCODE_BATCH.get(self.device.type, 1024)
        memory = torch.zeros((len(rows), width + 1, self.config.d_model), device=self.device)
        mask = torch.ones((len(rows), 1, 1, width + 1), dtype=torch.bool, device=self.device)
        for start in range(0, len(rows), batch_size):
            stop = min(start + batch_size, len(rows))
            # the rows are left-packed, so `width` (the most tokens of any) columns hold all
            ids_t, val_t, err_t = self._network_inputs(ids, values, errors, start, stop, width)
            memory[start:stop], _ = self.network.encode(ids_t, val_t, err_t)
            mask[start:stop, 0, 0, 1:] = ids_t != vocab.PAD_ID
        return rows, memory, mask

    def _network_inputs(self, ids, values, errors, start, stop, width):
        """The network's inputs for the prepared rows ``start:stop`` (their first ``width``
        tokens) on the device: ids, standardised values and errors (None for a network
        without error inputs). Padding stays 0: its median is 0 and its scale 1."""
        ids_t = torch.as_tensor(ids[start:stop, :width]).to(self.device).long()
        val_t = torch.as_tensor(values[start:stop, :width]).to(self.device)
        val_t = (val_t - self._median[ids_t]) / self._scale[ids_t]
        err_t = (torch.as_tensor(errors[start:stop, :width]).to(self.device)
                 / self._scale[ids_t]) if self.config.error_inputs else None
        return ids_t, val_t, err_t

    # ------------------------------------------------------------------ persistence
    def save(self, path, half=False, metadata=None):
        """Write the model to the folder ``path`` (created if needed; files replaced atomically).

        The folder ends with the whole new model or, if the save fails, as it
        was before (a folder the save made is removed): see the module
        docstring.

        Parameters
        ----------
        path : str or path-like
            A folder, new or holding a model to replace.
        half : bool
            Store the weights as float16 (half the size). The in-memory weights
            are rounded to float16 first, so this model and the reloaded one
            predict identically.
        metadata : `~giantfm.metadata.ModelMetadata`, optional
            Saved instead of the model's own ``metadata`` (which is left as it
            is, so that one save's extras do not reach the next).

        Raises
        ------
        ~giantfm.exceptions.ModelFileError
            ``path`` (or a folder above it) is a file.
        OSError
            A write failed (a full disk, no permission); the message says so
            plainly, and the folder is left as it was.
        """
        path = folder_to_write(path)
        state = {}
        with torch.no_grad():
            for key, tensor in self.network.state_dict().items():
                if half and tensor.is_floating_point():
                    tensor.copy_(tensor.half().float())
                    state[key] = tensor.detach().half().cpu()
                else:
                    state[key] = tensor.detach().cpu().clone()
        _, extension = self.vocabulary.split()
        config = {
            "format": "giantfm-model", "format_version": FORMAT_VERSION,
            "giantfm_version": package_version(),
            "vocab_version": self.vocab_version, "vocab_names": list(self.vocabulary.names),
            "vocab_extension": [vocab.token_to_dict(t) for t in extension],
            "model_config": self.config.to_dict(),
            "normalisation": self.normalisation.to_dict(),
            "weights_dtype": "float16" if half else "float32",
            "metadata": (self.metadata if metadata is None else metadata).to_dict(),
        }
        digest = {}

        def write_weights(tmp):
            torch.save(state, tmp)
            digest["weights_sha256"] = file_sha256(tmp)

        def write_json(tmp):
            with open(tmp, "w") as f:
                json.dump({**config, **digest}, f, indent=1, allow_nan=False)
        # Two files cannot be replaced at once: the weights go first and the configuration,
        # which records their digest, last; a failure puts the previous weights back.
        with saving_folder(path), keep_previous(path / WEIGHTS_FILE):
            path.mkdir(parents=True, exist_ok=True)
            atomic_write(path / WEIGHTS_FILE, write_weights)
            atomic_write(path / CONFIG_FILE, write_json)
        return path


def _one_torch_thread():
    torch.set_num_threads(1)
    torch.get_num_threads()   # this thread takes its setting now, not at its first operation


def _cpu_pool(threads):
    """The pool of ``threads`` threads that run the network on the CPU, each with torch's
    own threads set to one.

    torch's thread count is set per thread, and a new thread takes the
    process-wide value at its first operation: the pool's threads are all
    started, and set to one, as it is made, and the process-wide value is then
    put back, so that the caller's threads keep theirs.
    """
    previous = torch.get_num_threads()
    try:
        return thread_pool(threads, "giantfm-network", initializer=_one_torch_thread)
    finally:
        torch.set_num_threads(previous)


def _take_columns(array, columns):
    """``array[:, columns]`` for a boolean ``columns``, copied as contiguous runs
    (measured ~10x faster than fancy indexing for the few runs real layouts have)."""
    edges = np.flatnonzero(np.diff(np.r_[0, columns.astype(np.int8), 0]))
    if not len(edges):  # no column kept (no usable star, or no token the model reads)
        return array[:, :0]
    return np.concatenate([array[:, a:b] for a, b in zip(edges[::2], edges[1::2])], axis=1)


def _read_config(path):
    try:
        config = read_json(path / CONFIG_FILE)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is not a saved giantfm model: no {CONFIG_FILE}") from None
    if config.get("format") != "giantfm-model":
        raise ValueError(f"{path / CONFIG_FILE} is not a giantfm model configuration")
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} was saved in model format {config.get('format_version')}; "
                         f"this giantfm ({package_version()}) reads format {FORMAT_VERSION}")
    require_keys(config, ("vocab_version", "vocab_names", "model_config", "normalisation"),
                 path / CONFIG_FILE)
    refused = ValueError(
        f"{path} was trained with vocabulary version {config.get('vocab_version')} "
        f"({len(config.get('vocab_names') or [])} tokens) by giantfm "
        f"{config.get('giantfm_version')}; this giantfm ({package_version()}) reads models of "
        f"vocabulary versions {', '.join(map(str, vocab.COMPATIBLE_VERSIONS))} (now "
        f"{vocab.VOCAB_VERSION}, {vocab.N_TOKENS} tokens). Use a model trained with one of "
        "them, or the giantfm version the model was made with")
    if config.get("vocab_version") not in vocab.COMPATIBLE_VERSIONS:
        raise refused
    names = list(config.get("vocab_names") or [])
    extension = [vocab.token_from_dict(d) for d in config.get("vocab_extension", [])]
    n_base = len(names) - len(extension)
    if names[:n_base] != list(vocab.NAMES[:n_base]) or \
            names[n_base:] != [t.name for t in extension]:
        raise refused
    config["vocabulary"] = vocab.Vocabulary(vocab.VOCABULARY.tokens[:n_base] + tuple(extension))
    return config


def load_model(path_or_name=None, device=None):
    """Load a saved model.

    Parameters
    ----------
    path_or_name : str or path-like, optional
        The folder written by `TrainedModel.save`. None or ``'bundled'``: the
        model shipped with giantfm (``giantfm/data/model``).
    device : str or `torch.device`, optional
        See `select_device`: None picks CUDA when available, else the CPU.
        The device used is the returned model's ``device`` attribute.

    Returns
    -------
    `TrainedModel`

    Raises
    ------
    FileNotFoundError
        No saved model there.
    ~giantfm.exceptions.ModelFileError
        A damaged folder (see the module docstring); the message names the
        file and the cause.
    ValueError
        A model of a format or vocabulary this giantfm does not read.
    """
    if path_or_name is None or path_or_name == "bundled":
        path = Path(BUNDLED_MODEL_DIR)  # a folder on disk: torch.load reads a real file
        if not (path / CONFIG_FILE).exists():
            raise FileNotFoundError(
                f"no bundled model in {path}: this giantfm installation ships without trained "
                "weights; train one (giantfm train) and pass its folder")
    else:
        path = Path(path_or_name)
        if not path.exists():
            raise FileNotFoundError(f"no saved model at {path}")
        if not path.is_dir():
            hint = f" ({path.parent})" if path.name in (CONFIG_FILE, WEIGHTS_FILE) else ""
            raise ModelFileError(f"{path} is a file, not a model folder: give the folder that "
                                 f"holds {CONFIG_FILE} and {WEIGHTS_FILE}{hint}")
    dev = select_device(device)
    config = _read_config(path)
    config_file = path / CONFIG_FILE
    vocabulary = config["vocabulary"]
    try:  # the parts of the configuration, each refusing what it cannot hold
        network = TokenSetTransformer(ModelConfig.from_dict(config["model_config"]))
        normalisation = Normalisation.from_dict(config["normalisation"], vocabulary.names)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFileError(f"{config_file} does not describe a network giantfm can build "
                             f"({type(exc).__name__}: {exc}); {DAMAGED_FIX}") from None
    network.load_state_dict(_read_weights(path / WEIGHTS_FILE, network, config, config_file))
    try:
        model = TrainedModel(network, normalisation, device=dev, metadata=config.get("metadata"),
                             vocabulary=vocabulary, vocab_version=config["vocab_version"])
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{config_file} does not describe one model ({exc}); "
                             f"{DAMAGED_FIX}") from None
    model.path = path
    return model


def _read_weights(path, network, config, config_file):
    """The tensors in ``path`` as float32, checked against ``network`` and the digest the
    configuration recorded; a damaged or mismatched file is refused by name."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise ModelFileError(f"{path.parent} holds {CONFIG_FILE} but no {WEIGHTS_FILE} (a "
                                 f"save cut short, or a folder copied in part); "
                                 f"{DAMAGED_FIX}") from None
        except Exception as exc:  # torch says a damaged file with many types (RuntimeError, ...)
            # the weights-only unpickler's own reason follows a paragraph of advice
            detail = str(exc).partition("WeightsUnpickler error:")[2].strip().split("\n")[0]
            raise damaged(path, "a readable torch file",
                          cause(exc, detail or None)) from None
    for w in caught:  # torch's notes about a file it could read, said again
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise ModelFileError(f"{path} holds a {type(state).__name__}, not a network's tensors "
                             f"by name; {DAMAGED_FIX}")
    expected = network.state_dict()
    problems = []
    missing = [key for key in expected if key not in state]
    extra = [key for key in state if key not in expected]
    shapes = [f"{key} is {tuple(state[key].shape)}, not {tuple(tensor.shape)}"
              for key, tensor in expected.items()
              if key in state and state[key].shape != tensor.shape]
    for what, keys in (("missing tensors", missing), ("tensors it should not have", extra),
                       ("wrong shapes", shapes)):
        if keys:
            problems.append(f"{what}: {', '.join(keys[:3])}"
                            + (f" and {len(keys) - 3} more" if len(keys) > 3 else ""))
    if problems:
        raise ModelFileError(f"{path} does not fit the network {config_file} describes "
                             f"({'; '.join(problems)}): the two files are of different "
                             "models; copy the model folder again (both files from one save) "
                             "or re-save the model")
    recorded = config.get("weights_sha256")
    if recorded is not None and file_sha256(path) != recorded:
        raise ModelFileError(f"{path} is not the weights {config_file} was saved with (its "
                             "SHA-256 differs from the one recorded there): a save was cut "
                             "short between the two files, or files of two models were mixed; "
                             "re-save the model or copy its folder again")
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
