"""Several processes (lifelong.distributed): the layout's arithmetic, task-end statistics and whole
runs of 2 gloo processes against one process, and `torchrun -m lifelong run` end to end (rank 0
alone writes, the accuracy band of one process, a killed rank, resume with the same or another
number of processes, the refusals). Kept tiny: two CPU processes on tiny data."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

import lifelong
from lifelong import distributed
from lifelong.config import refresh_plugins
from lifelong.data.streams import class_incremental
from lifelong.errors import ConfigError
from lifelong.evaluate import evaluate
from lifelong.loop import check_parallel, train
from lifelong.memory import ReservoirBuffer
from lifelong.methods import build_recipe
from lifelong.nets import build_backbone
from lifelong.objective.weight import MAS, task_fisher
from lifelong.optim import SGD
from lifelong.plugins.exposed import ExposedEval
from lifelong.plugins.nme import NearestMeanOfExemplars
from lifelong.plugins.view_batch import ViewBatch
from tests.conftest import make_source, run_cli, write_fashion_mnist

SRC = Path(lifelong.__file__).resolve().parents[1]  # the code under test (a mutant's copy too)


# -- the layout's arithmetic, in one process ------------------------------------------------------

def test_parts_deal_the_remainder_to_the_first_ranks_and_blocks_tile_the_range():
    assert [distributed.part(10, r, 4) for r in range(4)] == [3, 3, 2, 2]
    for n in range(0, 23):
        for w in (1, 2, 3, 4):
            blocks = [distributed.share(n, r, w) for r in range(w)]
            sizes = [len(a) for a in np.array_split(np.arange(n), w)]  # numpy's own even split
            assert [hi - lo for lo, hi in blocks] == sizes
            assert blocks[0][0] == 0 and blocks[-1][1] == n
            assert all(blocks[r][1] == blocks[r + 1][0] for r in range(w - 1))
            assert sum(distributed.part(n, r, w) for r in range(w)) == n


def test_an_epochs_steps_leave_out_a_last_batch_smaller_than_the_ranks():
    for n in range(1, 40):
        for batch, w in ((10, 1), (10, 2), (6, 3), (4, 4)):
            ran = sum(1 for lo in range(0, n, batch) if min(batch, n - lo) >= w)  # the loop's rule, batch by batch
            assert distributed.steps(n, batch, w) == ran
    assert distributed.steps(61, 10) == 7 == math.ceil(61 / 10) and distributed.steps(61, 10, 2) == 6


def test_one_process_answers_as_one():
    assert distributed.world() == 1 and distributed.rank() == 0 and not distributed.parallel()
    assert distributed.share(7) == (0, 7) and distributed.stream_name("memory") == "memory"
    t = [torch.ones(3)]
    assert distributed.sum_(t)[0].tolist() == [1, 1, 1] and distributed.mean_loss(torch.tensor(2.5))[0].item() == 2.5
    assert distributed.stream_name("memory", 2) == "memory@rank2"


def test_layout_from_the_environment_and_its_refusals():
    assert distributed.from_environment({}) is None
    assert distributed.from_environment({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == \
        distributed.Layout(1, 2, 1)
    for bad in ({"RANK": "2", "WORLD_SIZE": "2"}, {"RANK": "x", "WORLD_SIZE": "2"}):
        with pytest.raises(ConfigError, match="torchrun"):
            distributed.from_environment(bad)
    distributed.check_layout(10, 20, 2)
    with pytest.raises(ConfigError, match="3 processes cannot share the batch size 10"):
        distributed.check_layout(10, 9, 3)
    with pytest.raises(ConfigError, match="replay batch size 5"):
        distributed.check_layout(10, 5, 2)


def _reservoir_state(rows: list[int], seen: int, capacity: int) -> dict:
    return {"capacity": capacity, "count": len(rows), "seen": seen, "rng": "old", "sample_rng": "old",
            "fields": {"x": torch.tensor(rows, dtype=torch.float32).unsqueeze(1), "y": torch.tensor(rows)}}


def test_a_reservoir_is_re_split_when_the_number_of_ranks_changes():
    old = [_reservoir_state([0, 1, 2, 3, 4], 50, 5), _reservoir_state([10, 11, 12, 13, 14], 50, 5)]  # 2 ranks of 5
    one = distributed.memory_for_rank(old, {"capacity": 10, "rng": "new", "sample_rng": "new"}, True, 0, 1)
    assert one["fields"]["y"].tolist() == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14] and one["seen"] == 100
    assert one["count"] == 10 and one["rng"] == "new"
    three = [distributed.memory_for_rank(old, {"capacity": distributed.part(10, r, 3), "rng": "new",
                                               "sample_rng": "new"}, True, r, 3) for r in range(3)]
    assert [m["fields"]["y"].tolist() for m in three] == [[0, 3, 11, 14], [1, 4, 12], [2, 10, 13]]
    assert [m["seen"] for m in three] == [34, 33, 33] and sum(m["count"] for m in three) == 10
    alone = [_reservoir_state(list(range(10)), 101, 10)]  # a one-process checkpoint under torchrun -nproc 2
    two = [distributed.memory_for_rank(alone, {"capacity": 5, "rng": "new", "sample_rng": "new"}, True, r, 2)
           for r in range(2)]
    assert [m["fields"]["y"].tolist() for m in two] == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]
    assert [m["seen"] for m in two] == [51, 50]
    replicated = distributed.memory_for_rank(old, {"capacity": 10, "sample_rng": "mine"}, False, 1, 3)
    assert replicated["fields"]["y"].tolist() == [0, 1, 2, 3, 4] and replicated["sample_rng"] == "mine"


def _activation_state(rows: list[tuple[int, int, int]], capacity: int) -> dict:
    """An activation memory's state holding rows ``(task, class, order)``, each row's codes ``10·class + order``."""
    t, y, o = (torch.tensor([row[i] for row in rows], dtype=torch.long) for i in range(3))
    codes = (10 * y + o).to(torch.uint8).unsqueeze(1).repeat(1, 2)
    return {"capacity": capacity, "count": len(rows), "rng": "old", "sample_rng": "old", "current": 2,
            "fields": {"x": codes, "lo": torch.zeros(len(rows)), "hi": torch.full((len(rows),), 255.0), "y": y,
                       "task": t, "order": o}}


def test_rows_are_dealt_in_turn_and_an_activation_memory_re_split_keeps_each_blocks_order():
    from lifelong.hidden_replay import ActivationMemory, dealt

    assert [dealt(5, 0, r, 2).tolist() for r in range(2)] == [[0, 2, 4], [1, 3]]
    assert [dealt(5, 3, r, 2).tolist() for r in range(2)] == [[1, 3], [0, 2, 4]]  # numbered on from row 3
    assert [dealt(4, 1, r, 3).tolist() for r in range(3)] == [[2], [0, 3], [1]] and dealt(4, 7, 0, 1).tolist() == [0, 1, 2, 3]
    # task 0: class 0 in 3 rows, class 1 in 2, dealt in turn to 2 ranks (rows 0..4); task 1: class 2 in 2 rows
    old = [_activation_state([(0, 0, 0), (0, 0, 2), (0, 1, 1), (1, 2, 0)], 4),
           _activation_state([(0, 0, 1), (0, 1, 0), (1, 2, 1)], 4)]

    def fresh(capacity):
        return ActivationMemory(capacity, np.random.default_rng(1)).state_dict()

    for w in (1, 3):
        parts = [distributed.memory_for_rank(old, fresh(distributed.part(8, r, w)), True, r, w) for r in range(w)]
        assert all(p["current"] == 2 and p["capacity"] == distributed.part(8, r, w) for r, p in enumerate(parts))
        assert sorted(sum((p["fields"]["x"][:, 0].tolist() for p in parts), [])) == [0, 1, 2, 10, 11, 20, 21]
        if w == 1:
            memory = ActivationMemory(8, np.random.default_rng(1))
            memory.load_state_dict(parts[0])
            blocks = memory.activations(range(0, 2))
            assert {k: v[:, 0].tolist() for k, v in blocks.items()} == \
                {(0, 0): [0.0, 1.0, 2.0], (0, 1): [10.0, 11.0], (1, 2): [20.0, 21.0]}  # each block in its order
            assert memory.current == 2 and "seen" not in parts[0]


def test_an_activation_memory_saved_without_the_blocks_order_gets_it_back():
    from lifelong.hidden_replay import ActivationMemory

    state = _activation_state([(0, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 0), (0, 0, 2)], 5)
    del state["fields"]["order"]
    state["rng"] = state["sample_rng"] = np.random.default_rng(0).bit_generator.state
    memory = ActivationMemory(5, np.random.default_rng(0))
    memory.load_state_dict(state)
    assert memory.fields["order"][: memory.count].tolist() == [0, 0, 1, 0, 2]


def test_a_checkpoint_whose_ranks_do_not_match_its_world_size_is_one_line():
    payload = {"memory": None, "rng": {"augment": 0}, "ranks": [{"memory": None, "rng": {}}], "world_size": 2}
    with pytest.raises(ConfigError, match="holds 1 ranks' states but says it was written by 2"):
        distributed.for_this_rank(payload, None, False, {})


def test_what_several_processes_do_not_run_yet_is_refused(monkeypatch):
    monkeypatch.setattr(distributed, "world", lambda: 2)
    from lifelong.memory import MEMORIES, Memory
    from lifelong.methods import PRESETS

    for name in PRESETS:  # every preset runs under several processes (issue 17)
        check_parallel(build_recipe(name), 10, 10, 200)
    check_parallel(build_recipe("er", {}, [{"plugin": "error-memory"}]), 10, 10, 200)
    monkeypatch.setitem(MEMORIES, "mine", type("Mine", (Memory,), {"name": "mine"}))
    recipe = build_recipe("er")
    recipe.memory = "mine"
    with pytest.raises(ConfigError, match="memory 'mine' does not run under several processes"):
        check_parallel(recipe, 10, 10, 200)
    for method in ("er", "sharp"):  # a reservoir, and SHARP's memory of activations, dealt to the ranks
        with pytest.raises(ConfigError, match="each needs at least one slot"):
            check_parallel(build_recipe(method), 10, 10, 1)
    for name in ("lora", "exposed-eval", "adaptive-weights", "view-batch"):
        check_parallel(build_recipe("finetune", {}, [{"plugin": name}]), 10, 10, 200)


class _Mine:
    name = "mine"


class _MineSafe(_Mine):
    parallel_safe = True


def test_a_plugin_of_your_own_runs_under_several_processes_only_when_it_says_so(monkeypatch):
    monkeypatch.setattr(distributed, "world", lambda: 2)
    for plugin, runs in ((_Mine(), False), (_MineSafe(), True), (type("Vague", (_Mine,), {"parallel_safe": 1})(), False)):
        recipe = build_recipe("finetune")
        recipe.plugins.append(plugin)
        if runs:
            check_parallel(recipe, 10, 10, 200)
        else:
            with pytest.raises(ConfigError, match="plug-in 'mine' does not run .* parallel_safe = True"):
                check_parallel(recipe, 10, 10, 200)


def test_view_batch_over_epochs_refuses_a_step_the_processes_cannot_share(monkeypatch):
    monkeypatch.setattr(distributed, "world", lambda: 2)
    plugin = ViewBatch(2, form="epochs")
    assert plugin.plan(None, 60, 20) == (30, 10)
    with pytest.raises(ConfigError, match="2 processes cannot share the 5 examples of a step .* multiple of 4"):
        plugin.plan(None, 60, 10)
    recipe = build_recipe("finetune", {}, [{"plugin": "view-batch", "repeats": 2}])
    check_parallel(recipe, 10, 10, 200, epochs=1)  # online (fewer epochs than views): a step of 10 examples
    with pytest.raises(ConfigError, match="cannot share the 5 examples"):
        check_parallel(recipe, 10, 10, 200, epochs=2)


# -- 2 gloo processes against one: task-end statistics and whole runs ------------------------------

def _stream():
    return class_incremental(make_source(num_classes=4, per_class_train=30, per_class_test=9), 2)


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return build_backbone("mlp", (1, 8, 8), 4)


def _statistics() -> dict:
    """Fisher (EWC, refresh), MAS's importance, iCaRL's class means and the evaluation of a fresh
    model on the first task, with a memory holding the task's examples (odd sizes: 61 rows)."""
    stream = _stream()
    model = _model()
    task = stream.tasks[0]
    state = SimpleNamespace(model=model, task=task, stream=stream, step=0, cache={})
    fisher = task_fisher(state, probability_weighted=True)
    plain = task_fisher(state, probability_weighted=False, max_examples=47)
    mas = MAS()
    mas.end_task(state)
    memory = ReservoirBuffer(61, np.random.default_rng(0))
    idx = torch.cat([stream.tasks[0].train_idx, stream.tasks[1].train_idx[:1]])
    memory.add(x=stream.inputs("train", idx, 0), y=stream.labels("train", idx))
    state.memory = memory
    nme = NearestMeanOfExemplars()
    nme.end_task(state)
    return {"fisher": fisher, "plain": plain, "mas": mas.penalty.omega, "means": nme.means,
            "evaluate": evaluate(model, stream, batch_size=7)}


