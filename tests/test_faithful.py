"""The presets compute what their papers and reference code compute (issue: faithful methods).

Each test states the source it follows and the wrong variant it catches."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from lifelong.config import make_config
from lifelong.data.streams import class_incremental
from lifelong.methods import build_recipe, recipe_from_spec
from lifelong.nets import CosineLinear, build_backbone, set_head
from lifelong.objective import SI, CrossEntropy, StepBatch
from lifelong.optim import SGD
from lifelong.plugins import ClipGrad, HeadWarmup
from lifelong.seeding import torch_generator
from lifelong.loop import TrainState, train
from tests.conftest import crash_then_resume, make_source, same_weights, write_fashion_mnist

g = torch.Generator().manual_seed(0)


def _stream(classes=6, tasks=3, per_class=20):
    return class_incremental(make_source(num_classes=classes, per_class_train=per_class), tasks)


class _Task:
    def __init__(self, index, classes):
        self.index, self.classes = index, classes


class _Stream:
    num_classes = 6


class _State:
    def __init__(self, task, model=None):
        self.task, self.stream, self.model = task, _Stream, model


# -- ER-ACE (Mammoth models/er_ace.py) -------------------------------------------------------

def _mammoth_ace(logits, labels, seen_so_far, current_task):
    """Mammoth's observe(), written out: mask[:, present] = 1; mask[:, max(seen):] = 1; from the
    second task on, logits where mask == 0 are set to -1e9."""
    present = labels.unique()
    seen = torch.cat([seen_so_far, present]).unique()
    mask = torch.zeros_like(logits)
    mask[:, present] = 1
    mask[:, seen.max():] = 1
    if current_task > 0:
        logits = logits.masked_fill(mask == 0, -1e9)
    return F.cross_entropy(logits, labels), seen


def test_er_ace_batch_mask_is_mammoths():
    """Catches: masking during the first task; masking only past classes (absent current-task
    classes must be hidden too); masking future classes; a mask that forgets earlier batches."""
    term = CrossEntropy(mask="batch")
    seen = torch.tensor([], dtype=torch.long)
    batches = [(0, [0, 0, 1]), (0, [1, 1, 1]), (1, [2, 2, 2]), (1, [3, 2, 3]), (2, [4, 4, 4])]
    last_task = -1
    for task, labels in batches:
        if task != last_task:
            term.begin_task(_State(_Task(task, (2 * task, 2 * task + 1))))
            last_task = task
        y = torch.tensor(labels)
        outputs = torch.randn(3, 6, generator=g, requires_grad=True)
        ours = term(StepBatch(None, task, torch.zeros(3, 2), y, [], outputs))
        theirs, seen = _mammoth_ace(outputs, y, seen, task)
        assert torch.allclose(ours, theirs, atol=1e-6), (task, labels)
        g1, = torch.autograd.grad(ours, outputs)
        g2, = torch.autograd.grad(theirs, outputs)
        assert torch.allclose(g1, g2, atol=1e-7)
    # batch (2, [4, 4, 4]): classes 0..3 hidden, 4 and 5 (>= the largest seen label) not
    assert torch.count_nonzero(g1[:, :4]) == 0 and torch.count_nonzero(g1[:, 4:]) == 6


def test_er_ace_preset_replays_from_the_second_task_with_separate_forwards_and_a_cosine_head():
    """Mammoth: `if self.current_task > 0` around the replay; a forward of its own for the buffer;
    CustomLinear classifier by default. Catches: replay during the first task."""
    recipe = build_recipe("er-ace")
    assert (recipe.replay_from, recipe.replay_forward, recipe.head) == (1, "separate", "cosine")
    stream = _stream()
    torch.manual_seed(0)
    model = set_head(build_backbone("mlp", (1, 8, 8), 6), recipe.head)
    sizes = []
    model.register_forward_hook(lambda m, args, out: sizes.append((m.training, len(args[0]))))
    result = train(stream, model, recipe, SGD(model.parameters(), lr=0.05), seed=0, batch_size=8, buffer_size=24,
                   replay_batch_size=5)
    assert result.status == "complete"
    train_sizes = [n for training, n in sizes if training]
    steps_per_task = math.ceil(40 / 8)
    assert train_sizes[:steps_per_task] == [8] * steps_per_task  # task 1: no replay forward
    assert train_sizes[steps_per_task:steps_per_task + 2] == [8, 5]  # then current, replay: separate


def test_er_ace_refuses_a_linear_model_through_the_api():
    recipe = build_recipe("er-ace")
    model = build_backbone("mlp", (1, 8, 8), 6)
    with pytest.raises(ValueError, match="set_head"):
        train(_stream(), model, recipe, SGD(model.parameters(), lr=0.05), seed=0, buffer_size=10)


def test_cosine_head_is_scaled_cosine_similarity_without_bias():
    head = CosineLinear(4, 3)
    x = torch.randn(5, 4, generator=g)
    manual = torch.stack([torch.stack([10 * torch.dot(xi, w) / ((xi.norm() + 1e-5) * (w.norm() + 1e-5))
                                       for w in head.weight]) for xi in x])
    assert torch.allclose(head(x), manual, atol=1e-5)
    assert [n for n, _ in head.named_parameters()] == ["weight"]
    model = set_head(build_backbone("mlp", (1, 8, 8), 3), "cosine")
    assert isinstance(model.classifier, CosineLinear) and model(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


# -- LwF (Li and Hoiem 2016; Mammoth models/lwf.py) -------------------------------------------

def test_lwf_cross_entropy_covers_the_classes_seen_so_far():
    """Mammoth: self.loss(outputs[:, :n_seen_classes], labels). Catches: CE over all classes
    (future classes pushed down) and a mask that hides the current task's classes."""
    term = CrossEntropy(mask="future")
    term.begin_task(_State(_Task(0, (0, 1))))
    term.begin_task(_State(_Task(1, (2, 3))))
    outputs = torch.randn(4, 6, generator=g, requires_grad=True)
    y = torch.tensor([2, 3, 3, 2])
    value = term(StepBatch(None, 1, torch.zeros(4, 2), y, [], outputs))
    assert torch.allclose(value, F.cross_entropy(outputs[:, :4], y), atol=1e-6)
    grad, = torch.autograd.grad(value, outputs)
    assert torch.count_nonzero(grad[:, 4:]) == 0 and torch.count_nonzero(grad[:, :4]) == 16


