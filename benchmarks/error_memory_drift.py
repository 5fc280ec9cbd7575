"""ReLoop2's error memory on gradually rotated MNIST: accuracy with and without the memory.

An MLP (the library's `mlp` backbone) is trained on unrotated MNIST (one epoch, SGD); then the
10,000 test images are streamed in a random order with the rotation growing linearly from 0 to
`--end-degrees` along the stream (`lifelong.data.drift.gradual_rotation`), and evaluated
prequentially (`lifelong.prequential`): each batch is predicted, then its errors are written
into the memory. `--slow-lr` also lets the model take one SGD step on each batch after it is
predicted (the slow learner of ReLoop2's loop); 0 (the default) keeps it frozen.

    PYTHONPATH=src python benchmarks/error_memory_drift.py [--end-degrees 90] [--seed 0]

Prints the accuracy by quarter of the stream and overall, the model alone and with the memory.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F

from lifelong.data.drift import gradual_rotation
from lifelong.data.mnist import load_mnist
from lifelong.errors import ConfigError
from lifelong.nets import build_backbone
from lifelong.plugins.error_memory import ErrorMemory
from lifelong.prequential import prequential
from lifelong.seeding import torch_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--end-degrees", type=float, default=90.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=50, help="prequential batch")
    parser.add_argument("--bits", type=int, default=6)
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--lam", type=float, default=0.5)
    parser.add_argument("--slow-lr", type=float, default=0.0, help="SGD step per predicted batch (0: frozen model)")
    parser.add_argument("--train-examples", type=int, default=60000)
    parser.add_argument("--mnist", default=None, help="a folder with the four MNIST IDX files (default: bundled)")
    args = parser.parse_args()
    try:
        memory = ErrorMemory(args.bits, args.slots, args.k, args.temperature, args.lam, seed=args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2)
    started = time.perf_counter()
    torch.manual_seed(args.seed)
    source = load_mnist(args.mnist)
    model = build_backbone("mlp", source.image_shape, source.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    order = torch.randperm(len(source.train_y), generator=torch_generator(args.seed, "train-order"))[:args.train_examples]
    model.train()
    for start in range(0, len(order), 32):  # one epoch on unrotated digits
        idx = order[start:start + 32]
        loss = F.cross_entropy(model(source.train_x[idx].float().div(255.0)), source.train_y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    slow = torch.optim.SGD(model.parameters(), lr=args.slow_lr) if args.slow_lr > 0 else None

    def slow_step(x: torch.Tensor, y: torch.Tensor) -> None:  # the slow learner: one SGD step per batch
        slow.zero_grad()
        F.cross_entropy(model(x), y).backward()
        slow.step()
    update = slow_step if slow is not None else None
    try:
        batches = gradual_rotation(source, "test", batch_size=args.batch_size, end_degrees=args.end_degrees,
                                   seed=args.seed)
        result = prequential(model, batches, memory, update)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2)
    span = args.end_degrees / 4
    print(f"gradually rotated MNIST, 0 -> {args.end_degrees:g} degrees over {result.examples} test images, "
          f"batch {args.batch_size}; memory: 2^{args.bits} buckets x {args.slots} slots, k {args.k}, "
          f"temperature {args.temperature:g}, lambda {args.lam:g}; slow lr {args.slow_lr:g}; seed {args.seed}")
    print("| part of the stream | degrees | model alone | with error memory |")
    print("|---|---|---|---|")
    for i, (base, mem) in enumerate(result.windows(4)):
        print(f"| quarter {i + 1} | {i * span:g}-{(i + 1) * span:g} | {base:.2f} | {mem:.2f} |")
    print(f"| all | 0-{args.end_degrees:g} | {result.accuracy_base:.2f} | {result.accuracy_memory:.2f} |")
    print(f"memory: {len(memory)} errors kept of {int(memory.writes.sum())} written, {memory.nbytes} bytes; "
          f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
