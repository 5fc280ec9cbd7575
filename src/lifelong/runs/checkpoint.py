"""Checkpoints that survive crashes, disks that fill up and files that rot.

A checkpoint is one ``torch.save`` of plain containers and tensors (state dicts, never pickled
objects), loaded back with ``torch.load(weights_only=True)``. Each file is written to a
temporary name, flushed to disk and renamed; its SHA-256 is then written the same way next to
it (``.sha256``), so a checkpoint without a matching digest is one whose writing was cut
short. The newest :data:`KEEP` checkpoints are kept; reading falls back from a damaged one to
the one before and says so, and moves the damaged one to ``checkpoints/damaged/``, so that it
never again counts among the newest (pruning would otherwise delete the good ones written after
it). A checkpoint records :data:`FORMAT_VERSION`; others are refused.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path
from typing import Any

import torch

from lifelong.errors import UserError

FORMAT_VERSION = 1
KEEP = 2
DAMAGED = "damaged"  # the subfolder of checkpoints that could not be used
_NAME = re.compile(r"^ckpt-(\d{9})\.pt$")


class CheckpointError(UserError):
    """No usable checkpoint, or one that cannot be written."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file, flush it to disk, rename it over ``path``, sync the folder."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def step_of(path: Path) -> int:
    """The step a checkpoint was written at, from its name (``ckpt-000000123.pt``: 123)."""
    return int(_NAME.match(path.name).group(1))


class CheckpointStore:
    """The checkpoints of one run folder, in ``<run>/checkpoints``. :attr:`newest` is the newest
    one known to be whole: the one loaded, then each one written (``None`` before either), what
    a message may offer to resume from."""

    def __init__(self, run_dir: Path) -> None:
        self.folder = Path(run_dir) / "checkpoints"
        self.notes: list[str] = []  # what loading had to skip, for the log and the user
        self.newest: Path | None = None

    def paths(self) -> list[Path]:
        """Checkpoint files, newest first (by the step in their name)."""
        if not self.folder.is_dir():
            return []
        found = [p for p in self.folder.iterdir() if _NAME.match(p.name)]
        return sorted(found, key=lambda p: p.name, reverse=True)

    def written(self) -> list[Path]:
        """Checkpoint files whose writing finished (their digest is beside them), newest first:
        what a run can be resumed from, unless reading finds one damaged (:meth:`load_latest`)."""
        return [p for p in self.paths() if p.with_name(p.name + ".sha256").is_file()]

    def save(self, payload: dict[str, Any], step: int) -> Path:
        """Write ``payload`` as the checkpoint of ``step``; keep the newest :data:`KEEP`."""
        buffer = io.BytesIO()
        torch.save({"format_version": FORMAT_VERSION, **payload}, buffer)
        data = buffer.getvalue()
        path = self.folder / f"ckpt-{step:09d}.pt"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
            atomic_write_bytes(path.with_name(path.name + ".sha256"), hashlib.sha256(data).hexdigest().encode())
        except OSError as exc:
            good = next((p.name for p in self.paths() if p != path and self._digest_ok(p)), None)
            keep = f"; the last good checkpoint is {good}" if good else ""
            raise CheckpointError(f"cannot write a checkpoint to {self.folder}: {exc.strerror or exc}{keep}") from None
        self.newest = path
        for old in [p for p in self.paths() if p != path][KEEP - 1:]:
            old.unlink(missing_ok=True)
            old.with_name(old.name + ".sha256").unlink(missing_ok=True)
        return path

    @staticmethod
    def _digest_ok(path: Path) -> bool:
        digest = path.with_name(path.name + ".sha256")
        try:
            return digest.read_text().strip() == hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            return False

    def _set_aside(self, path: Path) -> str:
        """Move an unusable checkpoint and its digest to ``checkpoints/damaged/``; say where."""
        target = self.folder / DAMAGED
        try:
            target.mkdir(exist_ok=True)
            for p in (path, path.with_name(path.name + ".sha256")):
                if p.exists():
                    os.replace(p, target / p.name)
        except OSError as exc:
            return f"it could not be moved aside ({exc.strerror or exc})"
        return f"moved to checkpoints/{DAMAGED}/"

    def load_latest(self) -> tuple[dict[str, Any], Path] | None:
        """The newest checkpoint that is whole and readable, or ``None`` if there is none.

        Damaged or unfinished ones are moved aside (:meth:`_set_aside`) with a note in
        :attr:`notes`; a checkpoint of another format version is an error (it will not become
        readable by skipping it)."""
        for path in self.paths():
            if not self._digest_ok(path):
                self.notes.append(f"checkpoint {path.name} is damaged or was not finished (its SHA-256 does not "
                                  f"match); {self._set_aside(path)}, falling back to an earlier one")
                continue
            try:
                payload = torch.load(io.BytesIO(path.read_bytes()), weights_only=True)
            except Exception as exc:  # a file with a valid digest but unreadable contents
                self.notes.append(f"checkpoint {path.name} cannot be read ({type(exc).__name__}); "
                                  f"{self._set_aside(path)}, falling back to an earlier one")
                continue
            version = payload.get("format_version") if isinstance(payload, dict) else None
            if version != FORMAT_VERSION:
                raise CheckpointError(f"checkpoint {path} has format version {version!r}; this lifelong reads "
                                      f"version {FORMAT_VERSION} only (use the lifelong version that wrote it)")
            self.newest = path
            return payload, path
        return None