def test_lwf_preset_is_warmup_seen_class_ce_and_unscaled_kl():
    recipe = build_recipe("lwf")
    (w_ce, ce), (w_kd, kd) = recipe.objective.terms
    assert (ce.mask, w_kd, kd.temperature, kd.scale_by_t2) == ("future", 1.0, 2.0, False)
    assert [p.name for p in recipe.plugins] == ["head-warmup"]


def _warmup_state(model, stream, task_index, lr=0.1, batch_size=4, epochs=2, seed=3):
    opt = SGD(model.parameters(), lr=lr)
    return TrainState(model, opt, stream, None, None, batch_size, task=stream.tasks[task_index],
                      batch_size=batch_size, epochs=epochs, seed=seed)


def test_head_warmup_trains_only_the_new_classes_rows_as_a_hand_written_loop():
    """Mammoth's begin_task: SGD(classifier.parameters(), lr) over the task's data for n_epochs,
    features under no_grad, loss on outputs[:, past:seen] with labels shifted. Catches: features
    trained, old rows changed, loss over all classes, the warm-up on the first task."""
    stream = _stream()
    torch.manual_seed(1)
    model = build_backbone("mlp", (1, 8, 8), 6)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plugin = HeadWarmup()
    plugin.begin_task(_warmup_state(model, stream, 0))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # task 1: nothing

    reference = build_backbone("mlp", (1, 8, 8), 6)
    reference.load_state_dict(before)
    plugin.begin_task(_warmup_state(model, stream, 1))
    task = stream.tasks[1]
    order = torch_generator(3, "head-warmup:1")
    W, b = reference.classifier.weight, reference.classifier.bias
    for _ in range(2):
        perm = torch.randperm(task.num_train, generator=order)
        for start in range(0, task.num_train, 4):
            idx = task.train_idx[perm[start:start + 4]]
            with torch.no_grad():
                f = reference.features(stream.inputs("train", idx, 1))
            logits = f @ W[2:4].t() + b[2:4]
            loss = F.cross_entropy(logits, stream.labels("train", idx) - 2)
            gw, gb = torch.autograd.grad(loss, [W, b])
            with torch.no_grad():
                W -= 0.1 * gw
                b -= 0.1 * gb
    after = model.state_dict()
    for k, v in after.items():
        if k.startswith("classifier"):
            assert torch.allclose(v, reference.state_dict()[k], atol=1e-6), k
            rows = v[2:4] if v.dim() else v
            assert not torch.equal(rows, before[k][2:4])  # the new rows moved
            assert torch.equal(v[:2], before[k][:2]) and torch.equal(v[4:], before[k][4:])  # the others did not
        else:
            assert torch.equal(v, before[k]), k  # features frozen
    assert plugin.steps == 2 * math.ceil(task.num_train / 4)


