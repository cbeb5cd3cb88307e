"""Training the token-set transformer (the same call on a CPU and on one GPU).

Every step shows each star of the batch a random subset of its tokens and asks
for one or more of its tokens (Leung & Bovy 2024):

- targets: ``n_targets`` distinct tokens the star has, drawn with per-token
  weights (label tokens are up-weighted by default: a star has ~115 XP and
  colour tokens but only a few labels, and uniform draws would starve them);
- generation stars: a fraction ``p_generation`` of the stars shows only its
  condition tokens (labels and A_K, `GENERATION_CONDITIONS`) and is asked for
  XP coefficients only -- the labels -> spectrum case of
  `giantfm.generate_spectrum`, which random subsets of ~120 tokens almost
  never produce (a model trained without it generated spectra 2x worse than
  the XGBoost labels -> coefficients baseline);
- inputs: the star's input tokens (`ModelConfig.input_ids`), with all its label
  tokens hidden for a fraction ``p_hide_labels`` of the other stars (the spectrum ->
  labels case users want), each target hidden unless a coin with probability
  ``p_target_visible`` says otherwise (so "identity" requests are learned but
  do not dominate), shuffled, cropped to the context length, and cut to a
  random length between ``min_input_tokens`` and what is left;
- loss: Gaussian negative log-likelihood with the target's own error added in
  quadrature, ``0.5 * ((y - mu)^2 / (s^2 + e^2) + ln(s^2 + e^2))``, all in
  standardised units; for a target of kind ``probability`` (``p_rc``) the
  cross-entropy of the answer's log-odds against the (soft) target, less the
  target's own entropy (`bernoulli_kl`: 0 for a perfect answer, like the
  Gaussian term's scale).

Stars with different token sets (XP only, labels only, both) share a batch;
the sampling is done on the device with vectorised torch ops (random keys plus
top-k), with no per-star Python loop, so a GPU is not starved.

The command line is ``giantfm train`` (`giantfm.train.trainer`).
"""
import csv
import dataclasses
import io
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .. import vocab
from ..metadata import ModelMetadata
from ..tokens import TokenBatch
from ..utils import atomic_write
from .core import TrainedModel
from .device import select_device
from .loop import LoopSettings, RunClock, cosine_schedule, read_checkpoint, run_epochs
from .network import ModelConfig, TokenSetTransformer, dataclass_from_dict
from .normalisation import Normalisation

__all__ = ["TrainConfig", "TokenSampler", "train", "gaussian_nll", "bernoulli_kl"]

#: Default up-weighting of the label tokens as training targets (see the module docstring).
LABEL_TARGET_WEIGHT = 20.0
#: The inputs of generation stars (see the module docstring).
GENERATION_CONDITIONS = vocab.LABEL_NAMES + ("a_k",)


