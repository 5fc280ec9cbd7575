"""The multi-run commands (`lifelong run --seeds`, `lifelong compare`, `lifelong sweep`): runs that
stop, stop requests, summaries over complete runs only, duplicate grid points, refused flags.
Each test failed on the code before its fix."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli as _cli, sigints_at, tiny_run_flags as _tiny


def _sweep_file(tmp_path: Path, data_root: Path, grid: str, seeds: str = "0-1", base: str = "") -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(f"base: {{benchmark: split-fashion-mnist, data-root: {data_root}, batch-size: 4, threads: 1"
                    f"{', ' + base if base else ''}}}\ngrid: {grid}\nseeds: {seeds}\nout: {tmp_path / 'sweep'}\n")
    return path


# 1. runs that stop before finishing their first task


@pytest.mark.parametrize("command", ["seeds", "compare", "sweep"])
def test_runs_that_stop_before_their_first_task_get_a_line_each_and_a_summary(command, data_root, tmp_path, capsys):
    """`--method finetune --lr 1e30` diverges at the first steps: the report callbacks used to
    crash formatting the missing accuracy (TypeError, no summary written)."""
    out = tmp_path / "out"
    diverging = ["--method", "finetune", "--lr", "1e30", "--seeds", "0-1", "--jobs", "1", "--out", str(out)]
    if command == "seeds":
        args, summary = ["run", *_tiny(data_root), *diverging], out / "summary.md"
    elif command == "compare":
        args, summary = ["compare", *_tiny(data_root), *diverging], out
    else:
        sweep = _sweep_file(tmp_path, data_root, "{method: [finetune], lr: [1.0e+30]}")
        args, summary = ["sweep", str(sweep), "--jobs", "1"], tmp_path / "sweep" / "summary.md"
    code, stdout, err = _cli(args, capsys)
    assert code == 1, err
    assert "Traceback" not in err and "Error" not in err
    run_lines = [line for line in err.splitlines() if "diverged" in line]
    assert len(run_lines) == (4 if command == "compare" else 2), err
    assert all("the loss became" in line and "0/5 tasks" in line for line in run_lines), err
    if command == "compare":
        assert len(list(summary.glob("compare-*.json"))) == 1 and len(list(summary.glob("compare-*.md"))) == 1
    else:
        assert summary.is_file() and summary.with_suffix(".csv").is_file()
    assert "results in" in stdout


# 3. summaries average complete runs only, and say how many of all they are


class _PoisonAfter:
    """Run events that, once ``tasks`` tasks are done, fill the model's weights with NaN: the
    next step's loss is NaN and the run diverges there, with the rows measured so far."""

    def __init__(self, model, tasks: int) -> None:
        self.model, self.tasks = model, tasks

    def task_start(self, task, steps: int) -> None:
        if task.index == self.tasks:
            import torch

            with torch.no_grad():
                for p in self.model.parameters():
                    p.fill_(float("nan"))

    def step(self, loss) -> None:
        pass

    def task_end(self, task, class_il, task_il) -> None:
        pass


def _diverge(monkeypatch, seed: int, folder_part: str = "", after_tasks: int = 2) -> None:
    """Make the real run of ``seed`` (in a folder whose path holds ``folder_part``) diverge once
    ``after_tasks`` tasks are done, as a run whose loss blows up in its third task does."""
    from lifelong.runs import session

    real = session.execute_run

    def execute_run(run, events=None, *args, **kwargs):
        if run.config.seed == seed and folder_part in str(run.out):
            events = _PoisonAfter(run.model, after_tasks)
        return real(run, events, *args, **kwargs)

    monkeypatch.setattr(session, "execute_run", execute_run)


def _accuracy(folder: Path, scenario: str = "class_il") -> float:
    return json.loads((folder / "metrics.json").read_text())[scenario]["average_accuracy"]


def _csv_rows(path: Path) -> list[dict]:
    import csv

    return list(csv.DictReader(path.read_text().splitlines()))