VIEWS = {"plugin": "view-batch", "repeats": 2, "form": "epochs", "augment": "none"}  # nothing sampled but the order
# SHARP's parts (activation memory, sparse rewiring, masked kNN) with cross-entropy: the replay draws
# (each rank's own) go through the late part with weight 0, so that nothing sampled changes the model
SHARP_PARTS = {"terms": [{"term": "ce"}, {"term": "ce", "on": "replay", "draw": 0, "weight": 0.0}],
               "memory": {"memory": "activations", "recent_tasks": 1},
               "plugins": [{"plugin": "sparse-rewiring", "phases": 3, "selection_examples": 16, "pruning": 0.5},
                           {"plugin": "masked-knn", "k": 3, "per_class": 4}]}  # (one layer after the split)
SPARSE = {"plugin": "sparse-rewiring", "phases": 3, "selection_examples": 16, "pruning": 0.5}  # 2 layers: drop, grow
ERRORS = {"plugin": "error-memory", "bits": 3, "slots": 4, "k": 2}  # 8 buckets of 4 for 120 writes: FIFO order counts
RUNS = {"ewc": ("ewc", {}, []), "ewc-online": ("ewc-online", {}, []), "si": ("si", {}, []), "mas": ("mas", {}, []),
        "icarl": ("icarl", {}, []), "ewc-refresh": ("ewc", {}, refresh_plugins("paper")),
        "lora": ("lora", {"rank": 2}, []), "exposed-eval": ("finetune", {}, [{"plugin": "exposed-eval"}]),
        "adaptive-weights": ("ewc", {}, [{"plugin": "adaptive-weights", "window": 2, "temperature": 0.1}]),
        "view-batch": ("finetune", {}, [VIEWS]), "sharp-parts": (SHARP_PARTS, {}, []),
        "error-memory": ("finetune", {}, [ERRORS]), "sparse-rewiring": ("finetune", {}, [SPARSE])}
