"""Task-free streams: one stream of all training examples in which the classes come and go
gradually, with no task boundaries at all.

The schedule is the Gaussian schedule of Shanahan, Kaplanis and Mitrović, "Encoders and
ensembles for task-free continual learning" (arXiv:2105.13327, 2021), as its reference code
writes it: ``gaussian_schedule`` in ``continual_learning/encoders_and_ensembles.ipynb`` of
``google-deepmind/deepmind-research``, read and rewritten here, not copied. There, the classes
are put in a random order; class ``k`` of that order has its peak at ``peak_every // 2 + k *
peak_every`` of a schedule of 1000 batches (``peak_every = 1000 // C``); each episode of 5
batches holds class ``k`` with probability ``exp(-(t - peak_k)^2 / (2 * 50^2))`` (``t``: the
episode's first batch), drawn again until at least one class is in, and its batches are drawn
from the training examples of the classes it holds.

Here the same Gaussians place every training example in the stream once:

1. The classes are shuffled (``torch.randperm`` of the run's generator). Class ``c`` at rank
   ``k`` of that order has its centre at ``k + 1/2``, in units of the distance between two
   neighbouring centres (the reference's ``peak_every``; so the centres are the reference's
   peaks divided by ``peak_every``).
2. Every training example of class ``c`` gets a time ``centre_c + width * z``, ``z ~ N(0, 1)``
   (one draw per example, in the source's order, from the same generator).
3. The stream is all training examples sorted by their time: a permutation of the training set,
   in which the share of class ``c`` at time ``t`` is proportional to its number of examples
   times ``N(t; centre_c, width)``. Neighbouring classes overlap: with ``width = w``, a fraction
   ``Φ(-1 / (2w))`` of a class's examples lie beyond the midpoint to the next centre (16% at the
   reference's 0.5, under 0.1% at 0.15).

``width`` is a fraction of the distance between centres. Its default is the reference's:
a standard deviation of 50 batches over centres ``1000 // C`` batches apart, so
``50 / (1000 // C)``: 0.5 for 10 classes (the paper's MNIST and CIFAR-10 setting), 5 for 100.

Deliberate differences from the reference (also in docs/METHODS.md):

- *Every example once.* The reference draws its batches from the examples of each episode's
  classes with replacement across episodes (a shuffled, repeated ``tf.data`` set per episode);
  here the stream is a permutation of the training set, so a run sees each example once per
  epoch, as the other streams do.
- *Per-example times instead of per-episode class sets.* The reference decides which classes an
  episode holds by one Bernoulli draw per class and episode, then draws uniformly among their
  examples; here each example's place comes from its own Gaussian draw. The expected share of
  a class over time follows the same Gaussians (up to the reference's per-episode weighting by
  the other classes' sizes); the reference's curves are truncated at the schedule's ends, ours
  are not (the first and last classes' tails come first and last).

The stream is ONE training task (:attr:`Task.ordered`: the loop keeps its order, it does not
shuffle it) whose test set is the test examples of every class with training examples; a run
evaluates once, at the stream's end (a 1x1 accuracy matrix: forgetting and backward transfer
are undefined). Methods whose components need task boundaries are refused before training
(:func:`lifelong.loop.check_task_free`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from lifelong.data.source import Source
from lifelong.data.streams import Stream, Task
from lifelong.errors import ConfigError

SCENARIO = "task-free"
# the run setting of a task-free stream (a RunConfig field, lifelong.config.UNSET_LEFT_OUT); None: the
# reference's width for the stream's number of classes (reference_width)
DEFAULTS: dict[str, Any] = {"task_free_width": None}
REFERENCE_SCHEDULE = 1000  # batches in the reference's schedule
REFERENCE_WIDTH = 50  # its Gaussians' standard deviation, in batches


def reference_width(num_classes: int) -> float:
    """The reference's width as a fraction of the distance between centres:
    ``50 / (1000 // C)`` (0.5 for 10 classes, 5 for 100; beyond 1000 classes, 50)."""
    return REFERENCE_WIDTH / max(1, REFERENCE_SCHEDULE // max(1, int(num_classes)))


def check_width(width: Any) -> None:
    """Refuse a width no schedule can have, in one line (``None``: the default)."""
    if width is None:
        return
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width) or width <= 0:
        raise ConfigError(f"`task-free-width` must be a positive number (the Gaussians' standard deviation, as a "
                          f"fraction of the distance between two class centres), got {width!r}")


@dataclass(frozen=True)
class TaskFreePlan:
    """The schedule as drawn: ``order`` the classes by centre; ``centres[c]`` class ``c``'s centre;
    ``times[i]`` training example ``i``'s time; ``train`` the examples (source indices) sorted by time."""

    order: list[int]
    centres: torch.Tensor
    times: torch.Tensor
    train: torch.Tensor


def centres_of(order: list[int]) -> torch.Tensor:
    """Step 1: ``centres[c] = k + 1/2`` for class ``c`` at rank ``k`` of ``order``."""
    centres = torch.empty(len(order), dtype=torch.float64)
    centres[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order), dtype=torch.float64) + 0.5
    return centres


def plan(labels: torch.Tensor, num_classes: int, generator: torch.Generator, width: float | None = None) -> TaskFreePlan:
    """Steps 1-3 on training ``labels`` (the source's order), with ``width`` (``None``: the reference's)."""
    check_width(width)
    width = reference_width(num_classes) if width is None else float(width)
    labels = labels.cpu().long()
    order = torch.randperm(num_classes, generator=generator).tolist()
    centres = centres_of(order)
    noise = torch.randn(len(labels), generator=generator, dtype=torch.float64)
    times = centres[labels] + width * noise
    return TaskFreePlan(order, centres, times, torch.argsort(times, stable=True))


def task_free(source: Source, generator: torch.Generator, *, width: float | None = None,
              name: str | None = None) -> Stream:
    """The task-free stream of ``source``: all training examples in the Gaussian schedule's order
    (see the module's description) as one ordered task, tested on every class it trains."""
    if len(source.train_y) == 0:
        raise ConfigError(f"{source.name} has no training examples")
    resolved = reference_width(source.num_classes) if width is None else width
    cut = plan(source.train_y, source.num_classes, generator, resolved)
    device = source.train_y.device
    classes = tuple(torch.unique(source.train_y.cpu()).tolist())
    test_y = source.test_y.cpu()
    test_idx = torch.nonzero(torch.isin(test_y, torch.tensor(classes, dtype=test_y.dtype))).squeeze(1)
    if len(test_idx) == 0:
        raise ConfigError(f"{source.name} has no test examples of the classes it trains; check the data files")
    task = Task(0, classes, cut.train.to(device), test_idx.to(device), ordered=True)
    return Stream(name or f"task-free-{source.name}", source, [task], SCENARIO,
                  settings={"task_free_width": float(resolved)})
