"""RESTOR-style recovery: does unlearning a corruption bring back the clean model's behaviour?

After Rezaei et al., "RESTOR: Knowledge Recovery in Machine Unlearning", TMLR 2025 (protocol in
``k1rezaei/restor``, ``evaluation/``): three model states, *clean* (never saw the corruption),
*corrupted* (the clean one trained further on examples carrying wrong labels, the forget set)
and *unlearned* (the corrupted one after an unlearning method). RESTOR judges a method by how
close it comes back to the clean model on the affected facts, not only by how rarely it still
gives the corrupted answer; a method that merely forgets (a wrong answer that is not the
corrupted one) shows up as such. Here the affected inputs are the forget set's ``x``, and for
each model ``f`` (predictions ``argmax f(x)``):

    clean_accuracy     = mean[ argmax f(x) = y_clean ]              (knowledge restored)
    corrupt_accuracy   = mean[ argmax f(x) = y_corrupt ]            (how much corruption remains)
    clean_agreement    = mean[ argmax f(x) = argmax f_clean(x) ]    (the clean model's behaviour)
    recovery           = (clean_accuracy(f) − clean_accuracy(f_corrupted))
                         / (clean_accuracy(f_clean) − clean_accuracy(f_corrupted))

``recovery`` is the fraction of the clean−corrupted gap in clean-label accuracy that ``f``
closes: 0 for the corrupted model, 1 for the clean one, below 0 when ``f`` does worse than the
corrupted model, ``nan`` when the corruption left no gap. :func:`corrupt_model` makes the
corrupted model the way RESTOR does in kind (continued training of the clean model on the
corruption, interleaved with correct data so that the rest stays usable; see its docstring).
"""
from __future__ import annotations

import copy
import math
from typing import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from lifelong.errors import ConfigError
from lifelong.seeding import torch_generator
from lifelong.unlearn.data import UnlearnData, batches
from lifelong.unlearn.evaluate import logits

MEASURES = ("clean_accuracy", "corrupt_accuracy", "clean_agreement", "recovery")


def _predictions(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return logits(model, x).argmax(1)


def recovery_measures(model: nn.Module, clean: nn.Module, x: torch.Tensor, clean_y: torch.Tensor,
                      corrupt_y: torch.Tensor) -> dict[str, float]:
    """``clean_accuracy``, ``corrupt_accuracy`` and ``clean_agreement`` of ``model`` on the
    affected inputs ``x`` (fractions in [0, 1]; see the module docstring)."""
    if len(x) == 0 or len(clean_y) != len(x) or len(corrupt_y) != len(x):
        raise ConfigError("recovery needs affected inputs with one clean and one corrupted label each")
    pred = _predictions(model, x)
    return {"clean_accuracy": float((pred == clean_y).float().mean()),
            "corrupt_accuracy": float((pred == corrupt_y).float().mean()),
            "clean_agreement": float((pred == _predictions(clean, x)).float().mean())}


def recovery_ratio(value: float, clean: float, corrupted: float) -> float:
    """``(value − corrupted) / (clean − corrupted)``; ``nan`` when ``clean == corrupted``."""
    gap = clean - corrupted
    return float("nan") if abs(gap) < 1e-12 or math.isnan(gap) else (value - corrupted) / gap


def recovery_report(clean: nn.Module, corrupted: nn.Module, unlearned: Mapping[str, nn.Module], x: torch.Tensor,
                    clean_y: torch.Tensor, corrupt_y: torch.Tensor) -> dict[str, dict[str, float]]:
    """One row per model: ``clean``, ``corrupted``, then each of ``unlearned`` (name → model; the
    names ``clean`` and ``corrupted`` are refused), each with the :data:`MEASURES`."""
    taken = sorted({"clean", "corrupted"} & set(unlearned))
    if taken:
        raise ConfigError(f"recovery: an unlearned model may not be called {taken[0]!r}")
    rows = {name: recovery_measures(model, clean, x, clean_y, corrupt_y)
            for name, model in {"clean": clean, "corrupted": corrupted, **unlearned}.items()}
    top, bottom = rows["clean"]["clean_accuracy"], rows["corrupted"]["clean_accuracy"]
    for row in rows.values():
        row["recovery"] = recovery_ratio(row["clean_accuracy"], top, bottom)
    return rows


def recovery_of(data: UnlearnData, clean: nn.Module, corrupted: nn.Module, unlearned: Mapping[str, nn.Module]
                ) -> dict[str, dict[str, float]]:
    """:func:`recovery_report` on a corruption's data (``data.clean_y`` set: a ``corrupt:`` forget
    set): the forget set's inputs, true labels and corrupted labels."""
    if data.clean_y is None:
        raise ConfigError("recovery needs a corruption's data (a `corrupt:` forget set: clean and corrupted labels)")
    return recovery_report(clean, corrupted, unlearned, data.forget_x, data.clean_y[data.forget], data.forget_y)


def corrupt_model(model: nn.Module, data: UnlearnData, epochs: int = 5, lr: float = 0.03, batch_size: int = 10,
                  seed: int = 0) -> nn.Module:
    """The corrupted model: a copy of the clean ``model`` trained further, ``epochs`` passes of
    SGD (plain, constant ``lr``) over shuffled batches of ``batch_size`` forget examples with
    their (wrong) labels ``data.forget_y``, each batch joined by ``batch_size`` retain examples
    drawn uniformly with replacement (true labels), one cross-entropy step on the joined batch.

    RESTOR continues training the clean model on the corruption documents (5 epochs; the wrong
    facts interleaved with unrelated correct ones); 5 epochs and the interleaving are kept, the
    optimiser (SGD at the run's lr and batch instead of LoRA with a cosine schedule) is ours."""
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"`{name}` must be an integer >= 1, got {value!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"`lr` must be a finite number > 0, got {lr!r}")
    model, was_training = copy.deepcopy(model), model.training
    gen = torch_generator(seed, "unlearn-corrupt-train", data.train_y.device)
    retain_x, retain_y = data.retain_x, data.retain_y
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for bx, by in batches(data.forget_x, data.forget_y, batch_size, gen):
            pick = torch.randint(len(retain_y), (batch_size,), generator=gen, device=gen.device).to(retain_y.device)
            opt.zero_grad()
            F.cross_entropy(model(torch.cat([bx, retain_x[pick]])), torch.cat([by, retain_y[pick]])).backward()
            opt.step()
    return model.train(was_training)
