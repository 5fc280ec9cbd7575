"""GeRe's threshold-margin loss on a layer's activations (Zhang et al., "GeRe: Towards Efficient
Anti-Forgetting in Continual Learning of LLM via General Samples Replay", arXiv 2508.04676, 2025;
reference code ``Qznan/GeRe`` at ``34d74f5``, ``gere/gere_trainer.py``:
``GeRePresaveCallback.on_train_begin``, ``GeReTrainer.init_margin_loss_thres``,
``compute_gere_loss``, ``compute_loss``). The paper's text could not be read here; the formulas
below are the reference code's, which is what its published demo ran.

Before the continual training, the frozen model's activations ``h0`` on a fixed general replay
set are recorded at one layer (the reference: the last hidden states of an LLM on 1,000
SlimPajama texts). Per unit ``j`` (the last axis), over every row and position of the set::

    μ_j = mean(h0[..., j]),   σ_j = sqrt(mean(h0[..., j]²) − μ_j²)    (population variance)
    pos_j = μ_j + k·σ_j,      neg_j = μ_j − k·σ_j                     (the reference: k = 1)

Each recorded entry puts its unit in a band: *high* (``h0 ≥ pos``), *low* (``h0 ≤ neg``) or
*neutral* (strictly between). When a replayed example's activations ``h`` are computed again
during training, each entry is pushed back into its band by a hinge (not squared)::

    high:     relu(pos − h)                      must stay on
    low:      relu(h − neg)                      must stay off
    neutral:  relu(h − pos) + relu(neg − h)      must stay in between

    L_TM = Σ penalties / (number of non-zero penalties + 1e-8)

so the sum is divided by the number of entries that violate their band (padding masked out
first), not by all entries: a loss of 0 when every entry is in its band. A unit whose σ is 0
(a ReLU unit that never fired on the set) has ``neg = pos``, so its entries are high and low at
once and both hinges apply: ``|h − μ|``, as in the reference.

The loss is ``L = L_ce + w·L_TM`` with a fixed ``w`` (the reference's ``w_strategy`` '1' or
'100', its default) or ``w = L_ce / (L_TM + 1e-8)`` computed from the step's values as numbers
(``'dy'``, the setting of the README's MMLU result), so that the two parts have equal size:
``weighting: dynamic``, where ``L_ce`` is the rest of the objective (every other term, with its
weight). The reference's ``L_ce`` is the mean of the task's and the general samples' next-token
losses; in a recipe that is ``{term: ce, on: both}``."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from lifelong.objective.base import StepBatch, Term, check_choice, register_term
from lifelong.objective.taps import layer_problem, record

EPS = 1e-8  # the reference's, in the loss's denominator and the dynamic weight's


def _expand(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``mask`` (rows, or rows x positions) broadcast over the unit axes of ``like``."""
    return mask.to(like.dtype).reshape(*mask.shape, *([1] * (like.dim() - mask.dim())))


