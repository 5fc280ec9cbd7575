"""The offline corpus shift of docs/LM.md: a small GPT trained on corpus A (English prose of the
Python documentation), then continued on corpus B (standard-library Python source, no docstrings
or comments), with replay 0, 5 and 25% of A and two learning-rate schedules on B: ``constant``
(no re-warming: B at the final learning rate of A's cosine) and ``rewarm`` (re-warm to the peak
and re-decay over B, Ibrahim et al. 2024). Prints a markdown table and writes
benchmarks/lm_shift.md.

    python benchmarks/lm_shift.py [--steps 400] [--seed 0] [--out runs/lm-shift]

Each run is one ``lifelong lm train`` process (the command is printed above the table); one
seed (3 seeds are for a later session).
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
GRID = [(schedule, replay) for schedule in ("constant", "rewarm") for replay in ("0", "0.05", "0.25")]


def lifelong(*args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent / "src")}
    subprocess.run([sys.executable, "-m", "lifelong", *args], check=True, env=env, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="steps per corpus")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-chars", type=int, default=3_000_000)
    parser.add_argument("--out", default="runs/lm-shift")
    args = parser.parse_args()
    out = Path(args.out)
    data = out / "data"
    prep = ["lm", "prepare", "--corpus", "A=offline:prose", "--corpus", "B=offline:python", "--max-chars",
            str(args.max_chars), "--out", str(data)]
    lifelong(*prep)
    common = ["lm", "train", "--data", str(data), "--stream", "A,B", "--steps", str(args.steps), "--seed",
              str(args.seed), "--eval-every", str(max(args.steps // 4, 1)), *MODEL, "--quiet", "--overwrite"]
    rows = []
    for schedule, replay in GRID:
        run = out / f"{schedule}-replay{replay}"
        started = time.perf_counter()
        lifelong(*common, "--schedule", schedule, "--replay", replay, "--out", str(run))
        doc = json.loads((run / "metrics.json").read_text())
        L = doc["loss_matrix"]
        rows.append(f"| {schedule} | {float(replay) * 100:g}% | {L[0][0]:.3f} | {L[1][0]:.3f} | {L[1][0] - L[0][0]:+.3f} "
                    f"| {L[1][1]:.3f} | {sum(L[1]) / 2:.3f} | {time.perf_counter() - started:.0f} |")
    lines = [f"{args.steps} steps per corpus x 16 windows x 128 byte tokens; seed {args.seed}; "
             f"{platform.processor() or platform.machine()}, one thread, Python {platform.python_version()}, "
             f"{time.strftime('%Y-%m-%d')}", "",
             "```", "python -m lifelong " + " ".join(prep),
             "python -m lifelong " + " ".join(common).replace(" --quiet --overwrite", "")
             + " --schedule SCHEDULE --replay R --out RUN", "```", "",
             "| schedule on B | replay of A | loss A after A | loss A after B | forgetting of A | loss B after B | "
             "mean after B | wall s |", "|---|---|---|---|---|---|---|---|", *rows, "",
             "Losses: held-out next-token cross-entropy, nats per byte (16,384 held-out tokens per corpus).",
             "", f"Command: `python benchmarks/lm_shift.py --steps {args.steps} --seed {args.seed} --max-chars "
             f"{args.max_chars} --out {args.out}`"]
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / "lm_shift.md").write_text(text)


if __name__ == "__main__":
    main()
