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


class ReplayMixer:
    """The batches of a stream with replay fraction ``ratio`` of the earlier corpora."""

    def __init__(self, corpora: Sequence[TokenCorpus], batch_size: int, block_size: int, ratio: float,
                 generator: torch.Generator) -> None:
        self.corpora = list(corpora)
        self.batch_size, self.block_size = batch_size, block_size
        self.ratio = check_replay(ratio)
        self.generator = generator
        for c in self.corpora:
            draw_starts(len(c.train), 0, block_size, generator)  # a corpus too short fails now, not mid-run

    def batch(self, task: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Step ``step`` (from corpus ``task``'s start) of corpus ``task``: replayed windows first."""
        n_old = replayed_count(self.ratio, self.batch_size, step) if task > 0 else 0
        g, T = self.generator, self.block_size
        xs, ys = [], []
        if n_old:
            which = torch.randint(task, (n_old,), generator=g)
            for j in range(task):
                picked = int((which == j).sum())
                if picked:
                    x, y = windows(self.corpora[j].train, draw_starts(len(self.corpora[j].train), picked, T, g), T)
                    xs.append(x)
                    ys.append(y)
        current = self.corpora[task].train
        x, y = windows(current, draw_starts(len(current), self.batch_size - n_old, T, g), T)
        xs.append(x)
        ys.append(y)
        return (torch.cat(xs), torch.cat(ys)) if len(xs) > 1 else (x, y)
