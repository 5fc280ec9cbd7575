"""Classifier heads that replace a backbone's linear ``classifier``.

:class:`CosineLinear`: logits ``s · cos(f(x), w_c)``, no bias: the classifier of the original
ER-ACE work (Caccia et al., "New insights on reducing abrupt representation change in online
continual learning", ICLR 2022), as Mammoth's ``models/er_ace.py`` (``CustomLinear``, scale 10,
``1e-5`` added to the norms) builds it when ``--use_custom_classifier`` is on (its default).
With ``scale = 1 / 0.09`` it is the proxy classifier of PCR and HPCR (Lin et al., CVPR 2023;
``cosLinear`` in FelixHuiweiLin/PCR ``models/resnet.py``, which adds ``1e-6`` to the norms): its
rows are the class proxies.
"""
from __future__ import annotations

import torch
import torch.nn as nn

HEADS = ("linear", "cosine")


class CosineLinear(nn.Module):
    """``scale · ⟨x/(‖x‖+ε), w_c/(‖w_c‖+ε)⟩`` for each class ``c`` (``ε = 1e-5``)."""

    def __init__(self, in_features: int, out_features: int, scale: float = 10.0, eps: float = 1e-5) -> None:
        super().__init__()
        self.in_features, self.out_features, self.scale, self.eps = in_features, out_features, float(scale), eps
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.Linear.reset_parameters(self)  # PyTorch's default linear initialisation, as Mammoth's head

    @property
    def bias(self) -> None:  # read by nn.Linear.reset_parameters and by code that expects a linear head
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / (x.norm(dim=1, keepdim=True) + self.eps)
        w = self.weight / (self.weight.norm(dim=1, keepdim=True) + self.eps)
        return self.scale * x @ w.t()


def set_head(model: nn.Module, kind: str, scale: float | None = None) -> nn.Module:
    """Give ``model`` the classifier ``kind`` (``"linear"`` keeps it) and return it; ``scale``:
    the cosine classifier's (``None``: 10). Call it before the optimiser is built, under the
    run's initialisation seed."""
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r}; choose one of: {', '.join(HEADS)}")
    if kind == "cosine":
        old = getattr(model, "classifier", None)
        if not isinstance(old, nn.Linear):
            raise ValueError("the cosine head replaces a backbone's linear `classifier`; this model has none")
        extra = {} if scale is None else {"scale": scale}
        model.classifier = CosineLinear(old.in_features, old.out_features, **extra).to(old.weight.device)
    return model
