"""Reader for the IDX format of MNIST and Fashion-MNIST (LeCun et al., 1998).

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian int32 per dimension, then the values. Files may be gzip-compressed. The reader
checks the structure and returns a uint8 tensor that owns its memory (no extra copy is made).
"""
from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from pathlib import Path

import torch

from lifelong.errors import DataError

_UBYTE = 0x08
_CHUNK = 1 << 20


def read_idx(path: Path, *, ndim: int, hint: str = "") -> tuple[torch.Tensor, str]:
    """Read an IDX file of unsigned bytes with ``ndim`` dimensions.

    Returns the tensor and the SHA-256 of the uncompressed contents. Raises :class:`DataError`
    naming the file when it is missing, truncated, too long or not an IDX file of that shape.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}{hint}")
    opener = gzip.open if path.suffix == ".gz" else open
    digest = hashlib.sha256()
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0:
                raise DataError(f"{path} is not an IDX file (bad magic number){hint}")
            if head[2] != _UBYTE or head[3] != ndim:
                raise DataError(
                    f"{path} has type 0x{head[2]:02x} with {head[3]} dimensions; expected unsigned "
                    f"bytes with {ndim}{hint}"
                )
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise DataError(f"{path} is truncated (header cut short){hint}")
            dims = struct.unpack(f">{ndim}I", dims_raw)
            count = 1
            for d in dims:
                count *= d
            # a header claiming more than the file can hold is refused before anything is
            # allocated (deflate compresses at most about 1032:1)
            on_disk = path.stat().st_size
            most = on_disk * 1032 + 1024 if opener is gzip.open else on_disk - 4 - 4 * ndim
            if count > most:
                raise DataError(f"{path} is truncated: its header claims {count} data bytes, more than the "
                                f"file can hold{hint}")
            buffer = bytearray(count)
            view, got = memoryview(buffer), 0
            while got < count:
                n = f.readinto(view[got:got + _CHUNK])
                if not n:
                    raise DataError(f"{path} is truncated: {got} of {count} data bytes present{hint}")
                got += n
            if f.read(1):
                raise DataError(f"{path} is longer than its header says{hint}")
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read {path}: {exc}{hint}") from None
    digest.update(head)
    digest.update(dims_raw)
    digest.update(buffer)
    if count == 0:
        return torch.empty(dims, dtype=torch.uint8), digest.hexdigest()
    return torch.frombuffer(buffer, dtype=torch.uint8).view(dims), digest.hexdigest()


def write_idx(path: Path, array: torch.Tensor) -> None:
    """Write a uint8 tensor as an IDX file (gzip-compressed when the name ends in ``.gz``).

    Used by the tests to make small files in the real format.
    """
    path = Path(path)
    data = array.to(torch.uint8).contiguous()
    header = bytes([0, 0, _UBYTE, data.dim()]) + struct.pack(f">{data.dim()}I", *data.shape)
    payload = header + data.numpy().tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