def test_complete_rule_is_one_helper():
    from lifelong.metrics import count_complete, is_complete

    assert is_complete({"complete": True}) and not is_complete({"complete": False}) and not is_complete(None)
    assert not is_complete({"status": "complete"})  # the field `complete` decides, nothing else
    assert count_complete(2, 3) == "2/3 complete"


def test_seeds_summary_leaves_out_an_incomplete_run_and_counts_it(monkeypatch, data_root, tmp_path, capsys):
    out = tmp_path / "seeds"
    _diverge(monkeypatch, 1)
    code, stdout, err = _cli(["run", *_tiny(data_root), "--seeds", "0-2", "--jobs", "1", "--out", str(out)], capsys)
    assert code == 1, err
    accs = [_accuracy(out / f"seed-{s}") for s in (0, 2)]
    mean = sum(accs) / 2
    assert "2/3 complete" in stdout and f"{mean:8.2f} ±" in stdout, stdout
    assert "seed 1: diverged after 2/5 tasks" in err
    md = (out / "summary.md").read_text()
    assert "| 2/3 complete |" in md and f"{mean:.2f} ±" in md and "seed-1 (diverged" in md, md
    (row,) = _csv_rows(out / "summary.csv")
    assert (row["seeds"], row["complete"]) == ("3", "2")
    assert float(row["class_il.average_accuracy.mean"]) == pytest.approx(mean, abs=1e-4)


def test_sweep_summary_leaves_out_an_incomplete_run_and_counts_it(monkeypatch, data_root, tmp_path, capsys):
    sweep = _sweep_file(tmp_path, data_root, "{method: [er, finetune]}", seeds="0-2")
    _diverge(monkeypatch, 2, "finetune")
    code, stdout, err = _cli(["sweep", str(sweep), "--jobs", "1"], capsys)
    assert code == 1, err
    root = tmp_path / "sweep"
    (finetune,) = root.glob("finetune-*")
    mean = sum(_accuracy(finetune / f"seed-{s}") for s in (0, 1)) / 2
    rows = {r["method"]: r for r in _csv_rows(root / "summary.csv")}
    assert (rows["finetune"]["seeds"], rows["finetune"]["complete"]) == ("3", "2")
    assert (rows["er"]["seeds"], rows["er"]["complete"]) == ("3", "3")
    assert float(rows["finetune"]["class_il.average_accuracy.mean"]) == pytest.approx(mean, abs=1e-4)
    md = (root / "summary.md").read_text()
    line = next(line for line in md.splitlines() if line.startswith("| finetune"))
    assert "| 2/3 complete |" in line and f"| {mean:.2f} ±" in line, md
    assert "seed-2 (diverged" in md and md in stdout


def test_compare_uses_a_seed_only_when_both_of_its_runs_completed(monkeypatch, data_root, tmp_path, capsys):
    out = tmp_path / "cmp"
    _diverge(monkeypatch, 1, "refresh")
    code, stdout, err = _cli(["compare", *_tiny(data_root), "--seeds", "0-2", "--jobs", "1", "--out", str(out)],
                             capsys)
    assert code == 1, err
    (refresh_dir,) = out.glob("refresh-paper-*-seed0")
    tag = refresh_dir.name[: -len("-seed0")]
    summary = json.loads((out / f"compare-{tag}.json").read_text())
    assert summary["seeds"] == [0, 1, 2] and summary["complete_seeds"] == [0, 2]
    base = [_accuracy(out / f"base-seed{s}") for s in (0, 2)]  # base seed 1 completed but has no pair
    refreshed = [_accuracy(out / f"{tag}-seed{s}") for s in (0, 2)]
    block = summary["class_il"]
    assert block["base"]["values"] == base and block["base"]["mean"] == pytest.approx(sum(base) / 2)
    assert block["difference"]["values"] == [r - b for b, r in zip(base, refreshed)]
    for text in (stdout, (out / f"compare-{tag}.md").read_text()):
        assert "2/3 complete (both runs)" in text and f"{sum(base) / 2:>9.2f} ±" in text, text
        assert "seed 1 left out" in text, text


# 2. one stop request stops the whole command


