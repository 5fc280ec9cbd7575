"""Learning-rate schedules for a stream of corpora, as PyTorch LR schedulers (resumable through
``state_dict``). Step ``s`` counts optimiser steps from the start of the stream; corpus ``t`` has
``N_t`` steps. With ``W`` warm-up steps, peak ``η_max`` and floor ``η_min``, the warm-up and
cosine of one cycle of ``N`` steps (Loshchilov and Hutter 2017, as GPT-NeoX and nanoGPT use it)::

    cycle(u; start, N) = start + (η_max - start) * (u + 1) / W                 u < W
                       = η_min + ½ (η_max - η_min) (1 + cos(π (u - W) / (N - W)))   W <= u < N

Kinds (Ibrahim et al., "Simple and Scalable Strategies to Continually Pre-train Large Language
Models", TMLR 2024, Sec. 5 and 7; Gupta et al. 2023 for the re-warming study):

- ``cosine``: one cycle over the whole stream, ``cycle(s; 0, ΣN_t)``;
- ``rewarm``: re-warm and re-decay on each corpus, ``cycle(u; 0, N_0)`` on the first and
  ``cycle(u; η_min, N_t)`` on each later one (``u`` counted from the corpus's start): the
  warm-up of a later corpus starts at ``η_min``, where the previous cosine ended;
- ``constant``: the first corpus's cycle, then ``η_min`` held on every later corpus: the
  baseline that continues at the final learning rate without re-warming (our reading of the
  papers' "constant" comparison);
- ``infinite`` (Ibrahim et al. Sec. 7.2): warm-up, then a cosine cool-down over ``C`` steps
  from ``η_max`` to ``η_const``, then ``η_const`` for as many corpora as come, then a linear
  anneal to ``η_min`` over the last ``A`` steps of the stream (the "checkpoint release"; here at
  the stream's end only). The paper's cool-down may also be inverse-square-root; only cosine here,
  and the anneal's shape is our choice (linear).

After the last step every kind stays at its final value.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lifelong.errors import ConfigError

KINDS = ("cosine", "rewarm", "constant", "infinite")


@dataclass(frozen=True)
class Schedule:
    kind: str
    steps: tuple[int, ...]  # steps of each corpus
    lr: float  # η_max
    min_lr: float  # η_min
    warmup: int = 0  # W, per cycle
    const_lr: float | None = None  # infinite: η_const
    cooldown: int = 0  # infinite: C
    anneal: int = 0  # infinite: A

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"unknown schedule {self.kind!r}: choose {', '.join(KINDS)}")
        if not self.steps or any(n < 1 for n in self.steps):
            raise ConfigError(f"each corpus needs at least one step, got {list(self.steps)}")
        if not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"need 0 <= min_lr <= lr, got min_lr {self.min_lr} and lr {self.lr}")
        shortest = sum(self.steps) if self.kind in ("cosine", "infinite") else min(self.steps)
        if not 0 <= self.warmup < shortest:
            raise ConfigError(f"warm-up must be 0 or more and shorter than a cycle ({shortest} steps), "
                              f"got {self.warmup}")
        if self.kind == "infinite":
            self._check_infinite()

    def _check_infinite(self) -> None:
        const = self.const_lr
        if const is None or not self.min_lr <= const <= self.lr:
            raise ConfigError(f"the infinite schedule needs min_lr <= const_lr <= lr, got const_lr {const}")
        if self.cooldown < 0 or self.anneal < 0 or self.warmup + self.cooldown + self.anneal > sum(self.steps):
            raise ConfigError(f"warm-up {self.warmup} + cool-down {self.cooldown} + anneal {self.anneal} steps "
                              f"exceed the stream's {sum(self.steps)} steps")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["steps"] = list(self.steps)
        return d


def _cycle(u: int, start: float, n: int, s: Schedule) -> float:
    if u < s.warmup:
        return start + (s.lr - start) * (u + 1) / s.warmup
    if u >= n:
        return s.min_lr
    return s.min_lr + 0.5 * (s.lr - s.min_lr) * (1 + math.cos(math.pi * (u - s.warmup) / (n - s.warmup)))


def _corpus_of(step: int, steps: tuple[int, ...]) -> tuple[int, int]:
    """(corpus, step within it) of global step ``step``; past the end: the last corpus's end."""
    for t, n in enumerate(steps):
        if step < n:
            return t, step
        step -= n
    return len(steps) - 1, steps[-1] + step


def _infinite(step: int, s: Schedule) -> float:
    total, const = sum(s.steps), s.const_lr
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    if step < s.warmup + s.cooldown:
        return const + 0.5 * (s.lr - const) * (1 + math.cos(math.pi * (step - s.warmup) / s.cooldown))
    if step < total - s.anneal:
        return const
    if step >= total:
        return s.min_lr
    return const + (s.min_lr - const) * (step - (total - s.anneal) + 1) / s.anneal


def lr_at(step: int, s: Schedule) -> float:
    """The learning rate of optimiser step ``step`` (0-based, from the stream's start)."""
    if s.kind == "cosine":
        return _cycle(step, 0.0, sum(s.steps), s)
    if s.kind == "infinite":
        return _infinite(step, s)
    t, u = _corpus_of(step, s.steps)
    if t == 0:
        return _cycle(u, 0.0, s.steps[0], s)
    if s.kind == "constant":
        return s.min_lr
    return _cycle(u, s.min_lr, s.steps[t], s)


class StreamLR(LRScheduler):
    """A :class:`Schedule` as an LR scheduler: every parameter group gets ``lr_at(step)``. Its
    ``state_dict`` holds plain values only (the schedule as a dict), so it goes into a checkpoint
    read with ``weights_only=True``."""

    def __init__(self, optimizer: Optimizer, schedule: Schedule, last_epoch: int = -1) -> None:
        self.schedule_dict = schedule.to_dict()
        self._schedule = schedule
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        value = lr_at(self.last_epoch, self._schedule)
        return [value for _ in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "_schedule")}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict.get("schedule_dict") != self.schedule_dict:
            raise ConfigError("the checkpoint's learning-rate schedule differs from this run's; resume with the "
                              "settings the run was started with")
        self.__dict__.update(state_dict)
