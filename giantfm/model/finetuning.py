"""Teaching a trained model new labels with its encoder frozen (the torch part of
`giantfm.finetune`).

The new labels are names appended to a copy of the model's vocabulary
(`giantfm.vocab.Vocabulary.extended`); the network grows a row for each
(`TokenSetTransformer.with_tokens`). The encoder -- and so every star's
embedding, ``ood_score`` and `giantfm.similar` -- stays as it was, which
makes the encoder output of each star a constant: it is computed once
(`TrainedModel.encode`) and every step runs the decoder only (a fine-tune on
1,000 stars takes seconds to minutes on a laptop CPU instead of an hour).

Only the new names' request embeddings ``E[name]`` learn (a d_model-vector
each: prompt tuning). The weights every old answer depends on are not touched,
so the model answers giantfm's labels bit for bit as before. (Letting the
decoder learn too, with giantfm's labels anchored to the starting model's
answers, was tried on 1,000 giants with [C/N] ages: no better on the test
split, 0.393 dex against 0.393, while Teff moved by a median 14 K and age by
0.27 Gyr; not kept.)

The new labels are never read as inputs (`ModelConfig.n_input_tokens`): the
encoder has not learned them.
"""
import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch

from ..metadata import ModelMetadata
from ..utils import atomic_write
from ..utils._progress import progress_bar
from .core import TrainedModel
from .device import select_device
from .normalisation import Normalisation
from .training import gaussian_nll

__all__ = ["FinetuneConfig", "finetune_network", "CHECKPOINT_FILE"]

#: The checkpoint of a fine-tune in its output folder (``resume`` reads it).
CHECKPOINT_FILE = "finetune_checkpoint.pt"


@dataclasses.dataclass
class FinetuneConfig:
    """Settings of a fine-tune (saved with the model's metadata).

    Parameters
    ----------
    epochs : int
        Most passes over the training stars.
    batch_size : int
        Stars per step.
    learning_rate : float
        AdamW peak learning rate (cosine decay to a 20th of it over ``epochs``).
    patience : int
        Stop after this many epochs without a lower validation loss.
    seed : int
        Seeds the new rows and the order of the stars.
    max_minutes : float, optional
        Stop after the epoch that passes this much wall time (the best epoch is kept).
    progress : bool or {'auto', 'on', 'off'}, optional
        A tqdm progress bar over the epochs (`giantfm.predict`'s rules; None:
        ``giantfm.conf.progress``).
    """

    epochs: int = 300
    batch_size: int = 64
    learning_rate: float = 0.05
    patience: int = 100
    seed: int = 0
    max_minutes: float = None
    progress: bool = None

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.patience, int) or self.patience < 0:
            raise ValueError(f"patience must be an integer >= 0, got {self.patience!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max_minutes must be > 0, got {self.max_minutes!r}")


def _targets(batch, rows, vocabulary, normalisation, new_rows):
    """Standardised values and errors (NaN: the star lacks it) of the new labels (the
    names of ``vocabulary`` from ``new_rows``'s first id on) of the stars ``rows`` of
    ``batch``, as (m, k) float32 tensors on the CPU. ``normalisation`` is indexed by the
    network's rows, which for a model made before names were appended to giantfm's are
    fewer than the token ids."""
    names = vocabulary.names[len(vocabulary) - len(new_rows):]
    values, errors = batch[rows].values_of(names, vocabulary)
    median, scale = normalisation.median[new_rows], normalisation.scale[new_rows]
    return (torch.as_tensor((values - median) / scale, dtype=torch.float32),
            torch.as_tensor(errors / scale, dtype=torch.float32))


class _Stars:
    """One split's encoder output and new-label targets."""

    def __init__(self, model, batch, vocabulary, normalisation, new_rows):
        # the encoder reads the tokens the model knows (the new labels are answers only)
        rows, self.memory, self.mask = model.encode(batch.keeping(batch.ids < len(model.tokens)))
        self.values, self.errors = (t.to(model.device)
                                    for t in _targets(batch, rows, vocabulary, normalisation,
                                                      new_rows))
        keep = torch.isfinite(self.values).any(dim=1)
        self.memory, self.mask, self.values, self.errors = (
            a[keep] for a in (self.memory, self.mask, self.values, self.errors))

    def __len__(self):
        return len(self.memory)


