"""The report of finished runs: reading run folders, grouping seeds, the figure data (checked
against hand-computed values) and the HTML page with its figures."""
from __future__ import annotations

import base64
import json
import math
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from lifelong import metrics
from lifelong.runs import figures
from lifelong.runs import finished as runs
from lifelong.errors import UserError
from lifelong.runs.html_report import write_report

S2 = math.sqrt(2)

# class-IL, 3 tasks; rows: after training task i, columns: task j (percent)
ER = [
    [[90.0, 0.0, 0.0], [95.0, 80.0, 0.0], [40.0, 50.0, 70.0]],  # seed 0: task 0 peaks after task 1
    [[94.0, 0.0, 0.0], [64.0, 84.0, 0.0], [50.0, 60.0, 80.0]],  # seed 1
]
# task-IL of both er seeds: task 1 ends above its earlier best (the last row is not in the max)
ER_TASK = [[99.0, 60.0, 50.0], [97.0, 95.0, 55.0], [96.0, 99.0, 98.0]]
FINETUNE = [[[99.0, 0.0, 0.0], [0.0, 98.0, 0.0], [0.0, 0.0, 97.0 + k]] for k in range(3)]  # last: 97, 98, 99
JOINT = [[97.0, 95.0, 96.0]]
INIT = [10.0, 12.0, 14.0]
RECIPES = {"er": {"terms": [{"term": "ce", "on": "both"}], "memory": "reservoir"},
           "derpp": {"terms": [{"term": "ce"}, {"term": "logit-mse"}], "memory": "reservoir"},
           "finetune": {"terms": [{"term": "ce"}]}, "joint": {"terms": [{"term": "ce"}], "joint": True}}


def make_run(root: Path, name: str, method: str, seed: int, class_il, task_il=None, *, complete: bool = True,
             refresh=None, wall: float = 10.0, benchmark: str = "split-mnist", **config) -> Path:
    """A run folder as `lifelong run` writes it, with only the files and keys the report reads."""
    task_il = task_il or class_il
    path = root / name
    path.mkdir(parents=True)
    doc = {"schema_version": 1, "status": "complete" if complete else "diverged", "complete": complete,
           "benchmark": benchmark, "method": method, "params": {}, "refresh": refresh, "seed": seed,
           "num_tasks": 3, "wall_seconds": wall, "steps": 100}
    for key, R in (("class_il", class_il), ("task_il", task_il)):
        doc[key] = {**metrics.summarize(R, INIT), "accuracy_matrix": R, "initial_accuracy": INIT}
    (path / "metrics.json").write_text(json.dumps(doc))
    cfg = {"benchmark": benchmark, "method": method, "params": {}, "buffer_size": 200, "lr": 0.1, "seed": seed,
           "num_tasks": 3, "out": str(path), "device": "cpu", "refresh": refresh, "method_name": method,
           "recipe": RECIPES.get(method, RECIPES["er"]), "task_classes": [[seed, 1], [2, 3], [4, 5]], **config}
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def run_dirs(tmp_path: Path) -> list[Path]:
    root = tmp_path / "runs"
    dirs = [make_run(root, f"er-seed{s}", "er", s, ER[s], ER_TASK, wall=10.0 + 2 * s) for s in (0, 1)]
    dirs += [make_run(root, f"finetune-seed{s}", "finetune", s, FINETUNE[s]) for s in (2, 0, 1)]
    dirs.append(make_run(root, "joint-seed0", "joint", 0, JOINT))
    dirs.append(make_run(root, "derpp-refresh-seed0", "derpp", 0, ER[0], refresh={"form": "code", "gamma": 1e-5}))
    return dirs


def approx(values):
    return pytest.approx(values, abs=1e-9)


# --- figure data, against hand-computed values ---------------------------------------------

def test_matrix_mean_and_sample_std_are_element_wise():
    stats = figures.matrix_mean_std(ER)
    assert stats["seeds"] == 2
    assert stats["mean"] == [approx([92, 0, 0]), approx([79.5, 82, 0]), approx([45, 55, 75])]
    d = 1 / S2  # sample std of two values a, b is |a - b| / sqrt(2)
    assert stats["std"] == [approx([4 * d, 0, 0]), approx([31 * d, 4 * d, 0]), approx([10 * d, 10 * d, 10 * d])]


