"""Shared fixtures: tiny synthetic sources and streams that train in a fraction of a second."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from lifelong.data.idx import write_idx
from lifelong.data.source import Source
from lifelong.data.streams import class_incremental
from lifelong.runs.session import execute_run, prepare_run


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


def one_line_error(capsys, args: list[str]) -> str:
    """``lifelong ARGS`` must refuse in one line: exit code 2, one ``lifelong: error:`` line on
    stderr and no traceback; that line."""
    code, _, err = run_cli(args, capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("lifelong: error:") and "Traceback" not in err, err
    return err


def tiny_run_flags(data_root: Path) -> list[str]:
    """Run flags for a fast run on the tiny Fashion-MNIST of :func:`write_fashion_mnist`."""
    return ["--benchmark", "split-fashion-mnist", "--data-root", str(data_root), "--batch-size", "4", "--quiet"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """A tiny Fashion-MNIST in the real IDX files, shared by a module's tests."""
    root = tmp_path_factory.mktemp("data")
    write_fashion_mnist(root)
    return root


class Crash(Exception):
    """The crash of :func:`crash_then_resume` (the process dies; only the files on disk remain)."""


def crash_then_resume(config: Callable[[Path], Any], tmp_path: Path, monkeypatch, step: int, *,
                      task: int | None = None, resume_config: Callable[[Path], Any] | None = None,
                      names: tuple[str, str] = ("whole", "cut")) -> tuple[dict, dict]:
    """A run whole and the same run crashed and resumed, for the test that they are the same run.

    ``config(folder)`` is the run's configuration writing to ``folder``. The run goes once
    uninterrupted into ``tmp_path / names[0]``; once into ``tmp_path / names[1]`` with the loss
    monitor raising :class:`Crash` at global step ``step`` (only in task ``task``, counted from 0,
    when given), which must happen; then, unpatched (``monkeypatch.undo()``, so everything the test
    patched before is undone too), that run resumes from its folder, with ``config(folder)`` or
    ``resume_config(folder)`` (``config_to_resume`` to read the folder as ``--resume`` does).
    Returns the two metrics documents that ``execute_run`` returned: the whole run's, the resumed one's.
    """
    import lifelong.loop as loop

    whole, cut = (tmp_path / name for name in names)
    first = execute_run(prepare_run(config(whole)))
    original = loop.LossMonitor.observe

    def observe(self, loss, at_task, at_step):
        if at_step == step and (task is None or at_task == task):
            raise Crash(f"crash at step {step}")
        return original(self, loss, at_task, at_step)

    monkeypatch.setattr(loop.LossMonitor, "observe", observe)
    with pytest.raises(Crash):
        execute_run(prepare_run(config(cut)))
    monkeypatch.undo()
    resumed = execute_run(prepare_run((resume_config or config)(cut), resume=True))
    return first, resumed


def same_weights(folder_a: Path, folder_b: Path) -> bool:
    """The two runs' ``model.pt`` hold the same tensors: the same names, and each pair equal by
    ``torch.equal`` and to the bit (same dtype and bytes, so 0.0 and -0.0 differ)."""
    a, b = (torch.load(Path(folder) / "model.pt", weights_only=True) for folder in (folder_a, folder_b))
    return a.keys() == b.keys() and all(_same_tensor(a[k], b[k]) for k in a)


def _same_tensor(x: torch.Tensor, y: torch.Tensor) -> bool:
    if x.dtype != y.dtype or x.shape != y.shape or not torch.equal(x, y):
        return False
    return torch.equal(*(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8) for t in (x, y)))


def sigints_at(monkeypatch, at: int, count: int) -> None:
    """At global step ``at`` of every run in this process, ``count`` SIGINTs reach it (Ctrl-C
    pressed ``count`` times quickly)."""
    import signal

    import lifelong.loop as loop

    original = loop.LossMonitor.observe

    def observe(self, loss, task, step):
        if step == at:
            for _ in range(count):
                signal.raise_signal(signal.SIGINT)
        return original(self, loss, task, step)

    monkeypatch.setattr(loop.LossMonitor, "observe", observe)


@pytest.fixture(scope="module")
def fashion(tmp_path_factory) -> Path:
    """A very small Fashion-MNIST in the real IDX files (8 training and 2 test images a class),
    shared by a module's tests."""
    root = tmp_path_factory.mktemp("fashion")
    write_fashion_mnist(root, per_class_train=8, per_class_test=2)
    return root
