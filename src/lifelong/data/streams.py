"""Streams: a source cut into a sequence of tasks.

- Class-incremental (van de Ven and Tolias, "Three scenarios for continual learning", 2019):
  each task holds a disjoint group of classes; one head over all classes. The same streams
  are evaluated task-incrementally by masking the logits to the task's own classes.
- Domain-incremental: every task holds all classes, with inputs changed per task by a pixel
  permutation (Permuted-MNIST, Goodfellow et al., 2013) or a rotation (Rotated-MNIST, Lopez-Paz
  and Ranzato, 2017).
- Blurry (Si-Blurry, Moon et al., 2023; i-Blurry, Koh et al., 2022): classes partly shared
  between tasks, in :mod:`lifelong.data.blurry`.
- Task-free (the Gaussian schedule of Shanahan et al., 2021): one ordered stream in which
  classes come and go gradually, without task boundaries, in :mod:`lifelong.data.taskfree`.

Data stays in the source's uint8 tensors; a task is a set of indices into them, and a batch is
turned into float inputs by :meth:`Stream.inputs` (scale to [0, 1], shift the domain, normalise).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F

from lifelong.data.source import Source
from lifelong.errors import ConfigError


@dataclass
class Task:
    """One task: its classes and the indices of its train and test examples in the source.

    ``train_task`` gives each training example its own task id; it is set only for a task that
    merges several (joint training), so that domain shifts apply per example. ``ordered``: the
    order of ``train_idx`` is the stream's (a task-free stream), and the loop trains in it
    instead of shuffling each epoch.
    """

    index: int
    classes: tuple[int, ...]
    train_idx: torch.Tensor
    test_idx: torch.Tensor
    train_task: torch.Tensor | None = None
    ordered: bool = False

    @property
    def num_train(self) -> int:
        return len(self.train_idx)


class PixelPermutation:
    """A fixed random permutation of the pixels per task (Permuted-MNIST)."""

    def __init__(self, perms: torch.Tensor) -> None:
        self.perms = perms  # (T, H*W) long

    def __call__(self, x: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        return self._gather(x, self.perms, task)

    def inverse(self, x: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        """The images before the permutation: ``inverse(perm(x, t), t) == x``, so that image-space
        augmentations (a crop, a flip) see images, not shuffled pixels (:func:`lifelong.loop.Step`)."""
        if getattr(self, "_inverse", None) is None or self._inverse.device != self.perms.device:
            self._inverse = torch.argsort(self.perms, dim=1)
        return self._gather(x, self._inverse, task)

    @staticmethod
    def _gather(x: torch.Tensor, perms: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)
        if not isinstance(task, torch.Tensor) or task.dim() == 0:
            return flat[..., perms[int(task)]].view_as(x)
        index = perms[task].unsqueeze(1).expand(-1, flat.shape[1], -1)
        return flat.gather(2, index).view_as(x)

    def to(self, device: torch.device | str) -> "PixelPermutation":
        return PixelPermutation(self.perms.to(device))


class Rotation:
    """A fixed rotation per task, bilinear, zeros outside the image (Rotated-MNIST)."""

    def __init__(self, degrees: torch.Tensor) -> None:
        self.degrees = degrees  # (T,) float
        rad = degrees.double() * math.pi / 180.0
        cos, sin = torch.cos(rad), torch.sin(rad)
        zero = torch.zeros_like(cos)
        self.theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1).float()

    def __call__(self, x: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        if not isinstance(task, torch.Tensor) or task.dim() == 0:
            theta = self.theta[int(task)].expand(len(x), 2, 3)
        else:
            theta = self.theta[task]
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def to(self, device: torch.device | str) -> "Rotation":
        moved = Rotation.__new__(Rotation)
        moved.degrees, moved.theta = self.degrees.to(device), self.theta.to(device)
        return moved


@dataclass
class Stream:
    """A sequence of tasks over one source, with the way inputs are prepared.

    ``scenario`` is ``"class-il"`` (disjoint classes per task), ``"domain-il"`` (all classes in
    every task, inputs shifted per task by ``domain``), ``"blurry"`` (classes partly shared
    between tasks) or ``"task-free"`` (one ordered task without boundaries: :attr:`task_free`). ``settings``: the run settings the stream was cut with that its run's
    configuration records (a blurry stream's percentages, and the number of tasks asked for,
    which its dropped empty tasks may make larger than ``num_tasks``).
    """

    name: str
    source: Source
    tasks: list[Task]
    scenario: str
    domain: PixelPermutation | Rotation | None = None
    settings: dict = field(default_factory=dict)
    _mean: torch.Tensor | None = field(default=None, repr=False)
    _std: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        device = self.source.train_x.device
        if self.source.mean is not None:
            self._mean = torch.tensor(self.source.mean, device=device).view(1, -1, 1, 1)
            self._std = torch.tensor(self.source.std, device=device).view(1, -1, 1, 1)

    @property
    def num_classes(self) -> int:
        return self.source.num_classes

    @property
    def task_free(self) -> bool:
        """Whether the stream has no task boundaries (:mod:`lifelong.data.taskfree`): methods
        that need them are refused (:func:`lifelong.loop.check_task_free`)."""
        return self.scenario == "task-free"

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    def inputs(self, split: str, idx: torch.Tensor, task: int | torch.Tensor) -> torch.Tensor:
        """Float inputs for examples ``idx`` of ``split`` (``"train"``/``"test"``) seen as ``task``."""
        raw = self.source.train_x if split == "train" else self.source.test_x
        x = raw[idx].float().div_(255.0)
        if self.domain is not None:
            x = self.domain(x, task)
        if self._mean is not None:
            x = x.sub_(self._mean).div_(self._std)
        return x

    def pad_value(self) -> torch.Tensor:
        """Per channel, what a black pixel becomes after normalisation (padding for crops)."""
        channels = self.source.image_shape[0]
        if self._mean is None:
            return torch.zeros(channels, device=self.source.train_x.device)
        return (-self._mean / self._std).view(channels)

    def labels(self, split: str, idx: torch.Tensor) -> torch.Tensor:
        return (self.source.train_y if split == "train" else self.source.test_y)[idx]

    def task_masks(self) -> torch.Tensor:
        """Boolean ``(T, num_classes)``: which logits task-incremental evaluation keeps per task."""
        masks = torch.zeros(self.num_tasks, self.num_classes, dtype=torch.bool)
        for t in self.tasks:
            masks[t.index, list(t.classes)] = True
        return masks.to(self.source.train_x.device)

    def joint(self) -> Task:
        """All tasks' training data as one task (the joint-training upper bound)."""
        device = self.source.train_x.device
        return Task(
            index=self.num_tasks - 1,
            classes=tuple(sorted({c for t in self.tasks for c in t.classes})),
            train_idx=torch.cat([t.train_idx for t in self.tasks]),
            test_idx=torch.cat([t.test_idx for t in self.tasks]),
            train_task=torch.cat(
                [torch.full((t.num_train,), t.index, dtype=torch.long, device=device) for t in self.tasks]
            ),
        )

    def to(self, device: torch.device | str) -> "Stream":
        """The same stream with data, indices and domain shifts on ``device``."""
        tasks = [
            Task(t.index, t.classes, t.train_idx.to(device), t.test_idx.to(device),
                 None if t.train_task is None else t.train_task.to(device), t.ordered)
            for t in self.tasks
        ]
        domain = None if self.domain is None else self.domain.to(device)
        return Stream(self.name, self.source.to(device), tasks, self.scenario, domain, dict(self.settings))


