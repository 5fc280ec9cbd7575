"""A-GEM (Chaudhry et al., "Efficient lifelong learning with A-GEM", ICLR 2019, Eq. 11): if the
current gradient ``g`` would increase the loss on a memory sample (``gᵀ g_ref < 0``, with
``g_ref`` the gradient of the memory loss), replace it by its projection
``g − (gᵀ g_ref / g_refᵀ g_ref) g_ref``, which has ``gᵀ g_ref = 0``."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lifelong import distributed
from lifelong.plugins import register_plugin


def project(grads: list[torch.Tensor], ref: list[torch.Tensor]) -> bool:
    """Project ``grads`` in place as A-GEM does; return whether a projection happened."""
    dot = sum((g * r).sum() for g, r in zip(grads, ref))
    if dot >= 0:
        return False
    scale = dot / sum((r * r).sum() for r in ref)
    for g, r in zip(grads, ref):
        g.sub_(r * scale)
    return True


@register_plugin
class AGEM:
    """Gradient projection against ``replay_batch_size`` examples sampled from the memory."""

    name = "agem"
    uses_memory = True

    def __init__(self) -> None:
        self.projections = 0

    def state_dict(self) -> dict:
        return {"projections": self.projections}

    def load_state_dict(self, state: dict, context=None) -> None:
        self.projections = int(state["projections"])

    def after_backward(self, state, batch) -> None:
        memory = state.memory
        if memory is None or len(memory) == 0:
            return
        sample = memory.sample(state.replay_batch_size)
        params = [p for p in state.model.parameters() if p.grad is not None]
        loss = F.cross_entropy(state.model(sample["x"]), sample["y"])
        ref = torch.autograd.grad(loss, params, allow_unused=True)
        ref = [torch.zeros_like(p) if r is None else r for p, r in zip(params, ref)]
        distributed.mean_(ref)  # several processes: the reference gradient of the ranks' draws together
        with torch.no_grad():
            self.projections += project([p.grad for p in params], ref)
