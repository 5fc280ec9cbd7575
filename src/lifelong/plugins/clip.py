"""Gradient clipping as a step plug-in: Mammoth's SI (``models/si.py``) clips every gradient
entry to ``[−1, 1]`` before each update (``torch.nn.utils.clip_grad_value_``), and clipping by
the global norm is common for recurrent and language models (Pascanu et al., "On the difficulty
of training recurrent neural networks", ICML 2013)."""
from __future__ import annotations

import math

import torch

from lifelong.plugins import register_plugin


@register_plugin
class ClipGrad:
    """Clip the gradients after the backward pass, before the update: each entry to
    ``[−value, value]`` and/or the global L2 norm to at most ``norm`` (``None``: not that one).
    Runs after the terms' own ``after_backward`` hooks (SI records its unclipped gradient there)."""

    name = "clip-grad"
    stateless = True

    def __init__(self, value: float | None = 1.0, norm: float | None = None) -> None:
        for key, v in (("value", value), ("norm", norm)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0
                                  or not math.isfinite(v)):
                raise ValueError(f"`{key}` must be a positive number or null, got {v!r}")
        if value is None and norm is None:
            raise ValueError("set `value`, `norm` or both")
        self.value = None if value is None else float(value)
        self.norm = None if norm is None else float(norm)
        self._params: list[torch.Tensor] | None = None

    def after_backward(self, state, batch) -> None:
        if self._params is None:
            self._params = [p for p in state.model.parameters() if p.requires_grad]
        grads = [p.grad for p in self._params if p.grad is not None]
        if self.value is not None:
            torch._foreach_clamp_min_(grads, -self.value)
            torch._foreach_clamp_max_(grads, self.value)
        if self.norm is not None:
            torch.nn.utils.clip_grad_norm_(self._params, self.norm)
