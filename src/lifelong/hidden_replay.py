"""Hidden-activation replay (Gurbuz et al., "SHARP: Sparsity and Hidden Activation RePlay for
Neuro-Inspired Continual Learning", 2023, Sec. 3.3; BurakGurbuz97/SHARP-Continual-Learning
``Source/memory.py``, ``Source/learner.py``): instead of raw inputs, the memory keeps what a
frozen early part of the network outputs for them (:mod:`lifelong.nets.split`), quantised to
8 bits, and replays it through the trainable late part only.

- :func:`quantise` / :func:`dequantise`: the reference's ``QuantizedTensor``, one offset and one
  scale per stored tensor (the reference quantises each class's block of activations as one
  tensor): ``q = round((a − min) / (max − min) · 255)`` as ``uint8``, and back
  ``a' = q / 255 · (max − min) + min``, so ``|a − a'| ≤ (max − min) / 510``.
- :class:`ActivationMemory` (``activations``): at the end of each task, the first ``quota``
  training examples of each of its classes (the reference's ``get_n_samples_per_class``: the first
  ``stm_per_class`` of the class in the task's order) go through the early part, and the class's
  block is quantised as one tensor; a class seen again replaces its block, as the reference's
  per-class dictionary does, except on a domain-incremental stream (Permuted-MNIST: every task
  has every class), where blocks are kept per (task, class) and the capacity is shared by every
  (task, class) pair, so that each task keeps its own. Every class of the stream has the same quota, ``capacity`` shared by
  :func:`lifelong.memory.balanced_quotas` (25 per class for 250 slots on Split-MNIST, the
  reference's ``stm_per_class``). A step replays only the classes stored at the last
  ``recent_tasks`` task ends (``stm_num_tasks``, 1 in every script of the reference; 0: every
  earlier task, the ``sharp-lite`` preset's default), the draw
  shared evenly among them (the first classes take the remainder), without replacement within
  a class unless it has too few rows (``MemoryBuffer.sample_n``).

The memory freezes the early part when training starts (no gradient, out of the optimiser, batch
norm in eval mode), so that what it stored stays what the network computes.
"""
from __future__ import annotations

import numpy as np
import torch

from lifelong.memory import Memory, balanced_quotas, register_memory
from lifelong.nets.split import INPUT, FrozenSplit, frozen_split

LEVELS = 2 ** 8 - 1  # 8-bit codes 0..255


