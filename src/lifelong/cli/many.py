"""The commands of many runs, `lifelong run --seeds`, `lifelong compare` and `lifelong sweep`:
their flags checked, their runs started through :mod:`lifelong.runs.parallel`, one line per run
as it ends, the summary printed, and one line on how to continue after a stop."""
from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path
from typing import Iterator

from lifelong.cli.parser import flags_of
from lifelong.errors import UserError


def _jobs(jobs: int | None, runs: list) -> int:
    from lifelong.runs.parallel import choose_jobs

    return choose_jobs(jobs, runs)


def _outcome(doc: dict) -> str:
    """What happened to one run of ``--seeds``, a sweep or a comparison, for its line: its
    accuracies, or how far it got and why it stopped."""
    from lifelong.metrics import is_complete
    from lifelong.runs.parallel import outcome

    if is_complete(doc):
        return (f"class-IL {doc['class_il']['average_accuracy']:6.2f}  task-IL {doc['task_il']['average_accuracy']:6.2f}"
                f"  {doc['wall_seconds']:.1f} s")
    return f"{outcome(doc)}; left out of the summary"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _stop_line(counts: dict[str, int], root: Path, out_given: bool) -> str:
    """The one line after a stop request: what was done, and how to continue."""
    again = "run the same command again" + ("" if out_given else f" with --out {root}")
    done = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    return (f"lifelong: stopped on request ({done}); to continue, {again}: complete runs are reused and "
            f"interrupted ones resume from their checkpoints")


