"""From a validated configuration to a finished run folder: resolve names, check the output
folder, load data, build the model, train, write results. No argument parsing, no printing."""
from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from lifelong import distributed
from lifelong.anytime import default_every
from lifelong.config import (KEYS, NOT_IDENTITY, RunConfig, default_folder, make_config, method_name,
                             error_memory_plugins, refresh_plugins, view_batch_parts, view_batch_settings)
from lifelong.data.benchmarks import Benchmark, build_stream, get_benchmark
from lifelong.data.source import Source
from lifelong.data.streams import Stream
from lifelong.errors import ConfigError, UserError
from lifelong.runs.loggers import Fanout, RunLoggers, check_loggers
from lifelong.memory import MEMORIES
from lifelong.methods import Recipe, build_recipe
from lifelong.nets import BACKBONES, build_backbone, set_head, set_projection
from lifelong.optim import SGD, Adadelta, build_optimizer
from lifelong.precision import channels_last, check_precision
from lifelong.runs.checkpoint import CheckpointStore, atomic_write_bytes, step_of
from lifelong.components import check_resumable
from lifelong.runs.report import RunLog, build_metrics, write_config, write_results
from lifelong.runs.folder import RunLock, check_out_dir, open_out_dir
from lifelong.seeding import derive
from lifelong.loop import (Checkpointing, Events, RunResult, check_memory_capacity, check_parallel, check_task_free,
                           task_name, train)
from lifelong.resume import task_loss


@dataclass
class PreparedRun:
    """Everything built from a configuration, ready to train."""

    config: RunConfig
    resolved: dict[str, Any]
    benchmark: Benchmark
    stream: Stream
    recipe: Recipe
    model: nn.Module
    optimizer: SGD | Adadelta
    device: torch.device
    out: Path
    log: RunLog
    lock: RunLock
    resume: dict | None = None
    notes: list[str] = field(default_factory=list)
    store: CheckpointStore | None = None  # the folder's checkpoints; ``store.newest`` is what resumes

    def __post_init__(self) -> None:
        if self.store is None:
            self.store = CheckpointStore(self.out)

    def describe(self) -> str:
        c = self.resolved
        memory = f", {self.recipe.memory} buffer {c['buffer_size']}" if self.recipe.memory else ""
        params = "".join(f", {k}={v}" for k, v in c["params"].items())
        if c.get("refresh"):
            params += f", refresh {c['refresh']['form']} (gamma {c['refresh']['gamma']}, every {c['refresh']['every']})"
        if c.get("view_batch"):
            v = c["view_batch"]
            params += f", view-batch {v['repeats']} ({v['form']}, augment {v['augment']}, alpha {v['alpha']})"
        if c.get("error_memory"):
            params += ", error memory"
        protocol = f"{c['epochs']} epoch(s), batch {c['batch_size']}"
        if c.get("online"):
            protocol = f"online (one pass), batch {c['batch_size']}, replay batch {c['replay_batch_size']}"
        if c.get("eval_every"):
            protocol += f", anytime evaluation every {c['eval_every']} examples"
        tasks = "task-free" if self.stream.task_free else f"{self.stream.num_tasks} tasks"
        ranks = f" x {c['world_size']} processes" if c.get("world_size", 1) > 1 else ""
        if c.get("precision", "fp32") != "fp32":  # --precision bf16/fp16: said, as the device is
            ranks += f", {c['precision']}"
        return (f"{c['benchmark']} ({tasks}), {self.recipe.name}{memory}{params}, "
                f"{c['backbone']}, {protocol}, lr {c['lr']}, seed {c['seed']}, "
                f"device {c['device']}{ranks} [{c['hparams_source']}] -> {self.out}")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but no CUDA device is available; use --device cpu or auto")
    return torch.device(name)


def default_out(config: RunConfig) -> Path:
    return default_folder(config.benchmark, method_name(config.method), config.seed)


