"""The unlearning methods by name, each with its defaults, for a command line to list and call."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import torch.nn as nn

from lifelong.errors import ConfigError
from lifelong.unlearn import baselines
from lifelong.unlearn.ssd import lfssd, ssd
from lifelong.unlearn.data import UnlearnData


@dataclass(frozen=True)
class Unlearner:
    """``function(model, data, **params) -> model``; ``defaults``: its parameters and their defaults."""

    name: str
    function: Callable[..., nn.Module]
    summary: str

    @property
    def defaults(self) -> dict[str, Any]:
        params = list(inspect.signature(self.function).parameters.values())[2:]
        return {p.name: p.default for p in params}

    def __call__(self, model: nn.Module, data: UnlearnData, **params: Any) -> nn.Module:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ConfigError(f"unlearning method {self.name!r} has no parameter {unknown[0]!r}; "
                              f"it takes {', '.join(self.defaults)}")
        return self.function(model, data, **params)


UNLEARNERS: dict[str, Unlearner] = {u.name: u for u in (
    Unlearner("ssd", ssd, "selective synaptic dampening (Foster et al., AAAI 2024)"),
    Unlearner("lfssd", lfssd, "label-free SSD (Foster et al., ICLR 2024 Tiny Paper)"),
    Unlearner("finetune", baselines.finetune, "fine-tune on the retain set"),
    Unlearner("gradient-ascent", baselines.gradient_ascent, "gradient ascent on the forget set"),
    Unlearner("random-labels", baselines.random_labels, "fine-tune on forget examples with wrong labels, plus retain"),
    Unlearner("refresh", baselines.refresh_unlearn, "refresh learning's unlearning step on the forget set"),
)}


def get_unlearner(name: str) -> Unlearner:
    """The method called ``name``, or one line listing the known ones."""
    if name not in UNLEARNERS:
        raise ConfigError(f"unknown unlearning method {name!r}; known: {', '.join(UNLEARNERS)}")
    return UNLEARNERS[name]
