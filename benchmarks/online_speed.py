"""Cost of the online protocol: online ER with anytime evaluation every 1000 examples against
offline one-epoch ER, end to end, on Split-MNIST (MLP, buffer 500). Prints a markdown table and
writes benchmarks/online_speed.md.

    python benchmarks/online_speed.py [--repeats 3]

Both are whole `lifelong run` processes (imports, data, training, evaluation); on Split-MNIST the
published offline ER settings are batch 10, replay batch 10, one epoch, which are also the online
protocol's, so the difference is the anytime evaluation (65 evaluations of up to the 10,000 test
images: 59 every 1000 examples and 5 task ends) and its bookkeeping. The two runs alternate, so
that other load on a shared machine falls on both alike; ratios are given by median and by
minimum over the repeats (the minimum is the least disturbed). Target: within 1.2x.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from speed import measure  # noqa: E402

RUNS = {"offline ER, 1 epoch": [], "online ER, anytime evaluation every 1000": ["--online", "--eval-every", "1000"]}


def one_run(extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        wall, rss = measure([sys.executable, "-m", "lifelong", "run", "--method", "er", "--quiet", "--out", str(out),
                             *extra])
        doc = json.loads((out / "metrics.json").read_text())
    online = doc.get("online") or {}
    return {"wall": wall, "rss": rss, "steps": doc["steps"], "eval": online.get("eval_seconds"),
            "evaluations": online.get("evaluations"), "a_auc": online.get("a_auc"),
            "class_il": doc["class_il"]["average_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--note", default="", help="a note on the machine's load, added below the table")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {name: [] for name in RUNS}
    for _ in range(args.repeats):
        for name, extra in RUNS.items():
            results[name].append(one_run(extra))
    walls = {name: [r["wall"] for r in rs] for name, rs in results.items()}
    offline, online = (walls[name] for name in RUNS)
    lines = [f"Split-MNIST, MLP, ER, buffer 500, batch 10 + replay 10, one pass; {args.repeats} repeats, alternating; "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
             f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}", "",
             "| run | wall s (median) | wall s (min) | steps | anytime evaluations | evaluation s (median) | "
             "class-IL avg. acc. | A_auc |", "|---|---|---|---|---|---|---|---|"]
    for name, rs in results.items():
        last = rs[-1]
        evaluation = "-" if last["eval"] is None else f"{statistics.median(r['eval'] for r in rs):.2f}"
        count = "-" if last["evaluations"] is None else f"{last['evaluations']} + 5 task ends"
        a_auc = "-" if last["a_auc"] is None else f"{last['a_auc']:.2f}"
        lines.append(f"| {name} | {statistics.median(walls[name]):.2f} | {min(walls[name]):.2f} | {last['steps']} | "
                     f"{count} | {evaluation} | {last['class_il']:.2f} | {a_auc} |")
    median_ratio = statistics.median(online) / statistics.median(offline)
    lines += ["", f"Online / offline wall time: **{median_ratio:.2f}x** by median, {min(online) / min(offline):.2f}x "
                  f"by minimum (target: within 1.2x)."]
    if args.note:
        lines += ["", args.note]
    lines += ["", f"Command: `python benchmarks/online_speed.py --repeats {args.repeats}`"]
    text = "\n".join(lines) + "\n"
    print(text)
    (HERE / "online_speed.md").write_text(text)


if __name__ == "__main__":
    main()