@contextlib.contextmanager
def finishing() -> Iterator[None]:
    """SIGINT and SIGTERM ignored while the block runs: around the runs of a command of many runs
    (whose own stop request takes them while runs are in flight: :func:`lifelong.runs.parallel.run_all`)
    and what follows them, and after a run's training, while what was done is written and
    printed. There is nothing left to stop then, and a stop would cut the summary short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _summary_lines(rows: list[dict]) -> list[str]:
    labels = {"class_il.average_accuracy": "class-IL average accuracy", "task_il.average_accuracy":
              "task-IL average accuracy", "class_il.forgetting": "class-IL forgetting",
              "class_il.backward_transfer": "class-IL backward transfer",
              "class_il.average_incremental_accuracy": "class-IL avg. incremental acc.", "wall_seconds": "wall seconds"}
    if any(key in rows[0] for key in ("online.a_auc", "online.a_last")):  # runs with anytime evaluation
        labels = {**labels, "online.a_auc": "A_auc (anytime accuracy)", "online.a_last": "A_last (anytime, last)"}
        labels["wall_seconds"] = labels.pop("wall_seconds")
    lines = []
    for key, label in labels.items():
        stat = rows[0].get(key)
        lines.append(f"  {label:<32}" + ("-" if stat is None else f"{stat['mean']:8.2f} ± {stat['std']:.2f}"))
    return lines


def _many_runs_flags(args: argparse.Namespace, command: str) -> tuple[dict, dict, str | None]:
    """The flags and config-file values of ``--seeds`` or ``compare``, and the folder given
    (``--out`` or the file's ``out:``); refused: what cannot apply to many runs."""
    continues = "complete runs in its folder are reused and interrupted ones resumed"
    if args.resume:
        raise UserError(f"{command} continues by itself: run the same command again (with the same --out); "
                        f"{continues}. Drop --resume")
    flags, file_values = flags_of(args)
    if "seed" in flags or "seed" in file_values:
        where = "--seed" if "seed" in flags else f"`seed:` from {args.config}"
        raise UserError(f"{command} runs every seed of --seeds; drop {where}")
    if flags.get("overwrite") or file_values.get("overwrite"):
        raise UserError(f"{command} needs no --overwrite: {continues}; to start over, remove the folder or choose "
                        f"another --out")
    out = flags.pop("out", None) or file_values.pop("out", None)
    return flags, file_values, out


def _dry_run(header: str, labels: list[str], configs: list) -> int:
    """``--dry-run`` of many runs: check each as a run's dry run does, before anything is printed
    (a mistake is one line); then say what would happen to each (start, resume, reuse, or refuse
    a folder holding a run of other settings); write nothing. Exit code 2, with the command's
    own refusal, when a folder would be refused."""
    from lifelong.runs.parallel import plan
    from lifelong.runs.reuse import refusal

    words = {"start": "would start", "resume": "would resume from its checkpoint",
             "complete": "complete, would be reused", "other": "would be refused: holds a run with other settings"}
    found = [plan(config) for config in configs]
    print(header, file=sys.stderr)
    for label, config, state in zip(labels, configs, found):
        how = f" ({state.other})" if state.other else ""
        print(f"{label}: {words[state.state]}{how} -> {config.out}")
    message = refusal(configs, found)
    if message:
        raise UserError(message)
    print(f"lifelong: {_plural(len(configs), 'run')} checked (configuration, data and model); nothing was trained "
          f"or written", file=sys.stderr)
    return 0


def seeds_command(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from lifelong.runs.compare import parse_seeds
    from lifelong.config import default_folder, make_config, method_name
    from lifelong.metrics import count_complete
    from lifelong.runs.folder import CommandLock, check_runs_folder
    from lifelong.runs.parallel import run_all, stopped, tally
    from lifelong.runs.session import check_run
    from lifelong.runs.sweep import Point, summarize, write_tables

    seeds = parse_seeds(args.seeds)
    flags, file_values, out = _many_runs_flags(args, "--seeds")
    config = make_config(file_values, flags)
    method = method_name(config.method)
    root = Path(out) if out else default_folder(config.benchmark, method, "seeds")
    check_runs_folder(root)
    check_run(config)  # the user's code, the recipe, ...: a mistake is refused before the first line
    configs = [replace(config, seed=s, out=str(root / f"seed-{s}")) for s in seeds]
    jobs = _jobs(args.jobs, configs)
    header = f"lifelong: {method} on {config.benchmark}, seeds {seeds}, {jobs} job(s) -> {root}"
    if args.dry_run:
        return _dry_run(header, [f"seed {s}" for s in seeds], configs)
    with CommandLock(root):  # one command of many runs in a folder at a time; else refused in one line
        print(header, file=sys.stderr)

        def report(i: int, doc: dict) -> None:
            print(f"  seed {doc['seed']}: {_outcome(doc)}", file=sys.stderr)

        with finishing():
            docs = run_all(configs, jobs, report)
            rows = summarize([Point({"method": method}, configs, root)], [docs])
            write_tables(rows, root)
            print(f"{config.benchmark} | {method} | seeds {seeds} | "
                  f"{count_complete(len(rows[0]['complete_seeds']), len(seeds))} (mean ± std of the complete runs)")
            print("\n".join(_summary_lines(rows)))
            print(f"results in {root} (summary.md, summary.csv)")
            if stopped(docs):
                print(_stop_line(tally(docs), root, out is not None), file=sys.stderr)
                return 130
            return 0 if rows[0]["complete"] else 1


def sweep_command(args: argparse.Namespace) -> int:
    from lifelong.runs.folder import CommandLock
    from lifelong.runs.parallel import run_all, stopped, tally
    from lifelong.runs.sweep import expand_sweep, summarize, write_tables

    sweep = expand_sweep(Path(args.file), args.out)
    points = sweep.points
    configs = [c for p in points for c in p.configs]
    jobs = _jobs(args.jobs, configs)
    root = points[0].folder.parent
    left_out = f" ({_plural(sweep.duplicates, 'duplicate grid point')} left out)" if sweep.duplicates else ""
    header = (f"lifelong: sweep of {_plural(len(points), 'configuration')}{left_out} x "
              f"{_plural(len(points[0].configs), 'seed')} = {len(configs)} runs, {jobs} job(s) -> {root}")
    if args.dry_run:
        return _dry_run(header, [f"seed {c.seed} {p.folder.name}" for p in points for c in p.configs], configs)
    with CommandLock(root):  # one command of many runs in a folder at a time; else refused in one line
        print(header, file=sys.stderr)
        done = [0]

        def report(i: int, doc: dict) -> None:
            done[0] += 1
            if not args.quiet:
                print(f"  [{done[0]}/{len(configs)}] {configs[i].out}: {_outcome(doc)}", file=sys.stderr)

        with finishing():
            docs = run_all(configs, jobs, report)
            per_point, i = [], 0
            for p in points:
                per_point.append(docs[i:i + len(p.configs)])
                i += len(p.configs)
            rows = summarize(points, per_point)
            _, md = write_tables(rows, root)
            print(md.read_text(), end="")
            print(f"results in {root} (summary.md, summary.csv)")
            if stopped(docs):
                print(_stop_line(tally(docs), root, True), file=sys.stderr)
                return 130
            return 0 if all(r["complete"] for r in rows) else 1


def compare_command(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from lifelong.runs.compare import comparison_runs, format_comparison, parse_seeds, run_comparison
    from lifelong.config import default_folder, make_config, method_name
    from lifelong.runs.folder import CommandLock, check_runs_folder
    from lifelong.runs.session import check_run

    seeds = parse_seeds(args.seeds)
    flags, file_values, out = _many_runs_flags(args, "compare")
    config = make_config(file_values, flags)
    method = method_name(config.method)
    root = Path(out) if out else default_folder("compare", config.benchmark, method)
    check_runs_folder(root)
    runs = comparison_runs(replace(config, out=None), seeds, root)
    jobs = _jobs(args.jobs, [c for _, _, c in runs])
    for _, _, variant in runs[:2]:  # without and with refresh: a mistake is refused before the first line
        check_run(variant)
    form = config.refresh.get("form", "paper") if isinstance(config.refresh, dict) else config.refresh or "paper"
    header = (f"lifelong: comparing {method} on {config.benchmark} without and with refresh ({form}), "
              f"seeds {seeds} -> {root}")
    if args.dry_run:
        return _dry_run(header, [f"seed {seed} {variant}" for variant, seed, _ in runs], [c for _, _, c in runs])
    with CommandLock(root):  # one command of many runs in a folder at a time; else refused in one line
        print(header, file=sys.stderr)

        def report(variant: str, seed: int, doc: dict) -> None:
            print(f"  seed {seed} {variant:<8} {_outcome(doc)}", file=sys.stderr)

        with finishing():
            try:
                summary = run_comparison(replace(config, out=None), seeds, root, jobs=jobs, report=report)
            except OSError as exc:
                raise UserError(f"cannot write to {root}: {exc.strerror or exc}; choose another --out") from None
            print(format_comparison(summary))
            print(f"results in {root}")
            if summary["stopped"]:
                print(_stop_line(summary["runs"], root, out is not None), file=sys.stderr)
                return 130
            return 0 if summary["complete"] else 1
