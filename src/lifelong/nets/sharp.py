"""The MNIST network of SHARP's code (``MNISTLIKE`` in BurakGurbuz97/SHARP-Continual-Learning
``model_config.py``; Gurbuz et al., 2023): two 3x3 convolutions of 16 channels (stride 1,
padding 1), each followed by ReLU and a 2x2 max-pool (the "early" layers, whose 16·7·7 = 784
outputs the memory stores), then a hidden linear layer of 500 units and the 500-unit
penultimate layer, both with ReLU. Weights are Kaiming-normal (fan-in), biases zero, as
``Network._initialize_weights``. The reference has no classifier (SupCon trains the penultimate
layer and a kNN predicts); here a linear ``classifier`` follows it so that the network works with
every method, and SHARP's recipe never reads it."""
from __future__ import annotations

import torch
import torch.nn as nn


class SharpConvNet(nn.Module):
    frozen_split = "features.5"  # after the second max-pool: the reference's `conv_early`

    def __init__(self, in_channels: int, num_classes: int, image_size: tuple[int, int] = (28, 28),
                 channels: int = 16, hidden: int = 500, penultimate: int = 500) -> None:
        super().__init__()
        h, w = image_size[0] // 4, image_size[1] // 4
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(channels, channels, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Flatten(),
            nn.Linear(channels * h * w, hidden), nn.ReLU(),
            nn.Linear(hidden, penultimate), nn.ReLU(),
        )
        self.classifier = nn.Linear(penultimate, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
