"""Gradual drift for prequential evaluation (:mod:`lifelong.prequential`): one ordered stream of
a source's examples whose inputs shift a little with every example, instead of a few tasks with
fixed shifts.

Gradually rotated MNIST: Rotated-MNIST (Lopez-Paz and Ranzato, 2017) fixes one rotation per task
(:func:`lifelong.data.streams.rotated`); here example ``i`` of ``N`` (in a seeded random order)
is rotated by ``start + (end − start)·i/(N − 1)`` degrees, with the same bilinear
:class:`lifelong.data.streams.Rotation` (zeros outside the image), so the angle increases
linearly along the stream.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch

from lifelong.data.source import Source
from lifelong.data.streams import Rotation
from lifelong.errors import ConfigError
from lifelong.seeding import torch_generator


def gradual_rotation(
    source: Source,
    split: str = "test",
    *,
    batch_size: int = 100,
    end_degrees: float = 90.0,
    start_degrees: float = 0.0,
    seed: int = 0,
    limit: int | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Batches ``(x, y, degrees)`` of ``split`` (``"train"``/``"test"``) in a random order drawn
    from ``seed``, example ``i`` rotated by ``start + (end − start)·i/(N − 1)`` degrees;
    ``limit`` keeps the first ``limit`` examples of that order (``N = limit``)."""
    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size must be an integer >= 1, got {batch_size!r}")
    for name, v in (("start", start_degrees), ("end", end_degrees)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"the {name} angle must be a finite number of degrees, got {v!r}")
    raw_x, raw_y = (source.train_x, source.train_y) if split == "train" else (source.test_x, source.test_y)
    order = torch.randperm(len(raw_y), generator=torch_generator(seed, "gradual-rotation")).to(raw_y.device)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"the number of examples must be an integer >= 1, got {limit!r}")
        order = order[:limit]
    n = len(order)
    degrees = torch.linspace(float(start_degrees), float(end_degrees), n, dtype=torch.float64)
    mean = std = None
    if source.mean is not None:
        mean = torch.tensor(source.mean, device=raw_x.device).view(1, -1, 1, 1)
        std = torch.tensor(source.std, device=raw_x.device).view(1, -1, 1, 1)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        angle = degrees[start:start + batch_size]
        x = Rotation(angle).to(raw_x.device)(raw_x[idx].float().div_(255.0), torch.arange(len(idx), device=raw_x.device))
        if mean is not None:
            x = x.sub_(mean).div_(std)
        yield x, raw_y[idx], angle.float()
