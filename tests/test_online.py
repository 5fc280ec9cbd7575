"""The online protocol (``--online``) and anytime evaluation (``--eval-every``, lifelong.anytime):
the schedule, what is evaluated and how, that it leaves the training untouched, its curve across
a resume, the settings and their one-line errors, and where the results show (metrics.json,
anytime.csv, the end table, run.log, the summary over seeds, the report)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import yaml

from lifelong.anytime import AnytimeEvaluation, default_every
from lifelong.config import make_config
from lifelong.data.source import Source
from lifelong.data.streams import Stream, Task, class_incremental, permuted
from lifelong.errors import ConfigError, UserError
from lifelong.loop import train
from lifelong.methods import build_recipe
from lifelong.optim import SGD
from lifelong.runs.session import config_hash, config_to_resume, execute_run, prepare_run, resolve_config
from tests.conftest import crash_then_resume, make_source, run_cli, write_fashion_mnist

VOLATILE = {"wall_seconds", "train_seconds", "peak_rss_mb", "peak_cuda_mb", "command", "versions"}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_fashion_mnist(root, per_class_train=12, per_class_test=3)  # 5 tasks of 24 examples, 6 test examples each
    return root


def _config(data_root, out, **values):
    return make_config({}, {"benchmark": "split-fashion-mnist", "data_root": str(data_root), "out": str(out),
                            "method": "er", "buffer_size": 20, "threads": 1, "lr": 0.05, **values})


def _run(config, resume=False):
    return execute_run(prepare_run(config, resume=resume))


class FixedLogits(nn.Module):
    """A model whose logits are the same for every input: ``scores``."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__()
        self.scores = torch.tensor(scores)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += len(x)
        return self.scores.expand(len(x), -1)


# -- the schedule and what an evaluation measures --------------------------------------------------

def test_an_evaluation_follows_the_step_that_goes_past_each_multiple():
    """As the reference's ``samples_cnt > num_eval``: strictly past, at most once per step."""
    stream = class_incremental(make_source(4, 30, 5), 2)
    anytime = AnytimeEvaluation(stream, every=20)
    model, y = FixedLogits([0.0] * 4), torch.zeros(10, dtype=torch.long)
    for _ in range(7):  # seen: 10, 20, 30, 40, 50, 60, 70
        anytime.after_step(model, 0, y, y)
    assert [p["examples_seen"] for p in anytime.curve] == [30, 50, 70]  # 20, 40 and 60 are not past
    assert {p["kind"] for p in anytime.curve} == {"periodic"}
    anytime.task_end(model, 0)
    assert anytime.curve[-1]["kind"] == "task_end" and anytime.curve[-1]["examples_seen"] == 70


def test_only_the_exposed_classes_are_tested_and_the_others_logits_are_masked():
    source = make_source(4, 6, 5)  # 5 test examples per class
    stream = class_incremental(source, 2)
    anytime = AnytimeEvaluation(stream, every=1000)
    model = FixedLogits([1.0, 0.0, 0.0, 9.0])  # class 3 wins unless masked out; then class 0
    anytime.after_step(model, 0, torch.tensor([0, 1, 1]), torch.zeros(3, dtype=torch.long))
    anytime.task_end(model, 0)
    point = anytime.curve[-1]
    assert model.calls == 10  # the test examples of classes 0 and 1 only
    assert point["exposed_classes"] == 2
    assert point["accuracy"] == pytest.approx(50.0)  # class 0's 5 right out of 10, not 0 (class 3 never exposed)
    assert point["per_class"] == [100.0, 0.0, None, None]


def test_test_examples_shared_by_tasks_count_once():
    """A blurry class's test examples belong to every task it is in: evaluated once."""
    source = make_source(3, 6, 4)
    train_idx, test_idx = torch.arange(18), torch.arange(12)
    tasks = [Task(0, (0, 1), train_idx[:12], test_idx[:8]), Task(1, (1, 2), train_idx[6:], test_idx[4:])]
    stream = Stream("shared", source, tasks, "blurry")
    anytime = AnytimeEvaluation(stream, every=1000)
    model = FixedLogits([0.0, 5.0, 0.0])
    anytime.after_step(model, 1, torch.tensor([0, 1, 2]), torch.ones(3, dtype=torch.long))
    anytime.task_end(model, 1)
    assert model.calls == 12 and anytime.curve[-1]["accuracy"] == pytest.approx(100 / 3)


