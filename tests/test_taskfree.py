"""Task-free streams (lifelong.data.taskfree): the Gaussian schedule on labels alone and on small
sources, against a version written out independently here; the loop keeps the stream's order
and gives it one begin and one end; methods that need task boundaries are refused (the CLI, the
dry run, the Python loop, a user's own term); short runs, resume, settings and the command line."""
from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

from lifelong.data.benchmarks import build_stream, get_benchmark
from lifelong.data.source import Source
from lifelong.data.taskfree import centres_of, plan, reference_width, task_free
from lifelong.errors import ConfigError
from lifelong.loop import train
from lifelong.methods import build_recipe
from lifelong.metrics import summarize
from lifelong.nets import build_backbone
from lifelong.optim import SGD
from tests.conftest import crash_then_resume, make_images, make_source, run_cli, write_fashion_mnist


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def labels_of(num_classes: int, per_class: int, seed: int = 0) -> torch.Tensor:
    """Training labels in a random order (as in MNIST's files)."""
    y = torch.arange(num_classes).repeat_interleave(per_class)
    return y[torch.randperm(len(y), generator=gen(100 + seed))]


def shuffled_source(num_classes: int = 5, per_class: int = 12, per_class_test: int = 2) -> Source:
    train_y = labels_of(num_classes, per_class)
    test_y = torch.arange(num_classes).repeat_interleave(per_class_test)
    return Source("toy", make_images(train_y, 8), train_y, make_images(test_y, 8, seed=1), test_y, num_classes)


def rank_of(p) -> dict[int, int]:
    return {c: k for k, c in enumerate(p.order)}


# -- the schedule ----------------------------------------------------------------------------------

@pytest.mark.parametrize("width", [0.01, 0.5, 3.0])
@pytest.mark.parametrize("seed", range(3))
def test_the_stream_is_a_permutation_of_the_training_set(width, seed):
    labels = labels_of(7, 30, seed)
    p = plan(labels, 7, gen(seed), width)
    assert torch.equal(p.train.sort().values, torch.arange(len(labels)))
    assert sorted(p.order) == list(range(7))
    assert torch.all(p.times[p.train][1:] >= p.times[p.train][:-1])  # sorted by time


def test_same_seed_same_stream_other_seed_other_stream():
    source = shuffled_source()
    bench = get_benchmark("task-free-mnist")
    a, b, c = (build_stream(bench, source, seed=s) for s in (3, 3, 4))
    assert torch.equal(a.tasks[0].train_idx, b.tasks[0].train_idx)
    assert not torch.equal(a.tasks[0].train_idx, c.tasks[0].train_idx)
    wide = build_stream(bench, source, seed=3, task_free_width=2.0)
    assert not torch.equal(a.tasks[0].train_idx, wide.tasks[0].train_idx)


def reference_like(labels: list[int], num_classes: int, width: float, seed: int) -> list[int]:
    """The schedule written out independently: the class order, then one normal draw per example
    in the source's order, centres k + 1/2 by rank, and the examples sorted by time."""
    g = gen(seed)
    order = torch.randperm(num_classes, generator=g).tolist()
    z = torch.randn(len(labels), generator=g, dtype=torch.float64).tolist()
    times = [order.index(y) + 0.5 + width * z[i] for i, y in enumerate(labels)]
    return sorted(range(len(labels)), key=lambda i: (times[i], i))


@pytest.mark.parametrize("width", [0.05, 0.5, 5.0])
@pytest.mark.parametrize("seed", [0, 7])
def test_the_stream_equals_an_independent_version(width, seed):
    labels = labels_of(6, 9, seed)
    assert plan(labels, 6, gen(seed), width).train.tolist() == reference_like(labels.tolist(), 6, width, seed)


def test_centres_by_hand():
    assert centres_of([2, 0, 1]).tolist() == [1.5, 2.5, 0.5]
    assert [reference_width(c) for c in (10, 100, 3, 2000)] == [0.5, 5.0, 50 / 333, 50.0]


def test_each_class_comes_in_its_order():
    """The mean position of a class's examples increases with its rank in the drawn order."""
    labels = labels_of(8, 200)
    p = plan(labels, 8, gen(1), 0.5)
    position = torch.empty(len(labels))
    position[p.train] = torch.arange(len(labels), dtype=torch.float)
    means = [position[labels == c].mean().item() for c in p.order]
    assert means == sorted(means) and p.order != sorted(p.order)


