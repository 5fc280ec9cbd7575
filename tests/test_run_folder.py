"""A single run's folder: one writer from the first file on, damaged checkpoints set aside, a
second Ctrl-C reported as it happened, task lines that survive a resume, the lock file left
behind, and task numbers counted from 1 in what the user reads."""
from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

import lifelong.loop as loop
import lifelong.runs.session as session
from lifelong.cli import main
from lifelong.runs import checkpoint as ckpt
from lifelong.runs.folder import RunLock
from lifelong.runs.session import execute_run, prepare_run
from tests.conftest import sigints_at
from tests.test_resume import Crash, _config, _run, _same_results, data_root, reference  # noqa: F401

WINNER_FILES = ("config.yaml", "run.log", "events.jsonl", "steps.csv")


def _cli_args(data_root: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--benchmark", "split-fashion-mnist", "--data-root", str(data_root), "--out", str(out),
            "--method", "derpp", "--batch-size", "4", "--buffer-size", "20", "--checkpoint-every", "3",
            "--threads", "1", "--lr", "0.05", "--quiet", *extra]


def _crash_at(monkeypatch, at: int) -> None:
    """The process dies at step ``at`` (only the files on disk remain)."""
    original = loop.LossMonitor.observe

    def observe(self, loss, task, step):
        if step == at:
            raise Crash
        return original(self, loss, task, step)

    monkeypatch.setattr(loop.LossMonitor, "observe", observe)


@pytest.mark.parametrize("winner", ["writing", "finished"])
def test_a_second_run_on_the_same_new_folder_changes_nothing(winner, data_root, tmp_path, monkeypatch, capsys):
    """Two runs started at once on a new ``--out``: both see no folder; the first creates it and
    writes its files while the second loads its data. The second must then be refused (another
    writer, or a folder that is no longer empty) without deleting anything."""
    out = tmp_path / "run"
    held = RunLock(out)
    real_build_stream = session.build_stream

    def the_other_run_gets_there_first(*args, **kwargs):
        out.mkdir()
        held.acquire()
        for name in WINNER_FILES:
            (out / name).write_text(f"the first run's {name}\n")
        if winner == "finished":
            held.release()
        return real_build_stream(*args, **kwargs)

    monkeypatch.setattr(session, "build_stream", the_other_run_gets_there_first)
    try:
        code = main(_cli_args(data_root, out))
    finally:
        held.release()
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    if winner == "writing":
        assert "another lifelong run (pid" in err and "is writing to" in err
    else:
        assert "exists and is not empty" in err
    for name in WINNER_FILES:
        assert (out / name).read_text() == f"the first run's {name}\n", name
    assert sorted(p.name for p in out.iterdir()) == sorted(WINNER_FILES + ("run.lock",))


