"""Teaching a trained network new labels with its encoder frozen (the torch part of
`giantfm.finetune`; not to be confused with continuing giantfm's own training, a warm
start: `giantfm.model.train` with ``start_from``).

The new labels are names appended to a copy of the model's vocabulary
(`giantfm.vocab.Vocabulary.extended`); the network grows a row for each
(`TokenSetTransformer.with_tokens`). The encoder -- and so every star's
embedding, ``ood_score`` and `giantfm.similar` -- stays as it was, which makes
the encoder output of each star a constant: it is computed once
(`TrainedModel.encode`), and so are the decoder's keys and values of it
(`TokenSetTransformer.keys_values`), which none of the methods changes.

Three methods (`METHODS`), each answering the new labels only; the weights of
every answer giantfm gave before are not touched, so the model answers
giantfm's labels, embeddings and ``ood_score`` bit for bit as before:

``'prompt'`` (prompt tuning)
    Only the new names' request embeddings ``E[name]`` learn, the decoder
    answers them (a d_model-vector each). Each starts where
    `TokenSetTransformer.with_tokens` draws it.
``'probe'``
    A linear map (`LinearProbe`) of frozen features of each star
    (`TokenSetTransformer.probe_features`): the encoder output at the register
    token, and for each of giantfm's labels the decoder's last hidden state
    and its answer. Fitted in closed form by ridge regression
    (`giantfm.utils._ridge.fit_ridge`), its penalty and the weight of the
    answers beside the hidden states chosen by leave-one-out cross-validation
    on the stars it is fitted to. One uncertainty for all stars: the
    leave-one-out scatter (`giantfm.finetune` calibrates it).
``'decoder'``
    The decoder and head with low-rank adapters (`LowRankAdapters`, rank
    ``FinetuneSettings.rank``) on the new label's path only, and its request
    embedding, learn; the request starts at the embedding of the giantfm label
    whose answers correlate best with the new label on the stars it learns
    from, the adapters at zero change.

Every method is cross-validated on the same K folds of the stars
(`fold_of`: seeded), and fitted once more on all of them; `giantfm.finetune`
chooses by the out-of-fold scatter and calibrates the errors on the
out-of-fold z-scores. The epoch-based methods learn every fold and the fit on
all stars *at once*: each (label, fold) is a slot with its own request
embedding and adapters, answered in the same pass (requests never attend to
each other), the slot of fold k learning from the stars outside fold k, the
last slot from all. The loop (`giantfm.model.loop.run_epochs`: schedule,
patience, time limit, checkpoint, resume) monitors the out-of-fold loss (the
mean negative log-likelihood of each star's answer by the slot that did not
learn from it), so the epoch kept is the one at which the folds' held-out
answers were best -- an epoch count learned from the folds, at which the
fit on all stars is taken from the same run; that fit has no held-out stars
of its own, and none are spent on stopping it.

The new labels are never read as inputs (`ModelConfig.n_input_tokens`): the
encoder has not learned them.
"""
import dataclasses
import math

import numpy as np
import torch

from .. import vocab
from ..metadata import FINETUNE_METHODS as METHODS
from ..metadata import ModelMetadata
from ..utils._ridge import fit_ridge
from .core import TrainedModel
from .device import select_device
from .loop import (CHECKPOINT_FILE, LoopSettings, RunClock, check_settings, cosine_schedule,
                   finished_run, run_epochs)
from .network import AdapterConfig, LinearProbe, LowRankAdapters
from .normalisation import Normalisation
from .training import gaussian_nll

__all__ = ["METHODS", "AdaptedStars", "MethodFit", "fold_of", "adapt_network",
           "encode_stars", "fit_method", "build_network", "tuned_model"]


# The learning rate decays to this share of its peak over the epochs.
_LEARNING_RATE_FLOOR = 0.05
# Stars per forward pass when every star is answered (the out-of-fold loss, features).
_CHUNK = 512


def fold_of(n, folds, seed):
    """The fold (0 .. folds - 1) of each of ``n`` stars: a seeded permutation dealt out in
    turn, so that the folds differ in size by one star at most."""
    return np.random.default_rng(seed).permutation(n) % folds


