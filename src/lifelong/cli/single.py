"""`lifelong run` (one run: start, ``--dry-run``, ``--resume``), `lifelong list` and `lifelong
report`: each turns its flags into a call of the library and prints what comes back."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lifelong.cli.many import seeds_command
from lifelong.cli.parser import flags_of
from lifelong.errors import UserError


def list_command(args: argparse.Namespace) -> int:
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


def _resume_config(args: argparse.Namespace):
    """The configuration stored in the run folder given to --resume (no other run flags)."""
    from lifelong.config import KEYS
    from lifelong.runs.session import config_to_resume

    given = [k for k, v in vars(args).items() if k in KEYS and k != "threads"] + (["config"] if args.config else [])
    if given or args.param or args.refresh_param:
        flag = "--" + (given[0] if given else "param").replace("_", "-")
        raise UserError(f"--resume continues a run with its own configuration; drop {flag}")
    return config_to_resume(Path(args.resume), getattr(args, "threads", None))


def run_command(args: argparse.Namespace, started: float) -> int:
    from lifelong import distributed
    from lifelong.config import make_config
    from lifelong.runs.session import prepare_run

    layout = distributed.from_environment()
    if layout is not None and (args.seeds is not None or args.jobs is not None):
        flag = "--seeds" if args.seeds is not None else "--jobs"
        raise UserError(f"{flag} runs several runs side by side, but under torchrun every process is a rank of one "
                        f"run; drop {flag}, or start `lifelong run {flag} ...` without torchrun")
    if args.seeds is not None:
        return seeds_command(args)
    if args.jobs is not None:
        raise UserError("--jobs runs several seeds at once; give --seeds too, or drop --jobs")
    if args.resume:
        config = _resume_config(args)
    else:
        flags, file_values = flags_of(args)
        config = make_config(file_values, flags)
    if layout is not None:  # torchrun: refuse a layout that cannot share the batch before any rendezvous,
        distributed.check_layout(config.batch_size, config.replay_batch_size or config.batch_size, layout.world)
        distributed.start(layout, config.device)  # then join the job's process group (lifelong.distributed)
    try:
        if args.dry_run and not args.resume:
            import yaml

            resolved = prepare_run(config, dry_run=True)
            if distributed.speaks():
                print(yaml.safe_dump(resolved, sort_keys=False), end="")
                print("lifelong: configuration, data and model are fine; nothing was trained or written",
                      file=sys.stderr)
            return 0
        return _train(args, prepare_run(config, resume=bool(args.resume)), started)
    finally:
        distributed.stop()


def _resume_command(out: object) -> str:
    """The command that continues ``out`` exactly: under torchrun, with as many processes (another
    number re-splits the memories: a valid run, not this one continued)."""
    from lifelong import distributed

    if not distributed.parallel():
        return f"lifelong run --resume {out}"
    return f"torchrun ... with {distributed.world()} processes in all -m lifelong run --resume {out}"


def _train(args: argparse.Namespace, run, started: float) -> int:
    """Train a prepared run, print its table (rank 0 only, under torchrun) and say how it ended."""
    from lifelong import distributed
    from lifelong.runs.session import execute_run, resume_point

    speaks = distributed.speaks()
    if speaks:
        for note in run.notes if args.resume else []:
            print(f"lifelong: {note}", file=sys.stderr)
        print(f"lifelong: {run.describe()}", file=sys.stderr)
    progress = _Progress(run.stream.num_tasks, args.quiet or not speaks)
    resume_with = f" Resume with: {_resume_command(run.out)}"
    try:
        metrics_doc = execute_run(run, progress, started)
    except KeyboardInterrupt:  # a second signal after training, while the results were written
        print(f"\nlifelong: interrupted; {resume_point(run.store)}.{resume_with if run.store.newest else ''}",
              file=sys.stderr)
        return 130
    from lifelong.runs.parallel import finishing
    from lifelong.runs.report import format_table

    with finishing():
        if speaks:
            print(format_table(metrics_doc, run.out))
        if metrics_doc["status"] == "interrupted":  # the message says which checkpoint there is, if any
            if speaks:
                print(f"lifelong: {metrics_doc['message']}.{resume_with if run.store.newest else ''}", file=sys.stderr)
            return 130
        if not metrics_doc["complete"]:
            if speaks:
                print(f"lifelong: training stopped: {metrics_doc['message']}; the results so far are in {run.out}, "
                      f"marked incomplete, with a checkpoint from before. Try a smaller --lr, or --on-nan skip.",
                      file=sys.stderr)
            return 1
        return 0


def report_command(args: argparse.Namespace) -> int:
    from lifelong.runs.finished import find_run_folders, load_runs
    from lifelong.runs.html_report import write_runs_report
    from lifelong.runs.outputs import load_outputs
    from lifelong.runs.sections import format_sections, sections

    found: list[Path] = []
    folders = find_run_folders(args.runs, found)
    loaded = load_runs(folders) if folders else []
    outputs = load_outputs(found)
    path = write_runs_report(loaded, Path(args.out), outputs)
    text = format_sections(sections(outputs))
    if text:
        print(text + "\n")
    print(f"lifelong: report of {_report_counts(loaded, outputs)} in {path}{_left_out(outputs.skipped)}")
    return 0


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _report_counts(loaded: list, outputs) -> str:
    """``2 runs (1 incomplete, left out of the means and figures), 3 unlearnings, 1 edit``."""
    incomplete = sum(not run.complete for run in loaded)
    parts = [_plural(len(loaded), "run", "runs") + (f" ({incomplete} incomplete, left out of the means and figures)"
                                                     if incomplete else "")] if loaded else []
    parts += [_plural(n, one, many) for n, one, many in ((len(outputs.unlearn), "unlearning", "unlearnings"),
                                                         (len(outputs.edit), "edit", "edits"),
                                                         (len(outputs.merge), "merge", "merges"),
                                                         (len(outputs.lm), "lm run", "lm runs")) if n]
    return ", ".join(parts)


def _left_out(skipped: list) -> str:
    """The folders of lifelong unlearn/edit/merge/lm left out: the reason of one, the count of more."""
    if not skipped:
        return ""
    if len(skipped) == 1:
        folder, why = skipped[0]
        return f"; 1 folder of lifelong unlearn/edit/merge/lm left out: {folder / 'metrics.json'} {why}"
    return f"; {len(skipped)} folders of lifelong unlearn/edit/merge/lm left out (why: in the report, 'Left out')"
