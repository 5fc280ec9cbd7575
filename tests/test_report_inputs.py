"""What `lifelong report` is given: folders of runs at any depth (a sweep's, a comparison's),
metrics.json documents with odd content, and runs that did not finish."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifelong import metrics
from lifelong.errors import UserError
from lifelong.runs import figures
from lifelong.runs import finished as runs
from lifelong.runs.html_report import write_report
from lifelong.runs.metrics_file import METRICS
from tests.conftest import run_cli
from tests.hostile import _DELETE, _set, apply_changes  # change a document at dotted paths
from tests.test_report import ER, ER_TASK, FINETUNE, INIT, S2, make_run


def sweep_tree(root: Path) -> list[Path]:
    """A sweep's folder as `lifelong sweep` writes it: ``<sweep>/<point>/seed-<k>``, with the
    point's and the sweep's own files beside the runs, and checkpoints inside each run."""
    dirs = []
    for point, lr in (("lr=0.1-1a2b3c", 0.1), ("lr=0.03-4d5e6f", 0.03)):
        for seed in (0, 1):
            run = make_run(root / point, f"seed-{seed}", "er", seed, ER[seed], ER_TASK, lr=lr)
            (run / "checkpoints").mkdir()
            (run / "checkpoints" / "task-1.pt").write_bytes(b"not read")
            dirs.append(run)
    (root / "summary.md").write_text("| table |\n")
    return dirs


def compare_tree(root: Path) -> list[Path]:
    """A comparison's folder as `lifelong compare` writes it: ``<root>/<variant>-seed<k>``."""
    dirs = [make_run(root, f"base-seed{s}", "er", s, ER[s]) for s in (0, 1)]
    dirs += [make_run(root, f"refresh-paper-1a2b-seed{s}", "er", s, FINETUNE[s], refresh="paper") for s in (0, 1)]
    (root / "compare-refresh-paper-1a2b.md").write_text("| table |\n")
    return dirs


# --- 1. run folders at any depth below the folders given ------------------------------------

def test_a_sweep_folder_holds_its_runs_two_levels_down(tmp_path):
    expected = sweep_tree(tmp_path / "sweep")
    assert runs.find_run_folders([tmp_path / "sweep"]) == sorted(expected)


def test_a_comparison_folder_holds_its_runs_one_level_down(tmp_path):
    expected = compare_tree(tmp_path / "compare")
    assert runs.find_run_folders([tmp_path / "compare"]) == sorted(expected)


def test_a_run_folder_is_itself_and_nothing_inside_it_is_searched(tmp_path):
    run = make_run(tmp_path, "run", "er", 0, ER[0])
    # a folder inside a run that looks like a run (e.g. copied into its tensorboard folder)
    make_run(run / "tensorboard", "copy", "er", 0, ER[0])
    assert runs.find_run_folders([run]) == [run]
    assert runs.find_run_folders([tmp_path]) == [run]


def test_folders_given_keep_their_order_and_a_run_found_twice_counts_once(tmp_path):
    sweep = sweep_tree(tmp_path / "sweep")
    compare = compare_tree(tmp_path / "compare")
    found = runs.find_run_folders([tmp_path / "compare", tmp_path / "sweep", sweep[0], tmp_path])
    assert found == sorted(compare) + sorted(sweep)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_symlink_loops_are_skipped_and_linked_runs_are_found(tmp_path):
    expected = sweep_tree(tmp_path / "sweep")
    (tmp_path / "sweep" / "lr=0.1-1a2b3c" / "back-up").symlink_to(tmp_path / "sweep", target_is_directory=True)
    (tmp_path / "sweep" / "self").symlink_to(".", target_is_directory=True)
    assert runs.find_run_folders([tmp_path / "sweep"]) == sorted(expected)
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    (chosen / "best").symlink_to(expected[0], target_is_directory=True)
    assert runs.find_run_folders([chosen]) == [chosen / "best"]


