"""The one epoch loop of giantfm: every network that learns -- `giantfm.model.train` and the
adaptations of `giantfm.finetune` -- goes through `run_epochs`.

The loop owns what is the same for all of them:

- the learning-rate schedule (`cosine_schedule`: linear warm-up, then cosine decay to a
  floor, following whichever runs out first, steps or a time budget);
- early stopping: the best epoch (lowest validation ``monitor``) is kept, and the run
  ends after ``patience`` epochs without a better one;
- the time limits: ``max_minutes`` ends the run (and shapes the schedule),
  ``stop_after_minutes`` ends a *sitting*, which ``resume`` continues;
- the checkpoint (`CHECKPOINT_FILE`, written atomically after every epoch): the state of
  every learning part (network, optimiser, schedule, random generators), the history,
  the best epoch's weights, and the settings, which a resumed run must share
  (`check_settings`);
- the progress bar (the verbs' one helper).

A caller supplies only what is its own: ``train_epoch(epoch)``, one pass over its training
stars returning its metrics, and ``validate()``, the validation metrics (with
``monitor``); optional hooks save models as the run goes.
"""
import dataclasses
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ..exceptions import GiantfmWarning
from ..utils import atomic_write
from ..utils._progress import progress_bar

__all__ = ["CHECKPOINT_FILE", "LoopSettings", "LoopResult", "cosine_schedule", "run_epochs",
           "read_checkpoint", "finished_run", "write_checkpoint", "check_settings", "RunClock"]

#: The checkpoint of a run in its output folder (``resume`` reads it).
CHECKPOINT_FILE = "checkpoint.pt"


@dataclasses.dataclass
class LoopSettings:
    """How long a run goes on.

    Parameters
    ----------
    epochs : int
        Most epochs.
    patience : int
        Stop after this many epochs without a better validation ``monitor`` (0: never).
    max_minutes : float, optional
        End the run after the epoch (or step: see `RunClock.out_of_time`) that passes
        this much wall time, counted over all sittings.
    stop_after_minutes : float, optional
        End this sitting after the first epoch that passes this much wall time; the run
        itself goes on with ``resume`` (unlike ``max_minutes`` it does not end the run).
    monitor : str
        The key of ``validate()``'s metrics that decides the best epoch (lower is better).
    progress : bool or {'auto', 'on', 'off'}, optional
        The progress bar over the epochs (`giantfm.predict`'s rules).
    desc : str
        The progress bar's label.
    warn_still_improving : bool
        Warn (`~giantfm.exceptions.GiantfmWarning`) when the run ends at ``epochs`` on its
        best epoch (`LoopResult.still_improving`).
    """

    epochs: int
    patience: int = 0
    max_minutes: float = None
    stop_after_minutes: float = None
    monitor: str = "val_loss"
    progress: object = None
    desc: str = "training"
    warn_still_improving: bool = False

    def __post_init__(self):
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not isinstance(self.patience, int) or isinstance(self.patience, bool) \
                or self.patience < 0:
            raise ValueError(f"patience must be an integer >= 0, got {self.patience!r}")
        for name in ("max_minutes", "stop_after_minutes"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"{name} must be >= 0 or None, got {value!r}")


@dataclasses.dataclass
class LoopResult:
    """What a run did: ``history`` (one dict per epoch, the sittings before included),
    ``best`` (the best ``monitor``), ``best_epoch``, ``finished`` (False when only a
    sitting ended), ``stopped`` (why the run ended: 'epochs', 'patience', 'time' or
    'sitting') and ``elapsed_s`` (over all sittings)."""

    history: list
    best: float
    best_epoch: int
    finished: bool
    stopped: str
    elapsed_s: float

    @property
    def epochs_run(self):
        return len(self.history)

    @property
    def still_improving(self):
        """True when the run ended at its epoch limit on its best epoch: more epochs might
        have done better."""
        return self.stopped == "epochs" and self.best_epoch == self.epochs_run


