"""Merging task vectors of models fine-tuned from one start: task arithmetic and TIES.

* Task arithmetic (Ilharco et al., ICLR 2023): ``τ = Σ_i τ_i``; the merged model is
  ``θ_base + λ·τ``.
* TIES (Yadav et al., "TIES-Merging: resolving interference when merging models", NeurIPS 2023,
  Sec. 3 and Algorithm 1): trim each ``τ_i`` to its top-k% entries by magnitude, elect each
  entry's sign by the summed mass of the trimmed vectors, average only the entries that agree
  with the elected sign (disjoint mean); the merged model is ``θ_base + λ·τ``.

Followed as ``wang-kee/LiNeS`` (HEAD ``43a7bdd``) computes them: ``src/eval/aggregation.py``
(``create_task_vector``: ``"sum"`` and ``"ties"``, ``agg: mean``, ``k: 20``),
``src/utils/ties_utils.py`` (``resolve_sign``, ``resolve_zero_signs``, ``disjoint_merge``) and
``src/utils/utils.py::topk_values_mask``. Trimming is global over each task vector flattened
(every entry of the state dict at once, not layer by layer), and keeps the entries whose
magnitude is at least the ``(d − ⌊d·k/100⌋)``-th smallest: ``⌊d·k/100⌋ + 1`` of ``d`` entries
without ties, as the reference's ``kthvalue`` rule does. An entry whose trimmed sum is zero gets
the sign of the sum of all elected signs (``resolve_zero_signs(..., "majority")``).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from lifelong.edit.task_vectors import (StateDict, Weights, add, apply_to, check_same_keys, clamp_running_var, flatten,
                                        scale, task_vectors, unflatten)
from lifelong.errors import ConfigError

METHODS = ("task_arithmetic", "ties")


def _check_k(k: float) -> float:
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not 0 < k <= 100:
        raise ConfigError(f"TIES k must be a percentage in (0, 100], got {k!r}")
    return float(k)


def trim_top_k(flat: torch.Tensor, k: float) -> torch.Tensor:
    """Each row of ``flat`` (one task vector per row) with all but its top-``k``% entries by
    magnitude set to zero (``topk_values_mask``: kept when ``|x| ≥`` the ``(d − ⌊d·k/100⌋)``-th
    smallest magnitude of the row)."""
    k = _check_k(k)
    if k == 100:
        return flat.clone()
    d = flat.shape[1]
    rank = d - int(d * (k / 100))
    threshold = flat.abs().kthvalue(rank, dim=1, keepdim=True).values
    return flat * (flat.abs() >= threshold)


def elect_signs(trimmed: torch.Tensor) -> torch.Tensor:
    """Per entry, the sign of the summed trimmed values over task vectors (rows); entries whose
    sum is zero take the sign of the sum of all elected signs."""
    signs = torch.sign(trimmed.sum(0))
    majority = torch.sign(signs.sum())
    return torch.where(signs == 0, majority, signs)


def disjoint_mean(trimmed: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """Per entry, the mean of the task vectors' values whose sign agrees with ``signs`` (zero
    where none does)."""
    agree = torch.where(signs.unsqueeze(0) > 0, trimmed > 0, trimmed < 0)
    selected = trimmed * agree
    count = (selected != 0).sum(0).clamp(min=1)
    return selected.sum(0) / count


def ties_vector(taus: Sequence[StateDict], k: float = 20.0) -> StateDict:
    """The TIES multi-task vector (before ``λ``) of task vectors sharing keys and shapes."""
    check_same_keys(taus)
    flat = torch.stack([flatten({key: t[key] for key in taus[0]}) for t in taus])
    trimmed = trim_top_k(flat, k)
    return unflatten(disjoint_mean(trimmed, elect_signs(trimmed)), taus[0])


def merged_vector(taus: Sequence[StateDict], method: str = "task_arithmetic", k: float = 20.0) -> StateDict:
    """The multi-task vector (before ``λ``): ``Σ_i τ_i`` or TIES'."""
    if method == "task_arithmetic":
        return add(taus)
    if method == "ties":
        return ties_vector(taus, k)
    raise ConfigError(f"unknown merge method {method!r}; choose one of: {', '.join(METHODS)}")


def merge(base: Weights, finetuned: Sequence[Weights], method: str = "task_arithmetic", lam: float = 1.0,
          k: float = 20.0) -> StateDict:
    """The merged state dict ``θ_base + λ·τ_merged`` of models fine-tuned from ``base``.
    ``k``: TIES' kept percentage (the reference's 20). The reference picks ``λ`` on validation
    from 0.1..1.0 (task arithmetic) or 0.1..1.5 (TIES). Batch-norm running variances that the
    merge pushes below 0 are set to 0 (:func:`lifelong.edit.task_vectors.clamp_running_var`)."""
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam):
        raise ConfigError(f"merge λ must be a finite number, got {lam!r}")
    tau = merged_vector(task_vectors(base, finetuned), method, k)
    state = apply_to(base, scale(tau, float(lam)))
    clamp_running_var(state)
    return state
