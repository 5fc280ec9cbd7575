"""Output-space terms (Wang et al., ICLR 2024, Table 1): losses on the model's outputs."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lifelong.objective.base import StepBatch, Term, register_term


@register_term
class CrossEntropy(Term):
    """Cross-entropy with the true labels.

    ``on="current"``: the current batch (the first term of Eq. 1; fine-tuning).
    ``on="replay"``: the replayed samples' stored labels (ER's output-space term).
    ``on="both"``: the mean over current and replayed samples together, as experience replay
    is usually implemented (Chaudhry et al., "On tiny episodic memories in continual learning",
    2019; Buzzega et al., 2020): with equal batch sizes this is 1/2 CE(current) + 1/2 CE(replay).
    Without replayed samples (the first task) every choice reduces to the current batch.
    """

    name = "ce"

    def __init__(self, on: str = "current") -> None:
        if on not in ("current", "replay", "both"):
            raise ValueError(f"`on` must be 'current', 'replay' or 'both', got {on!r}")
        self.on = on
        self.uses_replay = on != "current"

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        if batch.replay is None or self.on == "current":
            if self.on == "replay":
                return batch.logits.new_zeros(())
            return F.cross_entropy(batch.logits, batch.y)
        if self.on == "replay":
            return F.cross_entropy(batch.replay_logits, batch.replay["y"])
        return F.cross_entropy(batch.outputs, torch.cat([batch.y, batch.replay["y"]]))