def test_average_accuracy_after_each_task_averages_the_tasks_seen_per_seed():
    stats = figures.average_accuracy_after_each_task(ER)
    # seed 0: 90, (95 + 80) / 2, (40 + 50 + 70) / 3; seed 1: 94, (64 + 84) / 2, (50 + 60 + 80) / 3
    assert stats["mean"] == approx([92, (87.5 + 74) / 2, (160 / 3 + 190 / 3) / 2])
    assert stats["std"] == approx([4 / S2, 13.5 / S2, 10 / S2])
    three = figures.average_accuracy_after_each_task(FINETUNE)
    assert three["mean"][-1] == pytest.approx((97 + 98 + 99) / 3 / 3)
    assert three["std"][-1] == pytest.approx(1 / 3)  # stdev(97, 98, 99) = 1, divided by 3 tasks


def test_joint_training_gives_one_average_and_no_sequence_data():
    assert figures.average_accuracy_after_each_task([JOINT]) == {"mean": approx([96.0]), "std": [0.0], "seeds": 1}
    assert figures.task_accuracy_curves([JOINT]) is None
    assert figures.forgetting_per_task([JOINT]) is None
    assert figures.matrix_mean_std([JOINT])["mean"] == [JOINT[0]]


def test_task_accuracy_curves_start_when_each_task_is_learnt():
    stats = figures.task_accuracy_curves(ER)
    assert stats["mean"] == [approx([92, 79.5, 45]), approx([82, 55]), approx([75])]
    assert stats["std"][2] == approx([10 / S2])


def test_forgetting_per_task_uses_the_best_row_before_the_last():
    stats = figures.forgetting_per_task(ER)
    # seed 0: max(90, 95) - 40 = 55, 80 - 50 = 30; seed 1: max(94, 64) - 50 = 44, 84 - 60 = 24
    assert stats["mean"] == approx([49.5, 27])
    assert stats["std"] == approx([11 / S2, 6 / S2])
    # task 1 rose from 95 to 99 in the last row: negative forgetting, the last row is not a peak
    assert figures.forgetting_per_task([ER_TASK])["mean"] == approx([3, -4])


@pytest.mark.parametrize("R", [ER[0], ER[1], ER_TASK, FINETUNE[2]])
def test_forgetting_per_task_averages_to_the_run_metric(R):
    per_task = figures.forgetting_per_task([R])["mean"]
    assert sum(per_task) / len(per_task) == pytest.approx(metrics.forgetting(R))


def test_matrices_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        figures.matrix_mean_std([ER[0], JOINT])


# --- reading and grouping runs -------------------------------------------------------------

def test_runs_group_by_configuration_with_readable_labels(run_dirs):
    confs = runs.group_runs(runs.load_runs(run_dirs))
    assert [c.label for c in confs] == ["er (buffer 200)", "finetune", "joint", "derpp (buffer 200, refresh code)"]
    assert [c.seeds for c in confs] == [[0, 1], [0, 1, 2], [0], [0]]  # sorted by seed, though given 2, 0, 1
    assert confs[1].matrices("class_il") == FINETUNE
    assert confs[0].matrices("task_il") == [ER_TASK, ER_TASK]


def test_configurations_that_share_a_label_are_told_apart(tmp_path):
    dirs = [make_run(tmp_path, "a", "er", 0, ER[0]), make_run(tmp_path, "b", "er", 0, ER[1], lr=0.03)]
    labels = [c.label for c in runs.group_runs(runs.load_runs(dirs))]
    assert labels == ["er (buffer 200) lr=0.1", "er (buffer 200) lr=0.03"]


def test_buffer_size_does_not_split_methods_without_memory(tmp_path):
    dirs = [make_run(tmp_path, "a", "finetune", 0, ER[0]),
            make_run(tmp_path, "b", "finetune", 1, ER[1], buffer_size=500)]
    confs = runs.group_runs(runs.load_runs(dirs))
    assert [(c.label, c.seeds) for c in confs] == [("finetune", [0, 1])]


