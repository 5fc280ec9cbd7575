"""The ``lifelong`` command. The only module that parses arguments or prints."""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from lifelong.errors import UserError


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters shown as escapes, so that a
    message quoting the user's input stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"lifelong: error: {one_line(message)} (see `{self.prog} --help`)\n")


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _param(text: str) -> tuple[str, Any]:
    from lifelong.config import parse_yaml

    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        parsed = parse_yaml(value) if value.strip() else value
    except Exception:  # anything YAML cannot read is kept as the string given
        parsed = value
    if isinstance(parsed, (dict, list)) or parsed is None:
        parsed = value
    return name.strip(), parsed


def _published(key: str) -> str:
    """The help's default for a setting the hyperparameter files give (one source: the config)."""
    from lifelong.config import LIBRARY_DEFAULTS

    fallback = "the batch size" if key == "replay_batch_size" else f"{LIBRARY_DEFAULTS[key]:g}"
    return (f"default: the method's published setting for the benchmark and buffer size (`lifelong list`), "
            f"else {fallback}")


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    from lifelong.config import RunConfig as C

    s = argparse.SUPPRESS  # absent flags stay absent, so a config file's values survive
    p.add_argument("--config", metavar="FILE", help="YAML file of settings; flags override it")
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue an interrupted run from its newest good checkpoint")
    p.add_argument("--benchmark", default=s, help=f"benchmark name (see `lifelong list`); default {C.benchmark}")
    p.add_argument("--method", default=s, help=f"method name (see `lifelong list`); default {C.method}")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", type=_param,
                   help="a method parameter, e.g. --param alpha=0.5 (repeatable); default: the published setting "
                        "for the benchmark and buffer size, else the preset's (`lifelong list --method NAME`)")
    p.add_argument("--buffer-size", type=_integer, default=s, help=f"replay memory size; default {C.buffer_size}")
    p.add_argument("--epochs", type=_integer, default=s, help=f"epochs per task; {_published('epochs')}")
    p.add_argument("--batch-size", type=_integer, default=s,
                   help=f"current-task batch size; {_published('batch_size')}")
    p.add_argument("--replay-batch-size", type=_integer, default=s,
                   help=f"examples replayed per step; {_published('replay_batch_size')}")
    p.add_argument("--lr", type=_number, default=s, help=f"SGD learning rate; {_published('lr')}")
    p.add_argument("--momentum", type=_number, default=s, help=f"SGD momentum; {_published('momentum')}")
    p.add_argument("--weight-decay", type=_number, default=s, help=f"SGD weight decay; {_published('weight_decay')}")
    p.add_argument("--seed", type=_integer, default=s, help=f"the one seed of the run; default {C.seed}")
    p.add_argument("--num-tasks", type=_integer, default=s, help="number of tasks; default: the benchmark's")
    p.add_argument("--shuffle-classes", action="store_true", default=s,
                   help="shuffle the class order by seed (default: the literature's fixed order)")
    p.add_argument("--backbone", default=s, help="mlp or resnet18; default: the benchmark's")
    p.add_argument("--data-root", default=s, help=f"folder of downloaded data sets; default {C.data_root}")
    p.add_argument("--download", action="store_true", default=s, help="fetch missing data sets (needs internet)")
    p.add_argument("--out", default=s, help="run folder; default runs/<benchmark>-<method>-<seed>-<time>")
    p.add_argument("--overwrite", action="store_true", default=s, help="reuse a non-empty run folder")
    p.add_argument("--device", default=s, help="cpu, cuda or auto (default)")
    p.add_argument("--threads", type=_integer, default=s,
                   help="CPU threads for torch (default 1: at continual-learning batch sizes a second thread buys "
                        "nothing, and runs side by side do not fight over the cores)")
    p.add_argument("--refresh", nargs="?", const=True, default=s, metavar="FORM",
                   help="add refresh learning to the method: 'paper' or 'code' form (alone: the config file's "
                        "form, else paper); sets only the form, the file's other refresh settings are kept")
    p.add_argument("--refresh-param", action="append", metavar="NAME=VALUE", type=_param,
                   help="one refresh setting, over the file's, e.g. --refresh-param gamma=1e-4 (repeatable; "
                        "see the README)")
    p.add_argument("--checkpoint-every", type=_integer, default=s, metavar="N",
                   help="checkpoint every N steps as well as at every task end; 0: task ends only "
                        f"(default {C.checkpoint_every})")
    p.add_argument("--on-nan", choices=["stop", "skip"], default=s,
                   help="on a non-finite loss: stop (default; a checkpoint from before is kept) or skip the step")
    p.add_argument("--deterministic", action="store_true", default=s,
                   help="PyTorch's deterministic algorithms (for bit-exact GPU runs; slower)")
    p.add_argument("--log", action="append", default=s, choices=["tensorboard", "wandb"],
                   help="also log to TensorBoard or Weights & Biases (JSON lines and CSV are always written)")
    p.add_argument("--log-every", type=_integer, default=s, metavar="N",
                   help=f"log the loss every N steps (default {C.log_every})")
    p.add_argument("--import", dest="imports", action="append", default=s, metavar="FILE_OR_MODULE",
                   help="Python file or module that registers your own terms or plug-ins (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--dry-run", action="store_true",
                   help="check the configuration, data and model, print the resolved configuration, train nothing")