def test_head_warmup_does_nothing_when_a_task_brings_no_new_classes():
    """Domain-incremental streams: every task has every class, there is no new head to warm up."""
    source = make_source(num_classes=4, per_class_train=10)
    stream = class_incremental(source, 1)
    stream.tasks = [stream.tasks[0], type(stream.tasks[0])(1, stream.tasks[0].classes, stream.tasks[0].train_idx,
                                                           stream.tasks[0].test_idx)]
    torch.manual_seed(1)
    model = build_backbone("mlp", (1, 8, 8), 4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plugin = HeadWarmup()
    for t in (0, 1):
        plugin.begin_task(_warmup_state(model, stream, t))
    assert plugin.steps == 0 and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# -- SI (Zenke et al. 2017, pathint/protocols.py; Mammoth models/si.py) ------------------------

def _si_setup(c=5.0, **si_kwargs):
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    si = SI(xi=0.5, **si_kwargs)
    recipe = recipe_from_spec({"terms": [{"term": "ce"}]})
    recipe.objective.terms.append((c, si))
    state = TrainState(model, SGD(model.parameters(), lr=0.3), None, recipe, None, 4, task=_Task(0, (0, 1, 2)))
    return model, si, recipe, state


def _si_steps(model, si, recipe, state, n, clip=None):
    """Run n steps as the loop does; return Σ −g_task·Δθ computed independently."""
    expected = [torch.zeros_like(p) for p in model.parameters()]
    for _ in range(n):
        x, y = torch.randn(6, 4, generator=g), torch.randint(0, 3, (6,), generator=g)
        before = [p.detach().clone() for p in model.parameters()]
        g_task = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
        batch = StepBatch(model, 0, x, y, [], model(x))
        state.optimizer.zero_grad()
        recipe.objective(batch).backward()
        si.after_backward(state, batch)
        if clip is not None:
            clip.after_backward(state, batch)
        state.optimizer.step()
        si.after_step(state, batch)
        for e, gt, b, p in zip(expected, g_task, before, model.parameters()):
            e -= gt * (p.detach() - b)
    return expected


def test_si_path_integral_uses_the_task_loss_gradient_and_accumulates_clamped_importance():
    """ω += −g_task·Δθ with g_task the gradient without the SI penalty (Zenke's unreg_grads;
    Mammoth's get_grads() before the penalty's are added); Ω ← relu(Ω + ω/(Δ²+ξ)).
    Catches: ω from the whole objective, Ω replaced instead of added, no relu, no ξ."""
    model, si, recipe, state = _si_setup()
    si.begin_task(state)
    start = [p.detach().clone() for p in model.parameters()]
    omega1 = [w / ((p.detach() - s) ** 2 + 0.5) for w, p, s in
              zip(_si_steps(model, si, recipe, state, 5), model.parameters(), start)]
    si.end_task(state)
    omega1 = [o.clamp_min(0) for o in omega1]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(si.penalty.omega, omega1))
    si.begin_task(state)
    start = [p.detach().clone() for p in model.parameters()]
    path2 = _si_steps(model, si, recipe, state, 5)  # the penalty is active now
    for a, b in zip(si.path, path2):
        assert torch.allclose(a, b, atol=1e-6)  # its gradient is left out of ω
    si.end_task(state)
    expected = [(o + w / ((p.detach() - s) ** 2 + 0.5)).clamp_min(0)
                for o, w, p, s in zip(omega1, path2, model.parameters(), start)]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(si.penalty.omega, expected))
    anchor = [p.detach() for p in model.parameters()]
    assert all(torch.equal(m, a) for m, a in zip(si.penalty.mean, anchor))
    si.penalty.omega = [torch.full_like(o, -1.0) for o in si.penalty.omega]  # the relu of Zenke et al.
    si.path = [torch.full_like(o, 0.25) for o in si.path]
    si.end_task(state)
    assert all(torch.equal(o, torch.zeros_like(o)) for o in si.penalty.omega)


