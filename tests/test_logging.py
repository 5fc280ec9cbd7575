import csv
import importlib.util
import json
from pathlib import Path

import pytest

from lifelong.cli import main


def _run(fashion_root, out, capsys, *extra):
    code = main(["run", "--benchmark", "split-fashion-mnist", "--data-root", str(fashion_root), "--out", str(out),
                 "--batch-size", "4", "--log-every", "3", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured


def test_json_lines_are_the_canonical_record(fashion_root, tmp_path, capsys):
    out = tmp_path / "run"
    captured = _run(fashion_root, out, capsys)
    records = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    kinds = [r["event"] for r in records]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end" and records[-1]["status"] == "complete"
    assert kinds.count("task_start") == 5 and kinds.count("task_end") == 5
    metrics = json.loads((out / "metrics.json").read_text())
    ends = [r for r in records if r["event"] == "task_end"]
    assert [r["class_il"] for r in ends] == metrics["class_il"]["accuracy_matrix"]
    steps = [r for r in records if r["event"] == "steps"]
    assert [r["step"] for r in steps] == list(range(3, metrics["steps"] + 1, 3))
    assert all(r["loss"] > 0 and r["steps_per_second"] > 0 for r in steps)
    rows = list(csv.DictReader((out / "steps.csv").open()))
    assert [int(r["step"]) for r in rows] == [r["step"] for r in steps]
    assert float(rows[0]["loss"]) == pytest.approx(steps[0]["loss"], rel=1e-5)
    assert "task 1/5" not in captured.err  # no progress bar when stderr is not a terminal


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard not installed")
def test_tensorboard_scalars(fashion_root, tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    _run(fashion_root, out, capsys, "--log", "tensorboard")
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "eval/class_il_average_seen", "eval/task_il_average_seen"} <= set(tags)
    assert len(acc.Scalars("eval/class_il_average_seen")) == 5


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="checks the message without wandb")
def test_wandb_without_the_package_is_one_line_and_writes_nothing(fashion_root, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "--benchmark", "split-fashion-mnist", "--data-root", str(fashion_root), "--out", str(out),
                 "--log", "wandb"])
    err = capsys.readouterr().err
    assert code == 2 and "--log wandb needs the wandb package" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb not installed")
def test_wandb_offline(fashion_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    _run(fashion_root, out, capsys, "--log", "wandb")
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].glob("*.wandb"))
