import gzip

import pytest
import torch

from lifelong.data.idx import read_idx, write_idx
from lifelong.errors import DataError


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_round_trip(tmp_path, name):
    x = torch.randint(0, 256, (5, 3, 4), dtype=torch.uint8)
    write_idx(tmp_path / name, x)
    y, sha = read_idx(tmp_path / name, ndim=3)
    assert torch.equal(x, y)
    assert len(sha) == 64


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match="not found: .*nothing-here"):
        read_idx(tmp_path / "nothing-here", ndim=1)


def test_truncated_file(tmp_path):
    x = torch.zeros(10, 4, 4, dtype=torch.uint8)
    write_idx(tmp_path / "f", x)
    data = (tmp_path / "f").read_bytes()
    (tmp_path / "f").write_bytes(data[:-5])
    with pytest.raises(DataError, match="truncated: its header claims 160 data bytes"):
        read_idx(tmp_path / "f", ndim=3)


def test_truncated_gzip(tmp_path):
    write_idx(tmp_path / "f.gz", torch.zeros(100, 8, 8, dtype=torch.uint8))
    data = (tmp_path / "f.gz").read_bytes()
    (tmp_path / "f.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="f.gz"):
        read_idx(tmp_path / "f.gz", ndim=3)


def test_too_long(tmp_path):
    write_idx(tmp_path / "f", torch.zeros(3, dtype=torch.uint8))
    with open(tmp_path / "f", "ab") as f:
        f.write(b"x")
    with pytest.raises(DataError, match="longer than its header"):
        read_idx(tmp_path / "f", ndim=1)


def test_bad_magic_and_wrong_dimensions(tmp_path):
    (tmp_path / "junk").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "junk", ndim=1)
    write_idx(tmp_path / "labels", torch.zeros(3, dtype=torch.uint8))
    with pytest.raises(DataError, match="1 dimensions; expected unsigned bytes with 3"):
        read_idx(tmp_path / "labels", ndim=3)


def test_not_gzip(tmp_path):
    (tmp_path / "f.gz").write_bytes(b"plain text")
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "f.gz", ndim=1)
    with gzip.open(tmp_path / "empty.gz", "wb"):
        pass
    with pytest.raises(DataError, match="bad magic"):
        read_idx(tmp_path / "empty.gz", ndim=1)


def test_corrupt_gzip_stream(tmp_path):
    write_idx(tmp_path / "f.gz", torch.randint(0, 256, (200, 8, 8), dtype=torch.uint8))
    data = bytearray((tmp_path / "f.gz").read_bytes())
    for i in range(40, len(data) - 20, 7):
        data[i] ^= 0xFF
    (tmp_path / "f.gz").write_bytes(bytes(data))
    with pytest.raises(DataError, match="f.gz"):
        read_idx(tmp_path / "f.gz", ndim=3)


def test_header_claiming_absurd_sizes_is_truncation_not_an_allocation(tmp_path):
    import struct

    (tmp_path / "f").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 4_000_000_000, 4_000_000_000, 4_000_000_000) + b"xy")
    with pytest.raises(DataError, match="truncated: its header claims 64000000000000000000000000000 data bytes"):
        read_idx(tmp_path / "f", ndim=3)
