"""Reversible model merging of LoRA adapters (RMM: Alipour and Amiri, "Towards reversible model
merging for low-rank weights", arXiv 2510.14163, 2025), and the plain merges it is compared with.

No reference code was found (docs/METHODS.md); this follows the paper's abstract and a
third-party review of it (research notes, section 13). For ``n`` adapters of one layer and each
*position* of their factors (in the paper's ``ΔW = A B``, ``A ∈ R^{m×r}``, ``B ∈ R^{r×d}``: a row
of ``A`` or a column of ``B``; in the LoRA convention used here, ``ΔW = (α/r)·B A`` with
``B ∈ R^{out×r}`` and ``A ∈ R^{r×in}``: a row of ``B`` or a column of ``A``), the ``r``-vectors
of the ``n`` adapters form ``X = [x_1 … x_n] ∈ R^{r×n}``. The basis of size ``k`` is ``U_k``,
the top-``k`` left singular vectors of ``X``; task ``i``'s coefficients are ``c_i = U_kᵀ x_i``
and its factors are rebuilt as ``x̂_i = U_k c_i``: the best rank-``k`` fit of ``X`` in the
Frobenius norm (Eckart–Young), in closed form and without data. ``k = n`` (or ``k ≥ r``)
rebuilds every adapter exactly. Unverified against the paper's text: whether ``X`` is centred or
weighted, and whether positions share a basis: here each position has its own ``U_k``
(``per="position"``, the review's reading); ``per="layer"`` is the other reading, one basis per
layer over all its factors flattened (``X ∈ R^{(out+in)·r × n}``: ``k`` basis adapters and ``k``
coefficients per task and layer).

Plain merges of the same adapters (what the paper reports collapses on low-rank weights):

* on the updates: ``ΔW = λ·Σ_i (α/r)·B_i A_i`` (task arithmetic on ``ΔW``);
* on the factors separately: ``A = λ·Σ_i A_i``, ``B = λ·Σ_i B_i``, ``ΔW = (α/r)·B A``.

``λ ∈ [0, 1]``, by default ``1/n`` (the mean).

An adapter set is ``{layer: {"A": A, "B": B}}``; every function returns new tensors.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import torch

from lifelong.errors import ConfigError

Adapters = Mapping[str, Mapping[str, torch.Tensor]]


def check_adapters(adapters: Sequence[Adapters]) -> None:
    """One line unless there are adapters and all have the first one's layers, factor shapes and rank."""
    if not adapters:
        raise ConfigError("no adapters given")
    first = adapters[0]
    for i, other in enumerate(adapters[1:], start=2):
        if set(other) != set(first):
            raise ConfigError(f"adapter {i} adapts other layers than adapter 1: "
                              f"{sorted(set(other) ^ set(first))[:3]}")
        for layer, f in first.items():
            for name in ("A", "B"):
                if tuple(other[layer][name].shape) != tuple(f[name].shape):
                    raise ConfigError(f"adapter {i} has {layer} {name} of shape {tuple(other[layer][name].shape)}, "
                                      f"adapter 1 {tuple(f[name].shape)} (different ranks or layers)")


def check_basis(k: int, n: int) -> int:
    """``k`` checked against ``n`` adapters: an integer in ``1..n``."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ConfigError(f"RMM basis size must be an integer in 1..{n} (the number of adapters), got {k!r}")
    return k


def check_lam(lam: Optional[float], n: int) -> float:
    """The plain merges' ``λ`` in ``[0, 1]``; ``None``: ``1/n``."""
    if lam is None:
        return 1.0 / n
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) or not 0 <= lam <= 1:
        raise ConfigError(f"the plain merges' alpha must be in [0, 1], got {lam!r}")
    return float(lam)


def positions(adapters: Sequence[Adapters], layer: str) -> torch.Tensor:
    """``X`` of every position of ``layer``'s factors, ``(P, r, n)``: the rows of ``B`` then the columns of ``A``."""
    rows = torch.stack([a[layer]["B"] for a in adapters], dim=-1)  # (out, r, n)
    cols = torch.stack([a[layer]["A"].T for a in adapters], dim=-1)  # (in, r, n)
    return torch.cat([rows, cols]).double()


