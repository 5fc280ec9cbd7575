"""The run's optimisers: lifelong.SGD and lifelong.Adadelta against torch.optim's, Adadelta
against Zeiler's algorithm written out, their state through checkpoints, the run setting."""
import io
import math

import pytest
import torch
import yaml

from lifelong import hparams
from lifelong.catalog import settings_used
from lifelong.config import make_config
from lifelong.errors import ConfigError
from lifelong.optim import EPS, RHO, SGD, Adadelta
from lifelong.runs.session import config_to_resume
from tests.conftest import crash_then_resume, run_cli, same_weights, tiny_run_flags, write_fashion_mnist


@pytest.mark.parametrize("kwargs", [
    {}, {"momentum": 0.9}, {"weight_decay": 0.01}, {"momentum": 0.5, "weight_decay": 1e-3, "nesterov": True},
])
def test_same_updates_as_torch_sgd(kwargs):
    torch.manual_seed(0)
    ours = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    theirs = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    theirs.load_state_dict(ours.state_dict())
    a = SGD(ours.parameters(), lr=0.1, **kwargs)
    b = torch.optim.SGD(theirs.parameters(), lr=0.1, **kwargs)
    for step in range(5):
        x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
        for model, opt in ((ours, a), (theirs, b)):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_lr_is_read_from_param_groups_and_state_round_trips():
    w = torch.nn.Parameter(torch.ones(3))
    opt = SGD([w], lr=1.0, momentum=0.9)
    w.grad = torch.ones(3)
    opt.step()
    opt.param_groups[0]["lr"] = 0.0
    opt.step()
    assert torch.allclose(w, torch.zeros(3))
    other = SGD([torch.nn.Parameter(torch.ones(3))], lr=5.0, momentum=0.9)
    other.load_state_dict(opt.state_dict())
    assert other.param_groups[0]["lr"] == 0.0 and torch.allclose(other.momentum_buffers[0], torch.full((3,), 1.9))


# -- Adadelta (torch.optim.Adadelta's update; SHARP's optimiser) ---------------------------------

def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))


def _train(model, opt, steps: int, g: torch.Generator | None = None, skip_bias_at: int | None = None) -> None:
    g = g or torch.Generator().manual_seed(1)
    for step in range(steps):
        x, y = torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        if step == skip_bias_at:  # a parameter without a gradient at one step
            model[2].bias.grad = None
        opt.step()


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adadelta_same_updates_as_torch_over_20_steps(weight_decay):
    ours, theirs = _net(), _net()
    _train(ours, Adadelta(ours.parameters(), lr=1.0, weight_decay=weight_decay), 20, skip_bias_at=7)
    _train(theirs, torch.optim.Adadelta(theirs.parameters(), lr=1.0, weight_decay=weight_decay), 20, skip_bias_at=7)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert torch.allclose(p, q, rtol=0, atol=1e-7)
    assert not torch.allclose(ours[0].weight, _net()[0].weight)  # it trained


def _by_hand(theta: float, grads: list[float], lr: float, wd: float, variant: str = "") -> float:
    """Zeiler 2012, Algorithm 1 with torch's lr factor and L2 weight decay, on one number;
    ``variant`` is a plausible wrong one, to show that this check tells it apart."""
    v = u = 0.0
    for grad in grads:
        g = grad + wd * theta
        keep, take = (1 - RHO, RHO) if variant == "rho-swapped" else (RHO, 1 - RHO)
        v = keep * v + take * g * g
        rms_v = math.sqrt(v) + EPS if variant == "eps-outside" else math.sqrt(v + EPS)
        d = math.sqrt(u + EPS) / rms_v * g
        u = RHO * u + (1 - RHO) * d * d
        theta -= lr * d
    return theta


def test_adadelta_two_steps_equal_the_hand_written_algorithm():
    start, grads = [0.5, -2.0, 0.0], [[0.3, -0.1], [2.0, 4.0], [-1e-3, 5e-3]]
    w = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    opt = Adadelta([w], lr=0.7, weight_decay=0.1)
    for k in range(2):
        w.grad = torch.tensor([g[k] for g in grads], dtype=torch.float64)
        opt.step()
    expected = [_by_hand(x, g, 0.7, 0.1) for x, g in zip(start, grads)]
    assert w.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-15)
    for variant in ("rho-swapped", "eps-outside"):  # the check tells the wrong variants apart: by
        wrong = [_by_hand(x, g, 0.7, 0.1, variant) for x, g in zip(start, grads)]  # 30% or more of a step
        assert max(abs(a - b) / abs(b - x) for a, b, x in zip(wrong, expected, start)) > 0.3, variant


def test_adadelta_lr_is_read_at_every_step_and_state_round_trips_exactly():
    whole, cut = _net(), _net()
    a = Adadelta(whole.parameters(), weight_decay=0.01)
    _train(whole, a, 6)
    b = Adadelta(cut.parameters(), weight_decay=0.01)
    g = torch.Generator().manual_seed(1)  # the batches `whole` was given, the first 3 then the next 3
    _train(cut, b, 3, g)
    buffer = io.BytesIO()
    torch.save(b.state_dict(), buffer)  # as a checkpoint: plain tensors, read back with weights_only
    again = Adadelta(cut.parameters(), lr=5.0)
    again.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    assert again.param_groups[0]["lr"] == 1.0 and again.param_groups[0]["weight_decay"] == 0.01
    _train(cut, again, 3, g)
    assert all(torch.equal(p, q) for p, q in zip(whole.parameters(), cut.parameters()))
    before = [p.clone() for p in cut.parameters()]
    again.param_groups[0]["lr"] = 0.0
    _train(cut, again, 1)
    assert all(torch.equal(p, q) for p, q in zip(before, cut.parameters()))


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_fashion_mnist(root)
    return root


