"""Batched data augmentation: whole batches at once, no per-image Python."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop of the original size from the zero-padded image, then a horizontal flip with
    probability 1/2, independently per image (the CIFAR augmentation of He et al., 2016).

    ``generator`` lives on the CPU; the few random numbers are moved to ``x``'s device.
    """
    n, c, h, w = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator).to(x.device)
    flips = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = (offsets[0].unsqueeze(1) + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = offsets[1].unsqueeze(1) + torch.arange(w, device=x.device)
    cols = torch.where(flips.unsqueeze(1), cols.flip(1), cols).view(n, 1, 1, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    channel = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[batch, channel, rows, cols]