def test_the_share_beyond_the_midpoint_follows_the_gaussian():
    """A fraction Phi(-1/(2w)) of a class's examples lie past the midpoint to its next centre."""
    labels = labels_of(3, 20000)
    for width in (0.5, 0.25):
        p = plan(labels, 3, gen(2), width)
        middle = p.order[1]
        t = p.times[labels == middle]
        beyond = (t > 2.0).double().mean().item()  # its centre is 1.5; the next one 2.5
        expected = 0.5 * math.erfc(1 / (2 * width) / math.sqrt(2))
        assert abs(beyond - expected) < 0.01, (width, beyond, expected)
        assert abs(t.std().item() - width) < 0.02 * width + 0.005


def test_neighbours_overlap_for_a_wide_width_and_not_for_a_tiny_one():
    labels = labels_of(6, 100)
    wide = plan(labels, 6, gen(0), 0.5)
    tiny = plan(labels, 6, gen(0), 0.01)
    for p, overlapping in ((wide, True), (tiny, False)):
        rank = torch.tensor([rank_of(p)[c] for c in range(6)])
        ranks_in_stream = rank[labels[p.train]]
        for k in range(5):  # the last example of class k against the first of class k+1
            last_k = torch.nonzero(ranks_in_stream == k).max().item()
            first_next = torch.nonzero(ranks_in_stream == k + 1).min().item()
            assert (last_k > first_next) == overlapping
    # the tiny width keeps each class in one block, in the drawn order
    assert torch.all(rank[labels[tiny.train]][1:] >= rank[labels[tiny.train]][:-1])


def test_one_ordered_task_tested_on_every_class():
    source = shuffled_source()
    stream = task_free(source, gen(0), width=0.3)
    assert stream.task_free and stream.scenario == "task-free" and stream.num_tasks == 1
    (task,) = stream.tasks
    assert task.ordered and task.index == 0 and task.classes == tuple(range(5))
    assert torch.equal(task.test_idx, torch.arange(len(source.test_y)))
    assert stream.settings == {"task_free_width": 0.3}
    assert task_free(source, gen(0)).settings == {"task_free_width": 50 / 200}  # the reference's for 5 classes
    moved = stream.to("cpu")
    assert moved.task_free and moved.tasks[0].ordered
    assert not stream.joint().ordered  # the joint bound trains on it shuffled


def test_a_source_without_test_examples_of_its_classes_is_refused():
    source = shuffled_source()
    source.test_x, source.test_y = source.test_x[:0], source.test_y[:0]
    with pytest.raises(ConfigError, match="toy has no test examples of the classes it trains"):
        task_free(source, gen(0))


# -- the loop --------------------------------------------------------------------------------------

class Recorder:
    """Records the hooks it is called at and each step's current batch."""

    name = "recorder"
    stateless = True

    def __init__(self) -> None:
        self.events: list[str] = []
        self.x: list[torch.Tensor] = []
        self.y: list[torch.Tensor] = []

    def begin_task(self, state) -> None:
        self.events.append("begin")

    def end_task(self, state) -> None:
        self.events.append("end")

    def before_step(self, state, batch) -> None:
        self.events.append("step")
        self.x.append(batch.inputs[: len(batch.y)].clone())
        self.y.append(batch.y.clone())


def _train(stream, method: str, epochs: int = 1, **kwargs):
    torch.manual_seed(0)
    model = build_backbone("mlp", stream.source.image_shape, stream.num_classes)
    recipe = build_recipe(method)
    recorder = Recorder()
    recipe.plugins.append(recorder)
    result = train(stream, model, recipe, SGD(model.parameters(), lr=0.05), seed=0, epochs=epochs, batch_size=7,
                   buffer_size=10, **kwargs)
    return result, recorder


@pytest.mark.parametrize("method", ["finetune", "er", "derpp"])
def test_the_loop_keeps_the_stream_order_with_one_begin_and_one_end(method):
    stream = task_free(shuffled_source(), gen(0), width=0.5)
    result, rec = _train(stream, method, epochs=2)
    order = stream.tasks[0].train_idx
    n = len(order)
    assert rec.events == ["begin"] + ["step"] * (2 * math.ceil(n / 7)) + ["end"]
    for epoch in range(2):
        steps = range(epoch * math.ceil(n / 7), (epoch + 1) * math.ceil(n / 7))
        assert torch.equal(torch.cat([rec.y[s] for s in steps]), stream.labels("train", order))
        assert torch.equal(torch.cat([rec.x[s] for s in steps]), stream.inputs("train", order, 0))
    assert result.status == "complete" and len(result.class_il) == 1 and len(result.class_il[0]) == 1
    summary = summarize(result.class_il, result.init_class_il)
    assert summary["forgetting"] is None and summary["backward_transfer"] is None
    assert summary["average_accuracy"] == summary["average_incremental_accuracy"] == result.class_il[0][0]


