"""Si-Blurry and i-Blurry streams: tasks whose classes partly overlap, with random sizes.

Si-Blurry is the "stochastic incremental blurry" scenario of Moon et al., "Online Class
Incremental Learning on Stochastic Blurry Task Boundary via Mask and Visual Prompt Tuning"
(ICCV 2023); i-Blurry, its fixed-size predecessor, is Koh et al., "Online Continual Learning on
Class Incremental Blurry Task Configuration with Anytime Inference" (ICLR 2022). The algorithm
follows the reference code, ``OnlineSampler`` in ``utils/online_sampler.py`` of
``KHU-AGI/Si-Blurry`` (commit ``c90d6d7``), read and rewritten here, not copied:

1. The classes are shuffled. The first ``disjoint`` percent of them (rounded down, then down to a
   multiple of the number of tasks T) are *disjoint* classes, the others *blurry* classes.
2. Each group is cut into T tasks: Si-Blurry at T-1 cut points drawn uniformly from
   ``0..n-1`` and sorted (so tasks have random, possibly zero, numbers of classes, and the last
   task always has at least one class of each non-empty group); i-Blurry into T equal groups.
3. Every training example goes to the task of its class.
4. Blurry mixing, Si-Blurry: ``mix`` percent of all blurry-class examples (rounded down) are
   shared out over the tasks at T-1 sorted random cut points; each task gives up that many of
   its blurry-class examples (the first ones in the source's order, as many as it has), the
   given-up examples are pooled and shuffled, and handed back to the tasks in slices of the same
   sizes, in task order. i-Blurry: each task gives up ``mix`` percent of its own blurry-class
   examples (rounded down) and gets back an equal share of the shuffled pool.
5. Each task's examples (disjoint ones, kept blurry ones, received ones) are shuffled.

Every draw comes from one generator, in the reference's order (class order, disjoint cuts,
blurry cuts, mixing cuts, pool order, each task's order), so that a generator seeded as the
reference seeds its own gives the reference's tasks when no difference below applies. A run
gives the generator derived from its seed (:mod:`lifelong.seeding`), like the other streams.

Deliberate differences from the reference:

- *No class is dropped.* The reference also rounds the number of blurry classes down to a
  multiple of T and leaves the classes beyond it out of every task; here they are blurry
  classes (with the defaults, N=50 and T=5 on 10 or 100 classes, nothing is rounded away, so
  the two agree). In i-Blurry, when the blurry classes do not divide by T, the last task gets
  the remaining ones.
- *No example is dropped.* i-Blurry's reference hands back ``len(pool) // T`` pooled examples
  to each task and drops the remaining ``len(pool) % T``; here the last task gets them.
- *Empty tasks are dropped.* A task with no training example (possible in Si-Blurry when cut
  points coincide and no pooled example lands there) has no test set, so no column of the
  accuracy matrix; the reference trains nothing for it (and fails when it is the first task:
  ``methods/_trainer.py`` reads an evaluation result before any exists). The stream keeps the others, renumbered in
  order; the run's configuration records the number of tasks asked for (``num_tasks``) and
  the tasks kept (``task_classes``).
- The reference is an online sampler (one pass, ``online_iter`` repeats, periodic evaluation
  on the classes exposed so far). This module only cuts the tasks; the loop trains them for
  ``epochs`` and evaluates each task's test set after each task.

A task's ``classes`` are the classes of its training examples (sorted); its test set is the
test examples of those classes, so a blurry class is tested in every task it appears in.
Task-incremental accuracy masks the logits to those classes: it is computed as for any
stream, but Si-Blurry is task-free at test time (the paper reports class-incremental accuracy
on the classes seen so far); read class-IL.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lifelong.data.source import Source
from lifelong.data.streams import Stream, Task
from lifelong.errors import ConfigError

VARIANTS = ("si", "i")
# the run settings of a blurry stream (RunConfig fields, lifelong.config.UNSET_LEFT_OUT) and their defaults
DEFAULTS: dict[str, Any] = {"blurry_disjoint": 50, "blurry_mix": 10, "blurry_variant": "si"}


@dataclass(frozen=True)
class BlurryPlan:
    """The tasks as the generator cut them, before empty tasks are dropped.

    ``disjoint_classes[t]`` and ``blurry_classes[t]``: the classes task ``t`` was given;
    ``train[t]``: its training examples (source indices) in the stream's order; ``pooled``: the
    blurry-class examples given up for mixing, in the shuffled order they were handed back.
    """

    disjoint_classes: list[list[int]]
    blurry_classes: list[list[int]]
    train: list[torch.Tensor]
    pooled: torch.Tensor


def check_settings(num_classes: int | None, num_tasks: int, disjoint: int, mix: int, variant: str) -> None:
    """Refuse settings no blurry stream can be cut with, in one line each (``num_classes``
    ``None``: not known yet, the number of tasks is checked later)."""
    for key, value in (("blurry-disjoint", disjoint), ("blurry-mix", mix)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            raise ConfigError(f"`{key}` is a percentage: an integer in 0..100, got {value!r}")
    if variant not in VARIANTS:
        raise ConfigError(f"`blurry-variant` must be 'si' (Si-Blurry, random task sizes) or 'i' (i-Blurry, "
                          f"equal task sizes), got {variant!r}")
    if num_classes is not None and not 1 <= num_tasks <= num_classes:
        raise ConfigError(f"a blurry stream of {num_classes} classes has 1..{num_classes} tasks, "
                          f"got {num_tasks}; choose a smaller `num-tasks`")


def random_cuts(n: int, num_tasks: int, generator: torch.Generator) -> list[int]:
    """Bounds of ``num_tasks`` slices of ``0..n``: 0, the T-1 sorted draws from ``0..n-1``, n
    (the reference's ``[0] + randint(0, n, (T-1,)).sort() + [n]``; nothing drawn when ``n == 0``)."""
    if n == 0:
        return [0] * (num_tasks + 1)
    inner = torch.randint(0, n, (num_tasks - 1,), generator=generator).sort().values.tolist()
    return [0, *inner, n]


def equal_cuts(n: int, num_tasks: int) -> list[int]:
    """Bounds of ``num_tasks`` slices of ``0..n`` of ``n // T`` items each, the last one also
    taking the remaining ``n % T`` (which the reference's ``reshape(T, -1)`` and ``len // T``
    leave out)."""
    size = n // num_tasks
    return [t * size for t in range(num_tasks)] + [n]


def _slices(items: list[int], cuts: list[int]) -> list[list[int]]:
    return [items[a:b] for a, b in zip(cuts, cuts[1:])]


def split_classes(num_classes: int, num_tasks: int, disjoint: int, variant: str,
                  generator: torch.Generator) -> tuple[list[list[int]], list[list[int]]]:
    """Steps 1-2: the disjoint and the blurry classes of each task."""
    order = torch.randperm(num_classes, generator=generator).tolist()
    n_disjoint = num_classes * disjoint // 100 // num_tasks * num_tasks
    groups = []
    for group in (order[:n_disjoint], order[n_disjoint:]):
        if variant == "si":
            cuts = random_cuts(len(group), num_tasks, generator)
        else:
            cuts = equal_cuts(len(group), num_tasks)
        groups.append(_slices(group, cuts))
    return groups[0], groups[1]


def members(labels: torch.Tensor, groups: list[list[int]]) -> list[torch.Tensor]:
    """Step 3: for each group of classes, the indices of its examples, in the source's order."""
    return [torch.nonzero(torch.isin(labels, torch.tensor(g, dtype=labels.dtype))).squeeze(1) for g in groups]


def give_up_counts(blurry: list[torch.Tensor], mix: int, variant: str, generator: torch.Generator) -> list[int]:
    """Step 4, how many blurry-class examples each task asks to give up for mixing. Si-Blurry:
    ``mix`` percent of them all (rounded down), shared at random cut points (a task holding fewer
    gives up what it has). i-Blurry: ``mix`` percent (rounded down) of each task's own."""
    if variant == "i":
        return [len(b) * mix // 100 for b in blurry]
    cuts = random_cuts(sum(len(b) for b in blurry) * mix // 100, len(blurry), generator)
    return [b - a for a, b in zip(cuts, cuts[1:])]


def mix_blurry(blurry: list[torch.Tensor], give: list[int], receive: list[int] | None,
               pool_order: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Step 4 with the random draws given: task ``t`` gives up its first ``give[t]`` blurry-class
    examples; the pool (in task order, then ``pool_order``) is handed back in consecutive slices
    of ``receive[t]`` examples (``None``: equal shares, the rest to the last task).
    Returns each task's blurry-class examples (kept, then received) and the shuffled pool."""
    pool = torch.cat([b[:n] for b, n in zip(blurry, give)])[pool_order]
    if receive is None:
        cuts = equal_cuts(len(pool), len(blurry))
    else:
        cuts = [0]
        for n in receive:  # a pool shorter than asked (a task had fewer to give) runs out at the end
            cuts.append(min(cuts[-1] + n, len(pool)))
    return [torch.cat([b[n:], pool[a:c]]) for b, n, a, c in zip(blurry, give, cuts, cuts[1:])], pool


def plan(labels: torch.Tensor, num_classes: int, num_tasks: int, generator: torch.Generator, *,
         disjoint: int = 50, mix: int = 10, variant: str = "si") -> BlurryPlan:
    """Steps 1-5 on training ``labels`` (the source's order): the tasks of a blurry stream."""
    check_settings(num_classes, num_tasks, disjoint, mix, variant)
    labels = labels.cpu()
    disjoint_classes, blurry_classes = split_classes(num_classes, num_tasks, disjoint, variant, generator)
    blurry = members(labels, blurry_classes)
    give = give_up_counts(blurry, mix, variant, generator)
    mixing = variant == "i" or sum(give) > 0  # the reference shuffles no pool when Si-Blurry pools nothing
    asked = sum(min(n, len(b)) for b, n in zip(blurry, give))
    pool_order = torch.randperm(asked, generator=generator) if mixing else torch.arange(0)
    blurry, pooled = mix_blurry(blurry, give, give if variant == "si" else None, pool_order)
    train = []
    for d, b in zip(members(labels, disjoint_classes), blurry):
        examples = torch.cat([d, b])
        train.append(examples[torch.randperm(len(examples), generator=generator)])
    return BlurryPlan(disjoint_classes, blurry_classes, train, pooled)


def _tasks(source: Source, train: list[torch.Tensor]) -> list[Task]:
    """The non-empty tasks, renumbered: classes of their examples, test examples of those classes."""
    tasks: list[Task] = []
    device = source.train_y.device
    train_y, test_y = source.train_y.cpu(), source.test_y.cpu()
    for examples in (e for e in train if len(e)):
        classes = tuple(torch.unique(train_y[examples]).tolist())
        test_idx = torch.nonzero(torch.isin(test_y, torch.tensor(classes, dtype=test_y.dtype))).squeeze(1)
        if len(test_idx) == 0:
            raise ConfigError(f"task {len(tasks) + 1} (classes {list(classes)}) has no test examples in "
                              f"{source.name}; check the data files")
        tasks.append(Task(len(tasks), classes, examples.to(device), test_idx.to(device)))
    return tasks


def blurry(source: Source, num_tasks: int, generator: torch.Generator, *, disjoint: int = 50, mix: int = 10,
           variant: str = "si", name: str | None = None) -> Stream:
    """The Si-Blurry (``variant="si"``) or i-Blurry (``"i"``) stream of ``source`` in ``num_tasks``
    tasks: ``disjoint`` percent of the classes in one task each, the others blurry, ``mix``
    percent of the blurry-class examples moved across tasks (see the module's description).
    Tasks without training examples are dropped; ``Stream.settings`` records what was asked."""
    cut = plan(source.train_y, source.num_classes, num_tasks, generator, disjoint=disjoint, mix=mix, variant=variant)
    settings = {"num_tasks": int(num_tasks), "blurry_disjoint": disjoint, "blurry_mix": mix, "blurry_variant": variant}
    return Stream(name or f"{variant}-blurry-{source.name}", source, _tasks(source, cut.train), "blurry",
                  settings=settings)
