"""What a run tells while it trains: structured logs in the run folder (always), and optionally
TensorBoard and Weights & Biases. Each logger receives the loop's events
(:class:`lifelong.loop.Events`): ``task_start``, ``step`` and ``task_end``.

- ``events.jsonl``: the canonical record, one JSON object per line: ``run_start``, ``task_start``,
  ``steps`` (every ``every`` steps: mean loss over them, steps per second), ``task_end`` (both
  accuracy rows), ``run_end``.
- ``steps.csv``: the same step records as a table.

After ``--resume`` both files are appended to; the ``run_start`` record gives the step the run
resumed from, and step records after the last checkpoint appear a second time.
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

from lifelong.errors import ConfigError

LOGGERS = ("tensorboard", "wandb")


def check_loggers(names: list[str]) -> None:
    """Refuse, before anything is written, loggers whose package is not installed."""
    if "tensorboard" in names:
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise ConfigError("--log tensorboard needs the tensorboard package: pip install 'lifelong[tensorboard]'") from None
    if "wandb" in names:
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise ConfigError("--log wandb needs the wandb package: pip install wandb, then `wandb login` "
                              "(or set WANDB_MODE=offline)") from None


class StepWindow:
    """Counts steps and averages the losses seen since the last report."""

    def __init__(self, every: int) -> None:
        self.every, self.step, self.task = every, 0, 0
        self.loss_sum, self.loss_count, self.since = 0.0, 0, time.perf_counter()

    def add(self, loss: float | None) -> dict[str, Any] | None:
        """Record one step; every ``every`` steps return ``{step, task, loss, steps_per_second}``."""
        self.step += 1
        if loss is not None:
            self.loss_sum += loss
            self.loss_count += 1
        if self.step % self.every:
            return None
        now = time.perf_counter()
        record = {"step": self.step, "task": self.task,
                  "loss": self.loss_sum / self.loss_count if self.loss_count else None,
                  "steps_per_second": self.every / max(now - self.since, 1e-9)}
        self.loss_sum, self.loss_count, self.since = 0.0, 0, now
        return record


class RunLoggers:
    """The run's loggers behind one events object."""

    def __init__(self, out: Path, *, every: int = 50, extra: list[str] = (), config: dict[str, Any] | None = None,
                 steps_done: int = 0) -> None:
        self.window = StepWindow(every)
        self.window.step = steps_done
        self.jsonl = open(out / "events.jsonl", "a", encoding="utf-8")
        new_csv = not (out / "steps.csv").exists()
        self.csv_file = open(out / "steps.csv", "a", newline="", encoding="utf-8")
        self.csv = csv.writer(self.csv_file)
        if new_csv:
            self.csv.writerow(["step", "task", "loss", "steps_per_second"])
        self.tensorboard = self.wandb = None
        check_loggers(list(extra))
        if "tensorboard" in extra:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(str(out / "tensorboard"))
        if "wandb" in extra:
            import wandb

            try:
                self.wandb = wandb.init(config=config or {}, dir=str(out), name=out.name, reinit=True)
            except Exception as exc:  # not logged in, no network, bad settings: one line
                raise ConfigError(f"wandb could not start a run ({type(exc).__name__}: {exc}); run `wandb login` "
                                  f"or set WANDB_MODE=offline") from None
        self._write({"event": "run_start", "step": steps_done, "config": config or {}})

    def _write(self, record: dict[str, Any]) -> None:
        self.jsonl.write(json.dumps({"time": time.time(), **record}, default=str) + "\n")
        self.jsonl.flush()

    def task_start(self, task, steps: int) -> None:
        self.window.task = task.index
        self._write({"event": "task_start", "task": task.index, "classes": list(task.classes), "steps": steps})

    def step(self, loss: float | None) -> None:
        record = self.window.add(loss)
        if record is None:
            return
        self._write({"event": "steps", **record})
        self.csv.writerow([record["step"], record["task"], "" if record["loss"] is None else f"{record['loss']:.6f}",
                           f"{record['steps_per_second']:.1f}"])
        self.csv_file.flush()
        if self.tensorboard is not None and record["loss"] is not None:
            self.tensorboard.add_scalar("train/loss", record["loss"], record["step"])
            self.tensorboard.add_scalar("train/steps_per_second", record["steps_per_second"], record["step"])
        if self.wandb is not None:
            self.wandb.log({"train/loss": record["loss"], "train/steps_per_second": record["steps_per_second"]},
                           step=record["step"])

    def task_end(self, task, class_il: list[float], task_il: list[float]) -> None:
        seen = task.index + 1
        averages = {"class_il": sum(class_il[:seen]) / seen, "task_il": sum(task_il[:seen]) / seen}
        self._write({"event": "task_end", "task": task.index, "step": self.window.step, "class_il": class_il,
                     "task_il": task_il, "average_seen": averages})
        if self.tensorboard is not None:
            for name, value in averages.items():
                self.tensorboard.add_scalar(f"eval/{name}_average_seen", value, task.index + 1)
        if self.wandb is not None:
            self.wandb.log({f"eval/{k}_average_seen": v for k, v in averages.items()}, step=self.window.step)

    def close(self, status: str, summary: dict[str, Any] | None = None) -> None:
        self._write({"event": "run_end", "status": status, "step": self.window.step, **(summary or {})})
        self.jsonl.close()
        self.csv_file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
        if self.wandb is not None:
            self.wandb.finish()


class Fanout:
    """Passes every event to each of ``targets`` in turn."""

    def __init__(self, *targets) -> None:
        self.targets = [t for t in targets if t is not None]

    def task_start(self, task, steps: int) -> None:
        for t in self.targets:
            t.task_start(task, steps)

    def step(self, loss: float | None) -> None:
        for t in self.targets:
            t.step(loss)

    def task_end(self, task, class_il: list[float], task_il: list[float]) -> None:
        for t in self.targets:
            t.task_end(task, class_il, task_il)
