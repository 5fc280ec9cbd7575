"""Your own replay memory: a storage policy, registered by name, used by any recipe.

    lifelong run --config examples/my_memory.yaml     # its `imports:` names this file

`lifelong.Memory` keeps the storage (preallocated tensors, uniform sampling, checkpoints); a
policy decides what is written. This one keeps the most recent examples (a sliding window),
the simplest alternative to the reservoir.
"""
import numpy as np
import torch

import lifelong


@lifelong.register_memory
class Window(lifelong.Memory):
    """The last `capacity` examples offered, oldest overwritten first."""

    name = "window"

    def __init__(self, capacity, generator, **kwargs):
        super().__init__(capacity, generator, **kwargs)
        self.seen = 0

    @torch.no_grad()
    def add(self, **batch):
        n = len(next(iter(batch.values())))
        if not self.fields:
            self._allocate(batch)
        kept = min(n, self.rows)  # of a batch larger than the memory, its last examples
        slots = self._indices((self.seen + n - kept + np.arange(kept)) % self.rows)
        for name, value in batch.items():
            self.fields[name].index_copy_(0, slots, value[n - kept:])
        self.seen += n
        self.count = min(self.seen, self.rows)

    def state_dict(self):
        return {**super().state_dict(), "seen": self.seen}

    def load_state_dict(self, state, context=None):
        super().load_state_dict(state, context)
        self.seen = int(state["seen"])
