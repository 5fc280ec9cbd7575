"""What `lifelong report` is given: folders of runs at any depth (a sweep's, a comparison's),
metrics.json documents with odd content, and runs that did not finish."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from lifelong.cli import main
from lifelong.errors import UserError
from lifelong.runs import finished as runs
from tests.test_report import ER, ER_TASK, FINETUNE, make_run


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


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
    code, out, err = run_cli(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "r3")], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and "nothing holds no run folder" in err
