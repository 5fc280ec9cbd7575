"""Shared fixtures: tiny synthetic sources and streams that train in a fraction of a second."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lifelong.data.idx import write_idx
from lifelong.data.source import Source
from lifelong.data.streams import class_incremental


def make_images(labels: torch.Tensor, size: int = 8, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """uint8 images whose class is easy to read: a bright pixel at a class-dependent place plus noise."""
    g = torch.Generator().manual_seed(seed)
    n = len(labels)
    x = torch.randint(0, 40, (n, channels, size, size), generator=g, dtype=torch.uint8)
    flat = x.view(n, channels, -1)
    flat[torch.arange(n), :, labels * 3 % (size * size)] = 255
    return x


def make_source(num_classes: int = 4, per_class_train: int = 30, per_class_test: int = 10, size: int = 8,
                channels: int = 1, seed: int = 0) -> Source:
    train_y = torch.arange(num_classes).repeat_interleave(per_class_train)
    test_y = torch.arange(num_classes).repeat_interleave(per_class_test)
    return Source("tiny", make_images(train_y, size, channels, seed), train_y,
                  make_images(test_y, size, channels, seed + 1), test_y, num_classes=num_classes)


@pytest.fixture
def tiny_source() -> Source:
    return make_source()


@pytest.fixture
def tiny_stream(tiny_source):
    return class_incremental(tiny_source, 2)


def write_fashion_mnist(root: Path, per_class_train: int = 6, per_class_test: int = 2) -> Path:
    """Tiny Fashion-MNIST in torchvision's layout and the real IDX format (28x28, 10 classes)."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, per in (("train", per_class_train), ("t10k", per_class_test)):
        y = torch.arange(10).repeat(per)
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", make_images(y, 28).squeeze(1))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", y.to(torch.uint8))
    return raw


@pytest.fixture
def fashion_root(tmp_path) -> Path:
    root = tmp_path / "data"
    write_fashion_mnist(root)
    return root


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """``lifelong ARGS`` in this process: its exit code, stdout and stderr."""
    from lifelong.cli import main

    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def tiny_run_flags(data_root: Path) -> list[str]:
    """Run flags for a fast run on the tiny Fashion-MNIST of :func:`write_fashion_mnist`."""
    return ["--benchmark", "split-fashion-mnist", "--data-root", str(data_root), "--batch-size", "4", "--quiet"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """A tiny Fashion-MNIST in the real IDX files, shared by a module's tests."""
    root = tmp_path_factory.mktemp("data")
    write_fashion_mnist(root)
    return root
