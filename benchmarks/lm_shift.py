"""The offline corpus shift of docs/LM.md: a small GPT trained on one corpus, then continued on
the other. Corpus A is English prose of the Python documentation; corpus B is standard-library
Python source without docstrings or comments. Prints a markdown table and writes
benchmarks/lm_shift.md.

    python benchmarks/lm_shift.py [--grid main|extra|gere|gere-dynamic|recap|recap-t|mer-reference|all]
                                  [--steps 400] [--seeds 0,1,2] [--out runs/lm-shift]

``main`` is A then B with replay 0, 5 and 25% of A, under two learning-rate schedules on B
(and 1 and 50% re-warmed). ``constant`` does not re-warm: B trains at the final learning rate of
A's cosine. ``rewarm`` re-warms to the peak and re-decays over B (Ibrahim et al. 2024). Its last
row is their baseline: one task on A and B joined (``--stream A+B``), from scratch, for as many
steps as the two corpora together, with one warm-up and cosine. ``extra`` adds the infinite
schedule (replay 0, 5 and 25%), efficient MER on top of re-warming with 25% replay, and the
reverse order B then A (re-warmed, replay 0 and 25%) with its joint baseline (``--stream B+A``).
``gere`` is GeRe's threshold-margin term (weights 1 and 100, the reference's default) on top of
re-warming without replay; ``gere-dynamic`` the reference's dynamic weight (``--gere 1
--gere-weighting dynamic``) without replay and with 5%. ``recap`` is RECAP's adaptive weights
over the corpora's losses (``--recap 10``, the paper's W; T 5) on top of re-warming with 5 and
25% replay; ``recap-t`` the same at T 0.5 and 0.1. Runs that log loss weights (RECAP's λ,
GeRe's dynamic w) get a second table of them. ``mer-reference`` is efficient MER at the
reference's k 500 and β 0.01 with 25% replay, beside the same run without MER (for runs long
enough to hold several k: ``--steps 1000`` or more).

Each run is one ``lifelong lm train`` process; the command is printed above the table. Seed K's runs
go to ``OUT-seedK``, in folders named by their settings; a finished one is reused (delete it to
train it again). With several seeds the table gives mean ± standard deviation.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from lifelong.metrics import mean_std  # noqa: E402

HERE = Path(__file__).resolve().parent
MODEL = ["--n-layer", "2", "--n-head", "4", "--n-embd", "128", "--block-size", "128", "--batch-size", "16",
         "--lr", "2e-3", "--min-lr", "2e-4", "--warmup", "20", "--eval-tokens", "16384"]
INFINITE = ["--const-lr", "1e-3", "--cooldown", "100", "--anneal", "80"]
MER = ["--mer-k", "100", "--mer-beta", "0.5"]
GERE = [("A,B", "rewarm", "0", ["--gere", w], f"GeRe w {w}, 64 windows, 4 a step") for w in ("1", "100")]
MER_REFERENCE = ["--mer-k", "500", "--mer-beta", "0.01"]  # the reference's defaults
MER_REF = [("A,B", "rewarm", "0.25", MER_REFERENCE, "MER k 500, β 0.01"), ("A,B", "rewarm", "0.25", [], "-")]
RECAP = [("A,B", "rewarm", replay, ["--recap", "10"], "RECAP W 10, T 5") for replay in ("0.05", "0.25")]
RECAP_T = [("A,B", "rewarm", replay, ["--recap", "10", "--recap-temperature", t], f"RECAP W 10, T {t}")
           for t in ("0.5", "0.1") for replay in ("0.05", "0.25")]
GERE_DY = [("A,B", "rewarm", replay, ["--gere", "1", "--gere-weighting", "dynamic"],
            "GeRe dynamic w, 64 windows, 4 a step") for replay in ("0", "0.05")]
# (stream, schedule, replay, extra flags, what the extra flags are called in the table)
MAIN = ([("A,B", "constant", replay, [], "-") for replay in ("0", "0.05", "0.25")]
        + [("A,B", "rewarm", replay, [], "-") for replay in ("0", "0.01", "0.05", "0.25", "0.5")]
        + [("A+B", "rewarm", "0", [], "joint, 2x steps")])
EXTRA = ([("A,B", "infinite", replay, INFINITE, "const 1e-3, cool-down 100, anneal 80")
          for replay in ("0", "0.05", "0.25")]
         + [("A,B", "rewarm", "0.25", MER, "MER k 100, β 0.5"), ("B,A", "rewarm", "0", [], "-"),
            ("B,A", "rewarm", "0.25", [], "-"), ("B+A", "rewarm", "0", [], "joint, 2x steps")])


def lifelong(*args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent / "src")}
    subprocess.run([sys.executable, "-m", "lifelong", *args], check=True, env=env, stdout=subprocess.DEVNULL)


def folder(stream: str, schedule: str, replay: str, extra: list[str]) -> str:
    if "+" in stream:
        return "joint-" + stream.replace("+", "")
    prefix = "" if stream == "A,B" else stream.replace(",", "") + "-"
    gere = f"-gere{extra[extra.index('--gere') + 1]}" if "--gere" in extra else ""
    mer = "" if "--mer-k" not in extra else "-mer" + ("" if extra[extra.index("--mer-k") + 1] == "100" else
                                                     extra[extra.index("--mer-k") + 1])
    recap = f"-recap{extra[extra.index('--recap') + 1]}" if "--recap" in extra else ""
    recap += f"-T{extra[extra.index('--recap-temperature') + 1]}" if "--recap-temperature" in extra else ""
    gere += "-dy" if "dynamic" in extra else ""
    return prefix + f"{schedule}-replay{replay}" + mer + gere + recap


def values(run: Path) -> list[float | None]:
    """loss of the first corpus after it, after the second; forgetting; loss of the second; mean.
    A joint run (one task) has no loss after the first corpus alone, nor forgetting."""
    L = json.loads((run / "metrics.json").read_text())["loss_matrix"]
    if len(L) == 1:
        return [None, L[0][0], None, L[0][1], sum(L[0]) / 2]
    return [L[0][0], L[1][0], L[1][0] - L[0][0], L[1][1], sum(L[1]) / 2]


def cell(seeds: list[float | None], signed: bool = False) -> str:
    if None in seeds:
        return "-"
    mean, std = mean_std(seeds)
    shown = f"{mean:+.3f}" if signed else f"{mean:.3f}"
    return shown if len(seeds) == 1 else f"{shown} ± {std:.3f}"


def train_seed(args: argparse.Namespace, seed: int, grid: list) -> tuple[list[list[float]], list[str], list[str]]:
    """Each grid point's values for one seed (training what is not finished), and the commands."""
    out = Path(f"{args.out}-seed{seed}")
    data = out / "data"
    prep = ["lm", "prepare", "--corpus", "A=offline:prose", "--corpus", "B=offline:python", "--max-chars",
            str(args.max_chars), "--out", str(data)]
    if not (data / "B.json").is_file():
        lifelong(*prep)
    common = ["lm", "train", "--data", str(data), "--steps", str(args.steps), "--seed", str(seed),
              "--eval-every", str(max(args.steps // 4, 1)), *MODEL]
    found = []
    for stream, schedule, replay, extra, _ in grid:
        run = out / folder(stream, schedule, replay, extra)
        steps = ["--steps", str(args.steps * 2)] if "+" in stream else []
        if not (run / "metrics.json").is_file() or not json.loads((run / "metrics.json").read_text())["complete"]:
            lifelong(*common, *steps, "--stream", stream, "--schedule", schedule, "--replay", replay, *extra,
                     "--out", str(run), "--quiet", "--overwrite")
        found.append(values(run))
    return found, prep, common


def weight_row(args: argparse.Namespace, seeds: list[int], point: tuple, key: str) -> tuple[list[int], str]:
    """The evaluation steps of the second corpus, and the row of ``key``'s mean ± standard
    deviation over the seeds there (RECAP: the first corpus's λ)."""
    stream, schedule, replay, extra, note = point
    runs = [Path(f"{args.out}-seed{k}") / folder(stream, schedule, replay, extra) for k in seeds]
    later = [[p for p in json.loads((r / "metrics.json").read_text())["curve"] if p["task"] == 1] for r in runs]
    shown = []
    for at in zip(*later):
        found = [p.get(key) for p in at]
        shown.append(cell([v[0] if isinstance(v, list) else v for v in found]))
    what = "λ of the first" if key == "recap_weights" else "w"
    return [p["step"] for p in later[0]], f"| {float(replay) * 100:g}% | {note} | {what} | " + " | ".join(shown) + " |"


def weight_lines(args: argparse.Namespace, seeds: list[int], grid: list) -> list[str]:
    """A table of the logged loss weights (RECAP's λ of the first corpus, GeRe's dynamic w) at each
    evaluation while the second corpus trains, over the seeds; none when no run logs them."""
    rows, steps = [], []
    for point in grid:
        key = "recap_weights" if "--recap" in point[3] else "gere_weight" if "dynamic" in point[3] else None
        if key is not None:
            steps, row = weight_row(args, seeds, point, key)
            rows.append(row)
    if not rows:
        return []
    return ["", "Logged weights while the second corpus trains (the latest step's, at each evaluation; mean ± "
            "standard deviation over the seeds):", "", "| replay | extra | weight | " + " | ".join(f"step {s}" for s in steps) + " |",
            "|---|---|---|" + "---|" * len(steps), *rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=("main", "extra", "gere", "gere-dynamic", "recap", "recap-t", "mer-reference",
                                           "all"), default="main")
    parser.add_argument("--steps", type=int, default=400, help="steps per corpus")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds; each in OUT-seedK (default 0)")
    parser.add_argument("--max-chars", type=int, default=3_000_000)
    parser.add_argument("--out", default="runs/lm-shift")
    args = parser.parse_args()
    seeds = [int(k) for k in args.seeds.split(",")]
    grid = {"main": MAIN, "extra": EXTRA, "gere": GERE, "gere-dynamic": GERE_DY, "recap": RECAP, "recap-t": RECAP_T,
            "mer-reference": MER_REF, "all": MAIN + EXTRA + GERE + GERE_DY + RECAP + RECAP_T}[args.grid]
    per_seed = []
    for seed in seeds:
        found, prep, common = train_seed(args, seed, grid)
        per_seed.append(found)
    rows = []
    for i, (stream, schedule, replay, _, note) in enumerate(grid):
        first, second = stream.replace("+", ",").split(",")
        cells = [cell([per_seed[k][i][c] for k in range(len(seeds))], signed=c == 2) for c in range(5)]
        rows.append(f"| {first} {'∪' if '+' in stream else '→'} {second} | {schedule} | {float(replay) * 100:g}% | {note} | " + " | ".join(cells) + " |")
    spread = "mean ± standard deviation over seeds " if len(seeds) > 1 else "seed "
    lines = [f"{args.steps} steps per corpus x 16 windows x 128 byte tokens; {spread}{args.seeds}; "
             f"{platform.processor() or platform.machine()}, one thread per run, Python {platform.python_version()}, "
             f"{time.strftime('%Y-%m-%d')}", "",
             "```", "python -m lifelong " + " ".join(prep).replace(f"-seed{seeds[-1]}", "-seedK"),
             "python -m lifelong " + " ".join(common).replace(f"-seed{seeds[-1]}", "-seedK").replace(
                 f"--seed {seeds[-1]}", "--seed K") + " --stream A,B --schedule SCHEDULE --replay R [EXTRA] --out RUN",
             "```", f"(EXTRA: infinite `{' '.join(INFINITE)}`; MER `{' '.join(MER)}`; GeRe `--gere W`, dynamic "
             "`--gere 1 --gere-weighting dynamic`; RECAP `--recap 10 [--recap-temperature T]`)", "",
             "| stream | schedule on the second | replay of the first | extra | loss first after first | "
             "loss first after second | forgetting of the first | loss second after second | mean after second |",
             "|---|---|---|---|---|---|---|---|---|", *rows, "",
             "Losses: held-out next-token cross-entropy, nats per byte (16,384 held-out tokens per corpus).",
             "", f"Command: `python benchmarks/lm_shift.py --grid {args.grid} --steps {args.steps} --seeds {args.seeds} "
             f"--max-chars {args.max_chars} --out {args.out}`", *weight_lines(args, seeds, grid)]
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / "lm_shift.md").write_text(text)


if __name__ == "__main__":
    main()
