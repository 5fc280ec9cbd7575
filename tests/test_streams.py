import pytest
import torch

from lifelong.data.benchmarks import BENCHMARKS, build_stream, get_benchmark
from lifelong.data.streams import Rotation, class_incremental, permuted, rotated
from lifelong.errors import ConfigError
from tests.conftest import make_source


def test_class_incremental_tasks_are_disjoint_and_cover_the_data(tiny_source):
    stream = class_incremental(tiny_source, 2)
    assert [t.classes for t in stream.tasks] == [(0, 1), (2, 3)]
    seen = torch.cat([t.train_idx for t in stream.tasks]).sort().values
    assert torch.equal(seen, torch.arange(len(tiny_source.train_y)))
    for t in stream.tasks:
        assert set(stream.labels("train", t.train_idx).tolist()) == set(t.classes)
        assert set(stream.labels("test", t.test_idx).tolist()) == set(t.classes)


def test_split_that_does_not_divide_is_refused(tiny_source):
    with pytest.raises(ConfigError, match="4 classes cannot be split into 3 tasks"):
        class_incremental(tiny_source, 3)


def test_class_order_shuffled_by_seed():
    source = make_source(num_classes=10, per_class_train=2, per_class_test=1)
    bench = get_benchmark("split-mnist")
    fixed = build_stream(bench, source, seed=0)
    assert [t.classes for t in fixed.tasks] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    a = build_stream(bench, source, seed=1, shuffle_classes=True)
    b = build_stream(bench, source, seed=1, shuffle_classes=True)
    c = build_stream(bench, source, seed=2, shuffle_classes=True)
    assert [t.classes for t in a.tasks] == [t.classes for t in b.tasks]
    assert [t.classes for t in a.tasks] != [t.classes for t in c.tasks]
    assert sorted(sum((t.classes for t in a.tasks), ())) == list(range(10))


def test_inputs_are_scaled_and_normalised(tiny_source):
    stream = class_incremental(tiny_source, 2)
    idx = torch.tensor([0, 5])
    x = stream.inputs("train", idx, 0)
    assert x.dtype == torch.float32
    assert torch.allclose(x, tiny_source.train_x[idx].float() / 255)
    tiny_source.mean, tiny_source.std = (0.5,), (0.25,)
    normed = class_incremental(tiny_source, 2).inputs("train", idx, 0)
    assert torch.allclose(normed, (x - 0.5) / 0.25)


def test_task_masks_and_joint(tiny_source):
    stream = class_incremental(tiny_source, 2)
    assert stream.task_masks().tolist() == [[True, True, False, False], [False, False, True, True]]
    joint = stream.joint()
    assert joint.num_train == len(tiny_source.train_y)
    assert joint.train_task.tolist() == [0] * 60 + [1] * 60


def test_permuted_tasks_permute_pixels_consistently(tiny_source):
    g = torch.Generator().manual_seed(0)
    stream = permuted(tiny_source, 3, g)
    assert stream.scenario == "domain-il" and all(t.classes == (0, 1, 2, 3) for t in stream.tasks)
    idx = torch.arange(4)
    raw = tiny_source.train_x[idx].float().div(255).flatten(1)
    for t in range(3):
        perm = stream.domain.perms[t]
        assert sorted(perm.tolist()) == list(range(64))
        assert torch.equal(stream.inputs("train", idx, t).flatten(1), raw[:, perm])
    # per-example task ids give the same as one task id for the whole batch
    mixed = stream.inputs("train", idx, torch.tensor([0, 1, 2, 1]))
    for i, t in enumerate([0, 1, 2, 1]):
        assert torch.equal(mixed[i], stream.inputs("train", idx[i:i + 1], t)[0])
    assert not torch.equal(stream.domain.perms[0], stream.domain.perms[1])


def test_rotation_by_90_degrees_is_rot90_and_zero_is_identity():
    x = torch.rand(2, 1, 6, 6)
    rot = Rotation(torch.tensor([0.0, 90.0]))
    assert torch.allclose(rot(x, 0), x, atol=1e-6)
    assert torch.allclose(rot(x, 1), torch.rot90(x, 1, (2, 3)), atol=1e-6)  # counter-clockwise
    mixed = rot(x, torch.tensor([1, 0]))
    assert torch.allclose(mixed[0], torch.rot90(x, 1, (2, 3))[0], atol=1e-6)
    assert torch.allclose(mixed[1], x[1], atol=1e-6)


