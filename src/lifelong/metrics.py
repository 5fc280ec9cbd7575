"""Continual-learning metrics, all computed from one accuracy matrix.

``R[i][j]`` is the accuracy (percent) on task ``j``'s test set after training on tasks
``0..i``; ``T`` is the number of tasks; ``b[j]`` is the accuracy on task ``j`` of the model at
its random initialisation. Each function states its formula and source. A matrix with a single
row (joint training) has no sequence, so the sequence metrics return ``None`` for it. The online
metrics (A_auc, A_last, A_avg, F_last) come from the anytime curve instead (see below).

Class-IL forward transfer is computed but not shown (:data:`NOT_SHOWN`): there it measures the
random initialisation, not transfer (see :func:`forward_transfer`).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

Matrix = Sequence[Sequence[float]]

#: (scenario, metric) pairs that the accuracy matrix defines but that do not measure what their name
#: says in that scenario, with why. ``metrics.json`` keeps them; the end-of-run table and the report
#: show them as ``n/a`` with this note.
NOT_SHOWN: dict[tuple[str, str], str] = {
    ("class_il", "forward_transfer"): "class-IL forward transfer reflects only the initialisation: "
                                      "classes not yet trained are never predicted",
}


def _check(R: Matrix) -> int:
    if not R or any(len(row) != len(R[0]) for row in R):
        raise ValueError("the accuracy matrix must be a non-empty list of equally long rows")
    return len(R[0])


def average_accuracy(R: Matrix) -> float:
    """Final average accuracy: ``A = 1/T * sum_j R[T-1][j]`` (mean of the last row;
    Chaudhry et al., "Riemannian walk for incremental learning", ECCV 2018, Eq. 1)."""
    T = _check(R)
    return sum(R[-1]) / T


def average_incremental_accuracy(R: Matrix) -> float | None:
    """Average incremental accuracy: ``1/T * sum_i A_i`` with ``A_i = 1/(i+1) * sum_{j<=i} R[i][j]``,
    the mean accuracy on the tasks seen so far after each task (Rebuffi et al., "iCaRL",
    CVPR 2017). Needs one row per task."""
    T = _check(R)
    if len(R) != T:
        return None
    return sum(sum(R[i][: i + 1]) / (i + 1) for i in range(T)) / T


def forgetting(R: Matrix) -> float | None:
    """Average forgetting after the last task (Chaudhry et al., ECCV 2018, Eq. 3):
    ``F = 1/(T-1) * sum_{j<T-1} max_{j<=l<T-1} (R[l][j] - R[T-1][j])``: how far each earlier
    task fell from the best accuracy it had after being learnt and before the last task.
    (Rows before task ``j`` was trained are left out of the max, as in Mammoth; they matter in
    domain-IL, where an untrained task can already score well.) ``None`` when there is one task
    or the matrix has one row."""
    T = _check(R)
    if len(R) != T or T < 2:
        return None
    return sum(max(R[l][j] for l in range(j, T - 1)) - R[T - 1][j] for j in range(T - 1)) / (T - 1)


def backward_transfer(R: Matrix) -> float | None:
    """Backward transfer (Lopez-Paz and Ranzato, "Gradient episodic memory", NeurIPS 2017, Eq. 3):
    ``BWT = 1/(T-1) * sum_{j<T-1} (R[T-1][j] - R[j][j])``; negative means forgetting."""
    T = _check(R)
    if len(R) != T or T < 2:
        return None
    return sum(R[T - 1][j] - R[j][j] for j in range(T - 1)) / (T - 1)


def forward_transfer(R: Matrix, b: Sequence[float]) -> float | None:
    """Forward transfer (Lopez-Paz and Ranzato, NeurIPS 2017, Eq. 4):
    ``FWT = 1/(T-1) * sum_{j>=1} (R[j-1][j] - b[j])``: accuracy on a task before training on it,
    relative to a randomly initialised model.

    Meaningful in task-IL (and domain-IL), where a task is predicted among its own classes. In
    class-IL the classes of task ``j`` have never been a target before task ``j`` is trained, so
    the single head all but never predicts them: ``R[j-1][j]`` is 0 in practice, whatever the
    method, and the value is ``-1/(T-1) * sum_{j>=1} b[j]``, a property of the initialisation.
    It is kept in ``metrics.json`` but shown as n/a (:data:`NOT_SHOWN`)."""
    T = _check(R)
    if len(b) != T:
        raise ValueError(f"need the initial accuracy of each of the {T} tasks, got {len(b)}")
    if len(R) != T or T < 2:
        return None
    return sum(R[j - 1][j] - b[j] for j in range(1, T)) / (T - 1)


# -- online metrics: from the anytime curve (lifelong.anytime) -------------------------------------
# Koh et al., "Online Continual Learning on Class Incremental Blurry Task Configuration with Anytime
# Inference" (ICLR 2022) and Moon et al. (Si-Blurry, ICCV 2023), as the reference computes them at
# the end of ``main_worker`` in ``methods/_trainer.py`` of KHU-AGI/Si-Blurry. Accuracies are in
# percent over the test examples of the classes exposed so far; ``None`` entries (an evaluation
# with no such example) are left out.

def area_under_accuracy(periodic: Sequence[float | None]) -> float | None:
    """``A_auc = 1/n * sum_k a(k*K)``: the mean of the accuracies measured every K training
    examples, the area under the accuracy-over-examples curve divided by its length (Koh et al.'s
    ``A_AUC = sum_k a(k*K) * K``, normalised by the examples seen; the reference's
    ``np.mean(eval_results["test_acc"])``). The task-end evaluations are not part of it.
    ``None`` when there is no periodic evaluation."""
    kept = [a for a in periodic if a is not None]
    return sum(kept) / len(kept) if kept else None


def last_accuracy(task_end: Sequence[float | None]) -> float | None:
    """``A_last``: the accuracy on the exposed classes at the end of the last task."""
    return task_end[-1] if task_end else None


def average_task_end_accuracy(task_end: Sequence[float | None]) -> float | None:
    """``A_avg = 1/T * sum_t a_t``: the mean over task ends of the accuracy on the classes
    exposed by then (the reference's ``np.mean(task_records["task_acc"])``)."""
    kept = [a for a in task_end if a is not None]
    return sum(kept) / len(kept) if kept else None


def last_forgetting(per_class: Sequence[Sequence[float | None]]) -> float | None:
    """``F_last = mean_{c in C'} ( max_{t<T} a_t[c] - a_T[c] )``: per class, its best accuracy at
    an earlier task end minus its accuracy at the last, averaged over the classes ``C'`` whose
    best earlier accuracy is above 0 (the reference's loop over ``cls_acc[:-1, j]``). Rows: the
    per-class accuracies at each task end; ``None`` (a class not yet exposed) counts as 0, as
    the reference's zero. ``None`` with fewer than two task ends or no class in ``C'``."""
    if len(per_class) < 2:
        return None
    last, diffs = per_class[-1], []
    for c in range(len(last)):
        best = max((row[c] or 0.0) for row in per_class[:-1])
        if best > 0:
            diffs.append(best - (last[c] or 0.0))
    return sum(diffs) / len(diffs) if diffs else None


def online_summary(curve: Sequence[Mapping[str, Any]], eval_every: int, eval_seconds: float) -> dict[str, Any]:
    """The ``online`` block of ``metrics.json`` from an anytime curve
    (:class:`lifelong.anytime.AnytimeEvaluation`): the period, the number of periodic
    evaluations, A_auc, A_last, A_avg, F_last and the evaluation time."""
    periodic = [p["accuracy"] for p in curve if p["kind"] == "periodic"]
    ends = [p for p in curve if p["kind"] == "task_end"]
    return {"eval_every": eval_every, "evaluations": len(periodic), "a_auc": area_under_accuracy(periodic),
            "a_last": last_accuracy([p["accuracy"] for p in ends]),
            "a_avg": average_task_end_accuracy([p["accuracy"] for p in ends]),
            "f_last": last_forgetting([p["per_class"] for p in ends]), "eval_seconds": eval_seconds}


def mean_std(values: Sequence[float | None]) -> tuple[float, float] | None:
    """Mean and sample standard deviation (``n − 1`` in the denominator; 0 for one value) of a
    metric over seeds: the one rule for every table, figure and comparison. ``None`` values (a
    metric a run does not have, such as forgetting after joint training) are left out; ``None``
    when nothing is left."""
    kept = [float(v) for v in values if v is not None]
    if not kept:
        return None
    mean = sum(kept) / len(kept)
    if len(kept) == 1:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in kept) / (len(kept) - 1))