@dataclasses.dataclass
class AdaptedStars:
    """The usable stars of a fine-tune as the network sees them with its encoder frozen.

    Attributes
    ----------
    rows : int array (n,)
        Their positions in the batch given to `encode_stars`.
    memory : Tensor (n, W + 1, d)
    mask : bool Tensor (n, 1, 1, W + 1)
        The encoder output and its attention mask.
    values, errors : float32 Tensors (n, k)
        The new labels, standardised (NaN: a star lacks it), and their errors.
    folds : int array (n,)
        Each star's fold.
    """

    rows: np.ndarray
    memory: torch.Tensor
    mask: torch.Tensor
    values: torch.Tensor
    errors: torch.Tensor
    folds: np.ndarray

    def __len__(self):
        return len(self.rows)


@dataclasses.dataclass
class MethodFit:
    """One method's cross-validation and its fit on all stars.

    Attributes
    ----------
    method : str
    oof_mean, oof_std : float arrays (n, k)
        Each star's answer (standardised) by the fit that did not learn from it (NaN
        where the star lacks the label).
    parts : list of dict
        Per new label, what the network built with it needs: ``'query'`` (its request
        embedding), and ``'adapter'`` (an `AdapterConfig`) with ``'module'`` (its
        weights) where it has one.
    run : dict
        How it ran: ``epochs_run``, ``best_epoch``, ``stopped``, ``still_improving``
        (epoch methods), ``elapsed_s``; for the probe, per label the chosen
        ``penalty`` and ``weight``.
    """

    method: str
    oof_mean: np.ndarray
    oof_std: np.ndarray
    parts: list
    run: dict


def encode_stars(model, batch, vocabulary, normalisation, new_rows, folds, seed):
    """The stars of ``batch`` with a new label and tokens the model reads, encoded once,
    with their standardised labels and their folds (`AdaptedStars`)."""
    rows, memory, mask = model.encode(batch.keeping(batch.ids < len(model.tokens)))
    names = vocabulary.names[len(vocabulary) - len(new_rows):]
    values, errors = batch[rows].values_of(names, vocabulary)
    median, scale = normalisation.median[new_rows], normalisation.scale[new_rows]
    values = torch.as_tensor((values - median) / scale, dtype=torch.float32)
    errors = torch.as_tensor(errors / scale, dtype=torch.float32)
    keep = torch.isfinite(values).any(dim=1).numpy()
    index = torch.as_tensor(np.flatnonzero(keep), device=memory.device)
    return AdaptedStars(rows[keep], memory[index], mask[index],
                        values[keep].to(memory.device), errors[keep].to(memory.device),
                        fold_of(int(keep.sum()), folds, seed))


def _answer_rows(model):
    """The network's rows of giantfm's labels that the model knows (what the probe reads and
    the decoder method may start from)."""
    names = [name for name in vocab.LABEL_NAMES if model.knows(name)]
    return names, [int(r) for r in model.rows_of(names)]


def _nll(mean, log_var, values, errors):
    """Mean Gaussian NLL over the finite ``values`` of each column, and the sum of those."""
    have = torch.isfinite(values)
    nll = gaussian_nll(mean, log_var, torch.nan_to_num(values), torch.nan_to_num(errors))
    per_column = torch.where(have, nll, 0.0).sum(dim=0) / have.sum(dim=0).clamp_min(1)
    return per_column


# ------------------------------------------------------------------------------ the probe

def _features(network, stars, feature_rows):
    out = []
    with torch.no_grad():
        for start in range(0, len(stars), _CHUNK):
            part = slice(start, start + _CHUNK)
            out.append(network.probe_features(stars.memory[part], stars.mask[part],
                                              feature_rows).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, network.n_probe_features(
        len(feature_rows))))


def _fit_probe(network, stars, settings, feature_rows, clock):
    features = _features(network, stars, feature_rows)
    n_answers = 2 * len(feature_rows)
    answers = np.zeros(features.shape[1], bool)
    answers[-n_answers:] = True
    values = stars.values.cpu().numpy()
    n, k = values.shape
    oof_mean, oof_std = np.full((n, k), np.nan), np.full((n, k), np.nan)
    parts, chosen = [], []

    def fit(rows, target):
        return fit_ridge(features[rows], target[rows], settings.probe_penalties,
                         weighted=answers, weights=settings.probe_weights)
    for label in range(k):
        have = np.isfinite(values[:, label])
        for fold in range(settings.folds):
            train, held = have & (stars.folds != fold), have & (stars.folds == fold)
            if held.any():
                ridge = fit(train, values[:, label])
                oof_mean[held, label] = ridge.predict(features[held])
                oof_std[held, label] = ridge.loo_mad_std
        ridge = fit(have, values[:, label])
        probe = LinearProbe(features.shape[1])
        with torch.no_grad():
            for name, value in (("centre", ridge.centre), ("scale", ridge.scale),
                                ("weight", ridge.coef), ("bias", ridge.intercept),
                                ("log_var", 2 * math.log(max(ridge.loo_mad_std, 1e-6)))):
                getattr(probe, name).copy_(torch.as_tensor(value, dtype=torch.float32))
        parts.append({"adapter": ("probe", tuple(feature_rows), 0), "module": probe})
        chosen.append({"penalty": ridge.penalty, "weight": ridge.weight,
                       "loo_mad_std": ridge.loo_mad_std})
    return oof_mean, oof_std, parts, {"labels": chosen, "elapsed_s": clock.elapsed(),
                                      "n_features": int(features.shape[1])}


