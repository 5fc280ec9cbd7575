"""iCaRL's nearest-mean-of-exemplars classifier (Rebuffi et al., CVPR 2017, Alg. 1): each class
is represented by the mean of its exemplars' L2-normalised features; an input is classified to
the nearest mean. Means are recomputed from the memory at the end of every task."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lifelong import distributed
from lifelong.plugins import register_plugin


def _shared_means(model, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The class means of several processes: every rank holds the same (replicated) exemplars,
    computes the normalised features of its contiguous share of them, and the per-class sums
    and counts are summed across the ranks; then as in one process (NaN rows for classes
    without exemplars)."""
    lo, hi = distributed.share(len(x))
    feats = torch.cat([F.normalize(model.features(x[s:min(s + 1000, hi)]), dim=1)
                       for s in range(lo, hi, 1000)]) if hi > lo else None
    dim = feats.shape[1] if feats is not None else model.features(x[:1]).shape[1]
    sums = torch.zeros(num_classes, dim, device=x.device)
    counts = torch.zeros(num_classes, device=x.device)
    if feats is not None:
        sums.index_add_(0, y[lo:hi], feats)
        counts.index_add_(0, y[lo:hi], torch.ones(hi - lo, device=x.device))
    distributed.sum_([sums, counts])
    means = F.normalize(sums / counts.clamp_min(1).unsqueeze(1), dim=1)
    return means.masked_fill((counts == 0).unsqueeze(1), float("nan"))


@register_plugin
class NearestMeanOfExemplars:
    name = "nme"
    uses_memory = True

    def __init__(self) -> None:
        self.means: torch.Tensor | None = None  # (num_classes, d), NaN rows for classes without exemplars

    def state_dict(self) -> dict:
        return {"means": self.means}

    def load_state_dict(self, state: dict, context=None) -> None:
        self.means = state["means"]

    @torch.no_grad()
    def end_task(self, state) -> None:
        memory, model = state.memory, state.model
        if memory is None or len(memory) == 0:
            return
        was_training = model.training
        model.eval()
        x, y = memory.fields["x"][: len(memory)], memory.fields["y"][: len(memory)]
        if distributed.parallel():
            self.means = _shared_means(model, x, y, state.stream.num_classes)
            model.train(was_training)
            return
        feats = torch.cat([F.normalize(model.features(x[s:s + 1000]), dim=1) for s in range(0, len(x), 1000)])
        model.train(was_training)
        means = torch.full((state.stream.num_classes, feats.shape[1]), float("nan"), device=feats.device)
        for c in y.unique().tolist():
            means[c] = F.normalize(feats[y == c].mean(0), dim=0)
        self.means = means

    @torch.no_grad()
    def scores(self, model, x: torch.Tensor) -> torch.Tensor:
        """Negative squared distance to each class mean; ``-inf`` for classes without one.
        Before the first task ends there are no means, and the model's logits are used."""
        if self.means is None:
            return model(x)
        feats = F.normalize(model.features(x), dim=1)
        dist = torch.cdist(feats, torch.nan_to_num(self.means, nan=0.0)).square()
        return (-dist).masked_fill(torch.isnan(self.means[:, 0]).unsqueeze(0), float("-inf"))