def test_si_objective_gradient_option_and_no_clamp_option():
    """grad='objective' (Mammoth 2020) includes the penalty's gradient; nonnegative=False keeps
    negative Ω (Mammoth)."""
    model, si, recipe, state = _si_setup(grad="objective", nonnegative=False)
    si.begin_task(state)
    _si_steps(model, si, recipe, state, 3)
    si.end_task(state)
    si.begin_task(state)
    task_only = _si_steps(model, si, recipe, state, 3)
    assert any(not torch.allclose(a, b, atol=1e-6) for a, b in zip(si.path, task_only))
    si.penalty.omega = [torch.full_like(o, -1.0) for o in si.penalty.omega]
    si.path = [torch.zeros_like(o) for o in si.path]
    si.end_task(state)
    assert all((o < 0).all() for o in si.penalty.omega)


def test_si_records_its_gradient_before_the_clip_and_the_step_uses_the_clipped_one():
    """Mammoth: cur_small_omega = get_grads() (unclipped task gradient), then clip_grad_value_(…, 1)
    on the gradient the optimiser uses. Catches: ω from the clipped gradient, no clipping."""
    model, si, recipe, state = _si_setup(c=0.0)
    with torch.no_grad():
        model.weight.mul_(30)  # large logits: gradient entries well above 1
    si.begin_task(state)
    x, y = torch.randn(6, 4, generator=g) * 10, torch.randint(0, 3, (6,), generator=g)
    g_task = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    assert max(gt.abs().max() for gt in g_task) > 1
    before = [p.detach().clone() for p in model.parameters()]
    batch = StepBatch(model, 0, x, y, [], model(x))
    state.optimizer.zero_grad()
    recipe.objective(batch).backward()
    si.after_backward(state, batch)
    ClipGrad(value=1.0).after_backward(state, batch)
    state.optimizer.step()
    si.after_step(state, batch)
    for p, b, gt, w in zip(model.parameters(), before, g_task, si.path):
        assert torch.allclose(p.detach() - b, -0.3 * gt.clamp(-1, 1), atol=1e-6)
        assert torch.allclose(w, -gt * (p.detach() - b), atol=1e-5)
    assert [p.name for p in build_recipe("si").plugins] == ["clip-grad"]


# -- iCaRL (Rebuffi et al. 2017, Alg. 3; Mammoth models/icarl.py) ----------------------------

def test_icarl_mixes_the_exemplars_into_the_task_data():
    """Mammoth 2020 begin_task concatenates the buffer to the task's training set. Catches:
    every-step replay (the icarl-replay preset), exemplars left out."""
    stream = _stream()
    torch.manual_seed(0)
    model = build_backbone("mlp", (1, 8, 8), 6)
    recipe = build_recipe("icarl")
    assert recipe.objective.draws == 0 and [p.name for p in recipe.plugins] == ["mix-memory", "nme"]
    seen = []
    model.register_forward_hook(lambda m, args, out: seen.append(len(args[0])) if m.training else None)
    result = train(stream, model, recipe, SGD(model.parameters(), lr=0.05), seed=0, batch_size=8, buffer_size=12)
    assert result.status == "complete"
    # task 1: 40 examples; task 2: 40 + 12 exemplars; task 3: 40 + 12: batches of 8, last partial
    steps = [math.ceil(40 / 8)] + [math.ceil(52 / 8)] * 2
    batch_forwards = [n for n in seen if n <= 8]
    assert len(batch_forwards) >= sum(steps) and batch_forwards[5:12] == [8, 8, 8, 8, 8, 8, 4]


