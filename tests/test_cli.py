import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import run_cli


def tiny_args(root, out, *extra):
    return ["run", "--benchmark", "split-fashion-mnist", "--data-root", str(root), "--out", str(out),
            "--batch-size", "4", "--quiet", *extra]


def test_list_names_every_benchmark_and_method(capsys):
    code, out, _ = run_cli(["list"], capsys)
    assert code == 0
    for name in ("split-mnist", "permuted-mnist", "rotated-mnist", "split-cifar10", "split-cifar100",
                 "split-tiny-imagenet", "finetune", "joint", "er", "er-ace", "der", "derpp", "lwf", "ewc",
                 "ewc-online", "si", "mas", "agem", "icarl"):
        assert f"  {name} " in out
    assert "Buzzega et al." in out and "logit-mse" in out and "reservoir" in out and "agem" in out


def test_list_one_method_prints_its_recipe_parameters_and_published_settings(capsys):
    code, out, _ = run_cli(["list", "--method", "derpp"], capsys)
    assert code == 0
    assert "{term: logit-mse, weight: '${alpha}'}" in out and "replay_forward: separate" in out
    assert "parameters: alpha=0.1, beta=0.5" in out
    assert "split-mnist, buffer 200: lr=0.03, batch_size=10, replay_batch_size=128; alpha=0.2, beta=1.0" in out
    code, out, err = run_cli(["list", "--method", "dper"], capsys)
    assert code == 2 and "unknown method 'dper'; choose one of: finetune" in err and out == ""


def test_run_writes_one_complete_folder(fashion_root, tmp_path, capsys):
    out_dir = tmp_path / "run"
    code, out, err = run_cli(tiny_args(fashion_root, out_dir, "--epochs", "2"), capsys)
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "accuracy_class_il.csv", "accuracy_task_il.csv", "checkpoints", "config.yaml", "events.jsonl", "metrics.json",
        "model.pt", "run.lock", "run.log", "steps.csv"]
    weights = torch.load(out_dir / "model.pt", weights_only=True)
    assert set(weights) >= {"classifier.weight", "classifier.bias"}
    m = json.loads((out_dir / "metrics.json").read_text())
    assert m["schema_version"] == 1 and m["status"] == "complete" and m["complete"] is True
    for key in ("class_il", "task_il"):
        block = m[key]
        assert len(block["accuracy_matrix"]) == 5 and len(block["initial_accuracy"]) == 5
        assert block["average_accuracy"] == pytest.approx(sum(block["accuracy_matrix"][-1]) / 5)
        for metric in ("forgetting", "backward_transfer", "forward_transfer", "average_incremental_accuracy"):
            assert isinstance(block[metric], float)
    assert m["wall_seconds"] > 0 and m["peak_rss_mb"] > 0 and m["steps"] == 5 * 2 * 3
    csv = (out_dir / "accuracy_class_il.csv").read_text().splitlines()
    assert csv[0] == "after_task,task_0,task_1,task_2,task_3,task_4"
    assert [float(v) for v in csv[-1].split(",")[1:]] == pytest.approx(m["class_il"]["accuracy_matrix"][-1], abs=1e-4)
    config = yaml.safe_load((out_dir / "config.yaml").read_text())
    assert config["epochs"] == 2 and config["backbone"] == "mlp" and config["replay_batch_size"] == 4
    assert config["task_classes"] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert "class-IL" in out and "task-IL" in out and "forgetting" in out and str(out_dir) in out
    assert "task 5 done" in (out_dir / "run.log").read_text()


def test_config_file_and_flags(fashion_root, tmp_path, capsys):
    cfg = tmp_path / "my.yaml"
    cfg.write_text(f"method: finetune\nlr: 0.05\ndata-root: {fashion_root}\nbenchmark: split-fashion-mnist\n")
    out_dir = tmp_path / "run"
    code, _, err = run_cli(["run", "--config", str(cfg), "--lr", "0.2", "--out", str(out_dir), "--quiet"], capsys)
    assert code == 0, err
    config = yaml.safe_load((out_dir / "config.yaml").read_text())
    assert config["method"] == "finetune" and config["lr"] == 0.2