# view-batch: 20 views a step, 10 examples, 5 a rank; sharp-parts: 17 slots, 5, 4, 4, 4 a class (task 1
# stores 9 rows, task 2 8), dealt 9 and 8
SETTINGS = {"view-batch": {"epochs": 2, "batch_size": 20}, "sharp-parts": {"buffer_size": 17}}


class _KeepMemory:
    """Keeps, at each task end, this rank's activation memory and every rank's (gathered)."""

    name, parallel_safe = "keep-memory", True

    def end_task(self, state) -> None:
        memory = state.memory
        self.own = {k: v[: memory.count].clone() for k, v in memory.fields.items()}
        self.every = memory.every_rank()
        self.activations = memory.activations(range(0, state.task.index + 1))


def _trained(name: str) -> dict:
    """A whole run of a method without replay draws (batches of 10 that 2 processes share evenly):
    its final weights, every term's and plug-in's state, and its accuracy."""
    method, params, shorthand = RUNS[name]
    recipe = build_recipe(method, params, shorthand)
    keep = _KeepMemory()
    if recipe.memory == "activations":
        recipe.plugins.append(keep)
    model = _model()
    settings = {"epochs": 1, "batch_size": 10, "buffer_size": 20, **SETTINGS.get(name, {})}
    result = train(_stream(), model, recipe, SGD(model.parameters(), lr=0.1), seed=0, **settings)
    out = {"model": model.state_dict(), "terms": [getattr(t, "state_dict", dict)() for _, t in recipe.objective.terms],
           "plugins": [getattr(p, "state_dict", dict)() for p in recipe.plugins if p is not keep],
           "class_il": result.class_il}
    if hasattr(keep, "own"):  # the union of the ranks' memories, in a canonical order; the gathered blocks
        out["memory"], out["activations"] = _canonical(keep.every), keep.activations
        out["own"] = keep.own  # (not compared with one process: each rank's part)
    return out


