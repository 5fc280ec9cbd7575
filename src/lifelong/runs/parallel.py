"""Many runs at once: each configuration in its own run folder, several in parallel processes,
finished runs reused, interrupted ones resumed from their checkpoints (started over when they
have none). Used by ``--seeds``, ``lifelong sweep`` and ``lifelong compare``.

One stop request (SIGINT or SIGTERM, to the command's process or to a run's) stops them all:
no run starts after it, and every run in flight writes a checkpoint at its next step and stops,
so that the same command, started again, continues where they were."""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import multiprocessing.sharedctypes
import os
import pickle
import signal
import threading
import traceback
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from lifelong.config import RunConfig
from lifelong.errors import ConfigError, UserError
from lifelong.metrics import is_complete
from lifelong.runs.reuse import Found, check_folder, check_runs, folder_state

Report = Callable[[int, dict[str, Any]], None]


def available_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def choose_jobs(jobs: int | None, configs: Sequence[RunConfig]) -> int:
    """``jobs`` checked, or its default: as many runs at once as the CPUs hold at their threads
    each (``--threads``; the most any of ``configs`` asks for), at most one per run, at least one."""
    from lifelong.runs.session import DEFAULT_THREADS

    cpus = available_cpus()
    if jobs is None:
        threads = max((c.threads or DEFAULT_THREADS for c in configs), default=DEFAULT_THREADS)
        return max(1, min(cpus // threads, len(configs)))
    if not 1 <= jobs <= cpus:
        raise ConfigError(f"--jobs must lie in 1..{cpus} (the CPUs here), got {jobs}")
    return jobs


def outcome(doc: dict[str, Any] | None) -> str:
    """How a run of many ended, in words: ``complete``, ``not started``, or how far it got and
    why it stopped (``diverged after 2/5 tasks: the loss became nan at ...``)."""
    if doc is None:
        return "not started"
    if is_complete(doc):
        return "complete"
    done = doc.get("tasks_trained", len(doc["class_il"]["accuracy_matrix"]))
    return f"{doc['status']} after {done}/{doc['num_tasks']} tasks: {doc.get('message') or 'no message'}"


def run_one(config: RunConfig, stop: Callable[[], bool] | None = None, found: Found | None = None) -> dict[str, Any]:
    """Run ``config`` into ``config.out``: reuse it if complete there, resume it if it holds a
    checkpoint, else start it (over); ``found`` is what :func:`check_runs` found there (checked
    here when not given: a folder holding a run of other settings is refused, and never
    reused or cleared). ``stop()`` turning true stops it at its next step, with a checkpoint.
    Returns the metrics document."""
    from lifelong.runs.session import execute_run, prepare_run

    if found is None:
        (found,) = check_runs([config])
    if found.state == "complete":
        return found.doc
    if found.state == "resume":
        return execute_run(prepare_run(config, resume=True), stop=stop)
    return execute_run(prepare_run(replace(config, overwrite=True)), stop=stop)


def plan(config: RunConfig) -> Found:
    """What :func:`run_one` would do with ``config`` (``start``, ``resume``, ``complete``: reuse, or
    ``other``: refuse, see :class:`Found`), after checking it as ``--dry-run`` does
    (configuration, data and model); nothing is written."""
    from lifelong.runs.session import prepare_run

    state, _ = folder_state(Path(config.out))
    resolved = prepare_run(replace(config, overwrite=True), resume=state != "start", dry_run=True)
    return check_folder(config, lambda _: resolved)


def next_time(configs: Sequence[RunConfig]) -> dict[str, int]:
    """What the same command, started again, would do with its runs (their folders as they are
    now, their settings checked when the command started): how many it would reuse
    (``complete``), resume from a checkpoint (``resume``) and start from the beginning
    (``start``: not started, or stopped before its first checkpoint)."""
    counts = {"complete": 0, "resume": 0, "start": 0}
    for config in configs:
        counts[folder_state(Path(config.out))[0]] += 1
    return counts


class StopRequest:
    """One request to stop a command of many runs. SIGINT and SIGTERM set it (see :meth:`on_signals`);
    every run polls it at its step boundaries, and no run starts once it is set. It is a byte
    of shared memory, so that forked run processes see their parent's request and their parent
    theirs, written without a lock, so that a signal handler may set it at any moment."""

    def __init__(self) -> None:
        self._flag = multiprocessing.sharedctypes.RawValue("b", 0)

    def set(self, *_: Any) -> None:
        """Request the stop (also a signal handler: ``set(signum, frame)``)."""
        self._flag.value = 1

    def __call__(self) -> bool:
        return bool(self._flag.value)

    @contextmanager
    def on_signals(self) -> Iterator["StopRequest"]:
        """While the block runs, SIGINT and SIGTERM set the request instead of ending the process
        (in the main thread only; elsewhere signals cannot be handled)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self.set) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def stopped(docs: list[dict[str, Any] | None]) -> bool:
    """Whether a stop request ended :func:`run_all` early: a run was interrupted or not started."""
    return any(doc is None or doc["status"] == "interrupted" for doc in docs)


def tally(docs: list[dict[str, Any] | None]) -> dict[str, int]:
    """How many runs are in each state: ``complete``, ``interrupted``, ``diverged``, ``not started``."""
    counts = {"complete": 0, "interrupted": 0, "diverged": 0, "not started": 0}
    for doc in docs:
        state = "not started" if doc is None else "complete" if is_complete(doc) else doc["status"]
        counts[state] = counts.get(state, 0) + 1
    return counts


@contextmanager
def finishing() -> Iterator[None]:
    """SIGINT and SIGTERM ignored while the block runs: around the runs of a command of many runs
    (whose own stop request takes them while runs are in flight: :func:`run_all`)
    and what follows them, and after a run's training, while what was done is written and
    printed. There is nothing left to stop then, and a stop would cut the summary short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_all(configs: list[RunConfig], jobs: int = 1, report: Report | None = None) -> list[dict[str, Any] | None]:
    """Run every configuration (each with its own ``out``); ``jobs`` processes at a time, each
    with its configuration's threads (one unless it says otherwise). ``report(i, doc)`` is
    called as run ``i`` finishes. After a stop request (SIGINT or SIGTERM; see
    :class:`StopRequest`) no run starts and the runs in flight stop with a checkpoint: the
    documents of runs not started are ``None`` (see :func:`stopped`). Every run folder is
    checked first (:func:`check_runs`): when one holds a run of other settings, no run starts."""
    found = check_runs(configs)
    stop = StopRequest()
    with stop.on_signals():
        if jobs <= 1 or len(configs) <= 1:
            return _in_turn(configs, found, stop, report)
        return _in_processes(configs, found, jobs, stop, report)


def _finished(i: int, doc: dict[str, Any], stop: StopRequest, report: Report | None) -> None:
    if doc["status"] == "interrupted":  # the run's own handler took the signal: the request is the command's
        stop.set()
    if report:
        report(i, doc)


def _in_turn(configs: list[RunConfig], found: list[Found], stop: StopRequest,
             report: Report | None) -> list[dict[str, Any] | None]:
    """One run after the other, in this process."""
    docs: list[dict[str, Any] | None] = [None] * len(configs)
    for i, config in enumerate(configs):
        if stop():
            break
        docs[i] = run_one(config, stop=stop, found=found[i])
        _finished(i, docs[i], stop, report)
    return docs


def _in_processes(configs: list[RunConfig], found: list[Found], jobs: int, stop: StopRequest,
                  report: Report | None) -> list[dict[str, Any] | None]:
    """At most ``jobs`` runs at a time, each in a forked process of its own; the first error of
    a run stops the others (with their checkpoints) and is raised here once they have stopped."""
    context = multiprocessing.get_context("fork")
    docs: list[dict[str, Any] | None] = [None] * len(configs)
    waiting = list(range(len(configs)))[::-1]
    running: dict[Any, tuple[int, Any]] = {}
    failure: BaseException | None = None
    while running or (waiting and not stop()):
        while waiting and len(running) < jobs and not stop():
            i = waiting.pop()
            running.update([_start(context, i, configs[i], found[i], stop)])
        if not running:
            break
        for reader in multiprocessing.connection.wait(list(running)):
            i, process = running.pop(reader)
            kind, value = _receive(reader, process, configs[i])
            if kind == "error":
                failure = failure or value
                stop.set()
            elif value is not None:
                docs[i] = value
                _finished(i, value, stop, report)
    if failure is not None:
        raise failure
    return docs


def _start(context: Any, i: int, config: RunConfig, found: Found, stop: StopRequest) -> tuple[Any, tuple[int, Any]]:
    """Fork a process for run ``i``; its result comes back through the returned pipe's end."""
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(config, found, writer, stop), name=f"lifelong-run-{i}")
    process.start()
    writer.close()
    return reader, (i, process)


def _child(config: RunConfig, found: Found, writer: Any, stop: StopRequest) -> None:
    """A run's process: signals set the shared stop request (the run checkpoints and stops at
    its next step), and so does the death of the parent (a command killed with SIGKILL leaves no
    run behind, training on and holding the folder); the result, ``("doc", metrics or None if
    it did not start)`` or ``("error", exception)``, goes back to the parent."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop.set)
    parent = os.getppid()

    def requested() -> bool:
        return stop() or os.getppid() != parent

    try:
        result: tuple[str, Any] = ("doc", None if requested() else run_one(config, stop=requested, found=found))
    except BaseException as exc:  # anything: the parent reports it once the other runs have stopped
        result = ("error", _portable(exc, config))
    try:
        writer.send(result)
        writer.close()
    except OSError:  # the parent is gone (killed): the run's folder holds what it did
        pass


def _portable(exc: BaseException, config: RunConfig) -> BaseException:
    """``exc`` as it can travel to the parent: a user's mistake as it is (one line there), any
    other error as a RuntimeError carrying the run's traceback."""
    if isinstance(exc, UserError):
        try:
            return pickle.loads(pickle.dumps(exc))
        except Exception:
            return UserError(str(exc))
    return RuntimeError(f"the run in {config.out} failed:\n{traceback.format_exc()}")


def _receive(reader: Any, process: Any, config: RunConfig) -> tuple[str, Any]:
    """The result a run's process sent, once it has ended; an error if it died without one."""
    try:
        result = reader.recv()
    except EOFError:
        result = None
    reader.close()
    process.join()
    if result is None:
        how = f"signal {-process.exitcode}" if (process.exitcode or 0) < 0 else f"exit code {process.exitcode}"
        result = ("error", UserError(f"the process of the run in {config.out} ended without a result ({how}; out of "
                                     f"memory?); run the same command again to continue"))
    return result
