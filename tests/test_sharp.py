"""SHARP (Gurbuz et al., 2023; BurakGurbuz97/SHARP-Continual-Learning): the 8-bit quantisation of
``Source/memory.py`` by hand, replay through the trainable part only (the frozen part gets no
gradient and does not move), the supervised contrastive loss against a loop-by-loop formula and
its wrong variants, the masked kNN on hand-made representations, the memory's recent-task draw,
and CLI runs with a resume and the one-line errors."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn as nn

from lifelong.config import make_config
from lifelong.data.streams import class_incremental, permuted
from lifelong.errors import ConfigError
from lifelong.hidden_replay import dequantise, quantise
from lifelong.loop import train
from lifelong.methods import build_recipe
from lifelong.nets import build_backbone, frozen_split, register_backbone, BACKBONES
from lifelong.objective.supcon import supcon_loss
from lifelong.optim import SGD
from lifelong.plugins.knn import MaskedKNN, knn_scores, knn_votes
from tests.conftest import (crash_then_resume, make_source, run_cli, same_weights, tiny_run_flags,
                            write_fashion_mnist)


# -- quantisation -------------------------------------------------------------------------------

def test_quantise_maps_min_max_to_0_255_rounding_half_to_even_and_back():
    a = torch.tensor([[0.0, 0.5], [1.0, 2.0]])
    codes, lo, hi = quantise(a)
    assert codes.dtype == torch.uint8
    # (a - 0) / 2 * 255 = 0, 63.75, 127.5, 255 -> 0, 64, 128 (half to even), 255
    assert codes.tolist() == [[0, 64], [128, 255]] and lo.item() == 0.0 and hi.item() == 2.0
    back = dequantise(codes, lo, hi)
    assert torch.allclose(back, torch.tensor([[0.0, 128 / 255], [256 / 255, 2.0]]))
    shifted, lo2, hi2 = quantise(torch.tensor([-1.0, 0.0, 3.0]))  # the offset is the minimum, not 0
    assert shifted.tolist() == [0, 64, 255] and lo2.item() == -1.0 and hi2.item() == 3.0
    flat, _, _ = quantise(torch.full((3,), 0.7))  # constant: codes 0, and back to the constant
    assert flat.tolist() == [0, 0, 0] and torch.allclose(dequantise(flat, *quantise(torch.full((3,), 0.7))[1:]),
                                                         torch.full((3,), 0.7))


def test_round_trip_error_is_at_most_half_a_step():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(50, 16, generator=g).relu() * 3.0
    codes, lo, hi = quantise(a)
    err = (dequantise(codes, lo, hi) - a).abs().max().item()
    step = (hi - lo).item() / 255
    assert err <= step / 2 + 1e-6 and err > step / 10  # a floor instead of a round errs up to a whole step


# -- the memory and the split --------------------------------------------------------------------

def _stream(num_classes=6, tasks=3, per_class=12, size=8):
    return class_incremental(make_source(num_classes=num_classes, per_class_train=per_class, size=size), tasks)


def _mlp(stream):
    torch.manual_seed(0)
    return build_backbone("mlp", (1, 8, 8), stream.num_classes)


def test_replay_goes_through_the_trainable_part_only_and_the_frozen_part_never_moves():
    stream = _stream()
    model = _mlp(stream)
    early = [p.detach().clone() for p in model.features[1].parameters()]
    recipe = build_recipe("sharp-lite", {"per_class": 4})
    seen = {"steps": 0}

    class Spy:
        name, stateless = "spy", True

        def after_backward(self, state, batch):
            memory = state.memory
            assert all(p.grad is None and not p.requires_grad for p in model.features[1].parameters())
            assert batch.inputs.shape[0] == len(batch.y)  # the replays are not in the raw input
            if batch.replays:
                r = batch.replays[0]
                assert r["x"].shape[1:] == (100,)  # the MLP's first hidden layer
                late = memory.split.late(r["x"])
                n = len(batch.y)
                assert torch.allclose(batch.features[n:n + len(r["y"])], late)
                assert torch.allclose(batch.outputs[n:n + len(r["y"])], model.classifier(late))
                seen["steps"] += 1

    recipe.plugins.append(Spy())
    optimizer = SGD(model.parameters(), lr=0.05)
    result = train(stream, model, recipe, optimizer, seed=0, batch_size=6, buffer_size=24, epochs=2)
    assert result.status == "complete" and seen["steps"] > 0
    assert all(torch.equal(a, b) for a, b in zip(early, model.features[1].parameters()))
    assert not any(p is model.features[1].weight for p in optimizer.params)  # out of the optimiser


def test_memory_stores_each_class_block_with_its_own_scale_and_replays_only_the_last_task():
    stream = _stream()
    model = _mlp(stream)
    recipe = build_recipe("sharp-lite", {"per_class": 4, "recent_tasks": 1})
    draws = []

    class Spy:
        name, stateless = "spy", True

        def before_step(self, state, batch):
            if batch.replays:
                draws.append((state.task.index, batch.replays[0]["y"].tolist()))

        def end_task(self, state):
            m = state.memory
            split = m.split
            for c in state.task.classes:
                rows = torch.nonzero(m.fields["y"][: m.count] == c).squeeze(1)
                assert len(rows) == 4  # 24 slots over 6 classes
                x = stream.inputs("train", state.task.train_idx[stream.labels("train", state.task.train_idx) == c][:4],
                                  state.task.index)
                acts = split.hidden(x)
                assert torch.equal(m.fields["lo"][rows], acts.min().expand(4))  # one scale per class block
                assert torch.equal(m.fields["hi"][rows], acts.max().expand(4))
                assert torch.equal(m.fields["x"][rows], quantise(acts)[0])

    recipe.plugins.append(Spy())
    train(stream, model, recipe, SGD(model.parameters(), lr=0.05), seed=0, batch_size=6, buffer_size=24,
          replay_batch_size=7)
    assert draws and {t for t, _ in draws} == {1, 2}
    for t, ys in draws:
        previous = stream.tasks[t - 1].classes
        assert set(ys) == set(previous)  # only the classes of the task just before (stm_num_tasks = 1)
        counts = sorted(ys.count(c) for c in previous)
        assert counts == [3, 4] and ys.count(min(previous)) == 4  # 7 shared evenly, the first class the extra
    every = []  # recent_tasks 0 (sharp-lite's default): every earlier task's classes
    recipe = build_recipe("sharp-lite", {"per_class": 4})

    class Every:
        name, stateless = "every", True

        def before_step(self, state, batch):
            if batch.replays and state.task.index == 2:
                every.append(sorted(set(batch.replays[0]["y"].tolist())))

    recipe.plugins.append(Every())
    model = _mlp(stream)
    train(stream, model, recipe, SGD(model.parameters(), lr=0.05), seed=0, batch_size=6, buffer_size=24,
          replay_batch_size=8)
    assert every and all(ys == [0, 1, 2, 3] for ys in every)


def test_split_names_a_layer_of_features_and_input_is_raw_replay():
    model = build_backbone("mlp", (1, 8, 8), 4)
    x = torch.rand(3, 1, 8, 8)
    for after in ("auto", "features.2", "features.3", "input"):
        s = frozen_split(model, after)
        assert torch.allclose(s.late(s.hidden(x)), model.features(x))
    assert frozen_split(model, "input").hidden(x).shape == x.shape
    res = build_backbone("resnet18", (3, 8, 8), 4)
    s = frozen_split(res)
    res.eval()
    xr = torch.rand(2, 3, 8, 8)
    assert s.after == "features.4" and torch.allclose(s.late(s.hidden(xr)), res.features(xr))
    assert s.hidden(xr).shape == (2, 64, 8, 8)  # after the stem and the first stage
    conv = build_backbone("sharp-conv", (1, 28, 28), 10)
    s = frozen_split(conv)
    assert s.hidden(torch.rand(2, 1, 28, 28)).shape == (2, 16, 7, 7)  # 784 activations, as the reference


def test_a_backbone_without_a_frozen_split_is_refused_in_one_line(tmp_path, capsys):
    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(784, 10)
            self.fc = nn.Linear(10, 10)

        def forward(self, x):
            return self.fc(self.body(x.flatten(1)))

    with pytest.raises(ConfigError, match="missing frozen split for activation replay"):
        frozen_split(build_backbone("mlp", (1, 8, 8), 4), "features.9")
    if "plain-test-net" not in BACKBONES:
        register_backbone("plain-test-net", lambda shape, n: Plain())
    root = tmp_path / "data"
    write_fashion_mnist(root)
    code, _, err = run_cli(["run", "--method", "sharp-lite", "--backbone", "plain-test-net", *tiny_run_flags(root),
                            "--dry-run"], capsys)
    assert code == 2 and "missing frozen split for activation replay" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


# -- SupCon -------------------------------------------------------------------------------------

def _hand_supcon(feats, labels, tau, *, self_in_denominator=False, self_positive=False, no_norm=False,
                 sum_positives=False):
    def unit(v):
        n = math.sqrt(sum(a * a for a in v))
        return list(v) if no_norm else [a / n for a in v]

    z = [unit(f) for f in feats]
    total, anchors = 0.0, 0
    for i in range(len(z)):
        sims = [sum(a * b for a, b in zip(z[i], z[j])) / tau for j in range(len(z))]
        denom = [j for j in range(len(z)) if self_in_denominator or j != i]
        log_z = math.log(sum(math.exp(sims[j]) for j in denom))
        pos = [j for j in range(len(z)) if labels[j] == labels[i] and (self_positive or j != i)]
        total += -sum(sims[p] - log_z for p in pos) / (1 if sum_positives else len(pos))
        anchors += 1
    return total / anchors


FEATS = [[1.0, 0.0, 0.5], [0.8, 0.3, 0.0], [0.0, 1.0, 0.2], [0.1, 0.9, 1.0], [0.3, 0.3, 0.3]]
LABELS = [0, 0, 1, 1, 1]


def test_supcon_equals_the_formula_and_not_its_wrong_variants():
    f, y = torch.tensor(FEATS, dtype=torch.float64), torch.tensor(LABELS)
    got = supcon_loss(f, y, 0.1).item()
    assert got == pytest.approx(_hand_supcon(FEATS, LABELS, 0.1), rel=1e-9)
    for wrong in ({"self_in_denominator": True}, {"self_positive": True}, {"no_norm": True},
                  {"sum_positives": True}):
        assert got != pytest.approx(_hand_supcon(FEATS, LABELS, 0.1, **wrong), rel=1e-3), wrong
    assert got != pytest.approx(_hand_supcon(FEATS, LABELS, 0.2), rel=1e-3)


def test_supcon_leaves_out_rows_without_a_positive():
    f = torch.tensor(FEATS + [[5.0, -1.0, 0.0]], dtype=torch.float64)
    y = torch.tensor(LABELS + [7])  # class 7 once: neither anchor nor contrast
    assert supcon_loss(f, y, 0.1).item() == pytest.approx(_hand_supcon(FEATS, LABELS, 0.1), rel=1e-9)
    lone = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    zero = supcon_loss(lone, torch.tensor([0, 1]), 0.1)
    assert zero.item() == 0.0 and zero.requires_grad


# -- the masked kNN -----------------------------------------------------------------------------

def test_knn_compares_each_class_on_its_own_units():
    """Class 0 is valid on units 0 and 1 only, class 1 on all three; the query matches class 0 on
    its units exactly but class 1 better on all three."""
    q = torch.tensor([[1.0, 0.0, 5.0]])
    stored = [(0, torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([True, True, False])),
              (1, torch.tensor([[0.5, 0.0, 5.0]]), torch.tensor([True, True, True]))]
    votes, nearest = knn_votes(q, stored, 1, 3)
    assert votes.tolist() == [[1.0, 0.0, 0.0]]
    assert nearest[0, 0].item() == pytest.approx(0.0, abs=1e-6)
    r = torch.tensor([0.5, 0.0, 5.0]) / math.sqrt(25.25)
    assert nearest[0, 1].item() == pytest.approx((q[0] / math.sqrt(26) - r).norm().item(), rel=1e-5)
    assert math.isinf(nearest[0, 2].item())
    scores = knn_scores(votes, nearest)
    assert scores.argmax(1).item() == 0 and scores[0, 2].item() == float("-inf")
    masked_out = scores.clone()
    masked_out[0, 0] = float("-inf")  # task-IL without class 0: the nearest of the rest
    assert masked_out.argmax(1).item() == 1


def test_knn_majority_of_k_and_ties_to_the_smallest_class():
    q = torch.tensor([[1.0, 0.0]])
    every = torch.tensor([True, True])
    near = lambda a: torch.tensor([[math.cos(a), math.sin(a)]])  # noqa: E731
    stored = [(2, torch.cat([near(0.1), near(0.5), near(0.6)]), every), (1, torch.cat([near(0.05), near(2.0)]), every)]
    votes, _ = knn_votes(q, stored, 3, 3)  # the 3 nearest: 1 (0.05), 2 (0.1), 2 (0.5)
    assert votes.tolist() == [[0.0, 1.0, 2.0]] and knn_scores(votes, _).argmax(1).item() == 2
    votes, nearest = knn_votes(q, stored, 2, 3)  # 1 (0.05), 2 (0.1): a tie goes to class 1, as torch.mode
    assert knn_scores(votes, nearest).argmax(1).item() == 1


def test_knn_plugin_stores_the_first_examples_and_refreshes_the_replayed_classes():
    stream = _stream()
    model = _mlp(stream)
    recipe = build_recipe("sharp-lite", {"per_class": 4, "k": 3, "recent_tasks": 1})
    knn = next(p for p in recipe.plugins if isinstance(p, MaskedKNN))
    snapshots = []

    class Spy:
        name, stateless = "spy", True

        def end_task(self, state):
            snapshots.append({key: reps.clone() for key, (reps, _) in knn.stored.items()})

    recipe.plugins.append(Spy())
    train(stream, model, recipe, SGD(model.parameters(), lr=0.05), seed=0, batch_size=6, buffer_size=24)
    assert list(snapshots[0]) == [(0, 0), (0, 1)] and len(snapshots[-1]) == 6
    assert all(reps.shape == (4, 100) for reps in snapshots[-1].values())
    # task 0's classes were recomputed at the end of task 1 (from their activations), then kept
    assert not torch.equal(snapshots[0][(0, 0)], snapshots[1][(0, 0)])
    assert torch.equal(snapshots[1][(0, 0)], snapshots[2][(0, 0)])
    assert all(mask.all() for _, mask in knn.stored.values())  # no unit ages: every unit valid


# -- runs ---------------------------------------------------------------------------------------

def test_cli_run_finishes_with_the_sharp_network(fashion, tmp_path, capsys):
    code, out, err = run_cli(["run", "--method", "sharp-lite", "--backbone", "sharp-conv", *tiny_run_flags(fashion),
                              "--buffer-size", "20", "--param", "per_class=2", "--out", str(tmp_path / "run")], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert doc["complete"] and len(doc["class_il"]["accuracy_matrix"]) == doc["num_tasks"] >= 4


def test_resume_mid_task_equals_an_uninterrupted_run(fashion, tmp_path, monkeypatch):
    def config(out):
        return make_config({}, {"benchmark": "split-fashion-mnist", "data_root": str(fashion), "out": str(out),
                                "method": "sharp-lite", "batch_size": 4, "buffer_size": 20, "checkpoint_every": 2,
                                "threads": 1, "lr": 0.05, "params": {"per_class": 3}})

    a, b = crash_then_resume(config, tmp_path, monkeypatch, 9)
    assert a["class_il"] == b["class_il"] and a["task_il"] == b["task_il"]
    assert same_weights(tmp_path / "whole", tmp_path / "cut")


def test_recipe_errors_are_one_line(fashion, capsys):
    for param, word in (("recent_tasks=-1", "recent_tasks"), ("temperature=0", "temperature"), ("k=0", "`k`")):
        code, _, err = run_cli(["run", "--method", "sharp-lite", "--param", param, *tiny_run_flags(fashion),
                                "--dry-run"], capsys)
        assert code == 2 and word in err and "Traceback" not in err, (param, err)
    with pytest.raises(ConfigError, match="no option `per_clas`"):
        build_recipe({"terms": [{"term": "supcon"}], "memory": {"memory": "activations", "per_clas": 3}})
    with pytest.raises(ConfigError, match="views"):
        build_recipe({"terms": [{"term": "supcon"}], "memory": {"memory": "activations"}, "views": "strong"})


def test_on_a_domain_incremental_stream_each_task_keeps_its_own_blocks():
    """Permuted-MNIST gives every task every class: the blocks are per (task, class) and share the
    capacity, so the first task's activations are still replayed after the third (a per-class
    block would be replaced by each later task's)."""
    stream = permuted(make_source(num_classes=3, per_class_train=10, size=8), 3, torch.Generator().manual_seed(0))
    model = _mlp(stream)
    recipe = build_recipe("sharp-lite", {"per_class": 2})
    stored = []

    class Spy:
        name, stateless = "spy", True

        def end_task(self, state):
            m = state.memory
            stored.append(sorted(zip(m.fields["task"][: m.count].tolist(), m.fields["y"][: m.count].tolist())))

    recipe.plugins.append(Spy())
    train(stream, model, recipe, SGD(model.parameters(), lr=0.05), seed=0, batch_size=5, buffer_size=19)
    # 19 slots over 9 (task, class) pairs: 3 for the first pair, 2 for the others
    expected = [(t, c) for t in range(3) for c in range(3) for _ in range(3 if (t, c) == (0, 0) else 2)]
    assert stored[-1] == expected
    assert stored[0] == [p for p in expected if p[0] == 0]