def test_refresh_learning_refreshes_along_a_task_free_stream():
    """Its Fisher comes at task ends: none during the stream (plain ascent), one at its end."""
    stream = task_free(shuffled_source(), gen(0), width=0.5)
    torch.manual_seed(0)
    model = build_backbone("mlp", stream.source.image_shape, stream.num_classes)
    recipe = build_recipe("derpp", plugins=[{"plugin": "refresh", "form": "code"}])
    refresh = recipe.plugins[-1]
    fishers = []
    original = refresh.unlearn

    def unlearn(state, batch):
        fishers.append(refresh.fisher)
        original(state, batch)

    refresh.unlearn = unlearn
    result = train(stream, model, recipe, SGD(model.parameters(), lr=0.05), seed=0, batch_size=7, buffer_size=10)
    assert result.status == "complete" and refresh.refreshes == result.steps == math.ceil(60 / 7)
    assert all(f is None for f in fishers) and refresh.fisher is not None


def test_other_streams_are_still_shuffled():
    from lifelong.data.streams import class_incremental

    stream = class_incremental(shuffled_source(), 1)
    _, rec = _train(stream, "finetune")
    assert not torch.equal(torch.cat(rec.y), stream.labels("train", stream.tasks[0].train_idx))
    assert sorted(torch.cat(rec.y).tolist()) == sorted(stream.labels("train", stream.tasks[0].train_idx).tolist())


def test_the_python_loop_refuses_a_method_that_needs_boundaries():
    stream = task_free(shuffled_source(), gen(0))
    with pytest.raises(ConfigError, match=r"method 'ewc' cannot learn from the task-free stream task-free-toy: "
                                          r"its term 'ewc' needs task boundaries"):
        _train(stream, "ewc")


# -- refusals --------------------------------------------------------------------------------------

REFUSED = [
    ("ewc", "its term 'ewc' needs task boundaries (its Fisher and anchor are computed at each task's end)"),
    ("ewc-online", "its term 'ewc' needs task boundaries"),
    ("si", "its term 'si' needs task boundaries (its importance is consolidated"),
    ("mas", "its term 'mas' needs task boundaries"),
    ("lwf", "its term 'distill-kl' needs task boundaries (its teacher is the model as it was at the previous task's end)"),
    ("agem", "its memory 'task-balanced' needs task boundaries (it stores each task's examples at the task's end"),
    ("icarl", "its memory 'herding' needs task boundaries (its exemplars are chosen by herding at each task's end)"),
    ("icarl-replay", "its memory 'herding' needs task boundaries"),
    ("hpcr", "its term 'pcd' needs task boundaries (it distils from the second task on"),
    ("er-ace", "its replay starts at task 2 (`replay_from: 1`), so on one task it would never replay"),
]


@pytest.mark.parametrize("method,why", REFUSED)
@pytest.mark.parametrize("dry", [False, True])
def test_methods_that_need_task_boundaries_are_refused(method, why, dry, capsys, tmp_path):
    args = ["run", "--benchmark", "task-free-mnist", "--method", method, "--out", str(tmp_path / "r")]
    code, out, err = run_cli(args + (["--dry-run"] if dry else []), capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"lifelong: error: method {method!r} cannot learn from the task-free stream task-free-mnist: ")
    assert why in err and err.rstrip().endswith("; use er, der, derpp, pcr or finetune instead")
    assert not (tmp_path / "r").exists()


def _recipe_file(tmp_path, recipe: dict, imports: list[str] | None = None):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"benchmark": "task-free-mnist", "method": recipe, "imports": imports or []}))
    return path