class _LogLines:
    """The lines of ``run.log`` at each task's start and end, however the run was started (the
    CLI, ``--seeds``, a sweep, a comparison or the Python API). After a resume, the mean loss of
    the task in progress starts from the checkpoint's sums (``resumed``, :func:`task_loss`), so
    that it covers the whole task, as in an uninterrupted run."""

    def __init__(self, log: RunLog, num_tasks: int, resumed: dict | None = None) -> None:
        self.log, self.num_tasks = log, num_tasks
        self.count, self.loss_sum = 0, 0.0
        self.carried = task_loss(resumed)

    def task_start(self, task, steps: int) -> None:
        self.log.write(f"task {task.index + 1}/{self.num_tasks}: classes {list(task.classes)}, {steps} steps")
        (self.loss_sum, self.count), self.carried = self.carried, (0.0, 0)

    def step(self, loss: float | None) -> None:
        if loss is not None:
            self.count += 1
            self.loss_sum += loss

    def task_end(self, task, class_il: list[float], task_il: list[float]) -> None:
        mean_loss = self.loss_sum / max(self.count, 1)
        self.log.write(f"task {task.index + 1} done: mean loss {mean_loss:.4f}; class-IL "
                       f"{[round(a, 2) for a in class_il]}; task-IL {[round(a, 2) for a in task_il]}")


def config_to_resume(run_dir: Path, threads: int | None = None) -> RunConfig:
    """The configuration stored in a run folder, to continue it (``--resume``); one-line errors
    for a folder that is not a run, a run already complete, or an unreadable configuration."""
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise ConfigError(f"{run_dir} is not a lifelong run folder (no config.yaml); give the folder of the run to resume")
    metrics = run_dir / "metrics.json"
    if metrics.is_file():
        try:
            if json.loads(metrics.read_text()).get("complete"):
                raise ConfigError(f"the run in {run_dir} is already complete; nothing to resume")
        except ValueError:
            pass
    from lifelong.runs.reuse import stored_config

    resolved = stored_config(run_dir)  # read as written: the inverse of yaml.safe_dump
    if resolved is None:
        raise ConfigError(f"{config_file} cannot be read or is not a run configuration; the run cannot be resumed")
    values = {k: v for k, v in resolved.items() if k in KEYS}
    values["out"] = str(run_dir)
    if threads:
        values["threads"] = threads
    return make_config(values, {})


def import_user_code(names: list[str]) -> None:
    """Import Python files or modules that register the user's own terms and plug-ins. Any
    failure of theirs, ``sys.exit()`` and any other ``BaseException`` included, is a one-line
    :class:`ConfigError`; only Ctrl-C (``KeyboardInterrupt``) goes through as itself."""
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
        except (ConfigError, KeyboardInterrupt):
            raise
        except SystemExit as exc:
            raise ConfigError(f"cannot import {name}: it called sys.exit({exc.code!r}); an imported file must only "
                              f"define and register") from None
        except BaseException as exc:  # the user's code may fail in any way; report it in one line
            raise ConfigError(f"cannot import {name}: {type(exc).__name__}: {exc}") from None


# One intra-op thread unless asked otherwise: at the batch sizes of continual learning (10 to 128
# examples) a second thread does not shorten a step, and threads that spin while another run
# holds the cores slow both runs by up to two orders of magnitude (benchmarks/side_by_side.py).
DEFAULT_THREADS = 1


def config_hash(resolved: dict[str, Any]) -> str:
    """A fingerprint of everything in a resolved config that defines the run (see
    :data:`lifelong.config.NOT_IDENTITY`)."""
    kept = {k: v for k, v in resolved.items() if k not in NOT_IDENTITY}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def check_run(config: RunConfig) -> tuple[Benchmark, Recipe, str, torch.device]:
    """What a run checks first, before it reads data or looks at its folder: the user's code,
    the benchmark's name, the recipe (with refresh), that every component can be checkpointed
    and, on a task-free benchmark, needs no task boundary, the backbone and the device. Returns
    the benchmark, recipe, backbone name and device."""
    import_user_code(config.imports)
    benchmark = get_benchmark(config.benchmark)
    view_plugins, view_terms = view_batch_parts(config.view_batch)  # before refresh: it unlearns the views
    # the error memory first: it records each batch's errors before refresh learning unlearns it
    shorthand = error_memory_plugins(config.error_memory) + view_plugins + refresh_plugins(config.refresh)
    recipe = build_recipe(config.method, config.params, shorthand, view_terms)
    try:  # every run writes checkpoints: a component that could not be restored is refused now
        check_resumable([t for _, t in recipe.objective.terms] + list(recipe.plugins))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if benchmark.split == "task-free":
        check_task_free(recipe, benchmark.name)
    backbone = config.backbone or benchmark.backbone
    if backbone not in BACKBONES:
        raise ConfigError(f"unknown backbone {backbone!r}; choose one of: {', '.join(BACKBONES)}")
    if config.init_from is not None:
        from lifelong.runs.load import check_finished

        check_finished(Path(config.init_from), "--init-from")
    device = resolve_device(config.device)
    check_precision(config.precision, device)
    return benchmark, recipe, backbone, device


