"""Continual-stream unlearning on the tiny Fashion-MNIST of tests/conftest.py (5 tasks of two
classes): a finished ER run unlearns a past task's classes (``classes:0,1``, task 1) after the
whole stream; the retrain reruns the stream without them (task 1 then has no training examples
and is still evaluated); the forget, retain and test sets of class-IL on a stream, the test set
split by forgotten classes and per task, counted by hand; what the unlearned folder holds (no
buffer); a run trained on some tasks only unlearns among the examples it trained on."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import torch

from lifelong.cli import main
from lifelong.runs.reuse import stored_config
from lifelong.unlearn.run import load_run
from tests.conftest import run_cli, tiny_run_flags

ER = ["--method", "er", "--buffer-size", "20", "--epochs", "3"]


@pytest.fixture(scope="module")
def er_run(data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stream") / "er"
    assert main(["run", *tiny_run_flags(data_root), *ER, "--out", str(out)]) == 0
    return out


def _predictions(folder: Path, weights: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from lifelong.data.streams import Stream

    run, source = load_run(folder, device="cpu")
    run.model.load_state_dict(torch.load(weights, weights_only=True))
    stream = Stream("x", source, [], "class-il")
    y = source.train_y if split == "train" else source.test_y
    with torch.no_grad():
        return run.model.eval()(stream.inputs(split, torch.arange(len(y)), 0)).argmax(1), y


def _rate(hit: torch.Tensor) -> float:
    return 100 * float(hit.float().mean())


def test_a_past_task_unlearned_after_the_stream_and_its_retrain(er_run, tmp_path, capsys):
    out = tmp_path / "finetune"
    code, printed, err = run_cli(["unlearn", str(er_run), "--forget", "classes:0,1", "--method", "finetune",
                                  "--out", str(out)], capsys)
    assert code == 0, err
    doc = json.loads((out / "metrics.json").read_text())
    assert (doc["forget_count"], doc["retain_count"], doc["test_count"]) == (12, 48, 20)
    assert doc["zrf"] <= 1 and doc["before"]["zrf"] <= 1  # 1 − a divergence ≥ 0
    predicted, train_y = _predictions(er_run, out / "model.pt", "train")
    gone = train_y <= 1  # classes 0 and 1: task 1, drawn from the source's training set
    assert doc["accuracy"]["forget"] == pytest.approx(_rate(predicted[gone] == train_y[gone]), abs=1e-3)
    assert doc["accuracy"]["retain"] == pytest.approx(_rate(predicted[~gone] == train_y[~gone]), abs=1e-3)
    predicted, test_y = _predictions(er_run, out / "model.pt", "test")
    hit = predicted == test_y
    assert doc["accuracy"]["test"] == pytest.approx(_rate(hit), abs=1e-3)
    assert doc["accuracy"]["test_forget"] == pytest.approx(_rate(hit[test_y <= 1]), abs=1e-3)
    assert doc["accuracy"]["test_retain"] == pytest.approx(_rate(hit[test_y > 1]), abs=1e-3)
    by_task = [_rate(hit[(test_y // 2) == t]) for t in range(5)]  # task t: classes 2t, 2t+1
    assert doc["task_accuracy"] == pytest.approx(by_task, abs=1e-3) and len(doc["before"]["task_accuracy"]) == 5
    # no buffer travels: the folder holds the model's weights alone (the source run's checkpoints
    # keep its buffer, forget examples included; they stay in the source folder)
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "metrics.json", "model.pt"]
    source, _ = load_run(er_run, device="cpu")
    assert set(torch.load(out / "model.pt", weights_only=True)) == set(source.model.state_dict())
    assert "test, retained classes" in printed

    argv = shlex.split(doc["retrain_command"])
    assert "--method" in argv and argv[argv.index("--method") + 1] == "er"
    code, _, err = run_cli([*argv[1:], "--quiet"], capsys)
    assert code == 0, err
    retrained = Path(argv[-1])
    settings = stored_config(retrained)
    assert (settings["forget"], settings["forget_count"], settings["num_tasks"]) == ("classes:0,1", 12, 5)
    log = (retrained / "run.log").read_text()
    assert "task 1/5: classes [0, 1], 0 steps" in log  # task 1 left without training examples, still in the stream
    rows = json.loads((retrained / "metrics.json").read_text())["class_il"]["accuracy_matrix"]
    assert len(rows) == 5 and all(len(r) == 5 for r in rows)  # still evaluated on every task

    compared = tmp_path / "compared"
    code, printed, err = run_cli(["unlearn", str(er_run), "--forget", "classes:0,1", "--method", "ssd", "--param",
                                  "alpha=2", "--out", str(compared), "--compare-to", str(retrained)], capsys)
    assert code == 0, err
    assert json.loads((compared / "metrics.json").read_text())["agreement"]["forget"]["agreement"] >= 0


def test_a_run_of_some_tasks_unlearns_among_the_examples_it_trained_on(data_root, tmp_path, capsys):
    run = tmp_path / "two-tasks"
    assert main(["run", *tiny_run_flags(data_root), *ER, "--train-tasks", "1,2", "--out", str(run)]) == 0
    out = tmp_path / "u"
    code, _, err = run_cli(["unlearn", str(run), "--forget", "classes:2", "--method", "ssd", "--out", str(out)],
                           capsys)
    assert code == 0, err
    doc = json.loads((out / "metrics.json").read_text())
    assert (doc["forget_count"], doc["retain_count"]) == (6, 18)  # D: the 24 examples of tasks 1 and 2
    code, printed, err = run_cli(["unlearn", str(run), "--forget", "classes:6", "--method", "ssd", "--out",
                                  str(tmp_path / "v")], capsys)
    assert code == 2 and "names no training example the run" in err and len(err.strip().splitlines()) == 1
    assert not printed and not (tmp_path / "v").exists()
    code, _, err = run_cli(["unlearn", str(run), "--forget", "classes:0,1,2,3", "--method", "ssd", "--out",
                            str(tmp_path / "w")], capsys)
    assert code == 2 and "nothing would be retained" in err and not (tmp_path / "w").exists()