def build_parser() -> argparse.ArgumentParser:
    from lifelong import __version__
    from lifelong.config import RunConfig

    parser = _Parser(prog="lifelong", description="Continual learning with PyTorch.")
    parser.add_argument("--version", action="version", version=f"lifelong {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = sub.add_parser("run", help="train a method on a benchmark and write a run folder")
    _add_run_flags(run)
    run.add_argument("--seeds", default=None, help="several seeds, e.g. 0-4: one run folder each, then mean ± std")
    run.add_argument("--jobs", type=_integer, default=None,
                     help="with --seeds: runs in parallel processes (default: one per CPU, at most one per run)")
    compare = sub.add_parser("compare", help="a method with and without refresh learning over several seeds")
    _add_run_flags(compare)
    compare.add_argument("--seeds", default="0-4", help="seeds, e.g. 0-4 or 0,1,2 (default %(default)s)")
    compare.add_argument("--jobs", type=_integer, default=None,
                         help="runs in parallel processes (default: one per CPU, at most one per run)")
    sweep = sub.add_parser("sweep", help="a grid of runs from a sweep file, then a summary table")
    sweep.add_argument("file", metavar="SWEEP.yaml", help="base settings, a grid of values, seeds (see the README)")
    sweep.add_argument("--jobs", type=_integer, default=None,
                       help="runs in parallel processes (default: one per CPU, at most one per run)")
    sweep.add_argument("--out", default=None, help="folder of the sweep's runs (default: the file's `out:`)")
    sweep.add_argument("--quiet", action="store_true", help="no line per finished run")
    report = sub.add_parser("report", help="an HTML page and PNG figures of finished runs")
    report.add_argument("runs", nargs="+", metavar="RUN_DIR",
                        help="run folders, or folders holding run folders (e.g. a sweep's or compare's)")
    report.add_argument("--out", default="report", help="folder for report.html and the figures (default ./report)")
    listing = sub.add_parser("list", help="list the benchmarks and methods")
    listing.add_argument("--method", default=None, metavar="NAME",
                         help="one preset in full: its recipe, parameters and published settings")
    listing.add_argument("--benchmark", default=RunConfig.benchmark, metavar="NAME",
                         help=f"show the settings runs use on this benchmark (default {RunConfig.benchmark})")
    listing.add_argument("--buffer-size", type=_integer, default=RunConfig.buffer_size, metavar="N",
                         help=f"... and with this buffer size (default {RunConfig.buffer_size})")
    listing.add_argument("--import", dest="imports", action="append", default=[], metavar="FILE_OR_MODULE",
                         help="your Python file or module that registers benchmarks, backbones, memories, terms or "
                              "plug-ins: they are listed too (repeatable)")
    return parser


def _list(args: argparse.Namespace) -> int:
    from lifelong.catalog import catalog, method_card
    from lifelong.runs.session import import_user_code

    import_user_code(args.imports)
    where = (args.benchmark, args.buffer_size)
    print("\n".join(method_card(args.method, *where) if args.method else catalog(*where)))
    return 0


class _Progress:
    """A progress bar per task (quiet when asked or when stderr is not a terminal)."""

    def __init__(self, num_tasks: int, quiet: bool) -> None:
        self.num_tasks, self.quiet = num_tasks, quiet
        self.bar = None
        self.count, self.loss_sum = 0, 0.0

    def task_start(self, task, steps: int) -> None:
        if not self.quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=steps, desc=f"task {task.index + 1}/{self.num_tasks}", unit="step",
                            leave=False, disable=None, file=sys.stderr, mininterval=0.25)
        self.count, self.loss_sum = 0, 0.0

    def step(self, loss: float | None) -> None:
        if loss is not None:
            self.count += 1
            self.loss_sum += loss
        if self.bar is not None:
            self.bar.update(1)
            if self.count and self.bar.n % 250 == 0:
                self.bar.set_postfix(loss=f"{self.loss_sum / self.count:.3f}", refresh=False)

    def task_end(self, task, class_il: list[float], task_il: list[float]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _flags(args: argparse.Namespace) -> tuple[dict, dict]:
    """The flags given (absent ones stay absent) and the config file's values."""
    from lifelong.config import load_yaml, merge_refresh

    flags = {k: v for k, v in vars(args).items()
             if k not in ("command", "config", "quiet", "param", "refresh_param", "seeds", "jobs", "resume",
                          "dry_run")}
    if args.param:
        flags["params"] = dict(args.param)
    file_values = load_yaml(args.config) if args.config else {}
    if "refresh" in flags or args.refresh_param:  # key by key over the file's `refresh:`
        flags["refresh"] = merge_refresh(file_values.get("refresh"), flags.get("refresh"),
                                         dict(args.refresh_param or []))
    return flags, file_values


def _resume_config(args: argparse.Namespace):
    """The configuration stored in the run folder given to --resume (no other run flags)."""
    from lifelong.config import KEYS
    from lifelong.runs.session import config_to_resume

    given = [k for k, v in vars(args).items() if k in KEYS and k != "threads"] + (["config"] if args.config else [])
    if given or args.param or args.refresh_param:
        flag = "--" + (given[0] if given else "param").replace("_", "-")
        raise UserError(f"--resume continues a run with its own configuration; drop {flag}")
    return config_to_resume(Path(args.resume), getattr(args, "threads", None))


def _jobs(jobs: int | None, runs: int) -> int:
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
def _finishing() -> Iterator[None]:
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
    lines = []
    for key, label in labels.items():
        stat = rows[0][key]
        lines.append(f"  {label:<32}" + ("-" if stat is None else f"{stat['mean']:8.2f} ± {stat['std']:.2f}"))
    return lines


def _many_runs_flags(args: argparse.Namespace, command: str) -> tuple[dict, dict, str | None]:
    """The flags and config-file values of ``--seeds`` or ``compare``, and the folder given
    (``--out`` or the file's ``out:``); refused: what cannot apply to many runs."""
    continues = "complete runs in its folder are reused and interrupted ones resumed"
    if args.resume:
        raise UserError(f"{command} continues by itself: run the same command again (with the same --out); "
                        f"{continues}. Drop --resume")
    flags, file_values = _flags(args)
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


def _run_seeds(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from lifelong.runs.compare import parse_seeds
    from lifelong.config import default_folder, make_config, method_name
    from lifelong.metrics import count_complete
    from lifelong.runs.folder import CommandLock, check_runs_folder
    from lifelong.runs.parallel import run_all, stopped, tally
    from lifelong.runs.session import check_run
    from lifelong.runs.sweep import Point, summarize, write_tables

    seeds = parse_seeds(args.seeds)
    jobs = _jobs(args.jobs, len(seeds))
    flags, file_values, out = _many_runs_flags(args, "--seeds")
    config = make_config(file_values, flags)
    method = method_name(config.method)
    root = Path(out) if out else default_folder(config.benchmark, method, "seeds")
    check_runs_folder(root)
    check_run(config)  # the user's code, the recipe, ...: a mistake is refused before the first line
    configs = [replace(config, seed=s, out=str(root / f"seed-{s}")) for s in seeds]
    header = f"lifelong: {method} on {config.benchmark}, seeds {seeds}, {jobs} job(s) -> {root}"
    if args.dry_run:
        return _dry_run(header, [f"seed {s}" for s in seeds], configs)
    with CommandLock(root):  # one command of many runs in a folder at a time; else refused in one line
        print(header, file=sys.stderr)

        def report(i: int, doc: dict) -> None:
            print(f"  seed {doc['seed']}: {_outcome(doc)}", file=sys.stderr)

        with _finishing():
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


def _sweep(args: argparse.Namespace) -> int:
    from lifelong.runs.folder import CommandLock
    from lifelong.runs.parallel import run_all, stopped, tally
    from lifelong.runs.sweep import expand_sweep, summarize, write_tables

    sweep = expand_sweep(Path(args.file), args.out)
    points = sweep.points
    configs = [c for p in points for c in p.configs]
    jobs = _jobs(args.jobs, len(configs))
    root = points[0].folder.parent
    left_out = f" ({_plural(sweep.duplicates, 'duplicate grid point')} left out)" if sweep.duplicates else ""
    with CommandLock(root):  # one command of many runs in a folder at a time; else refused in one line
        print(f"lifelong: sweep of {_plural(len(points), 'configuration')}{left_out} x "
              f"{_plural(len(points[0].configs), 'seed')} = {len(configs)} runs, {jobs} job(s) -> {root}",
              file=sys.stderr)
        done = [0]

        def report(i: int, doc: dict) -> None:
            done[0] += 1
            if not args.quiet:
                print(f"  [{done[0]}/{len(configs)}] {configs[i].out}: {_outcome(doc)}", file=sys.stderr)

        with _finishing():
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


def _run(args: argparse.Namespace, started: float) -> int:
    from lifelong.config import make_config
    from lifelong.runs.session import execute_run, prepare_run, resume_point

    if args.seeds is not None:
        return _run_seeds(args)
    if args.jobs is not None:
        raise UserError("--jobs runs several seeds at once; give --seeds too, or drop --jobs")
    if args.resume:
        run = prepare_run(_resume_config(args), resume=True)
        for note in run.notes:
            print(f"lifelong: {note}", file=sys.stderr)
    else:
        flags, file_values = _flags(args)
        config = make_config(file_values, flags)
        if args.dry_run:
            import yaml

            resolved = prepare_run(config, dry_run=True)
            print(yaml.safe_dump(resolved, sort_keys=False), end="")
            print("lifelong: configuration, data and model are fine; nothing was trained or written", file=sys.stderr)
            return 0
        run = prepare_run(config)
    print(f"lifelong: {run.describe()}", file=sys.stderr)
    progress = _Progress(run.stream.num_tasks, args.quiet)
    resume_with = f" Resume with: lifelong run --resume {run.out}"
    try:
        metrics_doc = execute_run(run, progress, started)
    except KeyboardInterrupt:  # a second signal after training, while the results were written
        print(f"\nlifelong: interrupted; {resume_point(run.store)}.{resume_with if run.store.newest else ''}",
              file=sys.stderr)
        return 130
    from lifelong.runs.report import format_table

    with _finishing():
        print(format_table(metrics_doc, run.out))
        if metrics_doc["status"] == "interrupted":  # the message says which checkpoint there is, if any
            print(f"lifelong: {metrics_doc['message']}.{resume_with if run.store.newest else ''}", file=sys.stderr)
            return 130
        if not metrics_doc["complete"]:
            print(f"lifelong: training stopped: {metrics_doc['message']}; the results so far are in {run.out}, "
                  f"marked incomplete, with a checkpoint from before. Try a smaller --lr, or --on-nan skip.",
                  file=sys.stderr)
            return 1
        return 0


def _compare(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from lifelong.runs.compare import comparison_runs, format_comparison, parse_seeds, run_comparison
    from lifelong.config import default_folder, make_config, method_name
    from lifelong.runs.folder import CommandLock, check_runs_folder
    from lifelong.runs.session import check_run

    seeds = parse_seeds(args.seeds)
    jobs = _jobs(args.jobs, 2 * len(seeds))
    flags, file_values, out = _many_runs_flags(args, "compare")
    config = make_config(file_values, flags)
    method = method_name(config.method)
    root = Path(out) if out else default_folder("compare", config.benchmark, method)
    check_runs_folder(root)
    runs = comparison_runs(replace(config, out=None), seeds, root)
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

        with _finishing():
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


def _report(args: argparse.Namespace) -> int:
    from lifelong.runs.finished import find_run_folders, load_runs
    from lifelong.runs.html_report import write_runs_report

    loaded = load_runs(find_run_folders(args.runs))
    path = write_runs_report(loaded, Path(args.out))
    incomplete = sum(not run.complete for run in loaded)
    left_out = f" ({incomplete} incomplete, left out of the means and figures)" if incomplete else ""
    print(f"lifelong: report of {len(loaded)} run{'s' if len(loaded) != 1 else ''}{left_out} in {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    started = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _run(args, started)
        if args.command == "list":
            return _list(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "report":
            return _report(args)
        if args.command == "sweep":
            return _sweep(args)
        parser.print_help()
        return 2
    except UserError as exc:
        print(f"lifelong: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nlifelong: interrupted before training started; nothing was written as complete", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `lifelong list | head`: the reader went away; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