def stream_of(benchmark: Benchmark, source: Source, config: RunConfig) -> Stream:
    """The stream of a run of ``config``: ``source`` cut into ``benchmark``'s tasks by the run's
    settings, then, with ``config.forget``, its forget set left out of every task's training
    examples (:func:`without_forget_set`)."""
    stream = build_stream(benchmark, source, seed=config.seed, num_tasks=config.num_tasks,
                          shuffle_classes=config.shuffle_classes, blurry_disjoint=config.blurry_disjoint,
                          blurry_mix=config.blurry_mix, blurry_variant=config.blurry_variant,
                          task_free_width=config.task_free_width)
    if config.forget is not None:  # before train_tasks: a task left untrained is not one the forget set emptied
        stream = without_forget_set(stream, config.forget, config.seed)
    if config.relabel is not None:
        stream = with_relabelling(stream, config.relabel, config.seed)
    return stream if config.train_tasks is None else only_train_tasks(stream, config.train_tasks)


def with_relabelling(stream: Stream, spec: str, seed: int) -> Stream:
    """``stream`` reading its training labels from a copy of its source whose examples named by
    the corruption ``spec`` (:func:`lifelong.unlearn.corruption` over the source's whole training
    set, from ``seed`` unless the spec writes one) carry their wrong labels; tasks, their
    examples and the test set untouched (a relabelled example stays in the task of its true
    class). Its settings record the spec, how many of the relabelled examples the stream still
    trains on, and a digest of the positions and wrong labels (``relabel``, ``relabel_count``,
    ``relabel_digest``: in ``config.yaml`` and the fingerprint)."""
    import dataclasses

    from lifelong.unlearn.forget import corruption, parse_relabel_spec, relabel_digest

    parsed = parse_relabel_spec(spec)
    source = stream.source
    idx, wrong = corruption(parsed, source.train_y, source.num_classes, seed)
    labels = source.train_y.clone()
    labels[idx] = wrong
    trained = torch.zeros(len(labels), dtype=torch.bool, device=labels.device)
    for task in stream.tasks:
        trained[task.train_idx] = True
    stream.source = dataclasses.replace(source, train_y=labels)  # a copy: a cached source stays clean
    stream.settings = {**stream.settings, "relabel": str(parsed), "relabel_count": int(trained[idx].sum()),
                       "relabel_digest": relabel_digest(idx, wrong)}
    return stream


def only_train_tasks(stream: Stream, spec: str | int) -> Stream:
    """``stream`` with the training examples of every task but those of ``spec`` (``train_tasks``,
    counted from 1) removed: those tasks are trained on, every task is still evaluated (their test
    sets untouched). A task number beyond the stream's is one line."""
    from lifelong.config import parse_train_tasks

    chosen = parse_train_tasks(spec)
    if chosen[-1] > stream.num_tasks:
        raise ConfigError(f"`train-tasks` names task {chosen[-1]}, but {stream.name} has {stream.num_tasks} tasks")
    for task in stream.tasks:
        if task.index + 1 not in chosen:
            task.train_idx = task.train_idx[:0]
            if task.train_task is not None:
                task.train_task = task.train_task[:0]
    return stream


