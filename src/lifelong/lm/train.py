"""The training loop of continual pre-training: corpora one after another, replay mixed into each
batch, a learning-rate schedule over the stream, efficient MER optionally, and the held-out loss
of every corpus measured every ``eval_every`` steps and at each corpus's end.

The loss matrix ``L[i][j]`` is the held-out loss (mean next-token cross-entropy, nats) on corpus
``j`` after training on corpora ``0..i``; every corpus of the stream is measured (the ones not yet
trained give forward transfer). :func:`lifelong.metrics.loss_forgetting` turns it into forgetting
(a loss rising is forgetting). The held-out windows are fixed (consecutive, non-overlapping, from
the start of the held-out part, up to ``eval_tokens`` tokens), so evaluation draws no random
numbers and a resumed run stays equal to an uninterrupted one.

A checkpoint (``checkpoint_every`` steps, and each corpus's end) holds the model, the optimiser,
the scheduler, MER's anchor, the position (corpus, step in it, global step), the batch generator's
and torch's random states and the results so far.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from lifelong.errors import ConfigError, DivergedError
from lifelong.lm.batches import ReplayMixer, check_replay, split_task, windows
from lifelong.lm.gere import GeneralReplay, check_gere
from lifelong.lm.hf import build_hf_model, check_model
from lifelong.lm.mer import EfficientMER
from lifelong.lm.recap import CorpusWeights, check_recap, window_losses
from lifelong.lm.model import GPT, GPTConfig
from lifelong.lm.schedules import Schedule, StreamLR
from lifelong.lm.tokens import TokenCorpus
from lifelong.seeding import derive, torch_generator


@dataclass
class LMConfig:
    """One continual pre-training run."""

    stream: list[str]
    steps: list[int]
    batch_size: int = 16
    block_size: int = GPTConfig.block_size  # the model's shape: GPTConfig's defaults, one copy
    n_layer: int = GPTConfig.n_layer
    n_head: int = GPTConfig.n_head
    n_embd: int = GPTConfig.n_embd
    dropout: float = GPTConfig.dropout
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 10
    schedule: str = "rewarm"
    const_lr: float | None = None
    cooldown: int = 0
    anneal: int = 0
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    replay: float = 0.0
    mer_k: int = 0  # 0: no MER
    mer_beta: float = 0.01
    gere: float = 0.0  # GeRe's threshold-margin weight; 0: off
    gere_windows: int = 64
    gere_batch: int = 4
    gere_weighting: str = "fixed"  # or "dynamic": the reference's 'dy', w = W · CE / L_TM
    recap: int = 0  # RECAP's window W over the corpora's losses; 0: off
    recap_temperature: float = 5.0
    eval_every: int = 0
    eval_tokens: int = 8192
    checkpoint_every: int = 0
    seed: int = 0
    model: str = "gpt"  # gpt (lifelong.lm.model), or hf:TYPE (a transformers causal LM, lifelong.lm.hf)
    model_config: dict = field(default_factory=dict)  # hf: the transformers config's settings
    compile: bool = False  # torch.compile the model's forward (nn.Module.compile: the state dict's keys stay)

    def __post_init__(self) -> None:
        if not self.stream:
            raise ConfigError("the stream needs at least one corpus")
        if len(self.steps) == 1 and len(self.stream) > 1:
            self.steps = self.steps * len(self.stream)
        if len(self.steps) != len(self.stream):
            raise ConfigError(f"--steps gives {len(self.steps)} numbers for {len(self.stream)} corpora: give one, "
                              "or one per corpus")
        check_replay(self.replay)
        self.corpus_names()
        for key in ("batch_size", "eval_tokens"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be at least 1, got {getattr(self, key)}")
        self._check_ranges()
        if self.eval_tokens < self.block_size:  # the held-out loss reads whole windows of eval_tokens
            raise ConfigError(f"eval_tokens {self.eval_tokens} is shorter than one window of block_size "
                              f"{self.block_size}; give --eval-tokens of at least --block-size")
        if self.mer_k:
            EfficientMER(self.mer_k, self.mer_beta)
        check_gere(self.gere, self.gere_windows, self.gere_batch, self.gere_weighting)
        check_recap(self.recap, self.recap_temperature)
        shape = [f"--{k.replace('_', '-')}" for k in ("n_layer", "n_head", "n_embd", "dropout")
                 if getattr(self, k) != getattr(GPTConfig, k)]
        check_model(self.model, self.model_config, shape)

    def _check_ranges(self) -> None:
        """One line for a value the optimiser or the loop would take wrongly: a negative ``grad_clip``
        flips the gradients' sign, a negative ``eval_every`` or ``checkpoint_every`` acts every step,
        and AdamW's own ``ValueError`` is a traceback."""
        for key in ("eval_every", "checkpoint_every", "grad_clip", "weight_decay"):
            if not (math.isfinite(getattr(self, key)) and getattr(self, key) >= 0):
                raise ConfigError(f"{key} must be a finite number, 0 or more (0: off), got {getattr(self, key)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a finite positive number, got {self.lr}")
        for key in ("beta1", "beta2"):
            if not 0 <= getattr(self, key) < 1:
                raise ConfigError(f"{key} must be in [0, 1), got {getattr(self, key)}")

    def to_dict(self) -> dict:
        return asdict(self)

    def corpus_names(self) -> list[str]:
        """The corpora of the stream, each once, in the order they first appear (``A+B`` gives A, B)."""
        return list(dict.fromkeys(n for task in self.stream for n in split_task(task)))

    def task_members(self) -> list[list[int]]:
        """Each task's corpora as indices into :meth:`corpus_names`."""
        names = self.corpus_names()
        return [[names.index(n) for n in split_task(task)] for task in self.stream]

    def schedule_spec(self) -> Schedule:
        return Schedule(self.schedule, tuple(self.steps), self.lr, self.min_lr, self.warmup,
                        self.const_lr, self.cooldown, self.anneal)


