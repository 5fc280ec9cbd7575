"""Steps per second of the training step on one GPU: ResNet-18 on Split-CIFAR-10-shaped data, ER and
DER++, float32 against bfloat16 autocast (``--precision bf16``), with and without ``torch.compile``
of the model (``nn.Module.compile``: the step's forwards and backwards; the replay memory,
hooks and optimiser stay eager).

The data are made in memory: 3x32x32 uint8 images of 10 classes (noise with a class-dependent
bright pixel), on the device as a run of ``lifelong run --device cuda`` holds them. The stream is
one task of all 10 classes, so that no evaluation falls inside the timed steps: ``--warmup`` steps
(compilation, cuDNN's choices) are run first, then ``--steps`` are timed, the device synchronised
only at the two ends of the window (the step itself reads nothing on a GPU but the loss every 25
steps). Batch and replay batch ``--batch``, buffer 500, SGD.

    python benchmarks/gpu.py                     # on a GPU: writes benchmarks/gpu.md
    python benchmarks/gpu.py --device cpu --steps 3 --warmup 1 --batch 4 --compile off   # the tests' tiny run

Prints the table; writes it with the command to ``--out`` (default benchmarks/gpu.md on a GPU,
nothing on the CPU).
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from lifelong.data.source import Source  # noqa: E402
from lifelong.data.streams import class_incremental  # noqa: E402
from lifelong.loop import train  # noqa: E402
from lifelong.methods import build_recipe  # noqa: E402
from lifelong.nets import build_backbone  # noqa: E402
from lifelong.optim import SGD  # noqa: E402
from lifelong.precision import channels_last  # noqa: E402


def cifar_shaped(per_class_train: int, per_class_test: int = 2, seed: int = 0) -> Source:
    """Split-CIFAR-10-shaped uint8 images, made in memory."""
    g = torch.Generator().manual_seed(seed)

    def images(y: torch.Tensor) -> torch.Tensor:
        x = torch.randint(0, 120, (len(y), 3, 32, 32), generator=g, dtype=torch.uint8)
        x.view(len(y), 3, -1)[torch.arange(len(y)), :, y * 97 % 1024] = 255
        return x

    train_y = torch.arange(10).repeat_interleave(per_class_train)
    test_y = torch.arange(10).repeat_interleave(per_class_test)
    return Source("cifar-shaped", images(train_y), train_y, images(test_y), test_y, num_classes=10,
                  mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


class _Window:
    """Events that time the steps after ``warmup`` until the last, synchronising the device at
    the window's two ends only."""

    def __init__(self, warmup: int, device: torch.device) -> None:
        self.warmup, self.device, self.count = warmup, device, 0
        self.start = self.end = 0.0

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def task_start(self, task, steps: int) -> None:
        self.total = steps

    def step(self, loss) -> None:
        self.count += 1
        if self.count == self.warmup:
            self.start = self._now()
        if self.count == self.total:
            self.end = self._now()

    def task_end(self, task, class_il, task_il) -> None:
        pass


def measure(method: str, precision: str, compiled: bool, device: torch.device, batch: int, warmup: int,
            steps: int) -> float:
    """Steps per second of ``steps`` timed steps (after ``warmup``)."""
    total = warmup + steps
    stream = class_incremental(cifar_shaped(per_class_train=-(-total * batch // 10)), 1)
    stream = stream.to(device) if device.type != "cpu" else stream
    torch.manual_seed(0)
    model = channels_last(build_backbone("resnet18", (3, 32, 32), 10).to(device), "resnet18", device)
    if compiled:
        model.compile()
    window = _Window(warmup, device)
    train(stream, model, build_recipe(method), SGD(model.parameters(), lr=0.03), seed=0, batch_size=batch,
          buffer_size=500, events=window, precision=precision)
    return (window.total - warmup) / (window.end - window.start)  # the task holds at least `steps` after warmup


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--methods", nargs="+", default=["er", "derpp"])
    parser.add_argument("--compile", choices=["both", "on", "off"], default="both")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    compiles = {"both": [False, True], "on": [True], "off": [False]}[args.compile]
    lines = ["| method | torch.compile | fp32 steps/s | bf16 steps/s | bf16 / fp32 |", "|---|---|---:|---:|---:|"]
    for method in args.methods:
        for compiled in compiles:
            rates = {p: measure(method, p, compiled, device, args.batch, args.warmup, args.steps)
                     for p in ("fp32", "bf16")}
            lines.append(f"| {method} | {'yes' if compiled else 'no'} | {rates['fp32']:.1f} | {rates['bf16']:.1f} | "
                         f"{rates['bf16'] / rates['fp32']:.2f} |")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "CPU")
    command = " ".join(["python benchmarks/gpu.py", *(argv if argv is not None else sys.argv[1:])])
    text = "\n".join([f"`{command}` ({name}, torch {torch.__version__}, batch {args.batch}, {args.steps} timed steps "
                      f"after {args.warmup})", "", *lines, ""])
    print(text)
    out = args.out or (str(HERE / "gpu.md") if device.type == "cuda" else None)
    if out:
        Path(out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
