"""The multi-run commands (`lifelong run --seeds`, `lifelong compare`, `lifelong sweep`): runs that
stop, stop requests, summaries over complete runs only, duplicate grid points, refused flags.
Each test failed on the code before its fix."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lifelong.cli import main
from tests.conftest import write_fashion_mnist


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_fashion_mnist(root)
    return root


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _tiny(data_root: Path) -> list[str]:
    return ["--benchmark", "split-fashion-mnist", "--data-root", str(data_root), "--batch-size", "4", "--quiet"]


def _sweep_file(tmp_path: Path, data_root: Path, grid: str, seeds: str = "0-1", base: str = "") -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(f"base: {{benchmark: split-fashion-mnist, data-root: {data_root}, batch-size: 4, threads: 1"
                    f"{', ' + base if base else ''}}}\ngrid: {grid}\nseeds: {seeds}\nout: {tmp_path / 'sweep'}\n")
    return path


# 1. runs that stop before finishing their first task


@pytest.mark.parametrize("command", ["seeds", "compare", "sweep"])
def test_runs_that_stop_before_their_first_task_get_a_line_each_and_a_summary(command, data_root, tmp_path, capsys):
    """`--method finetune --lr 1e30` diverges at the first steps: the report callbacks used to
    crash formatting the missing accuracy (TypeError, no summary written)."""
    out = tmp_path / "out"
    diverging = ["--method", "finetune", "--lr", "1e30", "--seeds", "0-1", "--jobs", "1", "--out", str(out)]
    if command == "seeds":
        args, summary = ["run", *_tiny(data_root), *diverging], out / "summary.md"
    elif command == "compare":
        args, summary = ["compare", *_tiny(data_root), *diverging], out
    else:
        sweep = _sweep_file(tmp_path, data_root, "{method: [finetune], lr: [1.0e+30]}")
        args, summary = ["sweep", str(sweep), "--jobs", "1"], tmp_path / "sweep" / "summary.md"
    code, stdout, err = _cli(args, capsys)
    assert code == 1, err
    assert "Traceback" not in err and "Error" not in err
    run_lines = [line for line in err.splitlines() if "diverged" in line]
    assert len(run_lines) == (4 if command == "compare" else 2), err
    assert all("the loss became" in line and "0/5 tasks" in line for line in run_lines), err
    if command == "compare":
        assert len(list(summary.glob("compare-*.json"))) == 1 and len(list(summary.glob("compare-*.md"))) == 1
    else:
        assert summary.is_file() and summary.with_suffix(".csv").is_file()
    assert "results in" in stdout
