"""Continual pre-training (lifelong.lm): token files, the offline corpora's stripping, random
windows and the replay mixer's exact fraction, the GPT (causal, tied, its loss by hand), the
learning-rate schedules against formulas written out here, efficient MER's Reptile step in the
reference's direction, the loss matrix's forgetting, resume equal to an uninterrupted run, and
``lifelong lm prepare``/``train`` with every bad input one line, exit 2. Tiny models and corpora
made in the test."""
from __future__ import annotations

import ast
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lifelong.cli import main
from lifelong.errors import ConfigError, DataError
from lifelong.lm.gere import GeneralReplay
from lifelong.lm.batches import ReplayMixer, check_replay, replayed_count, split_task, windows
from lifelong.lm.mer import EfficientMER
from lifelong.lm.recap import CorpusWeights, window_losses
from lifelong.lm.model import GPT, GPTConfig
from lifelong.lm.offline import docstrings, offline_corpus, strip_source
from lifelong.lm.run import prepare, resume_run, train_run
from lifelong.lm.schedules import Schedule, StreamLR, lr_at
from lifelong.lm.tokens import ByteTokenizer, dtype_for, open_corpus, read_documents, write_corpus
from lifelong.lm.train import LMConfig, LMTrainer, build_model
from lifelong.metrics import loss_backward_transfer, loss_forgetting
from tests.conftest import one_line_error

WORDS = "the cat sat on a mat while dogs ran over hills and rivers under grey skies".split()


def _prose(n_docs: int, seed: int, words: list[str] = WORDS) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(60)) + ".\n" for _ in range(n_docs)]


def _folder(root: Path, docs: list[str]) -> Path:
    root.mkdir(parents=True)
    for i, d in enumerate(docs):
        (root / f"doc{i:03d}.txt").write_text(d, encoding="utf-8")
    return root


def _corpus(tmp: Path, name: str, ids: np.ndarray, val: int) -> object:
    """A prepared corpus of given ids (the last ``val`` held out), header by hand."""
    ids.astype(np.uint16).tofile(tmp / f"{name}.bin")
    tok = ByteTokenizer()
    header = {"version": 1, "name": name, "tokenizer": {"kind": "byte", "vocab_size": 257, "digest": tok.digest},
              "dtype": "uint16", "train_tokens": len(ids) - val, "val_tokens": val, "documents": 2,
              "text_digest": ""}
    (tmp / f"{name}.json").write_text(json.dumps(header))
    return open_corpus(tmp, name)


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    a = _folder(tmp_path / "a", _prose(20, 0))
    b = _folder(tmp_path / "b", [f"def f{i}(x):\n    return x * {i} + 1\n" * 8 for i in range(20)])
    prepare([f"A={a}", f"B={b}"], tmp_path / "data")
    return tmp_path / "data"


TINY = dict(batch_size=4, block_size=8, n_layer=1, n_head=2, n_embd=16, eval_tokens=64, warmup=2)


# -- tokens ----------------------------------------------------------------------------------------

def test_byte_tokenizer_round_trip_and_end_of_text() -> None:
    tok = ByteTokenizer()
    assert tok.encode("aé") == [97, 0xC3, 0xA9] and tok.decode([97, 0xC3, 0xA9, 256]) == "aé"
    assert tok.vocab_size == 257 and tok.eot_id == 256


def test_corpus_file_header_split_and_memory_map(tmp_path: Path) -> None:
    docs = [f"doc {i}\n" for i in range(12)]
    header = write_corpus(tmp_path, "c", docs, ByteTokenizer())
    held = [docs[9]]  # every tenth document (index 9) is held out
    train = [d for i, d in enumerate(docs) if i != 9]
    expect_train = [b for d in train for b in list(d.encode()) + [256]]
    expect_val = [b for d in held for b in list(d.encode()) + [256]]
    c = open_corpus(tmp_path, "c")
    assert isinstance(c.data, np.memmap) and c.data.dtype == np.uint16
    assert c.train.tolist() == expect_train and c.val.tolist() == expect_val
    assert header["train_tokens"] == len(expect_train) and header["tokenizer"]["kind"] == "byte"
    assert dtype_for(2 ** 16) == np.uint16 and dtype_for(2 ** 16 + 1) == np.uint32


def test_truncated_token_file_is_refused(tmp_path: Path) -> None:
    write_corpus(tmp_path, "c", ["abc", "def"], ByteTokenizer())
    (tmp_path / "c.bin").write_bytes((tmp_path / "c.bin").read_bytes()[:-2])
    with pytest.raises(DataError, match="prepare the corpus again"):
        open_corpus(tmp_path, "c")


