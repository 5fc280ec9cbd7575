"""The model-agnostic parts of MVP (Moon et al., "Online Class Incremental Learning on Stochastic
Blurry Task Boundary via Mask and Visual Prompt Tuning", ICCV 2023), followed as its reference
code ``KHU-AGI/Si-Blurry`` (commit ``c90d6d7``) computes them: ``methods/mvp.py``
(``model_forward``, ``loss_fn``, ``_compute_grads``, ``_get_ignore``, ``_get_compensation``) and
``methods/_trainer.py`` (``add_new_class``, ``self.mask``).

- **Exposed-class mask.** The logits of classes no training example of the stream has shown yet
  are set to ``-inf`` (the trainer's ``self.mask``), in the loss and at evaluation.
- **Adaptive feature scaling (AFS).** The loss's logits are ``h(f / s)`` with
  ``s = 1 − cos(w_y, f) + m`` per example, ``w_y`` the classifier's row of the example's label,
  ``m`` the margin (0.5); ``s`` is a constant (weights and features detached).
- **Gradient-similarity focal weighting (GSF).** ``w_i = (1 − cos(g_i, ḡ_{y_i}))^γ``, with
  ``g_i`` the gradient of example ``i``'s cross-entropy with respect to the classifier's row
  ``y_i`` and ``ḡ_c`` that of the batch's mean cross-entropy with respect to row ``c``, both at
  the unscaled logits ``h(f)`` (masked as above); the loss is ``mean((1 − α)·CE + α·w·CE)``.

The visual prompts, their keys and the learnable per-prompt logit mask ``2·sigmoid(m)`` need the
frozen pretrained ViT and are not here.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lifelong.errors import ConfigError
from lifelong.objective.base import StepBatch, Term, check_choice, register_term


class ExposedClasses:
    """The classes of the training examples seen so far in the stream (the reference trainer's
    ``exposed_classes``, grown by ``add_new_class`` before each batch is trained on). On a blurry
    stream this is not the task's class list: a class is exposed from its first example on."""

    def __init__(self) -> None:
        self.seen: torch.Tensor | None = None  # bool, one per class

    def add(self, y: torch.Tensor, num_classes: int) -> None:
        """Mark the labels ``y`` as exposed (tensor indexing: no host synchronisation)."""
        if self.seen is None:
            self.seen = torch.zeros(num_classes, dtype=torch.bool, device=y.device)
        elif self.seen.device != y.device:
            self.seen = self.seen.to(y.device)
        self.seen[y] = True

    def hide(self, logits: torch.Tensor, fill: float | None = None) -> torch.Tensor:
        """``logits`` with the columns of unexposed classes set to ``fill`` (default the dtype's
        lowest value: a zero softmax weight and gradient, as the reference's ``-inf``)."""
        if self.seen is None:
            return logits
        if self.seen.device != logits.device:
            self.seen = self.seen.to(logits.device)
        return logits.masked_fill(~self.seen, torch.finfo(logits.dtype).min if fill is None else fill)

    def state_dict(self) -> dict:
        return {"seen": self.seen}

    def load_state_dict(self, state: dict) -> None:
        self.seen = state["seen"]


def afs_scale(features: torch.Tensor, weight: torch.Tensor, y: torch.Tensor, margin: float) -> torch.Tensor:
    """AFS's divisor per example, ``1 − cos(w_{y_i}, f_i) + margin`` (``_get_compensation``), from
    detached weights and features, so that it is a constant of the loss."""
    return 1.0 - F.cosine_similarity(weight.detach()[y], features.detach(), dim=1) + margin


