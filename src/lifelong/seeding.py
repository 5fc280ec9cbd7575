"""One seed controls everything: each consumer of randomness gets its own generator derived
from the run's seed and a name, so adding a consumer never shifts another's random numbers."""
from __future__ import annotations

import hashlib

import numpy as np
import torch


def derive(seed: int, name: str) -> int:
    """A 63-bit seed derived from ``seed`` and ``name`` (stable across platforms and versions)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def torch_generator(seed: int, name: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded from ``(seed, name)``."""
    g = torch.Generator(device=device)
    g.manual_seed(derive(seed, name))
    return g


def numpy_generator(seed: int, name: str) -> np.random.Generator:
    """A numpy generator (PCG64) seeded from ``(seed, name)``."""
    return np.random.default_rng(derive(seed, name))
