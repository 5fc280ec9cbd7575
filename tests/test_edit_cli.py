"""The run settings ``init_from`` and ``train_tasks``, and ``lifelong edit lines`` and ``lifelong
merge`` end to end on the tiny Fashion-MNIST of tests/conftest.py: a run started from another's
weights, the edited and merged ``model.pt`` against independently written formulas, α = 1 β = 0
giving back the fine-tuned model and its accuracies, and every bad input one line, exit 2,
nothing written."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

import lifelong.edit as edit
from lifelong.config import make_config
from lifelong.edit.run import lines_run, load_sources, merge_runs
from lifelong.nets import BACKBONES
from lifelong.runs.session import check_run, config_hash, resolve_config, stream_of
from tests.conftest import tiny_run_flags

ONE_BLOCK = '''
import torch.nn as nn
import lifelong

class OneBlock(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU())
        self.classifier = nn.Linear(16, n)

    def forward(self, x):
        return self.classifier(self.features(x))

lifelong.register_backbone("one-block", lambda shape, n: OneBlock(n))
'''


def _run(fashion: Path, out: Path, *extra: str) -> Path:
    code, _, err = run_cli(["run", *tiny_run_flags(fashion), "--method", "finetune", "--out", str(out), *extra])
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def runs(fashion, tmp_path_factory) -> dict[str, Path]:
    """A trained on task 1; B and C from A on tasks 2 and 3; X fresh with another backbone;
    O1 (one layer block) and O2 from it."""
    root = tmp_path_factory.mktemp("runs")
    (root / "one_block.py").write_text(ONE_BLOCK)
    a = _run(fashion, root / "A", "--train-tasks", "1")
    found = {"A": a, "B": _run(fashion, root / "B", "--train-tasks", "2", "--init-from", str(a)),
             "C": _run(fashion, root / "C", "--train-tasks", "3", "--init-from", str(a)),
             "X": _run(fashion, root / "X", "--backbone", "sharp-conv", "--train-tasks", "2")}
    try:
        one = ["--import", str(root / "one_block.py"), "--backbone", "one-block"]
        found["O1"] = _run(fashion, root / "O1", *one, "--train-tasks", "1")
        found["O2"] = _run(fashion, root / "O2", *one, "--train-tasks", "2", "--init-from", str(found["O1"]))
    finally:
        BACKBONES.pop("one-block", None)
    return found


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """``lifelong ARGS`` in this process: exit code, stdout, stderr (conftest's ``run_cli``
    without ``capsys``, which a module-scoped fixture cannot take)."""
    import contextlib
    import io

    from lifelong.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def _state(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "model.pt", weights_only=True)


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 1e-6) -> bool:
    return set(a) == set(b) and all(torch.allclose(a[k].double(), b[k].double(), atol=atol) for k in a)


# -- init_from and train_tasks --------------------------------------------------------------------
def test_a_run_started_from_another_begins_with_its_weights(runs):
    a, b = _metrics(runs["A"]), _metrics(runs["B"])
    # before training B's model is A's: its initial accuracy is A's last row (A trained task 1 only)
    assert b["class_il"]["initial_accuracy"] == a["class_il"]["accuracy_matrix"][-1]
    assert b["task_il"]["initial_accuracy"] == a["task_il"]["accuracy_matrix"][-1]
    assert b["class_il"]["accuracy_matrix"][0] == a["class_il"]["accuracy_matrix"][-1]  # task 1 not trained
    digest = hashlib.sha256((runs["A"] / "model.pt").read_bytes()).hexdigest()
    config = (runs["B"] / "config.yaml").read_text()
    assert f"init_digest: {digest}" in config and "train_tasks: '2'" in config


def test_train_tasks_keeps_only_those_tasks_training_examples(fashion):
    def stream(**values):
        config = make_config({"benchmark": "split-fashion-mnist", "data_root": str(fashion), **values}, {})
        benchmark = check_run(config)[0]
        return stream_of(benchmark, benchmark.load(Path(config.data_root), False), config)

    whole, cut = stream(), stream(train_tasks="2,4")
    assert [t.num_train for t in cut.tasks] == [0, whole.tasks[1].num_train, 0, whole.tasks[3].num_train, 0]
    assert all(torch.equal(a.test_idx, b.test_idx) for a, b in zip(whole.tasks, cut.tasks))


def test_init_from_is_part_of_the_fingerprint(runs, fashion, tmp_path):
    values = {"benchmark": "split-fashion-mnist", "data_root": str(fashion), "out": str(tmp_path / "o")}
    plain = resolve_config(make_config(values, {}))
    started = resolve_config(make_config({**values, "init_from": str(runs["A"])}, {}))
    other = resolve_config(make_config({**values, "init_from": str(runs["C"])}, {}))
    assert "init_digest" not in plain and "init_from" not in plain
    assert len({config_hash(plain), config_hash(started), config_hash(other)}) == 3


@pytest.mark.parametrize("extra, message", [
    (["--backbone", "sharp-conv", "--init-from", "A"], "does not fit|different architecture"),
    (["--init-from", "missing"], "is not a folder"),
    (["--init-from", "incomplete"], "not complete"),
    (["--train-tasks", "6"], "has 5 tasks"),
    (["--train-tasks", "0,x"], "counted from 1"),
])
def test_bad_init_from_or_train_tasks_is_one_line_and_nothing_is_written(runs, fashion, tmp_path, extra, message):
    incomplete = tmp_path / "incomplete"
    shutil.copytree(runs["B"], incomplete)
    doc = _metrics(incomplete)
    (incomplete / "metrics.json").write_text(json.dumps({**doc, "complete": False}))
    names = {"A": str(runs["A"]), "missing": str(tmp_path / "nope"), "incomplete": str(incomplete)}
    extra = [names.get(e, e) for e in extra]
    out = tmp_path / "out"
    code, _, err = run_cli(["run", *tiny_run_flags(fashion), "--out", str(out), *extra])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert pytest.importorskip("re").search(message, err), err
    assert not out.exists()


# -- lifelong edit lines -------------------------------------------------------------------------
def test_alpha_one_beta_zero_gives_back_the_finetuned_model_and_its_accuracies(runs, tmp_path):
    out = tmp_path / "e"
    code, stdout, err = run_cli(["edit", "lines", "--base", str(runs["A"]), "--finetuned", str(runs["B"]),
                                 "--alpha", "1", "--beta", "0", "--out", str(out)])
    assert code == 0, err
    assert _same(_state(out), _state(runs["B"]))
    doc, b = _metrics(out), _metrics(runs["B"])
    assert doc["accuracy"]["class_il"] == b["class_il"]["accuracy_matrix"][-1]
    assert doc["accuracy"]["task_il"] == b["task_il"]["accuracy_matrix"][-1]
    assert doc["before"]["source_runs"][0] == doc["accuracy"]
    assert doc["before"]["base"]["class_il"] == _metrics(runs["A"])["class_il"]["accuracy_matrix"][-1]
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "metrics.json", "model.pt"]
    assert "edited" in stdout


def test_the_edit_is_lines_scaling_written_independently(runs, tmp_path):
    """MLP: blocks features.1 (ℓ = 0) and features.3 (ℓ = 1, L = 2), classifier outside:
    λ = α, α + β, α; default β = 1 − α, so the second hidden layer keeps its whole update."""
    a, b = _state(runs["A"]), _state(runs["B"])
    for alpha, beta, extra in ((0.3, 0.7, []), (0.3, 0.2, ["--beta", "0.2"])):
        out = tmp_path / f"e{beta}"
        code, _, err = run_cli(["edit", "lines", "--base", str(runs["A"]), "--finetuned", str(runs["B"]),
                                "--alpha", str(alpha), *extra, "--out", str(out)])
        assert code == 0, err
        coef = {"features.1": alpha, "features.3": alpha + beta, "classifier": alpha}
        expected = {k: a[k] + coef[k.rsplit(".", 1)[0]] * (b[k] - a[k]) for k in a}
        assert _same(_state(out), expected)
        assert _metrics(out)["params"] == {"alpha": alpha, "beta": beta, "num_layers": 2}


def test_the_edited_models_accuracies_are_its_own(runs, tmp_path, fashion):
    doc = lines_run(runs["A"], runs["B"], 0.0, 0.0, tmp_path / "e0")  # α = β = 0: the base itself
    assert doc["accuracy"] == doc["before"]["base"]
    assert _same(_state(tmp_path / "e0"), _state(runs["A"]))


# -- lifelong merge ------------------------------------------------------------------------------
def test_task_arithmetic_merge_is_the_scaled_sum_of_the_updates(runs, tmp_path):
    a, b, c = _state(runs["A"]), _state(runs["B"]), _state(runs["C"])
    out = tmp_path / "m"
    code, stdout, err = run_cli(["merge", "--base", str(runs["A"] / "model.pt"), "--models", str(runs["B"]),
                                 str(runs["C"]), "--method", "task-arithmetic", "--lam", "0.4", "--out", str(out)])
    assert code == 0, err
    assert _same(_state(out), {k: a[k] + 0.4 * ((b[k] - a[k]) + (c[k] - a[k])) for k in a})
    doc = _metrics(out)
    assert doc["kind"] == "merge" and doc["params"] == {"lines": False, "lam": 0.4}
    assert len(doc["accuracy"]["class_il"]) == 5 and len(doc["before"]["source_runs"]) == 2
    assert "merged" in stdout


def test_merge_with_lines_uses_the_l1_rule_for_alpha(runs, tmp_path):
    a, b, c = _state(runs["A"]), _state(runs["B"]), _state(runs["C"])
    doc = merge_runs(runs["A"], [runs["B"], runs["C"]], "task_arithmetic", lines=True, beta=0.6, out=tmp_path / "m")
    assert doc["params"]["alpha"] == pytest.approx(0.5)  # task arithmetic: ‖Σ τ_i‖₁ / (T ‖Σ τ_i‖₁) = 1/T
    coef = {"features.1": 0.5, "features.3": 0.5 + 0.6, "classifier": 0.5}
    expected = {k: a[k] + coef[k.rsplit(".", 1)[0]] * ((b[k] - a[k]) + (c[k] - a[k])) for k in a}
    assert _same(_state(tmp_path / "m"), expected, atol=1e-5)
    ties = merge_runs(runs["A"], [runs["B"], runs["C"]], "ties", k=50, out=tmp_path / "t")
    assert _same(_state(tmp_path / "t"), edit.merge(a, [b, c], "ties", 1.0, 50))
    assert ties["params"] == {"k": 50.0, "lines": False, "lam": 1.0}


# -- bad input -----------------------------------------------------------------------------------
BAD = [
    (["edit", "lines", "--base", "A", "--finetuned", "X", "--alpha", "0.5"], "differ in backbone|not fine-tuned"),
    (["merge", "--base", "A", "--models", "B", "X", "--method", "ties"], "differ in backbone"),
    (["edit", "lines", "--base", "A", "--finetuned", "nomodel", "--alpha", "0.5"], "has no model.pt"),
    (["edit", "lines", "--base", "A", "--finetuned", "incomplete", "--alpha", "0.5"], "not complete"),
    (["edit", "lines", "--base", "C", "--finetuned", "B", "--alpha", "0.5"], "not fine-tuned from"),
    (["edit", "lines", "--base", "A", "--finetuned", "A", "--alpha", "0.5"], "fresh initialisation"),
    (["edit", "lines", "--base", "nowhere", "--finetuned", "B", "--alpha", "0.5"], "neither a model file"),
    (["edit", "lines", "--base", "A", "--finetuned", "B", "--alpha", "1.5"], r"α must be in \[0, 1\]"),
    (["edit", "lines", "--base", "A", "--finetuned", "B", "--alpha", "x"], "expected a number"),
    (["edit", "lines", "--base", "O1", "--finetuned", "O2", "--alpha", "0.5"], "at least 2 layer blocks"),
    (["merge", "--base", "A", "--models", "B", "C", "--method", "mean"], "unknown merge method"),
    (["merge", "--base", "A", "--models", "B", "C", "--method", "ties", "--k", "0"], "percentage in"),
    (["merge", "--base", "A", "--models", "B", "C", "--method", "ties", "--lines"], "needs --beta"),
    (["merge", "--base", "A", "--models", "B", "C", "--method", "ties", "--beta", "0.5"], "give it with --lines"),
    (["merge", "--base", "A", "--models", "B", "C", "--method", "ties", "--lines", "--beta", "1", "--lam", "1"],
     "drop --lam"),
    (["merge", "--base", "A", "--models", "B", "C", "--method", "ties", "--lam", "nan"], "finite number"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[f"{i}-{m.split('|')[0][:20]}" for i, (_, m) in enumerate(BAD)])
def test_bad_input_is_one_line_exit_2_and_nothing_written(runs, tmp_path, args, message):
    import re

    nomodel, incomplete = tmp_path / "nomodel", tmp_path / "incomplete"
    shutil.copytree(runs["B"], nomodel)
    (nomodel / "model.pt").unlink()
    shutil.copytree(runs["B"], incomplete)
    (incomplete / "metrics.json").write_text(json.dumps({**_metrics(incomplete), "complete": False}))
    names = {**{k: str(v) for k, v in runs.items()}, "nomodel": str(nomodel), "incomplete": str(incomplete),
             "nowhere": str(tmp_path / "nowhere")}
    out = tmp_path / "out"
    try:
        code, _, err = run_cli([names.get(a, a) for a in args] + ["--out", str(out)])
    finally:
        BACKBONES.pop("one-block", None)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".lifelong-")]  # no staging folder left


def test_an_output_folder_that_holds_anything_is_refused(runs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = run_cli(["edit", "lines", "--base", str(runs["A"]), "--finetuned", str(runs["B"]), "--alpha",
                            "0.5", "--out", str(out)])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


# -- choosing α, β, λ on validation (--alpha auto, --lam auto, --beta auto) ----------------------
def test_choose_picks_the_grid_value_a_hand_made_score_table_says():
    from lifelong.edit.select import choose

    table = {0.0: 1.0, 0.25: 3.0, 0.5: 2.5, 0.75: 3.0, 1.0: -1.0}  # 0.25 and 0.75 tie: the first in grid order
    chosen, scores = choose(list(table), table.__getitem__)
    assert chosen == 0.25 and scores == list(table.values())
    assert choose([0.9, 0.1], {0.9: 1.0, 0.1: 2.0}.__getitem__)[0] == 0.1  # not the grid's first or last by position


def test_the_scores_are_the_references_normalised_accuracies_written_out():
    from lifelong.edit.select import normalised_score, tradeoff_score

    acc, base, ft = [80.0, 60.0, 30.0], [90.0, 10.0, 50.0], [70.0, 75.0, 40.0]
    # control tasks 0 and 2 over the base, target task 1 over the fine-tuned model, target counted twice
    assert tradeoff_score(acc, [0, 2], [1], base, ft) == pytest.approx(2 * 60 / 75 + (80 / 90 + 30 / 50) / 2)
    own = [[50.0, 80.0, 0.0], [0.0, 0.0, 60.0]]
    assert normalised_score(acc, [[0, 1], [2]], own) == pytest.approx(((80 / 50 + 60 / 80) / 2 + 30 / 60) / 2)


def test_the_split_is_seeded_disjoint_and_keeps_every_example(runs):
    from lifelong.edit.select import split_stream

    stream = load_sources(runs["A"], [runs["B"]], device="cpu").stream
    val, held = split_stream(stream, 3, 0.5)
    again, other = split_stream(stream, 3, 0.5)[0], split_stream(stream, 4, 0.5)[0]
    for whole, v, h, a in zip(stream.tasks, val.tasks, held.tasks, again.tasks):
        assert len(v.test_idx) == len(whole.test_idx) // 2
        assert not set(v.test_idx.tolist()) & set(h.test_idx.tolist())
        assert sorted(v.test_idx.tolist() + h.test_idx.tolist()) == sorted(whole.test_idx.tolist())
        assert torch.equal(v.test_idx, a.test_idx)
    assert any(not torch.equal(v.test_idx, o.test_idx) for v, o in zip(val.tasks, other.tasks))


def _parts(runs, seed: int, fraction: float) -> tuple[list[list[int]], list[list[int]]]:
    """Each task's validation and reported test indices, drawn as the split is documented (one
    permutation per task from a generator seeded 1000 + seed, the first ⌊f·n⌋ choosing)."""
    stream = load_sources(runs["A"], [runs["B"]], device="cpu").stream
    g = torch.Generator().manual_seed(1000 + seed)
    val, held = [], []
    for task in stream.tasks:
        order = task.test_idx[torch.randperm(len(task.test_idx), generator=g)].tolist()
        cut = int(len(order) * fraction)
        val.append(order[:cut])
        held.append(order[cut:])
    return val, held


def _accuracy_on(runs, state: dict[str, torch.Tensor], parts: list[list[int]]) -> list[float]:
    """Task-IL accuracy (percent) of ``state`` on the given test indices of each task."""
    import copy
    import dataclasses

    from lifelong.evaluate import evaluate

    src = load_sources(runs["A"], [runs["B"]], device="cpu")
    stream, model = copy.copy(src.stream), copy.deepcopy(src.runs[0].model)
    stream.tasks = [dataclasses.replace(t, test_idx=torch.tensor(p))
                    for t, p in zip(stream.tasks, parts)]
    model.load_state_dict(state)
    return evaluate(model, stream)[1]


def test_alpha_auto_chooses_on_validation_and_reports_the_rest(runs, tmp_path):
    out = tmp_path / "auto"
    code, stdout, err = run_cli(["edit", "lines", "--base", str(runs["A"]), "--finetuned", str(runs["B"]), "--alpha",
                                 "auto", "--grid", "0", "0.5", "1", "--out", str(out)])
    assert code == 0, err
    doc = _metrics(out)
    sel = doc["selection"]
    assert sel["parameter"] == "alpha" and sel["grid"] == [0.0, 0.5, 1.0] and sel["validation_fraction"] == 0.5
    assert sel["control_tasks"] == [1] and sel["target_tasks"] == [2]
    val, held = _parts(runs, sel["split_seed"] - 1000, 0.5)
    assert sel["validation_examples"] == [len(v) for v in val] and sel["reported_examples"] == [len(h) for h in held]
    a, b = _state(runs["A"]), _state(runs["B"])
    base_v, ft_v = _accuracy_on(runs, a, val), _accuracy_on(runs, b, val)
    expected = []
    for alpha in sel["grid"]:  # LiNeS with β = 1 − α written out; trade-off 2·target/B's + control/A's
        coef = {"features.1": alpha, "features.3": 1.0, "classifier": alpha}
        v = _accuracy_on(runs, {k: a[k] + coef[k.rsplit(".", 1)[0]] * (b[k] - a[k]) for k in a}, val)
        expected.append(2 * v[1] / ft_v[1] + v[0] / base_v[0])
    assert sel["validation_scores"] == pytest.approx(expected)
    assert sel["chosen"] == sel["grid"][expected.index(max(expected))] == doc["params"]["alpha"]
    assert doc["params"]["beta"] == pytest.approx(1 - sel["chosen"])
    # the reported accuracies are the held-out part's, never a validation example's
    assert all(not set(v) & set(h) for v, h in zip(val, held))
    assert doc["accuracy"]["task_il"] == pytest.approx(_accuracy_on(runs, _state(out), held))
    assert doc["before"]["source_runs"][0]["task_il"] == pytest.approx(_accuracy_on(runs, b, held))
    assert "chosen on validation" in stdout


@pytest.mark.parametrize("lines", [False, True])
def test_merge_auto_chooses_by_normalised_accuracy_on_validation(runs, tmp_path, lines):
    flag = ["--lines", "--beta", "auto"] if lines else ["--lam", "auto"]
    out = tmp_path / "m"
    code, _, err = run_cli(["merge", "--base", str(runs["A"]), "--models", str(runs["B"]), str(runs["C"]),
                            "--method", "task-arithmetic", *flag, "--grid", "0.2", "0.6", "1.0",
                            "--validation-fraction", "0.75", "--out", str(out)])
    assert code == 0, err
    doc = _metrics(out)
    sel = doc["selection"]
    assert sel["parameter"] == ("beta" if lines else "lam") and sel["model_tasks"] == [[2], [3]]
    val, held = _parts(runs, sel["split_seed"] - 1000, 0.75)
    a, b, c = _state(runs["A"]), _state(runs["B"]), _state(runs["C"])
    own_b, own_c = _accuracy_on(runs, b, val), _accuracy_on(runs, c, val)
    expected = []
    for value in sel["grid"]:  # task arithmetic θ_A + λ(τ_B + τ_C); LiNeS: α = 1/2 and the last block + β
        coef = ({"features.1": 0.5, "features.3": 0.5 + value, "classifier": 0.5} if lines
                else {"features.1": value, "features.3": value, "classifier": value})
        v = _accuracy_on(runs, {k: a[k] + coef[k.rsplit(".", 1)[0]] * (b[k] + c[k] - 2 * a[k]) for k in a}, val)
        expected.append((v[1] / own_b[1] + v[2] / own_c[2]) / 2)
    assert sel["validation_scores"] == pytest.approx(expected)
    chosen = sel["grid"][expected.index(max(expected))]
    assert sel["chosen"] == chosen == doc["params"]["beta" if lines else "lam"]
    assert sel["validation_examples"] == [3] * 5 and sel["reported_examples"] == [1] * 5
    assert doc["accuracy"]["task_il"] == pytest.approx(_accuracy_on(runs, _state(out), held))


AUTO_BAD = [
    (["edit", "lines", "--base", "A", "--finetuned", "B", "--alpha", "auto", "--validation-fraction", "0"], r"in \(0, 1\)"),
    (["edit", "lines", "--base", "A", "--finetuned", "B", "--alpha", "auto", "--validation-fraction", "1"], r"in \(0, 1\)"),
    (["merge", "--base", "A", "--models", "B", "C", "--method", "ties", "--lam", "auto", "--validation-fraction",
      "-0.5"], r"in \(0, 1\)"),
    (["edit", "lines", "--base", "A", "--finetuned", "B", "--alpha", "auto", "--grid"], "expected at least one"),
    (["edit", "lines", "--base", "A", "--finetuned", "B", "--alpha", "auto", "--grid", "0.5", "1.5"],
     r"must be in \[0, 1\]"),
    (["edit", "lines", "--base", "A", "--finetuned", "B", "--alpha", "auto", "--grid", "nan"], "finite numbers"),
    (["edit", "lines", "--base", "A", "--finetuned", "B", "--alpha", "0.5", "--grid", "0.5"], "give it with"),
    (["merge", "--base", "A", "--models", "B", "C", "--method", "ties", "--lam", "1", "--validation-fraction", "0.5"],
     "give it with"),
    (["edit", "lines", "--base", "A", "--finetuned", "B", "--alpha", "auto", "--validation-fraction", "0.2"],
     "without validation or reported"),  # 4 test examples a task: ⌊0.8⌋ = 0 to choose
    (["edit", "lines", "--base", "A", "--finetuned", "B", "--alpha", "automatic"], "expected a number"),
]


@pytest.mark.parametrize("args, message", AUTO_BAD, ids=[f"{i}-{m[:16]}" for i, (_, m) in enumerate(AUTO_BAD)])
def test_bad_selection_values_are_one_line_exit_2_and_nothing_written(runs, tmp_path, args, message):
    import re

    out = tmp_path / "out"
    code, _, err = run_cli([str(runs.get(a, a)) for a in args] + ["--out", str(out)])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".lifelong-")]


def test_empty_grid_through_the_api_is_one_line():
    from lifelong.errors import ConfigError

    with pytest.raises(ConfigError, match="empty"):
        lines_run("A", "B", "auto", grid=[])
