"""Property-based tests: whatever a user feeds the config loader, the recipe builder, the data
readers or the command line, the answer is acceptance or one clear line with exit code 2."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests import hostile
from tests.conftest import write_fashion_mnist

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_fashion_mnist(root, per_class_train=2, per_class_test=1)
    return root


@FAST
@given(hostile.configs)
def test_config_values(values):
    assert hostile.check_config(values) != "crash"


@FAST
@given(hostile.yaml_texts)
def test_yaml_documents(text):
    with tempfile.TemporaryDirectory() as tmp:
        assert hostile.check_yaml(text, Path(tmp)) != "crash"


@FAST
@given(hostile.recipes)
def test_recipes(spec):
    assert hostile.check_recipe(spec) != "crash"


@FAST
@given(hostile.raw_bytes)
def test_idx_bytes(data):
    with tempfile.TemporaryDirectory() as tmp:
        assert hostile.check_idx(data, Path(tmp)) != "crash"


@FAST
@example([("--out", "x" * 300)])               # a name the file system cannot hold: OSError
@example([("--data-root", "x" * 300)])
@given(st.lists(st.tuples(hostile.flags, hostile.flag_values), min_size=1, max_size=3))
def test_command_line_flags(data_root, pairs):
    args = [item for pair in pairs for item in pair]
    with tempfile.TemporaryDirectory() as tmp:
        assert hostile.check_cli(args, data_root, Path(tmp) / "never") != "crash"


# --- the commands of many runs (tests/hostile.py: what counts as accepted, refused, a crash) ---


@FAST
@example("0-99999999999", None, [])             # used to expand the range first: MemoryError
@example(str(2**63), None, [])                  # used to be accepted, though `--seed` refuses it
@example("0", None, ["--out", "x" * 300])       # a folder name the file system cannot hold: OSError
@example("0-1", "2", ["--method", ""])          # refused after the command's first line: two lines
@given(hostile.seeds_texts, hostile.jobs_values, st.lists(st.tuples(hostile.flags, hostile.flag_values), max_size=2))
def test_seeds_and_jobs(data_root, seeds, jobs, pairs):
    with tempfile.TemporaryDirectory() as tmp:
        assert hostile.check_seeds(seeds, jobs, [i for p in pairs for i in p], data_root, Path(tmp)) != "crash", \
            hostile.crashes[-1:]


@FAST
@example(["--method", ""])                      # refused after the command's first line: two lines
@example(["--import", "no_such_module_x"])
@example(["--out", "x" * 300])
@given(hostile.compare_args)
def test_compare_flags(data_root, args):
    with tempfile.TemporaryDirectory() as tmp:
        assert hostile.check_compare(args, data_root, Path(tmp)) != "crash", hostile.crashes[-1:]


@FAST
@example("grid: {1: [a]}\n")                     # keys that are not text: AttributeError
@example("base: {1: 2}\n")
@example("grid: {method: [{1: a, b: c}]}\n")     # ... inside a value: TypeError sorting them
@example("seeds: 0-99999999999\n")              # MemoryError
@example("out: [1]\n")                          # TypeError
@example("out: 5\n")
@example("out: sweep.yaml\n")                   # a file
@example(f"out: {'x' * 300}\n")                 # OSError
@example("grid: {" + ", ".join(f"{k}: {list(range(60))}" for k in ("lr", "epochs", "buffer-size", "batch-size",
                                                                    "momentum", "weight-decay")) + "}\n")
# 60^6 grid points: the grid was expanded before it was counted (MemoryError, or all the memory)
@given(hostile.sweep_texts)
def test_sweep_files(text):
    with tempfile.TemporaryDirectory() as tmp:
        assert hostile.check_sweep(text, Path(tmp)) != "crash", hostile.crashes[-1:]


@settings(FAST, max_examples=25)
@given(hostile.report_entries, hostile.report_outs)
def test_report_arguments(entries, out):
    with tempfile.TemporaryDirectory() as tmp:
        assert hostile.check_report(entries, out, Path(tmp)) != "crash", hostile.crashes[-1:]


@settings(FAST, max_examples=20)
@given(st.lists(st.one_of(hostile.output_entries, hostile._run_entries), min_size=1, max_size=3),
       hostile.report_outs)
def test_report_of_unlearn_edit_and_merge_folders(entries, out):
    """Folders of lifelong unlearn, edit and merge with odd metrics.json files, alone or beside
    runs: a report (an odd folder left out with its reason) or one line, never a traceback."""
    with tempfile.TemporaryDirectory() as tmp:
        assert hostile.check_report([("tree", entries)], out, Path(tmp)) != "crash", hostile.crashes[-1:]


# --- two commands of many runs started at once on one folder --------------------------------


@pytest.fixture(scope="module")
def longer_data_root(tmp_path_factory) -> Path:
    """Data for runs of about a second (150 steps), so that two commands started together overlap."""
    root = tmp_path_factory.mktemp("longer-data")
    write_fashion_mnist(root, per_class_train=60, per_class_test=2)
    return root


def _jobs() -> str:
    from lifelong.runs.parallel import available_cpus

    return str(min(2, available_cpus()))


@pytest.mark.parametrize("kind", ["seeds", "sweep"])
def test_two_commands_started_at_once_on_one_folder(kind, longer_data_root, tmp_path):
    """The second is refused in one line before its first run, or (if the first has finished)
    reuses its runs: every run folder is complete, trained once. Before the command lock, each
    could take some runs and be refused by a run of the other: both stopped, neither finished,
    and the refusal came after the command's first line."""
    out = tmp_path / "out"
    tiny = ["--benchmark", "split-fashion-mnist", "--data-root", str(longer_data_root), "--method", "derpp",
            "--buffer-size", "20", "--batch-size", "4", "--threads", "1", "--quiet"]
    if kind == "seeds":
        args, runs = ["run", *tiny, "--seeds", "0-2", "--jobs", "1", "--out", str(out)], 3
    else:
        sweep = tmp_path / "sweep.yaml"
        sweep.write_text(f"base: {{benchmark: split-fashion-mnist, data-root: {longer_data_root}, method: derpp, "
                         f"buffer-size: 20, batch-size: 4, threads: 1}}\ngrid: {{lr: [0.05, 0.1]}}\nseeds: 0-1\n"
                         f"out: {out}\n")
        args, runs = ["sweep", str(sweep), "--jobs", _jobs(), "--quiet"], 4
    assert hostile.check_concurrent(args, out, runs) == "ok", hostile.crashes[-1:]
