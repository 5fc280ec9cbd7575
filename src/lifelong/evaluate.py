"""Accuracy of a model on every task's test set, class-incremental and task-incremental.

Class-IL: the prediction is the arg-max over all the head's classes. Task-IL: the logits of
classes outside the task are masked out first (the task id is given at test time; van de Ven
and Tolias, 2019). In a domain-incremental stream every task has all classes, so both agree.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from lifelong import distributed
from lifelong.data.streams import Stream


@torch.no_grad()
def evaluate(
    model: nn.Module,
    stream: Stream,
    batch_size: int = 1000,
    scores: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[list[float], list[float]]:
    """Class-IL and task-IL accuracy (percent) on each task's test set, in task order.

    ``scores(model, x)`` replaces the model's logits as the class scores when given (iCaRL's
    nearest-mean-of-exemplars classifier, :mod:`lifelong.plugins.nme`). A ``scores`` with
    ``task_aware = True`` is also called as ``scores(model, x, task=j)`` for task ``j``'s task-IL
    column (the ``lora`` plug-in picks task ``j``'s adapter: :mod:`lifelong.plugins.lora`).
    With several processes, each evaluates its contiguous share of every test set and the counts
    are summed.
    """
    task_aware = getattr(scores, "task_aware", False)
    was_training = model.training
    model.eval()
    masks = stream.task_masks()
    correct = torch.zeros(2, stream.num_tasks, dtype=torch.long, device=masks.device)
    totals = []
    for task in stream.tasks:
        lo, hi = distributed.share(len(task.test_idx))
        test_idx = task.test_idx[lo:hi]
        for start in range(0, len(test_idx), batch_size):
            idx = test_idx[start:start + batch_size]
            x = stream.inputs("test", idx, task.index)
            logits = model(x) if scores is None else scores(model, x)
            y = stream.labels("test", idx)
            correct[0, task.index] += (logits.argmax(1) == y).sum()
            if task_aware:
                logits = scores(model, x, task=task.index)
            masked = logits.masked_fill(~masks[task.index], float("-inf"))
            correct[1, task.index] += (masked.argmax(1) == y).sum()
        totals.append(max(len(task.test_idx), 1))
    model.train(was_training)
    distributed.sum_([correct])
    acc = correct.cpu().double() * 100.0 / torch.tensor(totals, dtype=torch.double)
    return acc[0].tolist(), acc[1].tolist()
