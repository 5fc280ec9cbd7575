"""Selective Synaptic Dampening (Foster, Schoepf and Brintrup, "Fast Machine Unlearning Without
Retraining Through Selective Synaptic Dampening", AAAI 2024, Eqs. 3-4) and its label-free form
LFSSD (Foster et al., "Loss-Free Machine Unlearning", ICLR 2024 Tiny Paper), as the authors'
code computes them (``if-loops/selective-synaptic-dampening``, ``src/ssd.py``:
``ParameterPerturber.calc_importance`` and ``modify_weight``; ``ssd_tuning`` in
``src/forget_*_strategies.py``; the LFSSD change in its README).

Importance of a data set, per parameter element, over its mini-batches ``B_1..B_K`` taken in
order (no shuffling, the last batch possibly smaller), with the model in evaluation mode:

    SSD:    I = 1/K Σ_k (∇_θ mean_{i∈B_k} CE(f(x_i), y_i))²      (the square of each batch's mean gradient)
    LFSSD:  I = 1/K Σ_k |∇_θ mean_{i∈B_k} ‖f(x_i)‖₂²|             (no labels; absolute values)

computed on the forget set ``D_f`` and on the whole training set ``D`` (the reference
concatenates retain then forget examples, in that order, into ``D``'s loader; so do we).
Then, for every parameter element (every ``named_parameters()`` tensor, batch-norm weights and
biases included; buffers such as running statistics untouched; ``min_layer = max_layer = -1``
in the reference, i.e. all layers):

    if I_Df > α · I_D:   θ ← θ · min(λ · I_D / I_Df, 1)

The reference's ``exponent`` and ``lower_bound`` are fixed at 1 in every experiment, so they are
not parameters here. Defaults: α = 10, λ = 1 (``forget_*_main.py``: ``selection_weighting =
10 · model_size_scaler`` with the scaler 1 for ResNet-18, ``dampening_constant = 1``) and the
batch size 64 (the full-class script's ``-b`` default; the random-sample script uses 128).

``I_D`` does not depend on the request but on the model and ``D`` (the reference notes it can be
precomputed): :func:`full_importance` with ``order="dataset"`` computes it over ``D`` in its own
order, once, and :func:`ssd_given` takes it; the batches then differ from the reference's
retain-then-forget order (docs/METHODS.md).
"""
from __future__ import annotations

import copy
import math
from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from lifelong.errors import ConfigError
from lifelong.unlearn.data import UnlearnData, batches

Importances = dict[str, torch.Tensor]


def importances(model: nn.Module, data: Iterable[tuple[torch.Tensor, torch.Tensor]],
                label_free: bool = False) -> Importances:
    """Per-parameter importance over the mini-batches ``data`` (an iterable of ``(x, y)``), as in
    the module docstring: the mean over batches of the squared (SSD) or absolute (LFSSD,
    ``label_free``) gradient of the batch's mean loss. Parameters without a gradient get 0."""
    named = list(model.named_parameters())
    sums = {name: torch.zeros_like(p) for name, p in named}
    trainable = [(name, p) for name, p in named if p.requires_grad]
    count = 0
    for x, y in data:
        out = model(x)
        loss = out.pow(2).sum(1).mean() if label_free else F.cross_entropy(out, y)
        grads = torch.autograd.grad(loss, [p for _, p in trainable], allow_unused=True)
        for (name, _), g in zip(trainable, grads):
            if g is not None:
                sums[name] += g.abs() if label_free else g.pow(2)
        count += 1
    return {name: s / max(count, 1) for name, s in sums.items()}


@torch.no_grad()
def dampen(model: nn.Module, full: Importances, forget: Importances, alpha: float, lam: float) -> int:
    """Selective dampening in place: where ``forget > alpha · full``, multiply the parameter by
    ``min(lam · full / forget, 1)``. Returns how many elements were selected."""
    selected_total = 0
    for name, p in model.named_parameters():
        imp_d, imp_f = full[name], forget[name]
        selected = imp_f > alpha * imp_d
        factor = (lam * imp_d / imp_f).clamp(max=1.0)
        p.mul_(torch.where(selected, factor, torch.ones_like(factor)))
        selected_total += int(selected.sum())
    return selected_total


def check_ssd_settings(alpha: float, lam: float, batch_size: int) -> None:
    """α > 0, λ ≥ 0 (finite numbers) and a batch size of at least 1, or one line."""
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
        raise ConfigError(f"SSD's `alpha` (selection weighting) must be a finite number > 0, got {alpha!r}")
    if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0):
        raise ConfigError(f"SSD's `lam` (dampening constant) must be a finite number >= 0, got {lam!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"SSD's `batch_size` must be an integer >= 1, got {batch_size!r}")


def full_importance(model: nn.Module, data: UnlearnData, batch_size: int = 64, label_free: bool = False,
                    order: str = "reference") -> Importances:
    """``I_D``, in evaluation mode (the model's mode restored): over the reference's order of
    ``D`` (``order="reference"``: retain then forget examples, its ``ConcatDataset``), or over
    ``D`` in its own order (``order="dataset"``): the same sum over other batches, independent
    of the forget set, so that it can be computed once and reused for every request."""
    if order == "reference":
        x, y = torch.cat([data.retain_x, data.forget_x]), torch.cat([data.retain_y, data.forget_y])
    elif order == "dataset":
        x, y = data.train_x, data.train_y
    else:
        raise ConfigError(f"SSD's importance order must be 'reference' or 'dataset', got {order!r}")
    was_training = model.training
    model.eval()
    try:
        return importances(model, batches(x, y, batch_size), label_free)
    finally:
        model.train(was_training)


def ssd(model: nn.Module, data: UnlearnData, alpha: float = 10.0, lam: float = 1.0, batch_size: int = 64,
        label_free: bool = False) -> nn.Module:
    """SSD (or LFSSD with ``label_free``) on a copy of ``model``; the input model is untouched."""
    return ssd_given(model, data, None, alpha, lam, batch_size, label_free)


def ssd_given(model: nn.Module, data: UnlearnData, full: Importances | None, alpha: float = 10.0, lam: float = 1.0,
              batch_size: int = 64, label_free: bool = False) -> nn.Module:
    """SSD with the full-set importance ``full`` given (computed beforehand, e.g. cached by
    ``lifelong unlearn --importance-cache``): the forget set's pass and the dampening only;
    ``None``: computed here in the reference's order (:func:`ssd`)."""
    check_ssd_settings(alpha, lam, batch_size)
    model = copy.deepcopy(model)
    was_training = model.training
    model.eval()
    forget = importances(model, batches(data.forget_x, data.forget_y, batch_size), label_free)
    if full is None:
        full = full_importance(model, data, batch_size, label_free)
    dampen(model, full, forget, alpha, lam)
    model.train(was_training)
    return model


def lfssd(model: nn.Module, data: UnlearnData, alpha: float = 10.0, lam: float = 1.0,
          batch_size: int = 64) -> nn.Module:
    """LFSSD: SSD with the label-free importance (squared L2 norm of the logits, absolute
    gradients). The reference code gives no separate α, λ for it; SSD's defaults are kept."""
    return ssd(model, data, alpha=alpha, lam=lam, batch_size=batch_size, label_free=True)
