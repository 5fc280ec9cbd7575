"""Prequential (test-then-train) evaluation on a drifting stream, with and without ReLoop2's
error memory (:mod:`lifelong.plugins.error_memory`).

Each batch of the stream is first predicted, by the model alone and by the model compensated
by the memory (``p' = p + λ·ê``), and scored against its labels; only then are its labels
revealed: its errors ``onehot(y) − p`` are written into the memory, and ``update(x, y)`` (the
slow learner, e.g. one gradient step; none by default) may learn from it. So a batch's
prediction never uses its own labels, and every batch after it does (Zhu et al., KDD 2023: the
error memory "undergoes continual refreshing with newly observed data samples during the model
serving phase"; Gama et al., 2013, for the prequential protocol).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
import torch.nn as nn

from lifelong.plugins.error_memory import ErrorMemory, predict


@dataclass
class PrequentialResult:
    """Per batch: its size, and how many the model got right alone (``base``) and with the memory."""

    sizes: list[int] = field(default_factory=list)
    base: list[int] = field(default_factory=list)
    memory: list[int] = field(default_factory=list)

    @property
    def examples(self) -> int:
        return sum(self.sizes)

    @staticmethod
    def _percent(right: list[int], sizes: list[int]) -> float:
        return 100.0 * sum(right) / max(sum(sizes), 1)

    @property
    def accuracy_base(self) -> float:
        return self._percent(self.base, self.sizes)

    @property
    def accuracy_memory(self) -> float:
        return self._percent(self.memory, self.sizes)

    def windows(self, parts: int) -> list[tuple[float, float]]:
        """``(base, memory)`` accuracy on each of ``parts`` consecutive runs of batches (as equal
        as the batches allow), in stream order."""
        n = len(self.sizes)
        cuts = [round(i * n / parts) for i in range(parts + 1)]
        return [(self._percent(self.base[a:b], self.sizes[a:b]), self._percent(self.memory[a:b], self.sizes[a:b]))
                for a, b in zip(cuts, cuts[1:]) if b > a]


def prequential(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, Any]],
    memory: Any,
    update: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
) -> PrequentialResult:
    """Predict each batch ``(x, y[, ...])`` with and without ``memory`` (an
    :class:`~lifelong.plugins.error_memory.ErrorMemory`, or the ``error-memory`` plug-in), then
    write its errors into the memory, then call ``update(x, y)`` if given (in training mode)."""
    memory = getattr(memory, "memory", memory)
    if not isinstance(memory, ErrorMemory):
        raise TypeError(f"memory must be an ErrorMemory or the error-memory plug-in, got {type(memory).__name__}")
    was_training = model.training
    result = PrequentialResult()
    for batch in batches:
        x, y = batch[0], batch[1]
        model.eval()
        with torch.no_grad():
            features, probs = predict(model, x)
            compensated = memory.correct(features, probs)
        result.sizes.append(len(y))
        result.base.append(int((probs.argmax(1) == y).sum()))
        result.memory.append(int((compensated.argmax(1) == y).sum()))
        memory.write(features, ErrorMemory.residuals(probs, y))
        if update is not None:
            model.train()
            update(x, y)
    model.train(was_training)
    return result
