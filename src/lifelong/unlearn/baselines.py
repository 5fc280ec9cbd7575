"""Baseline unlearning methods, each ``method(model, data, **params) -> model`` on a copy of the
model (the input is untouched), every constant a parameter:

- :func:`finetune`: train on the retain set ``D_r`` only, SGD with momentum 0.9 and weight decay
  5e-4, 5 epochs at a constant lr 0.02, batch 64: the SSD reference's ``finetune`` strategy
  (``fit_one_cycle(5, ..., lr=0.02)`` without milestones, ``src/utils.py``).
- :func:`gradient_ascent`: ``steps`` SGD steps that *increase* the cross-entropy on shuffled
  batches of the forget set ``D_f`` (NegGrad; not in the SSD reference: constants ours).
- :func:`random_labels`: train on ``D_f`` with each label replaced by a random wrong one, together
  with ``D_r``, Adam lr 1e-4, 3 epochs, batch 128, shuffled: the SSD reference's ``amnesiac``
  strategy (``fit_one_unlearning_cycle``). The wrong label is drawn uniformly among the classes
  other than the example's own that still have retain examples: for full-class forgetting that is
  the reference's "any class but the forgotten one", for random forgetting its "any class but
  its own", and with several forgotten classes no example is sent to another forgotten class.
- :func:`refresh_unlearn`: refresh learning's unlearning step (:class:`lifelong.plugins.refresh.
  Refresh`, Wang et al., ICLR 2024) applied on purpose: for ``epochs`` passes over shuffled
  batches of ``D_f``, ``steps`` ascent steps each on the batch's cross-entropy, preconditioned by
  the retain set's diagonal Fisher, with the chosen form's noise. In a run the Fisher is the
  finished tasks'; here it is the retain set's (what the model should keep).
"""
from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import torch
import torch.nn as nn
import torch.nn.functional as F

from lifelong.errors import ConfigError
from lifelong.objective.importance import cross_entropy_fisher_loss, per_example_sums
from lifelong.plugins.refresh import Refresh
from lifelong.seeding import torch_generator
from lifelong.unlearn.data import UnlearnData, batches


def _generator(seed: int, name: str, like: torch.Tensor) -> torch.Generator:
    return torch_generator(seed, f"unlearn-{name}", like.device)


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"`{name}` must be an integer >= 1, got {value!r}")


def _check_rate(lr: float) -> None:
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0):
        raise ConfigError(f"`lr` must be a finite number > 0, got {lr!r}")


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer, epochs: int,
           batch_size: int, generator: torch.Generator) -> None:
    """``epochs`` passes of cross-entropy steps over shuffled batches, in training mode."""
    model.train()
    for _ in range(epochs):
        for bx, by in batches(x, y, batch_size, generator):
            optimizer.zero_grad()
            F.cross_entropy(model(bx), by).backward()
            optimizer.step()


def finetune(model: nn.Module, data: UnlearnData, epochs: int = 5, lr: float = 0.02, momentum: float = 0.9,
             weight_decay: float = 5e-4, batch_size: int = 64, seed: int = 0) -> nn.Module:
    """Fine-tune on the retain set (the SSD reference's ``finetune``)."""
    _check_counts(epochs=epochs, batch_size=batch_size)
    _check_rate(lr)
    model, was_training = copy.deepcopy(model), model.training
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    _train(model, data.retain_x, data.retain_y, opt, epochs, batch_size, _generator(seed, "finetune", data.train_y))
    return model.train(was_training)


