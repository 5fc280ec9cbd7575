"""ResNet-18 (He et al., "Deep residual learning for image recognition", CVPR 2016) with the
CIFAR stem used throughout the continual-learning literature (Lopez-Paz and Ranzato, 2017;
Buzzega et al., 2020): a 3x3 stride-1 first convolution and no max-pool. Global average pooling
makes the same network work on 32x32 (CIFAR) and 64x64 (Tiny-ImageNet) inputs.

:func:`reduced_resnet18` is the narrower network of the online continual-learning literature
(Lopez-Paz and Ranzato, "Gradient episodic memory for continual learning", NeurIPS 2017, Sec. 5;
Aljundi et al., MIR, 2019; Mai et al., "Online continual learning in image classification: an
empirical survey", 2022), followed as ``RaptorMai/online-continual-learning`` ``models/resnet.py``
(``Reduced_ResNet18``) defines it."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def stage_size(size: int, stages: int = 4) -> int:
    """The side of the last stage's map for an input side ``size``: stages 2..4 halve it, rounding
    up (3x3 stride-2 convolutions with padding 1)."""
    for _ in range(stages - 1):
        size = (size + 1) // 2
    return size


class ResNet(nn.Module):
    """``features``: stem, four stages, average pool, flatten; ``classifier``: one linear layer.

    ``pool=None``: a global average pool (``width · 8`` features whatever the input size).
    ``pool=k``: a ``k x k`` average pool of stride ``k``, as ``avg_pool2d(out, 4)`` in the reduced
    ResNet-18's reference code; the features are then ``width · 8 · ⌊h/k⌋ · ⌊w/k⌋`` for a last map
    of ``h x w``, which needs ``input_size`` (H, W). ``frozen_split``: where hidden-activation
    replay cuts it (:mod:`lifelong.nets.split`): after the stem and the first stage (two blocks)."""

    frozen_split = "features.4"

    def __init__(self, blocks: tuple[int, ...], num_classes: int, in_channels: int = 3, width: int = 64,
                 pool: int | None = None, input_size: tuple[int, int] | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        ]
        in_planes = width
        for stage, count in enumerate(blocks):
            planes = width * 2**stage
            for i in range(count):
                layers.append(BasicBlock(in_planes, planes, 2 if stage > 0 and i == 0 else 1))
                in_planes = planes
        cells = 1
        if pool is None:
            layers.append(nn.AdaptiveAvgPool2d(1))
        else:
            if input_size is None:
                raise ValueError("a fixed average pool needs the input size (H, W)")
            h, w = (stage_size(side) // pool for side in input_size)
            if h < 1 or w < 1:
                raise ValueError(f"inputs of {input_size[0]}x{input_size[1]} leave a last map of "
                                 f"{stage_size(input_size[0])}x{stage_size(input_size[1])}, smaller than the "
                                 f"{pool}x{pool} average pool; this network needs inputs of at least "
                                 f"{8 * (pool - 1) + 1}x{8 * (pool - 1) + 1}")
            layers.append(nn.AvgPool2d(pool))
            cells = h * w
        layers.append(nn.Flatten())
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_planes * cells, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def resnet18(num_classes: int, in_channels: int = 3, width: int = 64) -> ResNet:
    """ResNet-18: four stages of two basic blocks, widths ``width`` x (1, 2, 4, 8)."""
    return ResNet((2, 2, 2, 2), num_classes, in_channels, width)


def reduced_resnet18(num_classes: int, in_channels: int = 3, input_size: tuple[int, int] = (32, 32),
                     width: int = 20) -> ResNet:
    """Reduced ResNet-18 (GEM's; ``Reduced_ResNet18(nclasses, nf=20, bias=True)``): the blocks and
    strides of :func:`resnet18` at width ``nf = 20`` (stages of 20, 40, 80, 160 channels), a 3x3
    stride-1 first convolution, batch norm, convolutions without bias, a 4x4 average pool and a
    linear classifier with bias. 32x32 and 28x28 inputs both leave a 4x4 last map, so 160 features
    (1,094,750 parameters for 10 classes at 32x32, 3 channels); 64x64 inputs give 2x2 cells, 640
    features, as the reference code's Mini-ImageNet head (``nn.Linear(640, nclass)``).
    ``in_channels``: 1 for MNIST (the reference's first convolution takes 3)."""
    return ResNet((2, 2, 2, 2), num_classes, in_channels, width, pool=4, input_size=input_size)
