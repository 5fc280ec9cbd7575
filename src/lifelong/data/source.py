"""A data source: train and test examples of one data set as uint8 tensors in memory."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lifelong.errors import DataError


@dataclass
class Source:
    """Images as uint8 ``(N, C, H, W)`` tensors and labels as int64 ``(N,)`` tensors.

    ``mean`` and ``std`` are per-channel statistics on the [0, 1] scale used to normalise
    inputs; ``None`` keeps pixels in [0, 1].
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        for split, x, y in (("train", self.train_x, self.train_y), ("test", self.test_x, self.test_y)):
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise DataError(f"{self.name}: {split} images must be uint8 (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
            if len(x) != len(y):
                raise DataError(f"{self.name}: {split} has {len(x)} images but {len(y)} labels")
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise DataError(
                    f"{self.name}: {split} labels must lie in 0..{self.num_classes - 1}, "
                    f"found {int(y.min())}..{int(y.max())}"
                )
        if self.train_x.shape[1:] != self.test_x.shape[1:]:
            raise DataError(f"{self.name}: train and test images differ in shape")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    def to(self, device: torch.device | str) -> "Source":
        """Move all tensors to ``device`` (data stays uint8, so this is cheap)."""
        return Source(
            self.name,
            self.train_x.to(device),
            self.train_y.to(device),
            self.test_x.to(device),
            self.test_y.to(device),
            self.num_classes,
            self.mean,
            self.std,
        )
