"""Si-Blurry and i-Blurry streams (lifelong.data.blurry): the generator's properties on small
synthetic sources, the generator against a version written out independently here, the loop,
evaluation, memories and metrics on tasks that share classes, and the command line."""
from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

from lifelong.data.benchmarks import build_stream, get_benchmark
from lifelong.data.blurry import blurry, equal_cuts, give_up_counts, members, mix_blurry, plan, random_cuts
from lifelong.data.source import Source
from lifelong.errors import ConfigError
from lifelong.loop import train
from lifelong.methods import build_recipe
from lifelong.metrics import summarize
from lifelong.nets import build_backbone
from lifelong.optim import SGD
from tests.conftest import crash_then_resume, make_images, run_cli, write_fashion_mnist


def shuffled_source(num_classes: int = 10, per_class: int = 20, per_class_test: int = 3, seed: int = 0,
                    sizes: list[int] | None = None) -> Source:
    """A tiny source whose training labels come in a random order (as in MNIST or CIFAR files);
    ``sizes``: examples per class (default ``per_class`` each)."""
    sizes = sizes or [per_class] * num_classes
    g = torch.Generator().manual_seed(seed)
    train_y = torch.arange(num_classes).repeat_interleave(torch.tensor(sizes))
    train_y = train_y[torch.randperm(len(train_y), generator=g)]
    test_y = torch.arange(num_classes).repeat_interleave(per_class_test)
    return Source("toy", make_images(train_y, 8), train_y, make_images(test_y, 8, seed=1), test_y, num_classes)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def cut(source: Source, seed: int, tasks: int = 5, **kwargs):
    return plan(source.train_y, source.num_classes, tasks, gen(seed), **kwargs)


SETTINGS = [dict(variant=v, disjoint=n, mix=m) for v in ("si", "i") for n, m in ((50, 10), (0, 100), (100, 0),
                                                                                  (30, 50), (50, 0))]


# -- properties of the generator -------------------------------------------------------------------

@pytest.mark.parametrize("settings", SETTINGS, ids=str)
@pytest.mark.parametrize("seed", range(4))
def test_every_training_example_is_in_exactly_one_task(settings, seed):
    source = shuffled_source(sizes=[5 + 3 * c for c in range(10)])
    p = cut(source, seed, **settings)
    everything = torch.cat(p.train).sort().values
    assert torch.equal(everything, torch.arange(len(source.train_y)))
    stream = blurry(source, 5, gen(seed), **settings)
    kept = torch.cat([t.train_idx for t in stream.tasks]).sort().values
    assert torch.equal(kept, everything)


def _tasks_of(source: Source, p) -> dict[int, set[int]]:
    """class -> the tasks whose training examples include it."""
    found: dict[int, set[int]] = {}
    for t, idx in enumerate(p.train):
        for c in source.train_y[idx].unique().tolist():
            found.setdefault(c, set()).add(t)
    return found


@pytest.mark.parametrize("variant", ["si", "i"])
@pytest.mark.parametrize("seed", range(6))
def test_disjoint_classes_are_in_exactly_their_own_task(variant, seed):
    source = shuffled_source()
    p = cut(source, seed, variant=variant, mix=30)
    found = _tasks_of(source, p)
    disjoint = [c for group in p.disjoint_classes for c in group]
    assert len(disjoint) == 5 and len(set(disjoint)) == 5
    for t, group in enumerate(p.disjoint_classes):
        for c in group:
            assert found[c] == {t}
    blurry_classes = sorted(c for group in p.blurry_classes for c in group)
    assert sorted(disjoint + blurry_classes) == list(range(10))


@pytest.mark.parametrize("variant", ["si", "i"])
@pytest.mark.parametrize("seed", range(6))
def test_without_mixing_every_class_is_in_one_task(variant, seed):
    source = shuffled_source()
    p = cut(source, seed, variant=variant, mix=0)
    found = _tasks_of(source, p)
    assert all(len(tasks) == 1 for tasks in found.values()) and len(found) == 10
    for t, idx in enumerate(p.train):
        own = set(p.disjoint_classes[t]) | set(p.blurry_classes[t])
        assert set(source.train_y[idx].tolist()) == own
    assert len(p.pooled) == 0


