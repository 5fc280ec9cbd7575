"""Classifier heads that replace a backbone's linear ``classifier``.

:class:`CosineLinear`: logits ``s · cos(f(x), w_c)``, no bias: the classifier of the original
ER-ACE work (Caccia et al., "New insights on reducing abrupt representation change in online
continual learning", ICLR 2022), as Mammoth's ``models/er_ace.py`` (``CustomLinear``, scale 10,
``1e-5`` added to the norms) builds it when ``--use_custom_classifier`` is on (its default).
With ``scale = 1 / 0.09`` it is the proxy classifier of PCR and HPCR (Lin et al., CVPR 2023;
``cosLinear`` in FelixHuiweiLin/PCR ``models/resnet.py``, which adds ``1e-6`` to the norms): its
rows are the class proxies. With ``scale = 1`` it is PRD's prototype classifier (Asadi et al.,
ICML 2023; ``RePE._classify_CI`` in naderAsadi/Probing-Continual-Learning ``methods/repe.py``:
the cosine of the features with every normalised prototype).

:func:`set_projection` adds a projection MLP (``model.projection``) on the features, as SupCon
(Khosla et al., NeurIPS 2020) and PRD contrast projected features (``ProjectionMLP`` of
``models/resnet.py``: linear layers with ReLU between them, no batch norm).
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


def projection_mlp(in_features: int, widths: tuple[int, ...] | list[int]) -> nn.Sequential:
    """``Linear(in, w_1), ReLU, Linear(w_1, w_2), ReLU, ..., Linear(w_{k-1}, w_k)``: PRD's projection
    head with ``widths = (512, 512, 128)`` (``ProjectionMLP(num_layers=3, batch_norm=False)``)."""
    layers: list[nn.Module] = []
    for i, width in enumerate(widths):
        layers.append(nn.Linear(in_features if i == 0 else widths[i - 1], width))
        if i < len(widths) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def set_projection(model: nn.Module, widths: tuple[int, ...] | list[int] = ()) -> nn.Module:
    """Give ``model`` a projection MLP of ``widths`` on its features (``model.projection``, see
    :func:`projection_mlp`) and return it; empty ``widths`` leave it as it is. Its input size is
    the classifier's. Call it after :func:`set_head`, before the optimiser is built, under the
    run's initialisation seed."""
    if not widths:
        return model
    head = getattr(model, "classifier", None)
    in_features = getattr(head, "in_features", None)
    if not isinstance(in_features, int):
        raise ValueError("a projection goes on the features a `classifier` with `in_features` reads; "
                         "this model has none")
    device = next(model.parameters()).device
    model.projection = projection_mlp(in_features, tuple(widths)).to(device)
    return model
