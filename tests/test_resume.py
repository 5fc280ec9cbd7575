"""Runs that survive: bit-exact reproducibility, checkpoints, resume after a crash anywhere,
SIGINT/SIGTERM, damaged checkpoints, a second writer, a full disk."""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lifelong.runs import checkpoint as ckpt
from lifelong.cli import main
from lifelong.config import make_config
from lifelong.errors import UserError
from lifelong.runs.folder import RunLock
from lifelong.runs.session import execute_run, prepare_run
from tests.conftest import write_fashion_mnist

VOLATILE = {"wall_seconds", "train_seconds", "peak_rss_mb", "peak_cuda_mb", "command", "versions"}
SRC = str(Path(__file__).parents[1] / "src")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_fashion_mnist(root, per_class_train=12, per_class_test=3)
    return root


def _config(data_root, out, method="derpp", **extra):
    values = {"benchmark": "split-fashion-mnist", "data_root": str(data_root), "out": str(out), "method": method,
              "batch_size": 4, "buffer_size": 20, "checkpoint_every": 3, "threads": 1, "lr": 0.05, **extra}
    return make_config({}, values)


def _run(config, resume=False):
    return execute_run(prepare_run(config, resume=resume))


def _same_results(a: Path, b: Path) -> None:
    ma, mb = (json.loads((p / "metrics.json").read_text()) for p in (a, b))
    for key in set(ma) | set(mb):
        if key not in VOLATILE:
            assert ma[key] == mb[key], key
    wa, wb = (torch.load(p / "model.pt", weights_only=True) for p in (a, b))
    assert wa.keys() == wb.keys()
    for k in wa:  # byte for byte
        assert wa[k].numpy().tobytes() == wb[k].numpy().tobytes(), k