def test_in_a_domain_incremental_stream_a_class_is_exposed_per_task():
    source = make_source(2, 6, 4)
    stream = permuted(source, 3, torch.Generator().manual_seed(0))
    anytime = AnytimeEvaluation(stream, every=1000)
    model = FixedLogits([0.0, 1.0])
    anytime.after_step(model, 0, torch.tensor([0, 1]), torch.tensor([0, 0]))
    anytime.after_step(model, 1, torch.tensor([1]), torch.tensor([1]))
    anytime.task_end(model, 1)
    assert model.calls == 8 + 4  # both classes of task 0's inputs, class 1 of task 1's
    assert anytime.curve[-1]["accuracy"] == pytest.approx(100 * 8 / 12)


def test_the_default_period():
    assert default_every("split-mnist", online=False) is None
    assert default_every("split-mnist", online=True) == 1000
    assert default_every("si-blurry-cifar100", online=False) == 1000
    assert default_every("task-free-mnist", online=False) == 1000
    assert default_every("si-blurry-mnist", online=False, every=50) == 50
    with pytest.raises(ValueError, match="positive"):
        AnytimeEvaluation(class_incremental(make_source(4, 6, 2), 2), every=0)


# -- the training is untouched ---------------------------------------------------------------------

def _dropout_model() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(32, 4))


def test_the_same_weights_and_matrices_with_and_without_anytime_evaluation():
    """A model with batch norm and dropout (which draws from torch's global generator): an
    evaluation that trained the statistics or drew a number would change the run."""
    stream = class_incremental(make_source(4, 30, 10), 2)
    results, weights = [], []
    for every in (None, 7):
        model = _dropout_model()
        torch.manual_seed(11)
        result = train(stream, model, build_recipe("er"), SGD(model.parameters(), lr=0.1), seed=0, batch_size=5,
                       buffer_size=20, eval_every=every)
        results.append(result)
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
    off, on = results
    assert off.anytime is None and len(on.anytime["curve"]) == 119 // 7 + 2  # one per multiple of 7 below 120, 2 task ends
    assert on.class_il == off.class_il and on.task_il == off.task_il
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k


@pytest.mark.parametrize("method, extra", [("er", {}), ("er-ace", {}), ("derpp", {}), ("joint", {}),
                                           ("er", {"refresh": "code"})])
def test_presets_online_with_anytime_evaluation(method, extra, data_root, tmp_path):
    doc = _run(_config(data_root, tmp_path / "run", method=method, online=True, eval_every=20, **extra))
    assert doc["complete"]
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (config["online"], config["epochs"], config["batch_size"], config["replay_batch_size"]) == (True, 1, 10, 10)
    rows = (tmp_path / "run" / "anytime.csv").read_text().splitlines()
    assert rows[0] == "examples_seen,task,kind,accuracy,exposed_classes," + ",".join(f"class_{c}" for c in range(10))
    periodic = [int(r.split(",")[0]) for r in rows[1:] if ",periodic," in r]
    # 5 tasks of 24 examples in batches of 10, 10, 4: past 20 at 24, past 40 at 44, past 60 at 68, past 80 at 82,
    # past 100 at 106 (120 is not past 120); joint: one task of 120 in batches of 10
    assert periodic == ([30, 50, 70, 90, 110] if method == "joint" else [24, 44, 68, 82, 106])
    online = doc["online"]
    assert online["eval_every"] == 20 and online["evaluations"] == 5
    assert len(rows) - 1 == 5 + (1 if method == "joint" else 5)  # and one evaluation per task end
    assert (online["f_last"] is None) == (method == "joint")
    assert all(0 <= online[k] <= 100 for k in ("a_auc", "a_last", "a_avg"))


