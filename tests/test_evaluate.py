import torch

from lifelong.data.streams import class_incremental
from lifelong.evaluate import evaluate
from tests.conftest import make_source


class FixedScores(torch.nn.Module):
    """Scores every input alike: class 3 highest, then 1, then 0, then 2."""

    def forward(self, x):
        return torch.tensor([2.0, 3.0, 1.0, 4.0]).expand(len(x), 4)


def test_class_il_uses_all_classes_task_il_only_the_tasks_own():
    stream = class_incremental(make_source(num_classes=4, per_class_test=5), 2)
    class_il, task_il = evaluate(FixedScores(), stream, batch_size=3)
    # class-IL always predicts 3: right only on class 3, i.e. on half of task 1
    assert class_il == [0.0, 50.0]
    # task-IL: task 0 picks 1 among {0, 1}; task 1 picks 3 among {2, 3}: half right each
    assert task_il == [50.0, 50.0]


def test_evaluation_restores_training_mode():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    model.train()
    evaluate(model, class_incremental(make_source(), 2))
    assert model.training