def test_a_refused_folder_gets_no_lock_file(data_root, tmp_path, capsys):
    """A folder that is not empty (someone's own files) is refused without leaving run.lock in it."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    assert main(_cli_args(data_root, out)) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_when_every_checkpoint_is_damaged_the_new_ones_are_kept(data_root, reference, tmp_path, monkeypatch):
    """Every checkpoint unreadable: the run starts over, the damaged ones are moved aside (and the
    notes say so), and the new checkpoints survive pruning, so the next resume uses them."""
    out = tmp_path / "run"
    _crash_at(monkeypatch, 17)
    with pytest.raises(Crash):
        _run(_config(data_root, out))
    damaged = ckpt.CheckpointStore(out).paths()
    assert [p.name for p in damaged] == ["ckpt-000000015.pt", "ckpt-000000012.pt"]
    for path in damaged:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    monkeypatch.undo()
    _crash_at(monkeypatch, 7)
    run = prepare_run(_config(data_root, out), resume=True)
    for path in damaged:
        assert any(path.name in n and "checkpoints/damaged" in n for n in run.notes), run.notes
        assert (out / "checkpoints" / "damaged" / path.name).is_file()
    assert "no usable checkpoint; starting from the beginning" in run.notes
    with pytest.raises(Crash):
        execute_run(run)
    monkeypatch.undo()
    assert [p.name for p in ckpt.CheckpointStore(out).paths()] == ["ckpt-000000006.pt", "ckpt-000000003.pt"]
    run = prepare_run(_config(data_root, out), resume=True)
    assert any(n.startswith("resuming from ckpt-000000006.pt") for n in run.notes), run.notes
    assert "checkpoints/damaged" in (out / "run.log").read_text()
    assert execute_run(run)["complete"]
    _same_results(reference, out)
    assert _run(_config(data_root, out, overwrite=True))["complete"]  # --overwrite clears them too
    assert not any((out / "checkpoints" / "damaged").iterdir())


def test_a_second_ctrl_c_before_any_checkpoint_says_there_is_nothing_to_resume(data_root, tmp_path, monkeypatch,
                                                                              capsys):
    out = tmp_path / "run"
    sigints_at(monkeypatch, 1, 2)
    code = main(_cli_args(data_root, out))
    err = capsys.readouterr().err
    assert code == 130 and "Traceback" not in err
    assert not ckpt.CheckpointStore(out).paths()
    assert "a checkpoint was written" not in err and "Resume with" not in err
    assert "no checkpoint" in err and "nothing to resume" in err
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["status"] == "interrupted" and not doc["complete"]
    assert doc["message"].startswith("interrupted at task 1/5, step 1") and "no checkpoint" in doc["message"]


def test_a_second_ctrl_c_names_the_checkpoint_there_is(data_root, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    sigints_at(monkeypatch, 7, 2)
    code = main(_cli_args(data_root, out))
    err = capsys.readouterr().err
    assert code == 130 and "Traceback" not in err
    assert ckpt.CheckpointStore(out).paths()[0].name == "ckpt-000000006.pt"
    assert "ckpt-000000006.pt" in err and f"Resume with: lifelong run --resume {out}" in err
    assert "a checkpoint was written" not in err
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["message"].startswith("interrupted at task 2/5, step 7") and "ckpt-000000006.pt" in doc["message"]
    monkeypatch.undo()
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    _same_results(reference, out)


def test_one_ctrl_c_writes_a_checkpoint_and_names_it(data_root, reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    sigints_at(monkeypatch, 7, 1)
    code = main(_cli_args(data_root, out))
    err = capsys.readouterr().err
    assert code == 130
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["message"].startswith("stopped at task 2/5, step 8") and "ckpt-000000008.pt" in doc["message"]
    assert "ckpt-000000008.pt" in err and f"Resume with: lifelong run --resume {out}" in err
    monkeypatch.undo()
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    _same_results(reference, out)


def test_a_ctrl_c_while_the_results_are_written_says_what_there_is(data_root, tmp_path, monkeypatch, capsys):
    """A signal after training (the first one is then ignored; a second one interrupts the
    writing of the results): the message names the newest checkpoint, not 'before training'."""
    out = tmp_path / "run"

    def interrupted(*args):
        signal.raise_signal(signal.SIGINT)  # ignored: training is over
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(session, "write_results", interrupted)
    code = main(_cli_args(data_root, out))
    err = capsys.readouterr().err
    assert code == 130 and "Traceback" not in err and "before training started" not in err
    assert "the newest checkpoint is ckpt-000000030.pt" in err and "Resume with" in err


def _task_done_lines(run_log: Path) -> dict[str, str]:
    """The last ``task N done`` line of each task, without its time stamp."""
    lines = {}
    for line in run_log.read_text().splitlines():
        match = re.match(r"^\S+ \S+ (task (\d+) done: .*)$", line)
        if match:
            lines[match.group(2)] = match.group(1)
    return lines


@pytest.mark.parametrize("at", [5, 12, 16])
def test_a_resumed_run_logs_the_mean_loss_of_the_whole_task(at, data_root, reference, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _crash_at(monkeypatch, at)
    with pytest.raises(Crash):
        _run(_config(data_root, out))
    monkeypatch.undo()
    assert _run(_config(data_root, out), resume=True)["complete"]
    expected = _task_done_lines(reference / "run.log")
    assert len(expected) == 5
    assert _task_done_lines(out / "run.log") == expected
    _same_results(reference, out)


def test_a_finished_run_leaves_an_empty_unlocked_run_lock(data_root, tmp_path):
    """run.lock stays (removing a lock file another process may have opened is racy), holds no
    process id once the run is over, and does not stop the next writer."""
    out = tmp_path / "run"
    assert _run(_config(data_root, out))["complete"]
    assert (out / "run.lock").read_bytes() == b""
    lock = RunLock(out)
    lock.acquire()
    lock.release()


def test_divergence_and_resume_messages_count_tasks_from_one(data_root, tmp_path, monkeypatch):
    out = tmp_path / "run"
    original = loop.LossMonitor.observe

    def observe(self, loss, task, step):
        return original(self, loss * float("nan") if step == 8 else loss, task, step)

    monkeypatch.setattr(loop.LossMonitor, "observe", observe)
    doc = _run(_config(data_root, out))
    assert doc["status"] == "diverged"
    assert doc["message"] == "the loss became nan at task 2/5, step 8", doc["message"]
    monkeypatch.undo()
    run = prepare_run(_config(data_root, out), resume=True)
    assert "resuming from ckpt-000000008.pt (task 2/5, step 8)" in run.notes
    assert execute_run(run)["complete"]


def test_deterministic_algorithms_follow_each_run_in_one_process():
    """Runs of `--seeds ... --jobs 1` share a process: one run's --deterministic must not stay on
    for the next."""
    import torch

    from lifelong.config import make_config
    from lifelong.runs.session import prepare_run

    try:
        prepare_run(make_config({"deterministic": True, "num_tasks": 2}, {}), dry_run=True)
        assert torch.are_deterministic_algorithms_enabled()
        prepare_run(make_config({"num_tasks": 2}, {}), dry_run=True)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


def test_resume_reads_the_runs_own_configuration_as_written(tmp_path):
    """config.yaml is written by yaml.safe_dump; a string it leaves unquoted (a recipe named
    ``1e-3``) must come back as that string, or --resume refuses the run's own checkpoint."""
    from lifelong.config import make_config
    from lifelong.runs.session import config_hash, config_to_resume, prepare_run

    config = make_config({"method": {"name": "1e-3", "terms": [{"term": "ce"}]}, "num_tasks": 2,
                          "out": str(tmp_path / "run")}, {})
    run = prepare_run(config)
    run.lock.release()
    again = prepare_run(config_to_resume(tmp_path / "run"), resume=True)
    again.lock.release()
    assert again.config.method == config.method
    assert config_hash(again.resolved) == config_hash(run.resolved)


@pytest.mark.parametrize("optimizer", ["sgd", "adadelta"])
def test_a_run_does_not_import_torchs_compiler(tmp_path, optimizer):
    """torch._dynamo costs 1.5-2 s to import, a third of a Split-MNIST run: nothing on a run's
    path may pull it in (torch.optim.SGD, torch.use_deterministic_algorithms(False) both do),
    with either of the run's optimisers."""
    import os
    import subprocess
    import sys

    code = ("import sys; from lifelong.cli import main; "
            f"main(['run', '--num-tasks', '2', '--epochs', '1', '--quiet', '--optimizer', {optimizer!r}, "
            f"'--out', {str(tmp_path / 'run')!r}]); "
            "print('torch._dynamo' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"
