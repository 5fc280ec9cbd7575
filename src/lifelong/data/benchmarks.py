"""The named benchmarks: a source, how it is cut into tasks, the backbone and augmentation used
for it in the literature. ``lifelong list`` prints this table; :func:`lifelong.data.user.register_benchmark`
adds one of your own."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from lifelong.data.blurry import DEFAULTS as BLURRY_DEFAULTS, blurry, check_settings
from lifelong.data.cifar import load_cifar10, load_cifar100
from lifelong.data.mnist import load_fashion_mnist, load_mnist
from lifelong.data.source import Source
from lifelong.data.streams import Stream, class_incremental, permuted, rotated
from lifelong.data.taskfree import DEFAULTS as TASK_FREE_DEFAULTS, check_width, task_free
from lifelong.data.tiny_imagenet import load_tiny_imagenet
from lifelong.errors import ConfigError
from lifelong.seeding import torch_generator


@dataclass(frozen=True)
class Benchmark:
    """How to build one named benchmark.

    ``split`` is ``"class"`` (disjoint classes per task), ``"permuted"``, ``"rotated"``,
    ``"blurry"`` (Si-Blurry or i-Blurry, :mod:`lifelong.data.blurry`) or ``"task-free"`` (one
    stream without task boundaries, :mod:`lifelong.data.taskfree`; ``num_tasks`` is 1).
    ``augment_padding`` > 0 turns on random crop (with that padding) and flip during training.
    ``num_classes``: known before the data are read (built-ins), so that a configuration can be
    checked against it (e.g. a herding memory's size); ``None`` when only the source tells.
    """

    name: str
    description: str
    load: Callable[[Path, bool], Source]
    split: str
    num_tasks: int
    backbone: str
    augment_padding: int = 0
    builtin: bool = True
    num_classes: int | None = None


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        Benchmark("split-mnist", "MNIST, 5 tasks of 2 classes, MLP (Buzzega et al., 2020)",
                  lambda root, download: load_mnist(), "class", 5, "mlp", num_classes=10),
        Benchmark("permuted-mnist", "MNIST, 20 tasks of pixel permutations, domain-IL (Goodfellow et al., 2013)",
                  lambda root, download: load_mnist(), "permuted", 20, "mlp", num_classes=10),
        Benchmark("rotated-mnist", "MNIST, 20 tasks of rotations in [0, 180), domain-IL (Lopez-Paz and Ranzato, 2017)",
                  lambda root, download: load_mnist(), "rotated", 20, "mlp", num_classes=10),
        Benchmark("split-fashion-mnist", "Fashion-MNIST, 5 tasks of 2 classes, MLP (needs --data-root)",
                  load_fashion_mnist, "class", 5, "mlp", num_classes=10),
        Benchmark("split-cifar10", "CIFAR-10, 5 tasks of 2 classes, ResNet-18 (needs --data-root)",
                  load_cifar10, "class", 5, "resnet18", augment_padding=4, num_classes=10),
        Benchmark("split-cifar100", "CIFAR-100, 10 tasks of 10 classes, ResNet-18 (needs --data-root)",
                  load_cifar100, "class", 10, "resnet18", augment_padding=4, num_classes=100),
        Benchmark("split-tiny-imagenet", "Tiny-ImageNet, 10 tasks of 20 classes, ResNet-18 (needs --data-root)",
                  load_tiny_imagenet, "class", 10, "resnet18", augment_padding=4, num_classes=200),
        Benchmark("si-blurry-mnist", "MNIST, 5 Si-Blurry tasks (N=50, M=10; Moon et al., 2023), MLP",
                  lambda root, download: load_mnist(), "blurry", 5, "mlp", num_classes=10),
        Benchmark("si-blurry-fashion-mnist", "Fashion-MNIST, 5 Si-Blurry tasks, MLP (needs --data-root)",
                  load_fashion_mnist, "blurry", 5, "mlp", num_classes=10),
        Benchmark("si-blurry-cifar10", "CIFAR-10, 5 Si-Blurry tasks, ResNet-18 (needs --data-root)",
                  load_cifar10, "blurry", 5, "resnet18", augment_padding=4, num_classes=10),
        Benchmark("si-blurry-cifar100", "CIFAR-100, 5 Si-Blurry tasks (the paper's setting), ResNet-18 "
                  "(needs --data-root)", load_cifar100, "blurry", 5, "resnet18", augment_padding=4, num_classes=100),
        Benchmark("task-free-mnist", "MNIST, task-free: classes mixed by a Gaussian schedule (Shanahan et al., "
                  "2021), no task boundaries, MLP", lambda root, download: load_mnist(), "task-free", 1, "mlp",
                  num_classes=10),
        Benchmark("task-free-fashion-mnist", "Fashion-MNIST, task-free (Gaussian schedule), MLP (needs --data-root)",
                  load_fashion_mnist, "task-free", 1, "mlp", num_classes=10),
        Benchmark("task-free-cifar10", "CIFAR-10, task-free (Gaussian schedule), ResNet-18 (needs --data-root)",
                  load_cifar10, "task-free", 1, "resnet18", augment_padding=4, num_classes=10),
        Benchmark("task-free-cifar100", "CIFAR-100, task-free (Gaussian schedule), ResNet-18 (needs --data-root)",
                  load_cifar100, "task-free", 1, "resnet18", augment_padding=4, num_classes=100),
    ]
}


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called ``name``, or a :class:`ConfigError` listing the names that exist."""
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise ConfigError(f"unknown benchmark {name!r}; choose one of: {', '.join(BENCHMARKS)}") from None


# the run settings of each kind of stream that has its own (RunConfig fields, lifelong.config.UNSET_LEFT_OUT)
SPLIT_SETTINGS: dict[str, dict[str, Any]] = {"blurry": BLURRY_DEFAULTS, "task-free": TASK_FREE_DEFAULTS}


def stream_options(benchmark: Benchmark, *, shuffle_classes: bool = False, blurry_disjoint: int | None = None,
                   blurry_mix: int | None = None, blurry_variant: str | None = None,
                   task_free_width: float | None = None, num_tasks: int | None = None) -> dict[str, Any]:
    """The settings of a stream of ``benchmark`` that its kind has (a blurry one's N, M and variant,
    a task-free one's width), unset ones at their defaults (N=50, M=10, Si-Blurry; the task-free
    width ``None``: the reference's for the number of classes); empty for other benchmarks. A
    :class:`ConfigError` for a setting of another kind of stream, and for ``shuffle_classes``
    on a blurry or task-free one (whose class order is drawn from the seed anyway) and
    ``num_tasks`` other than 1 on a task-free one (which has no tasks to count)."""
    given = {"blurry_disjoint": blurry_disjoint, "blurry_mix": blurry_mix, "blurry_variant": blurry_variant,
             "task_free_width": task_free_width}
    own = SPLIT_SETTINGS.get(benchmark.split, {})
    named = [key for key, value in given.items() if value is not None and key not in own]
    if named:
        split = next(s for s, keys in SPLIT_SETTINGS.items() if named[0] in keys)
        names = ", ".join(b.name for b in BENCHMARKS.values() if b.split == split)
        raise ConfigError(f"`{named[0].replace('_', '-')}` applies to the {split} benchmarks ({names}), "
                          f"not to {benchmark.name}")
    if not own:
        return {}
    if shuffle_classes:
        raise ConfigError(f"`shuffle-classes` does not apply to {benchmark.name}: a {benchmark.split} stream draws "
                          f"its class order from the seed")
    if benchmark.split == "task-free" and num_tasks not in (None, 1):
        raise ConfigError(f"`num-tasks` does not apply to {benchmark.name}: a task-free stream is one stream "
                          f"without task boundaries (its configuration records 1), got {num_tasks}")
    return {key: own[key] if given[key] is None else given[key] for key in own}


def check_stream_options(benchmark: Benchmark, num_tasks: int | None, **options: Any) -> None:
    """:func:`stream_options`, and the checks of the stream's own settings
    (:func:`lifelong.data.blurry.check_settings` for a blurry benchmark, with its classes when
    they are known before its data are read; :func:`lifelong.data.taskfree.check_width`)."""
    settings = stream_options(benchmark, num_tasks=num_tasks, **options)
    if benchmark.split == "blurry":
        tasks = benchmark.num_tasks if num_tasks is None else num_tasks
        check_settings(benchmark.num_classes, tasks, settings["blurry_disjoint"], settings["blurry_mix"],
                       settings["blurry_variant"])
    elif benchmark.split == "task-free":
        check_width(settings["task_free_width"])


def build_stream(
    benchmark: Benchmark,
    source: Source,
    *,
    seed: int,
    num_tasks: int | None = None,
    shuffle_classes: bool = False,
    blurry_disjoint: int | None = None,
    blurry_mix: int | None = None,
    blurry_variant: str | None = None,
    task_free_width: float | None = None,
) -> Stream:
    """Cut ``source`` into the benchmark's tasks; all randomness comes from ``seed``.

    ``blurry_*``: the percentage of disjoint classes, the percentage of blurry-class examples
    mixed across tasks and ``"si"``/``"i"``, for a blurry benchmark only; ``task_free_width``:
    the Gaussians' width, for a task-free benchmark only (:func:`stream_options`)."""
    tasks = benchmark.num_tasks if num_tasks is None else num_tasks
    generator = torch_generator(seed, "stream")
    settings = stream_options(benchmark, shuffle_classes=shuffle_classes, blurry_disjoint=blurry_disjoint,
                              blurry_mix=blurry_mix, blurry_variant=blurry_variant, task_free_width=task_free_width,
                              num_tasks=num_tasks)
    if benchmark.split == "task-free":
        return task_free(source, generator, width=settings["task_free_width"], name=benchmark.name)
    if settings:
        return blurry(source, tasks, generator, disjoint=settings["blurry_disjoint"], mix=settings["blurry_mix"],
                      variant=settings["blurry_variant"], name=benchmark.name)
    if benchmark.split == "class":
        order = None
        if shuffle_classes:
            order = torch.randperm(source.num_classes, generator=generator).tolist()
        return class_incremental(source, tasks, class_order=order, name=benchmark.name)
    if benchmark.split == "permuted":
        stream = permuted(source, tasks, generator)
    else:
        stream = rotated(source, tasks, generator)
    stream.name = benchmark.name
    return stream
