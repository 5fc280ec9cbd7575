"""The ``lora`` preset through ``lifelong run`` and ``lifelong merge --method rmm`` on the tiny
Fashion-MNIST of tests/conftest.py: the base stays frozen (``model.pt`` is the base), one adapter
per task is kept, task j is scored with task j's adapter (against an independent evaluation of
base + ΔW_j), and every bad input is one line, exit 2, nothing written."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import lifelong.edit as edit

from lifelong.edit.run import accuracy_of
from lifelong.nets.lora import delta_weight
from lifelong.runs.load import load_run
from lifelong.runs.session import check_run, stream_of
from tests.conftest import tiny_run_flags
from tests.test_edit_cli import run_cli


def _run(fashion: Path, out: Path, method: str, *extra: str) -> Path:
    code, _, err = run_cli(["run", *tiny_run_flags(fashion), "--method", method, "--out", str(out), *extra])
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def runs(fashion, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lora")
    a = _run(fashion, root / "A", "finetune", "--train-tasks", "1", "--lr", "0.05")
    return {"A": a,
            "L": _run(fashion, root / "L", "lora", "--init-from", str(a), "--lr", "0.5", "--momentum", "0.9",
                      "--weight-decay", "0.01"),
            "R2": _run(fashion, root / "R2", "lora", "--train-tasks", "1,2", "--param", "rank=2"),
            "R4": _run(fashion, root / "R4", "lora", "--train-tasks", "3", "--param", "rank=4", "--param", "alpha=16"),
            "F": _run(fashion, root / "F", "finetune", "--train-tasks", "2")}


def _adapters(run: Path) -> dict:
    return torch.load(run / "adapters.pt", weights_only=True)


def test_base_is_frozen_and_one_adapter_per_task_is_kept(runs):
    base = torch.load(runs["A"] / "model.pt", weights_only=True)
    after = torch.load(runs["L"] / "model.pt", weights_only=True)
    assert all(torch.equal(base[k], after[k]) for k in base)
    saved = _adapters(runs["L"])
    assert sorted(saved["tasks"]) == [0, 1, 2, 3, 4] and saved["rank"] == 8 and saved["scaling"] == 1.0
    assert saved["layers"] == ["features.1", "features.3", "classifier"]
    for factors in saved["tasks"].values():
        assert all(torch.count_nonzero(f["B"]) > 0 for f in factors.values())
    assert not torch.equal(saved["tasks"][0]["classifier"]["A"], saved["tasks"][1]["classifier"]["A"])


def test_task_j_is_scored_with_task_js_adapter_and_class_il_with_their_sum(runs):
    """The run's last row against base + ΔW_j evaluated here with the library's plain evaluation."""
    run, _ = load_run(runs["L"])
    source = load_run(runs["L"])[1]
    stream = stream_of(check_run(run.config)[0], source, run.config)
    saved = _adapters(runs["L"])
    base = {k: v.clone() for k, v in run.model.state_dict().items()}

    def with_(tasks):
        state = {k: v.clone() for k, v in base.items()}
        for t in tasks:
            for layer, f in saved["tasks"][t].items():
                module = run.model.get_submodule(layer)
                state[f"{layer}.weight"] += delta_weight(module, f["A"], f["B"], saved["scaling"])
        return accuracy_of(run.model, state, stream)

    doc = json.loads((runs["L"] / "metrics.json").read_text())
    task_il = doc["task_il"]["matrix"][-1] if "matrix" in doc["task_il"] else None
    rows = (runs["L"] / "accuracy_task_il.csv").read_text().strip().splitlines()
    last_task_il = [float(v) for v in rows[-1].split(",")[1:]] if task_il is None else task_il
    for j in range(5):
        assert last_task_il[j] == pytest.approx(with_([j])["task_il"][j], abs=1e-6), j
    rows = (runs["L"] / "accuracy_class_il.csv").read_text().strip().splitlines()
    last_class_il = [float(v) for v in rows[-1].split(",")[1:]]
    assert last_class_il == pytest.approx(with_(range(5))["class_il"], abs=1e-6)


def test_rmm_writes_every_basis_size(runs, tmp_path):
    out = tmp_path / "rmm"
    code, printed, err = run_cli(["merge", "--method", "rmm", "--models", str(runs["L"]), "--basis", "2",
                                  "--out", str(out)])
    assert code == 0, err
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["kind"] == "merge" and doc["method"] == "rmm" and doc["params"]["num_adapters"] == 5
    assert [e["basis"] for e in doc["per_basis"]] == [1, 2, 3, 4, 5]
    assert doc["accuracy"] == doc["per_basis"][1]["accuracy"]
    last = doc["per_basis"][-1]
    assert last["reconstruction_error"]["delta_mean"] < 1e-5
    assert last["accuracy"]["task_il"] == pytest.approx(doc["kept"]["task_il"], abs=1e-6)
    assert doc["per_basis"][0]["reconstruction_error"]["factors_mean"] > 0.01
    assert set(doc["plain"]) == {"lam", "delta", "factors"} and doc["plain"]["lam"] == 0.2
    saved = _adapters(runs["L"])["tasks"]
    assert doc["adapter_numbers"] == sum(t.numel() for a in saved.values() for f in a.values() for t in (f["A"], f["B"]))
    stored = torch.load(out / "rmm.pt", weights_only=True)
    assert stored["basis"] == 2 and stored["layers"]["classifier"]["basis"].shape[-1] == 2
    assert (out / "model.pt").is_file() and "rmm, basis 5" in printed
    layer = edit.rmm_runs([runs["L"]], 1, per="layer")
    assert layer["params"]["per"] == "layer" and layer["per_basis"][-1]["reconstruction_error"]["delta_mean"] < 1e-5
    assert layer["per_basis"][0]["stored_numbers"] < doc["per_basis"][0]["stored_numbers"]


@pytest.mark.parametrize("extra, match", [
    (["--basis", "6"], "1..5"),
    (["--basis", "1", "--alpha", "1.5"], "[0, 1]"),
    (["--basis", "1", "--lam", "0.5"], "--lam"),
    (["--basis", "1", "--basis-per", "row"], "position, layer"),
    ([], "--basis"),
])
def test_rmm_bad_input_is_one_line(runs, tmp_path, extra, match):
    out = tmp_path / "bad"
    code, _, err = run_cli(["merge", "--method", "rmm", "--models", str(runs["L"]), *extra, "--out", str(out)])
    assert code == 2 and len(err.strip().splitlines()) == 1 and match in err, err
    assert not out.exists()


@pytest.mark.parametrize("models, match", [(["R2", "R4"], "different ranks"), (["F"], "adapters.pt")])
def test_rmm_refuses_other_adapters(runs, tmp_path, models, match):
    out = tmp_path / "bad"
    code, _, err = run_cli(["merge", "--method", "rmm", "--models", *[str(runs[m]) for m in models], "--basis", "1",
                            "--out", str(out)])
    assert code == 2 and len(err.strip().splitlines()) == 1 and match in err, err
    assert not out.exists()


def test_rmm_options_elsewhere_and_bad_rank_are_one_line(runs, fashion, tmp_path):
    code, _, err = run_cli(["merge", "--base", str(runs["A"]), "--models", str(runs["F"]), "--method", "ties",
                            "--basis", "1", "--out", str(tmp_path / "x")])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--basis" in err, err
    code, _, err = run_cli(["run", *tiny_run_flags(fashion), "--method", "lora", "--param", "rank=0",
                            "--out", str(tmp_path / "y")])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "rank" in err, err


def test_a_resumed_lora_run_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    """A crash mid-task (step 8: task 2) then --resume: the same metrics, model.pt and adapters."""
    import lifelong.loop as loop
    from tests.conftest import write_fashion_mnist
    from tests.test_resume import Crash, _config, _run as _execute, _same_results

    root = tmp_path / "data"
    write_fashion_mnist(root, per_class_train=12, per_class_test=3)
    _execute(_config(root, tmp_path / "ref", method="lora"))
    original = loop.LossMonitor.observe

    def observe(self, loss, task, step):
        if step == 8:
            raise Crash
        return original(self, loss, task, step)

    monkeypatch.setattr(loop.LossMonitor, "observe", observe)
    with pytest.raises(Crash):
        _execute(_config(root, tmp_path / "run", method="lora"))
    monkeypatch.undo()
    assert _execute(_config(root, tmp_path / "run", method="lora"), resume=True)["complete"]
    _same_results(tmp_path / "ref", tmp_path / "run")
    a, b = (_adapters(tmp_path / name)["tasks"] for name in ("ref", "run"))
    assert a.keys() == b.keys() and all(torch.equal(a[t][n][f], b[t][n][f]) for t in a for n in a[t] for f in "AB")
