"""Choosing LiNeS' α, β or the merge scale λ on a validation split, as ``wang-kee/LiNeS`` (HEAD
``43a7bdd``) does it: the grids and scores in ``src/eval/eval.py`` (``evaluate_task_vector``,
``evaluate_task_vector_at_coef``, ``add_normalized_accuracy``), the choice in
``src/utils/utils.py`` (``find_optimal_coef``, ``find_optimal_coef_tradeoff`` with
``tradeoff_target_weight: 2.0`` of ``config/method/single_task.yaml``): every value of a grid is
evaluated on validation data and the best score kept, the first of equal ones in grid order (the
reference's strict ``>``; its single-task grid runs 1.0 down to 0.0, ours up, which matters on
exact ties only).

* Single-task edit (the reference's ``single_task``): ``2·n_target + n_control`` with
  ``n_target`` the target tasks' accuracy over the fine-tuned model's, and ``n_control`` the mean
  over the control tasks of each one's accuracy over the base (the "zero-shot") model's.
* Merge: the mean over the merged models of each one's accuracy on its own tasks over that
  model's (``avg_normalized_top1``).

The reference uses each data set's validation split; here a seeded share of each task's test
examples (:func:`split_stream`) chooses, and the rest is reported.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import statistics
from typing import Any, Callable, Optional, Sequence

import torch

from lifelong.errors import ConfigError

VALIDATION_FRACTION = 0.5  # the share of each task's test examples that chooses (benchmarks/merging.py's half)
SPLIT_SEED_OFFSET = 1000  # the split's generator is seeded with 1000 + the run's seed
ALPHA_GRID = [round(0.1 * i, 1) for i in range(11)]  # the reference's 1.0, 0.9, ..., 0.0 in increasing order
LAM_GRID = {"task_arithmetic": [round(0.1 * i, 1) for i in range(1, 11)],  # also β with LiNeS
            "ties": [round(0.1 * i, 1) for i in range(1, 16)]}


def check_fraction(fraction: float) -> float:
    """``fraction`` in the open interval (0, 1), else one line."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise ConfigError(f"--validation-fraction must be in (0, 1), got {fraction!r}")
    return float(fraction)


def check_grid(grid: Optional[Sequence[float]], default: Sequence[float], name: str,
               unit: bool = False) -> list[float]:
    """The grid (``default`` when ``None``) as floats: not empty, finite, in ``[0, 1]`` with ``unit``."""
    values = list(default if grid is None else grid)
    if not values:
        raise ConfigError(f"--grid for {name} is empty; give at least one value")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"--grid for {name} must hold finite numbers, got {value!r}")
        if unit and not 0.0 <= value <= 1.0:
            raise ConfigError(f"--grid for {name}: {name} must be in [0, 1], got {value!r}")
    return [float(v) for v in values]


def split_stream(stream: Any, seed: int, fraction: float = VALIDATION_FRACTION) -> tuple[Any, Any]:
    """Two copies of ``stream``: each task keeps a seeded share ``fraction`` of its test examples
    (the first ``floor(fraction·n)`` of a permutation drawn with seed ``1000 + seed``, one draw
    per task in task order) in the first, the rest in the second; one line when a part is empty."""
    fraction = check_fraction(fraction)
    g = torch.Generator().manual_seed(SPLIT_SEED_OFFSET + seed)
    val, held = copy.copy(stream), copy.copy(stream)
    val.tasks, held.tasks = [], []
    for task in stream.tasks:
        order = task.test_idx[torch.randperm(len(task.test_idx), generator=g)]
        cut = math.floor(len(order) * fraction)
        if cut == 0 or cut == len(order):
            raise ConfigError(f"--validation-fraction {fraction} leaves task {task.index + 1} ({len(order)} test "
                              f"examples) without validation or reported examples")
        val.tasks.append(dataclasses.replace(task, test_idx=order[:cut]))
        held.tasks.append(dataclasses.replace(task, test_idx=order[cut:]))
    return val, held


def _ratio(value: float, reference: float, what: str) -> float:
    if reference == 0:
        raise ConfigError(f"the {what} has accuracy 0 on the validation split; nothing to normalise by")
    return value / reference


def tradeoff_score(acc: Sequence[float], control: Sequence[int], target: Sequence[int],
                   base_acc: Sequence[float], finetuned_acc: Sequence[float]) -> float:
    """``2·mean_t acc_t/finetuned_t + mean_c acc_c/base_c`` over the target and control task
    indices (from 0): the reference's single-task trade-off."""
    n_target = statistics.fmean(_ratio(acc[t], finetuned_acc[t], "fine-tuned model") for t in target)
    n_control = statistics.fmean(_ratio(acc[c], base_acc[c], "base model") for c in control)
    return 2 * n_target + n_control


def normalised_score(acc: Sequence[float], own_tasks: Sequence[Sequence[int]],
                     own_acc: Sequence[Sequence[float]]) -> float:
    """The mean over merged models ``i`` of the mean over their tasks ``t`` (indices from 0) of
    ``acc_t / own_acc[i]_t``: the reference's normalised accuracy of a merge."""
    return statistics.fmean(statistics.fmean(_ratio(acc[t], own[t], "merged model's own run") for t in tasks)
                            for tasks, own in zip(own_tasks, own_acc))


def choose(grid: Sequence[float], score: Callable[[float], float]) -> tuple[float, list[float]]:
    """The grid value with the highest ``score`` (the first of equal ones) and every value's score."""
    scores = [float(score(value)) for value in grid]
    best = max(range(len(grid)), key=lambda i: scores[i])
    return grid[best], scores
