"""The multi-run commands (`lifelong run --seeds`, `lifelong compare`, `lifelong sweep`) reuse or
resume the run they find in a run folder only when it was made with the same configuration,
compared as `--resume` compares (the resolved configuration's fingerprint); a folder holding a
run of other settings refuses the command in one line before any run starts, and is left as it
is. Each CLI test failed on the code before its fix (the old runs were reported as the new)."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli as _cli, tiny_run_flags as _tiny


def _contents(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file below ``root``: its modification time and bytes (what must not change), but
    the command's lock, which every command opens (emptied again when it ends)."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "command.lock"}


def _refused(code: int, stdout: str, err: str, folder: Path, difference: str) -> None:
    """The command was refused in one line (after its first line, which says what it runs)."""
    assert code == 2 and stdout == "" and "Traceback" not in err, (code, stdout, err)
    first, refusal = err.splitlines()
    assert first.startswith("lifelong: ") and " -> " in first, err
    assert refusal.startswith(f"lifelong: error: {folder} holds a run with {difference}"), err
    assert refusal.endswith("; choose another --out or delete it"), err


# 1, 2. --seeds and compare: a folder of runs with other settings is refused, not reused


def test_seeds_reuse_runs_of_the_same_settings_and_refuse_others(data_root, tmp_path, capsys):
    out = tmp_path / "seeds"
    args = ["run", *_tiny(data_root), "--seeds", "0-1", "--jobs", "1", "--out", str(out)]
    assert _cli([*args, "--lr", "0.1"], capsys)[0] == 0
    before = _contents(out)
    code, stdout, err = _cli([*args, "--lr", "0.03"], capsys)
    _refused(code, stdout, err, out / "seed-0", "lr 0.1, not 0.03")
    assert "(and 1 more run folder like it)" in err, err
    assert _contents(out) == before
    # the same settings, and settings that do not define a run (threads), reuse the runs
    code, stdout, err = _cli([*args, "--lr", "0.1", "--threads", "1"], capsys)
    assert code == 0 and "2/2 complete" in stdout, err
    runs = {k: v for k, v in _contents(out).items() if k.startswith("seed-")}
    assert runs == {k: v for k, v in before.items() if k.startswith("seed-")}


def _stopped_run(config, how: str) -> None:
    """A run of ``config`` left as a run that stopped leaves it: ``interrupted`` at its first
    step, with a checkpoint, or ``died`` before its first checkpoint (config.yaml only)."""
    from lifelong.runs.session import execute_run, prepare_run

    if how == "interrupted":
        doc = execute_run(prepare_run(config), stop=lambda: True)
        assert doc["status"] == "interrupted" and any((Path(config.out) / "checkpoints").glob("*.pt"))
    else:
        run = prepare_run(config)
        run.lock.release()
        run.log.close()
        assert (Path(config.out) / "config.yaml").is_file() and not (Path(config.out) / "checkpoints").exists()


@pytest.mark.parametrize("how", ["interrupted", "died"])
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_stopped_run_of_other_settings_is_neither_resumed_nor_cleared_and_nothing_is_half_run(
        how, jobs, data_root, tmp_path, capsys):
    """Before, the first seed ran in full; then the interrupted run was refused by its
    checkpoint's fingerprint (the command half-run), and the one that died was cleared and
    started over."""
    from lifelong.config import make_config

    out = tmp_path / "seeds"
    config = make_config({}, {"benchmark": "split-fashion-mnist", "data_root": str(data_root), "batch_size": 4,
                              "lr": 0.1, "seed": 1, "out": str(out / "seed-1")})
    _stopped_run(config, how)
    before = _contents(out)
    code, stdout, err = _cli(["run", *_tiny(data_root), "--lr", "0.03", "--seeds", "0-2", "--jobs", jobs,
                              "--out", str(out)], capsys)
    _refused(code, stdout, err, out / "seed-1", "lr 0.1, not 0.03")
    assert _contents(out) == before and sorted(p.name for p in out.iterdir() if p.name != "command.lock") == ["seed-1"]
    code, stdout, err = _cli(["run", *_tiny(data_root), "--lr", "0.1", "--seeds", "0-2", "--jobs", jobs,
                              "--out", str(out)], capsys)  # its own settings continue it
    assert code == 0 and "3/3 complete" in stdout, err
    if how == "interrupted":
        assert "resuming from ckpt-" in (out / "seed-1" / "run.log").read_text()


def test_compare_refuses_runs_of_other_settings(data_root, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", *_tiny(data_root), "--seeds", "0", "--jobs", "1", "--out", str(out)]
    assert _cli(args, capsys)[0] == 0
    before = _contents(out)
    code, stdout, err = _cli([*args, "--lr", "0.03"], capsys)
    _refused(code, stdout, err, out / "base-seed0", "lr 0.1, not 0.03")
    assert _contents(out) == before
    assert _cli(args, capsys)[0] == 0  # the same comparison reuses both runs
    assert {k: v for k, v in _contents(out).items() if "-seed" in k} == {
        k: v for k, v in before.items() if "-seed" in k}


# 3. a sweep's folders hash its whole configuration; a clash is refused


def _sweep(tmp_path: Path, data_root: Path, base: str, grid: str = "{method: [er]}", seeds: str = "0") -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(f"base: {{benchmark: split-fashion-mnist, data-root: {data_root}, batch-size: 4, {base}}}\n"
                    f"grid: {grid}\nseeds: {seeds}\nout: {tmp_path / 'sweep'}\n")
    return path


def test_a_sweep_folder_name_hashes_the_base_settings_too(data_root, tmp_path):
    from lifelong.runs.sweep import load_sweep

    def folder(base: str, data: Path = data_root) -> Path:
        (point,) = load_sweep(_sweep(tmp_path, data, base))
        return point.folder

    first = folder("lr: 0.1")
    assert first.name.startswith("er-") and folder("lr: 0.03").name.startswith("er-")
    assert folder("lr: 0.03") != first and folder("lr: 0.1, momentum: 0.5") != first
    assert folder("lr: 0.1") == first
    assert folder("lr: 0.1, threads: 1", tmp_path / "elsewhere") == first  # not what defines a run


def test_editing_a_sweeps_base_settings_starts_new_runs(data_root, tmp_path, capsys):
    """Before, the runs of the old base settings were reused and reported as the new ones."""
    root = tmp_path / "sweep"
    assert _cli(["sweep", str(_sweep(tmp_path, data_root, "lr: 0.1")), "--jobs", "1", "--quiet"], capsys)[0] == 0
    (old,) = root.glob("er-*")
    before = _contents(old)
    code, stdout, err = _cli(["sweep", str(_sweep(tmp_path, data_root, "lr: 0.03")), "--jobs", "1", "--quiet"], capsys)
    assert code == 0, err
    (new,) = [p for p in root.glob("er-*") if p != old]
    assert _contents(old) == before
    assert yaml.safe_load((new / "seed-0" / "config.yaml").read_text())["lr"] == 0.03
    accuracy = json.loads((new / "seed-0" / "metrics.json").read_text())["class_il"]["average_accuracy"]
    rows = (root / "summary.md").read_text()
    assert f"| {accuracy:.2f} ±" in rows and rows in stdout, rows


def test_a_sweep_folder_holding_a_run_of_other_settings_refuses_the_sweep(data_root, tmp_path, capsys):
    sweep = _sweep(tmp_path, data_root, "threads: 1", grid="{lr: [0.05, 0.1]}", seeds="0-1")
    assert _cli(["sweep", str(sweep), "--jobs", "1", "--quiet"], capsys)[0] == 0
    root = tmp_path / "sweep"
    (low,), (high,) = root.glob("0.05-*"), root.glob("0.1-*")
    shutil.rmtree(high / "seed-1")
    shutil.copytree(low / "seed-1", high / "seed-1")  # a run of lr 0.05 where lr 0.1's belongs
    before = _contents(root)
    code, stdout, err = _cli(["sweep", str(sweep), "--jobs", "2", "--quiet"], capsys)
    _refused(code, stdout, err, high / "seed-1", "lr 0.05, not 0.1")
    assert _contents(root) == before


# 4. --dry-run says which folders would be refused


@pytest.mark.parametrize("command", ["seeds", "compare"])
def test_dry_run_says_a_folder_of_other_settings_would_be_refused(command, data_root, tmp_path, capsys):
    out = tmp_path / "out"
    if command == "seeds":
        args, folder = ["run", *_tiny(data_root), "--seeds", "0-1", "--out", str(out)], out / "seed-0"
        assert _cli(["run", *_tiny(data_root), "--seed", "0", "--out", str(folder)], capsys)[0] == 0
    else:
        args, folder = ["compare", *_tiny(data_root), "--seeds", "0", "--out", str(out)], out / "base-seed0"
        assert _cli([*args, "--jobs", "1"], capsys)[0] == 0
    before = _contents(out)
    code, stdout, err = _cli([*args, "--lr", "0.03", "--dry-run"], capsys)
    assert code == 2, err
    assert f"would be refused: holds a run with other settings (lr 0.1, not 0.03) -> {folder}" in stdout, stdout
    assert "would be reused" not in stdout
    assert err.splitlines()[-1].startswith(f"lifelong: error: {folder} holds a run with lr 0.1, not 0.03"), err
    assert _contents(out) == before
    code, stdout, _ = _cli([*args, "--dry-run"], capsys)  # its own settings: reused
    assert code == 0 and f"complete, would be reused -> {folder}" in stdout, stdout


# 1. one definition of "the same configuration", and what it costs


CONFIGS = [
    {},
    {"method": "derpp", "params": {"alpha": 0.3}, "weight_decay": 1e-5, "lr": 1e-4, "momentum": 0.9},
    {"method": "er", "refresh": {"form": "code", "gamma": 1e-4, "every": 3}},
    {"benchmark": "permuted-mnist", "num_tasks": 3, "method": "ewc"},
    {"shuffle_classes": True, "seed": 7, "method": "icarl", "buffer_size": 200, "replay_batch_size": 32},
    {"method": {"name": "mine", "terms": [{"term": "ce"}]}},
    {"method": {"name": "1e-3", "terms": [{"term": "ce"}]}},  # written unquoted: YAML 1.1 reads a string
]


@pytest.mark.parametrize("values", CONFIGS, ids=range(len(CONFIGS)))
def test_the_check_resolves_as_a_run_does_and_reads_back_what_a_run_writes(values, tmp_path):
    from lifelong.config import make_config
    from lifelong.runs.report import write_config
    from lifelong.runs.reuse import first_difference, stored_config
    from lifelong.runs.session import config_hash, prepare_run, resolve_config

    config = make_config(values, {"out": str(tmp_path / "run")})
    resolved = prepare_run(config, dry_run=True)
    assert resolve_config(config) == resolved
    (tmp_path / "run").mkdir()
    write_config(tmp_path / "run", resolved)
    stored = stored_config(tmp_path / "run")
    assert config_hash(stored) == config_hash(resolved) and first_difference(stored, resolved) is None


def test_the_first_differing_setting_is_named():
    from lifelong.runs.reuse import first_difference

    resolved = {"lr": 0.03, "params": {"alpha": 0.3, "beta": 0.5}, "threads": 1, "device": "cpu", "refresh": None}
    assert first_difference({**resolved, "lr": 0.1}, resolved) == "lr 0.1, not 0.03"
    assert first_difference({**resolved, "params": {"alpha": 0.1, "beta": 0.5}}, resolved) == "params.alpha 0.1, not 0.3"
    assert first_difference({**resolved, "threads": 4, "device": "cuda"}, resolved) is None  # NOT_IDENTITY
    assert first_difference({**resolved, "refresh": {"form": "paper"}}, resolved) == \
        'refresh {"form": "paper"}, not null'
    assert first_difference({k: v for k, v in resolved.items() if k != "lr"}, resolved) == "lr unset, not 0.03"
    assert first_difference({**resolved, "extra": 1}, resolved) == "extra 1, not unset"


def test_a_folder_whose_settings_cannot_be_read_is_refused(tmp_path):
    from lifelong.config import make_config
    from lifelong.errors import ConfigError
    from lifelong.runs.reuse import check_runs

    run = tmp_path / "seed-0"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"complete": True}))  # no config.yaml
    with pytest.raises(ConfigError, match="seed-0 holds a run with settings that cannot be read"):
        check_runs([make_config({}, {"out": str(run)})])
    (run / "config.yaml").write_text("lr: [unclosed\n")
    with pytest.raises(ConfigError, match="its config.yaml is missing or damaged"):
        check_runs([make_config({}, {"out": str(run)})])


def test_checking_finished_runs_reads_each_data_set_once(data_root, tmp_path, capsys, monkeypatch):
    """What the check adds to a sweep of finished runs: their data are read once (then each run
    costs a config.yaml read and a cut into tasks, a few ms), and no run starts."""
    from lifelong.data import benchmarks
    from lifelong.runs import session

    sweep = _sweep(tmp_path, data_root, "threads: 1", grid="{lr: [0.05, 0.1]}", seeds="0-2")
    assert _cli(["sweep", str(sweep), "--jobs", "1", "--quiet"], capsys)[0] == 0
    loads = []
    real = benchmarks.BENCHMARKS["split-fashion-mnist"]

    def load(root, download):
        loads.append(root)
        return real.load(root, download)

    monkeypatch.setitem(benchmarks.BENCHMARKS, "split-fashion-mnist", replace(real, load=load))
    monkeypatch.setattr(session, "execute_run", lambda *a, **k: pytest.fail("a finished run was run again"))
    code, stdout, err = _cli(["sweep", str(sweep), "--jobs", "2", "--quiet"], capsys)
    assert code == 0 and stdout.count("3/3 complete") == 2, err
    assert len(loads) == 1