def test_a_folder_without_any_run_below_it_is_one_clear_error(tmp_path):
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    (tmp_path / "empty" / "deeper" / "notes.txt").write_text("no run here")
    with pytest.raises(UserError, match=r"empty holds no run folder \(no metrics\.json at any depth"):
        runs.find_run_folders([tmp_path / "empty"])
    with pytest.raises(UserError, match=r"missing: no such folder"):
        runs.find_run_folders([tmp_path / "missing"])
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UserError, match=r"file\.txt is a file, not a run folder"):
        runs.find_run_folders([tmp_path / "file.txt"])


def test_folders_that_cannot_be_looked_into_are_one_line_or_skipped(tmp_path, monkeypatch):
    """As for a folder without read or search permission (the tests may run as root, who has them)."""
    expected = sweep_tree(tmp_path / "sweep")
    (tmp_path / "sweep" / "locked").mkdir()
    real_stat = Path.stat

    def stat(self, *args, **kwargs):
        if "locked" in self.parts:
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    assert runs.find_run_folders([tmp_path / "sweep"]) == sorted(expected)  # the locked folder is skipped
    with pytest.raises(UserError, match=r"cannot read .*locked: Permission denied"):
        runs.find_run_folders([tmp_path / "sweep" / "locked"])
    with pytest.raises(UserError, match=r"cannot read .*locked: Permission denied"):
        runs.load_runs([tmp_path / "sweep" / "locked"])


def test_the_cli_reports_a_sweep_and_a_comparison(tmp_path, capsys):
    sweep_tree(tmp_path / "sweep")
    code, out, err = run_cli(["report", str(tmp_path / "sweep"), "--out", str(tmp_path / "r1")], capsys)
    assert (code, err) == (0, "") and "report of 4 runs" in out
    assert (tmp_path / "r1" / "report.html").is_file()
    compare_tree(tmp_path / "compare")
    code, out, err = run_cli(["report", str(tmp_path / "compare"), "--out", str(tmp_path / "r2")], capsys)
    assert (code, err) == (0, "") and "report of 4 runs" in out
    text = (tmp_path / "r2" / "report.html").read_text(encoding="utf-8")
    assert "er (buffer 200)" in text and "er (buffer 200, refresh paper)" in text
    (tmp_path / "nothing").mkdir()
    code, out, err = run_cli(["report", str(tmp_path / "sweep" / "lr=0.1-1a2b3c" / "seed-0"), "--out",
                              str(tmp_path / "r3")], capsys)
    assert (code, err) == (0, "") and "report of 1 run in" in out
    code, out, err = run_cli(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "r3")], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and "nothing holds no run folder" in err


# --- 2. metrics.json with odd content: one line naming the file and what is wrong, or a report

NAN, INF = float("nan"), float("inf")

