import pytest

from lifelong import metrics

# rows: after training task i; columns: task j (percent)
R = [
    [90.0, 10.0, 20.0],
    [95.0, 80.0, 40.0],
    [60.0, 50.0, 85.0],
]
b = [10.0, 15.0, 25.0]  # accuracy at random initialisation


def test_average_accuracy_is_the_mean_of_the_last_row():
    assert metrics.average_accuracy(R) == pytest.approx((60 + 50 + 85) / 3)


def test_average_incremental_accuracy():
    # after task 0: 90; after task 1: (95 + 80) / 2; after task 2: (60 + 50 + 85) / 3
    assert metrics.average_incremental_accuracy(R) == pytest.approx((90 + 87.5 + 65) / 3)


def test_forgetting_uses_the_best_earlier_accuracy():
    # task 0 peaked at 95 (after task 1), ends at 60; task 1 peaked at 80, ends at 50
    assert metrics.forgetting(R) == pytest.approx(((95 - 60) + (80 - 50)) / 2)


def test_forgetting_ignores_accuracy_before_a_task_was_learnt():
    # domain-IL-like: task 1 scored 85 before it was trained, 70 after; it is not forgotten
    domain = [[90.0, 85.0, 80.0], [88.0, 70.0, 75.0], [80.0, 70.0, 95.0]]
    assert metrics.forgetting(domain) == pytest.approx(((90 - 80) + (70 - 70)) / 2)


def test_backward_transfer_compares_with_just_after_learning():
    assert metrics.backward_transfer(R) == pytest.approx(((60 - 90) + (50 - 80)) / 2)


def test_forward_transfer_compares_with_random_initialisation():
    assert metrics.forward_transfer(R, b) == pytest.approx(((10 - 15) + (40 - 25)) / 2)
    with pytest.raises(ValueError, match="initial accuracy of each of the 3 tasks"):
        metrics.forward_transfer(R, b[:2])


def test_single_row_joint_training_has_no_sequence_metrics():
    joint = [[97.0, 95.0, 96.0]]
    s = metrics.summarize(joint, b)
    assert s["average_accuracy"] == pytest.approx(96.0)
    assert s["forgetting"] is None and s["backward_transfer"] is None and s["forward_transfer"] is None
    assert s["average_incremental_accuracy"] is None


def test_one_task_has_no_forgetting_and_ragged_matrices_are_refused():
    assert metrics.forgetting([[80.0]]) is None
    with pytest.raises(ValueError, match="equally long rows"):
        metrics.average_accuracy([[1.0, 2.0], [3.0]])