def is_complete(doc: Mapping[str, Any] | None) -> bool:
    """Whether a run counts in a summary over seeds: its ``metrics.json`` says ``"complete": true``.
    The one rule for every summary: a run that diverged, was interrupted or never started
    (``None``) is left out of the means and counted (:func:`count_complete`), never averaged."""
    return doc is not None and doc.get("complete") is True


def count_complete(complete: int, total: int) -> str:
    """How a summary shows the runs its means are over: ``"2/3 complete"``."""
    return f"{complete}/{total} complete"


def summarize(R: Matrix, b: Sequence[float]) -> dict[str, float | None]:
    """All of the above for one matrix, keyed by name (percent / percentage points)."""
    return {
        "average_accuracy": average_accuracy(R),
        "average_incremental_accuracy": average_incremental_accuracy(R),
        "forgetting": forgetting(R),
        "backward_transfer": backward_transfer(R),
        "forward_transfer": forward_transfer(R, b),
    }


# -- language models: a loss matrix (lifelong.lm) ----------------------------------------------------
# ``L[i][j]`` is the held-out loss (nats per token) on corpus ``j`` after training on corpora
# ``0..i``. Lower is better, so the accuracy formulas apply to ``-L``: a loss that rises after its
# corpus was learnt is forgetting, counted positive, as a falling accuracy is.

def _negated(L: Matrix) -> list[list[float]]:
    return [[-v for v in row] for row in L]


def loss_forgetting(L: Matrix) -> float | None:
    """Forgetting of a loss matrix: ``F = 1/(T-1) * sum_{j<T-1} (L[T-1][j] - min_{j<=l<T-1} L[l][j])``,
    the increase of each earlier corpus's loss over its best after being learnt (Chaudhry et
    al.'s forgetting, :func:`forgetting`, of ``-L``); positive means forgotten, in nats."""
    return forgetting(_negated(L))


def loss_backward_transfer(L: Matrix) -> float | None:
    """``1/(T-1) * sum_{j<T-1} (L[T-1][j] - L[j][j])``: how much the earlier corpora's losses rose
    from the end of their training to the end of the stream (positive: forgotten). It is minus
    :func:`backward_transfer` of ``-L``, so that its sign matches :func:`loss_forgetting`'s."""
    bwt = backward_transfer(_negated(L))
    return None if bwt is None else -bwt


def loss_summary(L: Matrix) -> dict[str, float | None]:
    """The loss matrix's metrics: final mean loss over all corpora, forgetting, loss increase."""
    T = _check(L)
    return {"final_mean_loss": sum(L[-1]) / T, "forgetting": loss_forgetting(L),
            "loss_increase": loss_backward_transfer(L)}