# settings added after the first checkpoints were written: a checkpoint without them had their defaults
_ADDED = {"recap": 0, "recap_temperature": 5.0, "gere_weighting": "fixed", "model": "gpt", "model_config": {},
          "compile": False}


@dataclass
class LMResult:
    loss_matrix: list[list[float]] = field(default_factory=list)
    init_losses: list[float] = field(default_factory=list)
    curve: list[dict[str, Any]] = field(default_factory=list)  # step, tokens, task, losses (and weights)
    train_seconds: float = 0.0
    tokens: int = 0
    complete: bool = False
    diverged: str | None = None  # why training stopped on a non-finite loss (the model is the step's before)


def build_model(cfg: LMConfig, vocab_size: int) -> nn.Module:
    """The library's GPT, or a transformers causal LM with its interface (:mod:`lifelong.lm.hf`)."""
    torch.manual_seed(derive(cfg.seed, "init"))
    if cfg.model != "gpt":
        return build_hf_model(cfg.model, cfg.model_config, vocab_size, cfg.block_size)
    return GPT(GPTConfig(vocab_size, cfg.block_size, cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.dropout))


def build_optimizer(model: nn.Module, cfg: LMConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices and embeddings only (nanoGPT's groups)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


def check_held_out(corpus: TokenCorpus, block_size: int) -> None:
    """A :class:`ConfigError` when ``corpus``'s held-out part is shorter than one window."""
    if len(corpus.val) < block_size + 1:
        raise ConfigError(f"corpus {corpus.name!r} has {len(corpus.val)} held-out tokens, fewer than one window of "
                          f"block_size + 1 = {block_size + 1}; use a smaller --block-size or a larger corpus")


@torch.no_grad()
def held_out_loss(model: nn.Module, corpus: TokenCorpus, block_size: int, max_tokens: int,
                  batch_size: int = 32) -> float:
    """Mean next-token loss over consecutive windows of ``corpus``'s held-out part."""
    val = corpus.val
    usable = min(len(val), max_tokens + 1) - 1
    check_held_out(corpus, block_size)
    if usable < block_size:
        raise ConfigError(f"eval_tokens {max_tokens} is shorter than one window of block_size {block_size}")
    starts = torch.arange(0, usable - block_size + 1, block_size)
    was = model.training
    model.eval()
    total = 0.0
    for chunk in starts.split(batch_size):
        x, y = windows(val, chunk, block_size)
        total += float(model(x, y)[1]) * len(chunk)
    model.train(was)
    return total / len(starts)


@dataclass
class Position:
    task: int = 0
    step: int = 0  # within the task
    global_step: int = 0


class LMTrainer:
    """The state of a run and its loop; :meth:`run` trains to the end or until ``stop`` says so.
    ``corpora`` are those of ``cfg.corpus_names()``; the loss matrix has a row per task of the
    stream and a column per corpus."""

    def __init__(self, cfg: LMConfig, corpora: Sequence[TokenCorpus], vocab_size: int) -> None:
        self.cfg, self.corpora = cfg, list(corpora)
        for c in self.corpora:  # before a run folder is written: a corpus too short fails now, not at evaluation
            check_held_out(c, cfg.block_size)
        self.model = build_model(cfg, vocab_size)
        if cfg.compile:
            self.model.compile()  # in place: the checkpoints keep the plain keys (no `_orig_mod.`)
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = StreamLR(self.optimizer, cfg.schedule_spec())
        self.generator = torch_generator(cfg.seed, "lm-batches")
        self.mixer = ReplayMixer(self.corpora, cfg.batch_size, cfg.block_size, cfg.replay, self.generator,
                                 cfg.task_members())
        self.mer = EfficientMER(cfg.mer_k, cfg.mer_beta) if cfg.mer_k else None
        self.gere = (GeneralReplay(cfg.gere, cfg.gere_windows, cfg.gere_batch, self.generator, cfg.gere_weighting)
                     if cfg.gere else None)
        self.recap = CorpusWeights(len(self.corpora), cfg.recap, cfg.recap_temperature) if cfg.recap else None
        self.position = Position()
        self.result = LMResult()
        torch.manual_seed(derive(cfg.seed, "dropout"))

    def evaluate(self) -> list[float]:
        return [held_out_loss(self.model, c, self.cfg.block_size, self.cfg.eval_tokens) for c in self.corpora]

    def weights(self) -> dict[str, Any]:
        """The loss weights of the latest step, for the curve: RECAP's λ per corpus, GeRe's w."""
        found: dict[str, Any] = {}
        if self.recap is not None:
            found["recap_weights"] = self.recap.weights()
        if self.gere is not None:
            found["gere_weight"] = self.gere.last_weight
        return found

    def _start_task(self, task: int) -> None:
        """At a task's first step: MER's anchor, GeRe's general set of the earlier corpora."""
        if self.mer is not None:
            self.mer.start_corpus(self.model)
        if self.gere is not None:
            self.gere.fix(self.model, self.mixer, task)

    def step(self, task: int, step: int) -> torch.Tensor:
        x, y = self.mixer.batch(task, step)
        if self.recap is None:
            _, loss = self.model(x, y)
        else:
            logits, _ = self.model(x)
            loss = self.recap.loss(window_losses(logits, y), self.mixer.sources)
        if self.gere is not None:
            loss = self.gere.loss(self.model, loss)
        if not torch.isfinite(loss.detach()):  # before the update: the model stays the last finite one
            raise DivergedError(f"the loss became {float(loss.detach())} at corpus {task + 1} ({self.cfg.stream[task]}), step "
                                f"{step + 1} of {self.cfg.steps[task]}", task=task, step=step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        if self.mer is not None:
            self.mer.after_step(self.model, self.position.global_step)
        return loss

    def run(self, save: Callable[[dict, int], Any] | None = None, stop: Callable[[int], bool] | None = None,
            progress: Callable[[int, int, float], None] | None = None) -> LMResult:
        cfg, pos, res = self.cfg, self.position, self.result
        if pos.global_step == 0 and not res.init_losses:
            res.init_losses = self.evaluate()
        tokens_per_step = cfg.batch_size * cfg.block_size
        while pos.task < len(cfg.stream):
            if pos.step == 0:
                self._start_task(pos.task)
            while pos.step < cfg.steps[pos.task]:
                started = time.perf_counter()
                try:
                    loss = self.step(pos.task, pos.step)
                except DivergedError as exc:  # stopped, not complete; the checkpoints are from before
                    res.diverged = str(exc)
                    return res
                pos.step += 1
                pos.global_step += 1
                res.train_seconds += time.perf_counter() - started
                res.tokens += tokens_per_step
                if progress is not None:
                    progress(pos.task, pos.global_step, float(loss.detach()))
                if cfg.eval_every and pos.global_step % cfg.eval_every == 0:
                    res.curve.append({"step": pos.global_step, "tokens": res.tokens, "task": pos.task,
                                      "losses": self.evaluate(), **self.weights()})
                at_end = pos.step == cfg.steps[pos.task]
                if at_end:
                    res.loss_matrix.append(self.evaluate())
                    pos.task, pos.step = pos.task + 1, 0
                stopping = stop is not None and stop(pos.global_step)
                if save is not None and (at_end or stopping or
                                         (cfg.checkpoint_every and pos.global_step % cfg.checkpoint_every == 0)):
                    save(self.state_dict(), pos.global_step)
                if stopping:
                    return res
                if at_end:
                    break
        res.complete = True
        return res

    def state_dict(self) -> dict:
        res = self.result
        return {"kind": "lm", "config": self.cfg.to_dict(), "position": asdict(self.position),
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "mer": None if self.mer is None else self.mer.state_dict(),
                "gere": None if self.gere is None else self.gere.state_dict(),
                "recap": None if self.recap is None else self.recap.state_dict(),
                "rng": {"batches": self.generator.get_state(), "torch": torch.get_rng_state()},
                "result": {"loss_matrix": res.loss_matrix, "init_losses": res.init_losses, "curve": res.curve,
                           "train_seconds": res.train_seconds, "tokens": res.tokens}}

    def load_state_dict(self, state: dict) -> None:
        saved = {**_ADDED, **state.get("config", {})}  # a checkpoint from before a setting existed has its default
        if saved != self.cfg.to_dict():
            diff = sorted(k for k, v in self.cfg.to_dict().items() if saved.get(k) != v)
            raise ConfigError(f"the checkpoint was written with other settings ({', '.join(diff)}); resume with "
                              "the settings the run was started with")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as exc:  # another shape or architecture than the settings build
            raise ConfigError(f"the checkpoint's model does not fit the run's model settings "
                              f"({str(exc).splitlines()[0]}); resume with the settings it was written with") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.mer is not None:
            self.mer.load_state_dict(state["mer"])
        if self.gere is not None:
            self.gere.load_state_dict(state["gere"])
        if self.recap is not None:
            self.recap.load_state_dict(state["recap"])
        self.generator.set_state(state["rng"]["batches"])
        torch.set_rng_state(state["rng"]["torch"])
        self.position = Position(**state["position"])
        self.result = LMResult(**state["result"])