def _split(x: torch.Tensor, like: Mapping[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    out = like["B"].shape[0]
    return {"B": x[:out, :, i].to(like["B"].dtype), "A": x[out:, :, i].T.contiguous().to(like["A"].dtype)}


def rmm_layer(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(U_k, C)`` of each position's ``X`` (``(P, r, n)``): the top-``k`` left singular vectors
    ``(P, r, k')`` and the coefficients ``U_kᵀ X`` ``(P, k', n)``, ``k' = min(k, r, n)``."""
    u, _, _ = torch.linalg.svd(x, full_matrices=False)
    basis = u[:, :, :k]
    return basis, basis.transpose(1, 2) @ x


PER = ("position", "layer")


def rmm(adapters: Sequence[Adapters], k: int, per: str = "position"
        ) -> tuple[list[dict], dict[str, dict[str, torch.Tensor]]]:
    """Each adapter rebuilt from the shared basis of size ``k`` and its own coefficients, and the
    stored artefact ``{layer: {"basis": U_k, "coefficients": C}}`` (``per``: one basis per
    position of the factors, or per layer; see the module docstring)."""
    check_adapters(adapters)
    k = check_basis(k, len(adapters))
    if per not in PER:
        raise ConfigError(f"RMM basis per {per!r}: choose one of {', '.join(PER)}")
    rebuilt: list[dict] = [{} for _ in adapters]
    stored = {}
    for layer in adapters[0]:
        x = positions(adapters, layer)
        basis, coefs = rmm_layer(x if per == "position" else x.reshape(1, -1, x.shape[-1]), k)
        stored[layer] = {"basis": basis.float(), "coefficients": coefs.float()}
        x_hat = (basis @ coefs).reshape(x.shape)
        for i in range(len(adapters)):
            rebuilt[i][layer] = _split(x_hat, adapters[0][layer], i)
    return rebuilt, stored


def delta(adapter: Adapters, scaling: float) -> dict[str, torch.Tensor]:
    """``{layer: scaling · B A}`` (as matrices; reshape to a kernel's shape to apply)."""
    return {layer: scaling * (f["B"] @ f["A"]) for layer, f in adapter.items()}


def merge_deltas(adapters: Sequence[Adapters], scaling: float, lam: float) -> dict[str, torch.Tensor]:
    """Task arithmetic on the updates: ``λ·Σ_i scaling·B_i A_i``."""
    check_adapters(adapters)
    deltas = [delta(a, scaling) for a in adapters]
    return {layer: lam * sum(d[layer] for d in deltas) for layer in deltas[0]}


def merge_factors(adapters: Sequence[Adapters], lam: float) -> dict[str, dict[str, torch.Tensor]]:
    """Task arithmetic on the factors separately: ``A = λ·Σ_i A_i``, ``B = λ·Σ_i B_i``."""
    check_adapters(adapters)
    return {layer: {name: lam * sum(a[layer][name] for a in adapters) for name in ("A", "B")}
            for layer in adapters[0]}


def relative_error(rebuilt: Mapping[str, torch.Tensor], original: Mapping[str, torch.Tensor]) -> float:
    """``‖rebuilt − original‖_F / ‖original‖_F`` over every entry of the mappings (0 when both are 0)."""
    num = sum(float((rebuilt[key].double() - v.double()).pow(2).sum()) for key, v in original.items())
    den = sum(float(v.double().pow(2).sum()) for v in original.values())
    return math.sqrt(num / den) if den else math.sqrt(num)


def flat_factors(adapter: Adapters) -> dict[str, torch.Tensor]:
    return {f"{layer}.{name}": t for layer, f in adapter.items() for name, t in f.items()}


def reconstruction_errors(rebuilt: Sequence[Adapters], adapters: Sequence[Adapters], scaling: float) -> dict:
    """Per adapter, the relative error of its rebuilt factors and of its rebuilt update ``ΔW``."""
    return {"factors": [relative_error(flat_factors(r), flat_factors(a)) for r, a in zip(rebuilt, adapters)],
            "delta": [relative_error(delta(r, scaling), delta(a, scaling)) for r, a in zip(rebuilt, adapters)]}
