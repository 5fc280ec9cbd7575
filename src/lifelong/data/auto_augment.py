"""Strong augmentation of single images by learned or random policies: AutoAugment (Cubuk et
al., "AutoAugment: learning augmentation strategies from data", CVPR 2019; its CIFAR-10 policy)
and RandAugment (Cubuk et al., "RandAugment", CVPR Workshops 2020), from
``torchvision.transforms.v2``, on the uint8 image of each normalised float input.

Each image draws its own sub-policy (AutoAugment) or operations (RandAugment), as the reference
code of view-batch replay does with PIL images (``utils/training.py`` of hankyul2/ViewBatchModel,
``reaugment``). torchvision draws from torch's global CPU generator; :func:`strong_augment` seeds
it from the caller's generator for the call and puts its state back, so that the draws follow
the run's seed and nothing else's random numbers move. Per image, in Python: about 3 ms for 40
images of 28x28 on one CPU core (0.07 ms each), which is small beside a ResNet-18 step but several
times the step of the MNIST MLP (docs/METHODS.md).
"""
from __future__ import annotations

import torch

POLICIES = ("autoaugment", "randaugment")

# RandAugment's magnitude: the reference uses timm's ``rand-m7-mstd0.5-inc1`` (two operations of
# magnitude 7 on timm's 0..10 scale, jittered with std 0.5); torchvision's RandAugment has 31
# magnitude bins and no jitter, so 7/10 of its range is bin 21.
RANDAUGMENT_MAGNITUDE = 21


def policy_transform(policy: str):
    """The torchvision transform of ``policy`` (``"autoaugment"`` or ``"randaugment"``)."""
    from torchvision.transforms import v2

    if policy == "autoaugment":
        return v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
    if policy == "randaugment":
        return v2.RandAugment(num_ops=2, magnitude=RANDAUGMENT_MAGNITUDE, num_magnitude_bins=31)
    raise ValueError(f"unknown augmentation policy {policy!r}; choose one of: {', '.join(POLICIES)}")


def to_uint8(x: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None) -> torch.Tensor:
    """Normalised float images back to uint8 pixels (rounded, clipped to 0..255)."""
    if mean is not None:
        x = x * std + mean
    return x.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)


def from_uint8(x: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None) -> torch.Tensor:
    x = x.float().div_(255.0)
    return x if mean is None else x.sub_(mean).div_(std)


def strong_augment(x: torch.Tensor, transform, generator: torch.Generator, mean: torch.Tensor | None = None,
                   std: torch.Tensor | None = None) -> torch.Tensor:
    """``transform`` applied to each image of the normalised float batch ``x`` (``mean`` and
    ``std``: ``(1, C, 1, 1)`` or ``None``), its random draws seeded from ``generator`` (a CPU
    generator, advanced by one draw per call)."""
    if len(x) == 0:
        return x
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    saved = torch.default_generator.get_state()
    try:
        torch.default_generator.manual_seed(seed)
        pixels = to_uint8(x, mean, std)
        out = torch.stack([transform(image) for image in pixels])
    finally:
        torch.default_generator.set_state(saved)
    return from_uint8(out, mean, std)