def _bad_inputs(root, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "something").write_text("x")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("methd: er\n")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("epochs: many\n")
    return [
        (["--benchmark", "split-mnsit"], "unknown benchmark 'split-mnsit'; choose one of: split-mnist"),
        (["--method", "ewc2"], "unknown method 'ewc2'; choose one of: finetune, joint, er, er-ace"),
        (["--buffer-size", "0"], "`buffer-size` must be positive, got 0"),
        (["--batch-size", "-3"], "`batch-size` must be positive, got -3"),
        (["--epochs", "0"], "`epochs` must be positive"),
        (["--replay-batch-size", "0"], "`replay-batch-size` must be positive"),
        (["--lr", "0"], "`lr` must be positive"),
        (["--lr", "-1"], "`lr` must be positive"),
        (["--lr", "nan"], "`lr` must be a finite number"),
        (["--lr", "fast"], "expected a number, got 'fast'"),
        (["--momentum", "2"], "`momentum` must lie in [0, 1)"),
        (["--weight-decay", "-0.1"], "`weight-decay` must not be negative"),
        (["--num-tasks", "3"], "10 classes cannot be split into 3 tasks"),
        (["--backbone", "vgg"], "unknown backbone 'vgg'"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--out", str(full)], "exists and is not empty; pass --overwrite"),
        (["--out", str(a_file)], "is a file, not a folder"),
        (["--out", str(a_file / "sub")], "cannot write to output folder"),
        (["--config", str(unknown)], "unknown key `methd` (did you mean `method`?)"),
        (["--config", str(wrong)], "`epochs` must be an integer, got 'many'"),
        (["--config", str(tmp_path / "none.yaml")], "config file not found"),
        (["--bogus-flag"], "unrecognized arguments: --bogus-flag"),
    ]


def test_each_mistake_is_one_line_and_exit_2_before_training(fashion_root, tmp_path, capsys):
    for extra, message in _bad_inputs(fashion_root, tmp_path):
        out_dir = tmp_path / "never"
        args = ["run", "--benchmark", "split-fashion-mnist", "--data-root", str(fashion_root), "--quiet"]
        if "--out" not in extra:
            args += ["--out", str(out_dir)]
        code, out, err = run_cli(args + extra, capsys)
        assert code == 2, (extra, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (extra, err)
        assert "Traceback" not in err and out == ""
        assert not out_dir.exists(), extra


def test_missing_and_corrupt_data_files(tmp_path, fashion_root, capsys):
    code, _, err = run_cli(tiny_args(tmp_path / "empty-root", tmp_path / "o1"), capsys)
    assert code == 2 and "data file not found" in err and "FashionMNIST/raw" in err and "--download" in err
    images = fashion_root / "FashionMNIST/raw/train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:200])
    code, _, err = run_cli(tiny_args(fashion_root, tmp_path / "o2"), capsys)
    assert code == 2 and "train-images-idx3-ubyte.gz" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cuda_without_a_gpu(fashion_root, tmp_path, capsys):
    code, _, err = run_cli(tiny_args(fashion_root, tmp_path / "o", "--device", "cuda"), capsys)
    assert code == 2 and "no CUDA device is available" in err


def test_overwrite_reuses_a_folder(fashion_root, tmp_path, capsys):
    out_dir = tmp_path / "run"
    assert run_cli(tiny_args(fashion_root, out_dir), capsys)[0] == 0
    assert run_cli(tiny_args(fashion_root, out_dir), capsys)[0] == 2
    assert run_cli(tiny_args(fashion_root, out_dir, "--overwrite", "--method", "finetune"), capsys)[0] == 0
    assert json.loads((out_dir / "metrics.json").read_text())["method"] == "finetune"


def test_nan_loss_stops_with_a_message_and_keeps_partial_results(fashion_root, tmp_path, capsys):
    out_dir = tmp_path / "run"
    code, out, err = run_cli(tiny_args(fashion_root, out_dir, "--lr", "1e30"), capsys)
    assert code == 1
    assert "training stopped: the loss became" in err and "marked incomplete" in err and "Traceback" not in err
    m = json.loads((out_dir / "metrics.json").read_text())
    assert m["status"] == "diverged" and m["complete"] is False and "INCOMPLETE" in out


def test_the_readme_quick_start_run(tmp_path):
    """The default run, end to end, as a user starts it (Split-MNIST, ER, buffer 500; ~7 s)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-m", "lifelong", "run", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["benchmark"] == "split-mnist" and m["method"] == "er" and m["steps"] == 6002
    assert 80 < m["class_il"]["average_accuracy"] < 95 and m["task_il"]["average_accuracy"] > 97
    assert "Traceback" not in proc.stderr


EXAMPLES = Path(__file__).parents[1] / "examples"


@pytest.mark.parametrize("example", ["der_ewc.yaml", "logit_norm.yaml"])
def test_the_examples_run(example, fashion_root, tmp_path, capsys):
    out_dir = tmp_path / "run"
    code, out, err = run_cli(["run", "--config", str(EXAMPLES / example), "--benchmark", "split-fashion-mnist",
                              "--data-root", str(fashion_root), "--out", str(out_dir), "--quiet"], capsys)
    assert code == 0, err
    m = json.loads((out_dir / "metrics.json").read_text())
    assert m["complete"] and m["method"] in ("der-ewc", "er-logit-norm")
    config = yaml.safe_load((out_dir / "config.yaml").read_text())
    assert config["recipe"]["terms"][1]["term"] in ("logit-mse", "logit-norm")


def test_method_parameters_from_flags(fashion_root, tmp_path, capsys):
    out_dir = tmp_path / "run"
    code, _, err = run_cli(tiny_args(fashion_root, out_dir, "--method", "derpp", "--param", "alpha=0.25",
                                     "--param", "beta=1e-1"), capsys)
    assert code == 0, err
    m = json.loads((out_dir / "metrics.json").read_text())
    assert m["params"] == {"alpha": 0.25, "beta": 0.1}
    assert "derpp" in err and "alpha=0.25" in err


@pytest.mark.parametrize("extra, message", [
    (["--method", "der", "--param", "alpah=1"], "method 'der' has no parameter `alpah`; its parameters: alpha"),
    (["--param", "alpha"], "expected NAME=VALUE"),
    (["--import", "no_such_module_xyz"], "cannot import no_such_module_xyz: ModuleNotFoundError"),
    (["--import", "missing.py"], "cannot import missing.py: no such file"),
])
def test_method_mistakes(extra, message, fashion_root, tmp_path, capsys):
    code, out, err = run_cli(tiny_args(fashion_root, tmp_path / "never", *extra), capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()


def test_imported_code_that_fails_is_one_line(fashion_root, tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('oops')\n")
    code, _, err = run_cli(tiny_args(fashion_root, tmp_path / "never", "--import", str(bad)), capsys)
    assert code == 2 and "cannot import" in err and "RuntimeError: oops" in err and "Traceback" not in err


def test_custom_recipe_in_yaml_with_a_mistake(fashion_root, tmp_path, capsys):
    cfg = tmp_path / "m.yaml"
    cfg.write_text("method:\n  terms:\n    - {term: ce, on: both}\n")
    code, _, err = run_cli(["run", "--config", str(cfg), "--benchmark", "split-fashion-mnist", "--data-root",
                            str(fashion_root), "--out", str(tmp_path / "never"), "--quiet"], capsys)
    assert code == 2 and "needs `memory: reservoir`" in err


def test_compare_with_and_without_refresh(fashion_root, tmp_path, capsys):
    out_dir = tmp_path / "cmp"
    args = ["compare", "--benchmark", "split-fashion-mnist", "--data-root", str(fashion_root), "--batch-size", "4",
            "--seeds", "0-1", "--refresh", "code", "--refresh-param", "every=1", "--out", str(out_dir), "--quiet"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    summary = json.loads(next(out_dir.glob("compare-refresh-code-*.json")).read_text())
    for seed in (0, 1):
        base = json.loads((out_dir / f"base-seed{seed}" / "metrics.json").read_text())
        assert base["refresh"] is None
        refreshed = json.loads(next(out_dir.glob(f"refresh-code-*-seed{seed}")).joinpath("metrics.json").read_text())
        assert refreshed["refresh"]["form"] == "code" and refreshed["refresh"]["every"] == 1
        diff = refreshed["class_il"]["average_accuracy"] - base["class_il"]["average_accuracy"]
        assert summary["class_il"]["difference"]["values"][seed] == pytest.approx(diff)
    assert "difference (paired)" in out and "class-IL" in out
    # a second comparison in the same folder reuses the runs without refresh
    second = args[: args.index("--refresh")] + ["--refresh", "paper", "--out", str(out_dir), "--quiet"]
    code, _, err = run_cli(second, capsys)
    assert code == 0 and err.count("base") == 2
    assert len(list(out_dir.glob("base-seed*"))) == 2 and len(list(out_dir.glob("compare-*.json"))) == 2
