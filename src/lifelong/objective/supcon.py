"""Supervised contrastive learning (Khosla et al., "Supervised Contrastive Learning", NeurIPS
2020, Eq. 2, ``L^sup_out``), as two of the methods here train with it:

- PRD (Asadi et al., ICML 2023, Eq. 1; ``losses/supcon_loss.py`` of
  naderAsadi/Probing-Continual-Learning, ``contrast_mode='all'``): both augmented views of
  every example (``views: padded`` with ``two_views: true``) on the normalised output of a
  projection MLP, times the reference's factor ``τ / τ_b`` (``base_temperature`` 0.07).
- SHARP (Gurbuz et al., 2023, Sec. 3.2; BurakGurbuz97/SHARP-Continual-Learning
  ``Source/supcon.py``, ``Source/train_and_eval.py``): one view per example, over the step's
  current and replayed rows together (replayed hidden activations through the late part), no
  factor; there is no classifier loss: a kNN over the representations predicts
  (:mod:`lifelong.plugins.knn`).

Every row is an anchor; its positives are the other rows of its class (its other view
included), itself excluded; the softmax of each anchor runs over every row but itself.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lifelong.objective.base import StepBatch, Term, register_term

LONELY = ("drop", "keep")
ROWS = ("current", "both")  # the rows that are anchors: the current batch's, or the replayed ones too


def supcon_loss(features: torch.Tensor, labels: torch.Tensor, temperature: float,
                base_temperature: float | None = None, lonely: str = "drop") -> torch.Tensor:
    """With ``z_i = f_i / ‖f_i‖`` and ``s_ij = z_i · z_j / τ``,

        L = −(τ / τ_b) · mean_i  1/|P(i)| · Σ_{p ∈ P(i)} log( exp(s_ip) / Σ_{a ≠ i} exp(s_ia) ),

    ``P(i) = {p ≠ i : y_p = y_i}`` (Khosla et al., 2020, Eq. 2); ``τ / τ_b`` is 1 when
    ``base_temperature`` is ``None`` (SHARP) and the factor of the SupContrast code otherwise
    (PRD's 0.1 / 0.07). Rows whose class has no other row (no positive): ``lonely="drop"``
    removes them before the loss, so they are in no denominator either (SHARP's
    ``filter_classes``); ``"keep"`` keeps them in the other rows' denominators and leaves them out
    of the mean (the reference's would be NaN). With two views no row is lonely and both agree.
    Fewer than two rows left, or no anchor with a positive: a zero that keeps the graph."""
    if lonely not in LONELY:
        raise ValueError(f"`lonely` must be one of {', '.join(LONELY)}, got {lonely!r}")
    if lonely == "drop":
        keep = (labels.unsqueeze(0) == labels.unsqueeze(1)).sum(1) > 1
        if int(keep.sum()) < 2:
            return features.sum() * 0.0
        if not bool(keep.all()):
            features, labels = features[keep], labels[keep]
    z = F.normalize(features, p=2, dim=1)
    n = len(labels)
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = (z @ z.t() / temperature).masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (labels.unsqueeze(1) == labels.unsqueeze(0)) & ~self_mask
    count = positive.sum(1)
    anchors = count > 0
    if not bool(anchors.any()):
        return z.sum() * 0.0
    mean_log_prob_pos = log_prob.masked_fill(~positive, 0.0).sum(1)[anchors] / count[anchors]
    factor = 1.0 if base_temperature is None else temperature / base_temperature
    return -factor * mean_log_prob_pos.mean()


def _positive(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{key}` must be a positive number, got {value!r}")
    return float(value)


@register_term
class SupCon(Term):
    """SupCon (:func:`supcon_loss`) over the rows of the step's forward, on the backbone's
    features, passed through the model's ``projection`` when it has one (recipe key
    ``projection``; PRD's 512-512-128 MLP). ``on``: ``"current"`` (the current batch's rows and
    their views', PRD) or ``"both"`` (every row: current, replayed, then the views' rows,
    :attr:`StepBatch.labels`; SHARP's replayed activations are anchors too).

    ``temperature``: τ (0.1: PRD's ``supcon_temperature`` and SHARP's MNIST scripts; SHARP's
    EMNIST and CIFAR-100 scripts use 0.05, Fashion-MNIST and CIFAR-10 0.2). ``base_temperature``:
    τ_b of the factor τ / τ_b (PRD 0.07; ``None``, the default: no factor, SHARP). ``lonely``:
    what happens to rows without a positive (:func:`supcon_loss`)."""

    name = "supcon"
    needs_features = True

    def __init__(self, temperature: float = 0.1, base_temperature: float | None = None, lonely: str = "drop",
                 on: str = "current") -> None:
        self.temperature = _positive("temperature", temperature)
        self.base_temperature = None if base_temperature is None else _positive("base_temperature", base_temperature)
        if lonely not in LONELY:
            raise ValueError(f"`lonely` must be one of {', '.join(LONELY)}, got {lonely!r}")
        if on not in ROWS:
            raise ValueError(f"`on` must be one of {', '.join(ROWS)}, got {on!r}")
        self.lonely, self.on = lonely, on
        self.uses_replay = on == "both"  # replayed rows are anchors too (SHARP)

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        projection = getattr(batch.model, "projection", None)
        z = batch.features if projection is None else projection(batch.features)
        labels = batch.labels
        if self.on == "current" and batch.replays:  # the current rows and their views' rows only
            n = len(batch.y)
            rows = torch.arange(n, device=z.device)
            if batch.views is not None:
                rows = torch.cat([rows, len(batch.inputs) + rows])
            z, labels = z[rows], labels[rows]
        return supcon_loss(z, labels, self.temperature, self.base_temperature, self.lonely)