def quantise(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(codes, min, max)`` of ``a``: ``codes = round((a − min) / (max − min) · 255)`` as
    ``uint8`` (``QuantizedTensor.__init__``, rounding half to even as ``torch.round``). A constant
    tensor (``max == min``, where the reference divides by zero) gets codes 0."""
    lo, hi = a.min(), a.max()
    span = hi - lo
    if span > 0:
        codes = torch.round((a - lo) / span * LEVELS).to(torch.uint8)
    else:
        codes = torch.zeros_like(a, dtype=torch.uint8)
    return codes, lo, hi


def dequantise(codes: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """``codes / 255 · (max − min) + min`` (``QuantizedTensor.dequantize``); ``lo`` and ``hi``
    broadcast against ``codes`` (one per row here, each row holding its class's pair)."""
    return codes.to(torch.float32) / LEVELS * (hi - lo) + lo


def first_of_class(state, c: int, n: int) -> torch.Tensor:
    """The un-augmented inputs of the first ``n`` training examples of class ``c`` in the finished
    task's order (the reference's ``get_n_samples_per_class``)."""
    task, stream = state.task, state.stream
    labels = stream.labels("train", task.train_idx)
    positions = torch.nonzero(labels == c).squeeze(1)[:n]
    ids = None if task.train_task is None else task.train_task[positions]
    return stream.inputs("train", task.train_idx[positions], task.index if ids is None else ids)


def _rows(t: torch.Tensor, ndim: int) -> torch.Tensor:
    return t.view(-1, *([1] * (ndim - 1)))


class ActivationMemory(Memory):
    """Class blocks of 8-bit early-part activations, replayed from the last ``recent_tasks``
    tasks (see the module docstring). ``split_after``: where to cut the backbone
    (:func:`lifelong.nets.split.frozen_split`; ``auto``: the backbone's own cut, ``input``: raw
    replay). Fields: ``x`` (codes), ``lo``/``hi`` (each row's class's minimum and maximum),
    ``y``, ``task`` (the task at whose end the row was stored). :meth:`sample` returns ``x``
    dequantised: activations that go into the late part (:attr:`split`)."""

    name = "activations"
    hidden = True  # what it replays enters the network after the split (lifelong.objective.StepBatch)
    needs_task_boundaries = "it stores each task's activations at the task's end, so it would stay empty"

    @classmethod
    def check_options(cls, recent_tasks: int = 1, split_after: str = "auto") -> None:
        if isinstance(recent_tasks, bool) or not isinstance(recent_tasks, int) or recent_tasks < 0:
            raise ValueError(f"`recent_tasks` must be an integer >= 0 (0: every earlier task), got {recent_tasks!r}")
        if not isinstance(split_after, str) or not split_after:
            raise ValueError(f"`split_after` must be a layer name such as 'features.2', 'auto' or "
                             f"'{INPUT}', got {split_after!r}")

    @classmethod
    def check_model(cls, model, recent_tasks: int = 1, split_after: str = "auto") -> None:
        """Refuse, before training, a backbone that cannot be cut where asked (one line)."""
        frozen_split(model, split_after)

    def __init__(self, capacity: int, generator: np.random.Generator, recent_tasks: int = 1,
                 split_after: str = "auto", **kwargs) -> None:
        self.check_options(recent_tasks, split_after)
        super().__init__(capacity, generator, **kwargs)
        self.recent_tasks, self.split_after = recent_tasks, split_after
        self.split: FrozenSplit | None = None
        self.current = 0  # the task being trained

    # -- the split: resolved and frozen before the first step, and again on resume -----------------
    def _attach(self, state) -> None:
        if self.split is None:
            self.split = frozen_split(state.model, self.split_after)
        self.split.freeze(state.optimizer)

    def begin_task(self, state) -> None:
        self._attach(state)
        self.current = state.task.index

    def before_step(self, state, batch) -> None:
        self.split.early.eval()  # the loop's model.train() would let batch norm move the frozen part

    @staticmethod
    def per_task(state) -> bool:
        """Whether blocks are kept per (task, class): on a domain-incremental stream, where every
        task brings the same classes (Permuted-MNIST), so that one task's blocks do not replace
        another's; the reference's per-class blocks (class-incremental streams) otherwise."""
        return state.stream.scenario == "domain-il"

    def quotas(self, state) -> dict[tuple[int, int], int]:
        """Each block's number of slots, by ``(task, class)``: ``capacity`` shared evenly by every
        class of the stream (each class's share under every task that has it, the class being
        stored again at each), or on a domain-incremental stream by every (task, class) pair."""
        stream = state.stream
        labels = stream.source.train_y
        if self.per_task(state):
            pairs = [(t.index, int(c)) for t in stream.tasks for c in t.classes]
            caps = [int((stream.labels("train", t.train_idx) == c).sum()) for t in stream.tasks for c in t.classes]
            return dict(zip(pairs, balanced_quotas(self.rows, caps)))
        classes = sorted({int(c) for task in stream.tasks for c in task.classes})
        share = dict(zip(classes, balanced_quotas(self.rows, [int((labels == c).sum()) for c in classes])))
        return {(t.index, int(c)): share[int(c)] for t in stream.tasks for c in t.classes}

    @torch.no_grad()
    def end_task(self, state) -> None:
        task, quotas, blocks = state.task, self.quotas(state), []
        for c in task.classes:
            x = first_of_class(state, int(c), quotas.get((task.index, int(c)), 0))
            if len(x) == 0:
                continue
            acts = torch.cat([self.split.hidden(x[s:s + 1000]) for s in range(0, len(x), 1000)])
            codes, lo, hi = quantise(acts)
            n = len(codes)
            blocks.append({"x": codes, "lo": lo.expand(n).clone(), "hi": hi.expand(n).clone(),
                           "y": torch.full((n,), int(c), dtype=torch.long, device=codes.device),
                           "task": torch.full((n,), task.index, dtype=torch.long, device=codes.device)})
        if not blocks:
            return
        new = {name: torch.cat([b[name] for b in blocks]) for name in blocks[0]}
        if self.count:  # a class stored again replaces its block (per task on a domain-incremental stream)
            old = {name: value[: self.count] for name, value in self.fields.items()}
            keep = (torch.ones_like(old["y"], dtype=torch.bool) if self.per_task(state)
                    else ~torch.isin(old["y"], new["y"]))
            new = {name: torch.cat([old[name][keep], new[name]]) for name in new}
        self.fields = {}
        self._allocate({name: value[:1] for name, value in new.items()})
        self.count = len(new["y"])
        for name, value in new.items():
            self.fields[name][: self.count] = value.to(self.device)

    def recent(self) -> torch.Tensor:
        """The rows stored at the end of one of the last ``recent_tasks`` tasks before the current one."""
        task = self.fields["task"][: self.count]
        return torch.nonzero((task >= self.first_recent(self.current)) & (task < self.current)).squeeze(1)

    def first_recent(self, current: int) -> int:
        """The first task whose classes are replayed while training task ``current``."""
        return 0 if self.recent_tasks == 0 else max(0, current - self.recent_tasks)

    def sample(self, n: int) -> dict[str, torch.Tensor]:
        """``n`` rows of the recent classes, shared evenly among the classes (the first take the
        remainder), each class's without replacement unless it has fewer; ``x`` dequantised."""
        rows = self.recent()
        y = self.fields["y"][rows]
        classes = sorted(y.unique().tolist())
        chosen = []
        if classes:
            share, extra = divmod(n, len(classes))
            for i, c in enumerate(classes):
                own = rows[y == c].cpu().numpy()
                m = share + (i < extra)
                chosen.append(own[self.sample_rng.choice(len(own), size=m, replace=m > len(own))])
        index = self._indices(np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64))
        codes, lo, hi, y, task = (self.fields[k].index_select(0, index) for k in ("x", "lo", "hi", "y", "task"))
        x = dequantise(codes, _rows(lo, codes.dim()), _rows(hi, codes.dim()))
        return {"x": x, "y": y, "task": task, "index": index}

    def activations(self, classes_of_tasks: range) -> dict[tuple[int, int], torch.Tensor]:
        """Dequantised stored activations of the classes stored at the end of the given tasks,
        by ``(task, class)``."""
        out: dict[tuple[int, int], torch.Tensor] = {}
        if not self.count:
            return out
        task, y = self.fields["task"][: self.count], self.fields["y"][: self.count]
        for t in classes_of_tasks:
            for c in sorted(y[task == t].unique().tolist()):
                rows = torch.nonzero((task == t) & (y == c)).squeeze(1)
                codes = self.fields["x"][rows]
                out[(t, c)] = dequantise(codes, _rows(self.fields["lo"][rows], codes.dim()),
                                         _rows(self.fields["hi"][rows], codes.dim()))
        return out

    def state_dict(self) -> dict:
        return {**super().state_dict(), "current": self.current}

    def load_state_dict(self, state: dict, context=None) -> None:
        super().load_state_dict(state, context)
        self.current = int(state["current"])
        if context is not None:
            self._attach(context)


register_memory(ActivationMemory)
