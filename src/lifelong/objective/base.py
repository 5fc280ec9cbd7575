"""Terms and the objective that sums them.

A term is a small object with ``__call__(batch) -> scalar loss``. It may declare that it needs
replayed samples (``uses_replay``) and which extra fields the memory must store with each
example (``stores``, e.g. ``("logits",)`` for DER). It may also define ``begin_task(state)`` and
``end_task(state)``, called by the loop around each task (EWC computes its Fisher there).
New kinds of terms are registered by name with :func:`register_term`, so that recipes in YAML
can use them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Sequence

import torch
import torch.nn as nn


@dataclass
class StepBatch:
    """What the terms see at one step.

    ``x, y``: the current batch (after augmentation); ``replay``: the memory sample (``x``,
    ``y``, ``task``, ``index`` and any stored fields) or ``None``; ``outputs``: the model's
    output on the current and replayed inputs together (one forward), of which ``logits`` and
    ``replay_logits`` are the two parts.
    """

    model: nn.Module
    task: int
    x: torch.Tensor
    y: torch.Tensor
    outputs: torch.Tensor
    replay: dict[str, torch.Tensor] | None = None

    @property
    def logits(self) -> torch.Tensor:
        return self.outputs[: len(self.y)]

    @property
    def replay_logits(self) -> torch.Tensor | None:
        return None if self.replay is None else self.outputs[len(self.y):]


class Term:
    """Base of the objective's terms (only shared defaults; no behaviour to inherit)."""

    name: ClassVar[str] = ""
    uses_replay: ClassVar[bool] = False
    stores: ClassVar[tuple[str, ...]] = ()

    def __call__(self, batch: StepBatch) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


TERMS: dict[str, type[Term]] = {}


def register_term(cls: type[Term]) -> type[Term]:
    """Class decorator: make a term available by its ``name`` in recipes and config files."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a non-empty `name`")
    TERMS[cls.name] = cls
    return cls


class Objective:
    """``L = sum_k w_k * term_k(batch)`` (Wang et al., 2024, Eq. 1)."""

    def __init__(self, terms: Sequence[tuple[float, Term]]) -> None:
        if not terms:
            raise ValueError("an objective needs at least one term")
        self.terms = list(terms)
        self.uses_replay = any(term.uses_replay for _, term in self.terms)
        self.stores = tuple(sorted({f for _, term in self.terms for f in term.stores}))

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        total = None
        for weight, term in self.terms:
            value = term(batch)
            total = value * weight if total is None else total + value * weight
        return total

    def hooks(self, name: str) -> list[Callable]:
        """The terms' methods called ``name`` (e.g. ``"end_task"``), in order."""
        return [getattr(term, name) for _, term in self.terms if hasattr(term, name)]