def _own_range(fields: dict) -> torch.Tensor:
    """Each row's class block's maximum over this rank's rows alone (the wrong scale under several ranks)."""
    return torch.stack([fields["x"][fields["y"] == c].float().max() / 255 * (fields["hi"][i] - fields["lo"][i])
                        + fields["lo"][i] for i, c in enumerate(fields["y"].tolist())])


def _canonical(fields: dict) -> dict:
    """Memory rows sorted by (task, class, position in the class's block): how they lie in one process."""
    key = (fields["task"] * 1000 + fields["y"]) * 1000 + fields["order"]
    order = torch.argsort(key)
    return {k: v[order] for k, v in fields.items()}


def _replayed(method: str) -> list[float]:
    """ER or DER++ on a Split-MNIST slice (the bundled MNIST, 600 training and 500 test examples a
    task), buffer 200, the published settings for it: the final class-IL row (replay draws differ
    from one process's: only the accuracy band can be compared). One process, seeds 0-3: ER
    44-49%, DER++ 72-80%; fine-tuning forgets all but the last task (about 20%)."""
    from lifelong import hparams
    from lifelong.data.mnist import load_mnist
    from lifelong.data.streams import Task

    stream = class_incremental(load_mnist(), 5)
    g = torch.Generator().manual_seed(0)
    stream.tasks = [Task(t.index, t.classes, t.train_idx[torch.randperm(t.num_train, generator=g)[:600]].sort().values,
                         t.test_idx[:500]) for t in stream.tasks]
    entry, _ = hparams.lookup("split-mnist", method, 200)
    torch.manual_seed(0)
    model = build_backbone("mlp", (1, 28, 28), 10)
    result = train(stream, model, build_recipe(method, entry.get("params", {})), SGD(model.parameters(), lr=entry["lr"]),
                   seed=0, epochs=1, batch_size=10, replay_batch_size=entry.get("replay_batch_size"), buffer_size=200)
    return result.class_il[-1]


