"""Output-space terms (Wang et al., ICLR 2024, Table 1): divergences between the model's
outputs and labels, stored logits or an old model's outputs.

In the paper's notation each is ``α · D_Φ(target, f_θ(x))``, a Bregman divergence
``D_Φ(p, q) = Φ(p) − Φ(q) − <∇Φ(q), p − q>``; :class:`Bregman` computes it for any ``Φ`` and
the tests check the named terms against it.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from lifelong.objective.base import StepBatch, Term, check_choice, register_term
from lifelong.objective.mvp import ExposedClasses
from lifelong.objective.teacher import Teacher

_SOURCES = ("current", "replay", "both")


class _SeenClasses:
    """Tracks the classes of past tasks and of the current one, from the task hooks."""

    def __init__(self) -> None:
        self.past: set[int] = set()
        self.current: set[int] = set()

    def begin_task(self, state) -> None:
        self.past |= self.current
        self.current = set(state.task.classes)

    def state_dict(self) -> dict:
        return {"past": sorted(self.past), "current": sorted(self.current)}

    def load_state_dict(self, state: dict) -> None:
        self.past, self.current = set(state["past"]), set(state["current"])


# why the masks of ER-ACE do nothing without task boundaries (a task-free stream is one task holding every
# class); "future" is left alone: it hides no class of that one task, as LwF's loss then covers them all
_MASK_NEEDS = {"past": "`mask: past` hides the classes of past tasks",
               "batch": "`mask: batch`, the asymmetric cross-entropy, starts at the second task"}
_MASKS = ("none", "past", "batch", "future", "exposed")


@register_term
class CrossEntropy(Term):
    """Cross-entropy with the true labels.

    ``on="current"``: the current batch (the first term of Eq. 1; fine-tuning).
    ``on="replay"``: replayed examples and their stored labels (ER's output-space term);
    ``draw`` picks an independent replay sample (DER++ uses a second one).
    ``on="both"``: the mean over current and replayed examples together, as experience replay
    is usually implemented (Chaudhry et al., "On tiny episodic memories in continual learning",
    2019; Buzzega et al., 2020); with equal batch sizes, 1/2 CE(current) + 1/2 CE(replay).
    Without replayed examples (the first task) every choice reduces to the current batch.

    ``mask`` hides logits of the current batch from the loss (a loss change, so a term option
    rather than a step plug-in):

    - ``"batch"``: the asymmetric cross-entropy of ER-ACE (Caccia et al., "New insights on
      reducing abrupt representation change in online continual learning", ICLR 2022) in the
      form of Mammoth's ``models/er_ace.py``, the reference code of the published results: from
      the second task on, every class absent from the current batch is hidden, except the
      classes whose label is at least the largest label seen so far (so classes of future tasks
      stay in). It contains the past-class mask.
    - ``"past"``: the classes of past tasks are hidden (the paper's description of ACE).
    - ``"future"``: the classes not seen yet (those of later tasks) are hidden, so the loss
      covers the classes seen so far: LwF as Mammoth computes it (``models/lwf.py``).
    - ``"exposed"``: the classes of which no training example has been seen yet in the stream
      are hidden, for every ``on`` (current and replayed examples alike): the Si-Blurry trainer's
      mask, which every method of its reference code applies (Moon et al., ICCV 2023;
      :class:`lifelong.objective.mvp.ExposedClasses`). On a blurry stream a class is exposed from
      its first example, not from the start of its task.
    """

    name = "ce"

    def __init__(self, on: str = "current", draw: int = 0, mask: str = "none") -> None:
        check_choice("on", on, _SOURCES)
        check_choice("mask", mask, _MASKS)
        if mask not in ("none", "exposed") and on != "current":
            raise ValueError(f"`mask: {mask}` applies to the current batch only; use `on: current`")
        self.on, self.draw, self.mask = on, int(draw), mask
        self.uses_replay = on != "current"
        self.needs_task_boundaries = _MASK_NEEDS.get(mask)
        self.classes = _SeenClasses() if mask in ("past", "future") else None
        self._mask: torch.Tensor | None = None  # fixed per task ("past", "future")
        self._active = False  # "batch": masking is on (from the second task)
        self._seen_max: torch.Tensor | None = None  # "batch": the largest label seen so far
        self.exposed = ExposedClasses() if mask == "exposed" else None

    def begin_task(self, state) -> None:
        if self.mask == "batch":
            self._active = state.task.index > 0
            return
        if self.classes is not None:
            self.classes.begin_task(state)
            if self.mask == "past":
                hidden = sorted(self.classes.past - self.classes.current)
            else:
                hidden = sorted(set(range(state.stream.num_classes)) - self.classes.past - self.classes.current)
            self._mask = None
            if hidden:
                self._mask = torch.zeros(state.stream.num_classes, dtype=torch.bool)
                self._mask[hidden] = True

    def state_dict(self) -> dict:
        state = {"classes": None if self.classes is None else self.classes.state_dict(), "mask": self._mask,
                 "active": self._active, "seen_max": self._seen_max}
        if self.exposed is not None:
            state["exposed"] = self.exposed.state_dict()
        return state

    def load_state_dict(self, state: dict, context=None) -> None:
        if self.classes is not None:
            self.classes.load_state_dict(state["classes"])
        self._mask = state["mask"]
        self._active, self._seen_max = bool(state.get("active", False)), state.get("seen_max")
        if self.exposed is not None:
            self.exposed.load_state_dict(state["exposed"])

    def _batch_mask(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mammoth's ER-ACE mask: hide classes absent from the batch and below the largest label
        seen so far (all tensor operations: no host synchronisation)."""
        top = y.max()
        self._seen_max = top if self._seen_max is None else torch.maximum(self._seen_max, top.to(self._seen_max.device))
        present = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
        present[y] = True
        keep = present | (torch.arange(logits.shape[1], device=logits.device) >= self._seen_max)
        return ~keep

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        if self.exposed is not None:
            return self._exposed_ce(batch)
        replay = batch.draw(self.draw)
        if self.on == "replay":
            if replay is None:
                return batch.logits.new_zeros(())
            return F.cross_entropy(batch.replay_outputs(self.draw), replay["y"])
        if self.on == "both" and replay is not None:
            if self.draw == 0:  # current and first draw are contiguous: no copy
                outputs = batch.outputs[: len(batch.y) + len(replay["y"])]
            else:
                outputs = torch.cat([batch.logits, batch.replay_outputs(self.draw)])
            return F.cross_entropy(outputs, torch.cat([batch.y, replay["y"]]))
        logits = batch.logits
        if self.mask == "batch":
            hidden = self._batch_mask(logits, batch.y)
            if not self._active:
                return F.cross_entropy(logits, batch.y)
            return F.cross_entropy(logits.masked_fill(hidden, torch.finfo(logits.dtype).min), batch.y)
        if self._mask is not None:
            if self._mask.device != logits.device:
                self._mask = self._mask.to(logits.device)
            logits = logits.masked_fill(self._mask, torch.finfo(logits.dtype).min)
        return F.cross_entropy(logits, batch.y)

    def _exposed_ce(self, batch: StepBatch) -> torch.Tensor:
        """``mask: exposed``: the current batch's classes are exposed first (the reference's
        ``add_new_class`` before the batch is trained on), then the rows of ``on`` lose the
        logits of the classes not exposed yet."""
        self.exposed.add(batch.y, batch.logits.shape[1])
        replay = batch.draw(self.draw)
        if self.on == "replay" and replay is None:
            return batch.logits.new_zeros(())
        if self.on == "current" or replay is None:
            outputs, y = batch.logits, batch.y
        elif self.on == "replay":
            outputs, y = batch.replay_outputs(self.draw), replay["y"]
        else:
            outputs, y = torch.cat([batch.logits, batch.replay_outputs(self.draw)]), torch.cat([batch.y, replay["y"]])
        return F.cross_entropy(self.exposed.hide(outputs), y)


@register_term
class LogitMSE(Term):
    """Dark experience replay (Buzzega et al., NeurIPS 2020, Eq. 4): mean squared error between
    the model's logits on replayed examples and the logits stored when they were seen.

    As Mammoth's ``F.mse_loss``, the mean is over examples and classes, so for ``C`` classes it
    equals ``(2 / C)`` times the mean Bregman divergence of ``Φ(z) = ½‖z‖²``.
    """

    name = "logit-mse"
    stores = ("logits",)

    def __init__(self, draw: int = 0) -> None:
        self.draw = int(draw)
        self.uses_replay = True

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        replay = batch.draw(self.draw)
        if replay is None:
            return batch.logits.new_zeros(())
        return F.mse_loss(batch.replay_outputs(self.draw), replay["logits"])


@register_term
class Distillation(Term):
    """Learning without Forgetting (Li and Hoiem, ECCV 2016, Eq. 2):
    ``KL(softmax(z_old / T) ‖ softmax(z / T))`` on the current batch (mean over examples), over
    the classes seen before the current task, where ``z_old`` are the outputs of the model as it
    was at the end of the previous task. The KL divergence is the Bregman divergence of the
    negative entropy ``Φ(p) = Σ p log p`` on the simplex (Wang et al., 2024, Table 1).

    As in Li and Hoiem and in Mammoth's ``models/lwf.py`` (whose published α this weight is),
    there is no factor ``T²``; ``scale_by_t2=True`` adds it (Hinton et al.'s convention, which
    keeps the gradient's size independent of ``T``). Mammoth writes the term as the
    cross-entropy ``−Σ p_old log p``, which differs from the KL divergence by the entropy of
    ``p_old``, a constant: the gradients are equal.
    """

    name = "distill-kl"
    needs_task_boundaries = "its teacher is the model as it was at the previous task's end"

    def __init__(self, temperature: float = 2.0, scale_by_t2: bool = False) -> None:
        if not temperature > 0:
            raise ValueError(f"`temperature` must be positive, got {temperature}")
        if not isinstance(scale_by_t2, bool):
            raise ValueError(f"`scale_by_t2` must be true or false, got {scale_by_t2!r}")
        self.temperature, self.scale_by_t2 = float(temperature), scale_by_t2
        self.teacher = Teacher()
        self.seen: set[int] = set()
        self._old: torch.Tensor | None = None

    def begin_task(self, state) -> None:
        old = sorted(self.teacher.old_classes)
        self._old = torch.tensor(old, device=next(state.model.parameters()).device) if old else None

    def end_task(self, state) -> None:
        self.seen |= set(state.task.classes)
        self.teacher.snapshot(state.model, sorted(self.seen))

    def state_dict(self) -> dict:
        return {"teacher": self.teacher.state_dict(), "seen": sorted(self.seen), "old": self._old}

    def load_state_dict(self, state: dict, context=None) -> None:
        self.teacher.load_state_dict(state["teacher"], context.model)
        self.seen, self._old = set(state["seen"]), state["old"]

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        if self._old is None:
            return batch.logits.new_zeros(())
        T = self.temperature
        target = F.softmax(self.teacher(batch.x).index_select(1, self._old) / T, dim=1)
        log_q = F.log_softmax(batch.logits.index_select(1, self._old) / T, dim=1)
        kl = F.kl_div(log_q, target, reduction="batchmean")
        return kl * (T * T) if self.scale_by_t2 else kl


def squared_norm(z: torch.Tensor) -> torch.Tensor:
    """``Φ(z) = ½‖z‖²`` per row: its Bregman divergence is half the squared distance."""
    return 0.5 * z.pow(2).sum(-1)


def negative_entropy(p: torch.Tensor) -> torch.Tensor:
    """``Φ(p) = Σ p log p`` per row: on the simplex its Bregman divergence is KL(p ‖ q)."""
    return (p * p.clamp_min(1e-12).log()).sum(-1)


PHIS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "squared-norm": squared_norm,
    "negative-entropy": negative_entropy,
}


def bregman(phi: Callable[[torch.Tensor], torch.Tensor], p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``D_Φ(p, q) = Φ(p) − Φ(q) − <∇Φ(q), p − q>`` per row, differentiable in ``q``."""
    if not q.requires_grad:
        q = q.detach().requires_grad_(True)
    (grad_q,) = torch.autograd.grad(phi(q).sum(), q, create_graph=True)
    return phi(p) - phi(q) - (grad_q * (p - q)).sum(-1)


@register_term
class Bregman(Term):
    """The general output-space term of Wang et al. (2024, Eq. 1): mean over examples of
    ``D_Φ(target, link(f_θ(x)))`` for a convex ``Φ``.

    ``phi``: a name from :data:`PHIS` or a callable (per-row convex function).
    ``target="stored"``: replayed examples against their stored logits (DER-like).
    ``target="teacher"``: the current batch against the previous task's model (LwF-like).
    ``link``: ``"identity"`` (logits) or ``"softmax"`` (probabilities at ``temperature``).
    """

    name = "bregman"

    def __init__(self, phi: str | Callable = "squared-norm", target: str = "stored", link: str = "identity",
                 temperature: float = 1.0, draw: int = 0) -> None:
        if isinstance(phi, str):
            check_choice("phi", phi, tuple(PHIS))
            phi = PHIS[phi]
        check_choice("target", target, ("stored", "teacher"))
        check_choice("link", link, ("identity", "softmax"))
        self.phi, self.target, self.link, self.temperature, self.draw = phi, target, link, float(temperature), int(draw)
        self.uses_replay = target == "stored"
        self.stores = ("logits",) if target == "stored" else ()
        self.teacher = Teacher() if target == "teacher" else None
        self.seen: set[int] = set()
        if target == "teacher":
            self.needs_task_boundaries = "`target: teacher` is the model as it was at the previous task's end"

    def end_task(self, state) -> None:
        if self.teacher is not None:
            self.seen |= set(state.task.classes)
            self.teacher.snapshot(state.model, sorted(self.seen))

    def state_dict(self) -> dict:
        return {"teacher": None if self.teacher is None else self.teacher.state_dict(), "seen": sorted(self.seen)}

    def load_state_dict(self, state: dict, context=None) -> None:
        if self.teacher is not None:
            self.teacher.load_state_dict(state["teacher"], context.model)
        self.seen = set(state["seen"])

    def _link(self, z: torch.Tensor) -> torch.Tensor:
        return F.softmax(z / self.temperature, dim=-1) if self.link == "softmax" else z

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        if self.target == "stored":
            replay = batch.draw(self.draw)
            if replay is None:
                return batch.logits.new_zeros(())
            p, q = replay["logits"], batch.replay_outputs(self.draw)
        else:
            if self.teacher.model is None:
                return batch.logits.new_zeros(())
            p, q = self.teacher(batch.x), batch.logits
        return bregman(self.phi, self._link(p), self._link(q)).mean()


@register_term
class ICaRLDistillation(Term):
    """iCaRL's classification-and-distillation loss (Rebuffi et al., CVPR 2017, Alg. 3):
    binary cross-entropy with logits over the classes seen so far, with targets
    ``sigmoid(z_old)`` for classes of past tasks (``z_old`` from the model at the end of the
    previous task) and one-hot labels for the current task's classes; classes not seen yet are
    left out. Applied to current and replayed examples together (``on="both"``).
    """

    name = "icarl"
    needs_task_boundaries = "its old model and old classes are taken at each task's end"

    def __init__(self, on: str = "both", draw: int = 0) -> None:
        check_choice("on", on, ("current", "both"))
        self.on, self.draw = on, int(draw)
        self.uses_replay = on == "both"
        self.teacher = Teacher()
        self.classes = _SeenClasses()
        self._cols: torch.Tensor | None = None
        self._n_old = 0

    def begin_task(self, state) -> None:
        self.classes.begin_task(state)
        old = sorted(self.classes.past - self.classes.current)
        new = sorted(self.classes.current)
        self._n_old = len(old)
        self._cols = torch.tensor(old + new, device=next(state.model.parameters()).device)

    def end_task(self, state) -> None:
        self.teacher.snapshot(state.model, sorted(self.classes.past | self.classes.current))

    def state_dict(self) -> dict:
        return {"teacher": self.teacher.state_dict(), "classes": self.classes.state_dict(), "cols": self._cols,
                "n_old": self._n_old}

    def load_state_dict(self, state: dict, context=None) -> None:
        self.teacher.load_state_dict(state["teacher"], context.model)
        self.classes.load_state_dict(state["classes"])
        self._cols, self._n_old = state["cols"], int(state["n_old"])

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        replay = batch.draw(self.draw) if self.on == "both" else None
        if replay is None:
            x, y, outputs = batch.x, batch.y, batch.logits
        else:
            x = torch.cat([batch.x, batch.replay_inputs(self.draw)])
            y = torch.cat([batch.y, replay["y"]])
            outputs = torch.cat([batch.logits, batch.replay_outputs(self.draw)])
        outputs = outputs.index_select(1, self._cols)
        targets = (y.unsqueeze(1) == self._cols.unsqueeze(0)).to(outputs.dtype)
        if self._n_old and self.teacher.model is not None:
            old = torch.sigmoid(self.teacher(x).index_select(1, self._cols[: self._n_old]))
            targets = torch.cat([old, targets[:, self._n_old:]], dim=1)
        return F.binary_cross_entropy_with_logits(outputs, targets)


_VIEW_CLASSES = ("seen", "all")
_VIEW_REDUCTIONS = ("mean", "batchmean")


@register_term
class ViewKL(Term):
    """View-batch self-distillation, the one-to-many loss of Kang et al., "Do Your Best and Get
    Enough Rest for Continual Learning" (CVPR 2025, Sec. 3.3), as ``models/icarl.py`` of
    hankyul2/ViewBatchModel computes it (``distill_type == 2``). The current batch holds each
    example ``R`` times back to back (the ``view-batch`` plug-in); in each group of ``R`` views the
    first view teaches the others::

        L = 1/(G (R-1)) Σ_g Σ_{k=1}^{R-1} KL(p_g0 ‖ p_gk) / c,    p = softmax(z) over the classes,

    ``p_g0`` detached (no gradient through the teacher), temperature 1. ``c``: with
    ``reduction="mean"`` (the reference's ``F.kl_div`` default, an element-wise mean) the number of
    classes in the softmax, with ``"batchmean"`` 1 (the KL itself). ``classes="seen"``: the
    softmax covers the classes of the tasks so far, as the reference slices iCaRL's outputs to
    them; ``"all"``: every output. Replayed examples drawn from the memory are single copies and
    not part of it.

    The reference turns the loss on after a warm-up, at epoch index 6 (``epoch > 5``, epochs
    counted from 0) of each task: ``start_epoch``. In the online form of the plug-in (one pass)
    there is no later epoch, and the loss is on from the first step. Without the plug-in (one view
    per example) the loss is 0.
    """

    name = "view-kl"

    def __init__(self, start_epoch: int = 6, classes: str = "seen", reduction: str = "mean") -> None:
        if isinstance(start_epoch, bool) or not isinstance(start_epoch, int) or start_epoch < 0:
            raise ValueError(f"`start_epoch` must be an epoch index >= 0, got {start_epoch!r}")
        check_choice("classes", classes, _VIEW_CLASSES)
        check_choice("reduction", reduction, _VIEW_REDUCTIONS)
        self.start_epoch, self.reduction = start_epoch, reduction
        self.classes = _SeenClasses() if classes == "seen" else None
        self._cols: torch.Tensor | None = None
        self.active = True

    def begin_task(self, state) -> None:
        if self.classes is not None:
            self.classes.begin_task(state)
            seen = sorted(self.classes.past | self.classes.current)
            self._cols = torch.tensor(seen, device=next(state.model.parameters()).device)

    def before_step(self, state, batch: StepBatch) -> None:
        from lifelong.plugins.view_batch import CACHE_KEY

        where = state.cache.get(CACHE_KEY)
        self.active = where is None or where["online"] or where["epoch"] >= self.start_epoch

    def state_dict(self) -> dict:
        return {"classes": None if self.classes is None else self.classes.state_dict(), "cols": self._cols}

    def load_state_dict(self, state: dict, context=None) -> None:
        if self.classes is not None:
            self.classes.load_state_dict(state["classes"])
        self._cols = state["cols"]

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        views, logits = batch.repeats, batch.logits
        if views < 2 or not self.active or len(logits) == 0:
            return logits.new_zeros(())
        if self._cols is not None:
            logits = logits.index_select(1, self._cols)
        log_p = F.log_softmax(logits, dim=1).unflatten(0, (-1, views))  # (groups, R, classes)
        teacher = log_p[:, :1].detach()
        kl = (teacher.exp() * (teacher - log_p[:, 1:])).sum(2)  # (groups, R - 1)
        if self.reduction == "mean":
            kl = kl / logits.shape[1]
        return kl.mean()