def class_incremental(
    source: Source,
    num_tasks: int,
    *,
    class_order: Sequence[int] | None = None,
    name: str | None = None,
) -> Stream:
    """Cut ``source`` into ``num_tasks`` tasks of equally many classes, in ``class_order``.

    The default order is 0, 1, ..., C-1 (the order of Buzzega et al., 2020, and most of the
    literature); pass a permutation to shuffle it.
    """
    order = list(range(source.num_classes)) if class_order is None else [int(c) for c in class_order]
    if sorted(order) != list(range(source.num_classes)):
        raise ConfigError(f"class order must be a permutation of 0..{source.num_classes - 1}")
    if num_tasks < 1 or num_tasks > source.num_classes or source.num_classes % num_tasks:
        raise ConfigError(
            f"{source.num_classes} classes cannot be split into {num_tasks} tasks of equal size; "
            f"choose a number of tasks that divides {source.num_classes}"
        )
    per_task = source.num_classes // num_tasks
    tasks = []
    for t in range(num_tasks):
        classes = tuple(order[t * per_task:(t + 1) * per_task])
        group = torch.tensor(classes, device=source.train_y.device)
        tasks.append(
            Task(
                index=t,
                classes=classes,
                train_idx=torch.nonzero(torch.isin(source.train_y, group)).squeeze(1),
                test_idx=torch.nonzero(torch.isin(source.test_y, group)).squeeze(1),
            )
        )
    for t in tasks:
        if len(t.train_idx) == 0 or len(t.test_idx) == 0:
            split = "training" if len(t.train_idx) == 0 else "test"
            raise ConfigError(f"task {t.index + 1} (classes {list(t.classes)}) has no {split} examples in "
                              f"{source.name}; check the data files")
    return Stream(name or f"split-{source.name}", source, tasks, "class-il")


MAX_DOMAIN_TASKS = 1000


def _all_classes_tasks(source: Source, num_tasks: int) -> list[Task]:
    if not 1 <= num_tasks <= MAX_DOMAIN_TASKS:
        raise ConfigError(f"the number of tasks must lie in 1..{MAX_DOMAIN_TASKS}, got {num_tasks}")
    if len(source.train_y) == 0 or len(source.test_y) == 0:
        raise ConfigError(f"{source.name} has no {'training' if len(source.train_y) == 0 else 'test'} examples")
    train_idx = torch.arange(len(source.train_y), device=source.train_y.device)
    test_idx = torch.arange(len(source.test_y), device=source.test_y.device)
    classes = tuple(range(source.num_classes))
    return [Task(t, classes, train_idx, test_idx) for t in range(num_tasks)]


def permuted(source: Source, num_tasks: int, generator: torch.Generator) -> Stream:
    """Domain-incremental tasks, each a fixed random permutation of the pixels (from ``generator``)."""
    tasks = _all_classes_tasks(source, num_tasks)
    pixels = source.image_shape[1] * source.image_shape[2]
    perms = torch.stack([torch.randperm(pixels, generator=generator) for _ in range(num_tasks)])
    return Stream(f"permuted-{source.name}", source, tasks, "domain-il",
                  PixelPermutation(perms.to(source.train_x.device)))


def rotated(source: Source, num_tasks: int, generator: torch.Generator, max_degrees: float = 180.0) -> Stream:
    """Domain-incremental tasks, each a fixed rotation drawn uniformly from [0, max_degrees)."""
    tasks = _all_classes_tasks(source, num_tasks)
    degrees = torch.rand(num_tasks, generator=generator, dtype=torch.float64) * max_degrees
    return Stream(f"rotated-{source.name}", source, tasks, "domain-il", Rotation(degrees).to(source.train_x.device))
