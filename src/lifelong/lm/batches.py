"""Batches of a stream of corpora: random windows (nanoGPT's ``get_batch``) and the replay mixer.

A batch is ``B`` windows of ``block_size + 1`` consecutive tokens of a corpus's training part,
starting at offsets drawn uniformly from one seeded ``torch.Generator``; the inputs are the first
``block_size`` tokens, the targets the last ``block_size`` (next-token prediction).

Replay (Ibrahim et al., "Simple and Scalable Strategies to Continually Pre-train Large Language
Models", TMLR 2024, Sec. 5.3; Abbes et al., CoLLAs 2025, mixed-batch replay with
``replay_buffer_proportion``): while corpus ``t`` trains, a fraction ``r`` of the windows comes from
the earlier corpora ``0..t-1``, read from their token arrays (the whole earlier corpus is the
buffer). So that the fraction is exactly ``r`` over the run even when ``r*B`` is not a whole number,
step ``s`` (counted from the corpus's start) replays ``floor(r*B*(s+1)) - floor(r*B*s)`` windows;
each replayed window picks its earlier corpus uniformly at random, then its offset.

A task may join several corpora (``A+B`` on the command line): the joint baseline Ibrahim et al.
compare with, training on the union from scratch (Sec. 5, "trained on the union of both datasets").
Each of its windows picks a member corpus with probability proportional to its training tokens, so
that the task samples windows as from the corpora concatenated.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from lifelong.errors import ConfigError
from lifelong.lm.tokens import TokenCorpus


def check_replay(ratio: float) -> float:
    """``ratio`` as a float in ``[0, 1)``, else a :class:`ConfigError`."""
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0 <= ratio < 1:
        raise ConfigError(f"replay ratio must be a number in [0, 1) (0.05 is 5%), got {ratio!r}")
    return float(ratio)


def windows(array: np.ndarray, starts: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets (int64, ``len(starts) x block_size``) read at ``starts``."""
    rows = [torch.from_numpy(np.asarray(array[i:i + block_size + 1], dtype=np.int64)) for i in starts.tolist()]
    both = torch.stack(rows)
    return both[:, :-1], both[:, 1:]


def draw_starts(length: int, count: int, block_size: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` window offsets in ``[0, length - block_size - 1]``, uniform."""
    if length < block_size + 1:
        raise ConfigError(f"a corpus of {length} training tokens is shorter than one window of block_size + 1 = "
                          f"{block_size + 1}; use a smaller --block-size or a larger corpus")
    return torch.randint(length - block_size, (count,), generator=generator)


def replayed_count(ratio: float, batch_size: int, step: int) -> int:
    """How many of step ``step``'s windows are replayed: ``floor(rB(s+1)) - floor(rBs)``."""
    return math.floor(ratio * batch_size * (step + 1)) - math.floor(ratio * batch_size * step)


def split_task(name: str) -> list[str]:
    """The corpora of one task of a stream: ``"A"`` is ``["A"]``, ``"A+B"`` (joint) ``["A", "B"]``."""
    parts = name.split("+")
    if not all(parts) or len(set(parts)) != len(parts):
        raise ConfigError(f"a task of the stream is a corpus or corpora joined by + (A+B), each once, got {name!r}")
    return parts


class ReplayMixer:
    """The batches of a stream with replay fraction ``ratio`` of the earlier corpora. ``tasks``
    lists each task's corpora (indices into ``corpora``); by default each corpus is a task."""

    def __init__(self, corpora: Sequence[TokenCorpus], batch_size: int, block_size: int, ratio: float,
                 generator: torch.Generator, tasks: Sequence[Sequence[int]] | None = None) -> None:
        self.corpora = list(corpora)
        self.tasks = [list(t) for t in tasks] if tasks is not None else [[i] for i in range(len(self.corpora))]
        self.batch_size, self.block_size = batch_size, block_size
        self.ratio = check_replay(ratio)
        self.generator = generator
        self.sources: torch.Tensor | None = None  # the corpus of each window of the latest batch
        for c in self.corpora:
            draw_starts(len(c.train), 0, block_size, generator)  # a corpus too short fails now, not mid-run

    def earlier(self, task: int) -> list[int]:
        """The corpora of tasks before ``task`` that ``task`` does not train on, in order."""
        seen = [j for t in self.tasks[:task] for j in t if j not in self.tasks[task]]
        return list(dict.fromkeys(seen))

    def draw(self, members: Sequence[int], which: torch.Tensor, xs: list, ys: list,
             sources: list | None = None) -> None:
        """Append to ``xs``, ``ys`` the windows of ``members[k]`` for each ``k`` in ``which``, by corpus
        (and to ``sources``, if given, each window's corpus)."""
        for k, j in enumerate(members):
            picked = int((which == k).sum())
            if picked:
                train = self.corpora[j].train
                x, y = windows(train, draw_starts(len(train), picked, self.block_size, self.generator),
                               self.block_size)
                xs.append(x)
                ys.append(y)
                if sources is not None:
                    sources.append(torch.full((picked,), j, dtype=torch.long))

    def batch(self, task: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Step ``step`` (from task ``task``'s start) of task ``task``: replayed windows first;
        :attr:`sources` is then each window's corpus."""
        old = self.earlier(task)
        n_old = replayed_count(self.ratio, self.batch_size, step) if old else 0
        g = self.generator
        xs: list[torch.Tensor] = []
        ys: list[torch.Tensor] = []
        sources: list[torch.Tensor] = []
        if n_old:
            self.draw(old, torch.randint(len(old), (n_old,), generator=g), xs, ys, sources)
        members, n_new = self.tasks[task], self.batch_size - n_old
        if len(members) == 1:
            which = torch.zeros(n_new, dtype=torch.long)
        else:  # joint: each window's corpus in proportion to the training tokens
            sizes = torch.tensor([float(len(self.corpora[j].train)) for j in members])
            which = torch.multinomial(sizes, n_new, replacement=True, generator=g)
        self.draw(members, which, xs, ys, sources)
        self.sources = torch.cat(sources)
        return (torch.cat(xs), torch.cat(ys)) if len(xs) > 1 else (xs[0], ys[0])
