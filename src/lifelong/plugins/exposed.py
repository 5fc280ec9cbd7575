"""Evaluation over the classes exposed so far: the Si-Blurry trainer of Moon et al. (ICCV 2023;
``KHU-AGI/Si-Blurry`` ``methods/_trainer.py`` and ``methods/mvp.py`` ``online_evaluate``) adds
``-inf`` to the test logits of every class no training example has shown yet, for every method.
The training loss's side of that mask is a term option (``ce`` or ``mvp-ce`` with
``mask: exposed``)."""
from __future__ import annotations

import torch

from lifelong import distributed
from lifelong.objective.mvp import ExposedClasses
from lifelong.plugins import register_plugin


@register_plugin
class ExposedEval:
    """Evaluation ranks only the classes of the training examples seen so far (the current
    batch's included, from the step that shows them); before the first step, all classes."""

    name = "exposed-eval"

    def __init__(self) -> None:
        self.exposed = ExposedClasses()

    def before_step(self, state, batch) -> None:
        self.exposed.add(batch.y, state.stream.num_classes)
        if distributed.parallel():  # each rank saw its share of the batch: exposed on any rank, on all
            self.exposed.seen = distributed.sum_([self.exposed.seen.long()])[0] > 0

    def state_dict(self) -> dict:
        return self.exposed.state_dict()

    def load_state_dict(self, state: dict, context=None) -> None:
        self.exposed.load_state_dict(state)

    @torch.no_grad()
    def scores(self, model, x: torch.Tensor) -> torch.Tensor:
        return self.exposed.hide(model(x), float("-inf"))
