"""The run setting ``relabel`` (``--relabel corrupt:F[:SEED]``) and the recovery scenario from run
folders, on the tiny Fashion-MNIST of tests/conftest.py: which training labels the stream reads
(the documented corruption, written out by hand; tasks, the test set and a cached source
untouched); the fingerprint only when given; a run trained with it learns the wrong labels;
``lifelong unlearn CORRUPTED --forget corrupt:F --compare-to CLEAN`` reports the RESTOR-style
recovery, recomputed here by hand; and every mismatch one line, exit 2, nothing written."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import torch

from lifelong.config import make_config
from lifelong.data.streams import Stream
from lifelong.runs.session import check_run, config_hash, resolve_config, stream_of
from lifelong.unlearn.run import load_run
from tests.conftest import run_cli, tiny_run_flags
from tests.test_unlearn_recovery import hand_corruption

RELABEL_KEYS = ("relabel", "relabel_count", "relabel_digest")


def _config(data_root: Path, **values):
    return make_config({"benchmark": "split-fashion-mnist", "data_root": str(data_root), "batch_size": 4, **values}, {})


def test_relabel_gives_the_named_examples_their_wrong_labels_and_nothing_else(data_root):
    config = _config(data_root, relabel="corrupt:0.2:3")
    benchmark, *_ = check_run(config)
    source = benchmark.load(Path(config.data_root), False)
    true_y = source.train_y.clone()
    plain = stream_of(benchmark, source, _config(data_root))
    stream = stream_of(benchmark, source, config)
    wrong = hand_corruption(true_y.tolist(), 10, 0.2, seed=3)
    expected = [wrong.get(i, y) for i, y in enumerate(true_y.tolist())]
    every = torch.arange(len(true_y))
    assert stream.labels("train", every).tolist() == expected and len(wrong) == 12
    assert torch.equal(stream.labels("test", torch.arange(len(source.test_y))), source.test_y)
    assert torch.equal(source.train_y, true_y)  # the source given (a cache's) keeps its labels
    for a, b in zip(plain.tasks, stream.tasks):  # a relabelled example stays in its true class's task
        assert torch.equal(a.train_idx, b.train_idx) and torch.equal(a.test_idx, b.test_idx)
    assert (stream.settings["relabel"], stream.settings["relabel_count"]) == ("corrupt:0.2:3", 12)


def test_relabel_is_in_the_fingerprint_only_when_given(data_root, tmp_path):
    plain = resolve_config(_config(data_root, out=str(tmp_path / "a")))
    assert not any(k in plain for k in RELABEL_KEYS)
    bad = resolve_config(_config(data_root, out=str(tmp_path / "a"), relabel="corrupt:0.2"))
    assert bad["relabel"] == "corrupt:0.2" and config_hash(bad) != config_hash(plain)
    assert config_hash({k: v for k, v in bad.items() if k not in RELABEL_KEYS}) == config_hash(plain)
    other = resolve_config(_config(data_root, out=str(tmp_path / "a"), relabel="corrupt:0.2", seed=1))
    assert other["relabel_digest"] != bad["relabel_digest"]  # the run's seed draws other examples
    both = resolve_config(_config(data_root, out=str(tmp_path / "a"), relabel="corrupt:0.2", forget="corrupt:0.2"))
    assert both["relabel_count"] == 0  # every relabelled example left out by the same forget set


def test_relabel_digest_names_the_positions_and_the_wrong_labels():
    from lifelong.unlearn.forget import relabel_digest

    idx = torch.tensor([2, 5, 9])
    assert relabel_digest(idx, torch.tensor([1, 0, 3])) == relabel_digest(idx.clone(), torch.tensor([1, 0, 3]))
    assert relabel_digest(idx, torch.tensor([1, 0, 3])) != relabel_digest(idx, torch.tensor([1, 0, 4]))
    assert relabel_digest(idx, torch.tensor([1, 0, 3])) != relabel_digest(torch.tensor([2, 5, 8]),
                                                                          torch.tensor([1, 0, 3]))


@pytest.mark.parametrize("spec, said", [
    ("classes:3", "is not a corruption"), ("corrupt:1.5", "strictly between 0 and 1"), ("corrupt:0", "strictly"),
    ("corrupt:0.1:x", "seed must be an integer"), ("corrupt", "is not understood"),
])
def test_bad_relabel_is_one_line_and_writes_nothing(data_root, tmp_path, capsys, spec, said):
    out = tmp_path / "run"
    code, printed, err = run_cli(["run", *tiny_run_flags(data_root), "--relabel", spec, "--out", str(out)], capsys)
    assert code == 2 and said in err and "`relabel`" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


# -- the recovery scenario from run folders ------------------------------------------------------------
JOINT = ["--method", "joint", "--lr", "0.1"]


@pytest.fixture(scope="module")
def runs(data_root, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("relabel")
    found = {"clean": root / "clean", "corrupted": root / "corrupted", "other": root / "other"}
    assert run_cli_plain(["run", *tiny_run_flags(data_root), *JOINT, "--epochs", "10", "--out", str(found["clean"])])
    assert run_cli_plain(["run", *tiny_run_flags(data_root), *JOINT, "--epochs", "30", "--init-from",
                          str(found["clean"]), "--relabel", "corrupt:0.2", "--out", str(found["corrupted"])])
    assert run_cli_plain(["run", *tiny_run_flags(data_root), *JOINT, "--seed", "1", "--out", str(found["other"])])
    return found


def run_cli_plain(argv: list[str]) -> bool:
    from lifelong.cli import main

    return main(argv) == 0


def _predict(folder: Path, weights: Path, idx: torch.Tensor) -> torch.Tensor:
    run, source = load_run(folder, device="cpu")
    run.model.load_state_dict(torch.load(weights, weights_only=True))
    with torch.no_grad():
        return run.model.eval()(Stream("x", source, [], "class-il").inputs("train", idx, 0)).argmax(1)


def test_a_relabelled_run_learns_the_wrong_labels(runs):
    _, source = load_run(runs["clean"], device="cpu")
    wrong = hand_corruption(source.train_y.tolist(), 10, 0.2, seed=0)
    idx = torch.tensor(sorted(wrong))
    bad = torch.tensor([wrong[i] for i in sorted(wrong)])
    hits = {name: float((_predict(runs[name], runs[name] / "model.pt", idx) == bad).float().mean())
            for name in ("clean", "corrupted")}
    assert hits["clean"] <= 0.2 and hits["corrupted"] >= 0.7


def test_unlearning_a_corrupted_run_reports_recovery_against_the_clean_run(runs, tmp_path, capsys):
    out = tmp_path / "u"
    code, printed, err = run_cli(["unlearn", str(runs["corrupted"]), "--forget", "corrupt:0.2", "--method", "finetune",
                                  "--out", str(out), "--compare-to", str(runs["clean"])], capsys)
    assert code == 0, err
    doc = json.loads((out / "metrics.json").read_text())
    _, source = load_run(runs["clean"], device="cpu")
    wrong = hand_corruption(source.train_y.tolist(), 10, 0.2, seed=0)
    idx = torch.tensor(sorted(wrong))
    true_y, bad_y = source.train_y[idx], torch.tensor([wrong[i] for i in sorted(wrong)])
    pred = {"clean": _predict(runs["clean"], runs["clean"] / "model.pt", idx),
            "corrupted": _predict(runs["corrupted"], runs["corrupted"] / "model.pt", idx),
            "unlearned": _predict(runs["corrupted"], out / "model.pt", idx)}
    rec = doc["recovery"]
    assert rec["reference"] == "clean" and doc["compare_to_kind"] == "clean"
    for name, p in pred.items():
        assert rec[name]["clean_accuracy"] == pytest.approx(100 * float((p == true_y).float().mean()), abs=1e-3)
        assert rec[name]["corrupt_accuracy"] == pytest.approx(100 * float((p == bad_y).float().mean()), abs=1e-3)
        assert rec[name]["clean_agreement"] == pytest.approx(100 * float((p == pred["clean"]).float().mean()),
                                                             abs=1e-3)
    top, bottom = rec["clean"]["clean_accuracy"], rec["corrupted"]["clean_accuracy"]
    assert rec["unlearned"]["recovery"] == pytest.approx((rec["unlearned"]["clean_accuracy"] - bottom) / (top - bottom))
    assert rec["gap"] == pytest.approx(top - bottom, abs=1e-3)
    # what the methods saw: the corrupted labels (forget accuracy is against them)
    assert doc["accuracy"]["forget"] == pytest.approx(rec["unlearned"]["corrupt_accuracy"], abs=1e-3)
    assert doc["forget_count"] == 12 and "recovery against the clean model" in printed

    argv = shlex.split(doc["retrain_command"])  # the corrupted run's settings without the corrupted examples
    assert "--relabel" in argv and "--init-from" in argv and argv[argv.index("--forget") + 1] == "corrupt:0.2"
    assert run_cli(argv[1:] + ["--quiet"], capsys)[0] == 0
    again = tmp_path / "v"
    code, _, err = run_cli(["unlearn", str(runs["corrupted"]), "--forget", "corrupt:0.2", "--method", "ssd",
                            "--out", str(again), "--compare-to", argv[-1]], capsys)
    assert code == 0, err
    assert json.loads((again / "metrics.json").read_text())["recovery"]["reference"] == "retrain"


@pytest.mark.parametrize("case, said", [
    ("other seed", "is not the corruption the run"), ("clean run", "trained on true labels"),
    ("unrelated reference", "nor the clean run the corrupted one started from"),
])
def test_corruption_mismatches_are_one_line_and_write_nothing(runs, tmp_path, capsys, case, said):
    argv = {"other seed": [str(runs["corrupted"]), "--forget", "corrupt:0.2:5"],
            "clean run": [str(runs["clean"]), "--forget", "corrupt:0.2"],
            "unrelated reference": [str(runs["corrupted"]), "--forget", "corrupt:0.2", "--compare-to",
                                    str(runs["other"])]}[case]
    out = tmp_path / "u"
    code, printed, err = run_cli(["unlearn", *argv, "--method", "ssd", "--out", str(out)], capsys)
    assert code == 2 and said in err and len(err.strip().splitlines()) == 1, err
    assert not printed and not out.exists()