@torch.no_grad()
def gsf_weights(features: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
    """GSF's weight per example, ``(1 − cos(g_i, ḡ_{y_i}))^γ`` (``_compute_grads``,
    ``_get_ignore``), in closed form for a linear head ``z = W f + b``: the gradient of
    ``CE(z_i, y_i)`` with respect to row ``c`` of ``W`` is ``(p_ic − [c = y_i]) f_i``, so
    ``g_i = (p_{i,y_i} − 1) f_i`` and ``ḡ_c = (1/B) Σ_j (p_jc − [c = y_j]) f_j`` (all examples
    of the batch, whatever their label). ``logits``: the head's (masked) logits on ``features``;
    nothing here carries a gradient."""
    features = features.detach()
    residual = F.softmax(logits.detach(), dim=1)
    residual[torch.arange(len(y), device=y.device), y] -= 1.0  # p − onehot(y)
    own = residual.gather(1, y.unsqueeze(1)) * features  # g_i, (B, d)
    batch = (residual.t() @ features) / len(y)  # ḡ_c for every class, (C, d)
    return (1.0 - F.cosine_similarity(own, batch[y], dim=1)).pow(gamma)


_REDUCTIONS = ("batch", "sample")


@register_term
class MVPCrossEntropy(Term):
    """MVP's classification loss without its prompts (Moon et al., ICCV 2023, Sec. 4; reference
    ``methods/mvp.py`` ``loss_fn``), on any backbone with a linear ``classifier``:

    ``L = mean_i((1 − α)·CE + α·w_i·CE)`` with ``CE`` the cross-entropy of the logits
    ``h(f / s)`` (AFS, ``afs: true``; ``h(f)`` otherwise), classes not exposed yet hidden
    (``mask: exposed``), and ``w_i`` GSF's weights (``gsf: true``; otherwise ``L = CE``).

    ``reduction``: ``"batch"`` (the reference code, whose ``F.nll_loss`` averages the batch
    before the weights multiply it: ``L = CE_mean · ((1 − α) + α · mean_i w_i)``, which rescales
    the step rather than reweighting examples) or ``"sample"`` (each example's own
    cross-entropy weighted by its ``w_i``, as the focal form reads). ``on``: ``"current"`` or
    ``"both"`` (current and replayed examples in one batch, as the reference concatenates the
    memory batch; ``draw`` picks the replay draw). Defaults are ``scripts/mvp.sh``'s and
    ``configuration/config.py``'s: every part on, ``alpha`` 0.5, ``gamma`` 2, ``margin`` 0.5.
    """

    name = "mvp-ce"

    def __init__(self, on: str = "current", draw: int = 0, mask: str = "exposed", afs: bool = True,
                 margin: float = 0.5, gsf: bool = True, alpha: float = 0.5, gamma: float = 2.0,
                 reduction: str = "batch") -> None:
        check_choice("on", on, ("current", "both"))
        check_choice("mask", mask, ("exposed", "none"))
        check_choice("reduction", reduction, _REDUCTIONS)
        for key, value in (("afs", afs), ("gsf", gsf)):
            if not isinstance(value, bool):
                raise ValueError(f"`{key}` must be true or false, got {value!r}")
        for key, value in (("margin", margin), ("alpha", alpha), ("gamma", gamma)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise ValueError(f"`{key}` must be a number, got {value!r}")
        if not margin > 0:
            raise ValueError(f"`margin` must be positive (it keeps AFS's divisor 1 − cos + margin above 0), "
                             f"got {margin}")
        if not 0 <= alpha <= 1:
            raise ValueError(f"`alpha` must be in [0, 1], got {alpha}")
        if not gamma >= 0:
            raise ValueError(f"`gamma` must be >= 0, got {gamma}")
        self.on, self.draw, self.mask, self.reduction = on, int(draw), mask, reduction
        self.afs, self.gsf = afs, gsf
        self.margin, self.alpha, self.gamma = float(margin), float(alpha), float(gamma)
        self.uses_replay = on == "both"
        self.needs_features = afs or gsf
        self.exposed = ExposedClasses() if mask == "exposed" else None

    def begin_task(self, state) -> None:
        if self.needs_features and not isinstance(getattr(state.model, "classifier", None), nn.Linear):
            head = type(getattr(state.model, "classifier", None)).__name__
            raise ConfigError(f"term 'mvp-ce': `afs` and `gsf` need a backbone whose `classifier` is a linear "
                              f"layer, not {head}; set them to false or use a linear head")

    def state_dict(self) -> dict:
        return {"exposed": None if self.exposed is None else self.exposed.state_dict()}

    def load_state_dict(self, state: dict, context=None) -> None:
        if self.exposed is not None:
            self.exposed.load_state_dict(state["exposed"])

    def _rows(self, batch: StepBatch) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The outputs, features and labels of the examples the loss covers."""
        replay = batch.draw(self.draw) if self.on == "both" else None
        n = len(batch.y)
        if replay is None:
            feats = None if batch.features is None else batch.features[:n]
            return batch.logits, feats, batch.y
        span = batch._span(self.draw)
        pick = (lambda t: t[: span.stop]) if self.draw == 0 else (lambda t: torch.cat([t[:n], t[span]]))
        feats = None if batch.features is None else pick(batch.features)
        return pick(batch.outputs), feats, torch.cat([batch.y, replay["y"]])

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        outputs, features, y = self._rows(batch)
        if self.exposed is not None:
            self.exposed.add(batch.y, outputs.shape[1])
        hide = self.exposed.hide if self.exposed is not None else (lambda z: z)
        head = batch.model.classifier if self.needs_features else None
        logits = outputs
        if self.afs:
            logits = head(features / afs_scale(features, head.weight, y, self.margin).unsqueeze(1))
        ce = F.cross_entropy(hide(logits), y, reduction="mean" if self.reduction == "batch" else "none")
        if not self.gsf:
            return ce.mean()
        w = gsf_weights(features, hide(outputs.detach()), y, self.gamma)
        return ((1.0 - self.alpha) * ce + self.alpha * w * ce).mean()
