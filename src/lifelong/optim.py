"""The run's optimisers in a few tensor operations: SGD and Adadelta (``--optimizer``).

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

:class:`Adadelta` is ``torch.optim.Adadelta``'s update (Zeiler, "ADADELTA: An adaptive learning
rate method", 2012, Algorithm 1, with PyTorch's ``lr`` factor), the optimiser of SHARP's code
(``BurakGurbuz97/SHARP-Continual-Learning``, ``Source/learner.py``: ``lr`` 1.0, weight decay 0)::

    g = grad + weight_decay * theta
    v = rho * v + (1 - rho) * g^2                    (v, u: zeros before the first step)
    d = sqrt(u + eps) / sqrt(v + eps) * g
    u = rho * u + (1 - rho) * d^2
    theta = theta - lr * d
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

    def reset_state(self) -> None:
        """Forget the momentum, as a newly built optimiser would start (SHARP's new optimiser per phase)."""
        self.momentum_buffers = None

    def load_state_dict(self, state: dict) -> None:
        self.param_groups[0].update(state["group"])
        buffers = state["momentum_buffers"]
        self.momentum_buffers = None if buffers is None else [b.clone() for b in buffers]


RHO = 0.9  # Adadelta's decay of its running averages: torch.optim.Adadelta's default, SHARP's
EPS = 1e-6  # inside both square roots: torch.optim.Adadelta's default, SHARP's


class Adadelta:
    """Adadelta with weight decay (L2 added to the gradient), as ``torch.optim.Adadelta``.

    ``param_groups[0]["lr"]`` is read at every step. A parameter without a gradient at a step is
    left as it is, its running averages too (as ``torch.optim``)."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1.0, weight_decay: float = 0.0,
                 rho: float = RHO, eps: float = EPS) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.param_groups = [{"params": self.params, "lr": lr, "weight_decay": weight_decay, "rho": rho, "eps": eps}]
        self.square_avgs: list[torch.Tensor] | None = None  # v, one per parameter
        self.acc_deltas: list[torch.Tensor] | None = None  # u

    zero_grad = SGD.zero_grad

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        rho, eps = group["rho"], group["eps"]
        if self.square_avgs is None:
            self.square_avgs = [torch.zeros_like(p) for p in self.params]
            self.acc_deltas = [torch.zeros_like(p) for p in self.params]
        held = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not held:
            return
        params = [self.params[i] for i in held]
        grads = [p.grad for p in params]
        square_avgs = [self.square_avgs[i] for i in held]
        acc_deltas = [self.acc_deltas[i] for i in held]
        if group["weight_decay"]:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
        torch._foreach_mul_(square_avgs, rho)
        torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - rho)
        std = torch._foreach_add(square_avgs, eps)
        torch._foreach_sqrt_(std)
        deltas = torch._foreach_add(acc_deltas, eps)
        torch._foreach_sqrt_(deltas)
        torch._foreach_div_(deltas, std)
        torch._foreach_mul_(deltas, grads)
        torch._foreach_mul_(acc_deltas, rho)
        torch._foreach_addcmul_(acc_deltas, deltas, deltas, value=1 - rho)
        torch._foreach_add_(params, deltas, alpha=-group["lr"])

    def state_dict(self) -> dict:
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        return {"group": group, "square_avgs": self.square_avgs, "acc_deltas": self.acc_deltas}

    def reset_state(self) -> None:
        """Forget both running averages, as a newly built optimiser would start (SHARP builds a new
        Adadelta for each phase, ``Learner.learn_next_episode``)."""
        self.square_avgs = self.acc_deltas = None

    def load_state_dict(self, state: dict) -> None:
        self.param_groups[0].update(state["group"])
        for name in ("square_avgs", "acc_deltas"):
            saved = state[name]
            setattr(self, name, None if saved is None else
                    [s.to(device=p.device, copy=True) for s, p in zip(saved, self.params)])


def build_optimizer(name: str, params: Iterable[torch.Tensor], lr: float, momentum: float = 0.0,
                    weight_decay: float = 0.0) -> SGD | Adadelta:
    """The run's optimiser by its name (:data:`lifelong.config.OPTIMIZERS`; ``momentum`` is SGD's only)."""
    if name == "adadelta":
        if momentum:
            raise ValueError("Adadelta has no momentum")
        return Adadelta(params, lr=lr, weight_decay=weight_decay)
    return SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
