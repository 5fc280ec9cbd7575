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

Several processes (:mod:`lifelong.distributed`): the memory is sharded. Each class block is the
one-process block (its rows chosen from the whole task, the quotas from the whole capacity:
:meth:`ActivationMemory.total_rows`), its rows dealt to the ranks in turn (the whole memory's
row ``i`` to rank ``i mod world``, the new rows numbered on after those kept), so that each rank
keeps its share of the ``capacity`` (a class stored again, which frees rows, may leave a rank a
few rows over it) and computes only its own rows' activations. Every block is quantised with
the minimum and maximum over all ranks' rows (one all-reduce), so that the union of the ranks'
memories is the one-process memory, code for code up to float sums (the early part's outputs of
fewer rows at a time). The frozen early part is the initial one on every rank (it gets no
gradient). A step replays from the rank's own rows; :meth:`ActivationMemory.activations`
gathers every rank's rows, each block in its one-process order (the ``order`` field), for the
masked kNN. A checkpoint holds every rank's rows; a resume with another number of ranks deals
them again (:func:`lifelong.distributed.memory_for_rank`, as the reservoir's).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from lifelong import distributed
from lifelong.memory import Memory, balanced_quotas, register_memory
from lifelong.nets.split import INPUT, FrozenSplit, frozen_split

LEVELS = 2 ** 8 - 1  # 8-bit codes 0..255


def quantise(a: torch.Tensor, lo: torch.Tensor | None = None,
             hi: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(codes, min, max)`` of ``a``: ``codes = round((a − min) / (max − min) · 255)`` as
    ``uint8`` (``QuantizedTensor.__init__``, rounding half to even as ``torch.round``). A constant
    tensor (``max == min``, where the reference divides by zero) gets codes 0. ``lo`` and ``hi``,
    when given, replace ``a``'s own minimum and maximum (a block whose rows several ranks share)."""
    lo = a.min() if lo is None else lo
    hi = a.max() if hi is None else hi
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
    return task_inputs(state, class_positions(state, c, n))


def class_positions(state, c: int, n: int) -> torch.Tensor:
    """The positions in the finished task of its first ``n`` training examples of class ``c``."""
    labels = state.stream.labels("train", state.task.train_idx)
    return torch.nonzero(labels == c).squeeze(1)[:n]


def task_inputs(state, positions: torch.Tensor) -> torch.Tensor:
    """The un-augmented inputs of the finished task's training examples at ``positions``."""
    task, stream = state.task, state.stream
    ids = None if task.train_task is None else task.train_task[positions]
    return stream.inputs("train", task.train_idx[positions], task.index if ids is None else ids)


def dealt(n: int, start: int, r: int, w: int) -> torch.Tensor:
    """The rows of a block of ``n`` that rank ``r`` of ``w`` keeps when the rows, numbered on from
    ``start``, are dealt to the ranks in turn: ``i`` with ``(start + i) mod w == r``. One rank:
    every row."""
    i = torch.arange(n)
    return i[(start + i) % w == r]


def within_blocks(task: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each row's position among the rows of its ``(task, class)`` block, in storage order (the
    ``order`` field of a memory saved before it was kept)."""
    order = torch.zeros_like(y)
    for t, c in {(int(a), int(b)) for a, b in zip(task.tolist(), y.tolist())}:
        rows = torch.nonzero((task == t) & (y == c)).squeeze(1)
        order[rows] = torch.arange(len(rows), device=y.device)
    return order


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
    sharded = True  # several processes: each rank keeps its turn of every block (see the module docstring)
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
        self.max_rows = kwargs.get("max_rows")
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
            return dict(zip(pairs, balanced_quotas(self.total_rows(), caps)))
        classes = sorted({int(c) for task in stream.tasks for c in task.classes})
        share = dict(zip(classes, balanced_quotas(self.total_rows(), [int((labels == c).sum()) for c in classes])))
        return {(t.index, int(c)): share[int(c)] for t in stream.tasks for c in t.classes}

    def total_rows(self) -> int:
        """The slots of the whole memory, what the quotas share: this memory's own; with several
        processes, the sum of the ranks' capacities (one all-reduce), bounded as one process
        bounds it (``max_rows``)."""
        if not distributed.parallel():
            return self.rows
        total = int(distributed.sum_([torch.tensor([self.capacity], device=self.device)])[0].item())
        return total if self.max_rows is None else max(1, min(total, int(self.max_rows)))

    def _allocate(self, batch: dict[str, torch.Tensor]) -> None:
        """Room for at least ``rows`` (a rank's turns may leave it a few rows over its share)."""
        rows = max(self.rows, len(next(iter(batch.values()))))
        self.fields = {name: torch.zeros((rows, *value.shape[1:]), dtype=value.dtype, device=self.device)
                       for name, value in batch.items()}

    @torch.no_grad()
    def end_task(self, state) -> None:
        task, quotas = state.task, self.quotas(state)
        chosen = [(int(c), class_positions(state, int(c), quotas.get((task.index, int(c)), 0))) for c in task.classes]
        chosen = [(c, positions) for c, positions in chosen if len(positions)]
        if not chosen:
            return
        old = {name: value[: self.count] for name, value in self.fields.items()}
        if old:  # a class stored again replaces its block (per task on a domain-incremental stream)
            replaced = torch.tensor([c for c, _ in chosen], device=old["y"].device)
            keep = (torch.ones_like(old["y"], dtype=torch.bool) if self.per_task(state)
                    else ~torch.isin(old["y"], replaced))
            old = {name: value[keep] for name, value in old.items()}
        r, w = distributed.rank(), distributed.world()
        start, blocks = self._stored_rows(len(old.get("y", ()))), []
        for c, positions in chosen:
            order = dealt(len(positions), start, r, w).to(positions.device)  # this rank's turns of the block
            start += len(positions)
            x = task_inputs(state, positions[order])
            acts = torch.cat([self.split.hidden(x[s:s + 1000]) for s in range(0, max(len(x), 1), 1000)])
            blocks.append((c, order, acts))
        new = self._quantised(blocks, task.index)
        if old:
            new = {name: torch.cat([old[name], new[name]]) for name in new}
        self.fields = {}
        self._allocate(new)
        self.count = len(new["y"])
        for name, value in new.items():
            self.fields[name][: self.count] = value.to(self.device)

    def _stored_rows(self, kept: int) -> int:
        """The rows the whole memory keeps of earlier tasks (this rank's ``kept``; with several
        processes, summed over the ranks, one all-reduce): the task's new rows are numbered on from
        there, so that dealing them in turn leaves every rank its share of the whole memory."""
        if not distributed.parallel():
            return kept
        return int(distributed.sum_([torch.tensor([kept], device=self.device)])[0].item())

    def _quantised(self, blocks: list[tuple[int, torch.Tensor, torch.Tensor]], task: int) -> dict[str, torch.Tensor]:
        """The stored fields of the task's blocks ``(class, order, activations)``, each quantised
        with its whole block's minimum and maximum: over every rank's rows (one all-reduce of the
        ranks' ``(−min, max)``; a rank without rows of a block brings ``−inf``)."""
        ranges = torch.stack([torch.stack([-a.min(), a.max()]) if len(a) else torch.full((2,), -math.inf, device=a.device)
                              for _, _, a in blocks])
        distributed.max_([ranges])
        parts = []
        for (c, order, acts), (neg_lo, hi) in zip(blocks, ranges):
            codes, lo, hi = quantise(acts, -neg_lo, hi)
            n, device = len(codes), codes.device
            parts.append({"x": codes, "lo": lo.expand(n).clone(), "hi": hi.expand(n).clone(),
                          "y": torch.full((n,), c, dtype=torch.long, device=device),
                          "task": torch.full((n,), task, dtype=torch.long, device=device),
                          "order": order.to(device=device, dtype=torch.long)})
        return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}

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
        by ``(task, class)``, each block's rows in their one-process order. With several
        processes, every rank's rows (:meth:`every_rank`): every rank must call it."""
        out: dict[tuple[int, int], torch.Tensor] = {}
        fields = self.every_rank()
        if not fields or not len(fields["y"]):
            return out
        task, y = fields["task"], fields["y"]
        for t in classes_of_tasks:
            for c in sorted(y[task == t].unique().tolist()):
                rows = torch.nonzero((task == t) & (y == c)).squeeze(1)
                rows = rows[torch.argsort(fields["order"][rows], stable=True)]
                codes = fields["x"][rows]
                out[(t, c)] = dequantise(codes, _rows(fields["lo"][rows], codes.dim()),
                                         _rows(fields["hi"][rows], codes.dim()))
        return out

    def every_rank(self) -> dict[str, torch.Tensor]:
        """The stored rows, field by field (empty before anything is stored); with several
        processes, every rank's, concatenated in rank order (one all-gather)."""
        own = {name: value[: self.count] for name, value in self.fields.items()}
        if not distributed.parallel():
            return own
        parts = [p for p in distributed.all_gather({k: v.cpu() for k, v in own.items()}) if p]
        return {k: torch.cat([p[k] for p in parts]).to(self.device) for k in parts[0]} if parts else {}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "current": self.current}

    def load_state_dict(self, state: dict, context=None) -> None:
        super().load_state_dict(state, context)
        self.current = int(state["current"])
        if self.count and "order" not in self.fields:  # saved before the blocks' order was kept
            self.fields["order"] = torch.zeros_like(self.fields["y"])
            self.fields["order"][: self.count] = within_blocks(self.fields["task"][: self.count],
                                                               self.fields["y"][: self.count])
        if context is not None:
            self._attach(context)


register_memory(ActivationMemory)
