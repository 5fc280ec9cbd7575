"""A run resumed by another number of processes than it was started with: ``config.yaml``'s
``world_size`` is the layout that goes on, a note says so, and the interrupted run's hint under
torchrun names torchrun; ``--device cuda`` under torchrun without a GPU for the rank is one line
(a user's review of DISTRIBUTED.md; the runs themselves: tests/test_distributed.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lifelong.config import make_config
from lifelong.runs.session import execute_run, prepare_run
from tests.conftest import write_fashion_mnist


class _StopAt:
    """A stand-in for the SIGINT flag: asks to stop at the 3rd step boundary."""

    def __init__(self, *args) -> None:
        self.n = 0

    def __enter__(self) -> "_StopAt":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def __call__(self) -> bool:
        self.n += 1
        return self.n >= 3


def test_resumed_by_one_process_a_run_of_two_records_world_size_1(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import lifelong.runs.session as session

    root = tmp_path / "data"
    write_fashion_mnist(root, per_class_train=4, per_class_test=1)
    out = tmp_path / "run"
    config = make_config({}, {"benchmark": "split-fashion-mnist", "data_root": str(root), "out": str(out),
                              "method": "er", "batch_size": 4, "buffer_size": 10, "num_tasks": 2, "threads": 1})
    monkeypatch.setattr(session, "_StopFlag", _StopAt)
    assert execute_run(prepare_run(config))["status"] == "interrupted"
    monkeypatch.undo()
    stored = yaml.safe_load((out / "config.yaml").read_text())
    (out / "config.yaml").write_text(yaml.safe_dump({**stored, "world_size": 2}, sort_keys=False))  # as torchrun's
    run = prepare_run(config, resume=True)
    try:
        assert "world_size" not in yaml.safe_load((out / "config.yaml").read_text())  # one process goes on
        assert any("started with 2 processes" in note for note in run.notes), run.notes
    finally:
        run.lock.release()


def test_the_resume_hint_under_torchrun_names_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    from lifelong import distributed
    from lifelong.cli.single import _resume_command

    assert _resume_command("runs/x") == "lifelong run --resume runs/x"
    monkeypatch.setattr(distributed, "parallel", lambda: True)
    monkeypatch.setattr(distributed, "world", lambda: 2)
    assert _resume_command("runs/x").startswith("torchrun") and "2 processes" in _resume_command("runs/x")


def test_cuda_under_torchrun_without_a_gpu_for_the_rank_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from lifelong import distributed
    from lifelong.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # rather than the driver's traceback on each rank
    with pytest.raises(ConfigError, match="no CUDA device"):
        distributed.start(distributed.Layout(0, 2, 0), "cuda")
    with pytest.raises(ConfigError, match="--nproc-per-node"):
        distributed.check_gpus(2, 2)
    distributed.check_gpus(1, 2)


def test_ctrl_c_before_training_under_torchrun_is_said_by_rank_0_alone(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import lifelong.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "list_command", interrupted)
    for rank, said in (("1", False), ("0", True)):
        monkeypatch.setenv("RANK", rank)
        assert cli.main(["list"]) == 130
        assert ("interrupted" in capsys.readouterr().err) is said


def test_the_run_line_says_the_precision(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_fashion_mnist(root, per_class_train=2, per_class_test=1)
    config = make_config({}, {"benchmark": "split-fashion-mnist", "data_root": str(root), "out": str(tmp_path / "r"),
                              "method": "er", "batch_size": 4, "buffer_size": 10, "num_tasks": 2, "threads": 1,
                              "precision": "bf16", "device": "cpu"})
    run = prepare_run(config)
    try:
        assert "device cpu, bf16 [" in run.describe()  # `--precision bf16` was not in the line
    finally:
        run.lock.release()
