"""A data set, a backbone and a memory of the user's own, registered from files outside the
package, run end to end through the command line and the Python API (examples/)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import lifelong
from lifelong.cli import main
from lifelong.data.benchmarks import BENCHMARKS
from lifelong.errors import ConfigError, DataError
from lifelong.memory import MEMORIES
from lifelong.nets import BACKBONES
from lifelong.runs.session import import_user_code

EXAMPLES = Path(__file__).parents[1] / "examples"


@pytest.fixture
def registered():
    """Import the three examples as --import does; unregister them afterwards."""
    import_user_code([str(EXAMPLES / f) for f in ("my_dataset.py", "my_backbone.py", "my_memory.py")])
    yield
    BENCHMARKS.pop("stripes", None)
    for name in ("small-cnn", "torchvision-resnet18"):
        BACKBONES.pop(name, None)
    MEMORIES.pop("window", None)


def test_the_three_run_end_to_end_through_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("method: {name: er-window, terms: [{term: ce, on: both}], memory: window}\n")
    try:
        code = main(["run", "--import", str(EXAMPLES / "my_dataset.py"), "--import", str(EXAMPLES / "my_backbone.py"),
                     "--import", str(EXAMPLES / "my_memory.py"), "--config", str(recipe), "--benchmark", "stripes",
                     "--backbone", "small-cnn", "--buffer-size", "60", "--epochs", "2", "--lr", "0.05",
                     "--out", str(out), "--quiet"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        doc = json.loads((out / "metrics.json").read_text())
        assert doc["complete"] and doc["benchmark"] == "stripes" and len(doc["class_il"]["accuracy_matrix"]) == 3
        assert doc["task_il"]["average_accuracy"] > 60  # the stripes are learnt
        code = main(["list", "--import", str(EXAMPLES / "my_dataset.py"), "--import", str(EXAMPLES / "my_backbone.py"),
                     "--import", str(EXAMPLES / "my_memory.py")])
        listing = capsys.readouterr().out
        assert code == 0
        for line in ("stripes ", "small-cnn ", "window (registered)"):
            assert line in listing and "(registered)" in listing
    finally:
        BENCHMARKS.pop("stripes", None)
        BACKBONES.pop("small-cnn", None), BACKBONES.pop("torchvision-resnet18", None)
        MEMORIES.pop("window", None)


def test_the_three_run_end_to_end_through_the_api(registered, tmp_path):
    recipe = {"name": "er-window", "terms": [{"term": "ce", "on": "both"}], "memory": "window"}
    doc = lifelong.run(benchmark="stripes", backbone="small-cnn", method=recipe, buffer_size=60, seed=1,
                       out=str(tmp_path / "api"), lr=0.05)
    assert doc["complete"] and doc["task_il"]["average_accuracy"] > 50


def test_the_window_memory_keeps_the_last_examples(registered):
    memory = MEMORIES["window"](5, np.random.default_rng(0))
    for start in (0, 3, 6):
        memory.add(x=torch.arange(start, start + 3).float().view(3, 1), y=torch.arange(start, start + 3))
    assert sorted(memory.fields["y"][: len(memory)].tolist()) == [4, 5, 6, 7, 8]
    memory.add(x=torch.arange(20, 28).float().view(8, 1), y=torch.arange(20, 28))  # larger than the memory
    assert sorted(memory.fields["y"].tolist()) == [23, 24, 25, 26, 27]


def test_a_torchvision_model_becomes_a_backbone_with_a_features_classifier_split(registered):
    model = lifelong.build_backbone("torchvision-resnet18", (1, 28, 28), 10)
    x = torch.zeros(2, 1, 28, 28)
    assert model(x).shape == (2, 10) and model.features(x).shape == (2, 512)
    assert isinstance(lifelong.set_head(model, "cosine").classifier, lifelong.nets.CosineLinear)


def test_sources_from_arrays_torchvision_and_image_folders(tmp_path):
    x = np.random.default_rng(0).random((12, 6, 6, 3), dtype=np.float32)  # channels last, floats
    source = lifelong.source_from_arrays("mine", x, np.arange(12) % 3, x[:6], np.arange(6) % 3)
    assert source.train_x.shape == (12, 3, 6, 6) and source.train_x.dtype == torch.uint8 and source.num_classes == 3
    assert torch.equal(source.train_x[0, :, 1, 2], torch.from_numpy((x[0, 1, 2] * 255).round()).to(torch.uint8))
    with pytest.raises(DataError, match="float images must lie in"):
        lifelong.source_from_arrays("bad", x * 3, np.zeros(12), x, np.zeros(12))

    class Dataset:  # torchvision-like, without data/targets: read item by item
        classes = ["a", "b"]

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return np.full((5, 5), i * 10, dtype=np.uint8), i % 2

    source = lifelong.source_from_torchvision(Dataset(), Dataset(), name="ds")
    assert source.train_x.shape == (4, 1, 5, 5) and source.train_y.tolist() == [0, 1, 0, 1] and source.num_classes == 2

    from PIL import Image

    for split in ("train", "test"):
        for label in ("cat", "dog"):
            folder = tmp_path / "imgs" / split / label
            folder.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((4, 4, 3), 100 if label == "cat" else 200, dtype=np.uint8)).save(folder / f"{i}.png")
    source = lifelong.source_from_image_folder(tmp_path / "imgs")
    assert source.train_x.shape == (4, 3, 4, 4) and source.train_y.tolist() == [0, 0, 1, 1]
    assert int(source.train_x[2, 0, 0, 0]) == 200


def test_registration_mistakes_say_what_is_wrong():
    with pytest.raises(ValueError, match="is a built-in benchmark"):
        lifelong.register_benchmark("split-mnist", lambda: None, num_tasks=5)
    with pytest.raises(ConfigError, match="unknown backbone 'nope'"):
        lifelong.build_backbone("nope", (1, 8, 8), 2)
    lifelong.register_backbone("not-a-module", lambda shape, n: "oops")
    try:
        with pytest.raises(ConfigError, match="returned str, not a torch.nn.Module"):
            lifelong.build_backbone("not-a-module", (1, 8, 8), 2)
    finally:
        BACKBONES.pop("not-a-module")


def test_a_memory_too_small_for_a_users_benchmark_is_refused_by_a_dry_run(tmp_path, capsys):
    """Only once the user's data are loaded is the number of classes known: the dry run checks it
    too (iCaRL's herding needs a slot per class; stripes has six)."""
    out = tmp_path / "run"
    try:
        code = main(["run", "--import", str(EXAMPLES / "my_dataset.py"), "--benchmark", "stripes", "--method", "icarl",
                     "--buffer-size", "5", "--out", str(out), "--dry-run"])
    finally:
        BENCHMARKS.pop("stripes", None)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "at least 6, the number of classes, got 5" in err[0]
    assert not out.exists()