def test_old_folders_without_a_recipe_read_the_memory_from_the_preset(tmp_path):
    """Folders written before config.yaml held the recipe: the preset's recipe says whether the
    method keeps a memory (so whether the buffer size labels and splits its configurations)."""
    dirs = [make_run(tmp_path, "er-a", "er", 0, ER[0]), make_run(tmp_path, "er-b", "er", 0, ER[1], buffer_size=500),
            make_run(tmp_path, "ft-a", "finetune", 0, ER[0]), make_run(tmp_path, "ft-b", "finetune", 1, ER[1],
                                                                          buffer_size=500),
            make_run(tmp_path, "mine", "my-recipe", 0, ER[0])]
    for path in dirs:
        config = yaml.safe_load((path / "config.yaml").read_text())
        del config["recipe"]
        (path / "config.yaml").write_text(yaml.safe_dump(config))
    loaded = runs.load_runs(dirs)
    assert [r.has_memory for r in loaded] == [True, True, False, False, False]  # no preset: no memory known
    confs = runs.group_runs(loaded)
    assert [(c.label, c.seeds) for c in confs] == [("er (buffer 200)", [0]), ("er (buffer 500)", [0]),
                                                    ("finetune", [0, 1]), ("my-recipe", [0])]
    old = replace(loaded[0], config={k: v for k, v in loaded[0].config.items() if k != "buffer_size"})
    assert not old.has_memory  # nor without a buffer size


def test_a_setting_left_out_by_older_runs_equals_null(tmp_path):
    a = make_run(tmp_path, "a", "er", 0, ER[0])  # writes refresh: null
    b = make_run(tmp_path, "b", "er", 1, ER[1])
    config = yaml.safe_load((b / "config.yaml").read_text())
    del config["refresh"]
    (b / "config.yaml").write_text(yaml.safe_dump(config))
    assert [c.seeds for c in runs.group_runs(runs.load_runs([a, b]))] == [[0, 1]]


def test_summary_table_has_mean_and_std_over_seeds(run_dirs):
    rows = {r["label"]: r for r in figures.summary_table(runs.group_runs(runs.load_runs(run_dirs)))}
    er = rows["er (buffer 200)"]
    assert er["seeds"] == [0, 1]
    assert er["class_il"]["average_accuracy"] == approx({"mean": (160 / 3 + 190 / 3) / 2, "std": 10 / S2})
    assert er["class_il"]["forgetting"] == approx({"mean": (42.5 + 34) / 2, "std": 8.5 / S2})
    assert er["class_il"]["backward_transfer"]["mean"] == pytest.approx(((-50 - 30) / 2 + (-44 - 24) / 2) / 2)
    assert er["task_il"]["forward_transfer"] == approx({"mean": ((60 - 12) + (55 - 14)) / 2, "std": 0.0})
    assert er["wall_seconds"] == approx({"mean": 11.0, "std": 2 / S2})
    assert rows["joint"]["class_il"]["average_accuracy"]["mean"] == pytest.approx(96.0)
    assert rows["joint"]["class_il"]["forgetting"] is None


def test_missing_and_unreadable_runs_are_refused_by_name(tmp_path, run_dirs):
    empty = tmp_path / "half-done"
    empty.mkdir()
    with pytest.raises(UserError, match=r"half-done has no metrics\.json"):
        runs.load_runs([*run_dirs, empty])
    broken = make_run(tmp_path, "diverged-run", "er", 5, ER[0], complete=False)
    assert not runs.load_runs([broken])[0].complete  # read, and left out of means (tests/test_report_inputs.py)
    with pytest.raises(UserError, match="no-such-run"):
        runs.load_runs([tmp_path / "no-such-run"])
    (tmp_path / "bad-json").mkdir()
    (tmp_path / "bad-json" / "metrics.json").write_text("{not json")
    with pytest.raises(UserError, match="bad-json"):
        runs.load_runs([tmp_path / "bad-json"])


def test_other_schema_versions_and_missing_configs_are_refused(tmp_path):
    path = make_run(tmp_path, "future", "er", 0, ER[0])
    doc = json.loads((path / "metrics.json").read_text())
    (path / "metrics.json").write_text(json.dumps({**doc, "schema_version": 99}))
    with pytest.raises(UserError, match="future.*schema version 99"):
        runs.load_runs([path])
    other = make_run(tmp_path, "no-config", "er", 0, ER[0])
    (other / "config.yaml").unlink()
    with pytest.raises(UserError, match="no-config has no config.yaml"):
        runs.load_runs([other])


def test_the_supported_schema_is_the_one_runs_write():
    from lifelong.runs.report import SCHEMA_VERSION

    assert SCHEMA_VERSION in runs.SUPPORTED_SCHEMAS