def test_a_run_with_and_without_eval_every_trains_the_same_model(data_root, tmp_path):
    off = _run(_config(data_root, tmp_path / "off", batch_size=4))
    on = _run(_config(data_root, tmp_path / "on", batch_size=4, eval_every=7))
    assert "online" not in off and on["online"]["evaluations"] == 119 // 7  # multiples of 7 below 120
    assert off["class_il"] == on["class_il"] and off["task_il"] == on["task_il"]
    assert not (tmp_path / "off" / "anytime.csv").exists()
    a, b = (torch.load(tmp_path / name / "model.pt", weights_only=True) for name in ("off", "on"))
    assert all(a[k].numpy().tobytes() == b[k].numpy().tobytes() for k in a)


def test_a_resumed_run_has_the_curve_of_an_uninterrupted_one(data_root, tmp_path, monkeypatch):
    values = {"method": "derpp", "batch_size": 4, "checkpoint_every": 3, "eval_every": 7}
    whole, resumed = crash_then_resume(lambda out: _config(data_root, out, **values), tmp_path, monkeypatch, 17,
                                       resume_config=config_to_resume)  # as --resume does
    for doc in (whole, resumed):
        assert doc["online"].pop("eval_seconds") > 0
    assert {k: v for k, v in whole.items() if k not in VOLATILE} == {k: v for k, v in resumed.items()
                                                                      if k not in VOLATILE}
    assert (tmp_path / "whole" / "anytime.csv").read_text() == (tmp_path / "cut" / "anytime.csv").read_text()


# -- settings, errors, and where the results show ----------------------------------------------------

def test_online_settings_replace_the_published_offline_ones():
    offline = make_config({}, {"method": "derpp", "buffer_size": 200})
    assert (offline.batch_size, offline.replay_batch_size, offline.lr) == (10, 128, 0.03)  # hparams/split-mnist.yaml
    online = make_config({}, {"method": "derpp", "buffer_size": 200, "online": True})
    assert (online.epochs, online.batch_size, online.replay_batch_size, online.lr) == (1, 10, 10, 0.03)
    assert online.hparams_source.endswith("; online protocol: epochs 1, batch_size 10, replay_batch_size 10")
    given = make_config({"batch_size": 32}, {"online": True, "epochs": 1})
    assert (given.batch_size, given.replay_batch_size, given.epochs) == (32, 10, 1)
    with pytest.raises(ConfigError, match=r"^`online` trains one pass over each task's data: `epochs` must be 1, got 3"):
        make_config({"epochs": 3}, {"online": True})


def test_other_runs_keep_their_configuration_and_fingerprint(data_root, tmp_path):
    plain = _config(data_root, tmp_path / "r")
    assert not {"online", "eval_every"} & set(plain.to_dict())
    resolved = resolve_config(plain)
    assert not {"online", "eval_every"} & set(resolved)
    assert config_hash(resolve_config(_config(data_root, tmp_path / "r", online=False))) == config_hash(resolved)
    assert config_hash(resolve_config(_config(data_root, tmp_path / "r", eval_every=5))) != config_hash(resolved)