# (key, its new value in a valid complete 3-task run, what the one line says; None: a report is written)
ODD_DOCUMENTS = [
    ("class_il.accuracy_matrix.1.0", NAN, r"class_il\.accuracy_matrix row 2, task 1 is nan, not an accuracy"),
    ("task_il.accuracy_matrix.0.2", INF, r"task_il\.accuracy_matrix row 1, task 3 is inf, not an accuracy"),
    ("class_il.accuracy_matrix.2.2", 101.5, r"row 3, task 3 is 101\.5, not an accuracy \(0 to 100\)"),
    ("class_il.accuracy_matrix.0.1", "90", r"row 1, task 2 is '90', not an accuracy"),
    ("class_il.accuracy_matrix.0.1", True, r"row 1, task 2 is True, not an accuracy"),
    ("class_il.accuracy_matrix.1", [95.0, 80.0], r"class_il\.accuracy_matrix row 2 has 2 values for 3 tasks"),
    ("class_il.accuracy_matrix.1", 95.0, r"class_il\.accuracy_matrix row 2 is 95\.0, not a list"),
    ("class_il.accuracy_matrix", ER[0][:2], r"class_il\.accuracy_matrix has 2 rows for 3 tasks, but the run "
                                            r"is marked complete"),
    ("class_il.accuracy_matrix", [], r"class_il\.accuracy_matrix has 0 rows"),
    ("class_il.accuracy_matrix", "R", r"class_il\.accuracy_matrix is 'R', not a list of rows"),
    ("class_il.accuracy_matrix", _DELETE, r"lacks class_il\.accuracy_matrix"),
    ("task_il", _DELETE, r"lacks task_il"),
    ("task_il", [1, 2], r"task_il is \[1, 2\], not a mapping"),
    ("task_il.accuracy_matrix", [[97.0, 95.0, 96.0]], r"class_il\.accuracy_matrix has 3 rows but "
                                                      r"task_il\.accuracy_matrix 1"),
    ("seed", "zero", r"seed is 'zero', not a whole number"),
    ("seed", 1.5, r"seed is 1\.5, not a whole number"),
    ("seed", False, r"seed is False, not a whole number"),
    ("seed", _DELETE, r"lacks seed"),
    ("num_tasks", 0, r"num_tasks is 0, not a whole number of at least 1"),
    ("num_tasks", "3", r"num_tasks is '3', not a whole number"),
    ("num_tasks", 4, r"class_il\.accuracy_matrix has 3 rows for 4 tasks, but the run is marked complete"),
    ("benchmark", 5, r"benchmark is 5, not a text"),
    ("method", ["er"], r"method is \['er'\], not a text"),
    ("complete", "yes", r"complete is 'yes', not true or false"),
    ("status", 3, r"status is 3, not a text"),
    ("refresh", [1, 2], r"refresh is \[1, 2\], not null, a text or a mapping"),
    ("class_il.forgetting", "high", r"class_il\.forgetting is 'high', not a number or null"),
    ("wall_seconds", "fast", r"wall_seconds is 'fast', not a number or null"),
    ("wall_seconds", -1.0, r"wall_seconds is -1\.0, not a number of seconds"),
    ("schema_version", "1", r"has schema version '1'"),
    # legitimate states: a report, showing what is missing as missing
    ("class_il.forgetting", NAN, None),
    ("task_il.forward_transfer", None, None),
    ("wall_seconds", NAN, None),
    ("seed", 10**30, None),
    ("class_il.accuracy_matrix.0.0", 90, None),  # an integer accuracy is an accuracy
    ("complete", False, None),  # listed as incomplete
]


def _write_odd(root: Path, key: str, value) -> Path:
    run = make_run(root, "odd", "er", 0, ER[0], ER_TASK)
    doc = json.loads((run / "metrics.json").read_text())
    _set(doc, key, value)
    (run / "metrics.json").write_text(json.dumps(doc))  # NaN and Infinity as Python's json writes them
    return run


@pytest.mark.parametrize("key, value, message", ODD_DOCUMENTS,
                         ids=[f"{k}={'deleted' if v is _DELETE else repr(v)[:20]}" for k, v, _ in ODD_DOCUMENTS])
def test_odd_metrics_give_one_line_or_a_report(tmp_path, capsys, key, value, message):
    run = _write_odd(tmp_path / "runs", key, value)
    code, out, err = run_cli(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report")], capsys)
    if message is None:
        assert (code, err) == (0, "") and (tmp_path / "report" / "report.html").is_file()
        return
    assert code == 2 and out == ""
    assert err.startswith("lifelong: error: ") and err.count("\n") == 1, err
    assert str(run / "metrics.json") in err and re.search(message, err), err


@pytest.mark.parametrize("text, message", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"a": 1', "not JSON"),
    ("[1, 2]", "not a JSON object"),
    ("\xff\xfe", "not JSON"),
], ids=["deep", "cut short", "a list", "not text"])
def test_metrics_files_that_are_not_documents_are_one_line(tmp_path, capsys, text, message):
    run = make_run(tmp_path / "runs", "odd", "er", 0, ER[0])
    (run / "metrics.json").write_bytes(text.encode("latin-1"))
    code, out, err = run_cli(["report", str(run), "--out", str(tmp_path / "report")], capsys)
    assert code == 2 and err.count("\n") == 1 and str(run / "metrics.json") in err and message in err, err


def test_a_run_config_with_odd_keys_still_groups(tmp_path):
    a = make_run(tmp_path, "a", "er", 0, ER[0], params={1: "one", "two": 2})
    b = make_run(tmp_path, "b", "er", 1, ER[1], params={1: "one", "two": 2})
    assert [c.seeds for c in runs.group_runs(runs.load_runs([a, b]))] == [[0, 1]]


