"""The loss weights of continual pre-training (lifelong.lm): GeRe's dynamic weight (the reference's
``'dy'``, ``Qznan/GeRe`` ``gere/gere_trainer.py``, ``compute_loss``) against the expression written
out here, and against its wrong variants (a weight that is not detached, the task's or the general
windows' cross-entropy instead of their mean); the term at ``L_TM = 0``; GeRe with ``--replay``
(the task loss is the whole mixed batch's) and with RECAP (its reweighted loss); the weights (RECAP's λ, GeRe's w) in the
curve; the bad settings through the CLI. Tiny models and corpora made in the test."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lifelong.errors import ConfigError
from lifelong.lm.batches import ReplayMixer
from lifelong.lm.gere import GeneralReplay
from lifelong.lm.model import GPT, GPTConfig
from lifelong.objective.threshold_margin import threshold_margin_loss
from lifelong.lm.recap import window_losses
from lifelong.lm.tokens import open_corpus
from lifelong.lm.train import LMConfig, LMTrainer
from tests.conftest import one_line_error
from tests.test_lm import TINY, _corpus, _tm_by_hand, data  # noqa: F401  (data: the fixture)


def _fixed_set(tmp_path: Path, weighting: str, weight: float = 2.0) -> tuple[GPT, GeneralReplay, torch.Generator]:
    """A GPT, and a GeRe set of 5 windows of corpus 0 recorded by it (evaluation mode)."""
    rng = np.random.default_rng(0)
    c0 = _corpus(tmp_path, "c0", rng.integers(0, 50, 400), 40)
    c1 = _corpus(tmp_path, "c1", rng.integers(100, 150, 400), 40)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = GPT(GPTConfig(257, 6, 1, 2, 16, dropout=0.0))
    gere = GeneralReplay(weight, 5, 4, g, weighting)
    gere.fix(model, ReplayMixer([c0, c1], 4, 6, 0.0, g), 1)
    return model, gere, g


def _grads(model: GPT, loss: torch.Tensor) -> list[torch.Tensor]:
    return [p.clone() for p in torch.autograd.grad(loss, [p for p in model.parameters()], allow_unused=False)]


def test_gere_dynamic_weight_against_the_reference_expression(tmp_path: Path) -> None:
    model, gere, g = _fixed_set(tmp_path, "dynamic")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    task_x = torch.randint(0, 257, (3, 6), generator=torch.Generator().manual_seed(1))
    task_y = torch.randint(0, 257, (3, 6), generator=torch.Generator().manual_seed(2))

    def parts() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The task loss (1 above the CE, so that it differs from the general CE), the general CE, h."""
        task_ce = model(task_x, task_y)[1] + 1.0
        h = model.hidden(gere.x[idx])
        general_ce = F.cross_entropy(model.lm_head(h).reshape(-1, 257), gere.y[idx].reshape(-1))
        return task_ce, general_ce, h, threshold_margin_loss(h, gere.h0[idx], gere.neg, gere.pos)

    idx = torch.randint(5, (4,), generator=torch.Generator().set_state(g.get_state()))  # the draw loss() makes
    got = gere.loss(model, model(task_x, task_y)[1] + 1.0)
    got_grads = _grads(model, got)

    # the reference written out: w = total_ce.item() / (margin.item() + 1e-8), total_ce the mean of the two
    task_ce, general_ce, h, tm = parts()
    tm_hand = _tm_by_hand(h.detach().double().numpy(), gere.h0.double().numpy(), gere.h0[idx].double().numpy())
    mean_ce = (task_ce + general_ce).item() / 2
    w = 2.0 * mean_ce / (tm_hand + 1e-8)
    # its gradient: that of CE + w·TM with w a constant (with w kept in the graph it is another, below)
    want = _grads(model, (task_ce + general_ce) / 2 + w * tm)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(got_grads, want))
    assert tm_hand > 0.01 and tm.item() == pytest.approx(tm_hand, rel=1e-4)
    assert gere.last_weight == pytest.approx(w, rel=1e-4)
    assert got.item() == pytest.approx(mean_ce + w * tm_hand, rel=1e-5)
    assert got.item() == pytest.approx(3.0 * mean_ce, rel=1e-5)  # the term is W times the CE
    assert abs(task_ce.item() - general_ce.item()) > 0.5
    for wrong in (task_ce.item(), general_ce.item()):  # w from the task's CE alone, or the general windows'
        assert got.item() != pytest.approx(mean_ce + 2.0 * wrong, rel=1e-3)

    task_ce, general_ce, _, tm = parts()
    mean = (task_ce + general_ce) / 2
    undetached = _grads(model, mean + 2.0 * mean / (tm + 1e-8) * tm)
    assert not all(torch.allclose(a, b, rtol=1e-2, atol=1e-4) for a, b in zip(got_grads, undetached))


def test_gere_dynamic_term_is_zero_when_every_entry_is_in_its_band(tmp_path: Path) -> None:
    model, gere, g = _fixed_set(tmp_path, "dynamic")  # no dropout: h equals the recorded h0
    task_ce = torch.tensor(2.0, requires_grad=True)
    idx = torch.randint(5, (4,), generator=torch.Generator().set_state(g.get_state()))  # the draw loss() makes
    got = gere.loss(model, task_ce)
    got.backward()
    with torch.no_grad():
        h = model.hidden(gere.x[idx])
        ce = F.cross_entropy(model.lm_head(h).reshape(-1, 257), gere.y[idx].reshape(-1))
    assert torch.isfinite(got) and got.item() == pytest.approx((2.0 + ce.item()) / 2, rel=1e-5)  # L = CE
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    assert gere.last_weight == pytest.approx(2.0 * got.item() / 1e-8, rel=1e-4)  # the reference's w, times 0


