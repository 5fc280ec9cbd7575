"""The commands of many runs, `lifelong run --seeds`, `lifelong compare` and `lifelong sweep`:
their flags checked, their runs planned and run by :mod:`lifelong.runs.sweep` and
:mod:`lifelong.runs.compare`, one line printed per run as it ends, then the summary, and one
line on how to continue after a stop."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from lifelong.cli.parser import flags_of
from lifelong.errors import UserError


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


def _stop_line(counts: dict[str, int], again: dict[str, int], root: Path, out_given: bool) -> str:
    """The one line after a stop request: what was done (``counts``), how to continue, and what
    continuing does with the runs (``again``, :func:`lifelong.runs.parallel.next_time`)."""
    command = "run the same command again" + ("" if out_given else f" with --out {root}")
    done = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
    one = {"complete": ("complete run is reused", "complete runs are reused"),
           "resume": ("run resumes from its checkpoint", "runs resume from their checkpoints"),
           "start": ("run starts from the beginning (no checkpoint)", "runs start from the beginning (no checkpoint)")}
    then = ", ".join(f"{n} {one[what][n != 1]}" for what, n in again.items() if n)
    return f"lifelong: stopped on request ({done}); to continue, {command}: {then}"


def _many_runs_flags(args: argparse.Namespace, command: str) -> tuple[dict, dict, str | None]:
    """The flags and config-file values of ``--seeds`` or ``compare``, and the folder given
    (``--out`` or the file's ``out:``); refused: what cannot apply to many runs."""
    continues = "complete runs in its folder are reused, interrupted ones resumed from a checkpoint if they have one"
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
        if state.state == "start" and (Path(config.out) / "config.yaml").is_file():  # a run with no checkpoint
            how = " over (no checkpoint)"
        print(f"{label}: {words[state.state]}{how} -> {config.out}")
    message = refusal(configs, found)
    if message:
        raise UserError(message)
    print(f"lifelong: {_plural(len(configs), 'run')} checked (configuration, data and model); nothing was trained "
          f"or written", file=sys.stderr)
    return 0


def _run_many(args: argparse.Namespace, header: str, root: Path, configs: list, labels: list[str],
              run: Callable[[], tuple[dict, str]], out_given: bool) -> int:
    """What the commands of many runs share: ``--dry-run`` (:func:`_dry_run`), or ``run()`` under
    the folder's command lock, its summary's text printed, and the exit code: 130 after a stop
    request (with how to continue), 1 when a run is not complete, else 0."""
    from lifelong.runs.folder import CommandLock
    from lifelong.runs.parallel import finishing, next_time

    if args.dry_run:
        return _dry_run(header, labels, configs)
    with CommandLock(root):  # one command of many runs in a folder at a time; else refused in one line
        print(header, file=sys.stderr)
        with finishing():
            summary, text = run()
            print(text)
            if summary["stopped"]:
                print(_stop_line(summary["runs"], next_time(configs), root, out_given), file=sys.stderr)
                return 130
            return 0 if summary["complete"] else 1


def seeds_command(args: argparse.Namespace) -> int:
    from lifelong.config import make_config
    from lifelong.runs.compare import parse_seeds
    from lifelong.runs.parallel import choose_jobs
    from lifelong.runs.sweep import format_seeds, run_sweep, seed_runs

    seeds = parse_seeds(args.seeds)
    flags, file_values, out = _many_runs_flags(args, "--seeds")
    config = make_config(file_values, flags)
    sweep = seed_runs(config, seeds, out)
    jobs = choose_jobs(args.jobs, sweep.configs)

    def report(i: int, doc: dict) -> None:
        print(f"  seed {doc['seed']}: {_outcome(doc)}", file=sys.stderr)

    def run() -> tuple[dict, str]:
        summary = run_sweep(sweep, jobs=jobs, report=report)
        return summary, f"{format_seeds(sweep, summary)}\nresults in {sweep.root} (summary.md, summary.csv)"

    header = (f"lifelong: {sweep.points[0].values['method']} on {config.benchmark}, seeds {seeds}, {jobs} job(s) "
              f"-> {sweep.root}")
    return _run_many(args, header, sweep.root, sweep.configs, [f"seed {s}" for s in seeds], run, out is not None)


def sweep_command(args: argparse.Namespace) -> int:
    from lifelong.runs.parallel import choose_jobs
    from lifelong.runs.sweep import expand_sweep, run_sweep

    sweep = expand_sweep(Path(args.file), args.out)
    configs = sweep.configs
    jobs = choose_jobs(args.jobs, configs)
    done = [0]

    def report(i: int, doc: dict) -> None:
        done[0] += 1
        if not args.quiet:
            print(f"  [{done[0]}/{len(configs)}] {configs[i].out}: {_outcome(doc)}", file=sys.stderr)

    def run() -> tuple[dict, str]:
        summary = run_sweep(sweep, jobs=jobs, report=report)
        return summary, f"{summary['table']}results in {sweep.root} (summary.md, summary.csv)"

    left_out = f" ({_plural(sweep.duplicates, 'duplicate grid point')} left out)" if sweep.duplicates else ""
    header = (f"lifelong: sweep of {_plural(len(sweep.points), 'configuration')}{left_out} x "
              f"{_plural(len(sweep.points[0].configs), 'seed')} = {_plural(len(configs), 'run')}, {jobs} job(s) -> "
              f"{sweep.root}")
    labels = [f"seed {c.seed} {p.folder.name}" for p in sweep.points for c in p.configs]
    return _run_many(args, header, sweep.root, configs, labels, run, True)


def compare_command(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from lifelong.config import make_config, method_name
    from lifelong.runs.compare import format_comparison, parse_seeds, plan_comparison, run_comparison
    from lifelong.runs.parallel import choose_jobs

    seeds = parse_seeds(args.seeds)
    flags, file_values, out = _many_runs_flags(args, "compare")
    config = make_config(file_values, flags)
    root, runs = plan_comparison(config, seeds, out)
    configs = [c for _, _, c in runs]
    jobs = choose_jobs(args.jobs, configs)

    def report(variant: str, seed: int, doc: dict) -> None:
        print(f"  seed {seed} {variant:<8} {_outcome(doc)}", file=sys.stderr)

    def run() -> tuple[dict, str]:
        try:
            summary = run_comparison(replace(config, out=None), seeds, root, jobs=jobs, report=report)
        except OSError as exc:
            raise UserError(f"cannot write to {root}: {exc.strerror or exc}; choose another --out") from None
        return summary, f"{format_comparison(summary)}\nresults in {root}"

    form = config.refresh.get("form", "paper") if isinstance(config.refresh, dict) else config.refresh or "paper"
    header = (f"lifelong: comparing {method_name(config.method)} on {config.benchmark} without and with refresh "
              f"({form}), seeds {seeds} -> {root}")
    labels = [f"seed {seed} {variant}" for variant, seed, _ in runs]
    return _run_many(args, header, root, configs, labels, run, out is not None)
