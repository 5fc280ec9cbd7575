"""The run folder: refusing folders that hold something, proving them writable, one writer at a
time (a lock that the operating system releases when the process dies, even by SIGKILL), and
atomic writes of text files."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from lifelong.runs.checkpoint import atomic_write_bytes
from lifelong.config import check_path_text
from lifelong.errors import ConfigError

RUN_FILES = ("config.yaml", "metrics.json", "accuracy_class_il.csv", "accuracy_task_il.csv", "run.log", "model.pt",
             "events.jsonl", "steps.csv", "adapters.pt")


def check_out_dir(path: Path, overwrite: bool) -> None:
    """Refuse an output folder that holds anything, unless ``overwrite``; refuse a file."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output path {path} is a file, not a folder; choose another --out")
    if path.is_dir() and any(p.name != "run.lock" for p in path.iterdir()) and not overwrite:
        raise ConfigError(f"output folder {path} exists and is not empty; pass --overwrite or choose another --out")


def check_runs_folder(path: Path, what: str = "--out") -> None:
    """Refuse a folder of many runs (``--seeds``, a comparison's, a sweep's) that cannot be one:
    a path no file system holds (:func:`lifelong.config.check_path_text`), a file, or a path
    below a file."""
    check_path_text(str(path), f"{what} {path}" if len(str(path)) <= 80 else what)
    above = Path(path)
    while not above.exists() and above != above.parent:
        above = above.parent
    if above.exists() and not above.is_dir():
        where = "is a file" if above == Path(path) else f"is below the file {above}"
        raise ConfigError(f"output path {path} {where}, not a folder; choose another --out")


def open_out_dir(path: Path, lock: "RunLock", *, clear: bool = True, overwrite: bool = False) -> None:
    """Create the folder, take its lock, prove it writable; with ``clear`` (a new run) refuse it
    if it holds anything besides ``run.lock`` unless ``overwrite``, then remove a previous run's
    files (metrics first, so that nothing stale looks complete). The lock comes before any look
    inside, so a second run started at the same moment is refused having changed nothing."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot write to output folder {path}: {exc.strerror or exc}; choose another --out") from None
    if lock.fd is None:
        lock.acquire()
    if clear:
        check_out_dir(path, overwrite)
    try:
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
        if clear:
            _clear(path)
    except OSError as exc:
        raise ConfigError(f"cannot write to output folder {path}: {exc.strerror or exc}; choose another --out") from None


def _clear(path: Path) -> None:
    """Remove the files a run writes (``--overwrite``); other files stay."""
    for name in RUN_FILES:
        (path / name).unlink(missing_ok=True)
    for sub in ("checkpoints/damaged", "checkpoints", "tensorboard"):
        if (path / sub).is_dir():
            for f in (path / sub).iterdir():
                if f.is_file():
                    f.unlink()


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file, flush it to disk, then rename it over ``path``."""
    atomic_write_bytes(path, text.encode("utf-8"))


class RunLock:
    """An exclusive lock on ``<run>/run.lock`` for as long as the run writes there; the file holds
    the writer's process id. The file stays when the run ends, emptied: deleting it would let a
    run that had opened it before the deletion lock the removed file while a third locks a new
    one, two writers at once."""

    NAME = "run.lock"

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / self.NAME
        self.fd: int | None = None

    def _held(self, holder: str) -> str:
        """The refusal when another process holds the lock."""
        return (f"another lifelong run (pid {holder}) is writing to {self.path.parent}; "
                f"wait for it to finish or choose another --out")

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot write to output folder {self.path.parent}: {exc.strerror or exc}; "
                              f"choose another --out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ConfigError(self._held(holder)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd

    def release(self) -> None:
        """Empty the file (no stale process id), then close it, which releases the lock."""
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None


class CommandLock(RunLock):
    """One command of many runs (``--seeds``, ``compare``, ``sweep``) at a time in a folder, on
    ``<folder>/command.lock``, held from before its first run until its summary is written (the
    runs' processes share it). A second command on the same folder is refused at once, having
    changed nothing: without it, two commands started together could each take some of the runs
    and stop each other's (each refused by a run the other holds), neither finishing."""

    NAME = "command.lock"

    def _held(self, holder: str) -> str:
        return (f"another lifelong command (pid {holder}) is running the runs in {self.path.parent}; wait for "
                f"it to finish, or choose another --out")

    def __enter__(self) -> "CommandLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot write to output folder {self.path.parent}: {exc.strerror or exc}; "
                              f"choose another --out") from None
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
