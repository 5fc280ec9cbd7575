"""Supervised contrastive learning (Khosla et al., "Supervised Contrastive Learning", NeurIPS
2020, Eq. 2, ``L^sup_out``), as PRD trains its encoder with it (Asadi et al., ICML 2023, Eq. 1;
``losses/supcon_loss.py`` of naderAsadi/Probing-Continual-Learning, ``contrast_mode='all'``).

Every row of the step (both augmented views of every example, ``views: padded`` with
``two_views: true``) is an anchor; its positives are the other rows of its class, its other view
included, itself excluded; the softmax of each anchor runs over every row but itself.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lifelong.objective.base import StepBatch, Term, register_term


def supcon_loss(z: torch.Tensor, labels: torch.Tensor, temperature: float,
                base_temperature: float = 0.07) -> torch.Tensor:
    """``L = −(τ / τ_b) · mean_i 1/|P(i)| Σ_{p ∈ P(i)} log( exp(z_i·z_p / τ) / Σ_{a ≠ i} exp(z_i·z_a / τ) )``

    for unit rows ``z`` (Khosla et al., 2020, Eq. 2), ``P(i) = {p ≠ i : y_p = y_i}``. The factor
    ``τ / τ_b`` (``base_temperature`` 0.07) is the reference code's (``SupConLoss``, from
    HobbitLong/SupContrast). Anchors without a positive (a class with one row: never with two
    views) are left out of the mean; the reference's would be NaN."""
    n = len(z)
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = (z @ z.t() / temperature).masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (labels.unsqueeze(1) == labels.unsqueeze(0)) & ~self_mask
    count = positive.sum(1)
    keep = count > 0
    if not keep.any():
        return z.sum() * 0.0
    mean_log_prob_pos = log_prob.masked_fill(~positive, 0.0).sum(1)[keep] / count[keep]
    return -(temperature / base_temperature) * mean_log_prob_pos.mean()


@register_term
class SupCon(Term):
    """The supervised contrastive loss of every row of the step (:func:`supcon_loss`) on the
    normalised projections ``z = normalise(g(f))`` of the backbone's features ``f``, with ``g``
    the model's ``projection`` (recipe key ``projection``; PRD's 512-512-128 MLP) or, when the
    model has none, the identity.

    ``temperature``: τ (PRD's ``supcon_temperature``, 0.1). ``base_temperature``: τ_b (0.07)."""

    name = "supcon"
    needs_features = True

    def __init__(self, temperature: float = 0.1, base_temperature: float = 0.07) -> None:
        for key, value in (("temperature", temperature), ("base_temperature", base_temperature)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise ValueError(f"`{key}` must be a positive number, got {value!r}")
        self.temperature, self.base_temperature = float(temperature), float(base_temperature)

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        projection = getattr(batch.model, "projection", None)
        z = batch.features if projection is None else projection(batch.features)
        return supcon_loss(F.normalize(z, dim=1), batch.labels, self.temperature, self.base_temperature)