def without_forget_set(stream: Stream, spec: str, seed: int) -> Stream:
    """``stream`` with the training examples of the forget set ``spec`` (over the source's whole
    training set, :func:`lifelong.unlearn.forget_mask`; ``random:`` drawn from ``seed``) removed
    from every task, each task's other examples kept in their order and the test sets untouched:
    the run that never saw the forget set (the *retrain* baseline). The cut stream is the one
    without a forget set, so every other example sits in the same task. Its settings record the
    spec, how many training examples it names, and a digest of which (``forget``,
    ``forget_count``, ``forget_digest``: in ``config.yaml`` and the fingerprint). A task the
    forget set empties (a past task's classes, ``classes:0,1`` on Split-MNIST) stays in the
    stream without training examples, as :func:`only_train_tasks` leaves one: it is still
    evaluated, and the stream is the one without those classes (continual-stream unlearning)."""
    from lifelong.unlearn.forget import forget_digest, forget_mask, parse_forget_spec

    parsed = parse_forget_spec(spec)
    mask = forget_mask(parsed, stream.source.train_y, stream.source.num_classes, seed)
    for task in stream.tasks:
        kept = ~mask[task.train_idx]
        task.train_idx = task.train_idx[kept]
        if task.train_task is not None:
            task.train_task = task.train_task[kept]
    stream.settings = {**stream.settings, "forget": str(parsed), "forget_count": int(mask.sum()),
                       "forget_digest": forget_digest(mask)}
    return stream


def resolve_config(config: RunConfig, sources: dict[tuple[str, str], Source] | None = None) -> dict[str, Any]:
    """The resolved configuration of ``config``: what its run writes to ``config.yaml`` and what
    :func:`config_hash` fingerprints, as :func:`prepare_run` makes it, but with no model built,
    no folder looked at and nothing written. Its data are read to cut them into tasks; with
    ``sources`` (a cache of one's own), once per benchmark and data folder."""
    benchmark, recipe, backbone, device = check_run(config)
    key = (benchmark.name, config.data_root)
    source = sources.get(key) if sources is not None else None
    if source is None:
        source = benchmark.load(Path(config.data_root), config.download)
        if sources is not None:
            sources[key] = source
    stream = stream_of(benchmark, source, config)
    out = Path(config.out) if config.out else default_out(config)
    return _resolved(config, recipe, backbone, device, out, stream)


def refresh_settings(recipe: Recipe) -> dict[str, Any] | None:
    """The settings of ``recipe``'s refresh plug-in, every default filled in, as its runs record
    them (``refresh:`` in ``config.yaml`` and ``metrics.json``); ``None`` without refresh."""
    return next((p.settings() for p in recipe.plugins if getattr(p, "name", "") == "refresh"), None)


def _resolved(config: RunConfig, recipe: Recipe, backbone: str, device: torch.device, out: Path,
              stream: Stream) -> dict[str, Any]:
    """The configuration with every name and default resolved: the one definition of what
    ``config.yaml`` holds and :func:`config_hash` fingerprints."""
    resolved = config.to_dict()
    resolved.update(
        backbone=backbone,
        num_tasks=stream.num_tasks,
        replay_batch_size=config.replay_batch_size or config.batch_size,
        method_name=recipe.name,
        recipe=recipe.spec,
        refresh=refresh_settings(recipe),
        device=str(device),
        out=str(out),
        scenario=stream.scenario,
        task_classes=[list(t.classes) for t in stream.tasks],
    )
    resolved.update(stream.settings)  # a blurry stream's settings (and the number of tasks asked for), a task-free one's
    if config.view_batch is not None:  # every setting, so that the file says what ran
        resolved["view_batch"] = view_batch_settings(config.view_batch)
    if config.init_from is not None:  # which weights it started from: part of the fingerprint
        from lifelong.runs.load import file_digest

        resolved["init_digest"] = file_digest(Path(config.init_from) / "model.pt")
    every = default_every(config.benchmark, config.online, config.eval_every)
    if every is not None:  # recorded when on, left out when off (lifelong.config.UNSET_LEFT_OUT)
        resolved["eval_every"] = every
    if distributed.parallel():  # not part of the fingerprint (NOT_IDENTITY): a run resumes with another number
        resolved["world_size"] = distributed.world()
    return resolved


