"""GeRe's general-samples replay with the threshold-margin (TM) loss, on a GPT's last hidden layer
(Zhang et al., "GeRe: Towards Efficient Anti-Forgetting in Continual Learning of LLM via General
Samples Replay", arXiv 2508.04676, 2025; reference code ``Qznan/GeRe``, ``gere/gere_trainer.py``:
``GeRePresaveCallback.on_train_begin`` records ``outputs.hidden_states[-1]``,
``init_margin_loss_thres`` the thresholds, ``compute_gere_loss`` and ``compute_loss`` the loss).

At the start of each later corpus, ``windows`` windows of the earlier corpora (the "general"
set; each picks an earlier corpus uniformly, then an offset) are fixed, and the model as it is
then, in evaluation mode, records their last hidden states ``h0`` (:meth:`GPT.hidden`, after the
final LayerNorm, as a Hugging Face model's ``hidden_states[-1]``). The per-unit thresholds
``μ ± σ`` over every window and position and the band of each entry are
:func:`lifelong.objective.threshold_margin.band_thresholds` and
:func:`~lifelong.objective.threshold_margin.threshold_margin_loss` (the image side's). Each step
then draws ``batch`` windows of the set (uniformly, with replacement) and the loss is the
reference's ``compute_loss``::

    L = (CE_task + CE_general) / 2 + w · L_TM(h_general, h0)

``CE_task`` is the step's batch (with ``--replay``'s windows, if any, and RECAP's weights, if
on), ``CE_general`` the next-token loss of the general windows. ``w`` is either fixed, ``W`` (the
reference's ``w_strategy`` '1' or '100', its default), or dynamic (``'dy'``, the setting of the
reference's README result)::

    w = W · CE / (L_TM + 1e-8),   CE = (CE_task + CE_general) / 2

with ``CE`` and ``L_TM`` the step's values taken as numbers (the reference's ``.item()``), so that
no gradient flows through ``w`` and the term has the size of ``W`` times the cross-entropy. ``CE``
is the mean of the two losses, the reference's ``total_ce_loss``, not the task's alone. When
every hinge is 0 (``L_TM`` = 0, as on a later corpus's first step), the term and its gradient are
0 and ``L = CE``. The reference's ``'dy'`` is ``W = 1``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from lifelong.errors import ConfigError
from lifelong.lm.batches import ReplayMixer
from lifelong.lm.model import GPT
from lifelong.objective.threshold_margin import EPS, band_thresholds, threshold_margin_loss

WEIGHTINGS = ("fixed", "dynamic")


def check_gere(weight: float, n_windows: int, batch: int, weighting: str = "fixed") -> None:
    """A :class:`ConfigError` for a negative or non-finite weight, a set or batch under 1, an
    unknown weighting, or a dynamic weighting without GeRe on."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
        raise ConfigError(f"--gere (the threshold-margin weight) must be a number >= 0, got {weight!r}")
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"--gere-weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
    if weighting == "dynamic" and not weight:
        raise ConfigError("--gere-weighting dynamic needs --gere W > 0 (the term is W times the cross-entropy; "
                          "W 1 is the reference's 'dy')")
    for key, value in (("gere_windows", n_windows), ("gere_batch", batch)):
        if value < 1:
            raise ConfigError(f"{key} must be at least 1, got {value}")


class GeneralReplay:
    """The fixed general set, its recorded activations and thresholds, and the step's loss."""

    def __init__(self, weight: float, n_windows: int, batch: int, generator: torch.Generator,
                 weighting: str = "fixed") -> None:
        check_gere(weight, n_windows, batch, weighting)
        self.weight, self.n_windows, self.batch, self.weighting = float(weight), n_windows, batch, weighting
        self.last_weight: float | None = None  # w of the latest step with a general set
        self.generator = generator
        self.x: torch.Tensor | None = None  # inputs of the set, n_windows x block_size
        self.y: torch.Tensor | None = None
        self.h0: torch.Tensor | None = None
        self.neg: torch.Tensor | None = None
        self.pos: torch.Tensor | None = None

    @torch.no_grad()
    def fix(self, model: GPT, mixer: ReplayMixer, task: int) -> None:
        """Fix the set from the corpora before ``task`` and record ``model``'s hidden states on it."""
        earlier = mixer.earlier(task)
        if not earlier:
            return
        xs: list[torch.Tensor] = []
        ys: list[torch.Tensor] = []
        mixer.draw(earlier, torch.randint(len(earlier), (self.n_windows,), generator=self.generator), xs, ys)
        self.x, self.y = torch.cat(xs), torch.cat(ys)
        was = model.training
        model.eval()
        self.h0 = model.hidden(self.x)
        model.train(was)
        self.neg, self.pos = band_thresholds(self.h0, 1.0)

    def loss(self, model: GPT, task_ce: torch.Tensor) -> torch.Tensor:
        """The step's loss: ``task_ce`` alone before a set is fixed, else the reference's sum."""
        if self.x is None:
            return task_ce
        idx = torch.randint(len(self.x), (self.batch,), generator=self.generator)
        h = model.hidden(self.x[idx])
        logits = model.lm_head(h)
        general_ce = F.cross_entropy(logits.view(-1, logits.size(-1)), self.y[idx].reshape(-1))
        tm = threshold_margin_loss(h, self.h0[idx], self.neg, self.pos)
        ce = (task_ce + general_ce) / 2
        w = self.weight
        if self.weighting == "dynamic":
            w = self.weight * ce.item() / (tm.item() + EPS)  # numbers: no gradient through w
        self.last_weight = w
        return ce + w * tm

    def state_dict(self) -> dict:
        return {"x": self.x, "y": self.y, "h0": self.h0, "neg": self.neg, "pos": self.pos,
                "last_weight": self.last_weight}

    def load_state_dict(self, state: dict) -> None:
        self.x, self.y, self.h0, self.neg, self.pos = (state[k] for k in ("x", "y", "h0", "neg", "pos"))
        self.last_weight = state.get("last_weight")  # absent from checkpoints written before it was kept