def test_mix_memory_training_set_holds_the_exemplars_with_their_own_task_ids():
    stream = _stream()
    torch.manual_seed(0)
    model = build_backbone("mlp", (1, 8, 8), 6)
    recipe = build_recipe("icarl")
    memory_box = {}

    class Spy:  # runs after mix-memory: sees the training set it made
        def training_set(self, state, task):
            memory_box[task.index] = (task, {k: v[: len(state.memory)].clone() for k, v in state.memory.fields.items()})
            return task

    recipe.plugins.append(Spy())
    train(stream, model, recipe, SGD(model.parameters(), lr=0.05), seed=0, batch_size=8, buffer_size=12)
    first, _ = memory_box[0]
    assert first.num_train == 40 and first.train_task is None
    mixed, fields = memory_box[2]
    assert mixed.num_train == 52
    assert torch.equal(mixed.train_idx[40:], fields["idx"]) and torch.equal(mixed.train_task[40:], fields["task"])
    assert torch.equal(stream.labels("train", mixed.train_idx[40:]), fields["y"])
    assert set(fields["y"].tolist()) == {0, 1, 2, 3} and (mixed.train_task[:40] == 2).all()


def test_mix_memory_needs_an_indexed_memory():
    from lifelong.errors import ConfigError
    with pytest.raises(ConfigError, match="needs `memory:` task-balanced, herding or first-task .a memory that keeps"):
        recipe_from_spec({"terms": [{"term": "ce"}], "memory": "reservoir", "plugins": [{"plugin": "mix-memory"}]})


# -- one forward or one per part --------------------------------------------------------------

class _BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU())
        self.classifier = nn.Linear(16, 6)

    def forward(self, x):
        return self.classifier(self.features(x))


def _run_forward(kind, make):
    spec = {"terms": [{"term": "ce"}, {"term": "logit-mse", "weight": 0.5}], "memory": "reservoir",
            "replay_forward": kind}
    torch.manual_seed(0)
    model = make()
    result = train(_stream(), model, recipe_from_spec(spec), SGD(model.parameters(), lr=0.05), seed=0,
                   batch_size=8, buffer_size=24)
    return result, model


def test_joint_and_separate_forwards_agree_without_batch_norm_and_differ_with_it():
    mlp = lambda: build_backbone("mlp", (1, 8, 8), 6)  # noqa: E731
    (a, ma), (b, mb) = _run_forward("joint", mlp), _run_forward("separate", mlp)
    assert a.class_il == b.class_il
    for p, q in zip(ma.state_dict().values(), mb.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-5)
    (_, mc), (_, md) = _run_forward("joint", _BNNet), _run_forward("separate", _BNNet)
    assert not torch.allclose(mc.features[2].running_mean, md.features[2].running_mean)


def test_batch_forward_splits_the_parts():
    model = nn.Linear(2, 2)
    calls = []
    model.register_forward_hook(lambda m, args, out: calls.append(len(args[0])))
    b = StepBatch(model, 0, torch.randn(7, 2), torch.zeros(3, dtype=torch.long),
                  [{"y": torch.zeros(2)}, {"y": torch.zeros(2)}], separate=True)
    out = b.forward()
    assert calls == [3, 2, 2] and torch.allclose(out, model(b.inputs))
    b.separate = False
    calls.clear()
    b.forward()
    assert calls == [7]


# -- term and plug-in state survives a resume -------------------------------------------------

@pytest.fixture(scope="module")
def fashion_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fashion")
    write_fashion_mnist(root, per_class_train=12, per_class_test=3)
    return root


@pytest.mark.parametrize("method, extra", [
    ("si", {}), ("lwf", {}), ("icarl", {}), ("ewc", {}), ("er-ace", {}),
    ("er", {"refresh": "code"}), ("mas", {}), ("derpp", {"refresh": "paper"})])
def test_resume_mid_task_equals_an_uninterrupted_run(method, extra, fashion_root, tmp_path, monkeypatch):
    """A crash in the third task (the terms hold state from two task ends: SI's Ω and path,
    LwF's teacher, iCaRL's teacher and exemplars, refresh's Fisher and noise generator)."""
    def config(out):
        return make_config({}, {"benchmark": "split-fashion-mnist", "data_root": str(fashion_root), "out": str(out),
                                "method": method, "batch_size": 4, "buffer_size": 10, "checkpoint_every": 2,
                                "threads": 1, "lr": 0.05, **extra})

    a, b = crash_then_resume(config, tmp_path, monkeypatch, 15)
    assert a["class_il"] == b["class_il"] and a["task_il"] == b["task_il"]
    assert same_weights(tmp_path / "whole", tmp_path / "cut")


# -- DER and DER++ (Buzzega et al. 2020; Mammoth models/der.py, derpp.py) ----------------------