def prepare_run(config: RunConfig, *, resume: bool = False, dry_run: bool = False) -> PreparedRun | dict:
    """Check every name, value, file and folder before any training; then build the run.

    With ``resume``, ``config.out`` is an existing run folder: it is kept as it is and the
    newest good checkpoint in it is loaded (training starts over when there is none). With
    ``dry_run``, everything is checked and built, nothing is written, and the resolved
    configuration is returned."""
    benchmark, recipe, backbone, device = check_run(config)
    out = Path(config.out) if config.out else default_out(config)
    lock = RunLock(out)
    early = not distributed.parallel()  # several processes: rank 0 checks the folder where all ranks agree (_open_shared)
    if lock.path.is_file() and not dry_run and early:
        lock.acquire()  # a folder another run is writing to is refused before the data are read
    try:
        if not resume and early:  # checked early, read only; checked again under the lock (open_out_dir)
            check_out_dir(out, config.overwrite)
        torch.set_num_threads(config.threads or DEFAULT_THREADS)
        if config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # set both ways, as runs of a command of many runs may share one process (--jobs 1); only
        # when it changes: the call imports torch's compiler (1.5 s)
        if torch.are_deterministic_algorithms_enabled() != config.deterministic:
            torch.use_deterministic_algorithms(config.deterministic)
        run = _build(config, benchmark, recipe, backbone, device, out, lock, resume, dry_run)
    except BaseException:
        lock.release()
        raise
    return run


def build_model(config: RunConfig, recipe: Recipe, backbone: str, source: Source, device: torch.device) -> nn.Module:
    """The model a run of ``config`` starts from: the backbone with the recipe's head and
    projection, initialised from the run's seed (what ``model.pt`` is the state of, once trained)."""
    torch.manual_seed(derive(config.seed, "init"))
    model = set_head(build_backbone(backbone, source.image_shape, source.num_classes), recipe.head,
                     recipe.head_scale).to(device)
    return channels_last(set_projection(model, recipe.projection), backbone, device)


def load_init(model: nn.Module, folder: str | Path) -> None:
    """``init_from``: the weights of the finished run in ``folder`` loaded into ``model``; one
    line when they do not fit it (another backbone, benchmark or head)."""
    from lifelong.edit.task_vectors import check_compatible
    from lifelong.runs.load import read_state

    state = read_state(Path(folder) / "model.pt", next(model.parameters()).device)
    try:
        check_compatible({k: v for k, v in model.state_dict().items()}, state, what=f"--init-from {folder}'s model")
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("from the base", "from this run's model")) from None
    model.load_state_dict(state)


def _build(config: RunConfig, benchmark: Benchmark, recipe: Recipe, backbone: str, device: torch.device,
           out: Path, lock: RunLock, resume: bool, dry_run: bool = False) -> PreparedRun | dict:
    """Data, stream, model, optimiser, run folder and (when resuming) the checkpoint."""
    source = benchmark.load(Path(config.data_root), config.download)
    stream = stream_of(benchmark, source, config)
    if device.type != "cpu":
        try:
            stream = stream.to(device)
        except torch.cuda.OutOfMemoryError:
            raise ConfigError(f"{benchmark.name}'s data do not fit in the memory of {device}; use --device cpu") from None
    model = build_model(config, recipe, backbone, source, device)
    if config.init_from is not None:
        load_init(model, config.init_from)
    optimizer = build_optimizer(config.optimizer, model.parameters(), config.lr, config.momentum, config.weight_decay)
    check_model = getattr(MEMORIES.get(recipe.memory), "check_model", None)
    if check_model is not None:  # e.g. hidden-activation replay needs a frozen split of the backbone
        check_model(model, **recipe.memory_options)

    for i, (_, term) in enumerate(recipe.objective.terms):  # e.g. a layer the backbone does not have
        problem = term.check_model(model) if hasattr(term, "check_model") else None
        if problem:
            raise ConfigError(f"method {recipe.name!r}, term {i + 1} ({term.name}): {problem}")
    resolved = _resolved(config, recipe, backbone, device, out, stream)
    check_loggers(config.log)
    if recipe.memory:
        check_memory_capacity(recipe, stream, config.buffer_size)
    if distributed.parallel():
        check_parallel(recipe, resolved["batch_size"], resolved["replay_batch_size"], resolved["buffer_size"],
                       resolved["epochs"])
    if dry_run:
        return resolved
    if distributed.parallel():
        payload, notes, store, log = _open_shared(out, lock, resume, config, resolved, stream)
    else:
        payload, notes, store = _open_folder(out, lock, resume, config, resolved, stream)
        log = RunLog(out / "run.log")
    for note in notes:
        log.write(note)
    return PreparedRun(config, resolved, benchmark, stream, recipe, model, optimizer, device, out, log, lock,
                       payload, notes, store)