@dataclasses.dataclass
class TrainConfig:
    """Optimisation and sampling settings (saved with the model's metadata).

    Parameters
    ----------
    epochs : int
        Most passes over the training set.
    batch_size : int
        Stars per step.
    learning_rate, min_learning_rate_ratio : float
        AdamW peak learning rate; the cosine schedule ends at peak * ratio.
    warmup_steps : int
        Linear warm-up (capped at a tenth of all steps).
    weight_decay : float
        AdamW decoupled weight decay (matrices only; not biases or norms).
    grad_clip : float
        Gradient-norm clipping threshold.
    patience : int
        Stop after this many epochs without a better validation ``monitor``.
    monitor : str
        ``'val_loss'`` (the training objective on validation stars, fixed
        random subsets) or ``'val_label_loss'`` (labels from all other inputs).
    n_targets : int
        Targets per star and step.
    min_input_tokens : int
        Fewest input tokens a star is cut down to (when it has that many).
    p_hide_labels : float
        Probability that a star shows none of its label tokens as inputs.
    p_target_visible : float
        Probability that a target may also appear among the inputs.
    p_generation : float
        Probability that a star is a generation star: condition tokens in, XP
        coefficients out.
    target_weights : dict, optional
        ``{token name: weight}`` for drawing targets; tokens not named weigh 1,
        label tokens (`giantfm.vocab.LABEL_NAMES`) weigh ``LABEL_TARGET_WEIGHT``
        unless named. A weight of 0 never makes a token a target.
    probability_loss_weight : float
        Factor on the loss of a target of kind ``probability`` (``p_rc``). Its
        cross-entropy's gradient is at most 1 per star, while a Gaussian
        label answered to a small fraction of its spread gives gradients
        ~1/sigma; at 1, fine-tuning giantfm-default-v3 for 16 epochs left the
        ``p_rc`` validation loss (0.44) barely below that of a constant answer
        (0.49).
    seed : int
        Seeds initialisation and sampling: runs on the CPU repeat exactly
        (with ``dropout > 0`` also seed torch's global generator).
    bf16 : bool
        bfloat16 autocast on CUDA (ignored elsewhere).
    progress : bool or {'auto', 'on', 'off'}, optional
        A progress bar over the epochs (`giantfm.predict`'s rules; None:
        ``giantfm.conf.progress``).
    max_minutes : float, optional
        Stop cleanly (checkpoints written) after this much wall time.
    steps_per_epoch : int, optional
        Steps per epoch; default one pass over the training stars.
    """

    epochs: int = 100
    batch_size: int = 512
    learning_rate: float = 1e-3
    min_learning_rate_ratio: float = 0.02
    warmup_steps: int = 500
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    patience: int = 10
    monitor: str = "val_loss"
    n_targets: int = 4
    min_input_tokens: int = 4
    p_hide_labels: float = 0.5
    p_target_visible: float = 0.25
    p_generation: float = 0.2
    target_weights: dict = None
    probability_loss_weight: float = 10.0
    seed: int = 0
    bf16: bool = True
    progress: object = None
    max_minutes: float = None
    steps_per_epoch: int = None

    def __post_init__(self):
        for name in ("epochs", "batch_size", "n_targets", "min_input_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}")
        for name in ("warmup_steps", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"TrainConfig.{name} must be an integer >= 0, got {value!r}")
        for name in ("learning_rate", "grad_clip", "probability_loss_weight"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TrainConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("p_hide_labels", "p_target_visible", "p_generation",
                     "min_learning_rate_ratio"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"TrainConfig.{name} must be in [0, 1], "
                                 f"got {getattr(self, name)!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.monitor not in ("val_loss", "val_label_loss"):
            raise ValueError(f"TrainConfig.monitor must be 'val_loss' or 'val_label_loss', "
                             f"got {self.monitor!r}")
        if self.steps_per_epoch is not None and (not isinstance(self.steps_per_epoch, int)
                                                 or self.steps_per_epoch < 1):
            raise ValueError("TrainConfig.steps_per_epoch must be a positive integer or None")
        for name, weight in (self.target_weights or {}).items():
            vocab.token_id(name)
            if not (np.isfinite(weight) and weight >= 0):
                raise ValueError(f"target weight of {name!r} must be finite and >= 0, "
                                 f"got {weight!r}")

    def weight_table(self, n_tokens=vocab.N_TOKENS):
        """Target-drawing weight of every token id of a vocabulary of ``n_tokens``
        (float array, padding 0)."""
        weights = np.ones(n_tokens)
        weights[vocab.token_ids(vocab.LABEL_NAMES)] = LABEL_TARGET_WEIGHT
        for name, weight in (self.target_weights or {}).items():
            weights[vocab.token_id(name)] = weight
        weights[vocab.PAD_ID] = 0.0
        return weights

    @classmethod
    def from_dict(cls, d):
        """Build from a dict; unknown keys are refused by name."""
        return dataclass_from_dict(cls, d)


def gaussian_nll(mean, log_var, target, target_error):
    """Per-element Gaussian NLL with the target error in quadrature (no 0.5 ln 2 pi)."""
    var = torch.exp(log_var) + target_error ** 2
    return 0.5 * ((target - mean) ** 2 / var + torch.log(var))


def bernoulli_kl(logit, target):
    """Per-element cross-entropy of log-odds ``logit`` against probabilities ``target`` in
    [0, 1], less the target's entropy: the KL divergence, 0 when the answer is the target."""
    target = target.clamp(0.0, 1.0)
    entropy = -(torch.xlogy(target, target) + torch.xlogy(1 - target, 1 - target))
    return F.binary_cross_entropy_with_logits(logit, target, reduction="none") - entropy


def target_loss(mean, log_var, target, target_error, probability):
    """Per-element loss: `bernoulli_kl` where ``probability`` (a bool tensor), else
    `gaussian_nll`."""
    gaussian = gaussian_nll(mean, log_var, target, target_error)
    if not bool(probability.any()):
        return gaussian
    return torch.where(probability, bernoulli_kl(mean, target), gaussian)


class TokenSampler:
    """Draws (inputs, targets) for a batch of stars, on the device, with torch ops only.

    Parameters
    ----------
    ids, values, errors : Tensor (N, L)
        Token ids (padding 0, anywhere) and standardised values and errors.
    model_config : `ModelConfig`
    train_config : `TrainConfig`
    """

    def __init__(self, ids, values, errors, model_config, train_config,
                 vocabulary=vocab.VOCABULARY):
        device = ids.device
        self.ids, self.values, self.errors = ids, values, errors
        self.context_length = model_config.context_length
        self.cfg = train_config
        n = model_config.n_tokens

        def lut_of(token_ids):
            lut = torch.zeros(n, dtype=torch.bool)
            lut[token_ids] = True
            return lut.to(device)
        self.input_lut = lut_of(model_config.input_ids)
        # a model's own labels (beyond giantfm's) are labels too
        own = np.arange(vocab.N_TOKENS, len(vocabulary))
        self.label_lut = lut_of(np.r_[vocab.token_ids(vocab.LABEL_NAMES), own])
        self.condition_lut = lut_of(vocab.token_ids(GENERATION_CONDITIONS))
        self.probability_lut = lut_of(vocabulary.probability_ids)
        weights = torch.as_tensor(train_config.weight_table(n), dtype=torch.float32)
        if own.size:
            weights[own] = LABEL_TARGET_WEIGHT
        self.log_weight_lut = torch.log(weights).to(device)
        xp_weights = torch.zeros(n)
        xp_weights[np.concatenate([vocab.BP_IDS, vocab.RP_IDS])] = 1.0
        self.log_xp_weight_lut = torch.log(xp_weights).to(device)

    def __len__(self):
        return len(self.ids)

    def sample(self, index, generator):
        """Inputs and targets for the stars ``index`` (a LongTensor on the device).

        Returns
        -------
        dict with ``input_ids``, ``input_values``, ``input_errors`` (B, C),
        ``target_ids``, ``target_values``, ``target_errors``, ``target_valid`` and
        ``target_probability`` (B, T; True for targets of kind ``probability``).
        """
        return self.sample_arrays(self.ids[index], self.values[index], self.errors[index],
                                  generator)

    def sample_arrays(self, ids, values, errors, generator):
        """`sample` for stars given as standardised (B, L) tensors (e.g. augmented copies)."""
        cfg = self.cfg
        n, length = ids.shape
        device = ids.device

        def uniform(*shape):
            return torch.rand(shape, generator=generator, device=device)

        present = ids != vocab.PAD_ID
        generate = uniform(n, 1) < cfg.p_generation
        # Targets: weighted draw without replacement by Gumbel top-k (XP only for
        # generation stars).
        n_targets = min(cfg.n_targets, length)
        gumbel = -torch.log(-torch.log(uniform(n, length).clamp_min(1e-12)))
        keys = torch.where(generate, self.log_xp_weight_lut[ids], self.log_weight_lut[ids]) \
            + gumbel
        keys = keys.masked_fill(~present, -math.inf)
        top, target_pos = keys.topk(n_targets, dim=1)
        target_valid = torch.isfinite(top)
        target_ids = torch.where(target_valid, ids.gather(1, target_pos), vocab.PAD_ID)
        target_values = values.gather(1, target_pos)
        target_errors = errors.gather(1, target_pos)

        # Inputs: the star's input tokens, labels hidden for some stars, targets hidden
        # unless visible by chance.
        allowed = present & self.input_lut[ids]
        allowed &= ~generate | self.condition_lut[ids]
        hide_labels = (uniform(n, 1) < cfg.p_hide_labels) & ~generate
        allowed &= ~(hide_labels & self.label_lut[ids])
        hide_target = target_valid & (uniform(n, n_targets) >= cfg.p_target_visible)
        allowed.scatter_(1, target_pos, allowed.gather(1, target_pos) & ~hide_target)

        # Shuffle (random keys, allowed tokens first), crop to the context, cut to a random length.
        context = min(self.context_length, length)
        order_keys = torch.where(allowed, uniform(n, length), 2.0)
        _, chosen = order_keys.topk(context, dim=1, largest=False, sorted=True)
        available = allowed.sum(dim=1).clamp(max=context)
        shortest = available.clamp(max=cfg.min_input_tokens)
        n_keep = shortest + (uniform(n) * (available - shortest + 1)).long().clamp(
            max=available - shortest)
        width = max(int(n_keep.max()), 1)
        chosen = chosen[:, :width]
        keep = torch.arange(width, device=device)[None, :] < n_keep[:, None]
        input_ids = torch.where(keep, ids.gather(1, chosen), vocab.PAD_ID)
        input_values = torch.where(keep, values.gather(1, chosen), 0.0)
        input_errors = torch.where(keep, errors.gather(1, chosen), 0.0)
        return {"input_ids": input_ids, "input_values": input_values,
                "input_errors": input_errors,
                "target_ids": target_ids, "target_values": target_values,
                "target_errors": target_errors, "target_valid": target_valid,
                "target_probability": self.probability_lut[target_ids]}


def _as_arrays(data, what, n_tokens=vocab.N_TOKENS):
    """(ids, values, errors) of the stars with tokens, and their rows in ``data``."""
    if isinstance(data, TokenBatch):
        ok = np.flatnonzero(data.ok)
        return (data.ids[ok], data.values[ok], data.errors[ok]), ok
    try:
        ids, values, errors = data
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a TokenBatch or an (ids, values, errors) tuple") from None
    ids, values, errors = np.asarray(ids), np.asarray(values), np.asarray(errors)
    if ids.ndim != 2 or ids.shape != values.shape or ids.shape != errors.shape:
        raise ValueError(f"{what}: ids, values and errors must be 2-D arrays of one shape, got "
                         f"{ids.shape}, {values.shape}, {errors.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= n_tokens):
        raise ValueError(f"{what}: token ids must be in 0..{n_tokens - 1}")
    present = ids != vocab.PAD_ID
    bad = present & ~(np.isfinite(values) & np.isfinite(errors))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"{what}: row {r} token {vocab.NAMES[ids[r, c]]!r} has a non-finite "
                         "value or error")
    keep = np.flatnonzero(present.any(axis=1))
    return (ids[keep], values[keep], errors[keep]), keep


def _to_device(ids, values, errors, normalisation, device):
    v, e = normalisation.standardise(ids, values, errors)
    return (torch.as_tensor(ids.astype(np.int64), device=device),
            torch.as_tensor(v, device=device), torch.as_tensor(e, device=device))


def _autocast(device, cfg):
    return torch.autocast(device.type, dtype=torch.bfloat16,
                          enabled=device.type == "cuda" and cfg.bf16)


def _loss(network, batch, device, cfg):
    with _autocast(device, cfg):
        mean, log_var = network(batch["input_ids"], batch["input_values"], batch["target_ids"],
                                batch["input_errors"])
    probability = batch["target_probability"]
    nll = target_loss(mean.float(), log_var.float(), batch["target_values"],
                      batch["target_errors"], probability)
    if cfg.probability_loss_weight != 1:
        nll = torch.where(probability, cfg.probability_loss_weight * nll, nll)
    valid = batch["target_valid"]
    count = valid.sum()
    return torch.where(valid, nll, 0.0).sum() / count.clamp_min(1), count


@torch.no_grad()
def _evaluate(network, sampler, cfg, device, seed):
    """Validation metrics: the training objective on fixed random subsets, and labels
    from all other inputs (per label and overall)."""
    network.eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    total, count = 0.0, 0
    label_ids = torch.as_tensor(vocab.token_ids(vocab.LABEL_NAMES), device=device)
    label_sum = torch.zeros(len(label_ids), device=device)
    label_count = torch.zeros(len(label_ids), device=device)
    batch_size = 4 * cfg.batch_size
    for start in range(0, len(sampler), batch_size):
        index = torch.arange(start, min(start + batch_size, len(sampler)), device=device)
        loss, n = _loss(network, sampler.sample(index, generator), device, cfg)
        total += float(loss) * int(n)
        count += int(n)
        # labels from everything else the star shows
        ids, values, errors = sampler.ids[index], sampler.values[index], sampler.errors[index]
        inputs = sampler.input_lut[ids] & ~sampler.label_lut[ids]
        hit = ids[:, None, :] == label_ids[None, :, None]          # (B, n_labels, L)
        has = hit.any(dim=2)
        pos = hit.float().argmax(dim=2)
        if not has.any():
            continue
        with _autocast(device, cfg):
            mean, log_var = network(torch.where(inputs, ids, vocab.PAD_ID),
                                    torch.where(inputs, values, 0.0),
                                    label_ids.expand(len(index), -1),
                                    torch.where(inputs, errors, 0.0))
        nll = target_loss(mean.float(), log_var.float(), values.gather(1, pos),
                          errors.gather(1, pos),
                          sampler.probability_lut[label_ids].expand(len(index), -1))
        label_sum += torch.where(has, nll, 0.0).sum(dim=0)
        label_count += has.sum(dim=0)
    network.train()
    metrics = {"val_loss": total / max(count, 1)}
    per_label = (label_sum / label_count.clamp_min(1)).tolist()
    seen = label_count.cpu().numpy() > 0
    metrics["val_label_loss"] = (float((label_sum.sum() / label_count.sum()).item())
                                 if seen.any() else float("nan"))
    for name, value, ok in zip(vocab.LABEL_NAMES, per_label, seen):
        metrics[f"val_nll_{name}"] = value if ok else float("nan")
    return metrics


def _write_metrics(path, rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    text = buffer.getvalue()

    def write(tmp):
        Path(tmp).write_text(text)
    atomic_write(path, write)


def train(train_batch, val_batch, model_config=None, train_config=None, out_dir=None,
          device=None, start_from=None, augment=None, resume=False, stop_after_minutes=None,
          vocabulary=None):
    """Train a model and return the best one (lowest validation ``monitor``).

    Parameters
    ----------
    train_batch, val_batch : `giantfm.tokens.TokenBatch` or (ids, values, errors)
        Training and validation stars in token scale (rows without tokens, or
        not ``ok``, are left out). The normalisation is computed from ``train_batch``.
    model_config : `ModelConfig`, optional
        Network sizes (default: ``ModelConfig()``).
    train_config : `TrainConfig`, optional
        Optimisation settings (default: ``TrainConfig()``).
    out_dir : path-like, optional
        Where ``best/``, ``last/``, ``metrics.csv`` and the checkpoint
        (`giantfm.model.loop.CHECKPOINT_FILE`) are written (created if needed);
        None writes nothing.
    device : str or `torch.device`, optional
        See `giantfm.model.select_device`.
    start_from : path-like, optional
        A saved model to continue training (a warm start, as the bundled model is
        trained: not `giantfm.finetune`, which teaches a frozen encoder new labels): its
        weights replace the random initialisation and its sizes ``model_config``,
        except that a ``model_config`` which only adds error inputs to it is kept, the
        new weights starting at zero (the same network as the saved one); the
        normalisation is still computed from ``train_batch``. A model that knows fewer
        names than ``vocabulary`` (made before names were appended to giantfm's) learns
        the new ones from new rows (`TokenSetTransformer.with_tokens`), answering its
        old ones as before.
    augment : callable, optional
        ``augment(rows, rng) -> TokenBatch``: the training stars ``rows``
        (positions in ``train_batch``) as the network should see them at this
        step, in token scale -- e.g. faint copies with realistic noise
        (`giantfm.train.dataset.augment.FaintCopies`). ``rng`` is a
        `numpy.random.Generator` seeded from ``TrainConfig.seed`` (and saved in
        checkpoints). None: the stars as given.
    resume : bool, optional
        Continue the run in ``out_dir`` from its checkpoint (written after
        every epoch): weights, optimiser, learning-rate schedule, random
        states, the best model and the metrics so far, so that one run can
        span several sittings. The configurations must be those of the run.
    stop_after_minutes : float, optional
        End this sitting cleanly after the first epoch that passes this much
        wall time (the run continues with ``resume``); unlike
        ``TrainConfig.max_minutes`` it does not end the run or shape the schedule.
    vocabulary : `giantfm.vocab.Vocabulary`, optional
        The names the network learns, which the batches' ids index: giantfm's
        (default), or giantfm's extended with labels of one's own
        (`giantfm.vocab.Vocabulary.extended`). Its tokens of kind
        ``probability`` are learned as log-odds.

    Returns
    -------
    `giantfm.model.TrainedModel`
        The best epoch's network on ``device``, with training metadata.
    """
    model_config = ModelConfig() if model_config is None else model_config
    cfg = TrainConfig() if train_config is None else train_config
    if not isinstance(model_config, ModelConfig):
        raise TypeError(f"model_config must be a ModelConfig, got {type(model_config).__name__}")
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"train_config must be a TrainConfig, got {type(cfg).__name__}")
    if resume and out_dir is None:
        raise ValueError("resume needs the out_dir of the run to continue")
    vocabulary = vocab.VOCABULARY if vocabulary is None else vocabulary
    if vocabulary.names[:vocab.N_TOKENS] != vocab.NAMES:
        raise ValueError("vocabulary must begin with giantfm's names "
                         "(giantfm.vocab.VOCABULARY.extended makes one)")
    model_config = dataclasses.replace(model_config, n_tokens=len(vocabulary))
    device = select_device(device)
    train_arrays, train_rows = _as_arrays(train_batch, "train_batch", len(vocabulary))
    val_arrays, _ = _as_arrays(val_batch, "val_batch", len(vocabulary))
    if len(train_arrays[0]) == 0 or len(val_arrays[0]) == 0:
        raise ValueError("train_batch and val_batch must each hold at least one star with tokens")
    out_dir = None if out_dir is None else Path(out_dir)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    # what shapes the run: a resumed one must be given the same (the progress bar is the
    # sitting's)
    run_settings = {"model_config": model_config.to_dict(),
                    "train_config": {k: v for k, v in dataclasses.asdict(cfg).items()
                                     if k != "progress"},
                    "start_from": None if start_from is None else str(start_from),
                    "vocabulary": list(vocabulary.names)}
    if resume:
        # the network of a run started from a saved model has that model's sizes
        network = TokenSetTransformer(ModelConfig.from_dict(
            read_checkpoint(out_dir)["extra"]["network_config"]))
    elif start_from is not None:
        network = _network_from(start_from, model_config, vocabulary, cfg.seed)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            network = TokenSetTransformer(model_config)
    model_config = network.config
    # after `start_from`, whose sizes (context, inputs read) the samplers must follow
    normalisation = Normalisation.fit(train_arrays[0], train_arrays[1], vocabulary)
    train_sampler, val_sampler = (
        TokenSampler(*_to_device(*arrays, normalisation, device), model_config, cfg, vocabulary)
        for arrays in (train_arrays, val_arrays))
    network.to(device).train()
    decay = [p for p in network.parameters() if p.ndim >= 2]
    no_decay = [p for p in network.parameters() if p.ndim < 2]
    optimiser = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=cfg.learning_rate)
    n_train = len(train_sampler)
    steps_per_epoch = cfg.steps_per_epoch or math.ceil(n_train / cfg.batch_size)
    clock = RunClock(cfg.max_minutes)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, cosine_schedule(cfg.epochs * steps_per_epoch, cfg.warmup_steps,
                                   cfg.min_learning_rate_ratio,
                                   None if cfg.max_minutes is None else clock.fraction_used))
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)

    metadata = ModelMetadata(training={
        "train_config": dataclasses.asdict(cfg), "n_train": n_train, "n_val": len(val_sampler),
        "device": str(device), "augmentation": getattr(augment, "description", None)})
    model = TrainedModel(network, normalisation, device=device, metadata=metadata,
                         vocabulary=vocabulary)
    # saved in the checkpoint: the network's sizes and the training record
    extra = {"network_config": model_config.to_dict(), "metadata": metadata.to_dict()}

    def train_epoch(epoch):
        network.train()
        started = time.perf_counter()
        total = torch.zeros((), device=device)
        count = torch.zeros((), dtype=torch.long, device=device)
        seen = 0
        order = torch.randperm(n_train, generator=generator, device=device)
        for step in range(steps_per_epoch):
            start = (step * cfg.batch_size) % n_train
            index = order[start:start + cfg.batch_size]
            if augment is None:
                batch = train_sampler.sample(index, generator)
            else:
                copies = augment(train_rows[index.cpu().numpy()], rng)
                batch = train_sampler.sample_arrays(
                    *_to_device(copies.ids, copies.values, copies.errors, normalisation, device),
                    generator)
            loss, n = _loss(network, batch, device, cfg)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), cfg.grad_clip)
            optimiser.step()
            scheduler.step()
            total += loss.detach() * n
            count += n
            seen += len(index)
            if clock.out_of_time():
                break
        return {"steps": epoch * steps_per_epoch, "lr": optimiser.param_groups[0]["lr"],
                "train_loss": float(total / count.clamp_min(1)),
                "samples_per_s": seen / (time.perf_counter() - started)}

    def validate():
        return _evaluate(network, val_sampler, cfg, device, cfg.seed + 1)

    def on_improved(epoch, metrics):
        model.metadata.training.update(best_epoch=epoch, best_metrics=metrics)
        extra["metadata"] = model.metadata.to_dict()
        if out_dir is not None:
            model.save(out_dir / "best")

    def on_epoch_end(epoch, history, finished):
        if out_dir is not None:
            model.save(out_dir / "last", metadata=model.metadata.replace(
                training={**model.metadata.training, "last_epoch": epoch}))
            _write_metrics(out_dir / "metrics.csv", history)

    result = run_epochs(
        LoopSettings(cfg.epochs, cfg.patience, cfg.max_minutes, stop_after_minutes, cfg.monitor,
                     cfg.progress, "training"),
        {"network": network, "optimiser": optimiser, "scheduler": scheduler,
         "generator": generator, "numpy_rng": rng},
        train_epoch, validate, network=network, run_settings=run_settings, out_dir=out_dir,
        resume=resume, clock=clock, on_improved=on_improved, on_epoch_end=on_epoch_end,
        extra_state=extra)
    if resume:   # the record of the earlier sittings' best epoch
        model.metadata = ModelMetadata.from_dict(extra["metadata"])
    model.metadata.training.update(epochs_run=result.epochs_run, finished=result.finished)
    network.eval()
    return model


def _network_from(start_from, model_config, vocabulary, seed):
    """The network of the saved model ``start_from``, grown to ``vocabulary`` and with error
    inputs added when asked for."""
    from .core import load_model

    model = load_model(start_from, device="cpu")
    saved = model.network
    known = model.vocabulary.names
    if vocabulary.names[:len(known)] != known:
        raise ValueError(f"cannot start from {start_from}: its vocabulary ({len(known)} names, "
                         f"version {model.vocab_version}) is not the beginning of the one to "
                         f"learn ({len(vocabulary)} names)")
    if len(vocabulary) > len(known):
        saved = saved.with_tokens(len(vocabulary), seed)
    wanted = dataclasses.replace(saved.config, error_inputs=model_config.error_inputs)
    if wanted == saved.config:
        return saved
    network = TokenSetTransformer(wanted)
    missing, unexpected = network.load_state_dict(saved.state_dict(), strict=False)
    if unexpected or any(not key.startswith("error_embedding.") for key in missing):
        raise ValueError(f"cannot start from {start_from}: its weights do not fit {wanted}")
    return network