def test_der_stores_the_logits_of_the_forward_before_the_update():
    """Mammoth: buffer.add_data(..., logits=outputs.data) with `outputs` the step's forward.
    Catches: softmax probabilities stored, logits taken after the update."""
    stream = _stream()
    torch.manual_seed(0)
    model = build_backbone("mlp", (1, 8, 8), 6)
    recipe = build_recipe("der")
    outputs = []
    model.register_forward_hook(lambda m, args, out: outputs.append((args[0].detach().clone(), out.detach().clone()))
                                if m.training else None)
    seen = {}

    class Spy:  # the memory after the first task's last step
        def end_task(self, state):
            if state.task.index == 0:
                n = len(state.memory)
                seen.update({k: v[:n].clone() for k, v in state.memory.fields.items()})

    recipe.plugins.append(Spy())
    train(stream, model, recipe, SGD(model.parameters(), lr=0.5), seed=0, batch_size=8, buffer_size=200,
          replay_batch_size=5)
    # buffer larger than the task: the first task's 40 examples are stored in order; the step's
    # own forwards are those of 8 examples (the replayed ones come in forwards of 5)
    first_task = [(x, out) for x, out in outputs if len(x) == 8][:5]
    x_all = torch.cat([x for x, _ in first_task])
    z_all = torch.cat([out for _, out in first_task])
    assert torch.equal(seen["x"], x_all) and torch.equal(seen["logits"], z_all)
    assert (seen["logits"].sum(1) - 1).abs().max() > 0.1  # logits, not probabilities


def test_derpp_draws_two_independent_samples_for_its_two_terms():
    """Mammoth derpp: two buffer.get_data calls. Catches: one draw shared by both terms."""
    recipe = build_recipe("derpp")
    (_, ce), (_, mse), (_, ce_replay) = recipe.objective.terms
    assert (mse.draw, ce_replay.draw, ce_replay.on, recipe.objective.draws) == (0, 1, "replay", 2)
    stream = _stream()
    torch.manual_seed(0)
    model = build_backbone("mlp", (1, 8, 8), 6)
    batches = []

    class Spy:
        def before_step(self, state, batch):
            batches.append(batch)

    recipe.plugins.append(Spy())
    train(stream, model, recipe, SGD(model.parameters(), lr=0.05), seed=0, batch_size=8, buffer_size=24,
          replay_batch_size=6)
    with_replay = [b for b in batches if b.replays]
    assert with_replay and all(len(b.replays) == 2 for b in with_replay)
    assert sum(not torch.equal(b.replays[0]["index"], b.replays[1]["index"]) for b in with_replay) > len(with_replay) // 2
    b = with_replay[-1]
    value = ce_replay(b)
    assert torch.allclose(value, F.cross_entropy(b.outputs[14:], b.replays[1]["y"]))
    assert torch.allclose(mse(b), F.mse_loss(b.outputs[8:14], b.replays[0]["logits"]))


# -- LwF distils the old classes only ----------------------------------------------------------

def test_lwf_distils_only_the_classes_of_past_tasks():
    """Li and Hoiem: the old task's outputs; Mammoth: logits[:, :n_past_classes]. Catches:
    distilling all classes (the current and future ones too)."""
    from lifelong.objective import Distillation

    stream = _stream()
    torch.manual_seed(0)
    model = build_backbone("mlp", (1, 8, 8), 6)
    term = Distillation(temperature=2.0)
    state = TrainState(model, None, stream, None, None, 8, task=stream.tasks[0])
    term.begin_task(state)
    term.end_task(state)  # teacher: the model after task 1 (classes 0, 1)
    state.task = stream.tasks[1]
    term.begin_task(state)
    teacher = build_backbone("mlp", (1, 8, 8), 6)
    teacher.load_state_dict(model.state_dict())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.2)
    x = stream.inputs("train", stream.tasks[1].train_idx[:8], 1)
    out = model(x)
    value = term(StepBatch(model, 1, x, torch.zeros(8, dtype=torch.long), [], out))
    p_old = F.softmax(teacher(x)[:, :2] / 2, 1)
    log_q = F.log_softmax(out[:, :2] / 2, 1)
    assert torch.allclose(value, (p_old * (p_old.log() - log_q)).sum(1).mean(), atol=1e-6)