def test_rotated_stream_angles_come_from_the_seed(tiny_source):
    a = rotated(tiny_source, 5, torch.Generator().manual_seed(3))
    b = rotated(tiny_source, 5, torch.Generator().manual_seed(3))
    assert torch.equal(a.domain.degrees, b.domain.degrees)
    assert ((a.domain.degrees >= 0) & (a.domain.degrees < 180)).all()


def test_every_benchmark_is_described_and_unknown_names_are_listed():
    assert {"split-mnist", "split-cifar10", "split-cifar100", "split-tiny-imagenet", "permuted-mnist",
            "rotated-mnist"} <= set(BENCHMARKS)
    with pytest.raises(ConfigError, match="unknown benchmark 'split-mnsit'; choose one of: split-mnist"):
        get_benchmark("split-mnsit")


def test_default_task_counts():
    assert get_benchmark("split-cifar100").num_tasks == 10
    assert get_benchmark("split-tiny-imagenet").num_tasks == 10
    assert get_benchmark("permuted-mnist").num_tasks == 20


def test_a_task_without_examples_is_refused():
    source = make_source(num_classes=4)
    keep = source.test_y < 2
    source.test_x, source.test_y = source.test_x[keep], source.test_y[keep]
    with pytest.raises(ConfigError, match=r"task 2 \(classes \[2, 3\]\) has no test examples"):
        class_incremental(source, 2)
    with pytest.raises(ConfigError, match="cannot be split into 8 tasks"):
        class_incremental(make_source(num_classes=4), 8)


def test_domain_task_count_is_bounded(tiny_source):
    with pytest.raises(ConfigError, match="must lie in 1..1000"):
        permuted(tiny_source, 2_000_000, torch.Generator())


def test_task_ids_of_any_integer_type(tiny_source):
    import numpy as np

    stream = permuted(tiny_source, 2, torch.Generator().manual_seed(0))
    idx = torch.arange(3)
    a = stream.inputs("train", idx, 1)
    assert torch.equal(stream.inputs("train", idx, np.int64(1)), a)
    assert torch.equal(stream.inputs("train", idx, torch.tensor(1)), a)


def test_a_permutation_is_undone_row_by_row():
    stream = permuted(make_source(num_classes=2, per_class_train=3, size=4), 3, torch.Generator().manual_seed(0))
    x = torch.rand(6, 1, 4, 4)
    tasks = torch.tensor([0, 1, 2, 2, 1, 0])
    shuffled = stream.domain(x, tasks)
    assert not torch.equal(shuffled, x)
    assert torch.equal(stream.domain.inverse(shuffled, tasks), x)
    assert torch.equal(stream.domain.inverse(stream.domain(x, 1), 1), x)


def test_views_of_a_permuted_stream_are_made_in_image_space():
    """A crop or flip of Permuted-MNIST's inputs must move image pixels: the view of a permuted
    image is the permuted view of the image (the same random draws), not a view of shuffled pixels."""
    from lifelong.data.strong_augment import strong_augment
    from lifelong.loop import _in_image_space

    stream = permuted(make_source(num_classes=2, per_class_train=3, size=8), 2, torch.Generator().manual_seed(0))
    images = torch.rand(4, 1, 8, 8)
    tasks = torch.tensor([0, 1, 1, 0])
    flip = lambda x: strong_augment(x, torch.Generator().manual_seed(3), padding=2)  # noqa: E731
    view = _in_image_space(stream, flip)(stream.domain(images, tasks), tasks)
    assert torch.equal(view, stream.domain(flip(images), tasks))
    assert not torch.equal(view, flip(stream.domain(images, tasks)))
    plain = class_incremental(make_source(num_classes=2, per_class_train=3, size=8), 1)
    assert torch.equal(_in_image_space(plain, flip)(images, tasks), flip(images))
