"""Teaching a trained network new labels with its encoder frozen (the torch part of
`giantfm.finetune`; not to be confused with continuing giantfm's own training, a warm
start: `giantfm.model.train` with ``start_from``).

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
encoder has not learned them. The epochs run through the one loop of
`giantfm.model.loop` (schedule, early stopping, time limit, checkpoint, resume).
"""
import dataclasses
import math

import numpy as np
import torch

from ..metadata import ModelMetadata
from .core import TrainedModel
from .device import select_device
from .loop import LoopSettings, RunClock, cosine_schedule, run_epochs
from .normalisation import Normalisation
from .training import gaussian_nll

__all__ = ["adapt_network"]

# The learning rate decays to this share of its peak over the epochs.
_LEARNING_RATE_FLOOR = 0.05


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


def adapt_network(model, vocabulary, train_batch, val_batch, settings, *, out_dir=None,
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
    settings : `giantfm.teaching.FinetuneSettings`
        Epochs, patience, learning rate, batch size, seed, time limit and progress bar
        (the one home of their defaults).
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
    result : `giantfm.model.loop.LoopResult`
        The run: its history (per epoch ``train_loss``, ``val_loss``, ``elapsed_s``),
        best epoch and why it stopped.
    """
    cfg = settings
    if vocabulary.names[:len(model.tokens)] != model.tokens.names or \
            len(vocabulary) <= len(model.tokens):
        raise ValueError("vocabulary must be the model's tokens with the new labels appended")
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
        optimiser, cosine_schedule(cfg.epochs * steps_per_epoch, 0, _LEARNING_RATE_FLOOR))
    generator = torch.Generator(device="cpu").manual_seed(cfg.seed)

    def train_epoch(epoch):
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
        return {"train_loss": total / len(train_stars)}

    @torch.no_grad()
    def validate():
        return {"val_loss": float(_new_label_loss(network, val_stars, slice(None), new_rows))}

    # the settings a resumed fine-tune must share (the progress bar and the time limit
    # are the sitting's), with the labels and the number of stars
    run_settings = {k: v for k, v in dataclasses.asdict(cfg).items()
                    if k not in ("progress", "max_minutes")}
    run_settings.update(n_train=len(train_stars),
                        new_names=list(vocabulary.names[len(model.tokens):]))
    result = run_epochs(
        LoopSettings(cfg.epochs, cfg.patience, cfg.max_minutes, None, "val_loss", cfg.progress,
                     "fine-tuning"),
        {"network": network, "optimiser": optimiser, "scheduler": scheduler,
         "generator": generator},
        train_epoch, validate, network=network, run_settings=run_settings, out_dir=out_dir,
        resume=resume, clock=RunClock(cfg.max_minutes))
    if result.best_epoch is None:
        raise ValueError(f"the fine-tune did not learn: its validation loss was "
                         f"{result.history[-1]['val_loss']} at every epoch (labels or errors "
                         "that do not fit the stars?)")
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    metadata = ModelMetadata.from_dict(model.metadata.to_dict())
    metadata.training = {**metadata.training, "finetune": {
        "config": dataclasses.asdict(cfg), "n_train": len(train_stars), "n_val": len(val_stars),
        "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
        "best_val_loss": result.best, "stopped": result.stopped,
        "elapsed_s": result.elapsed_s, "device": str(device)}}
    tuned = TrainedModel(network, normalisation, device=device, metadata=metadata,
                         vocabulary=model.vocabulary.extended(
                             vocabulary.tokens[len(model.tokens):]),
                         vocab_version=model.vocab_version)
    return tuned, result
