"""Proxy-based contrastive replay: PCR (Lin et al., "PCR: Proxy-based Contrastive Replay for
Online Class-Incremental Continual Learning", CVPR 2023) and the additions of HPCR (Lin et al.,
"HPCR: Holistic Proxy-based Contrastive Replay for Online Continual Learning", TNNLS 2025),
as their released code computes them (FelixHuiweiLin/PCR: ``agents/pcr.py``, ``agents/hpcr.py``,
``utils/loss.py``).

The rows of the cosine classifier are the class *proxies*. At each step the anchors are the
normalised features of every example of the step (replayed, current, and their strongly
augmented views: ``views: strong``), and each anchor is contrasted with the proxies of the
labels of *all* the step's examples, one proxy per example (duplicates included). Only the
classes present in the step compete, which removes the bias towards the new classes that a
softmax over all classes has.

- :class:`ProxyContrastive` (``pcr``): PCR's loss (paper Eq. 7; ``SupConLoss`` in ``'proxy'``
  mode), optionally scaled by HPCR's periodic factor (the "temperature component").
- :class:`ProxyLogitDistillation` (``pcd``): HPCR's proxy-based distillation, the mean squared
  error between the current and the stored logits of the replayed examples over the columns of
  the step's labels.
- :class:`SimilarityDistillation` (``scd``): HPCR's sample-based distillation, the
  cross-entropy between the softmaxed similarities of the replayed examples' stored features and
  of their current features, self-similarities left out.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lifelong.objective.base import StepBatch, Term, register_term

EPS = 1e-6  # added to the norms, as the reference code does


def normalise(x: torch.Tensor) -> torch.Tensor:
    """``x / (‖x‖ + 1e-6)`` per row (the reference code's normalisation)."""
    return x / (x.norm(dim=1, keepdim=True) + EPS)


def proxy_contrastive_loss(features: torch.Tensor, proxies: torch.Tensor, labels: torch.Tensor,
                           temperature: float) -> torch.Tensor:
    """PCR's loss (Lin et al., CVPR 2023, Eq. 7), as ``SupConLoss(contrast_mode='proxy')`` of the
    reference code computes it: anchors ``a_i = f_i / ‖f_i‖``, contrast set ``p_j = w_{y_j} /
    ‖w_{y_j}‖`` for every row ``j`` (one proxy per example, so proxies repeat),

        L = mean_i [ −1/|P(i)| · Σ_{j ∈ P(i)} log( exp(a_i·p_j / τ) / Σ_k exp(a_i·p_k / τ) ) ],

    with ``P(i) = {j : y_j = y_i}`` (``i`` itself included: no self-contrast mask in proxy mode)
    and ``k`` over all rows. ``proxies``: the classifier's weight matrix (one row per class)."""
    anchors = normalise(features)
    contrast = normalise(proxies[labels])
    log_prob = F.log_softmax(anchors @ contrast.t() / temperature, dim=1)
    positive = (labels.unsqueeze(1) == labels.unsqueeze(0)).to(log_prob.dtype)
    return -((positive * log_prob).sum(1) / positive.sum(1)).mean()


def periodic_scale(i: int, t_max: float, t_min: float, period: int) -> float:
    """HPCR's temperature component (``agents/hpcr.py``): the loss factor
    ``τ_s(i) = (T_max − T_min) / 2 · (1 − cos(2π i / period)) + T_min``, ``T_min`` at ``i = 0``,
    ``T_max`` at ``i = period / 2``. Multiplying a loss at temperature ``τ`` by ``τ_s`` is how
    the code realises the paper's varying temperature (1.8 = 0.09 / 0.05, 0.5625 = 0.09 / 0.16)."""
    return (t_max - t_min) * 0.5 * (1.0 - math.cos(2.0 * math.pi * i / period)) + t_min


def _zero(batch: StepBatch) -> torch.Tensor:
    """A zero that keeps the graph, so that a step with nothing to learn still backpropagates
    (the reference code's ``0 * CE``: zero gradients)."""
    return batch.outputs.sum() * 0.0


def _classifier_weight(batch: StepBatch) -> torch.Tensor:
    weight = getattr(getattr(batch.model, "classifier", None), "weight", None)
    if weight is None:
        raise ValueError("the proxy terms need a model whose `classifier` has a `weight` (one row per class)")
    return weight


@register_term
class ProxyContrastive(Term):
    """PCR's proxy-based contrastive loss over every row of the step (see
    :func:`proxy_contrastive_loss`), computed only when examples were replayed (the reference
    code's ``if mem_x.size(0) > 0``; before, the step's loss is zero).

    ``temperature``: τ (``pcr_temp``, 0.09). ``t_max``, ``t_min``, ``period``: HPCR's periodic
    factor :func:`periodic_scale`, with ``i`` the index of the step within the current epoch of
    the task (the reference's ``enumerate(train_loader)``); both ``None``: no factor (PCR).
    """

    name = "pcr"
    uses_replay = True
    needs_features = True

    def __init__(self, temperature: float = 0.09, t_max: float | None = None, t_min: float | None = None,
                 period: int = 500) -> None:
        for key, value in (("temperature", temperature), ("t_max", t_max), ("t_min", t_min)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value <= 0):
                raise ValueError(f"`{key}` must be a positive number, got {value!r}")
        if (t_max is None) != (t_min is None):
            raise ValueError("`t_max` and `t_min` go together: give both (HPCR) or neither (PCR)")
        if isinstance(period, bool) or not isinstance(period, int) or period < 1:
            raise ValueError(f"`period` must be an integer >= 1, got {period!r}")
        self.temperature, self.period = float(temperature), period
        self.t_max = None if t_max is None else float(t_max)
        self.t_min = None if t_min is None else float(t_min)
        self._task_start = 0  # state.step at the start of the task
        self.i = 0  # the step's index within the epoch of the task

    def begin_task(self, state) -> None:
        self._task_start = state.step

    def before_step(self, state, batch: StepBatch) -> None:
        per_epoch = max(1, math.ceil(state.task.num_train / state.batch_size))
        self.i = (state.step - self._task_start) % per_epoch

    def state_dict(self) -> dict:
        return {"task_start": self._task_start, "i": self.i}

    def load_state_dict(self, state: dict, context=None) -> None:
        self._task_start, self.i = int(state["task_start"]), int(state["i"])

    def scale(self) -> float:
        """The factor of this step's loss: ``τ_s(i)`` for HPCR, 1 for PCR."""
        if self.t_max is None:
            return 1.0
        return periodic_scale(self.i, self.t_max, self.t_min, self.period)

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        if not batch.replays:
            return _zero(batch)
        loss = proxy_contrastive_loss(batch.features, _classifier_weight(batch), batch.labels, self.temperature)
        return loss * self.scale() if self.t_max is not None else loss


@register_term
class ProxyLogitDistillation(Term):
    """HPCR's proxy-based distillation (PCD; ``agents/hpcr.py``, ``L_PCD``): from the second task
    on, the mean squared error between the model's logits on the replayed examples (and their
    views) and the logits stored when they entered the memory, over the columns of the labels
    of the step's rows, one column per row (so a class appears as often as its examples),

        L = mean_{r, j} ( z_r[y_j] − z̃_r[y_j] )²,

    ``r`` over the replayed rows, ``j`` over all rows of the step. The logits are the cosine
    classifier's (``s · cos``)."""

    name = "pcd"
    uses_replay = True
    stores = ("logits",)
    needs_task_boundaries = "it distils from the second task on, so on one task it never acts"

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        if batch.task == 0 or not batch.replays:
            return _zero(batch)
        outputs = batch.replay_rows(0, batch.outputs)
        stored = batch.replays[0]["logits"]
        if batch.views is not None:
            stored = torch.cat([stored, stored])
        columns = batch.labels
        return F.mse_loss(outputs.index_select(1, columns), stored.index_select(1, columns))


@register_term
class SimilarityDistillation(Term):
    """HPCR's sample-based distillation (SCD; ``agents/hpcr.py``, ``L_SCD``): from the second task
    on, over the replayed rows (and their views), with ``s_rk = f_r·f_k / τ`` for normalised
    current features ``f`` and ``s̃_rk`` the same for the features stored when the examples
    entered the memory,

        L = mean_r Σ_{k ≠ r} −softmax_{k≠r}(s̃_r)_k · log softmax_{k≠r}(s_r)_k,

    the softmax of each row taken over the other rows (the diagonal removed); the old
    similarities are the targets."""

    name = "scd"
    uses_replay = True
    stores = ("features",)
    needs_task_boundaries = "it distils from the second task on, so on one task it never acts"

    def __init__(self, temperature: float = 0.09) -> None:
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
                or not math.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"`temperature` must be a positive number, got {temperature!r}")
        self.temperature = float(temperature)

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        if batch.task == 0 or not batch.replays:
            return _zero(batch)
        new = normalise(batch.replay_rows(0, batch.features))
        old = batch.replays[0]["features"]
        if batch.views is not None:
            old = torch.cat([old, old])
        old = normalise(old)
        n = len(new)
        if n < 2:
            return _zero(batch)
        off = ~torch.eye(n, dtype=torch.bool, device=new.device)
        new_sim = (new @ new.t() / self.temperature)[off].view(n, n - 1)
        old_sim = (old @ old.t() / self.temperature)[off].view(n, n - 1)
        target = F.softmax(old_sim, dim=1)
        return -(target * F.log_softmax(new_sim, dim=1)).sum(1).mean()
