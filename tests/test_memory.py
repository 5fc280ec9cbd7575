import numpy as np
import pytest
import torch

from lifelong.memory import ReservoirBuffer
from tests.test_plugins_and_memories import Identity  # features = the flattened input


def _offer(buffer, start, n):
    ids = torch.arange(start, start + n)
    buffer.add(x=ids.float().unsqueeze(1), y=ids)


def test_fills_in_order_then_keeps_capacity():
    buffer = ReservoirBuffer(5, np.random.default_rng(0))
    _offer(buffer, 0, 3)
    assert len(buffer) == 3 and buffer.fields["y"][:3].tolist() == [0, 1, 2]
    _offer(buffer, 3, 2)
    assert buffer.fields["y"].tolist() == [0, 1, 2, 3, 4]
    _offer(buffer, 5, 100)
    assert len(buffer) == 5 and buffer.seen == 105
    assert len(set(buffer.fields["y"].tolist())) == 5
    assert torch.equal(buffer.fields["x"].squeeze(1).long(), buffer.fields["y"])  # rows stay together


def test_every_offered_example_is_kept_with_equal_probability():
    capacity, stream, trials = 10, 60, 3000
    counts = np.zeros(stream)
    rng = np.random.default_rng(1)
    for _ in range(trials):
        buffer = ReservoirBuffer(capacity, rng)
        for start in range(0, stream, 7):  # uneven batches, straddling the moment the buffer fills
            _offer(buffer, start, min(7, stream - start))
        counts[buffer.fields["y"].numpy()] += 1
    p = capacity / stream
    expected = trials * p
    # each count is Binomial(trials, p): 4.5 standard deviations is a false alarm once in ~150,000 examples
    assert np.all(np.abs(counts - expected) < 4.5 * np.sqrt(trials * p * (1 - p))), counts
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 120  # 59 degrees of freedom: the 99.999th percentile is about 113 (counts are not independent)


class _Draws:
    """A generator stub whose uniform draws are given, to pin down collisions inside one batch."""

    def __init__(self, uniforms):
        self.uniforms = np.array(uniforms)

    def random(self, n):
        return self.uniforms[:n]


def test_each_slot_draw_is_uniform_on_zero_to_t():
    """Algorithm R: the t-th offered example (from 0) draws j ~ U{0..t} and takes slot j if
    j < capacity. Pinned with given uniforms: u in [k/(t+1), (k+1)/(t+1)) must give j = k.
    Catches U{0..t-1} (keeping new examples too often) and U{1..t}."""
    capacity = 4
    for t in (4, 5, 9):
        for k in range(t + 1):
            buffer = ReservoirBuffer(capacity, np.random.default_rng(0))
            _offer(buffer, 0, t)  # examples 0..t-1: the buffer is full from t = 4 on
            before = buffer.fields["y"].tolist()
            buffer.rng = _Draws([(k + 0.5) / (t + 1)])
            _offer(buffer, t, 1)
            after = buffer.fields["y"].tolist()
            if k < capacity:
                assert after[k] == t and after[:k] + after[k + 1:] == before[:k] + before[k + 1:], (t, k)
            else:
                assert after == before, (t, k)


def test_collisions_in_a_batch_resolve_as_if_offered_one_by_one():
    buffer = ReservoirBuffer(4, np.random.default_rng(0))
    _offer(buffer, 0, 4)
    # examples t = 4..7 draw floor(u * (t + 1)) = 2, 5, 2, 0: 4 and 6 both take slot 2, 5 is rejected
    buffer.rng = _Draws([2.5 / 5, 5.5 / 6, 2.5 / 7, 0.5 / 8])
    _offer(buffer, 4, 4)
    assert buffer.fields["y"].tolist() == [7, 1, 6, 3]  # 6 overwrote 4, as it came later
    assert buffer.seen == 8


def test_sample_is_distinct_and_consistent():
    buffer = ReservoirBuffer(20, np.random.default_rng(0))
    _offer(buffer, 0, 12)
    out = buffer.sample(8)
    assert len(set(out["y"].tolist())) == 8
    assert torch.equal(out["x"].squeeze(1).long(), out["y"])
    assert torch.equal(buffer.fields["y"][out["index"]], out["y"])
    assert len(buffer.sample(50)["y"]) == 12  # never more than stored
    with pytest.raises(ValueError, match="empty"):
        ReservoirBuffer(3, np.random.default_rng(0)).sample(1)


def test_state_dict_resumes_identically():
    a = ReservoirBuffer(6, np.random.default_rng(5))
    _offer(a, 0, 20)
    b = ReservoirBuffer(6, np.random.default_rng(99))
    b.load_state_dict(a.state_dict())
    for start in (20, 27):
        _offer(a, start, 7)
        _offer(b, start, 7)
    assert torch.equal(a.fields["y"], b.fields["y"]) and a.seen == b.seen
    assert torch.equal(a.sample(3)["y"], b.sample(3)["y"])


def test_stores_extra_fields_like_logits_and_task_ids():
    buffer = ReservoirBuffer(3, np.random.default_rng(0))
    buffer.add(x=torch.rand(2, 5), y=torch.tensor([1, 2]), task=torch.tensor([0, 0]), logits=torch.rand(2, 10))
    assert buffer.fields["logits"].shape == (3, 10) and buffer.fields["task"].dtype == torch.long


def test_contents_do_not_depend_on_sampling():
    a = ReservoirBuffer(5, np.random.default_rng(3), sample_generator=np.random.default_rng(10))
    b = ReservoirBuffer(5, np.random.default_rng(3), sample_generator=np.random.default_rng(11))
    for start in range(0, 60, 6):
        _offer(a, start, 6)
        _offer(b, start, 6)
        a.sample(4)  # only a is sampled
    assert torch.equal(a.fields["y"], b.fields["y"])