def test_gere_fixed_weight_is_unchanged_and_logged(tmp_path: Path) -> None:
    model, gere, _ = _fixed_set(tmp_path, "fixed", 3.0)
    gere.loss(model, torch.tensor(2.0))
    assert gere.last_weight == 3.0


@pytest.mark.parametrize("recap", [0, 1])
def test_gere_with_replay_takes_the_mixed_batch_as_the_task_loss(data: Path, recap: int,  # noqa: F811
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The task loss GeRe averages with the general CE is the whole batch's, replayed windows
    included, and with RECAP its reweighted Σ λ_j (n_j/B) L_j."""
    corpora = [open_corpus(data, n) for n in ("A", "B")]
    cfg = LMConfig(stream=["A", "B"], steps=[4, 3], replay=0.5, gere=1.0, gere_weighting="dynamic",
                   gere_windows=4, gere_batch=2, recap=recap, **TINY)
    trainer = LMTrainer(cfg, corpora, 257)
    seen: list[tuple[float, float]] = []
    drawn: list[tuple[torch.Tensor, torch.Tensor]] = []
    loss, batch = trainer.gere.loss, trainer.mixer.batch

    def keep(task: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        drawn.append(batch(task, step))
        return drawn[-1]

    def spy(model: GPT, task_ce: torch.Tensor) -> torch.Tensor:
        (x, y), src = drawn[-1], trainer.mixer.sources
        with torch.no_grad():
            per = window_losses(model(x)[0], y)
        want = per.mean()
        ready = recap and len(set(src.tolist())) > 1 and min(trainer.recap.counts) >= 2 * recap
        if ready:
            want = sum(trainer.recap.last[j] * (src == j).float().mean() * per[src == j].mean() for j in (0, 1))
        assert trainer.position.task == 0 or set(src.tolist()) == {0, 1}
        seen.append((task_ce.item(), float(want), ready))
        return loss(model, task_ce)
    monkeypatch.setattr(trainer.gere, "loss", spy)
    monkeypatch.setattr(trainer.mixer, "batch", keep)
    res = trainer.run()
    assert res.complete and len(seen) == 7 and all(a == pytest.approx(b, rel=1e-5) for a, b, _ in seen)
    assert sum(r for _, _, r in seen) == (2 if recap else 0)  # B's steps 2 and 3 reweighted
    assert trainer.gere.x is not None and trainer.gere.last_weight > 0


def test_recap_and_gere_weights_are_in_the_curve(data: Path) -> None:  # noqa: F811
    corpora = [open_corpus(data, n) for n in ("A", "B")]
    cfg = LMConfig(stream=["A", "B"], steps=[6, 6], replay=0.5, recap=2, gere=1.0, gere_weighting="dynamic",
                   gere_windows=4, gere_batch=2, eval_every=3, **TINY)
    trainer = LMTrainer(cfg, corpora, 257)
    res = trainer.run(stop=lambda step: step == 12)
    points = {p["step"]: p for p in res.curve}
    assert points[3]["recap_weights"] == [None, None] and points[3]["gere_weight"] is None  # A: one corpus
    assert points[12]["recap_weights"] == [trainer.recap.last[0], trainer.recap.last[1]]
    assert sum(points[12]["recap_weights"]) == pytest.approx(2.0) and points[12]["gere_weight"] > 0
    assert points[12]["gere_weight"] == trainer.gere.last_weight


def test_the_latest_weights_come_back_from_a_checkpoint(data: Path, tmp_path: Path) -> None:  # noqa: F811
    corpora = [open_corpus(data, n) for n in ("A", "B")]
    cfg = LMConfig(stream=["A", "B"], steps=[6, 6], replay=0.5, recap=2, gere=1.0, gere_weighting="dynamic",
                   gere_windows=4, gere_batch=2, **TINY)
    trainer = LMTrainer(cfg, corpora, 257)
    trainer.run(stop=lambda step: step == 11)
    torch.save(trainer.state_dict(), tmp_path / "state.pt")
    again = LMTrainer(cfg, corpora, 257)
    again.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert None not in trainer.recap.weights() and again.recap.weights() == trainer.recap.weights()
    assert again.weights() == trainer.weights() and again.gere.last_weight == trainer.gere.last_weight


def test_gere_weighting_settings_refused() -> None:
    with pytest.raises(ConfigError, match="needs --gere W > 0"):
        LMConfig(stream=["A", "B"], steps=[2], gere_weighting="dynamic")
    with pytest.raises(ConfigError, match="fixed, dynamic"):
        LMConfig(stream=["A", "B"], steps=[2], gere=1.0, gere_weighting="dy")


def test_cli_gere_weighting_mistakes_are_one_line(data: Path, tmp_path: Path,  # noqa: F811
                                                 capsys: pytest.CaptureFixture) -> None:
    base = ["lm", "train", "--data", str(data), "--stream", "A,B", "--steps", "3", "--out", str(tmp_path / "g")]
    assert "needs --gere W > 0" in one_line_error(capsys, base + ["--gere-weighting", "dynamic"])
    assert "fixed, dynamic" in one_line_error(capsys, base + ["--gere", "1", "--gere-weighting", "dy"])