def _decode(network, memory, mask, request_rows):
    requests = torch.as_tensor(request_rows, device=memory.device).expand(len(memory), -1)
    return network.decode(memory, mask, requests)


def _new_label_loss(network, stars, index, new_rows):
    mean, log_var = _decode(network, stars.memory[index], stars.mask[index], new_rows)
    value, error = stars.values[index], stars.errors[index]
    have = torch.isfinite(value)
    nll = gaussian_nll(mean, log_var, torch.nan_to_num(value), torch.nan_to_num(error))
    return torch.where(have, nll, 0.0).sum() / have.sum().clamp_min(1)


def finetune_network(model, vocabulary, train_batch, val_batch, config=None, *, out_dir=None,
                     resume=False, device=None):
    """Teach ``model`` the names ``vocabulary`` adds to its own, from the stars' tokens.

    Parameters
    ----------
    model : `TrainedModel`
        The starting model (not changed).
    vocabulary : `giantfm.vocab.Vocabulary`
        ``model.tokens`` extended with the new labels (`~giantfm.vocab.Vocabulary.extended`).
    train_batch, val_batch : `giantfm.tokens.TokenBatch`
        Stars with the inputs ``model`` reads and, as tokens of ``vocabulary``,
        the new labels in token scale (a star may lack some of them).
    config : `FinetuneConfig`, optional
    out_dir : path-like, optional
        Where the checkpoint (every epoch) is written; needed for ``resume``.
    resume : bool, optional
        Continue the fine-tune of ``out_dir`` from its checkpoint.
    device : str, optional
        See `select_device`.

    Returns
    -------
    tuned : `TrainedModel`
        The best epoch's model (lowest validation loss of the new labels), knowing
        ``vocabulary``; its metadata is ``model``'s with the fine-tune's record in
        ``training['finetune']``.
    history : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``elapsed_s``.
    """
    cfg = FinetuneConfig() if config is None else config
    if vocabulary.names[:len(model.tokens)] != model.tokens.names or \
            len(vocabulary) <= len(model.tokens):
        raise ValueError("vocabulary must be the model's tokens with the new labels appended")
    if resume and out_dir is None:
        raise ValueError("resume needs the out_dir of the fine-tune to continue")
    device = select_device(device)
    model.to(device)
    new_ids = np.arange(len(model.tokens), len(vocabulary))
    # The network's rows of the new labels follow the rows it has; its own rows of
    # giantfm's names may be fewer than giantfm's (a model made before names were appended).
    n_rows = model.config.n_tokens
    new_rows = np.arange(n_rows, n_rows + len(new_ids))
    fitted = Normalisation.fit(train_batch.ids, train_batch.values, vocabulary)
    normalisation = Normalisation(np.r_[model.normalisation.median, fitted.median[new_ids]],
                                  np.r_[model.normalisation.scale, fitted.scale[new_ids]],
                                  model.vocabulary.names + vocabulary.names[len(model.tokens):])
    train_stars, val_stars = (_Stars(model, batch, vocabulary, normalisation, new_rows)
                              for batch in (train_batch, val_batch))
    if len(train_stars) == 0 or len(val_stars) == 0:
        raise ValueError("no training or no validation star has both tokens the model reads "
                         "and a new label")

    network = model.network.with_tokens(n_rows + len(new_ids), cfg.seed)
    # the new names are answers only (and so stay the labels of an earlier fine-tune)
    network.config = dataclasses.replace(
        network.config, n_input_tokens=model.config.n_input_tokens or n_rows)
    network.to(device).eval()     # eval: no dropout; the encoder's output is fixed anyway
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    # only the new names' rows of the name embedding learn (the request embeddings)
    network.name_embedding.weight.requires_grad_(True)
    learns = torch.zeros(n_rows + len(new_ids), 1, device=device)
    learns[n_rows:] = 1.0
    network.name_embedding.weight.register_hook(lambda grad: grad * learns)
    optimiser = torch.optim.AdamW([network.name_embedding.weight], lr=cfg.learning_rate,
                                  weight_decay=0.0)
    steps_per_epoch = math.ceil(len(train_stars) / cfg.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.05 + 0.95 * 0.5 * (1 + math.cos(
            math.pi * min(step / (cfg.epochs * steps_per_epoch), 1.0))))
    generator = torch.Generator(device="cpu").manual_seed(cfg.seed)

    history, best, best_state, stale, first_epoch, before = [], math.inf, None, 0, 1, 0.0
    path = None if out_dir is None else Path(out_dir) / CHECKPOINT_FILE
    if resume:
        if not path.is_file():
            raise FileNotFoundError(f"nothing to resume: {path} does not exist")
        state = torch.load(path, map_location=device, weights_only=False)
        if state["config"] != _run_settings(cfg) or state["n_train"] != len(train_stars) \
                or state["new_names"] != list(vocabulary.names[len(model.tokens):]):
            raise ValueError(f"the fine-tune in {out_dir} was started with other settings, "
                             "labels or stars: resume it with the same ones")
        if state["finished"]:
            raise ValueError(f"the fine-tune in {out_dir} has finished: nothing to resume")
        network.load_state_dict(state["network"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        history, best, best_state, stale = (state[k] for k in ("history", "best", "best_state",
                                                               "stale"))
        first_epoch, before = state["epoch"] + 1, state["elapsed_s"]

    bar = progress_bar(cfg.epochs, progress=cfg.progress, unit="epoch", desc="fine-tuning")
    if bar is not None:
        bar.update(first_epoch - 1)
    started = time.perf_counter()
    finished = False
    for epoch in range(first_epoch, cfg.epochs + 1):
        order = torch.randperm(len(train_stars), generator=generator).to(device)
        total = 0.0
        for step in range(steps_per_epoch):
            index = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            loss = _new_label_loss(network, train_stars, index, new_rows)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += float(loss.detach()) * len(index)
        with torch.no_grad():
            val_loss = float(_new_label_loss(network, val_stars, slice(None), new_rows))
        elapsed = before + time.perf_counter() - started
        improved = val_loss < best
        history.append({"epoch": epoch, "train_loss": total / len(train_stars),
                        "val_loss": val_loss, "elapsed_s": elapsed})
        if improved:
            best, stale = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        else:
            stale += 1
        out_of_time = cfg.max_minutes is not None and elapsed > 60 * cfg.max_minutes
        finished = (cfg.patience and stale >= cfg.patience) or epoch == cfg.epochs or out_of_time
        if path is not None:
            _save_checkpoint(path, {
                "epoch": epoch, "network": network.state_dict(),
                "optimiser": optimiser.state_dict(), "scheduler": scheduler.state_dict(),
                "generator": generator.get_state(), "history": history, "best": best,
                "best_state": best_state, "stale": stale, "elapsed_s": elapsed,
                "finished": finished, "config": _run_settings(cfg), "n_train": len(train_stars),
                "new_names": list(vocabulary.names[len(model.tokens):])})
        if bar is not None:
            bar.set_postfix(val=f"{val_loss:.3f}", best=f"{best:.3f}")
            bar.update()
        if finished:
            break
    if bar is not None:
        bar.close()
    if best_state is None:
        raise ValueError(f"the fine-tune did not learn: its validation loss was "
                         f"{history[-1]['val_loss']} at every epoch (labels or errors that "
                         "do not fit the stars?)")
    network.load_state_dict(best_state)
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    best_epoch = min(history, key=lambda row: row["val_loss"])["epoch"]
    metadata = ModelMetadata.from_dict(model.metadata.to_dict())
    metadata.training = {**metadata.training, "finetune": {
        "config": dataclasses.asdict(cfg), "n_train": len(train_stars), "n_val": len(val_stars),
        "best_epoch": best_epoch, "epochs_run": len(history), "best_val_loss": best,
        "elapsed_s": history[-1]["elapsed_s"], "device": str(device)}}
    tuned = TrainedModel(network, normalisation, device=device, metadata=metadata,
                         vocabulary=model.vocabulary.extended(
                             vocabulary.tokens[len(model.tokens):]),
                         vocab_version=model.vocab_version)
    return tuned, history


def _run_settings(cfg):
    """The settings a resumed fine-tune must share (the progress bar and the time limit
    are the sitting's)."""
    settings = dataclasses.asdict(cfg)
    for key in ("progress", "max_minutes"):
        settings.pop(key)
    return settings


def _save_checkpoint(path, state):
    atomic_write(path, lambda tmp: torch.save(state, tmp))
