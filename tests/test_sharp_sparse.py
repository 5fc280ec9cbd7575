"""SHARP's sparse network (``sparse-rewiring``; Gurbuz et al., 2023; BurakGurbuz97/SHARP-Continual-
Learning ``Source/architecture.py``, ``Source/rewire.py``, ``Source/learner.py``): the selection
schedule and the activation-mass rule by hand, drop and grow on hand-made masks, fixed density
through a run, the freezing of stable units (exactly unchanged, even with momentum), the masked
plastic output, the re-initialisation's fan-out scale, the masked kNN fed by unit ages, a
bit-exact resume and the one-line errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from lifelong.config import make_config
from lifelong.data.streams import class_incremental
from lifelong.loop import train
from lifelong.methods import build_recipe
from lifelong.optim import SGD
from lifelong.plugins.knn import MaskedKNN
from lifelong.plugins.sparse import (SparseLayer, SparseRewiring, drop_connections, grow_connections,
                                     selection_fraction, top_units)
from tests.conftest import crash_then_resume, make_source, run_cli, same_weights, tiny_run_flags


# -- the schedule and the selection rule ----------------------------------------------------------

def test_selection_fraction_is_the_cosine_from_phase_two_with_its_floor():
    def cosine(t, k=30.0):
        return (1 + math.cos(math.pi * t / k)) / 2
    assert selection_fraction(1, 30, 0.1) == pytest.approx(cosine(2))  # the first phase uses t = 2
    assert selection_fraction(1, 30, 0.1) != pytest.approx(cosine(1))
    assert selection_fraction(7, 30, 0.1) == pytest.approx(cosine(7))
    assert selection_fraction(15, 30, 0.4) == pytest.approx(0.5)
    assert selection_fraction(15, 30, 0.9) == 0.9  # the floor (min_activation_perc)
    assert selection_fraction(10, 10, 0.0) == pytest.approx(0.0, abs=1e-12)


def test_top_units_is_the_smallest_prefix_reaching_the_mass():
    a = torch.tensor([5.0, 1.0, 3.0, 1.0])  # total 10
    def chosen(fraction):
        return torch.nonzero(top_units(a, fraction)).squeeze(1).tolist()
    assert chosen(0.5) == [0]          # 5 >= 5
    assert chosen(0.51) == [0, 2]      # 8 >= 5.1
    assert chosen(0.8) == [0, 2]       # 8 >= 8: the unit reaching the mass is the last one
    assert chosen(0.81) == [0, 1, 2]   # ties by index: unit 1 before unit 3
    assert chosen(1.0) == [0, 1, 2, 3]
    assert chosen(1e-9) == [0]
    assert torch.nonzero(top_units(torch.zeros(3), 0.9)).squeeze(1).tolist() == [0]  # a dead layer: one unit


# -- drop and grow on hand-made masks -------------------------------------------------------------

def _layer(mask, ages, group=1):
    mask = torch.tensor(mask, dtype=torch.bool)
    module = nn.Linear(mask.shape[1], mask.shape[0])
    nn.init.constant_(module.weight, 1.0)
    return SparseLayer("l", module, mask, torch.tensor(ages), group)


def test_drop_removes_only_plastic_to_non_plastic_connections():
    layer = _layer([[1, 1, 1], [1, 0, 1], [1, 1, 0], [0, 1, 1]], [0, 1, 2, 3])
    dropped = drop_connections(layer, torch.tensor([True, False, True]))  # sources 0 and 2 plastic
    assert dropped == 4  # (1,0) (1,2) (2,0) (3,2); row 0 is plastic: kept
    assert layer.mask.int().tolist() == [[1, 1, 1], [0, 0, 0], [0, 1, 0], [0, 1, 0]]


def test_drop_after_a_convolution_takes_each_channels_block_of_inputs():
    layer = _layer([[1] * 6, [1] * 6], [1, 0], group=3)  # two channels of 3 positions each
    assert drop_connections(layer, torch.tensor([False, True])) == 3
    assert layer.mask.int().tolist() == [[1, 1, 1, 0, 0, 0], [1] * 6]


def test_grow_adds_the_quota_into_plastic_units_only_with_zero_weights():
    layer = _layer([[0, 0, 0, 0], [1, 0, 0, 1], [0, 0, 0, 0]], [0, 2, 0])
    before = layer.mask.clone()
    grown = grow_connections(layer, 5, np.random.default_rng(0))
    assert int(grown.sum()) == 5 and not (grown & before).any()
    assert not grown[1].any()  # a stable unit gets nothing
    assert (layer.module.weight[grown] == 0).all() and (layer.module.weight[~grown] == 1).all()
    assert torch.equal(layer.mask, before | grown)
    more = grow_connections(layer, 100, np.random.default_rng(0))  # fewer possible than asked: all
    assert int(more.sum()) == 3 and bool(layer.mask[[0, 2]].all())


# -- in a run -------------------------------------------------------------------------------------

class ConvLate(nn.Module):
    """A frozen first convolution, then a convolution, a linear layer after it and a last linear layer."""

    frozen_split = "features.1"

    def __init__(self, num_classes):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 4, 3, padding=1),
                                      nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 16), nn.ReLU(),
                                      nn.Linear(16, 12), nn.ReLU())
        self.classifier = nn.Linear(12, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))


def _stream():
    return class_incremental(make_source(num_classes=6, per_class_train=12, size=8), 3)


def _sharp(params=None):
    recipe = build_recipe("sharp", {"per_class": 4, "phases": 3, **(params or {})})
    sparse = next(p for p in recipe.plugins if isinstance(p, SparseRewiring))
    return recipe, sparse


def _run(recipe, lr=0.05, momentum=0.0, weight_decay=0.0, spies=()):
    stream = _stream()
    torch.manual_seed(0)
    model = ConvLate(stream.num_classes)
    recipe.plugins.extend(spies)
    # (torch's SGD: the library's refuses momentum when a parameter, here the unused classifier, has no gradient)
    optimizer = (torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
                 if momentum else SGD(model.parameters(), lr=lr))
    result = train(stream, model, recipe, optimizer, seed=0,
                   batch_size=6, buffer_size=24, replay_batch_size=6)
    assert result.status == "complete", result.message
    return model, result


def test_the_late_part_keeps_its_density_and_its_pruned_weights_stay_zero():
    recipe, sparse = _sharp()
    densities = []

    class Spy:
        name, stateless = "spy", True

        def after_step(self, state, batch):
            densities.append([int(l.mask.sum()) for l in sparse.layers])
            for l in sparse.layers:
                assert (l.module.weight[~l.mask.bool() if l.mask.dim() == l.module.weight.dim()
                                        else ~l.mask[:, :, None, None].expand_as(l.module.weight)] == 0).all()

    model, _ = _run(recipe, spies=[Spy()])
    assert [l.name for l in sparse.layers] == ["features.2", "features.5", "features.7"]
    assert sparse.layers[1].group == 64  # a linear layer after a 4-channel 8x8 convolution
    first = densities[0]
    for layer, n in zip(sparse.layers[1:], first[1:]):  # (the 2x4 convolution is too small to tell)
        assert 0.3 < n / layer.mask.numel() < 0.5  # 60% pruned at the start
    assert all(d[0] == first[0] for d in densities)  # nothing drops into the first rewired layer
    # drop-and-grow keeps the count unless there are too few free connections into plastic units
    assert all(d <= f for ds in densities for d, f in zip(ds, first))
    assert len(sparse.rewirings) == 3 * 3  # three phases a task
    for r in sparse.rewirings:
        assert r["grown"][1:] == r["dropped"][1:] or sum(r["grown"]) < sum(r["dropped"])


def test_no_connection_leads_from_a_plastic_unit_into_a_non_plastic_one_after_a_rewiring():
    recipe, sparse = _sharp()
    checked = []

    class Spy:
        name, stateless = "spy", True

        def before_step(self, state, batch):  # after sparse-rewiring's before_step (recipe order)
            if sparse.rewirings and len(sparse.rewirings) != len(checked):
                checked.append(1)
                for before, layer in zip(sparse.layers, sparse.layers[1:]):
                    cols = layer.source_columns(before.ages == 0)
                    assert not (layer.mask & (layer.ages != 0)[:, None] & cols[None, :]).any()

    _run(recipe, spies=[Spy()])
    assert len(checked) == 9


def test_units_age_at_each_task_end_and_frozen_units_never_move_even_with_weight_decay():
    recipe, sparse = _sharp({"reinit": False})
    at_end = {}

    class Spy:
        name, stateless = "spy", True

        def end_task(self, state):  # after sparse-rewiring's end_task: the ages are promoted
            at_end[state.task.index] = [(l.ages.clone(), l.module.weight.detach().clone(),
                                         l.module.bias.detach().clone()) for l in sparse.layers]

    _run(recipe, momentum=0.9, weight_decay=0.1, spies=[Spy()])
    ages = torch.cat([l.ages for l in sparse.layers])
    assert set(ages.tolist()) <= {0, 2, 3, 4} and (ages == 4).any()  # no candidate left after a task end
    for (a0, w0, _), (a1, w1, b1), (_, w2, b2) in zip(*(at_end[t] for t in range(3))):
        assert ((a0 == 0) | (a0 == 2)).all()  # one task: candidates became stable (2), not frozen yet
        stable = a0 == 2
        assert not torch.equal(w1[stable], w0[stable])  # ... so they still learn in the next task
        frozen = a1 > 2  # older than short_term_tasks + 1 = 2: frozen at the end of the second task
        assert torch.equal(frozen, stable)
        assert torch.equal(w2[frozen], w1[frozen]) and torch.equal(b2[frozen], b1[frozen])


def test_the_last_layers_plastic_units_output_zero_and_the_knn_compares_on_stable_units():
    recipe, sparse = _sharp()
    knn = next(p for p in recipe.plugins if isinstance(p, MaskedKNN))
    model, _ = _run(recipe)
    plastic = sparse.layers[-1].ages == 0
    with torch.no_grad():  # plastic units are the silent ones: make them fire
        sparse.layers[-1].module.bias[plastic] = 5.0
        x = torch.randn(5, 1, 8, 8)
        out = model.features(x)
        sparse._masking_output = False
        unmasked = model.features(x)
        sparse._masking_output = True
    assert plastic.any() and (out[:, plastic] == 0).all() and (unmasked[:, plastic] > 0).all()
    assert torch.equal(out[:, ~plastic], unmasked[:, ~plastic])
    for (t, c), (_, mask) in knn.stored.items():
        assert mask.shape == plastic.shape and not (mask & plastic).any()
    # the classes of the last task: the units stable at its end (age 2 and more)
    last = [mask for (t, _), (_, mask) in knn.stored.items() if t == 2]
    assert last and all(torch.equal(m, sparse.layers[-1].ages >= 2) for m in last)


def test_reinitialised_plastic_rows_have_the_fan_out_scale():
    layer = nn.Linear(400, 300)
    ages = torch.zeros(300, dtype=torch.long)
    ages[:100] = 2  # 200 plastic rows: fan-out 200 (the slice's rows), not the fan-in 400
    sparse = SparseRewiring(reinit=True)
    sparse.layers = [SparseLayer("x", layer, torch.ones(300, 400, dtype=torch.bool), ages)]
    sparse.rng = np.random.default_rng(0)
    before = layer.weight.detach().clone()
    with torch.no_grad():
        sparse._reinitialise_plastic()
    assert torch.equal(layer.weight[:100], before[:100]) and (layer.bias[100:] == 0).all()
    std = layer.weight[100:].std().item()
    assert std == pytest.approx(math.sqrt(2 / 200), rel=0.03)  # fan-in would give sqrt(2/400) = 0.071


def test_phases_split_the_tasks_steps_evenly():
    sparse = SparseRewiring(phases=4)
    sparse.task_steps = 10
    assert sparse.phase_starts() == [0, 3, 5, 8]
    sparse.task_steps = 2  # more phases than steps: the extra phases start at the same step
    assert sparse.phase_starts() == [0, 1, 1, 2]


# -- runs through the command line ---------------------------------------------------------------

def test_resume_mid_task_equals_an_uninterrupted_run(fashion, tmp_path, monkeypatch):
    def config(out):
        return make_config({}, {"benchmark": "split-fashion-mnist", "data_root": str(fashion), "out": str(out),
                                "method": "sharp", "backbone": "sharp-conv", "batch_size": 4, "buffer_size": 20,
                                "checkpoint_every": 3, "threads": 1, "lr": 0.05,
                                "params": {"per_class": 3, "phases": 3}})

    a, b = crash_then_resume(config, tmp_path, monkeypatch, 11)  # task 2, between two phase starts
    assert a["class_il"] == b["class_il"] and a["task_il"] == b["task_il"]
    assert same_weights(tmp_path / "whole", tmp_path / "cut")


def test_bad_options_are_one_line(fashion, capsys):
    for param, word in (("pruning=1.0", "pruning"), ("phases=0", "phases"), ("min_selection=0", "min_selection"),
                        ("tau=-1", "tau"), ("reinit=maybe", "reinit")):
        code, _, err = run_cli(["run", "--method", "sharp", "--param", param, *tiny_run_flags(fashion),
                                "--dry-run"], capsys)
        assert code == 2 and word in err and "Traceback" not in err, (param, err)
        assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("reset", [True, False])
def test_the_optimiser_starts_afresh_at_each_phase(reset):
    """The reference builds a new optimiser for every phase; ``reset_optimizer`` clears its state."""
    recipe, sparse = _sharp({} if reset else None)
    sparse.reset_optimizer = reset
    stream = _stream()
    torch.manual_seed(0)
    model = ConvLate(stream.num_classes)

    class Counting(SGD):
        resets = 0

        def reset_state(self):
            Counting.resets += 1
            super().reset_state()

    train(stream, model, recipe, Counting(model.parameters(), lr=0.05), seed=0, batch_size=6, buffer_size=24)
    assert Counting.resets == (9 if reset else 0)
