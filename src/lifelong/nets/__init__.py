"""Backbones. Each is a module with a ``features`` part and a linear ``classifier`` part, so that
methods can use the representation (herding, nearest-mean classifier, head warm-up) as well as
the logits.

The table is open: :func:`register_backbone` adds any ``nn.Module`` factory by name, from a
user's file (``--import``) or from Python, with no edit of the library. A factory is called as
``factory(input_shape, num_classes)`` (``input_shape`` is ``(C, H, W)``); a model without a
``features``/``classifier`` split is given one by :func:`split_head` (e.g. a torchvision or timm
model, whose last linear layer becomes the classifier).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from lifelong.errors import ConfigError
from lifelong.nets.heads import HEADS, CosineLinear, set_head, set_projection
from lifelong.nets.mlp import MLP
from lifelong.nets.resnet import reduced_resnet18, resnet18
from lifelong.nets.sharp import SharpConvNet
from lifelong.nets.split import FrozenSplit, frozen_split
from lifelong.registry import check_free

Factory = Callable[[tuple[int, int, int], int], nn.Module]


@dataclass(frozen=True)
class Backbone:
    name: str
    factory: Factory
    description: str = ""
    builtin: bool = False


BACKBONES: dict[str, Backbone] = {}


def register_backbone(name: str, factory: Factory | None = None, *, description: str = "", builtin: bool = False):
    """Add ``factory(input_shape, num_classes) -> nn.Module`` as backbone ``name``; usable as a
    decorator (``@register_backbone("my-net")``). A model without ``features`` and
    ``classifier`` is split with :func:`split_head`. A name held by a built-in or by another
    factory is refused (``ValueError``)."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a backbone needs a non-empty name")

    def add(f: Factory) -> Factory:
        if not callable(f):
            raise TypeError(f"backbone {name!r}: the factory must be callable")
        backbone = Backbone(name, f, description or (f.__doc__ or "").strip().split("\n")[0], builtin)
        check_free(BACKBONES, name, backbone, "backbone", key=lambda entry: entry.factory)
        BACKBONES[name] = backbone
        return f

    return add if factory is None else add(factory)


class SplitModel(nn.Module):
    """A model cut into ``features`` (everything up to its last linear layer) and that layer as
    ``classifier``; its output is unchanged."""

    def __init__(self, model: nn.Module, head: str) -> None:
        super().__init__()
        self.classifier = getattr(model, head)
        setattr(model, head, nn.Identity())
        self.body = model

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def split_head(model: nn.Module) -> nn.Module:
    """``model`` as is if it has ``features`` and ``classifier``; else cut at its last top-level
    ``nn.Linear`` attribute (``fc`` of torchvision's ResNets, ``head`` or ``classifier`` of timm
    models)."""
    if hasattr(model, "features") and isinstance(getattr(model, "classifier", None), nn.Module):
        return model
    heads = [name for name, child in model.named_children() if isinstance(child, nn.Linear)]
    if not heads:
        raise ConfigError(f"{type(model).__name__} has no `features`/`classifier` split and no top-level linear "
                          f"layer to use as its classifier; give the model `features` and `classifier` modules")
    return SplitModel(model, heads[-1])


def build_backbone(name: str, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """The backbone ``name`` for inputs of ``input_shape`` (C, H, W) and ``num_classes`` outputs."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    model = BACKBONES[name].factory(tuple(input_shape), num_classes)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"backbone {name!r} returned {type(model).__name__}, not a torch.nn.Module")
    return split_head(model)


register_backbone("mlp", lambda shape, n: MLP(shape[0] * shape[1] * shape[2], n), builtin=True,
                  description="two hidden layers of 100 units, ReLU (Buzzega et al., 2020; Lopez-Paz and Ranzato, 2017)")
register_backbone("resnet18", lambda shape, n: resnet18(n, in_channels=shape[0]), builtin=True,
                  description="ResNet-18 with a CIFAR stem (3x3 conv, no max-pool), width 64 (He et al., 2016)")


def _reduced_resnet18(shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    try:
        return reduced_resnet18(num_classes, in_channels=shape[0], input_size=(shape[1], shape[2]))
    except ValueError as exc:
        raise ConfigError(f"backbone 'reduced-resnet18': {exc}") from None


register_backbone("reduced-resnet18", _reduced_resnet18, builtin=True,
                  description="reduced ResNet-18 of online CL: width 20, 4x4 average pool, 160 features "
                              "(Lopez-Paz and Ranzato, 2017)")

register_backbone("sharp-conv", lambda shape, n: SharpConvNet(shape[0], n, (shape[1], shape[2])), builtin=True,
                  description="SHARP's MNIST network: 2 x (conv 16, ReLU, max-pool), linear 500, linear 500, ReLU "
                              "(Gurbuz et al., 2023)")

__all__ = ["BACKBONES", "Backbone", "FrozenSplit", "HEADS", "MLP", "CosineLinear", "SharpConvNet", "SplitModel",
           "build_backbone", "frozen_split", "reduced_resnet18", "register_backbone", "resnet18", "set_head", "set_projection",
           "split_head"]
