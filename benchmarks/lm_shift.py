"""The offline corpus shift of docs/LM.md: a small GPT trained on one corpus, then continued on
the other. Corpus A is English prose of the Python documentation; corpus B is standard-library
Python source without docstrings or comments. Prints a markdown table and writes
benchmarks/lm_shift.md.

    python benchmarks/lm_shift.py [--grid main|extra|all] [--steps 400] [--seed 0] [--out runs/lm-shift]

``main`` is A then B with replay 0, 5 and 25% of A, under two learning-rate schedules on B.
``constant`` does not re-warm: B trains at the final learning rate of A's cosine. ``rewarm``
re-warms to the peak and re-decays over B (Ibrahim et al. 2024). ``extra`` adds the infinite
schedule (replay 0 and 25%), efficient MER on top of re-warming with 25% replay, and the reverse
order B then A (re-warmed, replay 0 and 25%).

Each run is one ``lifelong lm train`` process; the command is printed above the table. Run folders
are named by their settings, and a finished one is reused (delete it to train it again). One seed;
3 seeds are for a later session.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODEL = ["--n-layer", "2", "--n-head", "4", "--n-embd", "128", "--block-size", "128", "--batch-size", "16",
         "--lr", "2e-3", "--min-lr", "2e-4", "--warmup", "20", "--eval-tokens", "16384"]
INFINITE = ["--const-lr", "1e-3", "--cooldown", "100", "--anneal", "80"]
MER = ["--mer-k", "100", "--mer-beta", "0.5"]
# (stream, schedule, replay, extra flags, what the extra flags are called in the table)
MAIN = [("A,B", schedule, replay, [], "-") for schedule in ("constant", "rewarm") for replay in ("0", "0.05", "0.25")]
EXTRA = [("A,B", "infinite", "0", INFINITE, "const 1e-3, cool-down 100, anneal 80"),
         ("A,B", "infinite", "0.25", INFINITE, "const 1e-3, cool-down 100, anneal 80"),
         ("A,B", "rewarm", "0.25", MER, "MER k 100, β 0.5"),
         ("B,A", "rewarm", "0", [], "-"), ("B,A", "rewarm", "0.25", [], "-")]


def lifelong(*args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent / "src")}
    subprocess.run([sys.executable, "-m", "lifelong", *args], check=True, env=env, stdout=subprocess.DEVNULL)


def folder(stream: str, schedule: str, replay: str, extra: list[str]) -> str:
    prefix = "" if stream == "A,B" else stream.replace(",", "") + "-"
    return prefix + f"{schedule}-replay{replay}" + ("-mer" if "--mer-k" in extra else "")


def row(run: Path, stream: str, schedule: str, replay: str, note: str, wall: float | None) -> str:
    L = json.loads((run / "metrics.json").read_text())["loss_matrix"]
    first, second = stream.split(",")
    took = "reused" if wall is None else f"{wall:.0f}"
    return (f"| {first} → {second} | {schedule} | {float(replay) * 100:g}% | {note} | {L[0][0]:.3f} | {L[1][0]:.3f} "
            f"| {L[1][0] - L[0][0]:+.3f} | {L[1][1]:.3f} | {sum(L[1]) / 2:.3f} | {took} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=("main", "extra", "all"), default="main")
    parser.add_argument("--steps", type=int, default=400, help="steps per corpus")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-chars", type=int, default=3_000_000)
    parser.add_argument("--out", default="runs/lm-shift")
    args = parser.parse_args()
    out = Path(args.out)
    data = out / "data"
    prep = ["lm", "prepare", "--corpus", "A=offline:prose", "--corpus", "B=offline:python", "--max-chars",
            str(args.max_chars), "--out", str(data)]
    if not (data / "B.json").is_file():
        lifelong(*prep)
    common = ["lm", "train", "--data", str(data), "--steps", str(args.steps), "--seed", str(args.seed),
              "--eval-every", str(max(args.steps // 4, 1)), *MODEL]
    grid = {"main": MAIN, "extra": EXTRA, "all": MAIN + EXTRA}[args.grid]
    rows = []
    for stream, schedule, replay, extra, note in grid:
        run = out / folder(stream, schedule, replay, extra)
        wall = None
        if not (run / "metrics.json").is_file() or not json.loads((run / "metrics.json").read_text())["complete"]:
            started = time.perf_counter()
            lifelong(*common, "--stream", stream, "--schedule", schedule, "--replay", replay, *extra,
                     "--out", str(run), "--quiet", "--overwrite")
            wall = time.perf_counter() - started
        rows.append(row(run, stream, schedule, replay, note, wall))
    lines = [f"{args.steps} steps per corpus x 16 windows x 128 byte tokens; seed {args.seed}; "
             f"{platform.processor() or platform.machine()}, one thread, Python {platform.python_version()}, "
             f"{time.strftime('%Y-%m-%d')}", "",
             "```", "python -m lifelong " + " ".join(prep),
             "python -m lifelong " + " ".join(common) + " --stream A,B --schedule SCHEDULE --replay R [EXTRA] --out RUN",
             "```", f"(EXTRA: infinite `{' '.join(INFINITE)}`; MER `{' '.join(MER)}`)", "",
             "| stream | schedule on the second | replay of the first | extra | loss first after first | "
             "loss first after second | forgetting of the first | loss second after second | mean after second "
             "| wall s |", "|---|---|---|---|---|---|---|---|---|---|", *rows, "",
             "Losses: held-out next-token cross-entropy, nats per byte (16,384 held-out tokens per corpus).",
             "", f"Command: `python benchmarks/lm_shift.py --grid {args.grid} --steps {args.steps} --seed {args.seed} "
             f"--max-chars {args.max_chars} --out {args.out}`"]
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / "lm_shift.md").write_text(text)


if __name__ == "__main__":
    main()