def _open_folder(out: Path, lock: RunLock, resume: bool, config: RunConfig, resolved: dict[str, Any],
                 stream: Stream) -> tuple[dict | None, list[str], CheckpointStore]:
    """Open the run folder (a new run: emptied, its config written; a resumed one: its newest
    good checkpoint loaded and checked against the configuration): ``(checkpoint payload or
    None, notes for the log, the folder's checkpoints)``."""
    open_out_dir(out, lock, clear=not resume, overwrite=config.overwrite)
    payload, notes, store = None, [], CheckpointStore(out)
    if resume:
        found = store.load_latest()
        notes = list(store.notes)
        _record_world_size(out, resolved, notes)
        if found is not None:
            payload, path = found
            if payload.get("config_hash") != config_hash(resolved):
                raise ConfigError(f"the checkpoint in {out} was written by a different configuration; "
                                  f"resume only with the run's own config.yaml")
            notes.append(f"resuming from {path.name} ({_where(payload['position'], stream.num_tasks)})")
        else:
            notes.append("no usable checkpoint; starting from the beginning")
    else:
        write_config(out, resolved)
    return payload, notes, store


def _record_world_size(out: Path, resolved: dict[str, Any], notes: list[str]) -> None:
    """A run resumed by another number of processes: ``config.yaml``'s ``world_size`` becomes the
    new one (the run goes on as a run of the new layout), and a note says what changed."""
    from lifelong.runs.reuse import stored_config

    stored = stored_config(out)
    if stored is None:
        return
    was, now = stored.get("world_size", 1), resolved.get("world_size", 1)
    if was == now:
        return
    stored.pop("world_size", None)
    if now > 1:
        stored["world_size"] = now
    write_config(out, stored)
    notes.append(f"the run was started with {was} process{'es' if was > 1 else ''}, it goes on with {now}: the "
                 "memories are re-split and the per-process generators start afresh (config.yaml's world_size "
                 f"is now {now})")


