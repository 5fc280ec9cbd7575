"""Efficient meta-experience replay (Abbes et al., "Revisiting Replay and Gradient Alignment for
Continual Pre-Training of Large Language Models", CoLLAs 2025): mixed-batch replay plus a
Reptile step every ``k`` optimiser steps, with no extra forward or backward pass::

    every k steps:   θ ← θ_anchor + β (θ − θ_anchor);   θ_anchor ← θ

Direction and magnitude, as the reference code runs it (``chandar-lab/continual-pretraining``,
``megatron/training_replay.py``, ``train()`` around line 1489; defaults ``reptile_inner_steps = 500``,
``reptile_beta = 0.01`` in ``megatron/neox_arguments/neox_args.py``): the new weights are the
anchor plus ``β`` times the update of the last block, so with ``β = 0.01`` each block keeps 1% of
its progress (an interpolation *towards the anchor*, not a step past it); ``β = 1`` is plain
training. The README's ``θ ← (1−ε)θ + εθ_k`` is the same map with ``ε = β``. Also as the reference:

- the anchor is taken at the start of each corpus (``weights_before`` at the top of the per-task
  ``train()``), and the whole ``state_dict`` is interpolated (here: its floating-point tensors, a
  tied weight once);
- the test is ``iteration % k == 0`` on the global step counter *after* the step and before it
  is incremented, so the first Reptile step comes after the stream's first optimiser step
  (0-based step 0), then after steps ``k, 2k, ...``;
- the optimiser's state (Adam's moments) is left as it is.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from lifelong.errors import ConfigError


class EfficientMER:
    def __init__(self, k: int = 500, beta: float = 0.01) -> None:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigError(f"MER's k (steps between Reptile steps) must be a positive integer, got {k!r}")
        if not 0 < beta <= 1:
            raise ConfigError(f"MER's beta must be in (0, 1] (1 is plain training), got {beta!r}")
        self.k, self.beta = k, float(beta)
        self.anchor: dict[str, torch.Tensor] = {}

    def start_corpus(self, model: nn.Module) -> None:
        """Take the anchor: a copy of the model's floating-point state."""
        self.anchor = {}
        seen: set[int] = set()
        for name, t in model.state_dict().items():
            if t.is_floating_point() and t.data_ptr() not in seen:  # a tied weight once (wte = lm_head)
                seen.add(t.data_ptr())
                self.anchor[name] = t.detach().clone()

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> bool:
        """After global optimiser step ``step`` (0-based): the Reptile step when ``step % k == 0``."""
        if step % self.k:
            return False
        state = model.state_dict()
        for name, before in self.anchor.items():
            now = state[name]
            now.copy_(before + self.beta * (now - before))
            before.copy_(now)
        return True

    def state_dict(self) -> dict:
        return {"k": self.k, "beta": self.beta, "anchor": self.anchor}

    def load_state_dict(self, state: dict) -> None:
        self.anchor = {name: t.clone() for name, t in state["anchor"].items()}