# ---------------------------------------------------------------------- epoch-based methods

class _Slots(torch.nn.Module):
    """The learning part of an epoch-based method: per slot (label, fold) a request
    embedding and, for ``'decoder'``, low-rank adapters (see the module docstring)."""

    def __init__(self, network, queries, rank, seed):
        super().__init__()
        self.queries = torch.nn.Parameter(queries.clone())
        self.low_rank = None
        if rank:
            self.low_rank = LowRankAdapters(network, rank, slots=len(queries))
            generator = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for name, down in self.low_rank.down.items():
                    # the usual LoRA start: random down, zero up (no change at first); one
                    # draw per layer shared by the slots, so that the folds start alike
                    draw = torch.randn(down.shape[1:], generator=generator)
                    down.copy_((draw / math.sqrt(down.shape[1])).expand_as(down))

    def forward(self, network, memory, mask, keys_values, slots):
        queries = self.queries.expand(len(memory), -1, -1)
        mean, log_var, _ = network.decode_queries(queries, memory, mask, low_rank=self.low_rank,
                                                  slots=slots, keys_values=keys_values)
        return mean, log_var


def _start_queries(network, stars, method, new_rows, settings, answer_rows):
    """Each slot's starting request embedding: the new row's (as drawn by ``with_tokens``)
    for prompt tuning; for the decoder method the embedding of the giantfm label whose
    answers correlate best, over the slot's own stars, with the new label."""
    k, n_slots = len(new_rows), settings.folds + 1
    weight = network.name_embedding.weight.detach()
    starts = [weight[row] for row in new_rows for _ in range(n_slots)]
    if method == "decoder":
        answers = _features(network, stars, answer_rows)[:, -2 * len(answer_rows):
                                                           -len(answer_rows)]
        values = stars.values.cpu().numpy()
        for label in range(k):
            for slot in range(n_slots):
                use = np.isfinite(values[:, label]) & (stars.folds != slot)
                corr = [abs(np.corrcoef(a[use], values[use, label])[0, 1])
                        if np.std(a[use]) > 0 else 0.0 for a in answers.T]
                best = int(np.nanargmax(np.nan_to_num(corr, nan=-1.0)))
                starts[label * n_slots + slot] = weight[answer_rows[best]]
    return torch.stack(starts).to(stars.memory.device)


