"""The MNIST network of the continual-learning literature: 784-100-100-C with ReLU
(Lopez-Paz and Ranzato, GEM, 2017; Buzzega et al., DER, NeurIPS 2020)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn


class MLP(nn.Module):
    """``features``: flatten, two hidden layers; ``classifier``: one linear layer.

    Weights are Glorot-uniform and biases zero (Glorot and Bengio, 2010), as in Mammoth's MLP.
    ``frozen_split``: where hidden-activation replay cuts it (:mod:`lifelong.nets.split`): after
    the first hidden layer.
    """

    frozen_split = "features.2"

    def __init__(self, in_features: int, num_classes: int, hidden: int = 100) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(hidden, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                bound = math.sqrt(6.0 / (module.in_features + module.out_features))
                nn.init.uniform_(module.weight, -bound, bound)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
