"""Replay memories as preallocated tensors, and the policies that fill them.

- :class:`ReservoirBuffer`: reservoir sampling (Vitter, "Random sampling with a reservoir",
  ACM TOMS 1985, Algorithm R), the memory of ER and DER (Chaudhry et al., 2019; Buzzega et al.,
  2020): after ``n`` examples have been offered, each of them is in the buffer with probability
  ``capacity / n``. A whole batch is offered with a few vectorised operations, with exactly the
  outcome of offering its examples one by one.
- :class:`TaskBalancedBuffer`: at the end of each task, its share of the ``capacity`` in random
  examples of it are kept (the episodic memory of GEM and A-GEM: Lopez-Paz and Ranzato, 2017;
  Chaudhry et al., "Efficient lifelong learning with A-GEM", ICLR 2019).
- :class:`HerdingBuffer`: class-balanced exemplars, chosen by herding on normalised features
  (Rebuffi et al., "iCaRL", CVPR 2017, Alg. 4 and 5).
- :class:`FirstTaskBuffer`: a fixed sample of the first task, written once at its end and never
  changed: the fixed "general" replay set of GeRe (Zhang et al., 2025) in an image stream.

Both balanced memories use every slot (:func:`balanced_quotas`): the capacity is shared as evenly
as the parts (tasks, classes) allow, the first parts in order (the oldest classes, the first
tasks) get one more when it does not divide, and the slots a part cannot fill (it has fewer
examples) go to the others. So ``capacity`` 10 over 4 classes keeps 3, 3, 2, 2, and 3 over 5
tasks keeps 1, 1, 1, 0, 0. iCaRL's nearest-mean classifier cannot predict a class without
exemplars: :meth:`HerdingBuffer.capacity_problem` refuses a capacity below the number of classes.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lifelong.registry import registrar


def balanced_quotas(capacity: int, caps: Sequence[int]) -> list[int]:
    """How many of ``capacity`` slots each part gets when part ``i`` can fill at most
    ``caps[i]``: as even as possible, every slot used while some part can take more
    (``sum = min(capacity, sum(caps))``), and where it does not divide, the first parts that can
    take one more get it. ``balanced_quotas(10, [99] * 4) == [3, 3, 2, 2]``."""
    quotas = [0] * len(caps)
    left = int(capacity)
    open_ = [i for i, cap in enumerate(caps) if cap > 0]
    while open_ and left >= len(open_):  # a round gives every open part the same number
        share = min(left // len(open_), min(caps[i] - quotas[i] for i in open_))
        for i in open_:
            quotas[i] += share
        left -= share * len(open_)
        open_ = [i for i in open_ if quotas[i] < caps[i]]
    for i in open_[:left]:  # fewer slots left than parts: one each to the first
        quotas[i] += 1
    return quotas


class Memory:
    """Storage shared by all policies: named fields (``x``, ``y``, ``task``, ``logits``, ...)
    allocated on ``device`` when first written, and uniform sampling without replacement.

    A policy is a subclass registered by name with :func:`register_memory`; it fills the
    storage either at every step, with ``add(**fields)`` (the loop offers ``x``, ``y``, ``task``
    and the fields its terms store, such as ``logits``), or at task ends, with
    ``end_task(state)`` (then it sets ``keeps_source_index = True`` if it stores ``idx``, each
    example's index in the source, which :mod:`lifelong.plugins.mix` needs, and says why it
    cannot fill on a task-free stream in ``needs_task_boundaries``). It is built as
    ``cls(capacity, generator, sample_generator=..., max_rows=..., device=...)``.

    ``generator`` decides what is written, ``sample_generator`` (default: the same) what is
    sampled, so that the contents do not depend on how often or how much is sampled.
    ``max_rows`` bounds the storage (e.g. by the number of training examples: a reservoir
    larger than the stream never evicts, so the extra rows would stay empty).
    """

    name = ""
    keeps_source_index = False
    needs_task_boundaries: str | None = None  # why it cannot work on a task-free stream (lifelong.components)

    @classmethod
    def capacity_problem(cls, capacity: int, num_classes: int, num_tasks: int) -> str | None:
        """What is wrong with ``capacity`` for a stream of ``num_classes`` classes in
        ``num_tasks`` tasks (``None``: nothing); checked before a run trains."""
        return None

    def __init__(self, capacity: int, generator: np.random.Generator, *,
                 sample_generator: np.random.Generator | None = None, max_rows: int | None = None,
                 device: torch.device | str = "cpu") -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity must be at least 1, got {capacity}")
        self.capacity = int(capacity)
        self.rows = self.capacity if max_rows is None else max(1, min(self.capacity, int(max_rows)))
        self.rng = generator
        self.sample_rng = generator if sample_generator is None else sample_generator
        self.count = 0  # rows in use: 0..count-1
        self.fields: dict[str, torch.Tensor] = {}
        self.device = torch.device(device)

    def __len__(self) -> int:
        return self.count

    def _allocate(self, batch: dict[str, torch.Tensor]) -> None:
        self.fields = {
            name: torch.zeros((self.rows, *value.shape[1:]), dtype=value.dtype, device=self.device)
            for name, value in batch.items()
        }

    def _indices(self, array: np.ndarray) -> torch.Tensor:
        """A host index array as a tensor on the memory's device, without a blocking copy."""
        index = torch.from_numpy(array)
        if self.device.type == "cuda":
            return index.pin_memory().to(self.device, non_blocking=True)
        return index if self.device.type == "cpu" else index.to(self.device)

    def sample(self, n: int) -> dict[str, torch.Tensor]:
        """``min(n, len(self))`` distinct stored examples, uniformly, with their slot in ``index``."""
        size = len(self)
        if size == 0:
            raise ValueError("cannot sample from an empty buffer")
        choice = self.sample_rng.choice(size, size=min(n, size), replace=False)
        index = self._indices(choice)
        out = {name: value.index_select(0, index) for name, value in self.fields.items()}
        out["index"] = index
        return out

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: contents, counters and generator state."""
        return {
            "capacity": self.capacity,
            "count": self.count,
            "fields": {name: value[: self.count].clone() for name, value in self.fields.items()},
            "rng": self.rng.bit_generator.state,
            "sample_rng": self.sample_rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict, context=None) -> None:
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"buffer capacity {self.capacity} differs from the saved {state['capacity']}")
        self.count = int(state["count"])
        stored = state["fields"]
        self.fields = {}
        if stored:
            self._allocate(dict(stored))
            for name, value in stored.items():
                self.fields[name][: len(value)] = value.to(self.device)
        self.rng.bit_generator.state = state["rng"]
        self.sample_rng.bit_generator.state = state["sample_rng"]


class ReservoirBuffer(Memory):
    """Reservoir sampling over the stream of examples, one batch at a time (see module doc)."""

    name = "reservoir"

    def __init__(self, capacity: int, generator: np.random.Generator, **kwargs) -> None:
        super().__init__(capacity, generator, **kwargs)
        self.seen = 0

    def slots_for(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Where the next ``n`` offered examples go: ``(positions in the batch, slots)``.

        Example ``i`` of the batch is the ``t = seen + i``-th offered overall (from 0); it draws
        ``j ~ U{0..t}`` and takes slot ``j`` if ``j < capacity`` (while the buffer fills,
        ``t < capacity`` and it takes slot ``t`` instead). When two examples of one batch draw
        the same slot, the later one wins, as if they had been offered in turn.
        """
        t = np.arange(self.seen, self.seen + n)
        slots = (self.rng.random(n) * (t + 1)).astype(np.int64)  # floor(u * (t + 1)) ~ U{0..t}
        if self.seen < self.capacity:
            slots = np.where(t < self.capacity, t, slots)
        positions = np.flatnonzero(slots < self.capacity)
        if len(positions) > 1:
            slots = slots[positions]
            unique, first = np.unique(slots[::-1], return_index=True)
            if len(unique) < len(slots):
                return positions[::-1][first], unique
            return positions, slots
        return positions, slots[positions]

    @torch.no_grad()
    def add(self, **batch: torch.Tensor) -> None:
        """Offer a batch of examples; every field must have the same leading size."""
        n = len(next(iter(batch.values())))
        if not self.fields:
            self._allocate(batch)
        elif len(batch) != len(self.fields):
            raise ValueError(f"buffer stores {sorted(self.fields)}, got {sorted(batch)}")
        if self.seen + n <= self.capacity:  # still filling: one contiguous block
            for name, value in batch.items():
                self.fields[name][self.seen:self.seen + n] = value
        else:
            positions, slots = self.slots_for(n)
            if len(slots):
                src, dst = self._indices(positions), self._indices(slots)
                for name, value in batch.items():
                    self.fields[name].index_copy_(0, dst, value.index_select(0, src))
        self.seen += n
        self.count = min(self.seen, self.capacity)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "seen": self.seen}

    def load_state_dict(self, state: dict, context=None) -> None:
        super().load_state_dict(state, context)
        self.seen = int(state["seen"])


