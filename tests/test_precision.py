"""Mixed precision of the step (lifelong.precision): bf16 autocast on the CPU, the fp16 scaler's
path (run on the CPU here, for the test only), the refusals, channels-last for ResNets."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from lifelong.data.streams import class_incremental
from lifelong.errors import ConfigError
from lifelong.loop import Checkpointing, train
from lifelong.methods import build_recipe
from lifelong.nets import build_backbone
from lifelong.optim import SGD
from lifelong.precision import build_precision, channels_last, check_precision
from tests.conftest import make_source, run_cli, tiny_run_flags


def _stream():
    return class_incremental(make_source(num_classes=4, per_class_train=30), 2)


def _model():
    torch.manual_seed(0)
    return build_backbone("mlp", (1, 8, 8), 4)


def _train(precision, model=None, **kwargs):
    model = model or _model()
    result = train(_stream(), model, build_recipe("er"), SGD(model.parameters(), lr=0.1), seed=0, batch_size=10,
                   buffer_size=20, precision=precision, **kwargs)
    return result, model


def test_fp32_is_the_plain_step():
    (a, ma), (b, mb) = _train("fp32"), (lambda m: (train(_stream(), m, build_recipe("er"), SGD(m.parameters(), lr=0.1),
                                                          seed=0, batch_size=10, buffer_size=20), m))(_model())
    assert a.class_il == b.class_il
    assert all(torch.equal(p, q) for p, q in zip(ma.state_dict().values(), mb.state_dict().values()))


def test_bf16_runs_the_forward_in_bfloat16_and_keeps_float32_weights():
    model = _model()
    seen = []
    first = next(m for m in model.modules() if isinstance(m, nn.Linear))
    first.register_forward_hook(lambda m, i, o: seen.append(o.dtype) if m.training else None)
    result, model = _train("bf16", model)
    assert seen and set(seen) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    fp32, _ = _train("fp32")  # bf16 rounds the forward: not the float32 weights, but the same band
    assert result.status == "complete" and abs(sum(result.task_il[-1]) - sum(fp32.task_il[-1])) <= 20
    assert not all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), _train("fp32")[1].state_dict().values()))


def _fp16(**scaler):
    amp = build_precision("fp16", "cpu", allow_cpu_fp16=True)
    amp.scaler = torch.amp.GradScaler("cpu", **scaler)
    return amp


def test_an_overflowing_fp16_step_is_skipped_and_the_scale_lowered():
    amp = _fp16(init_scale=2.0 ** 60, growth_interval=10 ** 6)
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    stream = class_incremental(make_source(num_classes=4, per_class_train=5), 2)  # one step per task
    train(stream, model, build_recipe("finetune"), SGD(model.parameters(), lr=0.1), seed=0, batch_size=10,
          precision=amp)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))  # both steps skipped
    assert amp.scaler.get_scale() == 2.0 ** 58


class _Grads:
    """A plug-in that records the gradient norm the hooks see."""

    name = "record-grads"
    stateless = True

    def __init__(self):
        self.norms = []

    def after_backward(self, state, batch):
        self.norms.append(float(torch.cat([p.grad.reshape(-1) for p in state.model.parameters()]).norm()))


def test_the_hooks_see_unscaled_fp16_gradients_and_the_scale_is_checkpointed():
    saved = []

    class Store:
        def save(self, payload, step):
            saved.append(payload)

    runs = {}
    for name, precision in (("fp32", "fp32"), ("fp16", _fp16(init_scale=1024.0))):
        recipe = build_recipe("finetune")
        grads = _Grads()
        recipe.plugins.append(grads)
        model = _model()
        train(_stream(), model, recipe, SGD(model.parameters(), lr=0.1), seed=0, batch_size=10, precision=precision,
              checkpointing=Checkpointing(Store()) if name == "fp16" else None)
        runs[name] = grads.norms
    assert runs["fp16"][0] == pytest.approx(runs["fp32"][0], rel=1e-2)  # not 1024 times it
    assert saved and saved[-1]["scaler"]["scale"] == 1024.0


def test_fp16_on_the_cpu_and_unknown_precisions_are_one_line(capsys, fashion_root, tmp_path):
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        check_precision("fp16", "cpu")
    check_precision("fp16", "cuda")
    for value, message in (("fp16", "precision fp16 needs a GPU"), ("fp8", "unknown precision 'fp8'")):
        code, _, err = run_cli(["run", *tiny_run_flags(fashion_root), "--device", "cpu", "--precision", value,
                                "--out", str(tmp_path / value)], capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / value).exists()


def test_bf16_is_recorded_and_fp32_left_out_of_the_configuration(capsys, fashion_root, tmp_path):
    code, _, _ = run_cli(["run", *tiny_run_flags(fashion_root), "--device", "cpu", "--precision", "bf16",
                          "--out", str(tmp_path / "bf16")], capsys)
    assert code == 0 and "precision: bf16" in (tmp_path / "bf16" / "config.yaml").read_text()
    code, _, _ = run_cli(["run", *tiny_run_flags(fashion_root), "--device", "cpu", "--out", str(tmp_path / "fp32")],
                         capsys)
    assert code == 0 and "precision" not in (tmp_path / "fp32" / "config.yaml").read_text()


def test_resnets_go_channels_last_on_cuda_only():
    resnet = build_backbone("resnet18", (3, 32, 32), 10)
    assert channels_last(resnet, "resnet18", torch.device("cpu")) is resnet
    conv = next(m for m in resnet.modules() if isinstance(m, nn.Conv2d))
    assert not conv.weight.is_contiguous(memory_format=torch.channels_last)
    channels_last(resnet, "resnet18", torch.device("cuda"))  # the layout only: the weights stay where they are
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    mlp = _model()
    assert channels_last(mlp, "mlp", torch.device("cuda")) is mlp


@pytest.mark.parametrize("compiled", ["off", pytest.param("on", marks=pytest.mark.slow)])
def test_the_gpu_benchmark_runs_on_the_cpu_in_a_tiny_configuration(tmp_path, compiled):
    """``on``: ``torch.compile`` of the model (inductor's CPU code, about a minute to compile) trains
    and is timed; a compiled step that broke the recipe's hooks or the loop would fail here."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"
    out = tmp_path / "gpu.md"
    done = subprocess.run([sys.executable, str(script), "--device", "cpu", "--steps", "2", "--warmup", "1", "--batch",
                           "2", "--compile", compiled, "--methods", "er", "--out", str(out)], capture_output=True,
                          text=True, timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| er ")]
    assert len(rows) == 1 and rows[0].split("|")[2].strip() == {"off": "no", "on": "yes"}[compiled] and float(rows[0].split("|")[3]) > 0 and float(rows[0].split("|")[4]) > 0
