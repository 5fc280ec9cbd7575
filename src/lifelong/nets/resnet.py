"""ResNet-18 (He et al., "Deep residual learning for image recognition", CVPR 2016) with the
CIFAR stem used throughout the continual-learning literature (Lopez-Paz and Ranzato, 2017;
Buzzega et al., 2020): a 3x3 stride-1 first convolution and no max-pool. Global average pooling
makes the same network work on 32x32 (CIFAR) and 64x64 (Tiny-ImageNet) inputs."""
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


class ResNet(nn.Module):
    """``features``: stem, four stages, average pool, flatten; ``classifier``: one linear layer."""

    def __init__(self, blocks: tuple[int, ...], num_classes: int, in_channels: int = 3, width: int = 64) -> None:
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
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def resnet18(num_classes: int, in_channels: int = 3, width: int = 64) -> ResNet:
    """ResNet-18: four stages of two basic blocks, widths ``width`` x (1, 2, 4, 8)."""
    return ResNet((2, 2, 2, 2), num_classes, in_channels, width)