def _task_examples(state, idx_positions: torch.Tensor) -> dict[str, torch.Tensor]:
    """Un-augmented inputs, labels, task ids and source indices (``idx``, so that the examples can
    be put back into a training set: :mod:`lifelong.plugins.mix`) of the given positions of the
    finished task."""
    task, stream = state.task, state.stream
    idx = task.train_idx[idx_positions]
    ids = torch.full((len(idx),), task.index, dtype=torch.long, device=idx.device) if task.train_task is None \
        else task.train_task[idx_positions]
    x = stream.inputs("train", idx, task.index if task.train_task is None else ids)
    return {"x": x, "y": stream.labels("train", idx), "task": ids, "idx": idx}


class TaskBalancedBuffer(Memory):
    """At the end of each task, its share of the capacity in training examples chosen at random
    is stored next to those of earlier tasks: the free slots divided by the tasks still to come,
    rounded up, so that the first tasks take the remainder (10 slots over 4 tasks: 3, 3, 2, 2) and
    a task with fewer examples than its share leaves the rest to the later ones."""

    name = "task-balanced"
    keeps_source_index = True
    needs_task_boundaries = "it stores each task's examples at the task's end, so it would stay empty"

    @torch.no_grad()
    def end_task(self, state) -> None:
        tasks_left = max(1, state.stream.num_tasks - state.task.index)
        per_task = -(-(self.capacity - self.count) // tasks_left)
        n = min(per_task, state.task.num_train, self.rows - self.count)
        if n <= 0:
            return
        positions = torch.from_numpy(self.rng.choice(state.task.num_train, size=n, replace=False))
        batch = _task_examples(state, positions.to(state.task.train_idx.device))
        if not self.fields:
            self._allocate(batch)
        for name, value in batch.items():
            self.fields[name][self.count:self.count + n] = value
        self.count += n


def herding(features: torch.Tensor, m: int) -> torch.Tensor:
    """Indices of ``m`` distinct rows chosen greedily so that the mean of the chosen rows stays
    closest to the mean of all rows (Welling, "Herding dynamical weights", ICML 2009; iCaRL
    Alg. 4): step ``k`` picks ``argmin_i ‖μ − (φ_i + Σ_{j<k} φ_{p_j}) / k‖``."""
    n = len(features)
    m = min(m, n)
    mu = features.mean(0)
    running = torch.zeros_like(mu)
    taken = torch.zeros(n, dtype=torch.bool, device=features.device)
    chosen = []
    for k in range(1, m + 1):
        dist = (mu - (running + features) / k).norm(dim=1)
        dist[taken] = float("inf")
        i = int(dist.argmin())
        chosen.append(i)
        taken[i] = True
        running += features[i]
    return torch.tensor(chosen, dtype=torch.long)


class HerdingBuffer(Memory):
    """iCaRL's exemplar memory: after each task, the capacity is shared among the classes seen so
    far by :func:`balanced_quotas` (the oldest classes take the remainder); old classes keep the
    first exemplars of their herding order, new classes are chosen by :func:`herding` on
    L2-normalised ``model.features``. A capacity below the number of classes is refused."""

    name = "herding"
    keeps_source_index = True
    needs_task_boundaries = "its exemplars are chosen by herding at each task's end"

    def __init__(self, capacity: int, generator: np.random.Generator, batch_size: int = 1000, **kwargs) -> None:
        super().__init__(capacity, generator, **kwargs)
        self.batch_size = batch_size
        self.order: dict[int, torch.Tensor] = {}  # class -> its rows in the previous layout

    @classmethod
    def capacity_problem(cls, capacity: int, num_classes: int, num_tasks: int) -> str | None:
        if capacity < num_classes:
            return (f"its herding memory keeps at least one exemplar of every class (the nearest-mean classifier "
                    f"cannot predict a class without one): `buffer-size` must be at least {num_classes}, the "
                    f"number of classes, got {capacity}")
        return None

    def _exemplars(self, state, c: int, positions: torch.Tensor, m: int) -> dict[str, torch.Tensor]:
        """The ``m`` exemplars of new class ``c`` (at ``positions`` of the task), by herding."""
        feats = []
        for start in range(0, len(positions), self.batch_size):
            batch = _task_examples(state, positions[start:start + self.batch_size])
            feats.append(F.normalize(state.model.features(batch["x"]), dim=1))
        chosen = herding(torch.cat(feats), m).to(positions.device)
        return _task_examples(state, positions[chosen])

    @torch.no_grad()
    def end_task(self, state) -> None:
        model, task, stream = state.model, state.task, state.stream
        if not hasattr(model, "features"):
            raise TypeError("herding needs a model with a `features` module (all lifelong backbones have one)")
        labels = stream.labels("train", task.train_idx)
        new = {c: torch.nonzero(labels == c).squeeze(1) for c in task.classes if c not in self.order}
        caps = [len(rows) for rows in self.order.values()] + [len(p) for p in new.values()]
        quotas = dict(zip([*self.order, *new], balanced_quotas(self.rows, caps)))
        parts = [{name: value[rows[:quotas[c]]] for name, value in self.fields.items()}  # old: the head of
                 for c, rows in self.order.items()]                                       # their herding order
        was_training = model.training
        model.eval()
        parts += [self._exemplars(state, c, positions, quotas[c]) for c, positions in new.items() if quotas[c]]
        model.train(was_training)
        if not parts:  # nothing seen has an example (an empty task first)
            return
        merged = {name: torch.cat([p[name] for p in parts]) for name in parts[-1]}
        if not self.fields:
            self._allocate(merged)
        self.count = len(merged["y"])
        for name, value in merged.items():
            self.fields[name][: self.count] = value
        self.order, start = {}, 0
        for c, n in quotas.items():
            self.order[c] = torch.arange(start, start + n, device=self.device)
            start += n

    def state_dict(self) -> dict:
        return {**super().state_dict(), "order": [(c, rows) for c, rows in self.order.items()]}

    def load_state_dict(self, state: dict, context=None) -> None:
        super().load_state_dict(state, context)
        self.order = {int(c): rows.to(self.device) for c, rows in state["order"]}


class FirstTaskBuffer(Memory):
    """At the end of the first task, ``capacity`` of its training examples chosen at random
    (without replacement; all of them when it has fewer) are stored; nothing is ever added or
    replaced afterwards. GeRe (Zhang et al., "GeRe: Towards Efficient Anti-Forgetting in
    Continual Learning of LLM via General Samples Replay", 2025) replays a fixed set of general
    samples that the model knew before the continual training started (1,000 SlimPajama texts
    for an LLM); in an image stream the model knows nothing before its first task, so the first
    task's data stand for the general set and the model at the first task's end for the frozen
    base model. ``fixed = True``: a slot keeps its example for the whole run, so a term may
    record something per slot once (the threshold-margin term's activations)."""

    name = "first-task"
    keeps_source_index = True
    fixed = True
    needs_task_boundaries = "it stores a sample of the first task at that task's end"

    @torch.no_grad()
    def end_task(self, state) -> None:
        if self.count or state.task.index != 0:
            return
        n = min(self.rows, state.task.num_train)
        if n <= 0:
            return
        positions = torch.from_numpy(np.sort(self.rng.choice(state.task.num_train, size=n, replace=False)))
        batch = _task_examples(state, positions.to(state.task.train_idx.device))
        self._allocate(batch)
        for name, value in batch.items():
            self.fields[name][:n] = value
        self.count = n


MEMORIES: dict[str, type] = {}
register_memory = registrar(MEMORIES, "memory")
for _policy in (ReservoirBuffer, TaskBalancedBuffer, HerdingBuffer, FirstTaskBuffer):
    register_memory(_policy)

import lifelong.hidden_replay  # noqa: E402,F401  (registers `activations`; a module import: it imports this one)