SLOW_TERM = '''
import os
import time

from lifelong.objective import Term, register_term


@register_term
class SlowStep(Term):
    """Zero loss; sleeps SLOW_STEP_SECONDS per step, so that a run lasts long enough to be stopped."""

    name = "test-slow-step"

    def __call__(self, batch):
        time.sleep(float(os.environ.get("SLOW_STEP_SECONDS", "0")))
        return batch.logits.new_zeros(())
'''


def _slow_config(tmp_path: Path, data_root: Path) -> Path:
    """A configuration whose runs take ~1.5 s with SLOW_STEP_SECONDS=0.1 (15 steps), ~0.1 s without."""
    (tmp_path / "slow_term.py").write_text(SLOW_TERM)
    config = tmp_path / "slow.yaml"
    config.write_text(f"imports: [slow_term.py]\nbenchmark: split-fashion-mnist\ndata-root: {data_root}\n"
                      f"batch-size: 4\nthreads: 1\nlr: 0.05\n"
                      f"method: {{name: slow, terms: [{{term: ce}}, {{term: test-slow-step}}]}}\n")
    return config


def _command(kind: str, tmp_path: Path, data_root: Path, out: Path, jobs: int) -> list[str]:
    config = _slow_config(tmp_path, data_root)  # and slow_term.py beside it, which the sweep imports too
    if kind == "sweep":
        sweep = tmp_path / f"{out.name}.yaml"
        sweep.write_text(f"base: {{imports: [slow_term.py], benchmark: split-fashion-mnist, "
                         f"data-root: {data_root}, batch-size: 4, threads: 1, "
                         f"method: {{name: slow, terms: [{{term: ce}}, {{term: test-slow-step}}]}}}}\n"
                         f"grid: {{lr: [0.05, 0.1]}}\nseeds: 0-2\nout: {out}\n")
        return ["sweep", str(sweep), "--jobs", str(jobs)]
    seeds = ["--seeds", "0-4", "--jobs", str(jobs), "--out", str(out), "--quiet"]
    if kind == "compare":
        return ["compare", "--config", str(config), "--refresh-param", "every=1", *seeds[:1], "0-2", *seeds[2:]]
    return ["run", "--config", str(config), *seeds]


def _started(out: Path) -> set[Path]:
    """The run folders a run has started in (each writes its config.yaml first)."""
    return {p.parent for p in out.rglob("config.yaml")}


def _stop_midway(args: list[str], out: Path, sig: int, group: bool) -> tuple[int, str, str, set[Path]]:
    """Start the command in a subprocess; once its first run trains, send ``sig`` once (to the
    process group, as a terminal's Ctrl-C, or to the command's process only); wait for it."""
    import os
    import subprocess
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), "SLOW_STEP_SECONDS": "0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "lifelong", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None and not any(out.rglob("steps.csv")):
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    try:
        stdout, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, stdout, stderr, _started(out)


def _summary(kind: str, out: Path) -> list[list[str]]:
    """The summary's numbers, without the timings (which differ from run to run)."""
    if kind == "compare":
        doc = json.loads(next(out.glob("compare-*.json")).read_text())
        return [[str(doc[s][v]["values"]) for v in ("base", "refresh")] for s in ("class_il", "task_il")]
    rows = _csv_rows(out / "summary.csv")
    return [[v for k, v in row.items() if not k.startswith("wall_seconds")] for row in rows]


