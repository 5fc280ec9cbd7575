"""Prototype-sample relation distillation, PRD (Asadi et al., "Prototype-Sample Relation
Distillation: Towards Replay-Free Continual Learning", ICML 2023), as its released code
computes it (naderAsadi/Probing-Continual-Learning, ``methods/repe.py``, class ``RePE``).

The class prototypes are the rows ``p_c`` of the model's classifier (bias-free; a cosine head
of scale 1, which is also PRD's prediction: the cosine of the features with every normalised
prototype, ``RePE._classify_CI``). With ``f`` the backbone's features of every row of the step
(two augmented views of each example):

- :class:`PrototypeLoss` (``prototype``, paper Eq. 3, ``RePE.linear_loss``): the prototypes
  learn from the *detached* features, ``L_p = mean_i (1 − cos(f_i, p_{y_i}))``; the encoder gets
  no gradient from it.
- :class:`RelationDistillation` (``relation-distill``, paper Eq. 5,
  ``RePE.relation_distillation_loss``): for each earlier task ``j``, the scores
  ``s_c(f) = ⟨f, p_c⟩ / ‖p_c‖`` of the rows on the prototypes of ``j``'s classes, softmaxed at
  temperature ``T``: ``Σ_j KL( softmax(s^old_j / T) ‖ softmax(s^new_j / T) )`` (mean over rows),
  the old scores from the encoder and prototypes as they were at the end of the previous task,
  the new ones from the current encoder (not detached) and current prototypes (not detached:
  the old classes' prototypes move with the distillation).

The paper's total is ``L_supcon + 2 · L_p + 4 · L_rd`` (the README commands' ``prototypes_coef``
and ``distill_coef``); the supervised contrastive term is :mod:`lifelong.objective.supcon`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lifelong.objective.base import StepBatch, Term, register_term
from lifelong.objective.proxy import _classifier_weight
from lifelong.objective.teacher import Teacher

TEACHER_MODES = ("train", "eval")


def prototype_scores(features: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """``s_ic = ⟨f_i, p_c⟩ / ‖p_c‖`` (``RePE._get_scores``): the features are not normalised."""
    return features @ prototypes.t() / prototypes.norm(dim=1)


def prototype_loss(features: torch.Tensor, prototypes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``mean_i (1 − ⟨f_i, p_{y_i}⟩ / (‖f_i‖ ‖p_{y_i}‖))`` with ``f`` detached (PRD, Eq. 3;
    ``RePE.linear_loss`` on ``features.detach()``): only the prototypes of the rows' labels
    learn. The norms are clamped at 1e-12 (the reference divides by them as they are)."""
    f = features.detach()
    p = prototypes[labels]
    cos = (f * p).sum(1) / (f.norm(dim=1).clamp_min(1e-12) * p.norm(dim=1).clamp_min(1e-12))
    return (1.0 - cos).mean()


def relation_distillation(new_features: torch.Tensor, new_prototypes: torch.Tensor, old_features: torch.Tensor,
                          old_prototypes: torch.Tensor, groups: list[torch.Tensor],
                          temperature: float = 1.0) -> torch.Tensor:
    """``Σ_g KL( softmax(s(f_old, P_old[g]) / T) ‖ softmax(s(f, P[g]) / T) )``, each KL summed over
    the classes of ``g`` and averaged over rows (``KLDivLoss(reduction='batchmean')``), ``s`` the
    scores of :func:`prototype_scores`, ``g`` over the class groups (the earlier tasks). The old
    side is the target: no gradient flows into it."""
    total = new_features.new_zeros(())
    for g in groups:
        old = prototype_scores(old_features.detach(), old_prototypes.detach()[g]) / temperature
        new = prototype_scores(new_features, new_prototypes[g]) / temperature
        total = total + F.kl_div(F.log_softmax(new, dim=1), F.softmax(old, dim=1), reduction="batchmean")
    return total


@register_term
class PrototypeLoss(Term):
    """PRD's prototype learning (:func:`prototype_loss`) on every row of the step: the
    classifier's rows are the prototypes, the features are detached."""

    name = "prototype"
    needs_features = True

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        return prototype_loss(batch.features, _classifier_weight(batch), batch.labels)


@register_term
class RelationDistillation(Term):
    """PRD's prototype-sample relation distillation (:func:`relation_distillation`), from the
    second task on, over every row of the step (both views) and the classes of each earlier task
    (a class set that several tasks share, as in a domain-incremental stream, counts once).

    At each task's end the model is copied (:class:`lifelong.objective.teacher.Teacher`): its
    ``features`` give the old features of the step's inputs, its classifier the old prototypes.
    ``teacher_mode``: ``"train"`` (default) runs the copy in training mode, so that batch norm
    uses the batch's statistics, as the reference does (its ``prev_model.eval()`` is commented
    out); ``"eval"`` uses the running statistics. ``temperature``: T (``distill_temp``, 1)."""

    name = "relation-distill"
    needs_features = True
    needs_task_boundaries = "its old model and prototypes are the model as it was at the previous task's end"

    def __init__(self, temperature: float = 1.0, teacher_mode: str = "train") -> None:
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
                or not math.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"`temperature` must be a positive number, got {temperature!r}")
        if teacher_mode not in TEACHER_MODES:
            raise ValueError(f"`teacher_mode` must be one of {', '.join(map(repr, TEACHER_MODES))}, "
                             f"got {teacher_mode!r}")
        self.temperature, self.teacher_mode = float(temperature), teacher_mode
        self.teacher = Teacher()
        self.groups: list[list[int]] = []  # the classes of each earlier task, in task order

    def end_task(self, state) -> None:
        group = sorted(int(c) for c in state.task.classes)
        if group not in self.groups:
            self.groups.append(group)
        self.teacher.snapshot(state.model, sorted({c for g in self.groups for c in g}))

    def state_dict(self) -> dict:
        return {"teacher": self.teacher.state_dict(), "groups": [list(g) for g in self.groups]}

    def load_state_dict(self, state: dict, context=None) -> None:
        self.teacher.load_state_dict(state["teacher"], context.model)
        self.groups = [list(g) for g in state["groups"]]

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        if self.teacher.model is None or not self.groups:
            return batch.features.new_zeros(())
        old_model = self.teacher.model
        old_model.train(self.teacher_mode == "train")
        x = batch.inputs if batch.views is None else torch.cat([batch.inputs, batch.views])
        with torch.no_grad():
            old_features = old_model.features(x)
        device = batch.features.device
        groups = [torch.tensor(g, device=device) for g in self.groups]
        return relation_distillation(batch.features, _classifier_weight(batch), old_features,
                                     old_model.classifier.weight, groups, self.temperature)
