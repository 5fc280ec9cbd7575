import pickle

import numpy as np
import pytest
import torch

from lifelong.data.cifar import load_cifar10, load_cifar100, write_cifar_batch
from lifelong.errors import DataError


def _images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)


@pytest.fixture
def cifar10_root(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{i}", _images(4, i), [(i + k) % 10 for k in range(4)])
    write_cifar_batch(folder / "test_batch", _images(3, 9), [0, 1, 2])
    return tmp_path


def test_cifar10_reads_the_pickle_batches_channel_major(cifar10_root):
    source = load_cifar10(cifar10_root)
    assert source.train_x.shape == (20, 3, 32, 32) and source.train_x.dtype == torch.uint8
    assert source.train_y[:4].tolist() == [1, 2, 3, 4]
    # rows are 1024 red, then 1024 green, then 1024 blue values, each row-major
    assert torch.equal(source.train_x[0], torch.from_numpy(_images(4, 1)[0]))
    assert source.test_y.tolist() == [0, 1, 2] and source.mean is not None


def test_cifar100_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    write_cifar_batch(folder / "train", _images(5, 0), [99, 0, 5, 50, 7], label_key=b"fine_labels")
    write_cifar_batch(folder / "test", _images(2, 1), [1, 98], label_key=b"fine_labels")
    source = load_cifar100(tmp_path)
    assert source.num_classes == 100 and source.train_y.tolist() == [99, 0, 5, 50, 7]


def test_missing_batch_names_it(cifar10_root):
    (cifar10_root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3.*--download"):
        load_cifar10(cifar10_root)


def test_truncated_batch(cifar10_root):
    path = cifar10_root / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="test_batch is not a readable CIFAR batch"):
        load_cifar10(cifar10_root)


class _Evil:
    def __reduce__(self):
        return (print, ("owned",))


def test_pickles_that_would_run_code_are_refused(cifar10_root, capsys):
    path = cifar10_root / "cifar-10-batches-py" / "test_batch"
    with open(path, "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": [0]}, f, protocol=2)
    with pytest.raises(DataError, match="forbidden object .*print"):
        load_cifar10(cifar10_root)
    assert "owned" not in capsys.readouterr().out


def test_wrong_shape_and_labels(cifar10_root):
    folder = cifar10_root / "cifar-10-batches-py"
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f, protocol=2)
    with pytest.raises(DataError, match=r"shape \(N, 3072\)"):
        load_cifar10(cifar10_root)
    write_cifar_batch(folder / "test_batch", _images(2, 0), [0, 10])
    with pytest.raises(DataError, match="labels must lie in 0..9"):
        load_cifar10(cifar10_root)


def test_non_integer_labels(cifar10_root):
    folder = cifar10_root / "cifar-10-batches-py"
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": _images(2, 0).reshape(2, -1), b"labels": [b"cat", b"dog"]}, f, protocol=2)
    with pytest.raises(DataError, match="labels must be integers"):
        load_cifar10(cifar10_root)