@pytest.mark.parametrize("args, message", [
    (["--online", "--epochs", "2"], "`online` trains one pass over each task's data: `epochs` must be 1, got 2"),
    (["--eval-every", "0"], "`eval-every` must be positive, got 0"),
    (["--eval-every", "-3"], "`eval-every` must be positive, got -3"),
    (["--eval-every", "x"], "argument --eval-every: expected an integer, got 'x'"),
])
def test_mistakes_are_one_line_and_exit_2(args, message, capsys, tmp_path):
    code, _, err = run_cli(["run", *args, "--out", str(tmp_path / "r"), "--quiet"], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_yaml_keys(data_root, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(f"online: true\neval_every: 500\nbenchmark: split-fashion-mnist\ndata_root: {data_root}\n")
    code, out, err = run_cli(["run", "--config", str(config), "--dry-run"], capsys)
    assert code == 0, err
    resolved = yaml.safe_load(out)
    assert (resolved["online"], resolved["eval_every"], resolved["replay_batch_size"]) == (True, 500, 10)
    config.write_text("online: 1\n")
    code, _, err = run_cli(["run", "--config", str(config), "--dry-run"], capsys)
    assert code == 2 and "`online` must be true or false, got 1" in err


def test_the_end_table_run_log_and_the_summary_over_seeds(data_root, tmp_path, capsys):
    out = tmp_path / "seeds"
    code, stdout, err = run_cli(["run", "--benchmark", "split-fashion-mnist", "--data-root", str(data_root),
                                 "--online", "--eval-every", "20", "--buffer-size", "20", "--quiet", "--seeds", "0-1",
                                 "--jobs", "1", "--out", str(out)], capsys)
    assert code == 0, err
    assert "A_auc (anytime accuracy)" in stdout and "A_last (anytime, last)" in stdout
    header = (out / "summary.md").read_text().splitlines()[0]
    assert "| A_auc | A_last |" in header
    assert "online.a_auc.mean" in (out / "summary.csv").read_text().splitlines()[0]
    docs = [json.loads((out / f"seed-{s}" / "metrics.json").read_text()) for s in (0, 1)]
    log = (out / "seed-0" / "run.log").read_text()
    assert f"anytime A_auc {docs[0]['online']['a_auc']}" in log and "5 evaluations every 20 examples" in log
    from lifelong.runs.report import format_table

    table = format_table(docs[0])
    assert "anytime (%, classes seen so far): A_auc" in table and "5 evaluations every 20 examples" in table


def test_runs_without_anytime_evaluation_keep_their_summary(data_root, tmp_path, capsys):
    out = tmp_path / "seeds"
    code, stdout, err = run_cli(["run", "--benchmark", "split-fashion-mnist", "--data-root", str(data_root),
                                 "--batch-size", "8", "--quiet", "--seeds", "0", "--jobs", "1", "--out", str(out)],
                                capsys)
    assert code == 0, err
    assert "A_auc" not in stdout and "A_auc" not in (out / "summary.md").read_text()
    assert "online" not in (out / "summary.csv").read_text()


def test_the_report_plots_the_curve(data_root, tmp_path):
    from lifelong.runs.figures import anytime_accuracy_curve
    from lifelong.runs.html_report import write_report

    assert anytime_accuracy_curve([[(10, 50.0), (20, 70.0), (30, 80.0)], [(10, 60.0), (30, 90.0)]]) == {
        "x": [10, 30], "mean": [55.0, 85.0], "std": [pytest.approx(50 ** 0.5)] * 2, "seeds": 2}
    assert anytime_accuracy_curve([[(10, 50.0)], []]) is None
    _run(_config(data_root, tmp_path / "on", online=True, eval_every=20))
    _run(_config(data_root, tmp_path / "off", batch_size=8))
    page = write_report([tmp_path / "on", tmp_path / "off"], tmp_path / "report").read_text()
    assert (tmp_path / "report" / "anytime_accuracy.png").stat().st_size > 1000
    assert "Accuracy over the examples seen (anytime evaluation)" in page and "A_auc (%)" in page
    (tmp_path / "on" / "anytime.csv").write_text("examples_seen,task,kind,accuracy\n24,0,periodic,140\n")
    with pytest.raises(UserError, match=r"anytime.csv line 2: 24 examples, accuracy 140"):
        write_report([tmp_path / "on"], tmp_path / "report")


def test_a_metrics_file_with_a_broken_online_block_is_refused(data_root, tmp_path):
    from lifelong.runs.metrics_file import read_metrics

    _run(_config(data_root, tmp_path / "on", eval_every=30, batch_size=8))
    file = tmp_path / "on" / "metrics.json"
    doc = json.loads(file.read_text())
    assert read_metrics(file)["online"]["evaluations"] == 3
    for key, value, message in (("a_auc", 101.0, "online.a_auc is 101.0, not an accuracy"),
                                ("evaluations", -1, "online.evaluations is -1, not a whole number"),
                                ("f_last", "x", "online.f_last is 'x', not a number or null")):
        file.write_text(json.dumps({**doc, "online": {**doc["online"], key: value}}))
        with pytest.raises(UserError, match=message):
            read_metrics(file)
