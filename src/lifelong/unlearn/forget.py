"""Forget sets: which training examples an unlearning request names.

A forget set is written as one string (the ``--forget`` of a later ``lifelong unlearn``):

- ``classes:3,7``: every training example of classes 3 and 7 (full-class forgetting);
- ``random:0.01``: a seeded uniform draw of ``round(0.01 · N)`` of the ``N`` training examples
  (random-sample forgetting; the draw comes from :func:`lifelong.seeding.numpy_generator`);
- ``indices:FILE``: the training examples listed in ``FILE``: one integer per line (blank lines
  and ``#`` comments ignored), or a ``.npy`` / ``.pt`` array of integers;
- ``corrupt:0.05`` or ``corrupt:0.05:SEED``: a corruption (the RESTOR-style scenario, Rezaei et
  al., TMLR 2025): ``round(0.05 · N)`` training examples drawn uniformly without replacement and
  each given a wrong label, both from the generator ``(SEED, "unlearn-corrupt")`` (``SEED``: the
  run's seed when not written): first the draw, then per drawn example (in increasing position)
  an offset ``k`` uniform in ``1..C-1``; the wrong label is ``(y + k) mod C``, uniform among the
  other classes (:func:`corruption`). The forget set is the drawn examples; a model trained on
  their wrong labels is the corrupted one, and the run that leaves them out its retrain.

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

KINDS = ("classes", "random", "indices", "corrupt")
SYNTAX = "write `classes:3,7`, `random:0.01`, `indices:FILE` or `corrupt:0.05[:SEED]`"


@dataclass(frozen=True)
class ForgetSpec:
    """A parsed forget-set string: ``kind`` (one of :data:`KINDS`) and its value: the class
    numbers, the fraction (and, for ``corrupt``, the seed written, else ``None``), or the file's path."""

    kind: str
    classes: tuple[int, ...] = ()
    fraction: float = 0.0
    path: str = ""
    seed: int | None = None

    def __str__(self) -> str:
        if self.kind == "classes":
            return "classes:" + ",".join(str(c) for c in self.classes)
        if self.kind == "corrupt":
            return f"corrupt:{self.fraction:g}" + ("" if self.seed is None else f":{self.seed}")
        return f"random:{self.fraction:g}" if self.kind == "random" else f"indices:{self.path}"


def parse_forget_spec(text: str) -> ForgetSpec:
    """``classes:3,7``, ``random:0.01``, ``indices:FILE`` or ``corrupt:0.05[:SEED]`` as a :class:`ForgetSpec`."""
    kind, sep, value = str(text).partition(":")
    kind, value = kind.strip(), value.strip()
    if not sep or kind not in KINDS or not value:
        raise ConfigError(f"forget set {text!r} is not understood: {SYNTAX}")
    if kind == "classes":
        return ForgetSpec("classes", classes=_class_list(text, value))
    if kind == "random":
        return ForgetSpec("random", fraction=_fraction(text, value))
    if kind == "corrupt":
        return _corrupt_spec(text, value)
    return ForgetSpec("indices", path=value)


def parse_relabel_spec(text: str) -> ForgetSpec:
    """The run setting ``relabel``: a ``corrupt:F[:SEED]`` spec, or one line."""
    kind = str(text).partition(":")[0].strip()
    if kind != "corrupt":
        raise ConfigError(f"`relabel` {text!r} is not a corruption: write `corrupt:0.01` or `corrupt:0.01:SEED`")
    try:
        return parse_forget_spec(text)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("forget set", "`relabel`", 1)) from None


def relabel_digest(idx: torch.Tensor, wrong: torch.Tensor) -> str:
    """16 hex digits of the SHA-256 of a corruption's positions then its wrong labels (int64):
    which examples a run trained on which wrong labels (``relabel_digest``)."""
    values = torch.cat([idx.cpu().to(torch.int64), wrong.cpu().to(torch.int64)])
    return hashlib.sha256(values.numpy().tobytes()).hexdigest()[:16]


def _corrupt_spec(text: str, value: str) -> ForgetSpec:
    fraction, sep, seed = value.partition(":")
    if not sep:
        return ForgetSpec("corrupt", fraction=_fraction(text, fraction.strip()))
    try:
        number = int(seed.strip())
    except ValueError:
        raise ConfigError(f"forget set {text!r}: the seed must be an integer >= 0, as in `corrupt:0.05:3`") from None
    if number < 0:
        raise ConfigError(f"forget set {text!r}: the seed must be an integer >= 0, got {number}")
    return ForgetSpec("corrupt", fraction=_fraction(text, fraction.strip()), seed=number)


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
    if spec.kind == "corrupt":
        mask[corruption(spec, train_y, num_classes, seed)[0]] = True
    elif spec.kind == "classes":
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


def corruption(spec: str | ForgetSpec, train_y: torch.Tensor, num_classes: int, seed: int = 0
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``corrupt:`` spec's examples (positions, increasing) and their wrong labels, as the
    module docstring says: generator ``(spec.seed, "unlearn-corrupt")`` (``seed`` when the spec
    writes none), ``round(f · N)`` positions drawn without replacement, then one offset
    ``k ∈ 1..C-1`` per position, the wrong label ``(y + k) mod C``."""
    spec = parse_forget_spec(spec) if isinstance(spec, str) else spec
    if spec.kind != "corrupt":
        raise ConfigError(f"forget set {spec} is not a corruption (`corrupt:FRACTION[:SEED]`)")
    if num_classes < 2:
        raise ConfigError(f"forget set {spec}: a corruption needs at least two classes")
    n = len(train_y)
    gen = numpy_generator(seed if spec.seed is None else spec.seed, "unlearn-corrupt")
    chosen = np.sort(gen.choice(n, size=int(round(spec.fraction * n)), replace=False))
    offsets = gen.integers(1, num_classes, size=len(chosen))
    idx = torch.as_tensor(chosen, dtype=torch.int64, device=train_y.device)
    wrong = (train_y[idx] + torch.as_tensor(offsets, dtype=train_y.dtype, device=train_y.device)) % num_classes
    return idx, wrong


def corrupt_labels(spec: str | ForgetSpec, train_y: torch.Tensor, num_classes: int, seed: int = 0) -> torch.Tensor:
    """``train_y`` with a ``corrupt:`` spec's examples given their wrong labels (:func:`corruption`):
    the labels a corrupted model is trained on."""
    idx, wrong = corruption(spec, train_y, num_classes, seed)
    labels = train_y.clone()
    labels[idx] = wrong
    return labels


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