BANDED = ("er", "derpp")


def _anytime() -> dict:
    """Fine-tuning with anytime evaluation every 25 examples (batches of 10: a 2-process batch's
    count is the whole batch's): the curve."""
    model = _model()
    result = train(_stream(), model, build_recipe("finetune"), SGD(model.parameters(), lr=0.1), seed=0, epochs=1,
                   batch_size=10, eval_every=25)
    return result.anytime


def _exposed(rank: int) -> list[bool]:
    """The classes exposed-eval keeps after rank 0 saw class 0 and rank 1 class 2 (of 4)."""
    plugin = ExposedEval()
    plugin.before_step(SimpleNamespace(stream=SimpleNamespace(num_classes=4)), SimpleNamespace(y=torch.tensor([2 * rank])))
    return plugin.exposed.seen.tolist()


def _gathered(rank: int) -> dict:
    """The gathers and the maximum across 2 ranks on uneven rows: rank 0 brings 3 rows, rank 1 one
    (and then none)."""
    from lifelong.plugins.error_memory import every_rank

    rows = torch.arange(6, dtype=torch.float32).view(3, 2) if rank == 0 else torch.tensor([[10.0, 11.0]])
    features, residuals = (torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[0.5], [-0.5]])) if rank == 0 else \
        (torch.tensor([[5.0, 6.0]]), torch.tensor([[0.25]]))
    return {"cat": distributed.cat_ranks(rows), "cat-none": distributed.cat_ranks(rows[: 3 * (rank == 0)]),
            "max": distributed.max_([torch.tensor([float(rank), -float(rank), 2.0])])[0],
            "all": distributed.all_gather({"rank": rank}), "errors": every_rank(features, residuals),
            "steps": distributed.steps(61, 10)}


def _agem() -> dict:
    """A-GEM with each rank's own reservoir (10 of 20 slots) and replay draws: its weights and how
    many steps it projected."""
    recipe = build_recipe("agem")
    model = _model()
    train(_stream(), model, recipe, SGD(model.parameters(), lr=0.1), seed=0, epochs=2, batch_size=10, buffer_size=20)
    return {"model": model.state_dict(), "projections": recipe.plugins[0].projections}


def _worker(rank: int, world: int, folder: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank,
                                         world_size=world)
    try:
        torch.save({"statistics": _statistics(), "exposed": _exposed(rank), "gathered": _gathered(rank),
                    **{name: _trained(name) for name in RUNS},
                    **{f"band-{m}": _replayed(m) for m in BANDED}, "anytime": _anytime(), "agem": _agem()},
                   f"{folder}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> list[dict]:
    folder = tmp_path_factory.mktemp("gloo")
    mp.spawn(_worker, args=(2, str(folder)), nprocs=2, join=True)
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(2)]


def _close(a, b, atol: float = 1e-6) -> bool:
    """Equal containers of tensors and numbers, tensors up to float sums (NaN where NaN)."""
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=atol, equal_nan=True)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], atol) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y, atol) for x, y in zip(a, b))
    return a == b if not isinstance(a, float) else abs(a - b) <= 1e-9 + 1e-5 * abs(a)


def test_task_end_statistics_of_two_processes_equal_one_process(two_processes):
    alone = _statistics()
    for name in ("fisher", "plain", "mas", "means", "evaluate"):
        for rank in two_processes:
            assert _close(rank["statistics"][name], alone[name]), name
    # the wrong variants: each rank's share not summed (half), or averaged instead of summed
    half = [f / 2 for f in alone["fisher"]]
    assert not _close(two_processes[0]["statistics"]["fisher"], half)
    assert torch.isnan(alone["means"][:, 0]).tolist() == [False, False, False, True]  # class 3 has no exemplar


def test_exposed_eval_exposes_the_classes_of_every_rank(two_processes):
    assert [rank["exposed"] for rank in two_processes] == [[True, False, True, False]] * 2


@pytest.mark.parametrize("name", sorted(RUNS))
def test_a_run_of_two_processes_equals_one_process_when_nothing_is_sampled(two_processes, name):
    alone = _trained(name)
    alone.pop("own", None)
    ranks = [{k: v for k, v in rank[name].items() if k != "own"} for rank in two_processes]
    for rank in ranks:
        assert _close(rank, alone, atol=1e-5), name
    assert _close(ranks[0], ranks[1], atol=0.0)  # the ranks hold one model


