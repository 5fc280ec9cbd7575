"""Replay memory as preallocated tensors.

:class:`ReservoirBuffer` implements reservoir sampling (Vitter, "Random sampling with a
reservoir", ACM TOMS 1985, Algorithm R), the memory of ER and DER (Chaudhry et al., 2019;
Buzzega et al., 2020): after ``n`` examples have been offered, each of them is in the buffer
with probability ``capacity / n``. A whole batch is offered at once with a few vectorised
operations, with exactly the outcome of offering its examples one by one.
"""
from __future__ import annotations

import numpy as np
import torch


class ReservoirBuffer:
    """A fixed-size memory of examples and whatever else is stored with them.

    Fields (``x``, ``y``, ``task``, ``logits``, ...) are named by the first call to :meth:`add`
    and preallocated then with ``capacity`` rows on the device of the tensors given.
    Randomness (which examples are kept, which are sampled) comes from ``generator``.
    """

    def __init__(self, capacity: int, generator: np.random.Generator) -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity must be at least 1, got {capacity}")
        self.capacity = int(capacity)
        self.rng = generator
        self.seen = 0
        self.fields: dict[str, torch.Tensor] = {}
        self.device = torch.device("cpu")

    def __len__(self) -> int:
        return min(self.seen, self.capacity)

    def _allocate(self, batch: dict[str, torch.Tensor]) -> None:
        self.device = next(iter(batch.values())).device
        self.fields = {
            name: torch.zeros((self.capacity, *value.shape[1:]), dtype=value.dtype, device=value.device)
            for name, value in batch.items()
        }

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
                src = torch.from_numpy(positions).to(self.device)
                dst = torch.from_numpy(slots).to(self.device)
                for name, value in batch.items():
                    self.fields[name].index_copy_(0, dst, value.index_select(0, src))
        self.seen += n

    def sample(self, n: int) -> dict[str, torch.Tensor]:
        """``min(n, len(self))`` distinct stored examples, uniformly, with their slot in ``index``."""
        size = len(self)
        if size == 0:
            raise ValueError("cannot sample from an empty buffer")
        choice = self.rng.choice(size, size=min(n, size), replace=False)
        index = torch.from_numpy(choice).to(self.device)
        out = {name: value.index_select(0, index) for name, value in self.fields.items()}
        out["index"] = index
        return out

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: contents, counter and generator state."""
        return {
            "capacity": self.capacity,
            "seen": self.seen,
            "fields": {name: value[: len(self)].clone() for name, value in self.fields.items()},
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"buffer capacity {self.capacity} differs from the saved {state['capacity']}")
        self.seen = int(state["seen"])
        stored = state["fields"]
        self.fields = {}
        if stored:
            self._allocate({name: value for name, value in stored.items()})
            for name, value in stored.items():
                self.fields[name][: len(value)] = value
        self.rng.bit_generator.state = state["rng"]
