"""The supervised contrastive loss that trains SHARP (Gurbuz et al., 2023, Sec. 3.2;
BurakGurbuz97/SHARP-Continual-Learning ``Source/supcon.py``, ``Source/train_and_eval.py``):
Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020, Eq. 2 (``L^sup_out``) with one
view per example, over the step's current and replayed rows together. There is no classifier
loss: a kNN over the representations predicts (:mod:`lifelong.plugins.knn`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lifelong.objective.base import StepBatch, Term, register_term


def supcon_loss(features: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """``SupConLoss.forward`` of the reference: with ``z_i = f_i / ‖f_i‖`` and
    ``s_ij = z_i · z_j / τ``,

        L = mean_i  −1/|P(i)| · Σ_{p ∈ P(i)} log( exp(s_ip) / Σ_{a ≠ i} exp(s_ia) ),

    ``P(i) = {p ≠ i : y_p = y_i}``: the anchor itself is neither a positive nor in the
    denominator. Rows without a positive are left out beforehand (the reference drops the
    current batch's classes seen once, ``filter_classes``, before adding the replay); with fewer
    than two rows left the loss is a zero that keeps the graph."""
    counts = (labels.unsqueeze(0) == labels.unsqueeze(1)).sum(1)
    keep = counts > 1
    if int(keep.sum()) < 2:
        return features.sum() * 0.0
    if not bool(keep.all()):
        features, labels = features[keep], labels[keep]
    z = F.normalize(features, p=2, dim=1)
    logits = z @ z.t() / temperature
    n = len(labels)
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits - logits.max(1, keepdim=True).values.detach()  # for stability, as the reference
    log_prob = logits - torch.logsumexp(logits.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    positive = (labels.unsqueeze(0) == labels.unsqueeze(1)) & ~self_mask
    return -((log_prob * positive).sum(1) / positive.sum(1)).mean()


@register_term
class SupervisedContrastive(Term):
    """SupCon over every row of the step (:func:`supcon_loss`) on the backbone's features: the
    current batch and the replayed rows (SHARP's hidden activations through the late part).
    ``temperature``: τ (``supcon_temperature``: 0.1 by default and in SHARP's MNIST scripts, 0.05
    in its EMNIST and CIFAR-100 scripts, 0.2 for Fashion-MNIST and CIFAR-10)."""

    name = "supcon"
    uses_replay = True
    needs_features = True

    def __init__(self, temperature: float = 0.1) -> None:
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
                or not math.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"`temperature` must be a positive number, got {temperature!r}")
        self.temperature = float(temperature)

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        n = len(batch.y) + (len(batch.replays[0]["y"]) if batch.replays else 0)
        labels = torch.cat([batch.y, batch.replays[0]["y"]]) if batch.replays else batch.y
        return supcon_loss(batch.features[:n], labels, self.temperature)
