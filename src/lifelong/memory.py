"""Replay memories as preallocated tensors, and the policies that fill them.

- :class:`ReservoirBuffer`: reservoir sampling (Vitter, "Random sampling with a reservoir",
  ACM TOMS 1985, Algorithm R), the memory of ER and DER (Chaudhry et al., 2019; Buzzega et al.,
  2020): after ``n`` examples have been offered, each of them is in the buffer with probability
  ``capacity / n``. A whole batch is offered with a few vectorised operations, with exactly the
  outcome of offering its examples one by one.
- :class:`TaskBalancedBuffer`: at the end of each task, ``capacity // T`` random examples of it
  are kept (the episodic memory of GEM and A-GEM: Lopez-Paz and Ranzato, 2017; Chaudhry et al.,
  "Efficient lifelong learning with A-GEM", ICLR 2019).
- :class:`HerdingBuffer`: class-balanced, ``capacity // classes seen`` exemplars per class,
  chosen by herding on normalised features (Rebuffi et al., "iCaRL", CVPR 2017, Alg. 4 and 5).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lifelong.registry import registrar


class Memory:
    """Storage shared by all policies: named fields (``x``, ``y``, ``task``, ``logits``, ...)
    allocated on ``device`` when first written, and uniform sampling without replacement.

    A policy is a subclass registered by name with :func:`register_memory`; it fills the
    storage either at every step, with ``add(**fields)`` (the loop offers ``x``, ``y``, ``task``
    and the fields its terms store, such as ``logits``), or at task ends, with
    ``end_task(state)`` (then it sets ``keeps_source_index = True`` if it stores ``idx``, each
    example's index in the source, which :mod:`lifelong.plugins.mix` needs). It is built as
    ``cls(capacity, generator, sample_generator=..., max_rows=..., device=...)``.

    ``generator`` decides what is written, ``sample_generator`` (default: the same) what is
    sampled, so that the contents do not depend on how often or how much is sampled.
    ``max_rows`` bounds the storage (e.g. by the number of training examples: a reservoir
    larger than the stream never evicts, so the extra rows would stay empty).
    """

    name = ""
    keeps_source_index = False

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
    """At the end of each task, ``capacity // T`` of its training examples chosen at random are
    stored next to those of earlier tasks (``T``: the stream's number of tasks)."""

    name = "task-balanced"
    keeps_source_index = True

    @torch.no_grad()
    def end_task(self, state) -> None:
        per_task = self.capacity // state.stream.num_tasks
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
    """iCaRL's exemplar memory: after each task, every class seen so far keeps
    ``capacity // classes seen`` exemplars; old classes keep the first ones of their herding
    order, new classes are chosen by :func:`herding` on L2-normalised ``model.features``."""

    name = "herding"
    keeps_source_index = True

    def __init__(self, capacity: int, generator: np.random.Generator, batch_size: int = 1000, **kwargs) -> None:
        super().__init__(capacity, generator, **kwargs)
        self.batch_size = batch_size
        self.order: dict[int, torch.Tensor] = {}  # class -> its rows in the previous layout

    @torch.no_grad()
    def end_task(self, state) -> None:
        model, task, stream = state.model, state.task, state.stream
        if not hasattr(model, "features"):
            raise TypeError("herding needs a model with a `features` module (all lifelong backbones have one)")
        labels = stream.labels("train", task.train_idx)
        new_classes = [c for c in task.classes if c not in self.order]
        per_class = self.capacity // (len(self.order) + len(new_classes))
        classes, parts = [], []
        for c, rows in self.order.items():  # old classes: keep the head of their herding order
            classes.append(c)
            parts.append({name: value[rows[:per_class]] for name, value in self.fields.items()})
        was_training = model.training
        model.eval()
        for c in new_classes:
            positions = torch.nonzero(labels == c).squeeze(1)
            feats = []
            for start in range(0, len(positions), self.batch_size):
                batch = _task_examples(state, positions[start:start + self.batch_size])
                feats.append(F.normalize(model.features(batch["x"]), dim=1))
            chosen = herding(torch.cat(feats), per_class).to(positions.device)
            classes.append(c)
            parts.append(_task_examples(state, positions[chosen]))
        model.train(was_training)
        merged = {name: torch.cat([p[name] for p in parts]) for name in parts[-1]}
        if not self.fields:
            self._allocate(merged)
        self.count = len(merged["y"])
        for name, value in merged.items():
            self.fields[name][: self.count] = value
        self.order, start = {}, 0
        for c, part in zip(classes, parts):
            self.order[c] = torch.arange(start, start + len(part["y"]), device=self.device)
            start += len(part["y"])

    def state_dict(self) -> dict:
        return {**super().state_dict(), "order": [(c, rows) for c, rows in self.order.items()]}

    def load_state_dict(self, state: dict, context=None) -> None:
        super().load_state_dict(state, context)
        self.order = {int(c): rows.to(self.device) for c, rows in state["order"]}


MEMORIES: dict[str, type] = {}
register_memory = registrar(MEMORIES, "memory")
for _policy in (ReservoirBuffer, TaskBalancedBuffer, HerdingBuffer):
    register_memory(_policy)