def test_seeds_of_one_configuration_with_different_shapes_are_one_line(tmp_path):
    a = make_run(tmp_path, "a", "er", 0, ER[0])
    b = make_run(tmp_path, "b", "er", 1, [ER[1][-1]])  # one row, as joint training writes
    with pytest.raises(UserError, match=r"a and .*b are one configuration but hold accuracy matrices of 3 and 1 rows"):
        runs.group_runs(runs.load_runs([a, b]))


def test_nan_metrics_of_a_run_show_as_missing(tmp_path):
    run = _write_odd(tmp_path, "class_il.backward_transfer", NAN)
    loaded = runs.load_runs([run])[0]
    assert loaded.metrics["class_il"]["backward_transfer"] is None
    text = write_report([run], tmp_path / "report").read_text(encoding="utf-8")
    text = re.sub(r'<img src="[^"]*"', "<img", text).lower()
    assert not re.search(r"\bnan\b", text) and "<td class=num>–</td>" in text


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-5, 10**20) | st.floats() | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner,
                                                                                 max_size=3),
                     max_leaves=12)
_KEYS = ["schema_version", "complete", "status", "benchmark", "method", "refresh", "seed", "num_tasks",
         "wall_seconds", "class_il", "task_il", "class_il.accuracy_matrix", "task_il.accuracy_matrix",
         "class_il.accuracy_matrix.0", "class_il.accuracy_matrix.2.1", "task_il.accuracy_matrix.1.2",
         "class_il.average_accuracy", "class_il.forgetting", "task_il.forward_transfer"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(_KEYS), _JSON | st.just(_DELETE)), min_size=1, max_size=3))
def test_whatever_a_metrics_file_holds_the_report_data_is_made_or_one_error(tmp_path_factory, changes):
    """Reading, grouping, the summary table and every figure's data (the plots are left out to
    stay fast): a UserError or a result, never another exception."""
    run = make_run(tmp_path_factory.mktemp("runs"), "odd", "er", 0, ER[0], ER_TASK)
    doc = json.loads((run / "metrics.json").read_text())
    apply_changes(doc, changes)
    (run / "metrics.json").write_text(json.dumps(doc))
    try:
        confs = runs.group_runs(runs.load_runs(runs.find_run_folders([run])))
    except UserError:
        return
    figures.summary_table(confs)
    for conf in confs:
        for scenario in figures.SCENARIOS:
            if conf.matrices(scenario):
                for data in (figures.matrix_mean_std, figures.average_accuracy_after_each_task,
                             figures.task_accuracy_curves, figures.forgetting_per_task):
                    data(conf.matrices(scenario))


# --- 3. runs that did not finish: counted, marked, left out of means and figures ------------

def _stopped(root: Path, name: str, seed: int, rows: list, status: str = "diverged") -> Path:
    """A run that stopped early, as `lifelong run` writes it: the rows measured so far."""
    run = make_run(root, name, "er", seed, ER[0], ER_TASK)
    doc = json.loads((run / "metrics.json").read_text())
    summary = metrics.summarize(rows, INIT) if rows else dict.fromkeys(METRICS)
    for scenario in ("class_il", "task_il"):
        doc[scenario] = {**summary, "accuracy_matrix": rows, "initial_accuracy": INIT}
    doc.update(status=status, complete=False, message="non-finite loss at task 2, step 7")
    (run / "metrics.json").write_text(json.dumps(doc))
    return run


def test_incomplete_runs_are_read_and_left_out_of_the_means(tmp_path):
    done = [make_run(tmp_path, f"er-seed{s}", "er", s, ER[s], ER_TASK) for s in (0, 1)]
    stopped = _stopped(tmp_path, "er-seed2", 2, [[10.0, 0.0, 0.0], [5.0, 6.0, 0.0]])
    (conf,) = runs.group_runs(runs.load_runs([*done, stopped]))
    assert conf.seeds == [0, 1, 2] and [r.complete for r in conf.runs] == [True, True, False]
    assert conf.matrices("class_il") == [ER[0], ER[1]]  # what the figures average
    (row,) = figures.summary_table([conf])
    assert row["seeds"] == [0, 1] and row["runs"] == 3
    assert row["class_il"]["average_accuracy"] == pytest.approx({"mean": (160 / 3 + 190 / 3) / 2, "std": 10 / S2})