def test_adadelta_run_resumed_mid_task_equals_the_uninterrupted_run(fashion, tmp_path, monkeypatch):
    def config(out):
        return make_config({}, {"benchmark": "split-fashion-mnist", "data_root": str(fashion), "out": str(out),
                                "method": "er", "batch_size": 4, "buffer_size": 20, "checkpoint_every": 2,
                                "threads": 1, "optimizer": "adadelta"})

    a, b = crash_then_resume(config, tmp_path, monkeypatch, 9, resume_config=config_to_resume)  # as --resume
    assert a["class_il"] == b["class_il"] and a["task_il"] == b["task_il"]
    assert same_weights(tmp_path / "whole", tmp_path / "cut")
    recorded = yaml.safe_load((tmp_path / "cut" / "config.yaml").read_text())
    assert recorded["optimizer"] == "adadelta" and recorded["lr"] == 1.0 and recorded["momentum"] == 0.0


def test_sgd_is_left_out_of_the_recorded_configuration():
    """Runs of the default optimiser keep the configuration, fingerprint and sweep folder names
    they had before the setting existed."""
    assert "optimizer" not in make_config({}, {}).to_dict()
    assert make_config({}, {"optimizer": "adadelta"}).to_dict()["optimizer"] == "adadelta"


def test_bad_optimizer_and_momentum_with_adadelta_are_one_line(fashion, capsys):
    code, _, err = run_cli(["run", "--optimizer", "adam", *tiny_run_flags(fashion), "--dry-run"], capsys)
    assert code == 2 and "unknown optimizer 'adam'; choose one of: sgd, adadelta" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["run", "--optimizer", "adadelta", "--momentum", "0.9", *tiny_run_flags(fashion),
                            "--dry-run"], capsys)
    assert code == 2 and "`momentum` is SGD's; Adadelta has none" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli(["run", "--optimizer", "adadelta", "--momentum", "0", *tiny_run_flags(fashion),
                              "--dry-run"], capsys)
    assert code == 0, err
    assert yaml.safe_load(out)["optimizer"] == "adadelta"


def test_published_settings_are_their_optimizers():
    # prd on Split-CIFAR-100 publishes SGD's lr 0.01, momentum 0.9, weight decay 1e-4 and batch 128
    sgd = make_config({}, {"benchmark": "split-cifar100", "method": "prd"})
    assert (sgd.optimizer, sgd.lr, sgd.momentum, sgd.weight_decay, sgd.batch_size) == ("sgd", 0.01, 0.9, 1e-4, 128)
    ada = make_config({}, {"benchmark": "split-cifar100", "method": "prd", "optimizer": "adadelta"})
    assert (ada.lr, ada.momentum, ada.weight_decay, ada.batch_size) == (1.0, 0.0, 0.0, 128)
    assert "not taken with adadelta" in ada.hparams_source
    with pytest.raises(ConfigError, match="Adadelta has none"):
        make_config({}, {"benchmark": "split-cifar100", "method": "prd", "optimizer": "adadelta", "momentum": 0.9})


def test_an_entry_may_set_the_optimizer(monkeypatch):
    entry = {"optimizer": "adadelta", "lr": 0.5, "batch_size": 256}
    monkeypatch.setattr(hparams, "lookup", lambda *args: (dict(entry), "hparams/split-mnist.yaml: er, 500"))
    c = make_config({}, {"method": "er"})
    assert (c.optimizer, c.lr, c.batch_size) == ("adadelta", 0.5, 256)
    assert "optimizer=adadelta, lr=0.5, batch_size=256" in settings_used("er", "split-mnist", 500)[0]
    sgd = make_config({}, {"method": "er", "optimizer": "sgd"})
    assert (sgd.optimizer, sgd.lr, sgd.batch_size) == ("sgd", 0.1, 256)
    assert "optimizer" in hparams.ENTRY_KEYS


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1, momentum=0.9), lambda ps: Adadelta(ps, lr=1.0)])
def test_reset_state_makes_the_next_step_a_fresh_optimisers(make):
    """SHARP builds a new optimiser for each phase (``Learner.learn_next_episode``); ``reset_state``
    is that: after it, a step equals the first step of a newly built optimiser."""
    torch.manual_seed(0)
    a = [torch.randn(5, 3, requires_grad=True)]
    b = [a[0].detach().clone().requires_grad_(True)]
    used, fresh = make(a), None
    for _ in range(3):
        a[0].grad = torch.randn(5, 3)
        used.step()
    used.reset_state()
    with torch.no_grad():
        b[0].copy_(a[0])
    fresh = make(b)
    g = torch.randn(5, 3)
    a[0].grad, b[0].grad = g.clone(), g.clone()
    used.step()
    fresh.step()
    assert torch.equal(a[0], b[0])