def test_non_text_and_empty_corpora_are_refused(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "x.dat").write_bytes(b"\xff\xfe\x00\x01")
    (tmp_path / "nul.txt").write_bytes(b"abc\x00def")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "blank.txt").write_text("  \n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_documents(tmp_path / "bin")
    with pytest.raises(DataError, match="NUL"):
        read_documents(tmp_path / "nul.txt")
    with pytest.raises(DataError, match="no text"):
        read_documents(tmp_path / "empty")


def test_bpe_trained_locally(tmp_path: Path) -> None:
    pytest.importorskip("tokenizers")
    src = _folder(tmp_path / "a", _prose(20, 1))
    headers = prepare([f"A={src}"], tmp_path / "data", tokenizer="bpe", vocab_size=300)
    tok_file = tmp_path / "data" / "tokenizer.json"
    assert tok_file.is_file() and headers[0]["tokenizer"]["kind"] == "bpe"
    assert 258 <= headers[0]["tokenizer"]["vocab_size"] <= 300
    from lifelong.lm.tokens import BPETokenizer
    tok = BPETokenizer.from_file(tok_file)
    text = "the cat sat on grey hills"
    assert tok.decode(tok.encode(text)) == text and len(tok.encode(text)) < len(text)
    again = prepare([f"A={src}"], tmp_path / "data2", tokenizer=str(tok_file))
    assert again[0]["tokenizer"] == headers[0]["tokenizer"]


# -- offline corpora ---------------------------------------------------------------------------------

SOURCE = '''"""Module doc."""
import os  # a comment
X = "# not a comment"


def f(a):
    """Only a docstring."""


class C:
    """Class doc."""
    # a whole-line comment
    def g(self):
        """g doc
        on two lines."""
        return 1  # trailing
'''


def test_strip_source_removes_docstrings_and_comments_only() -> None:
    out = strip_source(SOURCE)
    ast.parse(out)  # still Python
    assert "doc" not in out and "comment\n" not in out and "trailing" not in out
    assert '"# not a comment"' in out and "return 1\n" in out
    assert "def f(a):\n    pass" in out  # a body that was only its docstring
    assert docstrings(SOURCE) == ["Module doc.", "Only a docstring.", "Class doc.", "g doc\non two lines."]


def test_offline_corpora_from_a_source_tree(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(SOURCE)
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "skip.py").write_text('"""skipped test doc."""\n')
    code = offline_corpus("python", tmp_path)
    assert code == [strip_source(SOURCE)]
    prose = offline_corpus("prose", tmp_path)
    from pydoc_data.topics import topics
    assert prose[: len(topics)] == [topics[k] for k in sorted(topics)]
    assert prose[len(topics):] == docstrings(SOURCE)
    assert len(offline_corpus("prose", tmp_path, max_chars=1)) == 1
    with pytest.raises(ConfigError):
        offline_corpus("poetry", tmp_path)


# -- batches and replay ------------------------------------------------------------------------------

def test_windows_are_next_token_pairs() -> None:
    arr = np.arange(50, dtype=np.uint16)
    x, y = windows(arr, torch.tensor([3, 10]), 5)
    assert x.tolist() == [[3, 4, 5, 6, 7], [10, 11, 12, 13, 14]] and torch.equal(y, x + 1)


@pytest.mark.parametrize("ratio,batch", [(0.05, 8), (0.25, 16), (0.3, 3), (0.0, 4)])
def test_replay_fraction_is_exact_over_the_run(ratio: float, batch: int) -> None:
    steps = 400
    counts = [replayed_count(ratio, batch, s) for s in range(steps)]
    assert sum(counts) == math.floor(ratio * batch * steps)  # not round(r*B) per step (0 at 5% of 8)
    assert all(0 <= c <= math.ceil(ratio * batch) for c in counts)


def test_mixer_draws_replay_from_earlier_corpora_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    c0 = _corpus(tmp_path, "c0", rng.integers(0, 50, 400), 40)
    c1 = _corpus(tmp_path, "c1", rng.integers(100, 150, 400), 40)
    c2 = _corpus(tmp_path, "c2", rng.integers(200, 250, 400), 40)
    mixer = ReplayMixer([c0, c1, c2], 8, 6, 0.25, torch.Generator().manual_seed(0))
    x, y = mixer.batch(0, 0)
    assert (x < 50).all()
    seen_old = set()
    for s in range(40):
        x, _ = mixer.batch(2, s)
        old = (x < 200).all(dim=1)
        assert int(old.sum()) == 2 and old[:2].all()  # replayed windows first, 25% of 8
        seen_old.update((x[old] // 100).unique().tolist())
    assert seen_old == {0, 1}  # both earlier corpora


def test_joint_task_mixes_corpora_in_proportion_to_their_tokens(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    c0 = _corpus(tmp_path, "c0", rng.integers(0, 50, 340), 40)  # 300 training tokens
    c1 = _corpus(tmp_path, "c1", rng.integers(100, 150, 140), 40)  # 100
    c2 = _corpus(tmp_path, "c2", rng.integers(200, 250, 140), 40)
    assert split_task("A+B") == ["A", "B"] and split_task("A") == ["A"]
    mixer = ReplayMixer([c0, c1, c2], 16, 6, 0.25, torch.Generator().manual_seed(0), tasks=[[0, 1], [2]])
    x = torch.cat([mixer.batch(0, s)[0] for s in range(200)])
    from_c0 = (x < 50).all(dim=1).float().mean().item()
    assert from_c0 == pytest.approx(300 / 400, abs=0.02)  # 3:1 by training tokens, not 1:1 by corpus
    assert ((x < 50).all(dim=1) | ((x >= 100) & (x < 150)).all(dim=1)).all()  # a window is from one corpus
    assert mixer.earlier(0) == [] and mixer.earlier(1) == [0, 1]
    x2 = torch.cat([mixer.batch(1, s)[0] for s in range(40)])
    assert int((x2 < 200).all(dim=1).sum()) == 40 * 4  # 25% replay, from both joined corpora
    # a joint task after one of its members: the member is not replayed (it is trained on)
    after = ReplayMixer([c0, c1], 8, 6, 0.25, torch.Generator().manual_seed(0), tasks=[[0], [0, 1]])
    assert after.earlier(1) == []
    for bad in ("A+", "A++B", "A+A"):
        with pytest.raises(ConfigError, match=r"joined by \+"):
            split_task(bad)


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, "a", True])
def test_replay_ratio_outside_zero_one_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        check_replay(bad)


# -- model -------------------------------------------------------------------------------------------

def test_gpt_is_causal_tied_and_its_loss_is_cross_entropy() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=30, block_size=8, n_layer=2, n_head=2, n_embd=16))
    assert model.lm_head.weight is model.wte.weight
    idx = torch.randint(30, (2, 8))
    logits, loss = model(idx, idx)
    log_p = torch.log_softmax(logits, -1)
    by_hand = -sum(log_p[b, t, idx[b, t]] for b in range(2) for t in range(8)) / 16
    assert torch.allclose(loss, by_hand, atol=1e-6)
    changed = idx.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 30
    assert torch.allclose(model(changed)[0][:, :5], logits[:, :5], atol=1e-6)
    assert not torch.allclose(model(changed)[0][:, 5:], logits[:, 5:])
    with pytest.raises(ConfigError):
        GPTConfig(n_embd=10, n_head=3)


