import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lifelong.cli import main
from lifelong.errors import ConfigError
from lifelong.runs.sweep import load_sweep
from tests.conftest import write_fashion_mnist

SRC = str(Path(__file__).parents[1] / "src")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_fashion_mnist(root, per_class_train=40, per_class_test=3)
    return root


def _sweep_file(tmp_path, data_root, out) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(f"""
base:
  benchmark: split-fashion-mnist
  data-root: {data_root}
  batch-size: 4
  buffer-size: 20
  threads: 1
grid:
  method: [er, derpp]
  lr: [0.05]
seeds: 0-1
out: {out}
""")
    return path


def test_grid_expansion_and_its_mistakes(tmp_path, data_root):
    points = load_sweep(_sweep_file(tmp_path, data_root, tmp_path / "out"))
    alpha = tmp_path / "alpha.yaml"
    alpha.write_text("grid: {method: [derpp], params.alpha: [0.1, 0.7]}\nbase: {params: {beta: 0.2}}")
    assert [c.configs[0].params for c in load_sweep(alpha)] == [{"alpha": 0.1, "beta": 0.2}, {"alpha": 0.7, "beta": 0.2}]
    assert [p.values for p in points] == [{"method": "er", "lr": 0.05}, {"method": "derpp", "lr": 0.05}]
    assert [c.seed for c in points[0].configs] == [0, 1]
    assert points[0].configs[1].out.endswith("seed-1") and points[0].folder != points[1].folder
    bad = tmp_path / "bad.yaml"
    for text, message in (("grid: {method: er}", "must be a non-empty list"),
                          ("grid: {methd: [er]}", "unknown key `methd`"),
                          ("grids: {}", "unknown key `grids`"),
                          ("grid: {seed: [1, 2]}", "give seeds with the sweep's `seeds:`"),
                          ("grid: {method: [er]}\nseeds: 3-1", "seeds must look like"),
                          ("grid: {method: [er], params.alpha: [0.3]}", "method 'er' has no parameter `alpha`")):
        bad.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_sweep(bad)


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def test_sweep_completes_resumes_without_redoing_and_tables_match(tmp_path, data_root):
    out = tmp_path / "out"
    sweep = _sweep_file(tmp_path, data_root, out)
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen([sys.executable, "-m", "lifelong", "sweep", str(sweep), "--jobs", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        done = [p for p in out.glob("*/seed-*/metrics.json") if json.loads(p.read_text()).get("complete")]
        if done:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    finished = {p: (p.stat().st_mtime_ns, p.read_text()) for p in out.glob("*/seed-*/metrics.json")
                if json.loads(p.read_text()).get("complete")}
    assert finished, "no run finished before the kill"
    assert len(finished) < 4, "the sweep finished before it could be killed"

    code = main(["sweep", str(sweep), "--jobs", "2", "--quiet"])
    assert code == 0
    for path, (mtime, text) in finished.items():  # finished runs were not redone
        assert path.stat().st_mtime_ns == mtime and path.read_text() == text
    runs = sorted(out.glob("*/seed-*"))
    assert len(runs) == 4 and all(_metrics(r)["complete"] for r in runs)
    rows = [line.split(" | ") for line in (out / "summary.md").read_text().splitlines()[2:]]
    for point in load_sweep(sweep):
        accs = [_metrics(Path(c.out))["class_il"]["average_accuracy"] for c in point.configs]
        mean = sum(accs) / len(accs)
        row = next(r for r in rows if r[0].strip("| ") == point.values["method"])
        assert row[3].startswith(f"{mean:.2f} ±")
    csv_lines = (out / "summary.csv").read_text().splitlines()
    assert csv_lines[0].startswith("method,lr,seeds,complete,class_il.average_accuracy.mean")
    assert len(csv_lines) == 3


def test_several_seeds_of_one_run(tmp_path, data_root, capsys):
    out = tmp_path / "seeds"
    code = main(["run", "--benchmark", "split-fashion-mnist", "--data-root", str(data_root), "--batch-size", "4",
                 "--seeds", "0-2", "--out", str(out), "--quiet", "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    accs = [_metrics(out / f"seed-{s}")["class_il"]["average_accuracy"] for s in range(3)]
    mean = sum(accs) / 3
    assert f"class-IL average accuracy {mean:10.2f}".replace("  ", " ") in " ".join(captured.out.split()).replace(
        "  ", " ") or f"{mean:8.2f}" in captured.out
    assert (out / "summary.md").is_file() and (out / "summary.csv").is_file()
    assert main(["run", "--seeds", "0-2", "--jobs", "99"]) == 2


def test_the_example_sweep_expands():
    points = load_sweep(Path(__file__).parents[1] / "examples" / "sweep.yaml")
    assert len(points) == 4 and all(len(p.configs) == 3 for p in points)
    assert {(p.values["method"], p.values["buffer-size"]) for p in points} == {
        ("er", 200), ("er", 500), ("derpp", 200), ("derpp", 500)}


def test_a_sweep_may_use_a_term_of_the_users_own(tmp_path):
    """`imports:` in `base:` used to be imported only when a run started, after every grid
    point's recipe had been checked: a term of one's own was 'unknown'."""
    (tmp_path / "my_term.py").write_text(
        "from lifelong.objective import Term, register_term\n\n\n@register_term\nclass Mine(Term):\n"
        "    name = 'test-sweep-own-term'\n\n    def __call__(self, batch):\n        return batch.logits.new_zeros(())\n")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("base: {imports: [my_term.py]}\n"  # next to the sweep file
                     "grid: {method: [{name: mine, terms: [{term: ce}, {term: test-sweep-own-term}]}]}\n")
    try:
        (point,) = load_sweep(sweep)
    finally:
        from lifelong.objective import TERMS

        TERMS.pop("test-sweep-own-term", None)
    assert point.configs[0].method["name"] == "mine" and point.configs[0].imports == [str(tmp_path / "my_term.py")]


def test_seeds_and_sweeps_run_from_python_without_the_cli(tmp_path, data_root, capsys):
    """What `lifelong run --seeds` and `lifelong sweep` do lives in lifelong.runs.sweep: the CLI
    only parses and prints, so the same runs and tables come from Python, printing nothing."""
    from lifelong.config import make_config
    from lifelong.runs.sweep import expand_sweep, format_seeds, run_sweep, seed_runs

    config = make_config({}, {"benchmark": "split-fashion-mnist", "data_root": str(data_root), "batch_size": 4})
    seeds = seed_runs(config, [0, 1], str(tmp_path / "seeds"))
    assert [c.out for c in seeds.configs] == [str(tmp_path / "seeds" / f"seed-{s}") for s in (0, 1)]
    summary = run_sweep(seeds)
    assert summary["complete"] and not summary["stopped"] and summary["runs"]["complete"] == 2
    assert summary["table"] == (tmp_path / "seeds" / "summary.md").read_text()
    text = format_seeds(seeds, summary)
    assert text.startswith("split-fashion-mnist | er | seeds [0, 1] | 2/2 complete") and "class-IL forgetting" in text
    sweep = expand_sweep(_sweep_file(tmp_path, data_root, tmp_path / "grid"))
    summary = run_sweep(sweep, report=lambda i, doc: None)
    assert summary["complete"] and [r["configuration"]["method"] for r in summary["rows"]] == ["er", "derpp"]
    assert (tmp_path / "grid" / "summary.csv").is_file()
    assert capsys.readouterr() == ("", "")
