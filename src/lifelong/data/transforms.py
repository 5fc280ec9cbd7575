"""Batched data augmentation: whole batches at once, no per-image Python."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(x: torch.Tensor, padding: int, generator: torch.Generator,
                     fill: torch.Tensor | None = None) -> torch.Tensor:
    """Random crop of the original size from the padded image, then a horizontal flip with
    probability 1/2, independently per image (the CIFAR augmentation of He et al., 2016).

    ``fill``: the per-channel value of the padding, e.g. what a black pixel becomes after
    normalisation (torchvision's ``RandomCrop`` pads the raw image with zeros); default 0.
    ``generator`` should live on ``x``'s device, so that nothing waits for a copy.
    """
    n = x.shape[0]
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=generator.device).to(x.device)
    flips = (torch.rand(n, generator=generator, device=generator.device) < 0.5).to(x.device)
    return crop_flip(x, padding, offsets, flips, fill)


def crop_flip(x: torch.Tensor, padding: int, offsets: torch.Tensor, flips: torch.Tensor,
              fill: torch.Tensor | None = None) -> torch.Tensor:
    """The crop and flip of :func:`random_crop_flip` with its draws given: ``offsets`` ``(2, n)``
    (top and left in the padded image, in ``0..2·padding``) and ``flips`` ``(n,)`` booleans."""
    n, c, h, w = x.shape
    if fill is None:
        padded = F.pad(x, (padding, padding, padding, padding))
    else:
        shift = fill.view(1, c, 1, 1).to(x.dtype)
        padded = F.pad(x - shift, (padding, padding, padding, padding)) + shift
    rows = (offsets[0].unsqueeze(1) + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = offsets[1].unsqueeze(1) + torch.arange(w, device=x.device)
    cols = torch.where(flips.unsqueeze(1), cols.flip(1), cols).view(n, 1, 1, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    channel = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[batch, channel, rows, cols]
