"""A frozen copy of the model taken at the end of a task: the "old model" whose outputs LwF
(Li and Hoiem, 2016) and iCaRL (Rebuffi et al., 2017) distil into the current one."""
from __future__ import annotations

import copy

import torch
import torch.nn as nn


class Teacher:
    """Holds the snapshot and the classes seen up to it."""

    def __init__(self) -> None:
        self.model: nn.Module | None = None
        self.old_classes: list[int] = []

    def snapshot(self, model: nn.Module, seen_classes: list[int]) -> None:
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.old_classes = sorted(seen_classes)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def state_dict(self) -> dict:
        return {"model": None if self.model is None else self.model.state_dict(), "old_classes": list(self.old_classes)}

    def load_state_dict(self, state: dict, like: nn.Module) -> None:
        """Restore a snapshot into a copy of ``like`` (the model whose architecture it has)."""
        self.old_classes = list(state["old_classes"])
        self.model = None
        if state["model"] is not None:
            self.snapshot(like, self.old_classes)
            self.model.load_state_dict(state["model"])