class _NoLog:
    """The ``run.log`` of a rank other than 0: nothing is written."""

    def write(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def _open_shared(out: Path, lock: RunLock, resume: bool, config: RunConfig, resolved: dict[str, Any],
                 stream: Stream) -> tuple[dict | None, list[str], CheckpointStore, Any]:
    """:func:`_open_folder` with several processes: rank 0 opens the folder and chooses the
    checkpoint; a refusal there is every rank's (one line, from rank 0); the other ranks read
    the checkpoint rank 0 chose and write nothing."""
    error, payload, notes, store = None, None, [], CheckpointStore(out)
    if distributed.rank() == 0:
        try:
            payload, notes, store = _open_folder(out, lock, resume, config, resolved, stream)
        except UserError as exc:
            error = str(exc)
    distributed.agree(error)
    chosen = distributed.broadcast(None if payload is None else store.newest.name)
    if distributed.rank() != 0:
        if chosen is not None:
            path = store.folder / chosen
            payload = torch.load(io.BytesIO(path.read_bytes()), weights_only=True)
            store.newest = path
        return payload, notes, store, _NoLog()
    return payload, notes, store, RunLog(out / "run.log")


def _where(position: dict[str, Any], num_tasks: int) -> str:
    """Where a checkpoint stands, tasks counted from 1: ``task 2/5, step 8``."""
    task = int(position["task"])
    what = task_name(task, num_tasks) if task < num_tasks else "all tasks trained"
    return f"{what}, step {position['step']}"


class _StopFlag:
    """Turns SIGINT and SIGTERM into a request that the loop honours at the next step boundary
    (after writing a checkpoint); a second signal interrupts at once. ``also()`` turning true
    (the stop request of a command of many runs) is a request too."""

    def __init__(self, also: Callable[[], bool] | None = None) -> None:
        self.requested = False
        self.also = also
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def __call__(self) -> bool:
        return self.requested or (self.also is not None and self.also())


def resume_point(store: CheckpointStore, steps: int | None = None) -> str:
    """What a stopped run can be resumed from, in words: the newest whole checkpoint (and whether
    it holds the step ``steps`` where training stopped), or that there is none."""
    if store.newest is None:
        return "no checkpoint was written, nothing to resume from"
    at = step_of(store.newest)
    if at == steps:
        return f"checkpoint {store.newest.name} holds this point"
    return f"the newest checkpoint is {store.newest.name}, from step {at}"


def execute_run(run: PreparedRun, events: Events | None = None, started: float | None = None,
                stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Train (from the checkpoint when resuming), write the matrices, ``metrics.json`` and the
    final weights (``model.pt``); return the metrics document. ``status`` in it tells whether
    the run completed, diverged or was stopped, by SIGINT or SIGTERM or by ``stop()`` turning
    true; the message of a stopped run says which checkpoint, if any, it can be resumed from
    (:func:`resume_point`)."""
    started = time.perf_counter() if started is None else started
    c = run.resolved
    run.log.write(f"start: {run.describe()}")
    steps_done = run.resume["position"]["step"] if run.resume else 0
    writer = distributed.rank() == 0
    try:
        loggers = RunLoggers(run.out, every=c["log_every"], extra=c["log"], config=c, steps_done=steps_done) \
            if writer else None
    except BaseException:
        run.log.close()
        run.lock.release()
        raise
    events = Fanout(events, _LogLines(run.log, run.stream.num_tasks, run.resume), loggers)
    doc = None
    try:
        with _StopFlag(stop) as flag:  # until the results are written: a first signal then changes nothing
            checkpointing = Checkpointing(run.store, c["checkpoint_every"], run.resume, flag, config_hash(c))
            result = train(
                run.stream, run.model, run.recipe, run.optimizer,
                seed=c["seed"], epochs=c["epochs"], batch_size=c["batch_size"], buffer_size=c["buffer_size"],
                replay_batch_size=c["replay_batch_size"], augment_padding=run.benchmark.augment_padding,
                events=events, checkpointing=checkpointing, on_nan=c["on_nan"], eval_every=c.get("eval_every"),
                precision=c.get("precision", "fp32"),
            )
            if result.status == "interrupted":
                result.message += f"; {resume_point(run.store, result.steps)}"
            doc = _write_results(run, result, started, write=writer)
    except OSError as exc:
        raise ConfigError(f"cannot write to {run.out}: {exc.strerror or exc}; free space or fix permissions, "
                          f"then resume with `lifelong run --resume {run.out}`") from None
    finally:
        if loggers is not None:
            loggers.close(doc["status"] if doc else "failed", None if doc is None else {
                "class_il": doc["class_il"]["average_accuracy"], "task_il": doc["task_il"]["average_accuracy"]})
        run.log.close()
        run.lock.release()
    return doc


def _shown(value: float | None) -> str:
    """A measure in ``run.log``: as measured, or ``-`` where there is none yet (a run stopped in
    its first task), as the tables show a missing value."""
    return "-" if value is None else str(value)


def _write_results(run: PreparedRun, result: RunResult, started: float, write: bool = True) -> dict[str, Any]:
    """The matrices, ``model.pt`` (a complete run only) and ``metrics.json`` last; the end line.
    ``write=False`` (a rank other than 0): the metrics document only, nothing written."""
    doc = build_metrics(result, run.resolved, wall_seconds=time.perf_counter() - started,
                        num_tasks=run.stream.num_tasks)
    if not write:
        return doc
    if result.status == "complete":
        buffer = io.BytesIO()
        torch.save(run.model.state_dict(), buffer)
        atomic_write_bytes(run.out / "model.pt", buffer.getvalue())
        for plugin in run.recipe.plugins:  # e.g. the lora plug-in's adapters.pt
            for name, data in (plugin.run_files() if hasattr(plugin, "run_files") else {}).items():
                atomic_write_bytes(run.out / name, data)
    write_results(run.out, result, doc)
    online = doc.get("online")
    anytime = (f"; anytime A_auc {_shown(online['a_auc'])}, A_last {_shown(online['a_last'])} "
               f"({online['evaluations']} evaluations every {online['eval_every']} examples, "
               f"{online['eval_seconds']:.2f} s)" if online else "")
    run.log.write(f"end: {result.status}{': ' + result.message if result.message else ''}; "
                  f"class-IL {_shown(doc['class_il']['average_accuracy'])}, "
                  f"task-IL {_shown(doc['task_il']['average_accuracy'])}{anytime}")
    return doc
