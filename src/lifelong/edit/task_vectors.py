"""Task vectors: the update ``τ = θ_ft − θ_base`` of a model fine-tuned from a starting point
(Ilharco et al., "Editing models with task arithmetic", ICLR 2023), as a state dict.

Followed as ``wang-kee/LiNeS`` (HEAD ``43a7bdd``) builds them in ``src/models/task_vectors.py``
(``_TaskVector.__init__``, ``apply_to``): one entry per state-dict key, integer entries left
out. Here every floating-point entry is in ``τ`` (parameters and float buffers such as
batch-norm running means and variances, as the reference's dtype rule keeps them); integer
entries (``num_batches_tracked``) are not, and :func:`apply_to` copies them from the base.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence, Union

import torch
import torch.nn as nn

from lifelong.errors import ConfigError

StateDict = dict[str, torch.Tensor]
Weights = Union[nn.Module, Mapping[str, torch.Tensor]]


def state_of(weights: Weights, what: str = "model") -> StateDict:
    """``weights`` as a detached state dict (a module's ``state_dict()`` or a mapping)."""
    if isinstance(weights, nn.Module):
        return {k: v.detach() for k, v in weights.state_dict().items()}
    if isinstance(weights, Mapping):
        return {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in weights.items()}
    raise ConfigError(f"{what}: expected a torch.nn.Module or a state dict, got {type(weights).__name__}")


def check_compatible(base: StateDict, other: StateDict, what: str = "fine-tuned model") -> None:
    """One-line :class:`ConfigError` unless ``other`` has ``base``'s keys, shapes and dtypes."""
    missing, extra = sorted(set(base) - set(other)), sorted(set(other) - set(base))
    if missing or extra:
        raise ConfigError(f"{what} has a different architecture from the base: "
                          f"missing {missing[:3]}, unexpected {extra[:3]}")
    for key, value in base.items():
        theirs = other[key]
        if tuple(theirs.shape) != tuple(value.shape) or theirs.dtype != value.dtype:
            raise ConfigError(f"{what} has a different architecture from the base: {key} is "
                              f"{tuple(theirs.shape)} {theirs.dtype}, the base's {tuple(value.shape)} {value.dtype}")


def task_vector(base: Weights, finetuned: Weights) -> StateDict:
    """``τ = θ_ft − θ_base`` over the floating-point entries of the state dict."""
    b, f = state_of(base, "base"), state_of(finetuned, "fine-tuned model")
    check_compatible(b, f)
    return {k: f[k] - v for k, v in b.items() if v.is_floating_point()}


def task_vectors(base: Weights, finetuned: Iterable[Weights]) -> list[StateDict]:
    """One task vector per fine-tuned model, all from the same ``base``."""
    out = [task_vector(base, f) for f in finetuned]
    if not out:
        raise ConfigError("no fine-tuned models given")
    return out


def scale(tau: Mapping[str, torch.Tensor], coef: float) -> StateDict:
    """``coef · τ``."""
    return {k: coef * v for k, v in tau.items()}


def check_same_keys(taus: Sequence[Mapping[str, torch.Tensor]]) -> None:
    """One-line :class:`ConfigError` unless there is at least one task vector and all share keys."""
    if not taus:
        raise ConfigError("no task vectors given")
    for t in taus[1:]:
        if set(t) != set(taus[0]):
            raise ConfigError("task vectors with different keys cannot be combined (different architectures)")


def add(taus: Iterable[Mapping[str, torch.Tensor]]) -> StateDict:
    """``Σ_i τ_i`` (all with the same keys)."""
    taus = list(taus)
    check_same_keys(taus)
    return {k: torch.stack([t[k] for t in taus]).sum(0) for k in taus[0]}


def l1_norm(tau: Mapping[str, torch.Tensor]) -> float:
    """``‖τ‖₁`` over all entries (``.abs().sum()`` of the flattened vector, as the reference)."""
    return float(sum(v.abs().sum().item() for v in tau.values()))


def apply_to(base: Weights, tau: Mapping[str, torch.Tensor], coef: float = 1.0) -> StateDict:
    """``θ_base + coef · τ`` as a new state dict; entries without a ``τ`` (integer buffers) are
    copied from the base. Load it with ``model.load_state_dict``."""
    b = state_of(base, "base")
    unknown = sorted(set(tau) - set(b))
    if unknown:
        raise ConfigError(f"task vector has keys the base lacks: {unknown[:3]} (different architectures)")
    return {k: (v + coef * tau[k].to(v.device) if k in tau else v.clone()) for k, v in b.items()}


VAR_FLOOR = 0.0  # a merged batch-norm running variance below this is raised to it


def clamp_running_var(state: StateDict, floor: float = VAR_FLOOR) -> int:
    """Raise every batch-norm running variance entry (keys ending in ``running_var``) below
    ``floor`` to ``floor``, in place, and return how many were raised. A merge with ``λ·T > 1``
    (or LiNeS' ``λ(ℓ) > 1``) extrapolates past the fine-tuned variances and can push them below
    0, where batch norm's ``√(var + ε)`` is undefined; the reference's ViTs have no such buffers."""
    raised = 0
    for key, value in state.items():
        if key.endswith("running_var") and value.is_floating_point():
            low = value < floor
            raised += int(low.sum())
            value[low] = floor
    return raised


def flatten(tau: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """All entries of ``τ`` as one vector, in the mapping's key order."""
    return torch.cat([v.reshape(-1) for v in tau.values()])


def unflatten(vector: torch.Tensor, like: Mapping[str, torch.Tensor]) -> StateDict:
    """The inverse of :func:`flatten`: ``vector`` cut into ``like``'s keys and shapes."""
    out, start = {}, 0
    for k, v in like.items():
        out[k] = vector[start:start + v.numel()].reshape(v.shape).to(v.dtype)
        start += v.numel()
    return out