def _fit_epochs(network, stars, settings, method, new_rows, answer_rows, *, out_dir, resume,
                device):
    cfg = settings
    k, n = len(new_rows), len(stars)
    n_slots = cfg.folds + 1
    epochs, patience = cfg.schedule(n)
    slots = torch.arange(k * n_slots, device=device)
    label_of_slot = slots // n_slots
    fold_of_slot = slots % n_slots                 # fold index; folds itself: all stars
    folds = torch.as_tensor(stars.folds, device=device)
    # (n, slots): which stars each slot learns from
    learns = (folds[:, None] != fold_of_slot[None, :]) & torch.isfinite(
        stars.values[:, label_of_slot])
    # (n, k): the slot of each star's fold, which did not learn from it
    own_slot = torch.arange(k, device=device)[None, :] * n_slots + folds[:, None]
    with torch.no_grad():
        keys_values = network.keys_values(stars.memory)
    rank = cfg.rank if method == "decoder" else 0
    learner = _Slots(network, _start_queries(network, stars, method, new_rows, cfg,
                                             answer_rows), rank, cfg.seed).to(device)
    rate = cfg.learning_rate if method == "prompt" else cfg.decoder_learning_rate
    optimiser = torch.optim.AdamW(learner.parameters(), lr=rate, weight_decay=0.0)
    batch_size = min(cfg.batch_size, n)
    steps_per_epoch = math.ceil(n / batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, cosine_schedule(epochs * steps_per_epoch, 0, _LEARNING_RATE_FLOOR))
    generator = torch.Generator(device="cpu").manual_seed(cfg.seed)
    values, errors = stars.values[:, label_of_slot], stars.errors[:, label_of_slot]

    def answer(index):
        return learner(network, stars.memory[index], stars.mask[index],
                       [(key[index], value[index]) for key, value in keys_values], slots)

    def train_epoch(epoch):
        order = torch.randperm(n, generator=generator).to(device)
        total = 0.0
        for step in range(steps_per_epoch):
            index = order[step * batch_size:(step + 1) * batch_size]
            mean, log_var = answer(index)
            target = torch.where(learns[index], values[index], torch.nan)
            loss = _nll(mean, log_var, target, errors[index]).sum()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            total += float(loss.detach())
        return {"train_loss": total / steps_per_epoch / k / n_slots}

    held_out = {}

    @torch.no_grad()
    def validate():
        means, log_vars = [], []
        for start in range(0, n, _CHUNK):
            index = torch.arange(start, min(start + _CHUNK, n), device=device)
            mean, log_var = answer(index)
            means.append(mean.gather(1, own_slot[index]))
            log_vars.append(log_var.gather(1, own_slot[index]))
        mean, log_var = torch.cat(means), torch.cat(log_vars)
        held_out["latest"] = (mean, log_var)
        return {"cv_loss": float(_nll(mean, log_var, stars.values, stars.errors).mean())}

    extra = {}

    def keep_held_out(epoch, metrics):
        mean, log_var = held_out["latest"]
        extra["oof_mean"] = mean.cpu().numpy().astype(float)
        extra["oof_std"] = torch.exp(0.5 * log_var).cpu().numpy().astype(float)
    run_settings = {key: value for key, value in dataclasses.asdict(cfg).items()
                    if key not in ("progress", "max_minutes", "method")}
    run_settings.update(method=method, n_stars=n, epochs=epochs, patience=patience,
                        new_rows=[int(r) for r in new_rows])
    folder = None if out_dir is None else out_dir / method
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    parts = {"learner": learner, "optimiser": optimiser, "scheduler": scheduler,
             "generator": generator}
    finished = finished_run(folder, "cv_loss") if resume and folder is not None else None
    if finished is not None:   # the method had ended before the fine-tune was interrupted
        state, result = finished
        check_settings(folder / CHECKPOINT_FILE, state["settings"], run_settings)
        learner.load_state_dict(state["best_state"])
        extra.update(state["extra"])
    else:
        result = run_epochs(
            LoopSettings(epochs, patience, cfg.max_minutes, None, "cv_loss", cfg.progress,
                         f"fine-tuning ({method})", warn_still_improving=True),
            parts, train_epoch, validate, network=learner, run_settings=run_settings,
            out_dir=folder, resume=resume and folder is not None and
            (folder / CHECKPOINT_FILE).is_file(), clock=RunClock(cfg.max_minutes),
            on_improved=keep_held_out, extra_state=extra)
        if result.best_epoch is None or "oof_mean" not in extra:
            raise ValueError(f"the fine-tune ({method}) did not learn: its out-of-fold loss "
                             f"was {result.history[-1]['cv_loss']} at every epoch (labels or "
                             "errors that do not fit the stars?)")
    run = {"epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
           "stopped": result.stopped, "still_improving": result.still_improving,
           "elapsed_s": result.elapsed_s, "epochs": epochs, "patience": patience}
    parts_out = []
    for label in range(k):
        slot = label * n_slots + cfg.folds          # the slot that learned from all stars
        part = {"query": learner.queries[slot].detach().clone()}
        if rank:
            module = LowRankAdapters(network, rank)
            with torch.no_grad():
                for name in module.down:
                    module.down[name].copy_(learner.low_rank.down[name][slot:slot + 1])
                    module.up[name].copy_(learner.low_rank.up[name][slot:slot + 1])
            part.update(adapter=("decoder", (), rank), module=module)
        parts_out.append(part)
    return extra["oof_mean"], extra["oof_std"], parts_out, run


# ------------------------------------------------------------------------------ the whole