@pytest.mark.parametrize("kind, jobs, sig, group", [
    pytest.param("seeds", 1, "SIGINT", False, id="seeds-jobs1-sigint"),
    pytest.param("seeds", 2, "SIGTERM", False, id="seeds-jobs2-sigterm-to-the-parent"),
    pytest.param("sweep", 2, "SIGINT", True, id="sweep-jobs2-ctrl-c-to-the-group", marks=pytest.mark.slow),
    pytest.param("compare", 1, "SIGTERM", False, id="compare-jobs1-sigterm", marks=pytest.mark.slow),
    pytest.param("compare", 2, "SIGINT", True, id="compare-jobs2-ctrl-c-to-the-group", marks=pytest.mark.slow),
])
def test_one_stop_request_stops_the_whole_command_and_the_same_command_continues(
        kind, jobs, sig, group, data_root, tmp_path, capsys, monkeypatch):
    import signal

    out = tmp_path / "out"
    args = _command(kind, tmp_path, data_root, out, jobs)
    code, stdout, stderr, started = _stop_midway(args, out, getattr(signal, sig), group)
    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert 1 <= len(started) <= jobs, (started, stderr)  # the runs in flight, no other
    hints = [line for line in stderr.splitlines() if "same command" in line]
    assert len(hints) == 1 and hints[0].startswith("lifelong: stopped"), stderr
    for folder in started:  # each run in flight stopped at a step with a checkpoint, at the first request
        doc = json.loads((folder / "metrics.json").read_text())
        assert doc["status"] == "interrupted" and doc["message"].startswith("stopped at"), doc
        assert any((folder / "checkpoints").glob("*.pt"))

    monkeypatch.delenv("SLOW_STEP_SECONDS", raising=False)
    code, _, err = _cli(args, capsys)  # the same command again: it continues
    assert code == 0, err
    for folder in started:  # interrupted runs were resumed from their checkpoints, not started over
        assert "resuming from ckpt-" in (folder / "run.log").read_text()
        assert json.loads((folder / "metrics.json").read_text())["complete"]
    reference = tmp_path / "reference"
    code, _, err = _cli(_command(kind, tmp_path, data_root, reference, jobs), capsys)
    assert code == 0, err
    assert _summary(kind, out) == _summary(kind, reference)