def test_storage_is_bounded_by_the_examples_that_can_arrive():
    buffer = ReservoirBuffer(10**9, np.random.default_rng(0), max_rows=30)
    for start in range(0, 30, 10):
        _offer(buffer, start, 10)
    assert buffer.fields["y"].shape == (30,) and buffer.fields["y"].tolist() == list(range(30))


# -- the class- and task-balanced memories use every slot (issue 11) ---------------------------

from collections import Counter  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lifelong.data.source import Source  # noqa: E402
from lifelong.data.streams import class_incremental  # noqa: E402
from lifelong.loop import TrainState  # noqa: E402
from lifelong.memory import HerdingBuffer, TaskBalancedBuffer, balanced_quotas  # noqa: E402
from tests.conftest import make_images, make_source  # noqa: E402


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 400), st.lists(st.integers(0, 60), min_size=1, max_size=12))
def test_quotas_use_every_slot_and_differ_by_at_most_one(capacity, caps):
    quotas = balanced_quotas(capacity, caps)
    assert all(0 <= q <= c for q, c in zip(quotas, caps))
    assert sum(quotas) == min(capacity, sum(caps))  # every slot used, as far as there are examples
    short = [i for i, (q, c) in enumerate(zip(quotas, caps)) if q < c]  # parts that would take more
    for i in short:
        assert all(q <= quotas[i] + 1 for q in quotas)  # nobody has more than one above a part left short
        assert all(quotas[i] >= quotas[j] for j in short if j > i)  # the remainder went to the first parts


def test_quotas_by_hand():
    assert balanced_quotas(10, [99] * 4) == [3, 3, 2, 2]  # the first classes get the remainder
    assert balanced_quotas(3, [99] * 5) == [1, 1, 1, 0, 0]  # fewer slots than classes: the first ones
    assert balanced_quotas(12, [6, 6, 10, 1]) == [4, 4, 3, 1]  # a short class's slots go to the others
    assert balanced_quotas(12, [2, 2]) == [2, 2]


def _herd(stream, capacity):
    memory = HerdingBuffer(capacity, np.random.default_rng(0))
    state = TrainState(Identity(), None, stream, None, memory, 8)
    counts = []
    for task in stream.tasks:
        state.task = task
        memory.end_task(state)
        counts.append(Counter(memory.fields["y"][: len(memory)].tolist()))
    return memory, counts


def test_herding_uses_every_slot_with_a_remainder():
    stream = class_incremental(make_source(num_classes=4, per_class_train=10), 2)
    memory, counts = _herd(stream, 10)
    assert counts[0] == {0: 5, 1: 5}
    assert counts[1] == {0: 3, 1: 3, 2: 2, 3: 2} and len(memory) == 10
    memory, counts = _herd(stream, 7)
    assert counts[0] == {0: 4, 1: 3} and counts[1] == {0: 2, 1: 2, 2: 2, 3: 1}


def test_herding_gives_a_short_class_s_slots_to_the_others():
    train_y = torch.tensor([0] * 10 + [1] * 10 + [2] * 10 + [3] * 1)
    test_y = torch.arange(4).repeat(2)
    source = Source("short", make_images(train_y), train_y, make_images(test_y), test_y, num_classes=4)
    memory, counts = _herd(class_incremental(source, 2), 12)
    assert counts[1] == {0: 4, 1: 4, 2: 3, 3: 1} and len(memory) == 12


def test_herding_keeps_the_head_of_each_order_when_quotas_shrink():
    stream = class_incremental(make_source(num_classes=4, per_class_train=10), 2)
    memory = HerdingBuffer(10, np.random.default_rng(0))
    state = TrainState(Identity(), None, stream, None, memory, 8, task=stream.tasks[0])
    memory.end_task(state)
    first = {c: memory.fields["x"][rows].clone() for c, rows in memory.order.items()}
    state.task = stream.tasks[1]
    memory.end_task(state)
    for c in (0, 1):
        assert torch.equal(memory.fields["x"][memory.order[c]], first[c][:3])


def _task_balanced(num_tasks, capacity, per_class_train=10):
    stream = class_incremental(make_source(num_classes=2 * num_tasks, per_class_train=per_class_train), num_tasks)
    memory = TaskBalancedBuffer(capacity, np.random.default_rng(0))
    state = TrainState(Identity(), None, stream, None, memory, 8)
    for task in stream.tasks:
        state.task = task
        memory.end_task(state)
    return Counter(memory.fields["task"][: len(memory)].tolist()) if len(memory) else Counter()


def test_task_balanced_uses_every_slot():
    assert _task_balanced(4, 10) == {0: 3, 1: 3, 2: 2, 3: 2}  # the first tasks get the remainder
    assert _task_balanced(5, 3) == {0: 1, 1: 1, 2: 1}  # fewer slots than tasks: the first ones
    assert _task_balanced(2, 8) == {0: 4, 1: 4}
    assert _task_balanced(3, 100, per_class_train=5) == {0: 10, 1: 10, 2: 10}  # all there is


def test_a_short_task_leaves_its_slots_to_the_later_tasks():
    train_y = torch.tensor([0, 1] + [2] * 10 + [3] * 10 + [4] * 10 + [5] * 10)
    test_y = torch.arange(6).repeat(2)
    source = Source("short", make_images(train_y), train_y, make_images(test_y), test_y, num_classes=6)
    stream = class_incremental(source, 3)
    memory = TaskBalancedBuffer(12, np.random.default_rng(0))
    state = TrainState(Identity(), None, stream, None, memory, 8)
    for task in stream.tasks:
        state.task = task
        memory.end_task(state)
    assert Counter(memory.fields["task"][: len(memory)].tolist()) == {0: 2, 1: 5, 2: 5}
