"""Stochastic gradient descent in a few tensor operations.

The update is exactly that of ``torch.optim.SGD`` with dampening 0 (Sutskever et al., "On the
importance of initialization and momentum in deep learning", ICML 2013, in PyTorch's form)::

    g = grad + weight_decay * theta
    b = g                    (first step)      b = momentum * b + g   (later steps)
    g = g + momentum * b     (Nesterov)        g = b                  (otherwise)
    theta = theta - lr * g

It exists because at batch size 10 the optimiser's own overhead is a large share of a step:
this one takes a third of the time of ``torch.optim.SGD.step`` and does not import
``torch._dynamo`` (about 2 s and 60 MB at start-up). Any ``torch.optim`` optimiser can be
passed to :func:`lifelong.loop.train` instead.
"""
from __future__ import annotations

from typing import Iterable

import torch


class SGD:
    """SGD with optional momentum, Nesterov momentum and weight decay (L2 added to the gradient).

    ``param_groups[0]["lr"]`` is read at every step, so schedules may change it as they do for
    ``torch.optim`` optimisers.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        self.params = [p for p in params if p.requires_grad]
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.param_groups = [{"params": self.params, "lr": lr, "momentum": momentum,
                              "weight_decay": weight_decay, "nesterov": nesterov}]
        self.momentum_buffers: list[torch.Tensor] | None = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        params = [p for p in self.params if p.grad is not None]
        if len(params) != len(self.params):
            if self.momentum_buffers is not None:
                raise RuntimeError("SGD with momentum needs a gradient for every parameter at every step")
        grads = [p.grad for p in params]
        if group["weight_decay"]:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
        momentum = group["momentum"]
        if momentum:
            if self.momentum_buffers is None:
                self.momentum_buffers = [g.clone() for g in grads]
            else:
                torch._foreach_mul_(self.momentum_buffers, momentum)
                torch._foreach_add_(self.momentum_buffers, grads)
            if group["nesterov"]:
                grads = torch._foreach_add(grads, self.momentum_buffers, alpha=momentum)
            else:
                grads = self.momentum_buffers
        torch._foreach_add_(params, grads, alpha=-group["lr"])

    def state_dict(self) -> dict:
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        return {"group": group, "momentum_buffers": self.momentum_buffers}

    def load_state_dict(self, state: dict) -> None:
        self.param_groups[0].update(state["group"])
        buffers = state["momentum_buffers"]
        self.momentum_buffers = None if buffers is None else [b.clone() for b in buffers]
