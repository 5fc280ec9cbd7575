"""`lifelong edit lines` and `lifelong merge`: a fine-tuned run's weights edited, or runs
fine-tuned from one start merged (:mod:`lifelong.edit.run`), and a table of each task's accuracy."""
from __future__ import annotations

import argparse
import sys
from typing import Any


def accuracy_table(doc: dict[str, Any], scenario: str = "task_il") -> list[str]:
    """Per-task accuracy (percent) of the base, each source run and the result, one row each."""
    num = len(doc["accuracy"][scenario])
    lines = [f"{'accuracy (%), ' + scenario.replace('_', '-').replace('il', 'IL'):<28}"
             + "".join(f"{'t' + str(i + 1):>8}" for i in range(num))]
    rows = [("base", doc["before"]["base"])]
    rows += [(f"model {i + 1}", acc) for i, acc in enumerate(doc["before"]["source_runs"])]
    rows.append(("edited" if doc["kind"] == "edit" else "merged", doc["accuracy"]))
    for name, acc in rows:
        lines.append(f"{name:<28}" + "".join(f"{a:>8.2f}" for a in acc[scenario]))
    return lines


def _print(doc: dict[str, Any], out: str) -> None:
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in doc["params"].items())
    print(f"lifelong: {doc['method']} ({params}) of {', '.join(doc['source_runs'])} from {doc['base']}, "
          f"{doc['wall_seconds']:.2f} s")
    for scenario in ("class_il", "task_il"):
        print("\n".join(accuracy_table(doc, scenario)))
    print(f"lifelong: edited model and metrics in {out}" if doc["kind"] == "edit"
          else f"lifelong: merged model and metrics in {out}")


def edit_command(args: argparse.Namespace) -> int:
    from lifelong.edit.run import lines_run

    if args.edit_command != "lines":
        print("lifelong: error: choose an edit: lifelong edit lines --base ... --finetuned ... --alpha A --out DIR",
              file=sys.stderr)
        return 2
    doc = lines_run(args.base, args.finetuned, args.alpha, args.beta, args.out, device=args.device,
                    data_root=args.data_root)
    _print(doc, args.out)
    return 0


def merge_command(args: argparse.Namespace) -> int:
    from lifelong.edit.run import merge_runs

    doc = merge_runs(args.base, args.models, args.method, args.lam, args.k, args.lines, args.beta, args.out,
                     device=args.device, data_root=args.data_root)
    _print(doc, args.out)
    return 0