def fit_method(network, stars, settings, method, new_rows, *, answer_rows, out_dir=None,
               resume=False, device=None):
    """Cross-validate ``method`` on ``stars`` and fit it on all of them (`MethodFit`).

    ``network`` is the starting network grown by the new rows (its new request
    embeddings drawn); it is not changed.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)} "
                         "or 'auto'")
    device = select_device(device)
    clock = RunClock()
    if method == "probe":
        oof_mean, oof_std, parts, run = _fit_probe(network, stars, settings, answer_rows,
                                                    clock)
    else:
        oof_mean, oof_std, parts, run = _fit_epochs(
            network, stars, settings, method, new_rows, answer_rows, out_dir=out_dir,
            resume=resume, device=device)
    run.setdefault("elapsed_s", clock.elapsed())
    return MethodFit(method, oof_mean, oof_std, parts, run)


def build_network(network, new_rows, fits):
    """``network`` (grown by ``new_rows``) answering each new row as ``fits[k]`` (a
    `MethodFit`) learned it: its request embedding, and its adapter where it has one."""
    with torch.no_grad():
        for k, (row, fit) in enumerate(zip(new_rows, fits)):
            part = fit.parts[k]
            if "query" in part:
                network.name_embedding.weight[row] = part["query"]
    for k, (row, fit) in enumerate(zip(new_rows, fits)):
        part = fit.parts[k]
        if "adapter" in part:
            kind, feature_rows, rank = part["adapter"]
            network = network.with_adapter(AdapterConfig(kind, int(row), feature_rows, rank),
                                           part["module"])
    return network


def adapt_network(model, vocabulary, batch, settings, *, methods=None, out_dir=None,
                  resume=False, device=None):
    """Teach ``model`` the names ``vocabulary`` adds to its own, by every method of
    ``methods`` (cross-validated on the same folds; see the module docstring).

    Parameters
    ----------
    model : `TrainedModel`
        The starting model (not changed).
    vocabulary : `giantfm.vocab.Vocabulary`
        ``model.tokens`` extended with the new labels (`~giantfm.vocab.Vocabulary.extended`).
    batch : `giantfm.tokens.TokenBatch`
        The stars: the inputs ``model`` reads and, as tokens of ``vocabulary``, the
        new labels in token scale (a star may lack some of them).
    settings : `giantfm.teaching.FinetuneSettings`
        Folds, schedule, learning rates, rank, the probe's grids, seed, time limit and
        progress bar (the one home of their defaults).
    methods : sequence of str, optional
        Of `METHODS` (default: ``settings.methods()``).
    out_dir : path-like, optional
        Where the epoch-based methods' checkpoints are written (one folder each, every
        epoch); needed for ``resume``.
    resume : bool, optional
        Continue the fine-tune of ``out_dir`` from its checkpoints (a method whose run
        had finished is taken from its checkpoint).
    device : str, optional
        See `select_device`.

    Returns
    -------
    grown : `giantfm.model.network.TokenSetTransformer`
        The starting network grown by the new rows (not yet taught: `build_network`).
    normalisation : `Normalisation`
        The model's, with the new labels' medians and scales (over these stars).
    stars : `AdaptedStars`
    fits : dict
        ``{method: MethodFit}``.
    """
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
    fitted = Normalisation.fit(batch.ids, batch.values, vocabulary)
    normalisation = Normalisation(np.r_[model.normalisation.median, fitted.median[new_ids]],
                                  np.r_[model.normalisation.scale, fitted.scale[new_ids]],
                                  model.vocabulary.names + vocabulary.names[len(model.tokens):])
    stars = encode_stars(model, batch, vocabulary, normalisation, new_rows, settings.folds,
                         settings.seed)
    if len(stars) < 2 * settings.folds:
        raise ValueError(f"{len(stars)} stars have both tokens the model reads and a new "
                         f"label: too few for {settings.folds} folds")
    network = model.network.with_tokens(n_rows + len(new_ids), settings.seed)
    # the new names are answers only (and so stay the labels of an earlier fine-tune)
    network.config = dataclasses.replace(
        network.config, n_input_tokens=model.config.n_input_tokens or n_rows)
    network.to(device).eval()     # eval: no dropout; the encoder's output is fixed anyway
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    _, answer_rows = _answer_rows(model)
    fits = {}
    for method in (settings.methods() if methods is None else methods):
        fits[method] = fit_method(network, stars, settings, method, new_rows,
                                  answer_rows=answer_rows, out_dir=out_dir, resume=resume,
                                  device=device)
    return network, normalisation, stars, fits


def tuned_model(model, network, normalisation, vocabulary, metadata):
    """The `TrainedModel` of a taught ``network`` (`build_network`), knowing ``vocabulary``."""
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return TrainedModel(network, normalisation, device=model.device,
                        metadata=ModelMetadata.from_dict(metadata),
                        vocabulary=model.vocabulary.extended(
                            vocabulary.tokens[len(model.tokens):]),
                        vocab_version=model.vocab_version)