# -- schedules ---------------------------------------------------------------------------------------

def _cos(u: int, n: int, w: int, hi: float, lo: float) -> float:
    return lo + (hi - lo) * (1 + math.cos(math.pi * (u - w) / (n - w))) / 2


def test_rewarm_schedule_written_out() -> None:
    s = Schedule("rewarm", (10, 20), lr=1.0, min_lr=0.1, warmup=4)
    expect = [(u + 1) / 4 if u < 4 else _cos(u, 10, 4, 1, 0.1) for u in range(10)]
    expect += [0.1 + 0.9 * (u + 1) / 4 if u < 4 else _cos(u, 20, 4, 1, 0.1) for u in range(20)]
    assert [lr_at(i, s) for i in range(30)] == pytest.approx(expect)
    assert lr_at(10, s) == pytest.approx(0.1 + 0.9 / 4)  # re-warming starts at min_lr, not at 0


def test_cosine_constant_and_infinite_schedules_written_out() -> None:
    one = Schedule("cosine", (10, 10), 1.0, 0.1, warmup=2)
    assert [lr_at(i, one) for i in range(20)] == pytest.approx(
        [(i + 1) / 2 if i < 2 else _cos(i, 20, 2, 1, 0.1) for i in range(20)])
    const = Schedule("constant", (10, 10), 1.0, 0.1, warmup=2)
    assert [lr_at(i, const) for i in range(10, 20)] == pytest.approx([0.1] * 10)
    assert [lr_at(i, const) for i in range(10)] == pytest.approx([lr_at(i, Schedule("rewarm", (10, 10), 1.0, 0.1, 2))
                                                                  for i in range(10)])
    inf = Schedule("infinite", (10, 10), 1.0, 0.1, warmup=2, const_lr=0.5, cooldown=4, anneal=3)
    expect = [0.5, 1.0] + [0.5 + 0.25 * (1 + math.cos(math.pi * k / 4)) for k in range(4)] + [0.5] * 11 \
        + [0.5 - 0.4 * k / 3 for k in (1, 2, 3)]
    assert [lr_at(i, inf) for i in range(20)] == pytest.approx(expect)
    assert lr_at(25, inf) == pytest.approx(0.1)


