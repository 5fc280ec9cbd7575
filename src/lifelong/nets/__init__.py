"""Backbones. Each is a module with a ``features`` part and a linear ``classifier`` part, so that
methods can use the representation (prototypes, feature distillation) as well as the logits."""
from __future__ import annotations

import torch.nn as nn

from lifelong.errors import ConfigError
from lifelong.nets.heads import HEADS, CosineLinear, set_head
from lifelong.nets.mlp import MLP
from lifelong.nets.resnet import resnet18

BACKBONES = {
    "mlp": "two hidden layers of 100 units, ReLU (Buzzega et al., 2020; Lopez-Paz and Ranzato, 2017)",
    "resnet18": "ResNet-18 with a CIFAR stem (3x3 conv, no max-pool), width 64 (He et al., 2016)",
}


def build_backbone(name: str, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """The backbone ``name`` for inputs of ``input_shape`` (C, H, W) and ``num_classes`` outputs."""
    if name == "mlp":
        c, h, w = input_shape
        return MLP(c * h * w, num_classes)
    if name == "resnet18":
        return resnet18(num_classes, in_channels=input_shape[0])
    raise ConfigError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")


__all__ = ["BACKBONES", "HEADS", "MLP", "CosineLinear", "build_backbone", "resnet18", "set_head"]
