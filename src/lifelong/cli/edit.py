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
    if "selection" in doc:
        sel = doc["selection"]
        print(f"lifelong: {sel['parameter']}={sel['chosen']:.4g} chosen on validation ({sel['validation_fraction']:.4g} "
              f"of each task's test examples, split seed {sel['split_seed']}); the accuracies above are the rest's")
    print(f"lifelong: edited model and metrics in {out}" if doc["kind"] == "edit"
          else f"lifelong: merged model and metrics in {out}")


def edit_command(args: argparse.Namespace) -> int:
    from lifelong.edit.run import lines_run

    if args.edit_command != "lines":
        print("lifelong: error: choose an edit: lifelong edit lines --base ... --finetuned ... --alpha A --out DIR",
              file=sys.stderr)
        return 2
    doc = lines_run(args.base, args.finetuned, args.alpha, args.beta, args.out, grid=args.grid,
                    validation_fraction=args.validation_fraction, device=args.device, data_root=args.data_root)
    _print(doc, args.out)
    return 0


def _print_rmm(doc: dict[str, Any], out: str) -> None:
    """Per-task accuracy of the base, every adapter kept, the plain merges and RMM at each basis size."""
    p = doc["params"]
    print(f"lifelong: rmm (a basis per {p['per']}) of {p['num_adapters']} adapters (rank {p['rank']}) of {', '.join(doc['source_runs'])}, "
          f"plain merges with alpha={p['lam']:.4g}, {doc['wall_seconds']:.2f} s")
    for scenario in ("class_il", "task_il"):
        num = len(doc["kept"][scenario])
        print(f"{'accuracy (%), ' + scenario.replace('_', '-').replace('il', 'IL'):<34}"
              + "".join(f"{'t' + str(i + 1):>8}" for i in range(num)) + f"{'mean':>8}{'ΔW err':>9}")
        rows = [("base", doc["before"]["base"], None), ("every adapter kept", doc["kept"], None),
                ("plain merge of ΔW", doc["plain"]["delta"], None), ("plain merge of A, B", doc["plain"]["factors"], None)]
        rows += [(f"rmm, basis {e['basis']}", e["accuracy"], e["reconstruction_error"]["delta_mean"])
                 for e in doc["per_basis"]]
        for name, acc, err in rows:
            values = acc[scenario]
            print(f"{name:<34}" + "".join(f"{a:>8.2f}" for a in values) + f"{sum(values) / len(values):>8.2f}"
                  + (f"{err:>9.4f}" if err is not None else ""))
    print(f"lifelong: rmm basis {p['basis']} (rmm.pt), base model and metrics in {out}")


def merge_command(args: argparse.Namespace) -> int:
    from lifelong.edit.run import merge_runs
    from lifelong.errors import ConfigError

    if args.method == "rmm":
        from lifelong.edit.rmm_run import rmm_runs

        given = [f for f, v in (("--base", args.base), ("--lam", args.lam), ("--beta", args.beta), ("--grid", args.grid),
                                ("--validation-fraction", args.validation_fraction)) if v is not None]
        given += ["--lines"] if args.lines else []
        if given:
            raise ConfigError(f"{given[0]} is not an option of rmm (its base is the lora runs' own model.pt; "
                              f"--alpha scales the plain merges)")
        if args.basis is None:
            raise ConfigError("rmm needs --basis K (1..number of adapters)")
        doc = rmm_runs(args.models, args.basis, args.alpha, args.out, per=args.basis_per, device=args.device,
                       data_root=args.data_root)
        _print_rmm(doc, args.out)
        return 0
    for flag, value in (("--basis", args.basis), ("--alpha", args.alpha)):
        if value is not None:
            raise ConfigError(f"{flag} is an option of --method rmm")
    if args.base is None:
        raise ConfigError("--base is required: the run (or model.pt) every model started from")
    doc = merge_runs(args.base, args.models, args.method, args.lam, args.k, args.lines, args.beta, args.out,
                     grid=args.grid, validation_fraction=args.validation_fraction, device=args.device,
                     data_root=args.data_root)
    _print(doc, args.out)
    return 0