def test_mixed_benchmarks_and_repeated_seeds_are_refused(tmp_path):
    a = make_run(tmp_path, "a", "er", 0, ER[0])
    b = make_run(tmp_path, "b", "er", 1, ER[1], benchmark="split-fashion-mnist")
    with pytest.raises(UserError, match="different task sequences"):
        runs.group_runs(runs.load_runs([a, b]))
    c = make_run(tmp_path, "c", "er", 0, ER[1])
    with pytest.raises(UserError, match=r"a and .*c are the same configuration with the same seed 0"):
        runs.group_runs(runs.load_runs([a, c]))


# --- the HTML report -----------------------------------------------------------------------

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURE_FILES = [f"{stem}_{s}.png" for stem in ("average_accuracy", "accuracy_matrix", "task_accuracy", "forgetting")
                for s in ("class_il", "task_il")]


def test_write_report_writes_the_page_and_every_figure(tmp_path, run_dirs):
    out = tmp_path / "report"
    page = write_report(run_dirs, out)
    assert page == out / "report.html"
    text = page.read_text(encoding="utf-8")
    embedded = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(embedded) == len(FIGURE_FILES)
    for name in FIGURE_FILES:
        png = (out / name).read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) > 1000
        assert base64.b64encode(png).decode() in embedded
    # summary values: er class-IL average accuracy 58.33 ± 7.07; finetune 32.67 ± 0.33 over 3 seeds
    assert "58.33 ± 7.07" in text and "32.67 ± 0.33" in text
    assert "<td>derpp (buffer 200, refresh code)</td>" in text
    assert "Not shown: joint" in text  # no curves or forgetting for joint training
    assert str(run_dirs[0]) in text
    # the summary fits the page: one table per scenario, eight columns each, in a scrolling box
    tables = re.findall(r"<div class=wide><table>(.*?)</table></div>", text, re.S)
    assert len(tables) == 2 and all(t.split("</tr>")[0].count("<th>") == 8 for t in tables)


def test_report_escapes_text_and_reports_one_seed_without_std(tmp_path):
    run = make_run(tmp_path, "a<b>&c", "<script>x</script>", 0, ER[0])
    text = write_report([run], tmp_path / "out").read_text(encoding="utf-8")
    assert "<script>" not in text
    assert "&lt;script&gt;x&lt;/script&gt;" in text and "a&lt;b&gt;&amp;c" in text
    assert "<td class=num>53.33</td>" in text  # class-IL average accuracy, no ± for a single seed


def test_report_refuses_an_output_that_is_a_file(tmp_path, run_dirs):
    target = tmp_path / "report.html"
    target.write_text("keep me")
    with pytest.raises(UserError, match="report.html is a file"):
        write_report(run_dirs, target)
    assert target.read_text() == "keep me"


def test_importing_figures_does_not_import_matplotlib():
    code = "import sys, lifelong.runs.figures, lifelong.runs.html_report; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_accuracy_axes_follow_the_data():
    from lifelong.runs.figures import accuracy_limits

    assert accuracy_limits([95.2, 98.9, 99.4]) == (90.0, 101.0)  # not 0-100 for task-IL accuracies
    assert accuracy_limits([19.7, 85.0]) == (15.0, 90.0)
    assert accuracy_limits([0.0, 100.0]) == (0.0, 101.0)
    assert accuracy_limits([]) == (0.0, 101.0)


def test_mean_line_and_band_of_every_figure_come_from_one_helper():
    """The ± std band is drawn only for several seeds, capped at 100%; one seed's legend has no n."""
    calls = []

    class Axes:
        def plot(self, xs, mean, **kw):
            calls.append(("plot", list(xs), list(mean), kw["label"]))

        def fill_between(self, xs, low, high, **kw):
            calls.append(("band", list(low), list(high), kw["alpha"]))

    ax = Axes()
    figures._mean_and_band(ax, [0, 1], [90.0, 99.0], [5.0, 2.0], 3, "red", figures._series_name("er", {"seeds": 3}))
    figures._mean_and_band(ax, [0, 1], [50.0, 60.0], [0.0, 0.0], 1, "blue", figures._series_name("ft", {"seeds": 1}))
    assert calls == [("plot", [0, 1], [90.0, 99.0], "er (n=3)"), ("band", [85.0, 97.0], [95.0, 100.0], 0.18),
                     ("plot", [0, 1], [50.0, 60.0], "ft")]
