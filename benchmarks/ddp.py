"""Steps and examples per second of ER with 1 and 2 processes on the CPU (gloo), and what a step's
collectives cost: the scaling of :mod:`lifelong.distributed` written out.

Split-MNIST-shaped data made in memory (10 classes of 28x28 uint8 images in 5 tasks), the MLP
(784-100-100-10), ER with a buffer of 500, one epoch, the global batch (and replay batch) of
``--batches``; every rank one intra-op thread. For each batch size, ``--steps`` steps in all
(the tasks hold ``steps * batch / 5`` examples each), timed inside :func:`lifelong.loop.train`
(``train_seconds``, minus the evaluations, whose test sets are kept to 10 examples a class).
Beside it: the time of one gloo all-reduce of the MLP's gradients (89,610 floats) and of a
scalar, the two kinds of collective a step of several processes makes.

    python benchmarks/ddp.py [--batches 10 32 128 512] [--steps 300] [--out benchmarks/ddp.md]

The table and the command go to ``--out`` (markdown) and stdout.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from lifelong.data.source import Source  # noqa: E402
from lifelong.data.streams import class_incremental  # noqa: E402
from lifelong.loop import train  # noqa: E402
from lifelong.methods import build_recipe  # noqa: E402
from lifelong.nets import build_backbone  # noqa: E402
from lifelong.optim import SGD  # noqa: E402


def mnist_shaped(per_class_train: int, per_class_test: int = 10, seed: int = 0) -> Source:
    """Split-MNIST-shaped uint8 images: noise with a bright class-dependent pixel."""
    g = torch.Generator().manual_seed(seed)

    def images(y: torch.Tensor) -> torch.Tensor:
        x = torch.randint(0, 60, (len(y), 1, 28, 28), generator=g, dtype=torch.uint8)
        x.view(len(y), -1)[torch.arange(len(y)), y * 37 % 784] = 255
        return x

    train_y = torch.arange(10).repeat_interleave(per_class_train)
    test_y = torch.arange(10).repeat_interleave(per_class_test)
    return Source("mnist-shaped", images(train_y), train_y, images(test_y), test_y, num_classes=10)


def run_er(batch: int, steps: int) -> dict:
    """ER for ``steps`` global steps of ``batch``: steps/s and examples/s of the training alone."""
    stream = class_incremental(mnist_shaped(per_class_train=max(1, steps * batch // 10)), 5)
    torch.manual_seed(0)
    model = build_backbone("mlp", (1, 28, 28), 10)
    start = time.perf_counter()
    from lifelong import evaluate as evaluation
    eval_time = [0.0]
    original = evaluation.evaluate

    def timed(*args, **kwargs):
        t = time.perf_counter()
        out = original(*args, **kwargs)
        eval_time[0] += time.perf_counter() - t
        return out

    import lifelong.loop as loop
    loop.evaluate = timed
    try:
        result = train(stream, model, build_recipe("er"), SGD(model.parameters(), lr=0.1), seed=0, batch_size=batch,
                       buffer_size=500)
    finally:
        loop.evaluate = original
    seconds = time.perf_counter() - start - eval_time[0]
    return {"steps": result.steps, "seconds": seconds, "accuracy": sum(result.class_il[-1]) / 5}


def collectives(repeats: int = 200) -> dict:
    """Median seconds of one all-reduce of the MLP's gradients and of one scalar."""
    import torch.distributed as dist

    out = {}
    for name, numel in (("grads", 89_610), ("scalar", 1)):
        t = torch.zeros(numel)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            dist.all_reduce(t)
            times.append(time.perf_counter() - start)
        out[name] = sorted(times)[len(times) // 2]
    return out


def _worker(rank: int, world: int, folder: str, batches: list[int], steps: int) -> None:
    torch.set_num_threads(1)
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world)
    try:
        rows = {b: run_er(b, steps) for b in batches}
        extra = collectives() if world > 1 else {}
        if rank == 0:
            torch.save({"rows": rows, "collectives": extra}, f"{folder}/result-{world}.pt")
    finally:
        dist.destroy_process_group()


def measure(world: int, batches: list[int], steps: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_worker, args=(world, folder, batches, steps), nprocs=world, join=True)
        return torch.load(f"{folder}/result-{world}.pt", weights_only=False)


def table(results: dict[int, dict], batches: list[int]) -> str:
    lines = ["| global batch | processes | steps/s | examples/s | speed-up | final class-IL (%) |",
             "|---:|---:|---:|---:|---:|---:|"]
    for b in batches:
        base = None
        for world in sorted(results):
            row = results[world]["rows"][b]
            rate = row["steps"] / row["seconds"]
            base = base or rate
            lines.append(f"| {b} | {world} | {rate:.0f} | {rate * b:.0f} | {rate / base:.2f} | {row['accuracy']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[10, 32, 128, 512])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results = {world: measure(world, args.batches, args.steps) for world in (1, 2)}
    c = results[2]["collectives"]
    text = "\n".join([
        f"`python benchmarks/ddp.py --batches {' '.join(map(str, args.batches))} --steps {args.steps}` "
        f"({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"one thread a process)", "", table(results, args.batches), "",
        f"One gloo all-reduce on this machine: the MLP's gradients {c['grads'] * 1e6:.0f} µs, a scalar "
        f"{c['scalar'] * 1e6:.0f} µs (medians of 200).", ""])
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