def test_the_report_counts_and_marks_incomplete_runs(tmp_path, capsys):
    root = tmp_path / "runs"
    for s in (0, 1):
        make_run(root, f"er-seed{s}", "er", s, ER[s], ER_TASK)
    _stopped(root, "er-seed2", 2, [[10.0, 0.0, 0.0], [5.0, 6.0, 0.0]])
    _stopped(root, "er-seed3", 3, [], status="interrupted")  # stopped before the first task ended
    make_run(root, "finetune-seed0", "finetune", 0, FINETUNE[0])
    code, out, err = run_cli(["report", str(root), "--out", str(tmp_path / "report")], capsys)
    assert (code, err) == (0, "")
    assert "report of 5 runs (2 incomplete, left out of the means and figures)" in out
    text = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "<td class=num>2 / 4</td>" in text and "<td class=num>1 / 1</td>" in text
    assert "58.33 ± 7.07" in text  # er's class-IL average accuracy over its two complete seeds
    assert "incomplete: diverged after 2 of 3 tasks" in text and "incomplete: interrupted after 0 of 3 tasks" in text


def test_a_configuration_without_a_complete_run_is_listed_without_figures(tmp_path):
    done = make_run(tmp_path, "finetune-seed0", "finetune", 0, FINETUNE[0])
    stopped = _stopped(tmp_path, "er-seed0", 0, [[90.0, 0.0, 0.0]])
    text = write_report([done, stopped], tmp_path / "report").read_text(encoding="utf-8")
    assert "<td class=num>0 / 1</td>" in text and "er (buffer 200) (no complete run)" in text
    only = write_report([stopped], tmp_path / "only").read_text(encoding="utf-8")
    assert "<img" not in only and "No configuration has data for this figure." in only


# --- 4. class-IL forward transfer measures the initialisation: not shown as transfer --------

def _finished_doc(tmp_path: Path) -> dict:
    """A complete run's metrics.json, with what the end-of-run table reads besides."""
    run = make_run(tmp_path, "run", "er", 0, ER[0], ER_TASK)
    return {**json.loads((run / "metrics.json").read_text()), "message": "", "peak_rss_mb": 600.0}


def test_the_end_of_run_table_shows_forward_transfer_for_task_il_only(tmp_path):
    from lifelong.runs.report import format_table

    doc = _finished_doc(tmp_path)
    assert doc["class_il"]["forward_transfer"] == pytest.approx(-13.0)  # what metrics.json keeps: -mean(b[1:])
    lines = format_table(doc).splitlines()
    (row,) = [line for line in lines if line.startswith("forward transfer")]
    assert row.split()[-2:] == ["n/a", f"{doc['task_il']['forward_transfer']:.2f}"]
    assert "-13.00" not in row
    assert any(line.startswith("n/a:") and "initialisation" in line for line in lines)


def test_the_report_shows_forward_transfer_for_task_il_only(tmp_path):
    run = make_run(tmp_path, "run", "er", 0, ER[0], ER_TASK)
    text = write_report([run], tmp_path / "report").read_text(encoding="utf-8")
    class_il, task_il = re.findall(r"<div class=wide><table>(.*?)</table></div>", text, re.S)
    assert "<td class=num>n/a</td>" in class_il and "-13.00" not in class_il
    assert "<td class=num>44.50</td>" in task_il  # ((60 - 12) + (55 - 14)) / 2
    assert "class-IL forward transfer" in text and "initialisation" in text


def test_class_il_forward_transfer_is_minus_the_initial_accuracy_when_future_classes_score_zero():
    """Why it is not shown: in class-IL the classes of task j are never predicted before task j
    is trained (R[j-1][j] = 0, as in every class-IL run), so FWT = -mean(b[1:]) for any method."""
    R = [[90.0, 0.0, 0.0], [60.0, 85.0, 0.0], [40.0, 50.0, 80.0]]
    assert metrics.forward_transfer(R, INIT) == pytest.approx(-(12.0 + 14.0) / 2)
    assert ("class_il", "forward_transfer") in metrics.NOT_SHOWN
