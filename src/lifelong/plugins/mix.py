"""Rehearsal through the training data: each task's training set is its own examples plus every
example in the memory, shuffled together, so that a batch holds exemplars in proportion to
their number. This is how iCaRL uses its exemplars (Rebuffi et al., "iCaRL", CVPR 2017,
Alg. 3: the training set is the new data together with the exemplar sets) and how Mammoth's
``models/icarl.py`` (``begin_task``) produced its published numbers; replaying a batch from the
memory at every step instead is the ``icarl-replay`` preset."""
from __future__ import annotations

import torch

from lifelong.data.streams import Task
from lifelong.plugins import register_plugin


@register_plugin
class MixMemory:
    """Add the memory's examples to each task's training set (see above). The memory must know
    where its examples come from (``keeps_source_index``): ``herding`` and ``task-balanced``
    store each example's index in the source."""

    name = "mix-memory"
    needs_task_boundaries = "it adds the memory to each task's training set at the task's start"
    stateless = True
    uses_memory = True
    needs_source_index = True

    def training_set(self, state, task: Task) -> Task:
        memory = state.memory
        if memory is None or len(memory) == 0:
            return task
        if "idx" not in memory.fields:
            raise ValueError("the mix-memory plug-in needs a memory filled at task ends "
                             "(memory: herding or task-balanced)")
        n = len(memory)
        own = task.train_task if task.train_task is not None else \
            torch.full((task.num_train,), task.index, dtype=torch.long, device=task.train_idx.device)
        return Task(task.index, task.classes, torch.cat([task.train_idx, memory.fields["idx"][:n]]), task.test_idx,
                    torch.cat([own, memory.fields["task"][:n]]))
