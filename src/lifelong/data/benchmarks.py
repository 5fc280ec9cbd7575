"""The named benchmarks: a source, how it is cut into tasks, the backbone and augmentation used
for it in the literature. ``lifelong list`` prints this table; :func:`lifelong.data.user.register_benchmark`
adds one of your own."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

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

    ``split`` is ``"class"`` (disjoint classes per task), ``"permuted"`` or ``"rotated"``.
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
    ]
}


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called ``name``, or a :class:`ConfigError` listing the names that exist."""
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise ConfigError(f"unknown benchmark {name!r}; choose one of: {', '.join(BENCHMARKS)}") from None


def build_stream(
    benchmark: Benchmark,
    source: Source,
    *,
    seed: int,
    num_tasks: int | None = None,
    shuffle_classes: bool = False,
) -> Stream:
    """Cut ``source`` into the benchmark's tasks; all randomness comes from ``seed``."""
    tasks = benchmark.num_tasks if num_tasks is None else num_tasks
    generator = torch_generator(seed, "stream")
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