@pytest.mark.parametrize("kwargs", [dict(kind="step"), dict(min_lr=2.0), dict(warmup=10), dict(steps=(5, 0)),
                                    dict(kind="infinite", const_lr=None), dict(kind="infinite", const_lr=0.5,
                                                                               cooldown=19)])
def test_bad_schedules_are_refused(kwargs: dict) -> None:
    base = dict(kind="rewarm", steps=(10, 10), lr=1.0, min_lr=0.1, warmup=2)
    with pytest.raises(ConfigError):
        Schedule(**{**base, **kwargs})


def test_scheduler_resumes_from_its_state_dict(tmp_path: Path) -> None:
    s = Schedule("rewarm", (6, 6), 1.0, 0.1, warmup=2)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = StreamLR(opt, s)
    seen = []
    for _ in range(12):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        if len(seen) == 5:
            torch.save(sched.state_dict(), tmp_path / "s.pt")
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched2 = StreamLR(opt2, s)
    sched2.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert [lr_at(i, s) for i in range(12)] == pytest.approx(seen)
    assert sched2.get_last_lr()[0] == pytest.approx(seen[5])
    with pytest.raises(ConfigError):
        StreamLR(opt2, Schedule("cosine", (6, 6), 1.0, 0.1, 2)).load_state_dict(sched.state_dict())


# -- efficient MER -----------------------------------------------------------------------------------

def test_mer_interpolates_towards_the_anchor_every_k_steps() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=4, n_layer=1, n_head=1, n_embd=8))
    mer = EfficientMER(k=3, beta=0.1)
    mer.start_corpus(model)
    anchor = {n: t.clone() for n, t in model.state_dict().items()}
    moved = {}
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.add_(1.0)
            moved[n] = p.clone()
    assert not mer.after_step(model, 1) and not mer.after_step(model, 2)
    assert all(torch.equal(p, moved[n]) for n, p in model.named_parameters())
    assert mer.after_step(model, 3)
    for n, p in model.named_parameters():  # anchor + beta (theta - anchor): 10% of the block kept
        assert torch.allclose(p, anchor[n] + 0.1 * (moved[n] - anchor[n]), atol=1e-6), n
    assert torch.allclose(model.wte.weight, anchor["wte.weight"] + 0.1)  # tied weight once, not beta**2
    assert all(torch.equal(mer.anchor[n], p) for n, p in model.named_parameters() if n in mer.anchor)
    assert mer.after_step(model, 0)  # the reference's test: global step % k == 0, step 0 included
    with pytest.raises(ConfigError):
        EfficientMER(k=0)
    with pytest.raises(ConfigError):
        EfficientMER(beta=0)


# -- metrics -----------------------------------------------------------------------------------------

def test_loss_forgetting_by_hand() -> None:
    L = [[2.0, 5.0, 6.0], [2.5, 3.0, 5.5], [3.0, 3.2, 2.0]]
    # corpus 0: best 2.0 (after 0), last 3.0 -> 1.0; corpus 1: best 3.0 (after 1), last 3.2 -> 0.2
    assert loss_forgetting(L) == pytest.approx((1.0 + 0.2) / 2)
    assert loss_backward_transfer(L) == pytest.approx(((3.0 - 2.0) + (3.2 - 3.0)) / 2)
    assert loss_forgetting([[2.0, 5.0], [1.5, 3.0]]) == pytest.approx(-0.5)  # a loss that fell: negative


# -- GeRe ------------------------------------------------------------------------------------------