@pytest.fixture(scope="module")
def reference(data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    doc = _run(_config(data_root, out))
    assert doc["complete"]
    return out


def test_same_seed_same_bytes(data_root, reference, tmp_path):
    _run(_config(data_root, tmp_path / "again"))
    _same_results(reference, tmp_path / "again")
    config = json.loads((reference / "metrics.json").read_text())
    assert config["versions"]["torch"] == torch.__version__ and config["seed"] == 0


class Crash(Exception):
    """A crash at a chosen point (the process dies; only the files on disk remain)."""


@pytest.mark.parametrize("kind, at", [("step", 5), ("step", 26), ("evaluation", 3), ("taskend", 2)])
def test_resume_after_a_crash_anywhere_equals_an_uninterrupted_run(kind, at, data_root, reference, tmp_path,
                                                                    monkeypatch):
    """Crash mid-task (at a step), during an evaluation (the n-th), or between tasks (after a
    task's results, before its checkpoint); resuming from the files gives the same run."""
    import lifelong.loop as train_module

    if kind == "step":
        original = train_module.LossMonitor.observe

        def observe(self, loss, task, step):
            if step == at:
                raise Crash
            return original(self, loss, task, step)

        monkeypatch.setattr(train_module.LossMonitor, "observe", observe)
    elif kind == "evaluation":
        original_evaluate, calls = train_module.evaluate, []

        def evaluate(*args, **kwargs):
            calls.append(1)
            if len(calls) == at:
                raise Crash
            return original_evaluate(*args, **kwargs)

        monkeypatch.setattr(train_module, "evaluate", evaluate)
    else:
        original_snapshot = train_module.snapshot

        def snapshot(state, result, position, *rest):
            if (position.task, position.epoch, position.start) == (at, 0, 0):
                raise Crash
            return original_snapshot(state, result, position, *rest)

        monkeypatch.setattr(train_module, "snapshot", snapshot)
    out = tmp_path / "run"
    with pytest.raises(Crash):
        _run(_config(data_root, out))
    monkeypatch.undo()
    assert not (out / "metrics.json").exists()
    doc = _run(_config(data_root, out), resume=True)
    assert doc["complete"]
    _same_results(reference, out)


def test_graceful_stop_then_resume(data_root, reference, tmp_path, monkeypatch):
    import lifelong.runs.session as session

    class StopAfter:
        def __init__(self, *a):
            self.requested, self.previous, self.n = False, {}, 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def __call__(self):
            self.n += 1
            return self.n >= 7  # asked to stop at the 7th step boundary

    monkeypatch.setattr(session, "_StopFlag", StopAfter)
    out = tmp_path / "run"
    doc = _run(_config(data_root, out))
    assert doc["status"] == "interrupted" and not doc["complete"]
    assert re.match(r"stopped at task [1-5]/5, step \d+", doc["message"]), doc["message"]
    monkeypatch.undo()
    assert _run(_config(data_root, out), resume=True)["complete"]
    _same_results(reference, out)


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(data_root, reference, tmp_path, monkeypatch):
    import lifelong.loop as train_module

    original = train_module.LossMonitor.observe

    def observe(self, loss, task, step):
        if step == 17:
            raise Crash
        return original(self, loss, task, step)

    monkeypatch.setattr(train_module.LossMonitor, "observe", observe)
    out = tmp_path / "run"
    with pytest.raises(Crash):
        _run(_config(data_root, out))
    monkeypatch.undo()
    newest = ckpt.CheckpointStore(out).paths()[0]
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip a byte
    newest.write_bytes(bytes(data))
    run = prepare_run(_config(data_root, out), resume=True)
    assert any("damaged" in n and newest.name in n for n in run.notes)
    assert any("resuming from" in n for n in run.notes)
    assert execute_run(run)["complete"]
    _same_results(reference, out)


def test_truncated_and_unfinished_checkpoints_are_skipped(tmp_path):
    store = ckpt.CheckpointStore(tmp_path)
    store.save({"x": torch.arange(3)}, step=1)
    store.save({"x": torch.arange(4)}, step=2)
    newest = store.paths()[0]
    newest.write_bytes(newest.read_bytes()[:50])  # cut short
    payload, path = store.load_latest()
    assert path.name == "ckpt-000000001.pt" and payload["x"].tolist() == [0, 1, 2]
    (tmp_path / "checkpoints" / "ckpt-000000009.pt").write_bytes(b"half")  # no .sha256: never finished
    assert ckpt.CheckpointStore(tmp_path).load_latest()[1].name == "ckpt-000000001.pt"
    assert [p.name for p in store.paths()] == ["ckpt-000000001.pt"]  # the others moved aside, digests too
    assert sorted(p.name for p in (tmp_path / "checkpoints" / "damaged").iterdir()) == [
        "ckpt-000000002.pt", "ckpt-000000002.pt.sha256", "ckpt-000000009.pt"]


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    store = ckpt.CheckpointStore(tmp_path)
    for step in range(5):
        store.save({"step": step}, step=step)
    assert [p.name for p in store.paths()] == ["ckpt-000000004.pt", "ckpt-000000003.pt"]


def test_other_format_versions_are_refused(tmp_path):
    store = ckpt.CheckpointStore(tmp_path)
    store.save({"x": 1}, step=1)
    import io

    buffer = io.BytesIO()
    torch.save({"format_version": 99}, buffer)
    path = store.paths()[0]
    ckpt.atomic_write_bytes(path, buffer.getvalue())
    ckpt.atomic_write_bytes(path.with_name(path.name + ".sha256"), __import__("hashlib").sha256(buffer.getvalue()).hexdigest().encode())
    with pytest.raises(ckpt.CheckpointError, match="format version 99; this lifelong reads version 1"):
        store.load_latest()


def test_checkpoints_hold_no_pickled_objects(reference):
    path = ckpt.CheckpointStore(reference).paths()[0]
    payload = torch.load(path, weights_only=True)  # would raise on any pickled object
    assert {"model", "optimizer", "memory", "terms", "plugins", "rng", "position", "result"} <= set(payload)


def test_a_second_writer_is_refused(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    lock = RunLock(out)
    lock.acquire()
    try:
        code = main(["run", "--benchmark", "split-fashion-mnist", "--data-root", str(data_root), "--out", str(out),
                     "--quiet", "--overwrite"])
        err = capsys.readouterr().err
        assert code == 2 and "another lifelong run (pid" in err and "is writing to" in err
    finally:
        lock.release()


def test_a_full_disk_stops_with_a_message_and_keeps_the_last_good_checkpoint(data_root, reference, tmp_path,
                                                                              monkeypatch):
    real = ckpt.atomic_write_bytes
    count = {"n": 0}

    def failing(path, data):
        if path.name.startswith("ckpt-"):
            count["n"] += 1
            if count["n"] == 4:
                raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(ckpt, "atomic_write_bytes", failing)
    out = tmp_path / "run"
    with pytest.raises(UserError, match="No space left on device; the last good checkpoint is ckpt-"):
        _run(_config(data_root, out))
    monkeypatch.undo()
    assert not (out / "metrics.json").exists()
    assert _run(_config(data_root, out), resume=True)["complete"]
    _same_results(reference, out)


def test_resume_refuses_other_flags_complete_runs_and_strangers(data_root, reference, tmp_path, capsys):
    assert main(["run", "--resume", str(reference), "--lr", "0.5"]) == 2
    assert "drop --lr" in capsys.readouterr().err
    assert main(["run", "--resume", str(reference)]) == 2
    assert "already complete" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "not a lifelong run folder" in capsys.readouterr().err


def _spawn(args, **kw):
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen([sys.executable, "-m", "lifelong", "run", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def _wait_for_checkpoint(out: Path, proc, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if (out / "checkpoints").is_dir() and any((out / "checkpoints").glob("*.sha256")):
            return True
        time.sleep(0.02)
    return False


def kill_and_resume_trial(data_root: Path, reference: Path, out: Path, rng: random.Random,
                          sig=signal.SIGKILL) -> tuple[bool, bool]:
    """Start a run, kill it at a random moment after its first checkpoint, resume. Returns
    whether the signal hit a running process and whether the final results equal the
    uninterrupted run's byte for byte."""
    args = ["--benchmark", "split-fashion-mnist", "--data-root", str(data_root), "--out", str(out), "--method",
            "derpp", "--batch-size", "4", "--buffer-size", "20", "--checkpoint-every", "3", "--threads", "1",
            "--lr", "0.05", "--quiet"]
    proc = _spawn(args)
    killed = False
    if _wait_for_checkpoint(out, proc):
        time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is None:
            proc.send_signal(sig)
            killed = True
    proc.communicate(timeout=120)
    killed = killed and proc.returncode != 0
    if not (out / "metrics.json").is_file() or not json.loads((out / "metrics.json").read_text())["complete"]:
        resumed = _spawn(["--resume", str(out), "--quiet"])
        _, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err
    try:
        _same_results(reference, out)
        return killed, True
    except AssertionError:
        return killed, False


@pytest.fixture(scope="module")
def long_data_root(tmp_path_factory) -> Path:
    """Enough data (about 750 steps) for a signal to land while the run trains."""
    root = tmp_path_factory.mktemp("long-data")
    write_fashion_mnist(root, per_class_train=300, per_class_test=3)
    return root


@pytest.fixture(scope="module")
def long_reference(long_data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("long-ref") / "run"
    assert _run(_config(long_data_root, out))["complete"]
    return out


def test_sigkill_at_a_random_moment_then_resume(long_data_root, long_reference, tmp_path):
    killed, same = kill_and_resume_trial(long_data_root, long_reference, tmp_path / "run", random.Random(0))
    assert killed and same


def test_sigint_writes_a_checkpoint_and_says_how_to_resume(long_data_root, long_reference, tmp_path):
    out = tmp_path / "run"
    proc = _spawn(["--benchmark", "split-fashion-mnist", "--data-root", str(long_data_root), "--out", str(out), "--method",
                   "derpp", "--batch-size", "4", "--buffer-size", "20", "--checkpoint-every", "3", "--threads", "1",
                   "--lr", "0.05", "--quiet"])
    assert _wait_for_checkpoint(out, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 130:
        assert f"Resume with: lifelong run --resume {out}" in err and "Traceback" not in err
        assert json.loads((out / "metrics.json").read_text())["status"] == "interrupted"
        resumed = _spawn(["--resume", str(out), "--quiet"])
        resumed.communicate(timeout=120)
        assert resumed.returncode == 0
    else:  # the run finished before the signal arrived
        assert proc.returncode == 0
    _same_results(long_reference, out)


@pytest.mark.slow
def test_many_random_kills(long_data_root, long_reference, tmp_path):
    rng = random.Random(1234)
    results = [kill_and_resume_trial(long_data_root, long_reference, tmp_path / f"run{i}", rng,
                                     rng.choice([signal.SIGKILL, signal.SIGTERM])) for i in range(12)]
    assert all(same for _, same in results), results
    assert sum(killed for killed, _ in results) >= 9, results


# --- the commands of many runs (`run --seeds`, `compare`, `sweep`) killed or stopped, then run again


MULTI_COMMANDS = ("seeds", "compare", "sweep")
STOPS = {  # how a command is stopped: the signal, and whether it goes to its whole process group
    "SIGKILL to the group": (signal.SIGKILL, True),   # a crash, the machine's OOM killer, `kill -9 -PGID`
    "SIGINT to the group": (signal.SIGINT, True),     # Ctrl-C in a terminal
    "SIGTERM to the command": (signal.SIGTERM, False),  # `kill PID`, a job scheduler's
    "SIGKILL to one run's process": (signal.SIGKILL, None),  # the kernel's OOM killer
}


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def multi_command(kind: str, data_root: Path, out: Path) -> list[str]:
    """A small command of several runs writing to ``out``: three seeds, a comparison over two seeds
    (four runs), or a sweep of two learning rates over two seeds (four runs); DER++ with
    checkpoints every 3 steps, two runs at a time where there are two CPUs."""
    from lifelong.runs.parallel import available_cpus

    jobs = str(min(2, available_cpus()))
    settings = {"benchmark": "split-fashion-mnist", "data-root": str(data_root), "method": "derpp", "batch-size": 4,
                "buffer-size": 20, "checkpoint-every": 3, "threads": 1, "lr": 0.05}
    flags = [item for key, value in settings.items() for item in (f"--{key}", str(value))] + ["--quiet"]
    if kind == "seeds":
        return ["run", *flags, "--seeds", "0-2", "--jobs", jobs, "--out", str(out)]
    if kind == "compare":
        return ["compare", *flags, "--refresh-param", "every=1", "--seeds", "0-1", "--jobs", jobs, "--out", str(out)]
    sweep = out.parent / f"{out.name}.yaml"
    base = ", ".join(f"{k}: {v}" for k, v in settings.items() if k != "lr")
    sweep.write_text(f"base: {{{base}}}\ngrid: {{lr: [0.05, 0.1]}}\nseeds: 0-1\nout: {out}\n")
    return ["sweep", str(sweep), "--jobs", jobs, "--quiet"]


def multi_summary(out: Path) -> dict[str, str]:
    """The command's summary files (summary.md and summary.csv, or compare-*.json and .md), by
    name, with the wall seconds masked (they differ from run to run)."""
    import csv
    import io

    texts = {}
    for path in sorted(out.glob("summary.*")) + sorted(out.glob("compare-*")):
        text = path.read_text()
        if path.name == "summary.csv":
            rows = list(csv.reader(text.splitlines()))
            masked = [i for i, name in enumerate(rows[0]) if name.startswith("wall_seconds")]
            buffer = io.StringIO()
            csv.writer(buffer).writerows([[("#" if i in masked and r > 0 else v) for i, v in enumerate(row)]
                                          for r, row in enumerate(rows)])
            text = buffer.getvalue()
        elif path.name == "summary.md":  # the table's last column is "wall s"
            text = "\n".join(re.sub(r"\| [^|]* \|$", "| # |", line) if line.startswith("| ") and "wall s" not in line
                             else line for line in text.splitlines())
        texts[path.name] = text
    return texts


def same_command_results(reference: Path, out: Path) -> bool:
    """The same summary files, equal byte for byte once the timings are masked, and every run
    folder's results equal (metrics.json apart from timings, model.pt byte for byte)."""
    summary = multi_summary(reference)
    if not summary or summary != multi_summary(out):
        return False
    runs = sorted(p.parent.relative_to(reference) for p in reference.rglob("metrics.json"))
    if runs != sorted(p.parent.relative_to(out) for p in out.rglob("metrics.json")):
        return False
    try:
        for run in runs:
            _same_results(reference / run, out / run)
    except AssertionError:
        return False
    return True


def multi_kill_trial(kind: str, data_root: Path, reference: Path, out: Path, rng: random.Random,
                     stop: str = "SIGKILL to the group", spread: float = 2.0) -> tuple[bool, bool, int]:
    """Start the command, wait until its first run trains, wait a random 0-``spread`` s, stop it
    as ``stop`` says (:data:`STOPS`), then run the same command again. Returns whether the signal
    hit a running command, whether the final summary and runs equal the uninterrupted
    command's (``reference``, the same command's folder), and how many runs were resumed from a
    checkpoint."""
    from tests import hostile

    sig, group = STOPS[stop]
    args = multi_command(kind, data_root, out)
    proc = hostile.start_command(args)
    deadline, killed = time.time() + 120, False
    while time.time() < deadline and proc.poll() is None and not any(out.rglob("steps.csv")):
        time.sleep(0.02)
    if proc.poll() is None:
        time.sleep(rng.uniform(0.0, spread))
        if proc.poll() is None:
            if group is None:  # one run's process, when the runs have processes of their own
                children = _children(proc.pid)
                if children:
                    os.kill(children[0], sig)
                    killed = True
            else:
                os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
                killed = True
    _, err = proc.communicate(timeout=300)
    assert "Traceback" not in err, err
    killed = killed and proc.returncode != 0
    again = hostile.start_command(args)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0 and "Traceback" not in err, err
    resumed = sum("resuming from ckpt-" in (p.parent / "run.log").read_text() for p in out.rglob("metrics.json"))
    return killed, same_command_results(reference, out), resumed


@pytest.fixture(scope="module")
def multi_data_root(tmp_path_factory) -> Path:
    """Runs of about 150 steps: long enough to be stopped in flight."""
    root = tmp_path_factory.mktemp("multi-data")
    write_fashion_mnist(root, per_class_train=60, per_class_test=3)
    return root


def multi_reference(kind: str, data_root: Path, out: Path) -> Path:
    """The command run once, uninterrupted."""
    from tests import hostile

    proc = hostile.start_command(multi_command(kind, data_root, out))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out


@pytest.mark.parametrize("kind, stop", [("seeds", "SIGKILL to the group"),
                                        pytest.param("compare", "SIGINT to the group", marks=pytest.mark.slow),
                                        pytest.param("sweep", "SIGTERM to the command", marks=pytest.mark.slow)])
def test_a_command_of_many_runs_stopped_then_run_again_equals_an_uninterrupted_one(kind, stop, multi_data_root,
                                                                                   tmp_path):
    reference = multi_reference(kind, multi_data_root, tmp_path / "reference")
    killed, same, resumed = multi_kill_trial(kind, multi_data_root, reference, tmp_path / "out", random.Random(7),
                                             stop, spread=1.0)
    assert same
    assert killed and resumed >= 1  # the signal hit runs in flight, which continued from their checkpoints


@pytest.mark.slow
def test_many_random_stops_of_commands_of_many_runs(multi_data_root, tmp_path):
    """Every command with every way of stopping it, at random moments."""
    rng = random.Random(2027)
    results = []
    for kind in MULTI_COMMANDS:
        reference = multi_reference(kind, multi_data_root, tmp_path / f"{kind}-reference")
        for i, stop in enumerate(STOPS):
            results.append((kind, stop, *multi_kill_trial(kind, multi_data_root, reference,
                                                           tmp_path / f"{kind}-{i}", rng, stop)))
    assert all(same for _, _, _, same, _ in results), results
    assert sum(killed for _, _, killed, _, _ in results) >= 6, results
