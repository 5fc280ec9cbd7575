"""Every preset on real MNIST: each must do what its method is for, so that a preset whose extra
terms, memory or plug-ins silently do nothing fails here.

The fast test trains on 1,000 examples per Split-MNIST task (seed 0, published settings); the
slow one (``pytest -m slow``) on all of Split-MNIST."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lifelong import hparams
from lifelong.data.mnist import load_mnist
from lifelong.data.streams import Task, class_incremental
from lifelong.methods import PRESETS, build_recipe
from lifelong.nets import build_backbone, set_head, set_projection
from lifelong.optim import SGD
from lifelong.loop import train

REPLAY = ("er", "er-ace", "der", "derpp", "icarl", "icarl-replay", "pcr", "hpcr")
REGULARISERS = ("lwf", "ewc", "ewc-online", "si", "mas")
# PRD is replay-free and learns its features contrastively: one epoch of batches of 10 gives it
# less task-IL than the others (measured on the subset, seed 0: task-IL 81.3, class-IL 31.0;
# without its distillation 71.4 and 21.1). Its floor is lower, and its distillation must keep
# more of the old classes than fine-tuning does (19).
# GPM at the library's lr 0.1 (no published Split-MNIST setting) leaks into old tasks' subspaces:
# task-IL 89.86 ± 1.15 with a BWT of -10.5 over seeds 0-2 on the full data (docs/RESULTS.md), 88.9
# in the slow test; its floor keeps this a check that it learns every task, not a claim that it
# keeps them. SHARP-lite (no sparse network, its early part frozen at initialisation) has task-IL
# 85.95 ± 0.65 over seeds 0-2 on the full data, 87.1 in the slow test. SHARP with its sparse
# network on the MLP rewires a single late layer (task-IL 88.6 on the subset, seed 0).
OWN_TASK_IL_FLOOR = {"prd": 75, "gpm": 85, "sharp-lite": 80, "sharp": 80}
DISTILLERS = ("prd",)
DOCS = Path(__file__).parents[1] / "docs" / "METHODS.md"
README = Path(__file__).parents[1] / "README.md"


def _stream(per_task: int | None):
    stream = class_incremental(load_mnist(), 5)
    if per_task is not None:
        g = torch.Generator().manual_seed(0)
        stream.tasks = [Task(t.index, t.classes, t.train_idx[torch.randperm(t.num_train, generator=g)[:per_task]].sort().values,
                             t.test_idx[:1000]) for t in stream.tasks]
    return stream


def _run(name: str, stream, lr: float | None = None):
    entry, _ = hparams.lookup("split-mnist", name, 200)
    recipe = build_recipe(name, entry.get("params", {}))
    torch.manual_seed(0)
    model = set_projection(set_head(build_backbone("mlp", (1, 28, 28), 10), recipe.head, recipe.head_scale),
                           recipe.projection)
    optimizer = SGD(model.parameters(), lr=lr or entry.get("lr", 0.1), weight_decay=entry.get("weight_decay", 0.0))
    result = train(stream, model, recipe, optimizer, seed=0, batch_size=10, buffer_size=200,
                   replay_batch_size=entry.get("replay_batch_size", 10))
    assert result.status == "complete", (name, result.message)
    class_il, task_il = (sum(m[-1]) / len(m[-1]) for m in (result.class_il, result.task_il))
    return class_il, task_il, model


def _check(results: dict, replay_margin: float, agem_margin: float, task_il_floor: float) -> None:
    ft_class, ft_task, _ = results["finetune"]
    for name, (class_il, task_il, _) in results.items():
        assert task_il > OWN_TASK_IL_FLOOR.get(name, task_il_floor), (name, task_il)
    for name in REPLAY:
        assert results[name][0] > ft_class + replay_margin, (name, results[name][0], ft_class)
    for name in DISTILLERS:
        assert results[name][0] > ft_class + 5, (name, results[name][0], ft_class)
    assert results["agem"][0] > ft_class + agem_margin, results["agem"][0]
    assert results["joint"][0] > 80


@pytest.fixture(scope="module")
def subset_results():
    torch.set_num_threads(1)
    stream = _stream(1000)
    return {name: _run(name, stream) for name in PRESETS}


def test_every_preset_does_its_job_on_a_split_mnist_subset(subset_results):
    """Replay presets keep far more of the old classes than fine-tuning (class-IL); every preset
    learns each task (task-IL). Measured: replay presets 47-78 vs fine-tuning 19."""
    _check(subset_results, replay_margin=20, agem_margin=3, task_il_floor=85)


def test_regularisers_change_the_solution(subset_results):
    """A regulariser whose term is silently zero trains exactly like fine-tuning at the same
    learning rate and seed: compare the weights."""
    stream = _stream(1000)
    for name in REGULARISERS:
        lr = hparams.lookup("split-mnist", name, 200)[0]["lr"]
        _, _, reference = _run("finetune", stream, lr=lr)
        weights = subset_results[name][2]
        differs = max((p - q).abs().max().item() for p, q in zip(weights.parameters(), reference.parameters()))
        assert differs > 1e-3, name


@pytest.mark.slow
def test_every_preset_on_split_mnist():
    """All of Split-MNIST, seed 0, published settings: task-IL above 90 for every preset; replay
    presets 20 points above fine-tuning in class-IL (A-GEM 15); the regularisers above
    fine-tuning in task-IL (measured: fine-tuning 95.7, regularisers 96.7-98.7)."""
    torch.set_num_threads(1)
    stream = _stream(None)
    results = {name: _run(name, stream) for name in PRESETS}
    _check(results, replay_margin=20, agem_margin=15, task_il_floor=90)
    for name in REGULARISERS:
        assert results[name][1] > results["finetune"][1] + 0.5, (name, results[name][1])


def test_every_preset_is_documented():
    """docs/METHODS.md and the README's methods table name every preset."""
    methods, readme = DOCS.read_text(), README.read_text()
    for name in PRESETS:
        assert f"| `{name}` |" in methods, name
        assert f"| `{name}` |" in readme, name