def _tm_by_hand(h: np.ndarray, h0_all: np.ndarray, h0: np.ndarray) -> float:
    """GeRe's TM loss written out: per unit μ, σ (population) over every window and position of the
    recorded set; each entry's hinge by the band of its recorded value; sum / number non-zero."""
    d = h0_all.shape[-1]
    flat = h0_all.reshape(-1, d)
    total, nonzero = 0.0, 0
    for j in range(d):
        mu = flat[:, j].mean()
        sigma = math.sqrt((flat[:, j] ** 2).mean() - mu ** 2)
        pos, neg = mu + sigma, mu - sigma
        for now, then in zip(h[..., j].ravel(), h0[..., j].ravel()):
            if then >= pos:
                pen = max(pos - now, 0.0)
            elif then <= neg:
                pen = max(now - neg, 0.0)
            else:
                pen = max(now - pos, 0.0) + max(neg - now, 0.0)
            total += pen
            nonzero += pen != 0
    return total / nonzero


def test_gere_loss_is_the_references_sum_with_tm_by_hand(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    c0 = _corpus(tmp_path, "c0", rng.integers(0, 50, 400), 40)
    c1 = _corpus(tmp_path, "c1", rng.integers(100, 150, 400), 40)
    g = torch.Generator().manual_seed(0)
    mixer = ReplayMixer([c0, c1], 4, 6, 0.0, g)
    torch.manual_seed(0)
    model = GPT(GPTConfig(257, 6, 1, 2, 16, dropout=0.1))
    gere = GeneralReplay(3.0, 5, 4, g)
    assert gere.loss(model, torch.tensor(2.0)) == 2.0  # no set before a later corpus
    gere.fix(model, mixer, 0)
    assert gere.x is None
    gere.fix(model, mixer, 1)
    assert gere.x.shape == (5, 6) and (gere.x < 50).all()  # windows of the earlier corpus only
    model.eval()
    assert torch.allclose(gere.h0, model.hidden(gere.x))  # recorded in evaluation mode (no dropout)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    idx = torch.randint(5, (4,), generator=torch.Generator().set_state(g.get_state()))  # the draw loss() makes
    got = float(gere.loss(model, torch.tensor(2.0)).detach())
    with torch.no_grad():
        h = model.hidden(gere.x[idx])
        ce = float(F.cross_entropy(model.lm_head(h).reshape(-1, 257), gere.y[idx].reshape(-1)))
    tm = _tm_by_hand(h.double().numpy(), gere.h0.double().numpy(), gere.h0[idx].double().numpy())
    assert tm > 0.01
    assert got == pytest.approx((2.0 + ce) / 2 + 3.0 * tm, rel=1e-4)
    assert got != pytest.approx(2.0 + ce + 3.0 * tm, rel=1e-3)  # the reference averages the two losses


def test_gere_records_the_model_at_the_later_corpus_start(data: Path) -> None:
    corpora = [open_corpus(data, n) for n in ("A", "B")]
    cfg = LMConfig(stream=["A", "B"], steps=[6, 4], gere=1.0, gere_windows=4, gere_batch=2, dropout=0.1, **TINY)
    saved = {}
    trainer = LMTrainer(cfg, corpora, 257)
    trainer.run(save=lambda state, step: saved.setdefault(step, {k: v.clone() for k, v in state["model"].items()}), stop=lambda step: step == 7)
    model = build_model(cfg, 257)
    model.load_state_dict(saved[6])  # the weights at A's end
    model.eval()
    assert torch.allclose(trainer.gere.h0, model.hidden(trainer.gere.x), atol=1e-6)


def test_cli_gere_bad_weight_is_one_line(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["lm", "train", "--data", str(data), "--stream", "A,B", "--steps", "3", "--out", str(tmp_path / "g")]
    assert ">= 0" in one_line_error(capsys, base + ["--gere", "-1"])
    assert "gere_windows" in one_line_error(capsys, base + ["--gere", "1", "--gere-windows", "0"])


def _recap_lambdas_by_hand(hists: list[list[float]], w: int, t: float) -> list[float]:
    """RECAP's Eq. 1 written out: c = μ̃/μ, i = σ/(μ + μ̃), σ about the current window's mean."""
    scores = []
    for h in hists:
        old, cur = h[:w], h[w:]
        mu, mu_old = sum(cur) / w, sum(old) / w
        sigma = math.sqrt(sum((v - mu) ** 2 for v in h) / (2 * w - 1))
        scores.append(mu_old / mu + sigma / (mu + mu_old))
    e = [math.exp(s / t) for s in scores]
    return [len(e) * v / sum(e) for v in e]


def test_recap_weights_the_corpora_of_a_batch_by_hand() -> None:
    rec = CorpusWeights(3, 2, 0.5)
    src = torch.tensor([1, 0, 0, 0])  # one replayed window of corpus 1, three of corpus 0
    steps = [([4.0, 3.0, 3.2, 2.8], src), ([9.0, 9.0, 9.0, 9.0], torch.tensor([0, 0, 0, 0])),
             ([3.5, 2.9, 3.0, 3.1], src), ([3.4, 2.0, 2.2, 2.0], src)]
    seen: list[float] = []
    for values, sources in steps[:3]:  # warm-up: corpus 1 has fewer than 2W values, weights 1
        per_window = torch.tensor(values)
        seen.append(float(rec.loss(per_window, sources)))
        assert seen[-1] == pytest.approx(float(per_window.mean()))
    assert rec.counts == [3, 2, 0] and rec.last is None
    per_window = torch.tensor(steps[3][0])
    got = float(rec.loss(per_window, src))
    assert got == pytest.approx(float(per_window.mean()))  # corpus 1 has 3 values (absent from step 2)
    per_window = torch.tensor([3.0, 1.9, 2.1, 2.0])
    got = float(rec.loss(per_window, src))
    h0 = [9.0, (2.9 + 3.0 + 3.1) / 3, (2.0 + 2.2 + 2.0) / 3, (1.9 + 2.1 + 2.0) / 3]  # corpus 0's last 2W means
    h1 = [4.0, 3.5, 3.4, 3.0]
    lam = _recap_lambdas_by_hand([h0, h1], 2, 0.5)
    want = lam[0] * 0.75 * 2.0 + lam[1] * 0.25 * 3.0
    assert got == pytest.approx(want, rel=1e-5)
    assert rec.last == pytest.approx({0: lam[0], 1: lam[1]}, rel=1e-5)
    assert got != pytest.approx((lam[0] * 2.0 + lam[1] * 3.0) / 2, rel=1e-3)  # the paper's 1/K mean
    assert got != pytest.approx(float(per_window.mean()), rel=1e-3)


def test_window_losses_and_mixer_sources(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    c0 = _corpus(tmp_path, "c0", rng.integers(0, 50, 400), 40)
    c1 = _corpus(tmp_path, "c1", rng.integers(100, 150, 400), 40)
    mixer = ReplayMixer([c0, c1], 4, 6, 0.5, torch.Generator().manual_seed(0))
    x, y = mixer.batch(1, 0)
    assert mixer.sources.tolist() == [0, 0, 1, 1] and (x[:2] < 50).all() and (x[2:] >= 100).all()
    logits = torch.randn(4, 6, 257)
    each = window_losses(logits, y)
    assert torch.allclose(each[2], F.cross_entropy(logits[2], y[2])) and torch.allclose(
        each.mean(), F.cross_entropy(logits.reshape(-1, 257), y.reshape(-1)))


def test_recap_reweights_a_run_with_replay(data: Path) -> None:
    corpora = [open_corpus(data, n) for n in ("A", "B")]
    cfg = LMConfig(stream=["A", "B"], steps=[6, 6], replay=0.5, recap=2, **TINY)
    trainer = LMTrainer(cfg, corpora, 257)
    trainer.run()
    assert trainer.recap.counts == [12, 6] and set(trainer.recap.last) == {0, 1}
    assert sum(trainer.recap.last.values()) == pytest.approx(2.0) and trainer.recap.last[0] != pytest.approx(1.0)


def test_cli_recap_bad_values_are_one_line(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["lm", "train", "--data", str(data), "--stream", "A,B", "--steps", "3", "--out", str(tmp_path / "r")]
    assert ">= 0" in one_line_error(capsys, base + ["--recap", "-1"])
    assert "> 0" in one_line_error(capsys, base + ["--recap", "2", "--recap-temperature", "0"])


# -- loop, checkpoints, resume -----------------------------------------------------------------------

def test_training_lowers_the_loss_and_fills_the_matrix(data: Path) -> None:
    corpora = [open_corpus(data, n) for n in ("A", "B")]
    cfg = LMConfig(stream=["A", "B"], steps=[40], lr=3e-3, eval_every=20, **TINY)
    res = LMTrainer(cfg, corpora, 257).run()
    assert res.complete and len(res.loss_matrix) == 2 and all(len(r) == 2 for r in res.loss_matrix)
    assert res.loss_matrix[0][0] < res.init_losses[0] - 0.5 and res.loss_matrix[1][1] < res.init_losses[1] - 0.5
    assert [p["step"] for p in res.curve] == [20, 40, 60, 80] and res.curve[1]["losses"] == res.loss_matrix[0]
    assert res.tokens == 80 * 4 * 8


@pytest.mark.parametrize("recap", [0, 2])
@pytest.mark.parametrize("stop_at", [7, 10])  # mid-corpus, and at the corpus boundary
def test_resume_equals_uninterrupted(data: Path, tmp_path: Path, stop_at: int, recap: int) -> None:
    # with RECAP, A is replayed every other step, so its history at B's 2W-th step reaches back into A;
    # the curve holds the weights of the latest step (RECAP's λ, GeRe's w), restored from the checkpoint
    cfg = LMConfig(stream=["A", "B"], steps=[10, 6], replay=0.125 if recap else 0.25, mer_k=3, mer_beta=0.5,
                   eval_every=4, checkpoint_every=5, dropout=0.1, gere=2.0, gere_windows=6, gere_batch=2,
                   gere_weighting="dynamic" if recap else "fixed", recap=recap, **TINY)
    whole = train_run(cfg, data, tmp_path / "whole")
    part = train_run(cfg, data, tmp_path / "part", stop=lambda step: step == stop_at)
    assert not part["complete"]
    again = resume_run(tmp_path / "part")
    assert again["complete"] and again["loss_matrix"] == whole["loss_matrix"] and again["curve"] == whole["curve"]
    a = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


# -- command line --------------------------------------------------------------------------------------



def test_cli_prepare_and_train_write_the_run_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = _folder(tmp_path / "a", _prose(20, 0))
    b = _folder(tmp_path / "b", _prose(20, 1, WORDS[::-1] + ["zebra", "quartz"]))
    assert main(["lm", "prepare", "--corpus", f"A={a}", "--corpus", f"B={b}", "--out", str(tmp_path / "d")]) == 0
    run = tmp_path / "run"
    argv = ["lm", "train", "--data", str(tmp_path / "d"), "--stream", "A,B", "--steps", "6,4", "--out", str(run),
            "--batch-size", "4", "--block-size", "8", "--n-layer", "1", "--n-embd", "16", "--eval-tokens", "64",
            "--warmup", "1", "--replay", "0.25", "--schedule", "constant", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "after B" in out and "forgetting" in out
    doc = json.loads((run / "metrics.json").read_text())
    assert doc["kind"] == "lm" and doc["complete"] and len(doc["loss_matrix"]) == 2 and doc["tokens"] == 10 * 32
    assert doc["metrics"]["forgetting"] == pytest.approx(loss_forgetting(doc["loss_matrix"]))
    rows = (run / "loss_matrix.csv").read_text().splitlines()
    assert rows[0] == "after,A,B" and [r.split(",")[0] for r in rows[1:]] == ["init", "A", "B"]
    assert (run / "config.yaml").is_file() and (run / "model.pt").is_file()
    one_line_error(capsys, argv)  # the folder holds a run: --overwrite or another --out
    assert main(["lm", "train", "--resume", "--out", str(run), "--quiet"]) == 0  # complete: nothing more
    capsys.readouterr()


def test_cli_joint_baseline_is_one_task_on_the_union(data: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "joint"
    argv = ["lm", "train", "--data", str(data), "--stream", "A+B", "--steps", "8", "--batch-size", "4",
            "--block-size", "8", "--n-layer", "1", "--n-embd", "16", "--eval-tokens", "64", "--warmup", "1",
            "--out", str(run)]
    assert main(argv) == 0
    assert "after A+B" in capsys.readouterr().out
    doc = json.loads((run / "metrics.json").read_text())
    assert doc["corpora"] == ["A", "B"] and doc["stream"] == ["A+B"] and doc["tokens"] == 8 * 32
    assert len(doc["loss_matrix"]) == 1 and len(doc["loss_matrix"][0]) == 2  # one row, a column per corpus
    assert doc["metrics"]["forgetting"] is None
    assert doc["metrics"]["final_mean_loss"] == pytest.approx(sum(doc["loss_matrix"][0]) / 2)
    rows = (run / "loss_matrix.csv").read_text().splitlines()
    assert rows[0] == "after,A,B" and rows[2].startswith("A+B,")
    assert "joined by +" in one_line_error(capsys, argv[:5] + ["A+A"] + argv[6:-1] + [str(tmp_path / "bad")])


def test_cli_bad_inputs_one_line_exit_2(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    assert "no text" in one_line_error(capsys, ["lm", "prepare", "--corpus", f"E={tmp_path / 'empty'}", "--out",
                                        str(tmp_path / "x")])
    (tmp_path / "bad.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert "not" in one_line_error(capsys, ["lm", "prepare", "--corpus", f"P={tmp_path / 'bad.txt'}", "--out",
                                    str(tmp_path / "x")])
    one_line_error(capsys, ["lm", "prepare", "--corpus", "no-equals-sign", "--out", str(tmp_path / "x")])
    base = ["lm", "train", "--data", str(data), "--stream", "A,B", "--steps", "3", "--batch-size", "2",
            "--block-size", "8", "--n-layer", "1", "--n-embd", "16", "--eval-tokens", "32", "--warmup", "1",
            "--quiet"]
    for r in ("1", "1.0", "-0.5", "2"):
        assert "[0, 1)" in one_line_error(capsys, base + ["--replay", r, "--out", str(tmp_path / f"r{r}")])
    assert "no prepared corpus" in one_line_error(capsys, base[:5] + ["A,C"] + base[6:] + ["--out", str(tmp_path / "c")])
    one_line_error(capsys, base + ["--schedule", "linear", "--out", str(tmp_path / "s")])
    one_line_error(capsys, base[:7] + ["1,2,3"] + base[8:] + ["--out", str(tmp_path / "n")])
    one_line_error(capsys, ["lm", "train", "--stream", "A", "--out", str(tmp_path / "m")])
    # a tokenizer/vocabulary mismatch on resume: the data prepared again with another tokenizer
    run = tmp_path / "run"
    assert train_run(LMConfig(stream=["A", "B"], steps=[3], **TINY), data, run, stop=lambda s: s == 2)["complete"] \
        is False
    for name in ("A", "B"):
        head = json.loads((data / f"{name}.json").read_text())
        head["tokenizer"] = {"kind": "bpe", "vocab_size": 300, "digest": "0" * 64}
        (data / f"{name}.json").write_text(json.dumps(head))
    assert "tokenis" in one_line_error(capsys, ["lm", "train", "--resume", "--out", str(run)])
    assert "not a `lifelong lm train` run" in one_line_error(capsys, ["lm", "train", "--resume", "--out", str(tmp_path)])


def test_report_shows_an_lm_run(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    train_run(LMConfig(stream=["A"], steps=[3], **TINY), data, tmp_path / "run")  # more: tests/test_report_lm.py
    assert main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "rep")]) == 0
    assert "Language models" in capsys.readouterr().out


def test_held_out_loss_is_the_mean_over_consecutive_windows_of_the_held_out_part(tmp_path: Path) -> None:
    from lifelong.lm.train import held_out_loss

    rng = np.random.default_rng(1)
    c = _corpus(tmp_path, "c", rng.integers(0, 257, 300), 50)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=257, block_size=8, n_layer=1, n_head=1, n_embd=8))
    val = torch.from_numpy(np.asarray(c.data[250:], dtype=np.int64))
    losses = []
    for start in range(0, 41, 8):  # 40 usable tokens + the last target: windows at 0, 8, ..., 40
        x, y = val[start:start + 8], val[start + 1:start + 9]
        losses.append(F.cross_entropy(model(x[None])[0][0], y).item())
    assert held_out_loss(model, c, 8, max_tokens=1000, batch_size=2) == pytest.approx(sum(losses) / len(losses))
    assert held_out_loss(model, c, 8, max_tokens=16) == pytest.approx(sum(losses[:2]) / 2)


@pytest.mark.slow  # a whole process: its start dominates
def test_sigint_stops_with_a_checkpoint_and_says_how_to_resume(data: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "lifelong", "lm", "train", "--data", str(data), "--stream", "A,B",
                             "--steps", "100000", "--out", str(run), "--batch-size", "2", "--block-size", "8",
                             "--n-layer", "1", "--n-embd", "16", "--eval-tokens", "32"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(600):  # the first corpus has started once its line is printed
        if (run / "config.yaml").is_file():
            break
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume" in err, err
    assert list((run / "checkpoints").glob("ckpt-*.pt"))
    assert json.loads((run / "metrics.json").read_text())["complete"] is False


def test_bpe_without_the_package_and_a_one_document_corpus_are_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _folder(tmp_path / "a", _prose(3, 0))
    monkeypatch.setitem(__import__("sys").modules, "tokenizers", None)  # import fails as if not installed
    assert "pip install" in one_line_error(capsys, ["lm", "prepare", "--corpus", f"A={src}", "--tokenizer", "bpe",
                                            "--out", str(tmp_path / "x")])
    (tmp_path / "one.txt").write_text("a single document\n")
    assert "two or more" in one_line_error(capsys, ["lm", "prepare", "--corpus", f"A={tmp_path / 'one.txt'}", "--out",
                                            str(tmp_path / "y")])
