"""How much Mammoth 2020's iCaRL exemplar bug costs on Split-MNIST (docs/RESULTS.md).

Mammoth at d20f640 puts the exemplars back into the uint8 MNIST training tensor with
``examples.type(torch.uint8)`` and no ``* 255``, so the exemplars it trains on are black images
with old-class labels (its memory, used by the nearest-mean classifier, holds the real ones).
This script runs our ``icarl`` preset as it is and with that bug reproduced (the exemplars mixed
into each task's data are black images), same seeds, and prints both.

    python benchmarks/icarl_bug.py [--seeds 0 1 2] [--buffers 200 500]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile

import torch

from lifelong.config import make_config
from lifelong.data.mnist import load_mnist
from lifelong.data.streams import Task
from lifelong.plugins.mix import MixMemory
from lifelong.runs.session import execute_run, prepare_run


_MIX = MixMemory.training_set


def black_exemplars(self, state, task: Task) -> Task:
    """mix-memory, with each exemplar replaced by a black image of the same label (appended to
    the source's training tensors; :func:`run` removes them again)."""
    mixed = _MIX(self, state, task)
    if mixed.num_train == task.num_train:
        return mixed
    source = state.stream.source
    old = mixed.train_idx[task.num_train:]
    start = len(source.train_x)
    source.train_x = torch.cat([source.train_x, torch.zeros_like(source.train_x[old])])
    source.train_y = torch.cat([source.train_y, source.train_y[old]])
    black = torch.arange(start, start + len(old), device=old.device)
    return Task(mixed.index, mixed.classes, torch.cat([mixed.train_idx[: task.num_train], black]), mixed.test_idx,
                mixed.train_task)


def run(buffer: int, seed: int, bug: bool) -> float:
    source = load_mnist()  # cached and shared by every run of this process: restored below
    n = len(source.train_x)
    if bug:
        MixMemory.training_set = black_exemplars
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = make_config({}, {"method": "icarl", "buffer_size": buffer, "seed": seed, "out": f"{tmp}/run",
                                      "threads": 1})
            return execute_run(prepare_run(config))["class_il"]["average_accuracy"]
    finally:
        MixMemory.training_set = _MIX
        source.train_x, source.train_y = source.train_x[:n], source.train_y[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--buffers", type=int, nargs="+", default=[200, 500])
    args = parser.parse_args()
    print("| buffer | class-IL, real exemplars | class-IL, black exemplars (Mammoth 2020's bug) |")
    print("|---|---|---|")
    for buffer in args.buffers:
        cells = []
        for bug in (False, True):
            values = [run(buffer, s, bug) for s in args.seeds]
            cells.append(f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1
                         else f"{values[0]:.2f}")
        print(f"| {buffer} | {cells[0]} | {cells[1]} |", flush=True)
    print(f"\nCommand: `python benchmarks/icarl_bug.py --seeds {' '.join(map(str, args.seeds))} "
          f"--buffers {' '.join(map(str, args.buffers))}`")


if __name__ == "__main__":
    main()
