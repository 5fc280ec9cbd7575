"""ReLoop2's error memory (lifelong.plugins.error_memory) and the prequential protocol
(lifelong.prequential): hashing, the compensation by hand, FIFO with a constant footprint, the
refresh after each prediction, and a drifting stream where the memory helps."""
from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn as nn

from lifelong.data.drift import gradual_rotation
from lifelong.data.streams import class_incremental
from lifelong.methods import build_recipe
from lifelong.nets import build_backbone
from lifelong.optim import SGD
from lifelong.loop import train
from lifelong.plugins import PLUGINS
from lifelong.plugins.error_memory import ErrorMemory, ErrorMemoryPlugin
from lifelong.prequential import prequential
from tests.conftest import make_source, run_cli


class Linear(nn.Module):
    """A classifier with the library's split: identity features, a linear head."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.features = nn.Identity()
        self.classifier = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        with torch.no_grad():
            self.classifier.weight.copy_(weight)

    def forward(self, x):
        return self.classifier(self.features(x))


# -- hashing ------------------------------------------------------------------------------------

def test_hashing_is_deterministic_by_seed():
    keys = torch.randn(200, 16, generator=torch.Generator().manual_seed(1))
    a, b, c = ErrorMemory(bits=5, seed=3), ErrorMemory(bits=5, seed=3), ErrorMemory(bits=5, seed=4)
    assert torch.equal(a.bucket(keys), b.bucket(keys))
    assert not torch.equal(a.bucket(keys), c.bucket(keys))
    assert int(a.bucket(keys).max()) < 32 and int(a.bucket(keys).min()) >= 0
    # the bucket reads the signs of the projections as a binary number, bit j from hyperplane j
    signs = (keys @ a.planes > 0).long()
    assert torch.equal(a.bucket(keys), sum(signs[:, j] * 2 ** j for j in range(5)))


def test_similar_keys_share_buckets_more_often_than_random_ones():
    g = torch.Generator().manual_seed(0)
    keys = torch.randn(2000, 32, generator=g)
    near = keys + 0.1 * torch.randn(2000, 32, generator=g)
    other = torch.randn(2000, 32, generator=g)
    memory = ErrorMemory(bits=6, seed=0)
    same_near = (memory.bucket(keys) == memory.bucket(near)).float().mean()
    same_random = (memory.bucket(keys) == memory.bucket(other)).float().mean()
    assert same_near > 0.6 and same_random < 0.05


# -- the compensation by hand -------------------------------------------------------------------

def _tiny_memory(**options) -> ErrorMemory:
    memory = ErrorMemory(bits=1, slots=4, k=2, temperature=0.5, lam=0.5, **options)
    memory.planes = torch.tensor([[0.0], [1.0]])  # bucket = [x_1 > 0]
    return memory


FEATURES = torch.tensor([[1.0, 0.2], [1.0, 1.0], [-1.0, 2.0], [1.0, -0.05]])  # buckets 1, 1, 1, 0
LABELS = torch.tensor([0, 2, 1, 1])
PROBS = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]])
RESIDUALS = [[0.4, -0.3, -0.1], [-0.2, -0.5, 0.7], [-0.1, 0.9, -0.8], [-0.3, 0.7, -0.4]]  # onehot(y) - p


def _cos(u, v) -> float:
    return sum(a * b for a, b in zip(u, v)) / math.sqrt(sum(a * a for a in u) * sum(b * b for b in v))


def test_residuals_are_the_label_minus_the_prediction():
    assert torch.allclose(ErrorMemory.residuals(PROBS, LABELS), torch.tensor(RESIDUALS), atol=1e-7)


def test_the_compensation_equals_a_hand_computation():
    memory = _tiny_memory()
    memory.write(FEATURES, ErrorMemory.residuals(PROBS, LABELS))
    query, p = [2.0, 0.5], [0.5, 0.25, 0.25]
    # the query's bucket (x_1 > 0) holds examples 0, 1, 2; example 3 is nearer than 1 but in the
    # other bucket. The two nearest in the bucket by cosine: 0 and 1.
    sims = [_cos(query, FEATURES[i].tolist()) for i in range(3)]
    assert sims[0] > sims[1] > sims[2] and _cos(query, FEATURES[3].tolist()) > sims[1]
    e0, e1 = math.exp(sims[0] / 0.5), math.exp(sims[1] / 0.5)
    w0, w1 = e0 / (e0 + e1), e1 / (e0 + e1)
    expected_error = [w0 * RESIDUALS[0][c] + w1 * RESIDUALS[1][c] for c in range(3)]
    estimate = memory.estimate(torch.tensor([query]))
    assert torch.allclose(estimate, torch.tensor([expected_error]), atol=1e-6)
    corrected = memory.correct(torch.tensor([query]), torch.tensor([p]))
    assert torch.allclose(corrected, torch.tensor([[p[c] + 0.5 * expected_error[c] for c in range(3)]]), atol=1e-6)
    # an empty bucket compensates nothing
    empty = _tiny_memory()
    empty.write(FEATURES[:3], ErrorMemory.residuals(PROBS[:3], LABELS[:3]))
    assert torch.equal(empty.correct(torch.tensor([[1.0, -1.0]]), torch.tensor([p])), torch.tensor([p]))


def test_before_anything_is_written_the_prediction_is_unchanged():
    p = torch.softmax(torch.randn(3, 4), 1)
    assert torch.equal(ErrorMemory().correct(torch.randn(3, 5), p), p)


# -- constant footprint, oldest evicted ---------------------------------------------------------

def test_footprint_stays_constant_and_the_oldest_errors_are_evicted():
    memory = ErrorMemory(bits=1, slots=3, k=3)
    memory.planes = torch.tensor([[1.0]])  # bucket = [x > 0]
    values = lambda ids: torch.tensor([[float(i), 0.0] for i in ids])  # noqa: E731  residual = its id
    memory.write(torch.ones(2, 1), values([1, 2]))
    size = memory.nbytes
    memory.write(torch.ones(2, 1), values([3, 4]))  # bucket 1 is full: 1 is evicted
    assert memory.nbytes == size and len(memory) == 3
    assert sorted(memory.values[1, :, 0].tolist()) == [2.0, 3.0, 4.0]
    memory.write(torch.ones(5, 1), values([5, 6, 7, 8, 9]))  # more than the slots in one batch: the last win
    assert sorted(memory.values[1, :, 0].tolist()) == [7.0, 8.0, 9.0]
    memory.write(-torch.ones(1, 1), values([10]))
    assert memory.nbytes == size and len(memory) == 4 and memory.values[0, :, 0].tolist().count(10.0) == 1
    assert memory.keys.shape == (2, 3, 1) and memory.capacity == 6
    assert int(memory.writes.sum()) == 10
    memory.write(torch.ones(1, 1), values([11]))  # FIFO across batches: 7 is the oldest now
    assert sorted(memory.values[1, :, 0].tolist()) == [8.0, 9.0, 11.0]


# -- settings -----------------------------------------------------------------------------------

@pytest.mark.parametrize("option, value, word", [("bits", 0, "bits"), ("slots", 0, "slots"), ("lam", 1.5, "lam"),
                                                 ("lam", -0.1, "lam"), ("k", 0, "`k`"),
                                                 ("temperature", 0.0, "temperature")])
def test_settings_it_cannot_use_are_refused(option, value, word):
    with pytest.raises(ValueError, match=word):
        ErrorMemory(**{option: value})


def test_a_recipe_with_a_bad_setting_is_one_line_and_exit_2(fashion_root, tmp_path, capsys):
    for option in ("bits: 0", "slots: 0", "lam: 1.5"):
        cfg = tmp_path / "m.yaml"
        cfg.write_text(f"method:\n  terms: [{{term: ce}}]\n  plugins: [{{plugin: error-memory, {option}}}]\n")
        code, _, err = run_cli(["run", "--config", str(cfg), "--benchmark", "split-fashion-mnist", "--data-root",
                                str(fashion_root), "--out", str(tmp_path / "never"), "--quiet"], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and option.split(":")[0] in err
        assert not (tmp_path / "never").exists()


# -- the prequential protocol -------------------------------------------------------------------

def test_the_memory_is_refreshed_after_each_prediction_and_never_before():
    # a model that always says class 0; the stream repeats the same two inputs, labelled 1 and 2
    model = Linear(torch.tensor([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]))
    x = torch.tensor([[1.0, 0.1], [0.1, 1.0]])
    y = torch.tensor([1, 2])
    memory = ErrorMemory(bits=2, slots=4, k=1, temperature=0.1, lam=1.0)
    result = prequential(model, [(x, y), (x, y), (x, y)], memory)
    assert result.base == [0, 0, 0]
    assert result.memory == [0, 2, 2]  # the first batch cannot use its own labels; the next ones use its errors
    assert int(memory.writes.sum()) == 6
    assert result.accuracy_base == 0.0 and result.accuracy_memory == pytest.approx(400 / 6)


def test_on_a_stream_whose_labels_are_remapped_midway_the_memory_recovers():
    g = torch.Generator().manual_seed(0)
    centres = 3.0 * torch.randn(4, 8, generator=g)
    labels = torch.randint(0, 4, (1600,), generator=g)
    x = centres[labels] + 0.3 * torch.randn(1600, 8, generator=g)
    y = torch.where(torch.arange(1600) < 800, labels, (labels + 1) % 4)  # remapped from example 800 on
    model = Linear(centres)
    batches = [(x[i:i + 20], y[i:i + 20]) for i in range(0, 1600, 20)]
    result = prequential(model, batches, ErrorMemory(bits=3, slots=32, k=8, temperature=0.1, lam=1.0, seed=0))
    (base_1, memory_1), (base_2, memory_2) = result.windows(2)
    assert base_1 > 95 and memory_1 > 95  # before the shift the memory does no harm
    assert base_2 < 5 and memory_2 > 80  # after it, the memory corrects most predictions, without a gradient step
    assert result.examples == 1600


def test_a_slow_learner_update_runs_after_each_prediction():
    model = Linear(torch.eye(3)).eval()
    seen = []
    prequential(model, [(torch.eye(3), torch.arange(3))] * 2, ErrorMemoryPlugin(), lambda x, y: seen.append(
        (model.training, len(y))))
    assert seen == [(True, 3), (True, 3)] and not model.training  # its mode restored


def test_gradually_rotated_stream_turns_linearly():
    source = make_source(num_classes=4, per_class_train=5, per_class_test=5, size=12)
    batches = list(gradual_rotation(source, "test", batch_size=6, end_degrees=90.0, seed=0))
    degrees = torch.cat([d for _, _, d in batches])
    assert len(degrees) == 20 and degrees[0] == 0 and degrees[-1] == 90
    assert torch.allclose(degrees[1:] - degrees[:-1], torch.full((19,), 90 / 19))
    again = list(gradual_rotation(source, "test", batch_size=6, end_degrees=90.0, seed=0))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches, again))
    # the first example is not rotated; its label set is the split's
    assert sorted(torch.cat([y for _, y, _ in batches]).tolist()) == sorted(source.test_y.tolist())


# -- the plug-in in a run -----------------------------------------------------------------------

def test_the_plugin_writes_each_training_batch_and_scores_with_the_memory():
    assert PLUGINS["error-memory"] is ErrorMemoryPlugin
    stream = class_incremental(make_source(num_classes=4, per_class_train=20), 2)
    torch.manual_seed(0)
    model = build_backbone("mlp", (1, 8, 8), 4)
    recipe = build_recipe({"terms": [{"term": "ce"}], "plugins": [{"plugin": "error-memory", "bits": 3, "slots": 8}]})
    plugin = recipe.plugins[0]
    result = train(stream, model, recipe, SGD(model.parameters(), lr=0.1), seed=0, epochs=2, batch_size=10)
    assert int(plugin.memory.writes.sum()) == 2 * 80 and len(plugin.memory) <= plugin.memory.capacity
    assert len(result.class_il) == 2
    x = stream.inputs("test", stream.tasks[0].test_idx, 0)
    probs = torch.softmax(model(x), 1)
    with torch.no_grad():
        expected = probs + 0.5 * plugin.memory.estimate(model.features(x))
    assert torch.allclose(plugin.scores(model, x), expected, atol=1e-6)
    # its state survives a checkpoint round trip
    buffer = io.BytesIO()
    torch.save(plugin.state_dict(), buffer)
    buffer.seek(0)
    restored = ErrorMemoryPlugin(bits=3, slots=8)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(restored.scores(model, x), plugin.scores(model, x))


# -- the command ----------------------------------------------------------------------------------

def _run_args(root, out, *extra):
    return ["run", "--benchmark", "split-fashion-mnist", "--data-root", str(root), "--out", str(out),
            "--batch-size", "4", "--quiet", *extra]


def test_the_error_memory_flag_and_key(fashion_root, tmp_path, capsys):
    import yaml

    code, _, err = run_cli(_run_args(fashion_root, tmp_path / "plain"), capsys)
    assert code == 0, err
    plain = yaml.safe_load((tmp_path / "plain" / "config.yaml").read_text())
    assert "error_memory" not in plain and not plain["recipe"].get("plugins")  # off: the config is as before
    cfg = tmp_path / "em.yaml"
    cfg.write_text("error_memory: {bits: 3, slots: 8, lam: 1.0}\n")
    code, _, err = run_cli(_run_args(fashion_root, tmp_path / "on", "--config", str(cfg), "--error-memory"), capsys)
    assert code == 0, err
    resolved = yaml.safe_load((tmp_path / "on" / "config.yaml").read_text())
    assert resolved["error_memory"] == {"bits": 3, "slots": 8, "lam": 1.0}
    assert {"plugin": "error-memory", "bits": 3, "slots": 8, "lam": 1.0} in resolved["recipe"]["plugins"]
    for value, word in (("{bits: 0}", "bits"), ("{slots: 0}", "slots"), ("{lam: -1}", "lam"), ("{plugin: nme}", "plugin"),
                        ("3", "error_memory")):
        cfg.write_text(f"error_memory: {value}\n")
        code, _, err = run_cli(_run_args(fashion_root, tmp_path / "never", "--config", str(cfg)), capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and word in err, err
    assert not (tmp_path / "never").exists()
    code, _, err = run_cli(_run_args(fashion_root, tmp_path / "never", "--method", "icarl", "--error-memory"), capsys)
    assert code == 2 and "'nme' and 'error-memory'" in err


def test_a_run_with_the_memory_resumed_after_a_crash_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    from lifelong.config import make_config
    from tests.conftest import crash_then_resume, write_fashion_mnist

    root = write_fashion_mnist(tmp_path / "data", per_class_train=8, per_class_test=3).parents[1]

    def config(out):
        return make_config({}, {"benchmark": "split-fashion-mnist", "data_root": str(root), "out": str(out),
                                "method": "finetune", "batch_size": 4, "checkpoint_every": 3, "threads": 1,
                                "error_memory": {"bits": 3, "slots": 4, "lam": 1.0}})

    whole, cut = crash_then_resume(config, tmp_path, monkeypatch, 7)
    for key in ("class_il", "task_il", "steps"):
        assert whole[key] == cut[key], key
