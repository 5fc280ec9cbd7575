"""The online metrics (A_auc, A_last, A_avg, F_last) on hand-made anytime curves, each against a
value worked out by hand as the reference (KHU-AGI/Si-Blurry, methods/_trainer.py) computes it."""
from __future__ import annotations

import pytest

from lifelong.metrics import (area_under_accuracy, average_task_end_accuracy, last_accuracy, last_forgetting,
                              online_summary)

# per-class accuracies at three task ends; None: the class was not exposed yet
PER_CLASS = [
    [90.0, 80.0, None, None],
    [70.0, 85.0, 60.0, None],
    [60.0, 50.0, 65.0, 40.0],
]


def test_area_under_accuracy_is_the_mean_of_the_periodic_accuracies():
    assert area_under_accuracy([10.0, 20.0, 60.0]) == pytest.approx(30.0)
    assert area_under_accuracy([10.0, None, 50.0]) == pytest.approx(30.0)  # an evaluation with no test example
    assert area_under_accuracy([]) is None


def test_last_and_average_task_end_accuracy():
    assert last_accuracy([50.0, 40.0, 31.0]) == 31.0
    assert average_task_end_accuracy([50.0, 40.0, 30.0]) == pytest.approx(40.0)
    assert last_accuracy([]) is None and average_task_end_accuracy([]) is None


def test_last_forgetting_by_hand():
    # class 0: best earlier 90 (not the last row's 60) -> 30; class 1: best earlier 85, at the second task end, not
    # the first -> 35; class 2: exposed at the second task end, 60 -> 65: -5; class 3: never above 0 before the last
    # task end, left out (as the reference's `if np.max(cls_acc[:-1, j]) > 0`)
    assert last_forgetting(PER_CLASS) == pytest.approx((30.0 + 35.0 - 5.0) / 3)


def test_last_forgetting_leaves_out_classes_never_right_before_and_needs_two_task_ends():
    assert last_forgetting([[0.0, 50.0], [10.0, 20.0]]) == pytest.approx(30.0)  # class 0 left out
    assert last_forgetting([[0.0, None], [10.0, 20.0]]) is None  # no class qualifies
    assert last_forgetting([[90.0, 80.0]]) is None  # one task end (joint training)


def _point(seen, kind, accuracy, per_class=None, task=0):
    return {"examples_seen": seen, "task": task, "kind": kind, "accuracy": accuracy, "exposed_classes": 2,
            "per_class": per_class or [accuracy, None]}


def test_online_summary_keeps_task_end_evaluations_out_of_a_auc():
    curve = [_point(110, "periodic", 80.0), _point(210, "periodic", 60.0), _point(250, "task_end", 10.0, [10.0, 0.0]),
             _point(310, "periodic", 40.0, task=1), _point(350, "task_end", 30.0, [5.0, 40.0], task=1)]
    summary = online_summary(curve, 100, 1.5)
    assert summary == {"eval_every": 100, "evaluations": 3, "a_auc": pytest.approx(60.0), "a_last": 30.0,
                       "a_avg": pytest.approx(20.0), "f_last": pytest.approx(5.0), "eval_seconds": 1.5}
