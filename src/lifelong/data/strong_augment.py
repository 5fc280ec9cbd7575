"""The strong augmentation of contrastive continual learning, on whole batches.

PCR and HPCR (Lin et al., CVPR 2023 and TNNLS 2025; ``utils/setup_elements.py``,
``transforms_aug`` of FelixHuiweiLin/PCR) and SCR (Mai et al., 2021) augment each image with
torchvision's PIL transforms, one image at a time::

    RandomResizedCrop(size, scale=(0.2, 1.0))          # ratio (3/4, 4/3), bilinear
    RandomHorizontalFlip()                             # p = 0.5
    RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8)
    RandomGrayscale(p=0.2)

on images in [0, 1] (no normalisation). :func:`strong_augment` does the same to a batch of
float tensors at once, each image with its own random parameters, all drawn from one
``torch.Generator`` in a fixed number of calls (so the draws do not depend on the pixels):

- the crop follows torchvision's ``RandomResizedCrop.get_params`` (ten tries of a scale and a
  log-uniform ratio, the first that fits; else the central crop of the clamped ratio), and is
  resampled with ``affine_grid``/``grid_sample`` (bilinear, the box's edge pixels repeated, as
  torchvision's tensor ``resized_crop``), with the flip folded into the same affine map;
- colour jitter applies brightness, contrast, saturation and hue in a random order per image
  (as torchvision's ``ColorJitter``), with factors uniform in ``[1 - 0.4, 1 + 0.4]`` and a hue
  shift uniform in ``[-0.1, 0.1]``;
- grayscale uses the ITU-R 601 weights (0.299, 0.587, 0.114) and repeats the result over the
  channels.

Differences from the PIL pipeline: values stay floats (PIL rounds to 8 bits after every
operation), and PIL's bilinear resize of the crop and ``grid_sample`` place samples alike
(pixel centres) but PIL's contrast takes the mean of the grey image rounded to an integer.

On one-channel images (MNIST) saturation, hue and grayscale change nothing (torchvision's
tensor functions return a one-channel image unchanged too): colour jitter reduces to brightness
and contrast. The random numbers are drawn all the same, so a stream of draws does not depend
on the number of channels.

Inputs that were normalised (``(x - mean) / std``) are given with their ``mean`` and ``std``:
the augmentation undoes the normalisation, works in [0, 1] and normalises again.

With ``padding`` the crop is a padded random crop of the image's own size instead (PRD's
``kornia.augmentation.RandomCrop(size, padding=4, fill=-1)`` on images in [-1, 1], in
naderAsadi/Probing-Continual-Learning ``data/cifar.py``): the image, in [0, 1], padded with
black (0) on every side, a window of the original size at a uniform offset, then the flip
(:func:`lifelong.data.transforms.crop_flip`). A hue strength of 0 leaves the hue alone, as
torchvision's ``ColorJitter(hue=0)`` does.

:data:`VIEW_AUGMENTS` names the two settings a recipe's ``views`` chooses from.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from lifelong.data.transforms import crop_flip

GRAY_WEIGHTS = (0.299, 0.587, 0.114)
TRIES = 10  # torchvision's RandomResizedCrop.get_params


def _uniform(n: int, shape: tuple[int, ...], low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand((n, *shape), generator=generator, device=generator.device)


def crop_boxes(n: int, height: int, width: int, generator: torch.Generator, scale: Sequence[float] = (0.2, 1.0),
               ratio: Sequence[float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """``(n, 4)`` crop boxes ``(top, left, h, w)`` in pixels, as torchvision's
    ``RandomResizedCrop.get_params``: up to ten tries of an area ``U(scale) · H · W`` and a ratio
    ``exp(U(log ratio))``, ``w = round(sqrt(area · ratio))``, ``h = round(sqrt(area / ratio))``;
    the first try that fits the image is taken, placed uniformly (``top ~ U{0..H-h}``); when none
    fits, the central crop of the whole image with its ratio clamped to ``ratio``."""
    area = height * width * _uniform(n, (TRIES,), scale[0], scale[1], generator)
    log_ratio = _uniform(n, (TRIES,), math.log(ratio[0]), math.log(ratio[1]), generator)
    place = torch.rand((n, TRIES, 2), generator=generator, device=generator.device)
    aspect = torch.exp(log_ratio)
    w = torch.round(torch.sqrt(area * aspect))
    h = torch.round(torch.sqrt(area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.int8).argmax(dim=1, keepdim=True)  # the first try that fits (0 if none)
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
    u = place.gather(1, first.unsqueeze(2).expand(-1, 1, 2)).squeeze(1)
    top = torch.floor(u[:, 0] * (height - h + 1)).clamp(max=height - h)
    left = torch.floor(u[:, 1] * (width - w + 1)).clamp(max=width - w)
    # no try fits: the central crop, its ratio clamped (torchvision's fallback)
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        fw, fh = round(height * max(ratio)), height
    else:
        fw, fh = width, height
    fallback = torch.tensor([(height - fh) // 2, (width - fw) // 2, fh, fw], dtype=w.dtype, device=w.device)
    boxes = torch.stack([top, left, h, w], dim=1)
    return torch.where(fits.any(dim=1, keepdim=True), boxes, fallback)


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Each image's box ``(top, left, h, w)`` resampled (bilinear) to the image's size, mirrored
    left to right where ``flip``: one ``affine_grid``/``grid_sample`` for the batch."""
    n, _, height, width = x.shape
    boxes = boxes.to(x.device, x.dtype)
    top, left, h, w = boxes.unbind(1)
    sx = w / width * torch.where(flip.to(x.device), -1.0, 1.0).to(x.dtype)
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = sx  # output column u in [-1, 1] -> input column of the box (align_corners=False)
    theta[:, 0, 2] = (2 * left + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * top + h) / height - 1
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # samples stay within the box's pixel centres: its edge pixels repeat, as when the crop is cut
    # out first and then resized (torchvision, PIL)
    low = torch.stack([(2 * left + 1) / width - 1, (2 * top + 1) / height - 1], dim=1).view(n, 1, 1, 2)
    high = torch.stack([(2 * (left + w) - 1) / width - 1, (2 * (top + h) - 1) / height - 1], dim=1).view(n, 1, 1, 2)
    grid = torch.maximum(torch.minimum(grid, high), low)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """``(n, 1, H, W)`` luma of RGB images (a one-channel image is its own)."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``clamp(factor · x + (1 − factor) · other, 0, 1)`` with one factor per image."""
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * other).clamp(0.0, 1.0)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, torch.zeros_like(x), factor)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the mean of each image's grey version."""
    return _blend(x, grayscale(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with each image's grey version (no change to a one-channel image)."""
    if x.shape[1] == 1:
        return x
    return _blend(x, grayscale(x), factor)


def _rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    flat = maxc == minc
    chroma = maxc - minc
    s = chroma / torch.where(flat, torch.ones_like(maxc), maxc)
    div = torch.where(flat, torch.ones_like(chroma), chroma)
    rc, gc, bc = (maxc - r) / div, (maxc - g) / div, (maxc - b) / div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack([h, s, maxc], dim=1)


def _hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0)
    sector = i.unsqueeze(1) == torch.arange(6, device=i.device).view(1, -1, 1, 1)  # (n, 6, H, W)
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    channels = []
    for c in range(3):
        choices = torch.stack([row[c] for row in table], dim=1)  # (n, 6, H, W)
        channels.append((choices * sector).sum(dim=1))
    return torch.stack(channels, dim=1)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate each image's hue by ``shift`` (a fraction of the colour circle, in [-0.5, 0.5])
    in HSV space (no change to a one-channel image)."""
    if x.shape[1] == 1:
        return x
    hsv = _rgb_to_hsv(x)
    h = torch.remainder(hsv[:, 0] + shift.view(-1, 1, 1), 1.0)
    return _hsv_to_rgb(torch.stack([h, hsv[:, 1], hsv[:, 2]], dim=1))


_JITTERS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def strong_augment(x: torch.Tensor, generator: torch.Generator, *, scale: Sequence[float] = (0.2, 1.0),
                   ratio: Sequence[float] = (3 / 4, 4 / 3), flip_p: float = 0.5,
                   jitter: Sequence[float] = (0.4, 0.4, 0.4, 0.1), jitter_p: float = 0.8, grayscale_p: float = 0.2,
                   mean: torch.Tensor | Sequence[float] | None = None,
                   std: torch.Tensor | Sequence[float] | None = None, padding: int | None = None) -> torch.Tensor:
    """A strongly augmented copy of the batch ``x`` (``(n, C, H, W)`` floats): random resized
    crop, horizontal flip, colour jitter with probability ``jitter_p`` (brightness, contrast,
    saturation, hue in a random order) and grayscale with probability ``grayscale_p``, each
    image with its own parameters (see the module docstring). ``jitter`` holds the brightness,
    contrast and saturation strengths and the largest hue shift. ``mean``/``std`` (per channel):
    the normalisation of ``x``, undone for the augmentation and applied again after it.
    ``padding``: a padded random crop (black padding of this many pixels) replaces the resized
    crop (``scale`` and ``ratio`` are then unused). ``generator`` should live on ``x``'s device."""
    if x.dim() != 4:
        raise ValueError(f"strong_augment needs a batch of images (n, C, H, W), got shape {tuple(x.shape)}")
    n, c, height, width = x.shape
    g = generator
    # every draw first, in a fixed order and number: the same generator state gives the same images
    if padding is None:
        boxes = crop_boxes(n, height, width, g, scale, ratio)
    else:
        offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=g, device=g.device)
    flip = torch.rand(n, generator=g, device=g.device) < flip_p
    do_jitter = torch.rand(n, generator=g, device=g.device) < jitter_p
    order = torch.rand((n, 4), generator=g, device=g.device).argsort(dim=1)  # a random permutation per image
    factors = [_uniform(n, (), max(0.0, 1 - s), 1 + s, g) for s in jitter[:3]]
    hue = _uniform(n, (), -jitter[3], jitter[3], g)
    do_gray = torch.rand(n, generator=g, device=g.device) < grayscale_p
    do_jitter, order, do_gray = do_jitter.to(x.device), order.to(x.device), do_gray.to(x.device)
    params = [p.to(x.device, x.dtype) for p in (*factors, hue)]

    if mean is not None:
        mean_ = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std_ = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        x = x * std_ + mean_
    out = resized_crop(x, boxes, flip) if padding is None else crop_flip(x, padding, offsets.to(x.device),
                                                                        flip.to(x.device))
    for position in range(4):  # the op at this position of each image's order
        for op, (fn, p) in enumerate(zip(_JITTERS, params)):
            if op == 3 and jitter[3] == 0:  # no hue jitter: torchvision's ColorJitter(hue=0) skips it
                continue
            chosen = (order[:, position] == op) & do_jitter
            out = torch.where(chosen.view(-1, 1, 1, 1), fn(out, p), out)
    out = torch.where(do_gray.view(-1, 1, 1, 1), grayscale(out).expand(-1, c, -1, -1), out)
    if mean is not None:
        out = (out - mean_) / std_
    return out


# A recipe's ``views`` (:mod:`lifelong.methods`) -> the options of :func:`strong_augment`.
VIEW_AUGMENTS: dict[str, dict] = {
    # PCR, HPCR (FelixHuiweiLin/PCR ``transforms_aug``): SimCLR's resized crop, jitter with hue 0.1
    "strong": {},
    # PRD (naderAsadi/Probing-Continual-Learning ``data/cifar.py``, ``train_transforms``):
    # RandomCrop(padding=4), RandomHorizontalFlip, ColorJitter(0.4, 0.4, 0.4, p=0.8), RandomGrayscale(0.2)
    "padded": {"padding": 4, "jitter": (0.4, 0.4, 0.4, 0.0)},
}