def gradient_ascent(model: nn.Module, data: UnlearnData, steps: int = 20, lr: float = 0.01,
                    batch_size: int = 64, seed: int = 0) -> nn.Module:
    """``steps`` plain SGD steps of ``θ ← θ + lr ∇ CE`` on shuffled forget batches (cycling)."""
    _check_counts(steps=steps, batch_size=batch_size)
    _check_rate(lr)
    model, was_training = copy.deepcopy(model), model.training
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    gen = _generator(seed, "gradient-ascent", data.train_y)
    model.train()
    done = 0
    while done < steps:
        for bx, by in batches(data.forget_x, data.forget_y, batch_size, gen):
            opt.zero_grad()
            (-F.cross_entropy(model(bx), by)).backward()
            opt.step()
            done += 1
            if done == steps:
                break
    return model.train(was_training)


def wrong_labels(data: UnlearnData, generator: torch.Generator) -> torch.Tensor:
    """For each forget example, a label drawn uniformly among the classes that are not its own
    and still have retain examples (see the module docstring)."""
    kept = torch.bincount(data.retain_y, minlength=data.num_classes) > 0
    own = data.forget_y
    allowed = kept.unsqueeze(0).expand(len(own), -1).clone()
    allowed[torch.arange(len(own), device=own.device), own] = False
    if not bool(allowed.any(1).all()):
        raise ConfigError("random relabelling needs at least two classes with retain examples")
    return torch.multinomial(allowed.float(), 1, generator=generator).flatten()


def random_labels(model: nn.Module, data: UnlearnData, epochs: int = 3, lr: float = 1e-4, batch_size: int = 128,
                  seed: int = 0) -> nn.Module:
    """Random relabelling (the SSD reference's ``amnesiac``): Adam on ``D_f`` with wrong labels plus ``D_r``."""
    _check_counts(epochs=epochs, batch_size=batch_size)
    _check_rate(lr)
    model, was_training = copy.deepcopy(model), model.training
    gen = _generator(seed, "random-labels", data.train_y)
    x = torch.cat([data.forget_x, data.retain_x])
    y = torch.cat([wrong_labels(data, gen), data.retain_y])
    _train(model, x, y, torch.optim.Adam(model.parameters(), lr=lr), epochs, batch_size, gen)
    return model.train(was_training)


def retain_fisher(model: nn.Module, data: UnlearnData, batch_size: int = 1000) -> list[torch.Tensor]:
    """The retain set's diagonal empirical Fisher, probability-weighted as refresh's
    (:func:`lifelong.objective.weight.task_fisher` over ``D_r`` instead of a task)."""
    n = len(data.retain_y)
    sums = per_example_sums(model, batches(data.retain_x, data.retain_y, batch_size),
                            cross_entropy_fisher_loss(True), "square")
    return [s / max(n, 1) for s in sums]


def refresh_unlearn(model: nn.Module, data: UnlearnData, form: str = "paper", gamma: float | None = None,
                    noise: float | None = None, normalize: bool | None = None, steps: int = 1, epochs: int = 1,
                    damping: float = 1e-3, preconditioner: str = "damped", batch_size: int = 64,
                    seed: int = 0) -> nn.Module:
    """Refresh learning's unlearning step over the forget set (``gamma``, ``noise``, ``normalize``:
    the form's values when ``None``; the loss is always the batch's cross-entropy)."""
    _check_counts(steps=steps, epochs=epochs, batch_size=batch_size)
    try:
        refresh = Refresh(form=form, gamma=gamma, noise=noise, normalize=normalize, loss="ce", damping=damping,
                          preconditioner=preconditioner, seed=seed)
    except ValueError as exc:
        raise ConfigError(f"refresh: {exc}") from None
    model, was_training = copy.deepcopy(model), model.training
    refresh.fisher = retain_fisher(model, data)
    refresh.generator = torch_generator(seed, "refresh", data.train_y.device)
    state = SimpleNamespace(model=model)
    gen = _generator(seed, "refresh", data.train_y)
    model.train()
    for _ in range(epochs):
        for bx, by in batches(data.forget_x, data.forget_y, batch_size, gen):
            for _ in range(steps):
                refresh.unlearn(state, SimpleNamespace(x=bx, y=by))
    return model.train(was_training)
