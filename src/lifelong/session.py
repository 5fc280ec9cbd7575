"""From a validated configuration to a finished run folder: resolve names, check the output
folder, load data, build the model, train, write results. No argument parsing, no printing."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from lifelong.config import RunConfig, refresh_options
from lifelong.data.benchmarks import Benchmark, build_stream, get_benchmark
from lifelong.data.streams import Stream
from lifelong.errors import ConfigError
from lifelong.methods import Recipe, build_recipe
from lifelong.nets import BACKBONES, build_backbone
from lifelong.optim import SGD
from lifelong.report import RunLog, build_metrics, check_out_dir, create_out_dir, write_config, write_results
from lifelong.seeding import derive
from lifelong.train import Events, train


@dataclass
class PreparedRun:
    """Everything built from a configuration, ready to train."""

    config: RunConfig
    resolved: dict[str, Any]
    benchmark: Benchmark
    stream: Stream
    recipe: Recipe
    model: nn.Module
    optimizer: SGD
    device: torch.device
    out: Path
    log: RunLog

    def describe(self) -> str:
        c = self.resolved
        memory = f", {self.recipe.memory} buffer {c['buffer_size']}" if self.recipe.memory else ""
        params = "".join(f", {k}={v}" for k, v in c["params"].items())
        if c.get("refresh"):
            params += f", refresh {c['refresh']['form']} (gamma {c['refresh']['gamma']}, every {c['refresh']['every']})"
        return (f"{c['benchmark']} ({self.stream.num_tasks} tasks), {self.recipe.name}{memory}{params}, "
                f"{c['backbone']}, {c['epochs']} epoch(s), batch {c['batch_size']}, lr {c['lr']}, seed {c['seed']}, "
                f"device {c['device']} [{c['hparams_source']}] -> {self.out}")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but no CUDA device is available; use --device cpu or auto")
    return torch.device(name)


def default_out(config: RunConfig) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    method = config.method if isinstance(config.method, str) else str(config.method.get("name", "custom"))
    base = Path("runs") / f"{config.benchmark}-{method}-{config.seed}-{stamp}"
    out, n = base, 2
    while out.exists():
        out, n = base.with_name(f"{base.name}-{n}"), n + 1
    return out


def import_user_code(names: list[str]) -> None:
    """Import Python files or modules that register the user's own terms and plug-ins."""
    import importlib
    import importlib.util

    for name in names:
        try:
            if name.endswith(".py"):
                path = Path(name)
                if not path.is_file():
                    raise ConfigError(f"cannot import {name}: no such file")
                spec = importlib.util.spec_from_file_location(f"lifelong_user_{path.stem}", path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            else:
                importlib.import_module(name)
        except ConfigError:
            raise
        except Exception as exc:  # the user's code may fail in any way; report it in one line
            raise ConfigError(f"cannot import {name}: {type(exc).__name__}: {exc}") from None


def prepare_run(config: RunConfig) -> PreparedRun:
    """Check every name, value, file and folder before any training; then build the run."""
    import_user_code(config.imports)
    benchmark = get_benchmark(config.benchmark)
    recipe = build_recipe(config.method, config.params)
    refresh = None
    options = refresh_options(config.refresh)
    if options is not None:
        from lifelong.plugins import Refresh

        refresh = Refresh(**options, seed=config.seed)
        recipe.plugins.append(refresh)
    backbone = config.backbone or benchmark.backbone
    if backbone not in BACKBONES:
        raise ConfigError(f"unknown backbone {backbone!r}; choose one of: {', '.join(BACKBONES)}")
    device = resolve_device(config.device)
    out = Path(config.out) if config.out else default_out(config)
    check_out_dir(out, config.overwrite)
    if config.threads:
        torch.set_num_threads(config.threads)

    source = benchmark.load(Path(config.data_root), config.download)
    stream = build_stream(benchmark, source, seed=config.seed, num_tasks=config.num_tasks,
                          shuffle_classes=config.shuffle_classes)
    if device.type != "cpu":
        try:
            stream = stream.to(device)
        except torch.cuda.OutOfMemoryError:
            raise ConfigError(f"{benchmark.name}'s data do not fit in the memory of {device}; use --device cpu") from None
    torch.manual_seed(derive(config.seed, "init"))
    model = build_backbone(backbone, source.image_shape, source.num_classes).to(device)
    optimizer = SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)

    resolved = config.to_dict()
    resolved.update(
        backbone=backbone,
        num_tasks=stream.num_tasks,
        replay_batch_size=config.replay_batch_size or config.batch_size,
        method_name=recipe.name,
        recipe=recipe.spec,
        refresh=None if refresh is None else refresh.settings(),
        device=str(device),
        out=str(out),
        scenario=stream.scenario,
        task_classes=[list(t.classes) for t in stream.tasks],
    )
    create_out_dir(out)
    write_config(out, resolved)
    log = RunLog(out / "run.log")
    return PreparedRun(config, resolved, benchmark, stream, recipe, model, optimizer, device, out, log)


def execute_run(run: PreparedRun, events: Events | None = None, started: float | None = None) -> dict[str, Any]:
    """Train, write the matrices and ``metrics.json``; return the metrics document."""
    started = time.perf_counter() if started is None else started
    c = run.resolved
    run.log.write(f"start: {run.describe()}")
    result = train(
        run.stream, run.model, run.recipe, run.optimizer,
        seed=c["seed"], epochs=c["epochs"], batch_size=c["batch_size"], buffer_size=c["buffer_size"],
        replay_batch_size=c["replay_batch_size"], augment_padding=run.benchmark.augment_padding,
        events=events,
    )
    doc = build_metrics(result, c, wall_seconds=time.perf_counter() - started, num_tasks=run.stream.num_tasks)
    write_results(run.out, result, doc)
    run.log.write(f"end: {result.status}{': ' + result.message if result.message else ''}; "
                  f"class-IL {doc['class_il']['average_accuracy']}, task-IL {doc['task_il']['average_accuracy']}")
    run.log.close()
    if result.status == "interrupted":
        raise KeyboardInterrupt
    return doc
