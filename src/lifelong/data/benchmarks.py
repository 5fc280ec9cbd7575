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
from lifelong.data.tiny_imagenet import load_tiny_imagenet
from lifelong.errors import ConfigError
from lifelong.seeding import torch_generator


@dataclass(frozen=True)
class Benchmark:
    """How to build one named benchmark.

    ``split`` is ``"class"`` (disjoint classes per task), ``"permuted"``, ``"rotated"`` or
    ``"blurry"`` (Si-Blurry or i-Blurry, :mod:`lifelong.data.blurry`).
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
    ]
}


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called ``name``, or a :class:`ConfigError` listing the names that exist."""
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise ConfigError(f"unknown benchmark {name!r}; choose one of: {', '.join(BENCHMARKS)}") from None


def stream_options(benchmark: Benchmark, *, shuffle_classes: bool = False, blurry_disjoint: int | None = None,
                   blurry_mix: int | None = None, blurry_variant: str | None = None) -> dict[str, Any]:
    """The blurry settings of a stream of ``benchmark``, unset ones at their defaults (N=50,
    M=10, Si-Blurry); empty for a benchmark that is not blurry. A :class:`ConfigError` for a
    blurry setting given to another benchmark, and for ``shuffle_classes`` on a blurry one
    (whose class order is drawn from the seed anyway)."""
    given = {"blurry_disjoint": blurry_disjoint, "blurry_mix": blurry_mix, "blurry_variant": blurry_variant}
    if benchmark.split != "blurry":
        named = [key for key, value in given.items() if value is not None]
        if named:
            blurry_names = ", ".join(b.name for b in BENCHMARKS.values() if b.split == "blurry")
            raise ConfigError(f"`{named[0].replace('_', '-')}` applies to the blurry benchmarks ({blurry_names}), "
                              f"not to {benchmark.name}")
        return {}
    if shuffle_classes:
        raise ConfigError(f"`shuffle-classes` does not apply to {benchmark.name}: a blurry stream draws its class "
                          f"order from the seed")
    return {key: BLURRY_DEFAULTS[key] if value is None else value for key, value in given.items()}


def check_stream_options(benchmark: Benchmark, num_tasks: int | None, **options: Any) -> None:
    """:func:`stream_options`, and for a blurry benchmark whose classes are known before its
    data are read, the checks of :func:`lifelong.data.blurry.check_settings`."""
    settings = stream_options(benchmark, **options)
    if settings:
        tasks = benchmark.num_tasks if num_tasks is None else num_tasks
        check_settings(benchmark.num_classes, tasks, settings["blurry_disjoint"], settings["blurry_mix"],
                       settings["blurry_variant"])


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
) -> Stream:
    """Cut ``source`` into the benchmark's tasks; all randomness comes from ``seed``.

    ``blurry_*``: the percentage of disjoint classes, the percentage of blurry-class examples
    mixed across tasks and ``"si"``/``"i"``, for a blurry benchmark only (:func:`stream_options`)."""
    tasks = benchmark.num_tasks if num_tasks is None else num_tasks
    generator = torch_generator(seed, "stream")
    settings = stream_options(benchmark, shuffle_classes=shuffle_classes, blurry_disjoint=blurry_disjoint,
                              blurry_mix=blurry_mix, blurry_variant=blurry_variant)
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
