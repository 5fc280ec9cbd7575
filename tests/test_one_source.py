"""Facts kept in one place (issue: one source of truth per fact): each test failed on the code
that had two copies."""
from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from lifelong.config import NOT_IDENTITY, make_config
from lifelong.metrics import mean_std
from lifelong.plugins import Refresh
from lifelong.runs.finished import Run, group_runs
from lifelong.seeding import torch_generator
from lifelong.runs.session import config_hash, execute_run, prepare_run
from tests.conftest import run_cli



def _config(root, out, **values):
    return make_config({}, {"benchmark": "split-fashion-mnist", "data_root": str(root), "out": str(out),
                            "batch_size": 4, "buffer_size": 12, "threads": 1, "lr": 0.05, **values})


def test_a_refresh_plugin_in_a_recipe_follows_the_run_seed(fashion, tmp_path):
    """It used to draw its noise from seed 0 whatever the run's seed; now `--refresh` and the same
    plug-in written in the recipe are one thing and give the same run."""
    recipe = {"name": "er+refresh", "terms": [{"term": "ce", "on": "both"}], "memory": "reservoir",
              "plugins": [{"plugin": "refresh", "form": "paper", "every": 1}]}
    via_flag = execute_run(prepare_run(_config(fashion, tmp_path / "flag", method="er", seed=3,
                                               refresh={"form": "paper", "every": 1})))
    via_recipe = execute_run(prepare_run(_config(fashion, tmp_path / "recipe", method=recipe, seed=3)))
    assert via_flag["class_il"]["accuracy_matrix"] == via_recipe["class_il"]["accuracy_matrix"]
    a, b = (torch.load(tmp_path / d / "model.pt", weights_only=True) for d in ("flag", "recipe"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = execute_run(prepare_run(_config(fashion, tmp_path / "seed4", method=recipe, seed=4)))
    assert other["class_il"]["accuracy_matrix"] != via_recipe["class_il"]["accuracy_matrix"]


def test_refresh_generator_comes_from_the_state_seed():
    class State:
        seed = 5
        model = torch.nn.Linear(2, 2)

    plugin = Refresh("paper")
    plugin._maybe_refresh = Refresh._maybe_refresh.__get__(plugin)
    plugin.unlearn = lambda state, batch: None
    plugin._maybe_refresh(State, None)
    expected = torch_generator(5, "refresh")
    assert torch.equal(plugin.generator.get_state(), expected.get_state())


def _run(tmp_path, name, seed, **config):
    folder = tmp_path / name
    folder.mkdir()
    base = {"benchmark": "split-mnist", "method": "er", "buffer_size": 200, "lr": 0.1, "seed": seed,
            "recipe": {"terms": [{"term": "ce", "on": "both"}], "memory": "reservoir"}, **config}
    metrics = {"schema_version": 1, "complete": True, "benchmark": "split-mnist", "method": "er", "seed": seed,
               "num_tasks": 2, "wall_seconds": 1.0,
               "class_il": {"accuracy_matrix": [[90.0, 0.0], [80.0, 95.0]]},
               "task_il": {"accuracy_matrix": [[99.0, 50.0], [97.0, 99.0]]}}
    return Run(folder, metrics, base)


def test_report_and_resume_agree_on_what_defines_a_run(tmp_path):
    """Seeds run with and without --log tensorboard (or on another device) are one
    configuration in a report, and their fingerprints for --resume are equal."""
    a = _run(tmp_path, "a", 0, log=[], device="cpu", out="x")
    b = _run(tmp_path, "b", 1, log=["tensorboard"], device="cuda", out="y", log_every=10)
    assert len(group_runs([a, b])) == 1
    assert config_hash(dict(a.config, seed=0)) == config_hash(dict(b.config, seed=0))
    c = _run(tmp_path, "c", 0, lr=0.2)
    assert len(group_runs([a, c])) == 2 and config_hash(a.config) != config_hash(c.config)
    assert {"log", "log_every", "device", "out", "threads"} <= set(NOT_IDENTITY)


def test_mean_std_is_one_rule():
    assert mean_std([1.0, None, 3.0]) == (2.0, math.sqrt(2.0))  # missing values left out, n - 1
    assert mean_std([5.0]) == (5.0, 0.0)
    assert mean_std([None, None]) is None
    from lifelong.runs import compare, figures, sweep

    values = [81.0, 83.0, 86.0]
    assert figures._mean_std(values) == mean_std(values)
    assert (sweep._stat(values)["mean"], sweep._stat(values)["std"]) == mean_std(values)
    stats = compare._stats(values)
    assert (stats["mean"], stats["std"]) == mean_std(values)


def test_run_log_has_the_task_lines_however_the_run_is_started(fashion, tmp_path):
    """They used to come from the CLI's progress printer, so runs started from Python (and by
    --seeds, sweeps and comparisons) lacked them."""
    execute_run(prepare_run(_config(fashion, tmp_path / "api", method="er")))
    text = (tmp_path / "api" / "run.log").read_text()
    assert text.count(": classes [") == 5 and text.count(" done: mean loss ") == 5


def test_default_folders_come_from_one_place(monkeypatch, tmp_path):
    from lifelong import config as config_module
    from lifelong.runs.session import default_out

    monkeypatch.setattr(config_module, "RUNS_ROOT", tmp_path / "elsewhere")
    out = default_out(make_config({}, {"method": {"name": "mine", "terms": [{"term": "ce"}]}, "seed": 7}))
    assert out.parent == tmp_path / "elsewhere" and out.name.startswith("split-mnist-mine-7-")


def test_one_thread_per_run_and_one_job_per_cpu_by_default(monkeypatch, tmp_path):
    """Runs side by side must not spin threads against each other (benchmarks/side_by_side.py)."""
    from lifelong.errors import UserError

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        prepare_run(make_config({}, {"out": str(tmp_path / "dry")}), dry_run=True)
        assert torch.get_num_threads() == 1
        prepare_run(make_config({}, {"out": str(tmp_path / "dry"), "threads": 2}), dry_run=True)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    from lifelong.runs import parallel

    monkeypatch.setattr(parallel, "available_cpus", lambda: 2)
    one, five = [make_config({}, {})], [make_config({}, {})] * 5
    assert [parallel.choose_jobs(j, c) for j, c in ((None, five), (None, one), (1, five))] == [2, 1, 1]
    with pytest.raises(UserError, match="--jobs must lie in 1..2"):
        parallel.choose_jobs(3, five)


def test_the_default_jobs_leave_room_for_each_runs_threads(monkeypatch, tmp_path, capsys):
    """``--threads 2 --seeds 0-4`` on 2 CPUs runs one job at a time, not 2 jobs x 2 threads:
    ``max(1, min(cpus // threads, runs))``."""
    from lifelong.runs import parallel

    def jobs(cpus: int, threads: int | None, runs: int) -> int:
        monkeypatch.setattr(parallel, "available_cpus", lambda: cpus)
        return parallel.choose_jobs(None, [replace(make_config({}, {}), threads=threads)] * runs)

    assert [jobs(2, 2, 5), jobs(2, 1, 5), jobs(2, None, 5), jobs(16, 4, 5), jobs(16, 3, 2), jobs(2, 4, 5)] == \
        [1, 2, 2, 4, 2, 1]
    assert parallel.choose_jobs(2, [replace(make_config({}, {}), threads=2)] * 5) == 2  # --jobs given: as asked
    monkeypatch.setattr(parallel, "available_cpus", lambda: 2)
    code, _, err = run_cli(["run", "--threads", "2", "--seeds", "0-4", "--out", str(tmp_path / "s"), "--dry-run"],
                           capsys)
    assert code == 0 and "seeds [0, 1, 2, 3, 4], 1 job(s)" in err, err


def test_a_stateful_component_without_state_dict_is_refused_before_the_run(fashion, tmp_path):
    """It used to be resumed silently with fresh state."""
    from lifelong.components import check_resumable
    from lifelong.errors import ConfigError
    from lifelong.objective import TERMS, Term, register_term

    @register_term
    class Counter(Term):
        name = "test-counter"

        def __init__(self):
            self.tasks = 0

        def end_task(self, state):
            self.tasks += 1

        def __call__(self, batch):
            return batch.logits.new_zeros(()) + self.tasks

    recipe = {"terms": [{"term": "ce"}, {"term": "test-counter"}]}
    try:
        with pytest.raises(ConfigError, match=r"Counter \('test-counter'\) keeps state through end_task but has "
                                              r"no state_dict or load_state_dict"):
            prepare_run(_config(fashion, tmp_path / "x", method=recipe))
        assert not (tmp_path / "x").exists()
        Counter.stateless = True
        check_resumable([Counter()])  # declared stateless: accepted
    finally:
        TERMS.pop("test-counter", None)
    from lifelong.methods import PRESETS, build_recipe
    for name in PRESETS:  # every built-in component is resumable
        recipe = build_recipe(name)
        check_resumable([t for _, t in recipe.objective.terms] + list(recipe.plugins))


def test_the_readme_python_example_runs_with_the_public_api(tmp_path, monkeypatch):
    """The README's example, on a few Split-MNIST examples per task (the same calls)."""
    import re

    import lifelong
    from lifelong.objective import TERMS

    text = (Path(__file__).parents[1] / "README.md").read_text()
    code = re.search(r"## Using it from Python.*?```python\n(.*?)```", text, re.S).group(1)
    assert "from lifelong." not in code and "import lifelong\n" in code  # only the curated API
    real_stream = lifelong.build_stream

    def small_stream(*args, **kwargs):
        stream = real_stream(*args, **kwargs)
        stream.tasks = [lifelong.Task(t.index, t.classes, t.train_idx[:40], t.test_idx[:40]) for t in stream.tasks]
        return stream

    monkeypatch.setattr(lifelong, "build_stream", small_stream, raising=False)
    monkeypatch.setattr("lifelong.runs.session.build_stream", small_stream)
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    finally:
        TERMS.pop("logit-penalty", None)
    doc = json.loads((tmp_path / "runs" / "er-penalty" / "metrics.json").read_text())
    assert doc["complete"] and doc["method"] == "er+penalty"


def test_method_names_and_hook_names_are_defined_once():
    from dataclasses import fields

    from lifelong.components import HOOKS
    from lifelong.config import method_name
    from lifelong.loop import Hooks
    from lifelong.methods import build_recipe, recipe_from_spec
    from lifelong.runs.sweep import _slug

    spec = {"terms": [{"term": "ce"}]}
    assert build_recipe(spec).name == recipe_from_spec(spec).name == method_name(spec) == "custom"
    assert build_recipe({**spec, "name": "mine"}).name == "mine"
    assert _slug({"method": spec}, make_config({"method": spec}, {})).startswith(method_name(spec) + "-")
    assert {f.name for f in fields(Hooks)} <= set(HOOKS)

    class Component:
        def begin_task(self, *a): ...
        def after_step(self, *a): ...

    c = Component()
    made = Hooks.of([c])
    assert made.begin_task == [c.begin_task] and made.after_step == [c.after_step] and made.end_task == []
