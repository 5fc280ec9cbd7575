"""A layer's output, kept by a forward hook: what a term that regularises activations reads
(GeRe's threshold-margin term, :mod:`lifelong.objective.threshold_margin`).

A layer is named as ``model.named_modules()`` names it: ``features``, ``features.3`` (a dotted
path into the model), ``classifier``. The hooks live only for one forward
(:func:`tapped`), so that copies of the model (a teacher's ``deepcopy``) never carry them."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
import torch.nn as nn


def layer_names(model: nn.Module) -> list[str]:
    """Every layer a term can name, in the model's order (the model itself, ``""``, left out)."""
    return [name for name, _ in model.named_modules() if name]


def layer_problem(model: nn.Module, name: str) -> str | None:
    """Why ``name`` is not a layer of ``model`` (the valid names, in one line), or ``None``."""
    names = layer_names(model)
    if name in names:
        return None
    return f"layer {name!r} is not a module of the {type(model).__name__}; its layers: {', '.join(names)}"


def _tensor(output) -> torch.Tensor:
    """A module's output, or the first element of a tuple output (a transformer block's)."""
    return output[0] if isinstance(output, (tuple, list)) else output


@contextmanager
def tapped(model: nn.Module, names: Sequence[str]) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Within the block, every forward of the named layers appends its output (with its graph)
    to ``kept[name]``; the hooks are removed on leaving. An unknown name is a ``ValueError``
    listing the valid ones."""
    modules = dict(model.named_modules())
    kept: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    handles = []
    try:
        for name in names:
            problem = layer_problem(model, name)
            if problem:
                raise ValueError(problem)
            store = kept[name]
            handles.append(modules[name].register_forward_hook(
                lambda module, inputs, output, store=store: store.append(_tensor(output))))
        yield kept
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def record(model: nn.Module, name: str, inputs: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The output of layer ``name`` on every row of ``inputs``, in evaluation mode and without
    gradient (the "frozen model" of GeRe), in chunks of ``batch_size`` rows."""
    was_training = model.training
    model.eval()
    try:
        parts = []
        for start in range(0, len(inputs), batch_size):
            with tapped(model, [name]) as kept:
                model(inputs[start:start + batch_size])
            if len(kept[name]) != 1:
                raise ValueError(f"layer {name!r} ran {len(kept[name])} times in one forward; name a layer that "
                                 f"runs once")
            parts.append(kept[name][0].detach())
        return torch.cat(parts)
    finally:
        model.train(was_training)
