"""Methods as recipes: a list of weighted terms, a memory policy and plug-ins.

Following Wang et al., "A Unified and General Framework for Continual Learning" (ICLR 2024),
a method is not a trainer class but a choice of terms in one objective. Presets give the names
users know; ``lifelong list`` prints them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from lifelong.errors import ConfigError
from lifelong.objective import CrossEntropy, Objective


@dataclass
class Recipe:
    """What the loop needs to know about a method.

    ``memory``: ``None`` or ``"reservoir"``. ``joint``: train once on all tasks' data together
    instead of task by task (the upper bound). ``plugins``: step plug-ins (see
    :mod:`lifelong.plugins`).
    """

    name: str
    objective: Objective
    memory: str | None = None
    plugins: list = field(default_factory=list)
    joint: bool = False


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    build: Callable[[], Recipe]


def _finetune() -> Recipe:
    return Recipe("finetune", Objective([(1.0, CrossEntropy("current"))]))


def _joint() -> Recipe:
    return Recipe("joint", Objective([(1.0, CrossEntropy("current"))]), joint=True)


def _er() -> Recipe:
    return Recipe("er", Objective([(1.0, CrossEntropy("both"))]), memory="reservoir")


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("finetune", "plain SGD on each task in turn; the lower bound", _finetune),
        Preset("joint", "all tasks' data at once with the same epochs; the upper bound", _joint),
        Preset("er", "experience replay from a reservoir memory (Chaudhry et al., 2019)", _er),
    ]
}


def build_recipe(name: str) -> Recipe:
    """A fresh recipe for the preset ``name`` (terms keep state, so never share one)."""
    try:
        return PRESETS[name].build()
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; choose one of: {', '.join(PRESETS)}") from None
