"""LiNeS: post-training layer scaling (Wang et al., "LiNeS: post-training layer scaling prevents
forgetting and enhances model merging", ICLR 2025), followed as ``wang-kee/LiNeS`` (HEAD
``43a7bdd``) computes it: ``src/eval/eval.py::LiNeS_scaling`` and ``evaluate``, the norms in
``src/eval/aggregation.py::create_task_vector``, the worked example ``LiNeS_example.ipynb``.

The update of layer block ``ℓ ∈ 0..L−1`` is scaled by ``λ(ℓ) = α + β·ℓ/(L−1)``; entries
outside the blocks (:mod:`lifelong.edit.layers`) by ``α``; the edited model is
``θ_base + τ_scaled``.

* Single task ("prevent forgetting"): ``β = 1 − α``, so the last block keeps its whole update
  and the shallow ones move towards the base. The reference tries ``α = 1.0, 0.9, …, 0.0`` and
  keeps the best ``2·target + control`` normalised accuracy on validation; the notebook uses 0.1.
* Multi-task merging: ``τ`` is the merged vector (task arithmetic or TIES, no ``λ``),
  ``α = ‖Σ_i τ_i‖₁ / (T·‖τ_merged‖₁)`` with the untrimmed ``τ_i`` (``1/T`` for task arithmetic),
  and ``β`` is tuned on validation (0.1..1.0 with task arithmetic, 0.1..1.5 with TIES).
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import torch
import torch.nn as nn

from lifelong.edit.layers import LayerSpec, resolve_layers
from lifelong.edit.merge import merged_vector
from lifelong.edit.task_vectors import (StateDict, Weights, add, apply_to, clamp_running_var, l1_norm, task_vector,
                                        task_vectors)
from lifelong.errors import ConfigError


def _finite(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"LiNeS {name} must be a finite number, got {value!r}")
    return float(value)


def lines_coefficients(num_layers: int, alpha: float, beta: float) -> list[float]:
    """``[α + β·ℓ/(L−1) for ℓ in 0..L−1]``."""
    if num_layers < 2:
        raise ConfigError(f"LiNeS needs at least 2 layer blocks (ℓ/(L−1)), got {num_layers}")
    return [alpha + beta * layer / (num_layers - 1) for layer in range(num_layers)]


def lines_scale(tau: Mapping[str, torch.Tensor], mapping: Mapping[str, Optional[int]], num_layers: int,
                alpha: float, beta: float) -> StateDict:
    """``τ`` with block ``ℓ``'s entries times ``α + β·ℓ/(L−1)`` and the others times ``α``."""
    coefs = lines_coefficients(num_layers, _finite(alpha, "α"), _finite(beta, "β"))
    return {k: v * (alpha if mapping.get(k) is None else coefs[mapping[k]]) for k, v in tau.items()}


def _model_of(*weights: Weights) -> Optional[nn.Module]:
    return next((w for w in weights if isinstance(w, nn.Module)), None)


def check_alpha_beta(alpha: float, beta: Optional[float] = None) -> tuple[float, float]:
    """``(α, β)`` of a single-task edit checked (``α ∈ [0, 1]``, ``β`` finite); ``β`` defaults to ``1 − α``."""
    alpha = _finite(alpha, "α")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"LiNeS α must be in [0, 1], got {alpha!r}")
    return alpha, 1.0 - alpha if beta is None else _finite(beta, "β")


def lines_edit(base: Weights, finetuned: Weights, alpha: float, layers: LayerSpec = None,
               beta: Optional[float] = None) -> StateDict:
    """The single-task LiNeS edit ``θ_base + LiNeS(τ; α, β = 1 − α)``, ``α ∈ [0, 1]``; ``beta``
    replaces the reference's ``1 − α`` (``beta=0``: plain interpolation ``θ_base + α·τ``).
    ``layers``: see :func:`lifelong.edit.layers.resolve_layers` (default: the built-in blocks of
    ``base`` or ``finetuned``, whichever is a module)."""
    alpha, beta = check_alpha_beta(alpha, beta)
    tau = task_vector(base, finetuned)
    mapping, num = resolve_layers(tau.keys(), layers, _model_of(base, finetuned))
    return apply_to(base, lines_scale(tau, mapping, num, alpha, beta))


def merged_alpha(taus: Sequence[Mapping[str, torch.Tensor]], merged: Mapping[str, torch.Tensor]) -> float:
    """The reference's multi-task ``α = ‖Σ_i τ_i‖₁ / (T·‖τ_merged‖₁)``."""
    norm = l1_norm(merged)
    if norm == 0:
        raise ConfigError("the merged task vector is zero: the fine-tuned models equal the base")
    return l1_norm(add(taus)) / (len(taus) * norm)


def lines_merge(base: Weights, finetuned: Sequence[Weights], beta: float, method: str = "task_arithmetic",
                k: float = 20.0, layers: LayerSpec = None) -> StateDict:
    """Multi-task LiNeS: ``θ_base + LiNeS(τ_merged; α = merged_alpha, β)`` for the task
    arithmetic or TIES (``k``%) merge of models fine-tuned from ``base``; running variances below
    0 set to 0 (:func:`lifelong.edit.task_vectors.clamp_running_var`)."""
    beta = _finite(beta, "β")
    taus = task_vectors(base, finetuned)
    merged = merged_vector(taus, method, k)
    mapping, num = resolve_layers(merged.keys(), layers, _model_of(base, *finetuned))
    state = apply_to(base, lines_scale(merged, mapping, num, merged_alpha(taus, merged), beta))
    clamp_running_var(state)  # λ(ℓ) > 1 can push a batch-norm running variance below 0
    return state
