"""Per-example gradient statistics for parameter importance: the diagonal empirical Fisher of
EWC (Kirkpatrick et al., PNAS 2017) and the output sensitivity of MAS (Aljundi et al., ECCV 2018).

Both are sums over examples of an elementwise function of each example's own gradient:
``Σ_i w_i · g_i²`` (Fisher) or ``Σ_i |g_i|`` (MAS). For a linear layer ``o = W a + b`` the
per-example gradient is the outer product ``δ_i a_iᵀ`` (``δ_i`` the gradient at the layer's
output), and for ``f`` = square or absolute value ``f(δ_i a_iᵀ) = f(δ_i) f(a_i)ᵀ``, so the sum
is one matrix product ``(w ⊙ f(δ))ᵀ f(a)`` (Goodfellow, "Efficient per-example gradient
computations", 2015). Models made only of linear layers (the MLP) take that exact fast path;
any other model falls back to ``torch.func.vmap`` over chunks of examples.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
import torch.nn as nn


def _transform(kind: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if kind == "square":
        return torch.square
    if kind == "abs":
        return torch.abs
    raise ValueError(f"unknown statistic {kind!r}; use 'square' or 'abs'")


def _linear_only(model: nn.Module) -> list[nn.Linear] | None:
    """The model's linear layers, if they hold every trainable parameter; else ``None``."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    covered = {id(p) for m in linears for p in m.parameters() if p.requires_grad}
    if any(id(p) not in covered for p in model.parameters() if p.requires_grad):
        return None
    return linears


def per_example_sums(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]],
    kind: str = "square",
) -> list[torch.Tensor]:
    """``Σ_i w_i f(∇_θ ℓ_i)`` for each trainable parameter, in ``model.parameters()`` order.

    ``batches`` yields ``(inputs, targets)``; ``loss(outputs, targets)`` returns the per-example
    losses ``ℓ_i`` (shape ``(N,)``) and weights ``w_i`` (or ``None`` for 1). ``f`` is the square
    (``kind="square"``) or the absolute value (``"abs"``). The model is put in eval mode while
    this runs (batch-norm statistics are not updated) and restored afterwards.
    """
    f = _transform(kind)
    params = [p for p in model.parameters() if p.requires_grad]
    sums = [torch.zeros_like(p) for p in params]
    index = {id(p): i for i, p in enumerate(params)}
    linears = _linear_only(model)
    was_training = model.training
    model.eval()
    try:
        for inputs, targets in batches:
            if linears is not None and _linear_batch(model, linears, inputs, targets, loss, f, sums, index):
                continue
            _vmap_batch(model, params, inputs, targets, loss, f, sums)
    finally:
        model.train(was_training)
    return sums


def _linear_batch(model, linears, inputs, targets, loss, f, sums, index) -> bool:
    seen: dict[nn.Linear, list] = {}

    def keep(module, args, output):
        seen.setdefault(module, []).append((args[0], output))

    handles = [m.register_forward_hook(keep) for m in linears]
    try:
        with torch.enable_grad():
            outputs = model(inputs)
            losses, weights = loss(outputs, targets)
            if any(len(v) != 1 or v[0][0].dim() != 2 for v in seen.values()):
                return False  # a layer used twice or on non-flat inputs: take the general path
            modules = list(seen)
            deltas = torch.autograd.grad(losses.sum(), [seen[m][0][1] for m in modules], allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    for module, delta in zip(modules, deltas):
        if delta is None:
            continue
        a = seen[module][0][0].detach()
        fd = f(delta)
        if weights is not None:
            fd = fd * weights.detach().unsqueeze(1)
        sums[index[id(module.weight)]] += fd.t() @ f(a)
        if module.bias is not None and id(module.bias) in index:
            sums[index[id(module.bias)]] += fd.sum(0)
    return True


def _vmap_batch(model, params, inputs, targets, loss, f, sums, chunk: int | None = None) -> None:
    from torch.func import functional_call, grad, vmap

    names = [n for n, p in model.named_parameters() if p.requires_grad]
    buffers = dict(model.named_buffers())
    frozen = {n: p for n, p in model.named_parameters() if not p.requires_grad}

    def example_loss(theta, x, t):
        out = functional_call(model, ({**dict(zip(names, theta)), **frozen}, buffers), (x.unsqueeze(0),))
        losses, weights = loss(out, t.unsqueeze(0))
        value = losses.sum()
        return value, (weights.detach().sum() if weights is not None else torch.ones((), device=value.device))

    per_example = vmap(grad(example_loss, has_aux=True), in_dims=(None, 0, 0))
    numel = sum(p.numel() for p in params)
    chunk = chunk or max(1, min(256, int(5e7 // max(numel, 1))))
    theta = tuple(p.detach() for p in params)
    for start in range(0, len(inputs), chunk):
        grads, w = per_example(theta, inputs[start:start + chunk], targets[start:start + chunk])
        for s, g in zip(sums, grads):
            s += (f(g) * w.view(-1, *([1] * (g.dim() - 1)))).sum(0)


def cross_entropy_fisher_loss(probability_weighted: bool = True):
    """Per-example cross-entropy with the true label, optionally weighted by the model's
    probability of that label: the empirical Fisher as Mammoth computes it for EWC
    (``exp(-ℓ_i) = p(y_i | x_i)``), and as the refresh-learning code does."""

    def loss(outputs: torch.Tensor, targets: torch.Tensor):
        losses = torch.nn.functional.cross_entropy(outputs, targets, reduction="none")
        return losses, (torch.exp(-losses.detach()) if probability_weighted else None)

    return loss


def output_norm_loss(outputs: torch.Tensor, targets: torch.Tensor):
    """MAS: the squared L2 norm of each example's output (Aljundi et al., 2018, Eq. 3)."""
    return outputs.pow(2).sum(1), None
