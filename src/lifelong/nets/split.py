"""A backbone cut into a frozen early part and a trainable late part, for hidden-activation replay
(Gurbuz et al., "SHARP: Sparsity and Hidden Activation RePlay for Neuro-Inspired Continual
Learning", 2023, Sec. 3; ``Network.get_memory_representations`` and ``Network.forward_memo`` in
BurakGurbuz97/SHARP-Continual-Learning ``Source/architecture.py``): the memory stores what the
early part outputs, and replays it through the late part only.

The cut is named by the module after which it falls: a child of the backbone's ``features``
(an ``nn.Sequential``), as ``features.2``; ``input`` cuts before everything (raw replay, the
reference's ``memory_mode="raw"``). A backbone gives its usual cut in a ``frozen_split``
attribute (the MLP after its first hidden layer, the ResNets after their first stage); a recipe
may name another. The parts are views onto the model's own modules, not copies:
``late(early(x)) == model.features(x)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from lifelong.errors import ConfigError

INPUT = "input"  # the cut before the first layer: the memory stores raw inputs


@dataclass
class FrozenSplit:
    """``early``: the frozen modules up to and including ``after``; ``late``: the rest of
    ``features`` (the classifier follows it)."""

    after: str
    early: nn.Module
    late: nn.Module

    @torch.no_grad()
    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The early part's output (what an activation memory stores), without a graph."""
        return self.early(x)

    def freeze(self, optimizer=None) -> None:
        """Freeze the early part: no gradient, batch-norm statistics kept (eval mode), and its
        parameters taken out of ``optimizer`` (so that neither momentum nor weight decay moves
        them). Idempotent."""
        frozen = {id(p) for p in self.early.parameters()}
        for p in self.early.parameters():
            p.requires_grad_(False)
        self.early.eval()
        for group in getattr(optimizer, "param_groups", []):
            group["params"][:] = [p for p in group["params"] if id(p) not in frozen]


def _missing(model: nn.Module, why: str) -> ConfigError:
    return ConfigError(f"missing frozen split for activation replay: {type(model).__name__} {why}; name the layer "
                       f"after which to split with the memory option `split_after` (e.g. `features.2`, or `input` "
                       f"for raw replay), or give the backbone a `frozen_split` attribute")


def frozen_split(model: nn.Module, after: str | None = None) -> FrozenSplit:
    """Cut ``model.features`` after the child named ``after`` (``features.<name>``; ``None`` or
    ``"auto"``: the backbone's ``frozen_split``; ``"input"``: before everything). A backbone
    without such a cut is a one-line :class:`ConfigError` ("missing frozen split for activation
    replay")."""
    if after in (None, "auto"):
        after = getattr(model, "frozen_split", None)
        if not after:
            raise _missing(model, "has no `frozen_split` attribute")
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential):
        raise _missing(model, "has no `features` nn.Sequential to cut")
    if after == INPUT:
        return FrozenSplit(INPUT, nn.Identity(), features)
    names = [name for name, _ in features.named_children()]
    child = after[len("features."):] if after.startswith("features.") else None
    if child not in names:
        raise _missing(model, f"has no layer {after!r} in its `features` (its layers: "
                              f"{', '.join('features.' + n for n in names)})")
    k = names.index(child) + 1
    children = list(features.children())
    if k == len(children):
        raise _missing(model, f"would keep nothing trainable in its `features` after {after!r}")
    return FrozenSplit(after, nn.Sequential(*children[:k]), nn.Sequential(*children[k:]))