@pytest.mark.parametrize("mix", [0, 1, 10, 33, 100])
def test_mixing_takes_m_percent_of_the_blurry_class_examples(mix):
    source = shuffled_source(sizes=[7 + c for c in range(10)])
    for seed in range(5):
        p = cut(source, seed, mix=mix)
        blurry_classes = {c for group in p.blurry_classes for c in group}
        in_blurry = int(torch.isin(source.train_y, torch.tensor(sorted(blurry_classes))).sum())
        # Si-Blurry: M% of all blurry-class examples, rounded down, shared out at random cut points
        asked = give_up_counts(members(source.train_y, p.blurry_classes), mix, "si", gen(seed + 100))
        assert sum(asked) == in_blurry * mix // 100
        # ... of which a task gives what it has: never more, and only blurry-class examples
        assert len(p.pooled) <= in_blurry * mix // 100
        assert set(source.train_y[p.pooled].tolist()) <= blurry_classes
        # i-Blurry: M% of each task's own blurry-class examples, rounded down
        q = cut(source, seed, mix=mix, variant="i")
        own = members(source.train_y, q.blurry_classes)
        assert len(q.pooled) == sum(len(b) * mix // 100 for b in own)
        assert set(source.train_y[q.pooled].tolist()) <= {c for group in q.blurry_classes for c in group}


def test_examples_away_from_their_task_are_pooled_blurry_examples():
    source = shuffled_source()
    for seed in range(6):
        p = cut(source, seed, mix=40)
        pooled = set(p.pooled.tolist())
        for t, idx in enumerate(p.train):
            home = set(p.disjoint_classes[t]) | set(p.blurry_classes[t])
            away = [i for i in idx.tolist() if int(source.train_y[i]) not in home]
            assert set(away) <= pooled


def test_same_seed_same_stream_other_seed_other_stream():
    source = shuffled_source()
    bench = get_benchmark("si-blurry-mnist")

    def tasks(seed: int, **kwargs):
        stream = build_stream(bench, source, seed=seed, **kwargs)
        return [(t.classes, t.train_idx.tolist(), t.test_idx.tolist()) for t in stream.tasks]

    assert tasks(3) == tasks(3)
    assert tasks(3) != tasks(4)
    assert tasks(3, blurry_variant="i") == tasks(3, blurry_variant="i") != tasks(3)
    assert tasks(3, blurry_mix=20) != tasks(3)


def test_si_blurry_task_sizes_vary_and_i_blurry_sizes_are_equal():
    source = shuffled_source(num_classes=20)
    class_counts, sizes = set(), set()
    for seed in range(10):
        p = cut(source, seed, variant="si", mix=0)
        class_counts.add(tuple(len(d) + len(b) for d, b in zip(p.disjoint_classes, p.blurry_classes)))
        sizes.add(tuple(len(t) for t in p.train))
        q = cut(source, seed, variant="i", mix=0)
        assert [len(d) for d in q.disjoint_classes] == [2] * 5 and [len(b) for b in q.blurry_classes] == [2] * 5
        assert [len(t) for t in q.train] == [4 * 20] * 5
    assert len(class_counts) > 5 and len(sizes) > 5
    assert all(len(set(counts)) > 1 for counts in class_counts)  # never all tasks alike
    assert any(0 in counts for counts in class_counts)  # and sometimes a task without a class


def test_the_last_task_has_a_class_of_each_group():
    """Cut points are drawn from 0..n-1, as the reference's ``randint(0, n)``: the last slice is never empty."""
    source = shuffled_source()
    for seed in range(20):
        p = cut(source, seed, mix=0)
        assert p.disjoint_classes[-1] and p.blurry_classes[-1]


# -- hand-computed pieces ---------------------------------------------------------------------------

def test_cut_points_by_hand():
    assert equal_cuts(10, 5) == [0, 2, 4, 6, 8, 10]
    assert equal_cuts(7, 3) == [0, 2, 4, 7]  # the rest goes to the last task
    assert random_cuts(0, 3, gen(0)) == [0, 0, 0, 0]
    g, h = gen(5), gen(5)
    expected = [0, *sorted(torch.randint(0, 9, (3,), generator=h).tolist()), 9]
    assert random_cuts(9, 4, g) == expected


def test_mixing_by_hand():
    blurry_idx = [torch.tensor([10, 11, 12]), torch.tensor([20, 21]), torch.tensor([30])]
    # Si-Blurry: shares 2, 0, 3; task 3 holds only one blurry example, so the pool is 10, 11, 30
    kept, pool = mix_blurry(blurry_idx, [2, 0, 3], [2, 0, 3], torch.tensor([2, 0, 1]))
    assert pool.tolist() == [30, 10, 11]
    assert [k.tolist() for k in kept] == [[12, 30, 10], [20, 21], [11]]  # the last task gets what is left
    # i-Blurry: equal shares of the pool, the rest to the last task
    kept, pool = mix_blurry(blurry_idx, [1, 1, 0], None, torch.tensor([1, 0]))
    assert pool.tolist() == [20, 10]
    assert [k.tolist() for k in kept] == [[11, 12], [21], [30, 20, 10]]


# -- against an independent version ----------------------------------------------------------------

def reference_like(labels: list[int], num_classes: int, T: int, N: int, M: int, variant: str,
                   g: torch.Generator) -> list[list[int]]:
    """The stream written out from the description of the reference's ``OnlineSampler``, in
    plain Python lists, example by example (with the library's decisions where the reference
    drops classes or examples: the last task gets them)."""
    order = torch.randperm(num_classes, generator=g).tolist()
    nd = (num_classes * N // 100) // T * T
    groups = []
    for part in (order[:nd], order[nd:]):
        n = len(part)
        if variant == "i":
            bounds = [n // T * t for t in range(T)] + [n]
        elif n:
            bounds = [0] + sorted(torch.randint(0, n, (T - 1,), generator=g).tolist()) + [n]
        else:
            bounds = [0] * (T + 1)
        groups.append([part[bounds[t]:bounds[t + 1]] for t in range(T)])
    task_of = {c: (t, kind) for kind, g_ in enumerate(groups) for t, cs in enumerate(g_) for c in cs}
    dis: list[list[int]] = [[] for _ in range(T)]
    blu: list[list[int]] = [[] for _ in range(T)]
    for i, y in enumerate(labels):
        t, kind = task_of[y]
        (blu if kind else dis)[t].append(i)
    if variant == "i":
        share = [len(b) * M // 100 for b in blu]
    else:
        total = sum(len(b) for b in blu) * M // 100
        if total:
            bounds = [0] + sorted(torch.randint(0, total, (T - 1,), generator=g).tolist()) + [total]
        else:
            bounds = [0] * (T + 1)
        share = [bounds[t + 1] - bounds[t] for t in range(T)]
    pool: list[int] = []
    for t in range(T):
        pool += blu[t][:share[t]]
        blu[t] = blu[t][share[t]:]
    if variant == "i" or sum(share):
        pool = [pool[j] for j in torch.randperm(len(pool), generator=g).tolist()]
    if variant == "i":
        back = [len(pool) // T] * (T - 1) + [len(pool) - len(pool) // T * (T - 1)]
    else:
        back = share
    for t in range(T):
        blu[t] += pool[:back[t]]
        pool = pool[back[t]:]
    out = []
    for t in range(T):
        both = dis[t] + blu[t]
        out.append([both[j] for j in torch.randperm(len(both), generator=g).tolist()])
    return out


@pytest.mark.parametrize("variant", ["si", "i"])
@pytest.mark.parametrize("N,M,T", [(50, 10, 5), (0, 100, 3), (100, 0, 5), (30, 50, 4), (50, 25, 1), (70, 5, 7)])
def test_the_stream_equals_an_independent_version(variant, N, M, T):
    source = shuffled_source(num_classes=10, sizes=[4 + 2 * c for c in range(10)], seed=2)
    labels = source.train_y.tolist()
    for seed in range(5):
        expected = reference_like(labels, 10, T, N, M, variant, gen(seed))
        got = cut(source, seed, tasks=T, disjoint=N, mix=M, variant=variant)
        assert [t.tolist() for t in got.train] == expected


# -- tasks of the stream, the loop, evaluation, memories, metrics ----------------------------------

def _seed_with_empty_task(source: Source, **kwargs) -> int:
    for seed in range(100):
        if any(len(t) == 0 for t in cut(source, seed, **kwargs).train):
            return seed
    raise AssertionError("no seed gives an empty task")


def test_tasks_hold_the_classes_of_their_examples_and_their_test_sets():
    source = shuffled_source()
    stream = blurry(source, 5, gen(1), mix=50)
    assert stream.scenario == "blurry"
    for i, task in enumerate(stream.tasks):
        assert task.index == i
        assert task.classes == tuple(sorted(set(source.train_y[task.train_idx].tolist())))
        assert set(source.test_y[task.test_idx].tolist()) == set(task.classes)
        assert len(task.test_idx) == 3 * len(task.classes)
    repeated = [c for c in range(10) if sum(c in t.classes for t in stream.tasks) > 1]
    assert repeated  # with M = 50 blurry classes appear in several tasks


def test_empty_tasks_are_dropped_and_the_number_asked_for_is_recorded():
    source = shuffled_source()
    seed = _seed_with_empty_task(source, mix=0)
    p = cut(source, seed, mix=0)
    stream = blurry(source, 5, gen(seed), mix=0)
    assert stream.num_tasks == sum(len(t) > 0 for t in p.train) < 5
    assert [t.index for t in stream.tasks] == list(range(stream.num_tasks))
    assert [t.train_idx.tolist() for t in stream.tasks] == [t.tolist() for t in p.train if len(t)]
    assert stream.settings == {"num_tasks": 5, "blurry_disjoint": 50, "blurry_mix": 0, "blurry_variant": "si"}
    assert stream.to("cpu").settings == stream.settings


@pytest.mark.parametrize("method", ["er", "agem", "icarl", "lwf", "derpp"])
def test_the_loop_evaluation_memories_and_metrics_on_shared_classes(method):
    source = shuffled_source(num_classes=6, per_class=30, per_class_test=10)
    seed = _seed_with_empty_task(source, tasks=4, mix=0)  # one task dropped ...
    stream = blurry(source, 4, gen(seed), mix=0)
    assert stream.num_tasks < 4
    mixed = blurry(source, 3, gen(0), mix=60)  # ... and classes shared between tasks
    assert any(len(set(a.classes) & set(b.classes)) for a in mixed.tasks for b in mixed.tasks if a is not b)
    for s in (stream, mixed):
        torch.manual_seed(0)
        model = build_backbone("mlp", (1, 8, 8), 6)
        result = train(s, model, build_recipe(method), SGD(model.parameters(), lr=0.1), seed=0, epochs=2,
                       batch_size=10, buffer_size=30)
        T = s.num_tasks
        assert result.status == "complete" and len(result.class_il) == T
        for R in (result.class_il, result.task_il):
            assert all(len(row) == T and all(0 <= a <= 100 for a in row) for row in R)
        # task-IL masks to the task's classes, so it is never below class-IL
        assert all(ti >= ci for rc, rt in zip(result.class_il, result.task_il) for ci, ti in zip(rc, rt))
        for R, b in ((result.class_il, result.init_class_il), (result.task_il, result.init_task_il)):
            summary = summarize(R, b)
            assert all(v is None or math.isfinite(v) for v in summary.values())


def test_a_task_without_test_examples_is_refused():
    source = shuffled_source()
    keep = source.test_y == 0  # only one class is tested: the tasks without it have no test set
    source.test_x, source.test_y = source.test_x[keep], source.test_y[keep]
    with pytest.raises(ConfigError, match=r"task \d \(classes \[[1-9, ]+\]\) has no test examples in toy"):
        blurry(source, 5, gen(0), mix=0)


# -- run settings and the command line -------------------------------------------------------------

def test_settings_are_checked_and_given_to_the_stream():
    from lifelong.config import BLURRY_KEYS, UNSET_LEFT_OUT
    from lifelong.data.blurry import DEFAULTS

    assert set(DEFAULTS) == set(BLURRY_KEYS) and set(BLURRY_KEYS) <= set(UNSET_LEFT_OUT)
    source = shuffled_source()
    bench = get_benchmark("si-blurry-mnist")
    stream = build_stream(bench, source, seed=0, blurry_disjoint=20, blurry_mix=0, blurry_variant="i")
    assert stream.settings == {"num_tasks": 5, "blurry_disjoint": 20, "blurry_mix": 0, "blurry_variant": "i"}
    assert stream.name == "si-blurry-mnist"
    for kwargs, message in (
        (dict(blurry_disjoint=101), r"`blurry-disjoint` is a percentage: an integer in 0..100, got 101"),
        (dict(blurry_mix=-1), r"`blurry-mix` is a percentage: an integer in 0..100, got -1"),
        (dict(blurry_variant="x"), r"`blurry-variant` must be 'si' .* or 'i' .*, got 'x'"),
        (dict(num_tasks=11), r"a blurry stream of 10 classes has 1..10 tasks, got 11"),
        (dict(shuffle_classes=True), r"`shuffle-classes` does not apply to si-blurry-mnist"),
    ):
        with pytest.raises(ConfigError, match=message):
            build_stream(bench, source, seed=0, **kwargs)
    with pytest.raises(ConfigError, match=r"`blurry-mix` applies to the blurry benchmarks \(si-blurry-mnist, "):
        build_stream(get_benchmark("split-mnist"), source, seed=0, blurry_mix=10)


@pytest.mark.parametrize("args,message", [
    (["--blurry-disjoint", "101"], "`blurry-disjoint` is a percentage: an integer in 0..100, got 101"),
    (["--blurry-mix", "-5"], "`blurry-mix` is a percentage: an integer in 0..100, got -5"),
    (["--blurry-variant", "x"], "`blurry-variant` must be 'si'"),
    (["--num-tasks", "11"], "a blurry stream of 10 classes has 1..10 tasks, got 11"),
    (["--benchmark", "split-mnist", "--blurry-mix", "5"], "`blurry-mix` applies to the blurry benchmarks"),
    (["--benchmark", "split-mnist", "--blurry-variant", "i"], "`blurry-variant` applies to the blurry benchmarks"),
    (["--shuffle-classes"], "`shuffle-classes` does not apply to si-blurry-mnist"),
    (["--blurry-mix", "ten"], "argument --blurry-mix: expected an integer, got 'ten'"),
])
def test_bad_settings_are_one_line_errors(args, message, capsys, tmp_path):
    code, out, err = run_cli(["run", "--benchmark", "si-blurry-mnist", *args, "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and err.startswith("lifelong: error: ") and message in err
    assert err.count("\n") == 1 and not (tmp_path / "r").exists()


@pytest.mark.parametrize("bench,classes", [("si-blurry-fashion-mnist", 10), ("si-blurry-cifar10", 10),
                                           ("si-blurry-cifar100", 100)])
@pytest.mark.parametrize("args,message", [
    (["--blurry-disjoint", "-1"], "`blurry-disjoint` is a percentage: an integer in 0..100, got -1"),
    (["--blurry-mix", "101"], "`blurry-mix` is a percentage: an integer in 0..100, got 101"),
    (["--num-tasks", "{T}"], "a blurry stream of {C} classes has 1..{C} tasks, got {T}"),
])
def test_bad_settings_are_refused_before_the_data_are_read(bench, classes, args, message, capsys, tmp_path):
    """The benchmarks that read files know their classes: no data folder is needed to refuse."""
    args = [a.format(T=classes + 1) for a in args]
    code, out, err = run_cli(["run", "--benchmark", bench, *args, "--data-root", str(tmp_path / "none"),
                              "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and message.format(C=classes, T=classes + 1) in err and err.count("\n") == 1, err


def test_a_registered_blurry_benchmark_with_too_many_tasks_is_one_line(capsys, tmp_path):
    from lifelong.data.benchmarks import BENCHMARKS

    own = tmp_path / "bench.py"
    own.write_text("import lifelong\nfrom tests.test_blurry import shuffled_source\n"
                   "lifelong.register_benchmark('toy-blurry-cli', shuffled_source(num_classes=4), num_tasks=2, "
                   "split='blurry')\n")
    try:
        for args, message in ((["--num-tasks", "5"], "a blurry stream of 4 classes has 1..4 tasks, got 5"),
                              (["--blurry-mix", "200"], "`blurry-mix` is a percentage: an integer in 0..100, got 200")):
            code, out, err = run_cli(["run", "--import", str(own), "--benchmark", "toy-blurry-cli", *args,
                                      "--out", str(tmp_path / "r")], capsys)
            assert code == 2 and message in err and err.count("\n") == 1, err
            assert not (tmp_path / "r").exists()
    finally:
        BENCHMARKS.pop("toy-blurry-cli", None)


def test_settings_in_yaml_and_their_type(capsys, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("benchmark: si-blurry-mnist\nblurry-disjoint: 30\nblurry_mix: 0\nblurry-variant: i\n")
    code, out, err = run_cli(["run", "--config", str(good), "--dry-run", "--out", str(tmp_path / "r")], capsys)
    assert code == 0, err
    assert "blurry_disjoint: 30" in out and "blurry_mix: 0" in out and "blurry_variant: i" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("benchmark: si-blurry-mnist\nblurry_mix: '10'\n")
    code, out, err = run_cli(["run", "--config", str(bad), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "`blurry_mix` must be an integer or null, got '10'" in err and err.count("\n") == 1


def test_settings_are_part_of_a_runs_identity(tmp_path):
    from lifelong.config import make_config
    from lifelong.runs.session import config_hash, resolve_config

    root = tmp_path / "data"
    write_fashion_mnist(root, per_class_train=3, per_class_test=1)

    def resolved(**values):
        return resolve_config(make_config({}, {"benchmark": "si-blurry-fashion-mnist", "data_root": str(root),
                                               "out": str(tmp_path / "r"), **values}))

    default = resolved()
    assert (default["blurry_disjoint"], default["blurry_mix"], default["blurry_variant"]) == (50, 10, "si")
    assert config_hash(resolved(blurry_disjoint=50, blurry_mix=10, blurry_variant="si")) == config_hash(default)
    for change in ({"blurry_mix": 20}, {"blurry_disjoint": 40}, {"blurry_variant": "i"}):
        assert config_hash(resolved(**change)) != config_hash(default)
    other = resolve_config(make_config({}, {"benchmark": "split-fashion-mnist", "data_root": str(root),
                                            "out": str(tmp_path / "r")}))
    assert not {"blurry_disjoint", "blurry_mix", "blurry_variant"} & set(other)  # other runs keep their identity


def test_si_blurry_mnist_end_to_end(capsys, tmp_path):
    """The bundled MNIST in 5 Si-Blurry tasks with ER: large batches keep it to a few seconds."""
    from lifelong.config import make_config
    from lifelong.runs.reuse import check_folder
    from lifelong.runs.session import resolve_config

    out = tmp_path / "run"
    code, stdout, err = run_cli(["run", "--benchmark", "si-blurry-mnist", "--method", "er", "--num-tasks", "5",
                                 "--batch-size", "500", "--buffer-size", "200", "--quiet", "--out", str(out)], capsys)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert m["complete"] and m["benchmark"] == "si-blurry-mnist" and m["num_tasks"] == len(config["task_classes"])
    assert config["num_tasks"] == 5 and config["scenario"] == "blurry"
    assert (config["blurry_disjoint"], config["blurry_mix"], config["blurry_variant"]) == (50, 10, "si")
    assert sorted({c for classes in config["task_classes"] for c in classes}) == list(range(10))
    assert m["class_il"]["average_accuracy"] > 50  # learns something
    assert "si-blurry-mnist | er | seed 0" in stdout
    # a command of many runs reuses this run for the same settings, and refuses it for others
    same = {"benchmark": "si-blurry-mnist", "method": "er", "num_tasks": 5, "batch_size": 500, "buffer_size": 200,
            "out": str(out)}
    assert check_folder(make_config({}, same), resolve_config).state == "complete"
    other = check_folder(make_config({}, {**same, "blurry_mix": 20}), resolve_config)
    assert other.state == "other" and other.other == "blurry_mix 10, not 20"


def test_a_blurry_run_resumed_from_its_folder_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    from lifelong.config import make_config
    from lifelong.runs.session import config_to_resume

    root = tmp_path / "data"
    write_fashion_mnist(root, per_class_train=12, per_class_test=3)

    def config(out):
        return make_config({}, {"benchmark": "si-blurry-fashion-mnist", "data_root": str(root), "out": str(out),
                                "method": "derpp", "batch_size": 4, "buffer_size": 20, "checkpoint_every": 3,
                                "blurry_mix": 30, "seed": 1})

    whole, resumed = crash_then_resume(config, tmp_path, monkeypatch, 17,
                                       resume_config=config_to_resume)  # as --resume does
    volatile = {"wall_seconds", "train_seconds", "peak_rss_mb", "peak_cuda_mb", "command", "versions"}
    assert whole["complete"] and resumed["complete"]
    for doc in (whole, resumed):  # a blurry stream is evaluated anytime; its time is volatile like wall_seconds
        assert doc["online"].pop("eval_seconds") >= 0
    assert (tmp_path / "whole" / "anytime.csv").read_text() == (tmp_path / "cut" / "anytime.csv").read_text()
    assert {k: v for k, v in whole.items() if k not in volatile} == {k: v for k, v in resumed.items()
                                                                      if k not in volatile}


def test_a_registered_blurry_benchmark():
    import lifelong
    from lifelong.data.benchmarks import BENCHMARKS

    try:
        lifelong.register_benchmark("toy-blurry", shuffled_source(), num_tasks=3, split="blurry")
        stream = build_stream(BENCHMARKS["toy-blurry"], shuffled_source(), seed=0)
        assert stream.scenario == "blurry" and stream.settings["num_tasks"] == 3
        with pytest.raises(ConfigError, match="has 1..10 tasks, got 12"):
            build_stream(BENCHMARKS["toy-blurry"], shuffled_source(), seed=0, num_tasks=12)
    finally:
        BENCHMARKS.pop("toy-blurry", None)


@pytest.mark.parametrize("name", ["si-blurry-cifar10", "si-blurry-cifar100"])
def test_the_cifar_benchmarks_read_the_files_on_disk(name, tmp_path, capsys):
    import numpy as np

    from lifelong.data.cifar import write_cifar_batch

    def images(n):
        return np.random.default_rng(n).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)

    if name == "si-blurry-cifar10":
        folder = tmp_path / "cifar-10-batches-py"
        folder.mkdir()
        for i in range(1, 6):
            write_cifar_batch(folder / f"data_batch_{i}", images(10), list(range(10)))
        write_cifar_batch(folder / "test_batch", images(10), list(range(10)))
        classes = 10
    else:
        folder = tmp_path / "cifar-100-python"
        folder.mkdir()
        write_cifar_batch(folder / "train", images(300), [i % 100 for i in range(300)], label_key=b"fine_labels")
        write_cifar_batch(folder / "test", images(100), list(range(100)), label_key=b"fine_labels")
        classes = 100
    code, out, err = run_cli(["run", "--benchmark", name, "--data-root", str(tmp_path), "--dry-run",
                              "--out", str(tmp_path / "r")], capsys)
    assert code == 0, err
    resolved = yaml.safe_load(out)
    assert resolved["scenario"] == "blurry" and resolved["backbone"] == "resnet18" and resolved["num_tasks"] == 5
    assert {c for task in resolved["task_classes"] for c in task} == set(range(classes))


def test_list_names_the_blurry_benchmarks(capsys):
    code, out, _ = run_cli(["list"], capsys)
    assert code == 0
    for name in ("si-blurry-mnist", "si-blurry-fashion-mnist", "si-blurry-cifar10", "si-blurry-cifar100"):
        assert f"  {name} " in out