def test_gathers_concatenate_the_ranks_rows_in_rank_order_and_the_maximum_is_every_ranks(two_processes):
    for rank in two_processes:
        got = rank["gathered"]
        assert got["cat"].tolist() == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [10.0, 11.0]]
        assert got["cat-none"].tolist() == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]  # rank 1 brought no row
        assert got["max"].tolist() == [1.0, 0.0, 2.0] and got["all"] == [{"rank": 0}, {"rank": 1}]
        features, residuals = got["errors"]  # the error memory's writes: the global batch, in its order
        assert features.tolist() == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]] and residuals.tolist() == [[0.5], [-0.5], [0.25]]
        assert got["steps"] == 6  # 61 examples in batches of 10: the last, of one, is smaller than 2 ranks: skipped


def test_the_activation_memory_of_two_processes_is_the_one_process_memory_dealt_to_the_ranks(two_processes):
    alone = _trained("sharp-parts")
    own = [rank["sharp-parts"]["own"] for rank in two_processes]
    assert [len(o["y"]) for o in own] == [9, 8]  # each rank's turns: 17 slots dealt 9 and 8
    ranks = torch.cat([torch.full((len(o["y"]),), r) for r, o in enumerate(own)])
    union = _canonical({"rank": ranks, **{k: torch.cat([o[k] for o in own]) for k in own[0]}})
    memory = alone["memory"]
    assert union["y"].tolist() == memory["y"].tolist() and union["order"].tolist() == memory["order"].tolist()
    assert memory["y"].bincount().tolist() == [5, 4, 4, 4]  # the one-process quotas of 17 slots
    assert union["rank"].tolist() == [p % 2 for p in range(17)]  # the whole memory's rows dealt in turn
    # each class block quantised with the whole block's range (the early part's outputs of fewer rows
    # differ in the last bits), so the same codes; each rank's own range would be another scale
    assert _close(union["lo"], memory["lo"]) and _close(union["hi"], memory["hi"])
    assert (union["x"].int() - memory["x"].int()).abs().max() <= 1  # a code apart at most (float sums)
    assert not all(_close(o["hi"], _own_range(o)) for o in own)  # a rank's maximum is not always the block's
    for c in range(4):  # a block's rows lie on both ranks, every second one on each
        assert all(bool((o["y"] == c).any()) for o in own)
    knn = two_processes[0]["sharp-parts"]["plugins"][1]
    assert [(t, c) for t, c, _, _ in knn["stored"]] == [(0, 0), (0, 1), (1, 2), (1, 3)]


def test_agem_projects_every_rank_alike_with_the_ranks_reference_gradient(two_processes):
    """The ranks replay different memories; their reference gradients are averaged before the
    projection, so every rank projects the same averaged gradient the same way and the ranks keep
    one model (fails when each rank projects against its own draw's gradient)."""
    first, second = (rank["agem"] for rank in two_processes)
    assert first["projections"] == second["projections"] > 0
    assert _close(first["model"], second["model"], atol=0.0)


# -- torchrun end to end ---------------------------------------------------------------------------

KILLER = '''import os, signal, time
from lifelong import distributed, loop
AT = int(os.environ.get("LIFELONG_TEST_KILL_AT", "0"))
if os.environ.get("LIFELONG_TEST_SLOW"):  # a step of 50 ms: time to interrupt the run
    _plain = loop.Step.__call__
    def _slow(self, *args, **kwargs):
        time.sleep(0.05)
        return _plain(self, *args, **kwargs)
    loop.Step.__call__ = _slow
if AT:
    _original = loop.Step.__call__
    def _call(self, *args, **kwargs):
        out = _original(self, *args, **kwargs)
        if distributed.rank() == 1 and self.state.step == AT:
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    loop.Step.__call__ = _call
'''


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", **extra}


