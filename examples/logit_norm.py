"""A new kind of term in a few lines: register it by name, then use it in a recipe.

Used by examples/logit_norm.yaml (`lifelong run --config examples/logit_norm.yaml`), or from
Python after `import examples.logit_norm`.
"""
import torch

from lifelong.objective import StepBatch, Term, register_term


@register_term
class LogitNorm(Term):
    """Penalise large logits on the current batch: ``mean ||f(x)||^2``."""

    name = "logit-norm"

    def __init__(self, power: float = 2.0) -> None:
        self.power = power

    def __call__(self, batch: StepBatch) -> torch.Tensor:
        return batch.logits.abs().pow(self.power).sum(1).mean()
