"""The run setting ``forget`` (the retrain baseline) and ``lifelong unlearn`` on the tiny
Fashion-MNIST of tests/conftest.py: which examples a forget set removes from the stream (every
task's training set, never the test sets), the fingerprint with and without it, the unlearning of
a finished run end to end (its files, its figures recomputed by hand, the retrain command giving
the same configuration), ``--compare-to``, and every bad input one line, exit 2, nothing written."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import torch

from lifelong.cli import main
from lifelong.config import make_config
from lifelong.runs.reuse import stored_config
from lifelong.runs.session import check_run, config_hash, resolve_config, stream_of
from lifelong.unlearn import unlearn_run
from lifelong.unlearn.run import load_run
from tests.conftest import run_cli, tiny_run_flags

FORGET_KEYS = ("forget", "forget_count", "forget_digest")


def _config(data_root: Path, **values):
    return make_config({"benchmark": "split-fashion-mnist", "data_root": str(data_root), "batch_size": 4, **values}, {})


def _stream(config):
    benchmark, *_ = check_run(config)
    return stream_of(benchmark, benchmark.load(Path(config.data_root), False), config)


def _train_idx(stream) -> list[list[int]]:
    return [t.train_idx.tolist() for t in stream.tasks]


# -- the run setting `forget` -------------------------------------------------------------------
def test_forget_removes_exactly_the_listed_examples_from_every_task(data_root, tmp_path):
    names = [0, 7, 10, 33, 59]  # train labels are i % 10: tasks 1, 4, 1, 2, 5
    (tmp_path / "f.txt").write_text("\n".join(map(str, names)) + "\n")
    whole = _stream(_config(data_root))
    cut = _stream(_config(data_root, forget=f"indices:{tmp_path / 'f.txt'}"))
    for before, after in zip(_train_idx(whole), _train_idx(cut)):
        assert after == [i for i in before if i not in names]  # every task, order kept
    assert sum(map(len, _train_idx(whole))) - sum(map(len, _train_idx(cut))) == len(names)
    for a, b in zip(whole.tasks, cut.tasks):
        assert torch.equal(a.test_idx, b.test_idx)  # the test sets untouched
    labels = whole.source.train_y
    classes = _stream(_config(data_root, forget="classes:3"))
    assert [i for t in _train_idx(classes) for i in t] == [i for t in _train_idx(whole) for i in t if labels[i] != 3]
    random = _stream(_config(data_root, forget="random:0.1"))
    assert sum(map(len, _train_idx(random))) == 60 - 6  # round(0.1 * 60) of the 60 training examples


def test_forget_is_part_of_the_fingerprint_only_when_set(data_root, tmp_path):
    plain = resolve_config(_config(data_root, out=str(tmp_path / "a")))
    assert not any(k in plain for k in FORGET_KEYS)  # absent: the configuration (and fingerprint) as before
    forgot = resolve_config(_config(data_root, out=str(tmp_path / "a"), forget="classes:3"))
    assert (forgot["forget"], forgot["forget_count"]) == ("classes:3", 6)
    assert config_hash(forgot) != config_hash(plain)
    assert config_hash({k: v for k, v in forgot.items() if k not in FORGET_KEYS}) == config_hash(plain)
    seed1 = resolve_config(_config(data_root, forget="random:0.1", seed=1))
    seed0 = resolve_config(_config(data_root, forget="random:0.1"))
    assert seed0["forget_digest"] != seed1["forget_digest"]  # other examples drawn: another run


def test_forget_in_a_config_file_is_the_flag(data_root, tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("forget: classes:3\n")
    flags = ["run", *tiny_run_flags(data_root), "--dry-run"]
    code_file, from_file, _ = run_cli([*flags, "--config", str(tmp_path / "c.yaml")], capsys)
    code_flag, from_flag, _ = run_cli([*flags, "--forget", "classes:3"], capsys)
    assert code_file == code_flag == 0 and from_file == from_flag and "forget_count: 6" in from_flag


@pytest.mark.parametrize("spec, said", [
    ("clas:3", "is not understood"), ("random:1.5", "strictly between 0 and 1"), ("classes:12", "outside 0..9"),
    ("classes:0,1,2,3,4,5,6,7,8,9", "covers every class"),
])
def test_bad_forget_setting_is_one_line_and_writes_nothing(data_root, tmp_path, capsys, spec, said):
    out = tmp_path / "run"
    code, _, err = run_cli(["run", *tiny_run_flags(data_root), "--forget", spec, "--out", str(out)], capsys)
    assert code == 2 and said in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


# -- lifelong unlearn ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def source_run(data_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("source") / "run"
    assert main(["run", *tiny_run_flags(data_root), "--epochs", "3", "--out", str(out)]) == 0
    return out


def _unlearn(source: Path, out: Path, *extra: str) -> list[str]:
    return ["unlearn", str(source), "--forget", "classes:3", "--out", str(out), *extra]


def _model(source: Path, weights: Path):
    run, data_source = load_run(source, device="cpu")
    run.model.load_state_dict(torch.load(weights, weights_only=True))
    return run.model.eval(), data_source


def _predictions(model, data_source, split: str, keep) -> torch.Tensor:
    from lifelong.data.streams import Stream

    stream = Stream("x", data_source, [], "class-il")
    y = data_source.train_y if split == "train" else data_source.test_y
    idx = torch.nonzero(keep(y)).flatten()
    with torch.no_grad():
        return model(stream.inputs(split, idx, 0)).argmax(1), y[idx]


def test_unlearn_ssd_end_to_end(source_run, tmp_path, capsys):
    out = tmp_path / "ssd"
    code, printed, err = run_cli(_unlearn(source_run, out, "--method", "ssd", "--param", "alpha=2"), capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "metrics.json", "model.pt"]
    doc = json.loads((out / "metrics.json").read_text())
    assert (doc["kind"], doc["schema_version"], doc["method"], doc["forget"]) == ("unlearn", 1, "ssd", "classes:3")
    assert doc["params"] == {"alpha": 2, "lam": 1.0, "batch_size": 64, "label_free": False}
    assert (doc["forget_count"], doc["retain_count"], doc["test_count"]) == (6, 54, 20)
    assert doc["source_run"] == str(source_run) and doc["wall_seconds"] >= 0 and 0 <= doc["mia"] <= 1
    model, data_source = _model(source_run, out / "model.pt")
    for name, split, keep in (("forget", "train", lambda y: y == 3), ("retain", "train", lambda y: y != 3),
                              ("test", "test", lambda y: y >= 0)):
        predicted, labels = _predictions(model, data_source, split, keep)
        assert doc["accuracy"][name] == pytest.approx(100 * float((predicted == labels).float().mean()), abs=1e-3)
    assert "forget" in printed and "retrain: lifelong run" in printed and "--forget classes:3" in doc["retrain_command"]
    assert (out / "config.yaml").read_text().startswith(f"source_run: {source_run}")


def test_retrain_command_is_the_source_run_without_the_forget_set_and_compare_to(source_run, tmp_path, capsys):
    first = tmp_path / "ssd"
    assert run_cli(_unlearn(source_run, first, "--method", "ssd"), capsys)[0] == 0
    command = json.loads((first / "metrics.json").read_text())["retrain_command"]
    argv = shlex.split(command)
    assert argv[:2] == ["lifelong", "run"] and argv[-1] == f"{first}-retrain"
    code, _, err = run_cli([*argv[1:], "--quiet"], capsys)
    assert code == 0, err
    retrained = Path(argv[-1])
    theirs, ours = stored_config(retrained), stored_config(source_run)
    assert theirs["forget"] == "classes:3" and theirs["forget_count"] == 6
    assert config_hash({k: v for k, v in theirs.items() if k not in FORGET_KEYS}) == config_hash(ours)

    out = tmp_path / "compared"
    code, printed, err = run_cli(_unlearn(source_run, out, "--method", "finetune", "--compare-to", str(retrained)),
                                 capsys)
    assert code == 0, err
    doc = json.loads((out / "metrics.json").read_text())
    mine, data_source = _model(source_run, out / "model.pt")
    reference, _ = _model(source_run, retrained / "model.pt")
    for split, data, keep in (("test", "test", lambda y: y >= 0), ("forget", "train", lambda y: y == 3)):
        a, _ = _predictions(mine, data_source, data, keep)
        b, _ = _predictions(reference, data_source, data, keep)
        assert doc["agreement"][split]["agreement"] == pytest.approx(100 * float((a == b).float().mean()), abs=1e-3)
        assert doc["agreement"][split]["kl"] >= 0
    assert doc["compare_to"] == str(retrained) and f"agreement with {retrained}" in printed

    other = tmp_path / "other"
    code, _, err = run_cli(["unlearn", str(source_run), "--forget", "classes:4", "--method", "ssd", "--out",
                            str(other), "--compare-to", str(retrained)], capsys)
    assert code == 2 and "not without this unlearning's classes:4" in err and not other.exists()


def test_unlearn_run_api_without_out_writes_nothing(source_run, tmp_path):
    doc = unlearn_run(source_run, "random:0.1", "gradient-ascent", {"steps": 2})
    assert doc["forget_count"] == 6 and doc["params"]["seed"] == 0 and doc["params"]["steps"] == 2
    assert doc["retrain_command"].endswith("--forget random:0.1 --out RETRAIN_DIR")


def _incomplete(source_run: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "incomplete"
    folder.mkdir()
    (folder / "config.yaml").write_text((source_run / "config.yaml").read_text())
    (folder / "model.pt").write_bytes((source_run / "model.pt").read_bytes())
    doc = json.loads((source_run / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**doc, "complete": False}))
    return folder


def _no_model(source_run: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "no-model"
    folder.mkdir()
    for name in ("config.yaml", "metrics.json"):
        (folder / name).write_text((source_run / name).read_text())
    return folder


BAD_INDICES = "3\n60"  # 60 training examples: 0..59
BAD = {
    "incomplete": (lambda s, t: [str(_incomplete(s, t)), "--forget", "classes:3", "--method", "ssd"], "not complete"),
    "no model": (lambda s, t: [str(_no_model(s, t)), "--forget", "classes:3", "--method", "ssd"], "no model.pt"),
    "not a run": (lambda s, t: [str(t), "--forget", "classes:3", "--method", "ssd"], "no config.yaml"),
    "empty": (lambda s, t: [str(s), "--forget", f"indices:{_file(t, '# none')}", "--method", "ssd"], "is empty"),
    "every class": (lambda s, t: [str(s), "--forget", "classes:0,1,2,3,4,5,6,7,8,9", "--method", "ssd"],
                    "covers every class"),
    "bad index": (lambda s, t: [str(s), "--forget", f"indices:{_file(t, BAD_INDICES)}", "--method", "ssd"],
                  "index 60 is outside the training set"),
    "alpha 0": (lambda s, t: [str(s), "--forget", "classes:3", "--method", "ssd", "--param", "alpha=0"],
                "must be a finite number > 0"),
    "alpha < 0": (lambda s, t: [str(s), "--forget", "classes:3", "--method", "lfssd", "--param", "alpha=-1"],
                  "must be a finite number > 0"),
    "unknown method": (lambda s, t: [str(s), "--forget", "classes:3", "--method", "scrub"],
                       "unknown unlearning method 'scrub'"),
    "unknown param": (lambda s, t: [str(s), "--forget", "classes:3", "--method", "ssd", "--param", "beta=1"],
                      "has no parameter 'beta'"),
    "bad spec": (lambda s, t: [str(s), "--forget", "class:3", "--method", "ssd"], "is not understood"),
    "compare to incomplete": (lambda s, t: [str(s), "--forget", "classes:3", "--method", "ssd", "--compare-to",
                                            str(_incomplete(s, t))], "not complete"),
}


def _file(folder: Path, text: str) -> Path:
    path = folder / "forget.txt"
    path.write_text(text + "\n")
    return path


@pytest.mark.parametrize("case", list(BAD))
def test_bad_unlearn_input_is_one_line_and_writes_nothing(source_run, tmp_path, capsys, case):
    make, said = BAD[case]
    work = tmp_path / "work"
    work.mkdir()
    out = tmp_path / "out"
    code, printed, err = run_cli(["unlearn", *make(source_run, work), "--out", str(out)], capsys)
    assert code == 2 and said in err, err
    assert len(err.strip().splitlines()) == 1 and not printed
    assert not out.exists() and not list(tmp_path.glob(".lifelong-unlearn-*"))


def test_unlearn_refuses_an_out_that_holds_something_or_cannot_be_made(source_run, tmp_path, capsys):
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    code, _, err = run_cli(_unlearn(source_run, full, "--method", "ssd"), capsys)
    assert code == 2 and "not empty" in err and sorted(p.name for p in full.iterdir()) == ["keep.txt"]
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(_unlearn(source_run, tmp_path / "file" / "below", "--method", "ssd"), capsys)
    assert code == 2 and "is below the file" in err and len(err.strip().splitlines()) == 1


def test_list_names_the_unlearning_methods(capsys):
    code, out, _ = run_cli(["list"], capsys)
    assert code == 0 and "unlearning methods" in out
    assert all(f"  {name} " in out for name in ("ssd", "lfssd", "finetune", "gradient-ascent", "random-labels"))


@pytest.mark.parametrize("values", [
    {}, {"refresh": "code", "seed": 3}, {"shuffle_classes": True, "method": "derpp", "params": {"alpha": 0.3}},
    {"online": True, "buffer_size": 20}, {"benchmark": "si-blurry-fashion-mnist", "blurry_mix": 20},
    {"benchmark": "task-free-fashion-mnist", "task_free_width": 0.7}, {"optimizer": "adadelta", "epochs": 2},
], ids=["plain", "refresh", "derpp", "online", "blurry", "task-free", "adadelta"])
def test_retrain_flags_give_the_same_configuration(data_root, tmp_path, values):
    from lifelong.cli.parser import build_parser, flags_of
    from lifelong.unlearn.run import retrain_command

    source = resolve_config(_config(data_root, out=str(tmp_path / "a"), **values))
    argv = shlex.split(retrain_command(source, "random:0.1", tmp_path / "b"))
    flags, file_values = flags_of(build_parser().parse_args(argv[1:]))
    again = resolve_config(make_config(file_values, flags))
    assert again["forget"] == "random:0.1"
    assert config_hash({k: v for k, v in again.items() if k not in FORGET_KEYS}) == config_hash(source)


@pytest.mark.parametrize("values", [{"refresh": {"gamma": 0.001}}, {"view_batch": 2, "epochs": 2}],
                         ids=["refresh-without-form", "view-batch"])
def test_retrain_settings_file_gives_the_same_configuration(data_root, tmp_path, values):
    import yaml

    from lifelong.config import load_yaml
    from lifelong.unlearn.run import retrain_command, retrain_flags, retrain_settings

    source = resolve_config(_config(data_root, out=str(tmp_path / "a"), **values))
    assert retrain_flags(source) is None  # a setting without a flag: the command reads a file
    (tmp_path / "retrain.yaml").write_text(yaml.safe_dump(retrain_settings(source, "classes:3")))
    assert "--config" in retrain_command(source, "classes:3", tmp_path / "b", tmp_path / "retrain.yaml")
    again = resolve_config(make_config(load_yaml(tmp_path / "retrain.yaml"), {"out": str(tmp_path / "a")}))
    assert config_hash({k: v for k, v in again.items() if k not in FORGET_KEYS}) == config_hash(source)


def test_importance_cache_is_written_once_reused_and_keyed_by_the_model(source_run, tmp_path, capsys):
    """``--importance-cache``: the first request computes I_D over D in its own order and keeps
    it beside model.pt; the next (another forget set) reads it, and its model is SSD with that
    importance; another model.pt is another file; a damaged file is computed again."""
    import shutil

    from lifelong.unlearn.data import UnlearnData
    from lifelong.unlearn.ssd import full_importance, ssd_given

    run = tmp_path / "run"
    shutil.copytree(source_run, run)
    docs = []
    for name, forget in (("a", "classes:3"), ("b", "classes:4")):
        code, printed, err = run_cli(["unlearn", str(run), "--forget", forget, "--method", "ssd", "--param",
                                      "alpha=2", "--param", "batch_size=8", "--importance-cache", "--out",
                                      str(tmp_path / name)], capsys)
        assert code == 0, err
        docs.append(json.loads((tmp_path / name / "metrics.json").read_text()))
    first, second = (d["importance_cache"] for d in docs)
    assert (first["hit"], second["hit"]) == (False, True) and first["file"] == second["file"]
    assert sorted(p.name for p in run.glob("ssd-importance-*.pt")) == [first["file"]]
    assert "read from" in printed
    loaded, data_source = load_run(run, device="cpu")
    data = UnlearnData.from_source(data_source, "classes:4")
    # batches of 8 (60 examples): the first request's retain-then-forget order would give other sums
    expected = ssd_given(loaded.model, data, full_importance(loaded.model, data, 8, order="dataset"), alpha=2,
                         batch_size=8)
    got = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert all(torch.allclose(got[k], v, atol=1e-7) for k, v in expected.state_dict().items())

    (run / first["file"]).write_bytes(b"damaged")
    cached = ["--forget", "classes:3", "--param", "batch_size=8", "--importance-cache"]
    assert run_cli(["unlearn", str(run), *cached, "--method", "ssd", "--out", str(tmp_path / "c")], capsys)[0] == 0
    assert json.loads((tmp_path / "c" / "metrics.json").read_text())["importance_cache"]["hit"] is False
    state = torch.load(run / "model.pt", weights_only=True)
    torch.save({k: v * 1.01 for k, v in state.items()}, run / "model.pt")  # another model: another key
    assert run_cli(["unlearn", str(run), *cached, "--method", "ssd", "--out", str(tmp_path / "d")], capsys)[0] == 0
    assert json.loads((tmp_path / "d" / "metrics.json").read_text())["importance_cache"]["hit"] is False
    assert len(list(run.glob("ssd-importance-*.pt"))) == 2
    assert run_cli(["unlearn", str(run), *cached, "--method", "lfssd", "--out", str(tmp_path / "e")], capsys)[0] == 0
    assert len(list(run.glob("ssd-importance-*.pt"))) == 3  # label-free importance: its own file


@pytest.mark.parametrize("extra, said", [(["--method", "finetune"], "it is for ssd and lfssd"),
                                         (["--method", "ssd", "--param", "alpha=0"], "must be a finite number > 0")])
def test_importance_cache_refusals_are_one_line_and_write_nothing(source_run, tmp_path, capsys, extra, said):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(source_run, run)
    out = tmp_path / "out"
    code, printed, err = run_cli(["unlearn", str(run), "--forget", "classes:3", *extra, "--importance-cache",
                                  "--out", str(out)], capsys)
    assert code == 2 and said in err and len(err.strip().splitlines()) == 1 and not printed
    assert not out.exists() and not list(run.glob("ssd-importance-*"))
