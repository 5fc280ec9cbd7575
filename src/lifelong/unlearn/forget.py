"""Forget sets: which training examples an unlearning request names.

A forget set is written as one string (the ``--forget`` of a later ``lifelong unlearn``):

- ``classes:3,7``: every training example of classes 3 and 7 (full-class forgetting);
- ``random:0.01``: a seeded uniform draw of ``round(0.01 · N)`` of the ``N`` training examples
  (random-sample forgetting; the draw comes from :func:`lifelong.seeding.numpy_generator`);
- ``indices:FILE``: the training examples listed in ``FILE``: one integer per line (blank lines
  and ``#`` comments ignored), or a ``.npy`` / ``.pt`` array of integers.

:func:`forget_mask` turns a spec into a boolean mask over the training set. Every mistake is one
line (:class:`lifelong.errors.ConfigError`): bad syntax, a fraction outside (0, 1), a class or
index outside the training set, an empty forget set, or one that leaves nothing to retain
(every class, or every example).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lifelong.errors import ConfigError
from lifelong.seeding import numpy_generator

KINDS = ("classes", "random", "indices")
SYNTAX = "write `classes:3,7`, `random:0.01` or `indices:FILE`"


@dataclass(frozen=True)
class ForgetSpec:
    """A parsed forget-set string: ``kind`` (one of :data:`KINDS`) and its value: the class
    numbers, the fraction, or the file's path."""

    kind: str
    classes: tuple[int, ...] = ()
    fraction: float = 0.0
    path: str = ""

    def __str__(self) -> str:
        if self.kind == "classes":
            return "classes:" + ",".join(str(c) for c in self.classes)
        return f"random:{self.fraction:g}" if self.kind == "random" else f"indices:{self.path}"


def parse_forget_spec(text: str) -> ForgetSpec:
    """``classes:3,7``, ``random:0.01`` or ``indices:FILE`` as a :class:`ForgetSpec`."""
    kind, sep, value = str(text).partition(":")
    kind, value = kind.strip(), value.strip()
    if not sep or kind not in KINDS or not value:
        raise ConfigError(f"forget set {text!r} is not understood: {SYNTAX}")
    if kind == "classes":
        return ForgetSpec("classes", classes=_class_list(text, value))
    if kind == "random":
        return ForgetSpec("random", fraction=_fraction(text, value))
    return ForgetSpec("indices", path=value)


def _class_list(text: str, value: str) -> tuple[int, ...]:
    parts = [p.strip() for p in value.split(",")]
    try:
        classes = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(f"forget set {text!r}: classes must be integers separated by commas, "
                          f"as in `classes:3,7`") from None
    return tuple(sorted(set(classes)))


def _fraction(text: str, value: str) -> float:
    try:
        fraction = float(value)
    except ValueError:
        raise ConfigError(f"forget set {text!r}: the fraction must be a number, as in `random:0.01`") from None
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"forget set {text!r}: the fraction must lie strictly between 0 and 1, got {value}")
    return fraction


def read_indices(path: str | Path) -> torch.Tensor:
    """The integers of an index file (text, ``.npy`` or ``.pt``) as an int64 tensor."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"forget set: index file {str(path)!r} not found")
    try:
        if path.suffix == ".npy":
            values = torch.from_numpy(np.asarray(np.load(path, allow_pickle=False)))
        elif path.suffix == ".pt":
            values = torch.as_tensor(torch.load(path, weights_only=True))
        else:
            values = torch.tensor(_text_indices(path), dtype=torch.int64)
    except ConfigError:
        raise
    except Exception as exc:  # unreadable arrays: numpy's and torch's many error types
        raise ConfigError(f"forget set: cannot read index file {str(path)!r} ({type(exc).__name__})") from None
    if values.is_floating_point() or values.is_complex() or values.dtype == torch.bool:
        raise ConfigError(f"forget set: index file {str(path)!r} must hold integers, got {values.dtype}")
    return values.reshape(-1).to(torch.int64)


def _text_indices(path: Path) -> list[int]:
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            out.append(int(line))
        except ValueError:
            raise ConfigError(f"forget set: {path}:{number}: expected one integer per line, got {line!r}") from None
    return out


def forget_mask(spec: str | ForgetSpec, train_y: torch.Tensor, num_classes: int, seed: int = 0) -> torch.Tensor:
    """Boolean mask over the training set (``train_y``'s order): ``True`` for each example to forget.

    ``random:`` draws its examples with the generator ``(seed, "unlearn-forget")``.
    """
    spec = parse_forget_spec(spec) if isinstance(spec, str) else spec
    n = len(train_y)
    mask = torch.zeros(n, dtype=torch.bool, device=train_y.device)
    if spec.kind == "classes":
        bad = [c for c in spec.classes if not 0 <= c < num_classes]
        if bad:
            raise ConfigError(f"forget set {spec}: class {bad[0]} is outside 0..{num_classes - 1}")
        present = set(torch.unique(train_y).tolist())
        if present <= set(spec.classes):
            raise ConfigError(f"forget set {spec} covers every class of the training set: nothing would be retained")
        mask = torch.isin(train_y, torch.tensor(spec.classes, device=train_y.device))
    elif spec.kind == "random":
        count = int(round(spec.fraction * n))
        chosen = numpy_generator(seed, "unlearn-forget").choice(n, size=count, replace=False)
        mask[torch.as_tensor(chosen, dtype=torch.int64, device=train_y.device)] = True
    else:
        idx = read_indices(spec.path)
        outside = idx[(idx < 0) | (idx >= n)]
        if len(outside):
            raise ConfigError(f"forget set {spec}: index {int(outside[0])} is outside the training set (0..{n - 1})")
        mask[idx.to(train_y.device)] = True
    _check_sizes(spec, mask)
    return mask


def _check_sizes(spec: ForgetSpec, mask: torch.Tensor) -> None:
    count = int(mask.sum())
    if count == 0:
        raise ConfigError(f"forget set {spec} is empty: it names no training example")
    if count == len(mask):
        raise ConfigError(f"forget set {spec} covers the whole training set: nothing would be retained")


def forget_indices(mask: torch.Tensor) -> torch.Tensor:
    """The positions of a forget mask, as an int64 tensor in increasing order."""
    return mask.nonzero().flatten()


def forget_digest(mask: torch.Tensor) -> str:
    """16 hex digits of the SHA-256 of the mask's positions (int64, increasing): which examples a
    forget set names, so that two runs or an unlearning and its retrain can be checked to
    forget the same ones (``forget_digest`` in their configurations)."""
    return hashlib.sha256(forget_indices(mask).cpu().to(torch.int64).numpy().tobytes()).hexdigest()[:16]