def _wait_until_free(lock_file: Path, seconds: float) -> bool:
    """True once no process holds an flock on ``lock_file`` (within ``seconds``)."""
    import fcntl
    import os
    import time

    deadline = time.time() + seconds
    while time.time() < deadline:
        fd = os.open(lock_file, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            time.sleep(0.05)
        finally:
            os.close(fd)
    return False


def test_runs_stop_with_a_checkpoint_when_their_command_is_killed(data_root, tmp_path, capsys, monkeypatch):
    """SIGKILL to the command's process alone (no handler runs): its run processes notice that
    their parent is gone, checkpoint and stop, instead of training on and holding the folder;
    the same command then continues."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    args = ["run", "--config", str(_slow_config(tmp_path, data_root)), "--seeds", "0-1", "--jobs", "2",
            "--out", str(out), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), "SLOW_STEP_SECONDS": "0.3"}
    proc = subprocess.Popen([sys.executable, "-m", "lifelong", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(out.rglob("steps.csv"))) < 2:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    metrics = [out / "seed-0" / "metrics.json", out / "seed-1" / "metrics.json"]
    deadline = time.time() + 30
    while time.time() < deadline and not all(m.is_file() for m in metrics):
        time.sleep(0.05)
    try:
        for m in metrics:
            assert json.loads(m.read_text())["status"] == "interrupted"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group
        except ProcessLookupError:
            pass
    # The run processes share the command's lock and hold it until they have exited, a moment
    # after their metrics.json is written (or after the SIGKILL above is delivered).
    assert _wait_until_free(out / "command.lock", seconds=30)
    monkeypatch.delenv("SLOW_STEP_SECONDS", raising=False)
    code, _, err = _cli(args, capsys)
    assert code == 0, err
    assert all("resuming from ckpt-" in (m.parent / "run.log").read_text() for m in metrics)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_run_that_fails_stops_the_others_and_is_one_line(jobs, data_root, tmp_path, capsys, monkeypatch):
    """A run refused (its folder is locked by another process) stops the command: no further
    run starts, the one in flight checkpoints and stops, and the refusal is one line."""
    from lifelong.runs.folder import RunLock

    monkeypatch.setenv("SLOW_STEP_SECONDS", "0.05")
    out = tmp_path / "out"
    (out / "seed-1").mkdir(parents=True)
    lock = RunLock(out / "seed-1")
    lock.acquire()
    try:
        code, _, err = _cli(["run", "--config", str(_slow_config(tmp_path, data_root)), "--seeds", "0-3", "--jobs",
                             str(jobs), "--out", str(out)], capsys)
    finally:
        lock.release()
    assert code == 2 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("lifelong: error: another lifelong run"), err
    assert not (out / "seed-2").exists() and not (out / "seed-3").exists()
    if jobs == 2:  # seed 0 was in flight beside seed 1
        doc = json.loads((out / "seed-0" / "metrics.json").read_text())
        assert doc["status"] == "interrupted" and any((out / "seed-0" / "checkpoints").glob("*.pt"))


# 4. duplicate grid points are one run


def test_duplicate_grid_points_are_one_configuration(tmp_path):
    from lifelong.runs.sweep import expand_sweep, load_sweep

    path = tmp_path / "dup.yaml"
    for grid, kept in (("{lr: [0.1, 0.1]}", [{"lr": 0.1}]),                      # the same values twice
                       ("{momentum: [0, 0.0], lr: [0.1]}", [{"momentum": 0, "lr": 0.1}]),  # the same merged config
                       ("{lr: [0.1, 0.2, 0.1]}", [{"lr": 0.1}, {"lr": 0.2}])):
        path.write_text(f"grid: {grid}\nseeds: 0-1\n")
        sweep = expand_sweep(path)
        assert [p.values for p in sweep.points] == kept and sweep.duplicates == 1, grid
        assert [p.values for p in load_sweep(path)] == kept
        assert len({p.folder for p in sweep.points}) == len(kept)


def test_a_sweep_with_duplicate_points_runs_each_configuration_once(data_root, tmp_path, capsys):
    """With --jobs 2, two processes used to write one folder."""
    sweep = _sweep_file(tmp_path, data_root, "{lr: [0.05, 0.05]}")
    code, stdout, err = _cli(["sweep", str(sweep), "--jobs", "2"], capsys)
    assert code == 0, err
    first = err.splitlines()[0]
    assert "1 configuration" in first and "1 duplicate grid point left out" in first and "2 runs" in first, first
    runs = sorted((tmp_path / "sweep").glob("*/seed-*"))
    assert len(runs) == 2 and all(json.loads((r / "metrics.json").read_text())["complete"] for r in runs)
    assert len(_csv_rows(tmp_path / "sweep" / "summary.csv")) == 1


# 5, 6. every flag a multi-run command accepts works or is refused in one line


def _refusals(data_root: Path, tmp_path: Path) -> list[tuple[list[str], str]]:
    seeded = tmp_path / "seeded.yaml"
    seeded.write_text("seed: 3\n")
    tiny = _tiny(data_root)
    return [
        (["compare", *tiny, "--resume", str(tmp_path / "x")], "run the same command again"),
        (["compare", *tiny, "--seed", "3"], "compare runs every seed of --seeds; drop --seed"),
        (["compare", *tiny, "--config", str(seeded)], f"drop `seed:` from {seeded}"),
        (["compare", *tiny, "--overwrite"], "to start over, remove the folder or choose another --out"),
        (["run", *tiny, "--seeds", "0-1", "--seed", "3"], "--seeds runs every seed of --seeds; drop --seed"),
        (["run", *tiny, "--seeds", "0-1", "--config", str(seeded)], f"drop `seed:` from {seeded}"),
        (["run", *tiny, "--seeds", "0-1", "--resume", str(tmp_path / "x")], "run the same command again"),
        (["run", *tiny, "--seeds", "0-1", "--overwrite"], "to start over, remove the folder"),
        (["run", *tiny, "--jobs", "2"], "--jobs runs several seeds at once; give --seeds too"),
    ]


def test_flags_that_cannot_apply_to_many_runs_are_refused_in_one_line(data_root, tmp_path, capsys):
    for args, message in _refusals(data_root, tmp_path):
        out = tmp_path / "never"
        code, stdout, err = _cli([*args, "--out", str(out)], capsys)
        assert code == 2, (args, err)
        assert err.count("\n") == 1 and err.startswith("lifelong: error: ") and message in err, (args, err)
        assert "Traceback" not in err and stdout == "" and not out.exists(), args


@pytest.mark.parametrize("key, message", [
    ("out", "give the sweep's folder with its top-level `out:` (or --out)"),
    ("seed", "give seeds with the sweep's `seeds:`"),
    ("overwrite", "remove the sweep's folder to start over"),
])
def test_sweep_keys_that_cannot_apply_to_a_run_are_refused(key, message, tmp_path, capsys):
    from lifelong.errors import ConfigError
    from lifelong.runs.sweep import load_sweep

    value = {"out": "elsewhere", "seed": 1, "overwrite": True}[key]
    for text in (f"grid: {{{key}: [{json.dumps(value)}]}}", f"base: {{{key}: {json.dumps(value)}}}"):
        path = tmp_path / "bad.yaml"
        path.write_text(text + "\n")
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_sweep(path)
        code, _, err = _cli(["sweep", str(path)], capsys)
        assert code == 2 and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("command", ["seeds", "compare"])
def test_dry_run_of_many_runs_checks_each_and_writes_nothing(command, data_root, tmp_path, capsys):
    out = tmp_path / "out"
    if command == "seeds":
        args = ["run", *_tiny(data_root), "--seeds", "0-2", "--out", str(out)]
        folders = [out / f"seed-{s}" for s in range(3)]
    else:
        args = ["compare", *_tiny(data_root), "--seeds", "0-1", "--out", str(out)]
        folders = [out / "base-seed0", out / "base-seed1"]
    code, stdout, err = _cli([*args, "--dry-run"], capsys)
    assert code == 0, err
    assert not out.exists()
    assert all(f"would start -> {folder}" in stdout for folder in folders), stdout
    assert "nothing was trained or written" in err
    code, _, err = _cli([*args[:-1], str(tmp_path / "other"), "--data-root", str(tmp_path / "no-data"), "--dry-run"],
                        capsys)
    assert code == 2 and "data file not found" in err and not (tmp_path / "other").exists(), err
    # after a run of the first seed, the dry run says what the command would reuse and what it would start
    first = ["run", *_tiny(data_root), "--out", str(folders[0])] if command == "seeds" else None
    if first:
        assert _cli([*first, "--seed", "0"], capsys)[0] == 0
        code, stdout, _ = _cli([*args, "--dry-run"], capsys)
        assert f"complete, would be reused -> {folders[0]}" in stdout and f"would start -> {folders[1]}" in stdout


def test_compare_takes_its_folder_from_the_config_file(data_root, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(f"out: {tmp_path / 'from-file'}\n")
    code, stdout, err = _cli(["compare", *_tiny(data_root), "--seeds", "0", "--config", str(config), "--dry-run"],
                             capsys)
    assert code == 0 and f"would start -> {tmp_path / 'from-file' / 'base-seed0'}" in stdout, (stdout, err)


def test_the_line_after_a_stop_says_how_to_continue():
    from lifelong.cli.many import _stop_line

    counts = {"complete": 1, "interrupted": 2, "diverged": 0, "not started": 3}
    again = {"complete": 1, "resume": 2, "start": 3}
    line = _stop_line(counts, again, Path("runs/compare-x"), out_given=False)
    assert "1 complete, 2 interrupted, 3 not started" in line and "with --out runs/compare-x" in line
    assert "with --out" not in _stop_line(counts, again, Path("runs/x"), out_given=True)


# 7. a stop request after the runs, while the summary is written or the process exits


@pytest.mark.parametrize("command", ["seeds", "compare", "sweep", "run"])
def test_a_signal_while_the_results_are_written_changes_nothing(command, data_root, tmp_path, capsys, monkeypatch):
    """Ctrl-C once the runs have ended, as the summary is written: it used to interrupt the
    writing (a summary missing or cut short) with "interrupted before training started; nothing
    was written as complete", exit code 130, though every run was complete."""
    import os
    import signal

    from lifelong.runs import compare, report, sweep

    def ctrl_c_then(write):
        def wrapped(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)
            return write(*args, **kwargs)
        return wrapped

    out = tmp_path / "out"
    if command == "compare":
        monkeypatch.setattr(compare, "format_comparison", ctrl_c_then(compare.format_comparison))
        args = ["compare", *_tiny(data_root), "--seeds", "0", "--jobs", "1", "--out", str(out)]
    elif command == "run":
        monkeypatch.setattr(report, "format_table", ctrl_c_then(report.format_table))
        args = ["run", *_tiny(data_root), "--out", str(out)]
    else:
        monkeypatch.setattr(sweep, "write_tables", ctrl_c_then(sweep.write_tables))
        if command == "seeds":
            args = ["run", *_tiny(data_root), "--seeds", "0-1", "--jobs", "1", "--out", str(out)]
        else:
            args = ["sweep", str(_sweep_file(tmp_path, data_root, "{lr: [0.05]}")), "--jobs", "1"]
            out = tmp_path / "sweep"
    code, stdout, err = _cli(args, capsys)
    assert code == 0 and "interrupted" not in err, err
    if command == "compare":
        assert json.loads(next(out.glob("compare-*.json")).read_text())["complete"]
    elif command != "run":
        assert "| 2/2 complete |" in (out / "summary.md").read_text()


def test_a_signal_as_the_command_exits_is_no_traceback(tmp_path):
    """Ctrl-C while Python shuts down after the command (its exit handlers): it printed
    "Exception ignored in atexit callback ... Traceback ... KeyboardInterrupt"."""
    import subprocess
    import sys

    code = ("import atexit, os, runpy, signal; atexit.register(lambda: os.kill(os.getpid(), signal.SIGINT)); "
            "runpy.run_module('lifelong', run_name='__main__')")
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-c", code, "--version"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr


# 8. what a stopped command says: its refresh settings, what continuing does, a missing accuracy


def test_compare_stopped_before_a_refresh_run_names_the_refresh_settings(data_root, tmp_path, capsys, monkeypatch):
    """Stopped in its first run (without refresh), `compare` printed `refresh  (gamma None,
    steps None, every None)`, on stdout and in compare-*.md: it took the settings from finished
    runs with refresh, and there were none. They are the configuration's own, known before any
    run: the header equals that of the same comparison run to its end."""
    out = tmp_path / "cmp"
    args = ["compare", *_tiny(data_root), "--refresh", "code", "--refresh-param", "every=1", "--seeds", "0-1",
            "--jobs", "1", "--out", str(out)]
    sigints_at(monkeypatch, 1, 1)
    code, stopped, err = _cli(args, capsys)
    assert code == 130 and "1 interrupted, 3 not started" in err, err
    assert not any(out.glob("refresh-*")), "no run with refresh started"
    header = stopped.splitlines()[0]
    assert "None" not in header and "refresh code (gamma " in header and ", every 1)" in header, header
    (md,) = out.glob("compare-*.md")
    assert md.read_text().splitlines()[0] == header
    monkeypatch.undo()
    code, finished, err = _cli(args, capsys)
    assert code == 0, err
    assert finished.splitlines()[0] == header.replace("0/2 complete", "2/2 complete")
    (doc,) = out.glob("compare-*.json")
    refreshed = json.loads(next(out.glob("refresh-code-*-seed0")).joinpath("metrics.json").read_text())
    assert json.loads(doc.read_text())["refresh"] == refreshed["refresh"]


def test_an_interrupted_runs_end_line_shows_missing_accuracies_as_in_the_tables(data_root, tmp_path, capsys,
                                                                                monkeypatch):
    """Stopped in its first task, a run has no accuracy yet: its end line in run.log read
    `class-IL None, task-IL None`; the tables show a missing value as `-`."""
    out = tmp_path / "run"
    sigints_at(monkeypatch, 1, 1)
    code, stdout, err = _cli(["run", *_tiny(data_root), "--out", str(out)], capsys)
    assert code == 130, err
    (end,) = [line for line in (out / "run.log").read_text().splitlines() if " end: " in line]
    assert "None" not in end and end.endswith("; class-IL -, task-IL -"), end
    assert f"|{'-':>7}" in stdout, stdout  # the table's average, missing
def test_a_run_stopped_before_its_first_checkpoint_is_said_to_start_over(data_root, tmp_path, capsys, monkeypatch):
    """Two quick Ctrl-Cs in the first run of `--seeds`: it stops at once, with no checkpoint. The
    stop line said "interrupted ones resume from their checkpoints", and, once its checkpoints/
    folder existed (empty), `--dry-run` said `seed 0: would resume from its checkpoint`; the
    command, run again, started that run over. Both now say what happens."""
    from lifelong.runs.checkpoint import CheckpointStore

    out = tmp_path / "seeds"
    args = ["run", *_tiny(data_root), "--seeds", "0-1", "--jobs", "1", "--out", str(out)]
    sigints_at(monkeypatch, 1, 2)
    code, _, err = _cli(args, capsys)
    monkeypatch.undo()
    assert code == 130 and not CheckpointStore(out / "seed-0").paths(), err
    (line,) = [line for line in err.splitlines() if line.startswith("lifelong: stopped")]
    assert "(1 interrupted, 1 not started)" in line, line
    assert "resume" not in line and line.endswith("2 runs start from the beginning (no checkpoint)"), line
    (out / "seed-0" / "checkpoints").mkdir(exist_ok=True)  # as a failed first write leaves it: empty
    code, stdout, err = _cli([*args, "--dry-run"], capsys)
    assert code == 0, err
    assert f"seed 0: would start over (no checkpoint) -> {out / 'seed-0'}" in stdout, stdout
    assert f"seed 1: would start -> {out / 'seed-1'}" in stdout, stdout
    code, _, err = _cli(args, capsys)
    assert code == 0, err
    log = (out / "seed-0" / "run.log").read_text()
    assert "resum" not in log and log.count(" start: ") == 1, log


def test_the_stop_line_counts_runs_that_resume_apart_from_runs_that_start_over():
    from lifelong.cli.many import _stop_line

    counts = {"complete": 1, "interrupted": 2, "diverged": 0, "not started": 3}
    line = _stop_line(counts, {"complete": 1, "resume": 1, "start": 4}, Path("runs/x"), out_given=True)
    assert line.endswith("run the same command again: 1 complete run is reused, 1 run resumes from its "
                         "checkpoint, 4 runs start from the beginning (no checkpoint)"), line
    line = _stop_line(counts, {"complete": 0, "resume": 2, "start": 0}, Path("runs/x"), out_given=True)
    assert line.endswith("again: 2 runs resume from their checkpoints"), line


def test_a_sweep_of_one_run_says_one_run(data_root, tmp_path, capsys):
    sweep = _sweep_file(tmp_path, data_root, "{lr: [0.05]}", seeds="0")
    code, _, err = _cli(["sweep", str(sweep), "--dry-run"], capsys)
    assert code == 0, err
    assert "1 configuration x 1 seed = 1 run, 1 job(s)" in err and "1 runs" not in err, err


def test_quiet_says_what_it_leaves_out_wherever_it_is_accepted():
    """`--quiet` said "no progress bars" on `run --seeds` and `compare`, which have none: it
    changed nothing there. Its help now says where it acts, and sweep's what it leaves out."""
    from lifelong.cli.parser import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    helps = {name: next(a.help for a in sub._actions if "--quiet" in a.option_strings)
             for name, sub in commands.items() if any("--quiet" in a.option_strings for a in sub._actions)}
    assert set(helps) == {"run", "compare", "sweep"}, helps
    for name in ("run", "compare"):
        assert "single run" in helps[name] and "--seeds and compare show none" in helps[name], helps[name]
    assert helps["sweep"] == "no line per finished run"


def test_a_folder_resumes_only_from_a_checkpoint_whose_writing_finished(tmp_path):
    """An empty checkpoints/, or one holding a checkpoint without its digest (its writing was cut
    short; reading would set it aside), is nothing to resume from: the run starts over."""
    from lifelong.runs.reuse import folder_state

    folder = tmp_path / "run"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.yaml").write_text("seed: 0\n")
    assert folder_state(folder) == ("start", None)
    checkpoint = folder / "checkpoints" / "ckpt-000000003.pt"
    checkpoint.write_bytes(b"cut short")
    assert folder_state(folder) == ("start", None)
    checkpoint.with_name(checkpoint.name + ".sha256").write_text("0" * 64)
    assert folder_state(folder) == ("resume", None)