def _lifelong(args: list[str], processes: int | None, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """``lifelong ARGS`` in a new process, under ``torchrun`` with ``processes`` ranks (``None``: alone)."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                str(processes)] if processes else [sys.executable]
    return subprocess.run([*launcher, "-m", "lifelong", *args], cwd=cwd, env=_env(**env), capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def fashion_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp") / "data"
    write_fashion_mnist(root, per_class_train=20, per_class_test=6)
    (root.parent / "killer.py").write_text(KILLER)
    return root


def _flags(data: Path, method: str, out: Path) -> list[str]:
    return ["run", "--benchmark", "split-fashion-mnist", "--data-root", str(data), "--batch-size", "4", "--quiet",
            "--method", method, "--buffer-size", "20", "--device", "cpu", "--checkpoint-every", "3", "--out", str(out),
            "--import", str(data.parent / "killer.py")]


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def _same_weights(a: Path, b: Path) -> bool:
    x, y = torch.load(a / "model.pt"), torch.load(b / "model.pt")
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def derpp_two(fashion_data) -> Path:
    out = fashion_data.parent / "derpp-2"
    done = _lifelong(_flags(fashion_data, "derpp", out), 2, fashion_data.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def test_rank_zero_alone_writes_the_run_folder(derpp_two, fashion_data):
    alone = fashion_data.parent / "derpp-1"
    done = _lifelong(_flags(fashion_data, "derpp", alone), None, fashion_data.parent)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in derpp_two.iterdir()) == sorted(p.name for p in alone.iterdir())
    assert (derpp_two / "run.log").read_text().count(" start: ") == 1
    assert "x 2 processes" in (derpp_two / "run.log").read_text()
    events = (derpp_two / "events.jsonl").read_text().splitlines()
    assert sum('"run_start"' in e for e in events) == 1 and sum('"run_end"' in e for e in events) == 1
    steps = _metrics(derpp_two)["steps"]
    assert steps == _metrics(alone)["steps"] == 50  # the global batch is the configured one: 5 tasks x 40 / 4
    assert not any(p.name.startswith("derpp-2") and p != derpp_two for p in fashion_data.parent.iterdir())


def test_anytime_evaluation_of_two_processes_equals_one_process(two_processes):
    alone = _anytime()
    for rank in two_processes:
        curve = rank["anytime"]["curve"]
        assert [p["examples_seen"] for p in curve] == [p["examples_seen"] for p in alone["curve"]]
        assert [p["exposed_classes"] for p in curve] == [p["exposed_classes"] for p in alone["curve"]]
        assert [p["accuracy"] for p in curve] == [p["accuracy"] for p in alone["curve"]]
    assert len(alone["curve"]) > 4


@pytest.mark.parametrize("method", BANDED)
def test_er_and_derpp_of_two_processes_reach_the_accuracy_band_of_one(two_processes, method):
    alone = _replayed(method)
    two = two_processes[0][f"band-{method}"]
    assert two == two_processes[1][f"band-{method}"]  # evaluation counts summed: every rank reads the same row
    mean = lambda row: sum(row) / len(row)  # noqa: E731
    assert mean(two) > 35 and abs(mean(two) - mean(alone)) <= 8, (alone, two)


@pytest.mark.slow
@pytest.mark.parametrize("method", BANDED + ("sharp",))
def test_full_split_mnist_of_two_processes_reaches_the_band_of_one(method, tmp_path):
    accuracy = {}
    for processes in (None, 2):
        out = tmp_path / f"{method}-{processes}"
        done = _lifelong(["run", "--benchmark", "split-mnist", "--method", method, "--buffer-size", "200", "--device",
                          "cpu", "--quiet", "--out", str(out)], processes, tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        accuracy[processes] = _metrics(out)["class_il"]["average_accuracy"]
    assert abs(accuracy[2] - accuracy[None]) <= 5, accuracy


@pytest.fixture(scope="module")
def killed(fashion_data) -> Path:
    """The DER++ run of :func:`derpp_two` with rank 1 killed (SIGKILL) after step 23; left as it
    is (tests resume copies of it)."""
    folder = fashion_data.parent / "derpp-killed"
    done = _lifelong(_flags(fashion_data, "derpp", folder), 2, fashion_data.parent, LIFELONG_TEST_KILL_AT="23")
    assert done.returncode != 0
    return folder


def test_a_killed_rank_fails_the_job_and_the_run_resumes_with_two_or_one_processes(killed, derpp_two, tmp_path):
    assert not (killed / "metrics.json").exists()
    names = sorted(p.name for p in (killed / "checkpoints").iterdir())
    assert names == ["ckpt-000000020.pt", "ckpt-000000020.pt.sha256", "ckpt-000000021.pt", "ckpt-000000021.pt.sha256"]
    two, one = tmp_path / "two", tmp_path / "one"
    shutil.copytree(killed, two)
    shutil.copytree(killed, one)
    resumed = _lifelong(["run", "--resume", str(two), "--quiet"], 2, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from ckpt-000000021.pt" in resumed.stderr
    assert _same_weights(two, derpp_two)  # every rank's memory and generators came back
    other = _lifelong(["run", "--resume", str(one), "--quiet"], None, tmp_path)  # one process: the reservoirs re-split
    assert other.returncode == 0, other.stderr
    assert _metrics(one)["complete"] and _metrics(one)["steps"] == 50
    assert not _same_weights(one, derpp_two)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sharp", "sharp-lite"])
def test_sharp_with_a_killed_rank_resumes_with_two_or_one_processes(fashion_data, tmp_path, method):
    """SHARP under torchrun, end to end: its memory of activations and its plug-ins in the checkpoint
    of every rank; a rank killed after step 23 (of 50), resumed by 2 processes, is the uninterrupted
    run bit for bit; resumed by one, the memory's rows dealt again, it finishes."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    done = _lifelong(_flags(fashion_data, method, whole), 2, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _lifelong(_flags(fashion_data, method, killed), 2, tmp_path, LIFELONG_TEST_KILL_AT="23").returncode != 0
    one = tmp_path / "one"
    shutil.copytree(killed, one)
    resumed = _lifelong(["run", "--resume", str(killed), "--quiet"], 2, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _same_weights(killed, whole) and _metrics(killed)["class_il"] == _metrics(whole)["class_il"]
    other = _lifelong(["run", "--resume", str(one), "--quiet"], None, tmp_path)
    assert other.returncode == 0, other.stderr[-2000:]
    assert _metrics(one)["complete"] and _metrics(one)["steps"] == 50


def test_an_interrupt_stops_every_rank_at_one_step_with_a_checkpoint(fashion_data, derpp_two, tmp_path):
    import signal
    import time

    out = tmp_path / "interrupted"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "lifelong"]
    proc = subprocess.Popen([*launcher, *_flags(fashion_data, "derpp", out)], cwd=tmp_path,
                            env=_env(LIFELONG_TEST_SLOW="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list((out / "checkpoints").glob("*.sha256")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: torchrun passes it to every rank
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert err.count("lifelong: stopped at") == 1 and "holds this point" in err
    resumed = _lifelong(["run", "--resume", str(out), "--quiet"], 2, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _same_weights(out, derpp_two)  # LIFELONG_TEST_SLOW only slows the steps


def _refused(capsys, monkeypatch, args: list[str], world: int = 2) -> str:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", str(world))
    code, _, err = run_cli(args, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    return err


def test_bad_layouts_are_one_line_before_any_rendezvous(capsys, monkeypatch, fashion_data, killed, tmp_path):
    base = ["run", "--benchmark", "split-fashion-mnist", "--data-root", str(fashion_data), "--quiet",
            "--out", str(tmp_path / "x")]
    assert "--jobs runs several runs side by side" in _refused(capsys, monkeypatch, base + ["--jobs", "2"])
    assert "--seeds runs several runs side by side" in _refused(capsys, monkeypatch, base + ["--seeds", "0-1"])
    assert "3 processes cannot share the batch size 4" in _refused(capsys, monkeypatch, base + ["--batch-size", "4"], 3)
    assert "replay batch size 5" in _refused(capsys, monkeypatch, base + ["--batch-size", "4", "--replay-batch-size",
                                                                          "5"])
    # a run of 2 processes (batch 4) resumed by 3: its layout cannot share the batch
    assert "3 processes cannot share the batch size 4" in _refused(capsys, monkeypatch,
                                                                   ["run", "--resume", str(killed)], 3)
    assert not (tmp_path / "x").exists()


def test_under_torchrun_a_refusal_is_said_once(fashion_data, tmp_path):
    done = _lifelong(["run", "--benchmark", "split-fashion-mnist", "--data-root", str(fashion_data), "--quiet",
                      "--batch-size", "5", "--out", str(tmp_path / "x")], 2, tmp_path)
    assert done.returncode != 0
    assert done.stderr.count("lifelong: error: 2 processes cannot share the batch size 5") == 1


def test_under_torchrun_a_view_batch_step_the_processes_cannot_share_is_one_line(fashion_data, tmp_path):
    out = tmp_path / "x"
    done = _lifelong(["run", "--benchmark", "split-fashion-mnist", "--data-root", str(fashion_data), "--quiet",
                      "--batch-size", "6", "--view-batch", "2", "--epochs", "2", "--out", str(out)], 2, tmp_path)
    assert done.returncode != 0
    assert done.stderr.count("lifelong: error: view-batch replay over epochs: 2 processes cannot share the 3 "
                             "examples of a step") == 1, done.stderr[-2000:]
    assert not out.exists() or not any(p.name != "run.lock" for p in out.iterdir())


def test_a_folder_only_rank_zero_can_refuse_stops_every_rank(fashion_data, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("x")
    done = _lifelong(_flags(fashion_data, "er", busy), 2, tmp_path)
    assert done.returncode != 0 and done.stderr.count("lifelong: error: output folder") == 1
    assert sorted(p.name for p in busy.iterdir() if p.name != "run.lock") == ["something"]


def test_the_ddp_benchmark_runs_in_a_tiny_configuration(tmp_path):
    script = SRC.parent / "benchmarks" / "ddp.py"
    if not script.is_file():  # a mutant's copy of src/: the benchmark is the repository's
        script = Path(__file__).resolve().parents[1] / "benchmarks" / "ddp.py"
    out = tmp_path / "ddp.md"
    done = subprocess.run([sys.executable, str(script), "--batches", "10", "--steps", "20", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, env=_env())
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|") for line in out.read_text().splitlines() if line.startswith("| 10 |")]
    assert [int(r[2]) for r in rows] == [1, 2] and all(float(r[3]) > 0 for r in rows)
    assert "all-reduce" in out.read_text()