def band_thresholds(activations: torch.Tensor, k: float = 1.0,
                    mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(neg, pos) = μ ∓ k·σ`` per unit (the last axis), over every other axis (rows and
    positions), σ the population standard deviation; ``mask`` (the leading axes) leaves out
    padding positions."""
    flat = activations.reshape(-1, activations.shape[-1])
    if mask is not None:
        flat = flat[mask.reshape(-1).bool()]
    mean = flat.mean(0)
    std = flat.var(0, unbiased=False).sqrt()
    return mean - k * std, mean + k * std


def threshold_margin_loss(h: torch.Tensor, h0: torch.Tensor, neg: torch.Tensor, pos: torch.Tensor,
                          mask: torch.Tensor | None = None) -> torch.Tensor:
    """GeRe's TM loss (module docstring): the hinge of each entry of ``h`` out of the band its
    recorded value ``h0`` is in, summed and divided by the number of non-zero hinges."""
    low = (h0 <= neg).to(h.dtype)
    high = (h0 >= pos).to(h.dtype)
    neutral = ((h0 > neg) & (h0 < pos)).to(h.dtype)
    loss = low * F.relu(h - neg) + neutral * (F.relu(h - pos) + F.relu(neg - h)) + high * F.relu(pos - h)
    if mask is not None:
        loss = loss * _expand(mask, loss)
    return loss.sum() / ((loss != 0).sum() + EPS)


_WEIGHTINGS = ("fixed", "dynamic")


@register_term
class ThresholdMargin(Term):
    """GeRe's threshold-margin term on the replayed examples of a fixed memory (module docstring).

    ``layer``: the module whose output is regularised, by its name in ``model.named_modules()``
    (``features``: the backbone's output, the analogue of the reference's last hidden states; or a
    dotted path such as ``features.2``); units are its last axis. ``k``: the thresholds are
    ``μ ± k·σ`` (the reference: 1). ``draw``: the replay draw it reads. ``weighting``: ``fixed``
    (the objective's ``weight`` is ``w``) or ``dynamic`` (``w = rest / (L_TM + 1e-8)``, rest the
    other terms' weighted sum, as constants, times the objective's ``weight``: give it weight 1).

    The activations of the memory's examples are recorded once, at the first task end after
    which the memory holds examples, by the model as it is then, in evaluation mode (the frozen
    base model); the thresholds come from them. The memory must keep each slot's example for the
    whole run (``memory: first-task``). A memory field ``mask`` (rows x positions, e.g. a
    sequence's padding) is applied to the thresholds and the loss, as the reference's attention
    mask; image memories have none.
    """

    name = "threshold-margin"
    uses_replay = True
    needs_fixed_memory = True
    needs_task_boundaries = "its general set's activations are recorded at a task's end"

    def __init__(self, layer: str = "features", k: float = 1.0, draw: int = 0, weighting: str = "fixed") -> None:
        if not isinstance(layer, str) or not layer:
            raise ValueError(f"`layer` must be a module name such as 'features' or 'features.2', got {layer!r}")
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or not k > 0:
            raise ValueError(f"`k` (the thresholds are mean ± k·std) must be a positive number, got {k!r}")
        if isinstance(draw, bool) or not isinstance(draw, int) or draw < 0:
            raise ValueError(f"`draw` must be a replay draw index >= 0, got {draw!r}")
        check_choice("weighting", weighting, _WEIGHTINGS)
        self.layer, self.k, self.draw, self.weighting = layer, float(k), draw, weighting
        self.taps = (layer,)
        self.recorded: torch.Tensor | None = None  # h0 of each memory slot
        self.neg: torch.Tensor | None = None
        self.pos: torch.Tensor | None = None
        if weighting == "dynamic":
            self.reweight = self._dynamic_weight

    def check_model(self, model: nn.Module) -> str | None:
        """Why the term cannot work on ``model`` (an unknown layer), or ``None``."""
        return layer_problem(model, self.layer)

    def record(self, model: nn.Module, inputs: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Record ``model``'s activations at the layer on ``inputs`` (the memory's rows, in slot
        order) and set the thresholds from them."""
        self.recorded = record(model, self.layer, inputs)
        self.neg, self.pos = band_thresholds(self.recorded, self.k, mask)

    def end_task(self, state) -> None:
        memory = state.memory
        if self.recorded is not None or memory is None or not len(memory):
            return
        mask = memory.fields.get("mask")
        self.record(state.model, memory.fields["x"][: len(memory)], None if mask is None else mask[: len(memory)])

    def state_dict(self) -> dict:
        return {"recorded": self.recorded, "neg": self.neg, "pos": self.pos}

    def load_state_dict(self, state: dict, context=None) -> None:
        self.recorded, self.neg, self.pos = state["recorded"], state["neg"], state["pos"]

    def _dynamic_weight(self, terms: list[tuple[float, Any]], values: list[torch.Tensor]) -> list[Any]:
        """The reference's ``'dy'``: this term's multiplier is the rest of the loss over its own value."""
        mine = next(i for i, (_, term) in enumerate(terms) if term is self)
        rest = sum(w * v for i, ((w, _), v) in enumerate(zip(terms, values)) if i != mine)
        multipliers: list[Any] = [1.0] * len(values)
        multipliers[mine] = rest / (values[mine] + EPS)
        return multipliers

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        draw = batch.draw(self.draw)
        if draw is None or self.recorded is None:
            return batch.logits.new_zeros(())
        h = batch.replay_rows(self.draw, batch.activations[self.layer])[: len(draw["y"])]
        h0 = self.recorded.index_select(0, draw["index"])
        return threshold_margin_loss(h, h0, self.neg, self.pos, draw.get("mask"))