def cosine_schedule(total_steps, warmup_steps=0, floor=0.02, time_used=None):
    """The learning-rate factor of each step: linear warm-up over ``warmup_steps`` (capped
    at a tenth of ``total_steps``), then cosine decay from 1 to ``floor``.

    ``time_used`` (a callable giving the fraction of a wall-time budget spent) makes the
    decay follow whichever runs out first, steps or time, so that a run stopped by a time
    limit still ends annealed rather than at a high learning rate (such runs then depend
    on the machine's speed). For `torch.optim.lr_scheduler.LambdaLR`.
    """
    warmup_steps = min(warmup_steps, total_steps // 10)

    def factor(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        if time_used is not None:
            progress = max(progress, time_used())
        progress = min(progress, 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


class RunClock:
    """Wall time of a run over all its sittings (``before``: the seconds of earlier ones)."""

    def __init__(self, max_minutes=None, before=0.0):
        self.max_minutes = max_minutes
        self.before = before
        self.started = time.perf_counter()

    def elapsed(self):
        """Seconds so far, all sittings."""
        return self.before + time.perf_counter() - self.started

    def fraction_used(self):
        """The share of ``max_minutes`` spent (for `cosine_schedule`), or None without one."""
        return None if self.max_minutes is None else self.elapsed() / (60 * self.max_minutes)

    def out_of_time(self):
        """True once ``max_minutes`` have passed (a step loop may end its epoch early)."""
        return self.max_minutes is not None and self.elapsed() > 60 * self.max_minutes


def _state_of(part):
    """The saveable state of a learning part: a module, optimiser or scheduler
    (``state_dict``), a torch generator (``get_state``) or a numpy generator."""
    if isinstance(part, torch.Generator):
        return part.get_state()
    if isinstance(part, np.random.Generator):
        return part.bit_generator.state
    return part.state_dict()


def _restore(part, state):
    if isinstance(part, torch.Generator):
        part.set_state(state)
    elif isinstance(part, np.random.Generator):
        part.bit_generator.state = state
    else:
        part.load_state_dict(state)


def check_settings(path, saved, given):
    """Refuse to resume the run of checkpoint ``path`` with settings other than its own.

    ``saved`` and ``given`` are plain dicts of the settings that shape the run (the caller
    leaves out those of a sitting, such as the progress bar); the message names every key
    that differs.
    """
    if saved == given:
        return

    def flat(settings):   # one level down, so that the message names the setting itself
        out = {}
        for key, value in settings.items():
            if isinstance(value, dict):
                out.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                out[key] = value
        return out
    saved, given = flat(saved), flat(given)
    changed = sorted(k for k in set(saved) | set(given) if saved.get(k) != given.get(k))
    raise ValueError(f"the run in {Path(path).parent} was started with other settings "
                     f"({', '.join(changed)}): resume it with the same ones")


def write_checkpoint(path, state):
    """Write a checkpoint atomically (a run killed while writing keeps the one before)."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _load_checkpoint(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:   # torch raises RuntimeError, EOFError, UnpicklingError, ...
        raise ValueError(f"cannot resume from {path}: the checkpoint is not readable "
                         f"({type(exc).__name__}: {exc}); start the run again") from None


def read_checkpoint(out_dir):
    """The checkpoint of the unfinished run in ``out_dir``.

    Raises
    ------
    FileNotFoundError
        There is none.
    ValueError
        It cannot be read, or its run has finished.
    """
    path = Path(out_dir) / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"nothing to resume: {path} does not exist")
    state = _load_checkpoint(path)
    if state.get("finished"):
        raise ValueError(f"the run in {out_dir} has finished (epoch {state['epoch']}): "
                         "nothing to resume")
    return state


def finished_run(out_dir, monitor):
    """``(checkpoint, LoopResult)`` of the run in ``out_dir`` if it has finished (a resumed
    caller takes its answer as it is), else None (no checkpoint, or a run to continue
    with ``resume``).

    Raises
    ------
    ValueError
        The checkpoint cannot be read.
    """
    path = Path(out_dir) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    state = _load_checkpoint(path)
    if not state.get("finished"):
        return None
    history = state["history"]
    return state, LoopResult(history, state["best"], _best_epoch(history, monitor), True,
                             state.get("stopped", "epochs"), history[-1]["elapsed_s"])


def _best_epoch(history, monitor):
    """The epoch of the lowest finite ``monitor`` in ``history`` (None: no finite one)."""
    finite = [row for row in history if math.isfinite(row[monitor])]
    return min(finite, key=lambda row: row[monitor])["epoch"] if finite else None


def run_epochs(settings, parts, train_epoch, validate, *, network, run_settings=None,
               out_dir=None, resume=False, clock=None, on_improved=None, on_epoch_end=None,
               extra_state=None):
    """Run epochs until the last, ``patience`` or a time limit (see the module docstring).

    Parameters
    ----------
    settings : `LoopSettings`
    parts : dict
        ``{name: part}``: every stateful thing of the run (the network, the optimiser, the
        schedule, torch and numpy random generators), saved in the checkpoint and
        restored on ``resume``.
    train_epoch : callable
        ``train_epoch(epoch) -> dict``: one pass over the training stars; returns its
        metrics (``train_loss``, ...). It may end early when ``clock.out_of_time()``.
    validate : callable
        ``validate() -> dict``: the validation metrics, with ``settings.monitor``.
    network : `torch.nn.Module`
        Whose weights are the run's answer: the best epoch's are kept, and loaded into it
        when the run ends.
    run_settings : dict, optional
        The settings that shape the run, saved in the checkpoint; a resumed run must give
        the same (`check_settings`).
    out_dir : path-like, optional
        Where the checkpoint is written after every epoch (None: nowhere; no ``resume``).
    resume : bool
        Continue the run of ``out_dir`` from its checkpoint.
    clock : `RunClock`, optional
        The run's clock, if the caller needs it before the loop (for the schedule); its
        ``before`` is set from the checkpoint on ``resume``.
    on_improved : callable, optional
        ``on_improved(epoch, metrics)`` after an epoch better than all before.
    on_epoch_end : callable, optional
        ``on_epoch_end(epoch, history, finished)`` after every epoch's bookkeeping, before
        the checkpoint.
    extra_state : dict, optional
        A dict of the caller's own that is saved in the checkpoint and, on ``resume``,
        updated in place from it (the training metadata, say).

    Returns
    -------
    `LoopResult`
    """
    if resume and out_dir is None:
        raise ValueError("resume needs the out_dir of the run to continue")
    run_settings = dict(run_settings or {})
    clock = clock or RunClock(settings.max_minutes)
    path = None if out_dir is None else Path(out_dir) / CHECKPOINT_FILE
    history, best, best_state, stale, first_epoch = [], math.inf, None, 0, 1
    if resume:
        state = read_checkpoint(out_dir)
        check_settings(path, state["settings"], run_settings)
        for name, part in parts.items():
            _restore(part, state["parts"][name])
        history, best, best_state, stale = (state[k] for k in ("history", "best", "best_state",
                                                               "stale"))
        if extra_state is not None:
            extra_state.update(state.get("extra", {}))
        first_epoch, clock.before = state["epoch"] + 1, state["elapsed_s"]
        clock.started = time.perf_counter()

    bar = progress_bar(settings.epochs, progress=settings.progress, unit="epoch",
                       desc=settings.desc)
    if bar is not None:
        bar.update(first_epoch - 1)
    sitting = time.perf_counter()
    stopped, finished = "sitting", False
    for epoch in range(first_epoch, settings.epochs + 1):
        trained = train_epoch(epoch)
        metrics = validate()
        score = metrics[settings.monitor]
        improved = score < best
        history.append({"epoch": epoch, **trained, **metrics, "elapsed_s": clock.elapsed(),
                        "best": int(improved)})
        if improved:
            best, stale = score, 0
            best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
            if on_improved is not None:
                on_improved(epoch, metrics)
        else:
            stale += 1
        for why, ends in (("time", clock.out_of_time()),
                          ("patience", settings.patience and stale >= settings.patience),
                          ("epochs", epoch == settings.epochs)):
            if ends:
                stopped, finished = why, True
                break
        if on_epoch_end is not None:
            on_epoch_end(epoch, history, finished)
        if path is not None:
            checkpoint = {"epoch": epoch, "parts": {n: _state_of(p) for n, p in parts.items()},
                          "history": history, "best": best, "best_state": best_state,
                          "stale": stale, "elapsed_s": clock.elapsed(), "finished": finished,
                          "stopped": stopped, "settings": run_settings,
                          "extra": {} if extra_state is None else dict(extra_state)}
            write_checkpoint(path, checkpoint)
        if bar is not None:
            bar.set_postfix(val=f"{score:.3f}", best=f"{best:.3f}")
            bar.update()
        if finished:
            break
        if settings.stop_after_minutes is not None and \
                time.perf_counter() - sitting > 60 * settings.stop_after_minutes:
            break
    if bar is not None:
        bar.close()
    if best_state is not None:
        network.load_state_dict(best_state)
    result = LoopResult(history, best, _best_epoch(history, settings.monitor), finished, stopped,
                        history[-1]["elapsed_s"] if history else clock.elapsed())
    if settings.warn_still_improving and result.still_improving:
        warnings.warn(f"{settings.desc}: the best epoch was the last ({result.best_epoch} of "
                      f"{settings.epochs}): the run was still improving, and more epochs "
                      "might do better", GiantfmWarning, stacklevel=3)
    return result
