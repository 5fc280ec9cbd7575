"""Adaptive term weights from short-horizon convergence and instability: the reweighting of
RECAP (Phan et al., "Beyond Reasoning Gains: Mitigating General Capabilities Forgetting in Large
Reasoning Models", arXiv 2510.21978, 2025, Sec. 4, Eq. 1, Algorithms 1 and 2). No reference code
was found; this follows the paper's equations and pseudocode.

Each of the objective's ``K`` terms ``k`` keeps its last ``2W`` unweighted values ``L_k``
(this step's included). With the current window's mean ``μ_k`` (the last ``W`` steps) and the
previous window's ``μ̃_k`` (the ``W`` before)::

    σ_k = sqrt( Σ_{last 2W} (L_k − μ_k)² / (2W − 1) )     instability (``spread: current``)
    c_k = μ̃_k / μ_k                                       convergence: > 1 while the loss falls, ≈ 1 flat
    i_k = σ_k / (μ_k + μ̃_k)                               inverse signal-to-noise
    s_k = c_k + i_k
    λ_k = K · exp(s_k / T) / Σ_j exp(s_j / T)             mean 1 over the terms
    L   = (1/K) Σ_k λ_k · w_k · L_k                        (``scale: mean``; ``sum`` drops 1/K)

so a term whose loss has stopped falling (c ≈ 1) and is steady (i ≈ 0) loses weight to one
that still falls or is volatile. For the first ``2W − 1`` steps every ``λ_k`` is 1. The paper's
Algorithm 2 takes σ about the mean of all ``2W`` values (``hist.std(unbiased=True)``) instead of
about ``μ_k``: ``spread: window``. ``w_k`` is the recipe's weight of the term: the signals are
ratios, unchanged by it.

Two safeguards the paper does not need for its positive losses: a term whose current-window
mean is at most ``eps`` (a replay term before anything is replayed, a loss that is exactly 0)
has no ratio; it keeps ``λ = 1`` and the softmax shares ``K'`` (the other terms' number) among
the others. ``floor`` (default 0: none) raises every ``λ_k`` to at least ``floor``."""
from __future__ import annotations

import math
from typing import Any

import torch

from lifelong import distributed
from lifelong.plugins import register_plugin

_SPREADS = ("current", "window")
_SCALES = ("mean", "sum")


def _number(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) \
        and (value > low if low_open else value >= low) and value <= high
    if not ok:
        bound = f"{'>' if low_open else '>='} {low:g}" + (f" and <= {high:g}" if math.isfinite(high) else "")
        raise ValueError(f"`{name}` must be a number {bound}, got {value!r}")
    return float(value)


def recap_weights(history: torch.Tensor, window: int, temperature: float, spread: str = "current",
                  floor: float = 0.0, eps: float = 1e-8) -> torch.Tensor:
    """``λ`` (one per row) from ``history`` (terms x 2·window values, oldest first), by the
    formulas of the module docstring; tensor operations only (no host synchronisation)."""
    old, current = history[:, :window], history[:, window:]
    mu, mu_old = current.mean(1), old.mean(1)
    if spread == "current":
        sigma = ((history - mu.unsqueeze(1)) ** 2).sum(1).div(2 * window - 1).sqrt()
    else:
        sigma = history.std(1, unbiased=True)
    active = mu > eps
    safe_mu = torch.where(active, mu, torch.ones_like(mu))
    score = mu_old / safe_mu + sigma / (safe_mu + mu_old)
    score = torch.where(active, score / temperature, torch.full_like(score, -math.inf))
    share = torch.softmax(score, 0) * active.sum()
    lam = torch.where(active, share, torch.ones_like(share))
    return lam.clamp_min(floor) if floor > 0 else lam


def _over_ranks(values: list[torch.Tensor]) -> torch.Tensor:
    """The terms' (detached) values as a column (terms x 1); under several processes the ranks'
    mean of each (one all-reduce), so that every rank keeps the same history and weights: each
    rank's value is its share's mean, and the mean of equal shares' means is the batch's mean
    (one process's value, up to float sums)."""
    current = torch.stack([v.reshape(()) for v in values]).unsqueeze(1)
    return distributed.mean_([current.clone()])[0] if distributed.parallel() else current


@register_plugin
class AdaptiveWeights:
    """RECAP's online reweighting of the objective's terms (module docstring).

    ``window``: W (the paper: 10); ``temperature``: T (the paper: 5; larger is closer to uniform);
    ``spread``: ``current`` (the paper's equation and Algorithm 1) or ``window`` (its Algorithm
    2); ``scale``: ``mean`` (the paper's ``1/K``) or ``sum`` (the recipe's sum, so that uniform
    weights leave the recipe's loss as it was); ``floor``: the least ``λ`` (0: none); ``eps``:
    the current-window mean at or below which a term takes no part. The history (the last ``2W``
    values of each term) and the number of steps are kept in checkpoints.

    ``last``: the ``λ`` of the latest computation (``None`` before the first reweighted step)."""

    name = "adaptive-weights"

    def __init__(self, window: int = 10, temperature: float = 5.0, spread: str = "current", scale: str = "mean",
                 floor: float = 0.0, eps: float = 1e-8) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 100_000:
            raise ValueError(f"`window` must be a whole number of steps in 1..100000, got {window!r}")
        self.temperature = _number("temperature", temperature, 0.0, math.inf, low_open=True)
        self.floor = _number("floor", floor, 0.0, 1.0)
        self.eps = _number("eps", eps, 0.0, 1.0, low_open=True)
        for key, value, choices in (("spread", spread, _SPREADS), ("scale", scale, _SCALES)):
            if value not in choices:
                raise ValueError(f"`{key}` must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
        self.window, self.spread, self.scale = window, spread, scale
        self.history: torch.Tensor | None = None  # terms x 2W, oldest first
        self.seen = 0  # values recorded (steps whose update was applied)
        self.last: torch.Tensor | None = None

    def reweight(self, terms: list, values: list[torch.Tensor]) -> list[Any]:
        """The multipliers of this call: ``λ_k`` (over ``K`` with ``scale: mean``) from the
        recorded history and this call's values; 1 (or ``1/K``) while fewer than ``2W`` exist."""
        k = len(values)
        if self.seen + 1 < 2 * self.window:
            return [1.0 if self.scale == "sum" else 1.0 / k] * k
        current = _over_ranks(values)
        history = torch.cat([self.history[:, 1:], current.to(self.history.dtype)], 1)
        lam = recap_weights(history, self.window, self.temperature, self.spread, self.floor, self.eps)
        if self.scale == "mean":
            lam = lam / k
        self.last = lam
        return list(lam.unbind())

    def after_step(self, state, batch) -> None:
        """Record the step's values (those of the objective's last call, the step's own)."""
        values = state.recipe.objective.values
        if values is None:
            return
        current = _over_ranks(values)
        if self.history is None:
            self.history = torch.zeros(len(values), 2 * self.window, dtype=current.dtype, device=current.device)
        self.history = torch.cat([self.history[:, 1:], current.to(self.history.dtype)], 1)
        self.seen += 1

    def state_dict(self) -> dict:
        return {"history": self.history, "seen": self.seen}

    def load_state_dict(self, state: dict, context=None) -> None:
        history = state["history"]
        if history is not None and context is not None:
            history = history.to(next(context.model.parameters()).device)
        self.history, self.seen = history, int(state["seen"])