@pytest.mark.parametrize("recipe,why", [
    ({"terms": [{"term": "ce", "mask": "batch"}]}, "its term 'ce' needs task boundaries (`mask: batch`"),
    ({"terms": [{"term": "ce", "mask": "past"}]}, "its term 'ce' needs task boundaries (`mask: past`"),
    ({"terms": [{"term": "ce"}, {"term": "bregman", "target": "teacher"}]}, "its term 'bregman' needs task boundaries"),
    ({"terms": [{"term": "ce"}, {"term": "l2"}]}, "its term 'l2' needs task boundaries"),
    ({"terms": [{"term": "ce"}], "plugins": [{"plugin": "head-warmup"}]}, "its plug-in 'head-warmup' needs task"),
    ({"terms": [{"term": "ce"}], "memory": "task-balanced", "plugins": [{"plugin": "mix-memory"}]},
     "its memory 'task-balanced' needs task boundaries"),
    ({"terms": [{"term": "ce", "on": "both"}], "memory": "reservoir", "replay_from": 2},
     "its replay starts at task 3 (`replay_from: 2`)"),
])
def test_recipes_that_need_task_boundaries_are_refused(recipe, why, capsys, tmp_path):
    code, out, err = run_cli(["run", "--config", str(_recipe_file(tmp_path, recipe)), "--dry-run",
                              "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and err.count("\n") == 1 and why in err, err


@pytest.mark.parametrize("recipe", [
    {"terms": [{"term": "ce"}, {"term": "bregman", "target": "stored"}], "memory": "reservoir"},
    {"terms": [{"term": "ce"}], "memory": "reservoir", "plugins": [{"plugin": "agem"}]},
    {"terms": [{"term": "ce", "mask": "future"}]},
    {"terms": [{"term": "ce", "on": "both"}], "memory": "reservoir", "plugins": [{"plugin": "nme"}]},
])
def test_recipes_that_need_no_boundary_are_accepted(recipe, capsys, tmp_path):
    code, out, err = run_cli(["run", "--config", str(_recipe_file(tmp_path, recipe)), "--dry-run",
                              "--out", str(tmp_path / "r")], capsys)
    assert code == 0, err


def test_a_users_own_term_that_needs_boundaries_is_refused(capsys, tmp_path):
    own = tmp_path / "own_term.py"
    own.write_text(
        "from lifelong.objective import Term, register_term\n\n"
        "@register_term\nclass AtTaskEnds(Term):\n"
        "    name = 'at-task-ends'\n"
        "    needs_task_boundaries = 'it averages the weights at each task end'\n"
        "    stateless = True\n"
        "    def __call__(self, batch):\n        return batch.logits.new_zeros(())\n\n"
        "@register_term\nclass Anytime(Term):\n"
        "    name = 'anytime'\n"
        "    def __call__(self, batch):\n        return batch.logits.new_zeros(())\n")
    from lifelong.objective import TERMS

    try:
        config = _recipe_file(tmp_path, {"terms": [{"term": "ce"}, {"term": "at-task-ends"}]}, [str(own)])
        code, out, err = run_cli(["run", "--config", str(config), "--dry-run", "--out", str(tmp_path / "r")], capsys)
        assert code == 2 and err.count("\n") == 1
        assert ("method 'custom' cannot learn from the task-free stream task-free-mnist: its term 'at-task-ends' needs "
                "task boundaries (it averages the weights at each task end)") in err
        config = _recipe_file(tmp_path, {"terms": [{"term": "ce"}, {"term": "anytime"}]}, [str(own)])
        code, out, err = run_cli(["run", "--config", str(config), "--dry-run", "--out", str(tmp_path / "r")], capsys)
        assert code == 0, err
    finally:
        TERMS.pop("at-task-ends", None)
        TERMS.pop("anytime", None)


# -- runs ------------------------------------------------------------------------------------------

def tiny_task_free(root, *extra: str) -> list[str]:
    return ["run", "--benchmark", "task-free-fashion-mnist", "--data-root", str(root), "--batch-size", "4",
            "--buffer-size", "20", "--quiet", *extra]


@pytest.mark.parametrize("method,extra", [("er", []), ("derpp", []), ("derpp", ["--refresh", "code"]),
                                          ("joint", []), ("finetune", []), ("pcr", [])])
def test_short_runs_finish(method, extra, data_root, capsys, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = run_cli(tiny_task_free(data_root, "--method", method, "--out", str(out), *extra), capsys)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert m["complete"] and m["num_tasks"] == 1 and m["tasks_trained"] == 1
    assert len(m["class_il"]["accuracy_matrix"]) == 1 and len(m["class_il"]["accuracy_matrix"][0]) == 1
    assert m["class_il"]["forgetting"] is None and m["class_il"]["backward_transfer"] is None
    assert config["scenario"] == "task-free" and config["task_free_width"] == 0.5 and config["num_tasks"] == 1
    assert config["task_classes"] == [list(range(10))]
    assert m["steps"] == 15  # 60 examples in batches of 4, once
    if extra:
        assert config["refresh"]["form"] == "code"
    assert "task-free-fashion-mnist | " in stdout and "forgetting (points)" in stdout


def test_task_free_mnist_with_er_end_to_end(capsys, tmp_path):
    """The bundled MNIST in the Gaussian schedule, with ER: large batches keep it to seconds."""
    out = tmp_path / "run"
    code, stdout, err = run_cli(["run", "--benchmark", "task-free-mnist", "--method", "er", "--batch-size", "500",
                                 "--buffer-size", "200", "--quiet", "--out", str(out)], capsys)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["complete"] and m["steps"] == 120 and m["class_il"]["average_accuracy"] > 30
    assert "(task-free)" in (out / "run.log").read_text()


def test_a_task_free_run_resumed_mid_stream_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    from lifelong.config import make_config
    from lifelong.runs.session import config_to_resume

    root = tmp_path / "data"
    write_fashion_mnist(root, per_class_train=4, per_class_test=1)

    def config(out):
        return make_config({}, {"benchmark": "task-free-fashion-mnist", "data_root": str(root), "out": str(out),
                                "method": "derpp", "batch_size": 4, "buffer_size": 12, "checkpoint_every": 3,
                                "task_free_width": 0.8, "epochs": 2, "seed": 1})

    # a crash in the second epoch
    whole, resumed = crash_then_resume(config, tmp_path, monkeypatch, 13, resume_config=config_to_resume)
    volatile = {"wall_seconds", "train_seconds", "peak_rss_mb", "peak_cuda_mb", "command", "versions"}
    assert whole["complete"] and resumed["complete"] and whole["steps"] == 20
    for doc in (whole, resumed):  # anytime evaluation is on by default here; its time differs
        assert doc["online"].pop("eval_seconds") >= 0
    assert {k: v for k, v in whole.items() if k not in volatile} == {k: v for k, v in resumed.items()
                                                                      if k not in volatile}


# -- settings and the command line -----------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    (["--task-free-width", "0"], "`task-free-width` must be a positive number"),
    (["--task-free-width", "-1.5"], "`task-free-width` must be a positive number"),
    (["--task-free-width", "nan"], "`task_free_width` must be a finite number, got nan"),
    (["--task-free-width", "inf"], "`task_free_width` must be a finite number, got inf"),
    (["--task-free-width", "wide"], "argument --task-free-width: expected a number, got 'wide'"),
    (["--benchmark", "split-mnist", "--task-free-width", "1"],
     "`task-free-width` applies to the task-free benchmarks (task-free-mnist, task-free-fashion-mnist, "
     "task-free-cifar10, task-free-cifar100), not to split-mnist"),
    (["--blurry-mix", "5"], "`blurry-mix` applies to the blurry benchmarks"),
    (["--num-tasks", "5"], "`num-tasks` does not apply to task-free-mnist: a task-free stream is one stream"),
    (["--num-tasks", "2"], "(its configuration records 1), got 2"),
    (["--shuffle-classes"], "`shuffle-classes` does not apply to task-free-mnist: a task-free stream draws"),
])
def test_bad_settings_are_one_line_errors(args, message, capsys, tmp_path):
    code, out, err = run_cli(["run", "--benchmark", "task-free-mnist", *args, "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and err.startswith("lifelong: error: ") and message in err, err
    assert err.count("\n") == 1 and not (tmp_path / "r").exists()


def test_the_width_in_yaml_and_its_type(capsys, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("benchmark: task-free-mnist\ntask-free-width: 2\n")
    code, out, err = run_cli(["run", "--config", str(good), "--dry-run", "--out", str(tmp_path / "r")], capsys)
    assert code == 0, err
    assert "task_free_width: 2.0" in out and "scenario: task-free" in out
    for value, message in (("'1'", "`task_free_width` must be a number or null, got '1'"),
                           (".nan", "`task_free_width` must be a finite number, got nan"),
                           ("0", "`task-free-width` must be a positive number"),
                           ("true", "`task_free_width` must be a number or null, got True")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(f"benchmark: task-free-mnist\ntask_free_width: {value}\n")
        code, out, err = run_cli(["run", "--config", str(bad), "--out", str(tmp_path / "r")], capsys)
        assert code == 2 and message in err and err.count("\n") == 1, (value, err)


def test_the_width_is_part_of_a_runs_identity(tmp_path):
    from lifelong.config import make_config
    from lifelong.runs.session import config_hash, resolve_config

    root = tmp_path / "data"
    write_fashion_mnist(root, per_class_train=2, per_class_test=1)

    def resolved(bench: str = "task-free-fashion-mnist", **values):
        return resolve_config(make_config({}, {"benchmark": bench, "data_root": str(root),
                                               "out": str(tmp_path / "r"), **values}))

    default = resolved()
    assert default["task_free_width"] == 0.5 and default["scenario"] == "task-free"
    assert config_hash(resolved(task_free_width=0.5)) == config_hash(default)
    assert config_hash(resolved(task_free_width=0.6)) != config_hash(default)
    assert "task_free_width" not in resolved("split-fashion-mnist")  # other runs keep their identity


def test_a_registered_task_free_benchmark(capsys, tmp_path):
    import lifelong
    from lifelong.data.benchmarks import BENCHMARKS

    with pytest.raises(ValueError, match="`num_tasks` must be 1, got 3"):
        lifelong.register_benchmark("toy-task-free", shuffled_source(), num_tasks=3, split="task-free")
    own = tmp_path / "bench.py"
    own.write_text("import lifelong\nfrom tests.test_taskfree import shuffled_source\n"
                   "lifelong.register_benchmark('toy-task-free', shuffled_source(), num_tasks=1, split='task-free')\n")
    try:
        code, out, err = run_cli(["run", "--import", str(own), "--benchmark", "toy-task-free", "--dry-run",
                                  "--task-free-width", "0.2", "--out", str(tmp_path / "r")], capsys)
        assert code == 0, err
        assert "task_free_width: 0.2" in out and "scenario: task-free" in out
        for args, message in ((["--task-free-width", "-1"], "`task-free-width` must be a positive number"),
                              (["--method", "si"], "method 'si' cannot learn from the task-free stream toy-task-free")):
            code, out, err = run_cli(["run", "--import", str(own), "--benchmark", "toy-task-free", *args,
                                      "--out", str(tmp_path / "r")], capsys)
            assert code == 2 and message in err and err.count("\n") == 1, err
    finally:
        BENCHMARKS.pop("toy-task-free", None)


@pytest.mark.parametrize("name", ["task-free-cifar10", "task-free-cifar100"])
def test_the_cifar_benchmarks_read_the_files_on_disk(name, tmp_path, capsys):
    import numpy as np

    from lifelong.data.cifar import write_cifar_batch

    def images(n):
        return np.random.default_rng(n).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)

    if name == "task-free-cifar10":
        folder = tmp_path / "cifar-10-batches-py"
        folder.mkdir()
        for i in range(1, 6):
            write_cifar_batch(folder / f"data_batch_{i}", images(10), list(range(10)))
        write_cifar_batch(folder / "test_batch", images(10), list(range(10)))
        classes, width = 10, 0.5
    else:
        folder = tmp_path / "cifar-100-python"
        folder.mkdir()
        write_cifar_batch(folder / "train", images(300), [i % 100 for i in range(300)], label_key=b"fine_labels")
        write_cifar_batch(folder / "test", images(100), list(range(100)), label_key=b"fine_labels")
        classes, width = 100, 5.0
    code, out, err = run_cli(["run", "--benchmark", name, "--data-root", str(tmp_path), "--dry-run",
                              "--out", str(tmp_path / "r")], capsys)
    assert code == 0, err
    resolved = yaml.safe_load(out)
    assert resolved["scenario"] == "task-free" and resolved["backbone"] == "resnet18" and resolved["num_tasks"] == 1
    assert resolved["task_classes"] == [list(range(classes))] and resolved["task_free_width"] == width


def test_list_names_the_task_free_benchmarks(capsys):
    code, out, _ = run_cli(["list"], capsys)
    assert code == 0
    for name in ("task-free-mnist", "task-free-fashion-mnist", "task-free-cifar10", "task-free-cifar100"):
        assert f"  {name} " in out


def test_tiny_sources_of_conftest_work_too():
    stream = task_free(make_source(), gen(0))
    assert stream.num_tasks == 1 and stream.tasks[0].num_train == 120
