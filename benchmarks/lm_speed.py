"""Throughput of lifelong.lm's training loop against a bare PyTorch loop of the same GPT and batch,
and the memory of a run on a corpus ten times larger. Prints markdown and writes
benchmarks/lm_speed.md.

    python benchmarks/lm_speed.py [--repeats 5] [--steps 60] [--memory] [--against hf|compile]

Speed: in one process, one thread, the library's :class:`lifelong.lm.LMTrainer` (replay mixer at
r = 0.25 on the second corpus, the stream's schedule, gradient clipping, MER off) and a bare loop
written here in the style of nanoGPT's ``train.py`` (random windows of the memory map,
``torch.optim.AdamW``, clipping, nothing else) take one step each in turn (the bare step runs in
the library's progress callback), so that load from other processes on a shared machine falls on
both alike; ``--steps`` timed steps of each per repeat after 10 untimed ones; tokens/s of the
median and of the fastest step. Target: the library within 10%.

``--against hf`` instead compares the library loop on the library GPT with the same loop on a
transformers GPT-2 of the same shape (``--model hf:gpt2``: dropout 0, exact GELU, the same
parameter count), ``--against compile`` with the library GPT compiled (``--compile``), one
``LMTrainer.step`` of each in turn; they write benchmarks/lm_speed_hf.md, lm_speed_compile.md.

Memory (``--memory``): peak RSS of a whole ``lifelong lm train`` process on the offline ``python``
corpus cut to 0.7 M characters and to 7 M; the corpora are memory-mapped, so RSS should not grow
with the corpus (target: under 10% more).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lifelong.lm.model import GPT, GPTConfig  # noqa: E402
from lifelong.lm.run import prepare  # noqa: E402
from lifelong.lm.tokens import open_corpus  # noqa: E402
from lifelong.lm.train import LMConfig, LMTrainer, build_optimizer  # noqa: E402

MODEL = dict(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=16)


class Bare:
    """nanoGPT's loop, one step at a time: random windows of the memory map, AdamW, clipping."""

    def __init__(self, data: Path) -> None:
        self.train = np.memmap(data / "B.bin", dtype=np.uint16, mode="r")
        torch.manual_seed(0)
        self.model = GPT(GPTConfig(257, MODEL["block_size"], MODEL["n_layer"], MODEL["n_head"], MODEL["n_embd"]))
        self.optimizer = build_optimizer(self.model, LMConfig(stream=["B"], steps=[1]))

    def get_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, train = MODEL["batch_size"], MODEL["block_size"], self.train
        ix = torch.randint(len(train) - T - 1, (B,))
        x = torch.stack([torch.from_numpy(train[i:i + T].astype(np.int64)) for i in ix.tolist()])
        y = torch.stack([torch.from_numpy(train[i + 1:i + 1 + T].astype(np.int64)) for i in ix.tolist()])
        return x, y

    def step(self) -> None:
        x, y = self.get_batch()
        _, loss = self.model(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()


def interleaved(data: Path, steps: int) -> tuple[list[float], list[float]]:
    """Seconds per step of the library's loop and of the bare loop, one step of each in turn: the
    library's interval runs from the end of one bare step to the library's next progress call (its
    whole loop body: batch, step, schedule, bookkeeping), then one bare step is timed."""
    corpora = [open_corpus(data, n) for n in ("A", "B")]
    cfg = LMConfig(stream=["A", "B"], steps=[5, steps + 5], replay=0.25, warmup=2, eval_tokens=129, **MODEL)
    trainer = LMTrainer(cfg, corpora, corpora[0].tokenizer["vocab_size"])
    bare = Bare(data)
    lib_times: list[float] = []
    bare_times: list[float] = []
    mark = [0.0]

    def after_library_step(task: int, step: int, loss: float) -> None:
        now = time.perf_counter()
        if step > 10 and step != cfg.steps[0] + 1:  # warm; not the step after the first corpus's evaluation
            lib_times.append(now - mark[0])
        bare.step()
        end = time.perf_counter()
        if step > 10:
            bare_times.append(end - now)
        mark[0] = end

    mark[0] = time.perf_counter()
    trainer.run(progress=after_library_step)
    return lib_times, bare_times


def speed(data: Path, repeats: int, steps: int) -> list[str]:
    rates: dict[str, list[float]] = {"lifelong.lm loop": [], "bare PyTorch loop": []}
    tokens = MODEL["batch_size"] * MODEL["block_size"]
    for _ in range(repeats):
        lib, ref = interleaved(data, steps)
        rates["lifelong.lm loop"] += [tokens / t for t in lib]
        rates["bare PyTorch loop"] += [tokens / t for t in ref]
    lines = ["| loop | tokens/s (median step) | tokens/s (fastest step) | steps timed |", "|---|---|---|---|"]
    lines += [f"| {name} | {statistics.median(r):.0f} | {max(r):.0f} | {len(r)} |" for name, r in rates.items()]
    lib, ref = (rates[k] for k in rates)
    lines += ["", f"Library / bare throughput: **{statistics.median(lib) / statistics.median(ref):.3f}** by median step, "
                  f"{max(lib) / max(ref):.3f} by fastest step (target: at least 0.90)."]
    return lines


HF_GPT2 = {"n_layer": MODEL["n_layer"], "n_head": MODEL["n_head"], "n_embd": MODEL["n_embd"],
           "activation_function": "gelu", "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}


AGAINST = {"hf": ("transformers GPT-2 (--model hf:gpt2)", {"model": "hf:gpt2", "model_config": HF_GPT2}),
           "compile": ("library GPT, --compile", {"compile": True})}


def side_by_side(data: Path, repeats: int, steps: int, against: str) -> list[str]:
    """Tokens/s of :meth:`LMTrainer.step` of the library GPT and of ``AGAINST[against]`` (the same
    shape), one step of each in turn after 10 untimed ones (a compiled model compiles in those), on
    the second corpus with 25% replay."""
    corpora = [open_corpus(data, n) for n in ("A", "B")]
    base = dict(stream=["A", "B"], steps=[1, steps + 10], replay=0.25, warmup=0, **MODEL)
    other, settings = AGAINST[against]
    if against == "hf":
        base = {k: v for k, v in base.items() if k not in ("n_layer", "n_head", "n_embd")}
    configs = {"library GPT (--model gpt)": LMConfig(**{**base, **MODEL}), other: LMConfig(**base, **settings)}
    rates: dict[str, list[float]] = {name: [] for name in configs}
    params: dict[str, int] = {}
    tokens = MODEL["batch_size"] * MODEL["block_size"]
    for _ in range(repeats):
        trainers = {name: LMTrainer(cfg, corpora, 257) for name, cfg in configs.items()}
        for name, t in trainers.items():
            params[name] = sum(p.numel() for p in t.model.parameters())
            t._start_task(1)
        for step in range(steps + 10):
            for name, t in trainers.items():
                started = time.perf_counter()
                t.step(1, step)
                if step >= 10:
                    rates[name].append(tokens / (time.perf_counter() - started))
    lines = ["| model | parameters | tokens/s (median step) | tokens/s (fastest step) | steps timed |",
             "|---|---|---|---|---|"]
    lines += [f"| {name} | {params[name]:,} | {statistics.median(r):.0f} | {max(r):.0f} | {len(r)} |"
              for name, r in rates.items()]
    lib, second = (rates[k] for k in rates)
    lines += ["", f"{other} / library GPT throughput: **{statistics.median(second) / statistics.median(lib):.3f}** "
                  f"by median step, {max(second) / max(lib):.3f} by fastest step."]
    return lines


def memory(tmp: Path) -> list[str]:
    from speed import measure

    lines = ["| corpus B (python, training tokens) | peak RSS MiB |", "|---|---|"]
    for chars in (700_000, 7_000_000):
        data = tmp / f"data{chars}"
        headers = prepare(["A=offline:prose", "B=offline:python"], data, max_chars=chars)
        out = tmp / f"run{chars}"
        _, rss = measure([sys.executable, "-m", "lifelong", "lm", "train", "--data", str(data), "--stream", "A,B",
                          "--steps", "20", "--out", str(out), "--quiet", "--eval-tokens", "4096",
                          *[a for k, v in MODEL.items() for a in (f"--{k.replace('_', '-')}", str(v))]])
        lines.append(f"| {headers[1]['train_tokens']:,} | {rss:.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--memory", action="store_true", help="also the RSS of runs on a corpus 10x larger")
    parser.add_argument("--against", choices=sorted(AGAINST), default=None,
                        help="the library GPT against transformers' GPT-2 (hf) or itself compiled, instead")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        prepare(["A=offline:prose", "B=offline:python"], data, max_chars=1_000_000)
        lines = [f"GPT {MODEL['n_layer']} layers x {MODEL['n_embd']} wide, {MODEL['n_head']} heads, block "
                 f"{MODEL['block_size']}, batch {MODEL['batch_size']}, byte tokens; {args.steps} timed steps, "
                 f"{args.repeats} repeats, the two loops interleaved step by step; one thread; {platform.processor() or platform.machine()}, "
                 f"{os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__}, "
                 f"{time.strftime('%Y-%m-%d')}", ""]
        if args.against:
            lines[0] = lines[0].replace("the two loops", "the two models")
            lines += side_by_side(data, args.repeats, args.steps, args.against)
        else:
            lines += speed(data, args.repeats, args.steps)
        if args.memory:
            lines += [""] + memory(Path(tmp))
    flags = (f" --repeats {args.repeats} --steps {args.steps}" + (" --memory" if args.memory else "")
             + (f" --against {args.against}" if args.against else ""))
    lines += ["", f"Command: `OMP_NUM_THREADS=1 python benchmarks/lm_speed.py{flags}`"]
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / (f"lm_speed_{args.against}.md" if args.against else "lm_speed.md")).write_text(text)


if __name__ == "__main__":
    main()
