"""``lifelong lm`` with Hugging Face models and corpora (lifelong.lm.hf): a transformers causal LM
built from a config trains through the whole loop (replay, MER, GeRe, RECAP, checkpoints) and a
resumed run equals an uninterrupted one bit for bit; the adapter's logits, loss and last hidden
layer against the model's own and by hand; the corpora's vocabulary and context set on the config,
every mismatch one line, exit 2; ``datasets`` corpora give the same token files as the folder of
the same documents; ``--compile`` keeps the state dict's keys. Nothing downloads: models come from
configs, datasets are written in the test. Skipped without ``transformers`` / ``datasets``."""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lifelong.cli import main
from lifelong.errors import ConfigError
from lifelong.lm.hf import HFCausalLM, build_hf_model, parse_dataset_spec, parse_model_config
from lifelong.lm.model import GPT, GPTConfig
from lifelong.lm.run import prepare, resume_run, train_run
from lifelong.lm.tokens import open_corpus
from lifelong.lm.train import LMConfig, LMTrainer
from lifelong.runs.checkpoint import CheckpointStore, step_of
from tests.conftest import one_line_error

WORDS = "the cat sat on a mat while dogs ran over hills and rivers under grey skies".split()
GPT2 = {"n_layer": 1, "n_embd": 16, "n_head": 2}
TINY = dict(batch_size=4, block_size=8, eval_tokens=64, warmup=2)


def _docs(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(40)) + ".\n" for _ in range(n)]


def _folder(root: Path, docs: list[str]) -> Path:
    root.mkdir(parents=True)
    for i, d in enumerate(docs):
        (root / f"doc{i:03d}.txt").write_text(d, encoding="utf-8")
    return root


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    prepare([f"A={_folder(tmp_path / 'a', _docs(20, 0))}", f"B={_folder(tmp_path / 'b', _docs(20, 1)[::-1])}"],
            tmp_path / "data")
    return tmp_path / "data"




# -- no transformers needed --------------------------------------------------------------------------

def test_model_config_pairs_json_file_and_folder(tmp_path: Path) -> None:
    assert parse_model_config("n_layer=2, n_embd=64,activation_function=gelu_new,resid_pdrop=0.0,x=null") == \
        {"n_layer": 2, "n_embd": 64, "activation_function": "gelu_new", "resid_pdrop": 0.0, "x": None}
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 3,
                                                            "transformers_version": "5.0", "architectures": ["X"]}))
    assert parse_model_config(str(tmp_path / "m")) == {"model_type": "gpt2", "n_layer": 3}
    assert parse_model_config(str(tmp_path / "m" / "config.json")) == {"model_type": "gpt2", "n_layer": 3}
    for bad in ("n_layer", "=2", str(tmp_path / "none.json")):
        with pytest.raises(ConfigError):
            parse_model_config(bad)


def test_model_kinds_and_shape_flags_are_checked() -> None:
    for kwargs in (dict(model="bert"), dict(model="hf:"), dict(model="hf:gpt2", n_layer=3),
                   dict(model="hf:gpt2", model_config={"model_type": "llama"}), dict(model_config={"n_layer": 2})):
        with pytest.raises(ConfigError):
            LMConfig(stream=["A"], steps=[1], **kwargs)
    assert LMConfig(stream=["A"], steps=[1], model="hf", model_config={"model_type": "gpt2"}).model == "hf"


def test_dataset_specs() -> None:
    assert parse_dataset_spec("hf:d/x") == (False, "d/x", None, None, "text")
    assert parse_dataset_spec("hf:d::body") == (False, "d", None, None, "body")
    assert parse_dataset_spec("hf-hub:org/wiki@raw-v1:test:content") == (True, "org/wiki", "raw-v1", "test", "content")
    for bad in ("hf:", "hf:a:b:c:d"):
        with pytest.raises(ConfigError):
            parse_dataset_spec(bad)


def test_without_the_packages_one_line(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.setitem(sys.modules, "datasets", None)
    assert "lifelong[hf]" in one_line_error(capsys, ["lm", "train", "--data", str(data), "--stream", "A", "--steps", "1",
                                             "--model", "hf:gpt2", "--out", str(tmp_path / "r")])
    assert "lifelong[hf]" in one_line_error(capsys, ["lm", "prepare", "--corpus", f"C=hf:{tmp_path}", "--out",
                                             str(tmp_path / "d")])


# -- models ------------------------------------------------------------------------------------------

def test_adapter_logits_loss_and_last_hidden_layer() -> None:
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = build_hf_model("hf:gpt2", {**GPT2, "n_layer": 2}, 257, 8)
    assert isinstance(model, HFCausalLM) and model.config.vocab_size == 257 and model.config.n_positions == 8
    assert model.config.bos_token_id is None and model.config.eos_token_id is None  # GPT-2's 50256: no such id
    model.eval()
    x, y = torch.randint(257, (3, 8)), torch.randint(257, (3, 8))
    logits, loss = model(x, y)
    assert torch.equal(logits, model.hf(input_ids=x).logits)
    by_hand = -torch.log_softmax(logits, -1).gather(-1, y.unsqueeze(-1)).mean()
    assert torch.allclose(loss, by_hand, atol=1e-6)
    last_block = {}
    hook = model.hf.transformer.h[-1].register_forward_hook(lambda m, i, o: last_block.update(out=o))
    h = model.hidden(x)
    hook.remove()
    out = last_block["out"][0] if isinstance(last_block["out"], tuple) else last_block["out"]
    assert torch.allclose(h, model.hf.transformer.ln_f(out), atol=1e-6)  # after the final LayerNorm, as GPT.hidden
    assert torch.allclose(model.lm_head(h), logits, atol=1e-5)
    assert list(model.state_dict())[0].startswith("hf.")


def test_gpt2_with_exact_gelu_is_the_library_gpt() -> None:
    """The benchmark's "same shape": the library GPT's weights copied into transformers' GPT-2
    (Conv1D holds W transposed) give the same logits, and the parameter counts are equal."""
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(257, 8, 2, 2, 16)).eval()
    hf = build_hf_model("hf:gpt2", {"n_layer": 2, "n_head": 2, "n_embd": 16, "activation_function": "gelu"},
                        257, 8).eval()
    assert sum(p.numel() for p in gpt.parameters()) == sum(p.numel() for p in hf.parameters())
    names = {"ln1": "ln_1", "ln2": "ln_2", "attn.qkv": "attn.c_attn", "attn.proj": "attn.c_proj", "fc": "mlp.c_fc",
             "proj": "mlp.c_proj"}
    state = {"hf.transformer.wte.weight": gpt.wte.weight, "hf.transformer.wpe.weight": gpt.wpe.weight,
             "hf.transformer.ln_f.weight": gpt.ln_f.weight, "hf.transformer.ln_f.bias": gpt.ln_f.bias,
             "hf.lm_head.weight": gpt.wte.weight}
    for i, block in enumerate(gpt.blocks):
        for ours, theirs in names.items():
            module = block.get_submodule(ours)
            transpose = isinstance(module, torch.nn.Linear)
            state[f"hf.transformer.h.{i}.{theirs}.weight"] = module.weight.T if transpose else module.weight
            state[f"hf.transformer.h.{i}.{theirs}.bias"] = module.bias
    hf.load_state_dict({k: v.detach().clone() for k, v in state.items()})
    x = torch.randint(257, (2, 8))
    assert torch.allclose(hf(x)[0], gpt(x)[0], atol=1e-5)


def test_lm_head_of_the_states_just_returned_is_the_models_logits() -> None:
    transformers = pytest.importorskip("transformers")
    if "gemma2" not in transformers.CONFIG_MAPPING:  # transformers >= 4.42
        pytest.skip("this transformers has no gemma2")
    torch.manual_seed(0)
    # gemma2 soft-caps its final logits: the output projection alone is not its logits
    model = build_hf_model("hf:gemma2", {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                         "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
                                         "final_logit_softcapping": 1.0}, 257, 8).eval()
    x = torch.randint(257, (2, 8))
    logits = model(x)[0]
    h = model.hidden(x)
    assert torch.allclose(model.lm_head(h), logits, atol=1e-5)
    assert not torch.allclose(model.hf.get_output_embeddings()(h), logits, atol=1e-3)


def test_hf_run_with_everything_resumes_bit_for_bit(data: Path, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    # GPT-2's dropout 0.1 on, replay, MER, GeRe's general set and RECAP; stopped mid-corpus B
    cfg = LMConfig(stream=["A", "B"], steps=[6, 6], replay=0.25, mer_k=3, mer_beta=0.5, eval_every=4,
                   checkpoint_every=5, gere=2.0, gere_windows=4, gere_batch=2, recap=1, model="hf:gpt2",
                   model_config=GPT2, **TINY)
    whole = train_run(cfg, data, tmp_path / "whole")
    part = train_run(cfg, data, tmp_path / "part", stop=lambda step: step == 9)
    assert not part["complete"]
    again = resume_run(tmp_path / "part")
    assert again["complete"] and again["loss_matrix"] == whole["loss_matrix"] and again["curve"] == whole["curve"]
    a = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "model.pt", weights_only=True)
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert whole["loss_matrix"][1][1] < whole["init_losses"][1]
    assert whole["model"]["kind"] == "hf:gpt2" and whole["model"]["config"]["n_layer"] == 1
    # the adapter's keys minus "hf." load into the same transformers model
    inner = build_hf_model("hf:gpt2", GPT2, 257, 8).hf
    inner.load_state_dict({k.removeprefix("hf."): v for k, v in a.items()})


def test_cli_hf_model_its_mismatches_and_resume_refusing_another(data: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("transformers")
    base = ["lm", "train", "--data", str(data), "--stream", "A,B", "--steps", "2", "--batch-size", "2",
            "--block-size", "8", "--eval-tokens", "32", "--warmup", "1", "--quiet", "--model", "hf:gpt2"]
    run = tmp_path / "run"
    assert main(base + ["--model-config", "n_layer=1,n_embd=16,n_head=2", "--out", str(run)]) == 0
    assert "after B" in capsys.readouterr().out
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"] == "hf:gpt2" and config["model_config"] == GPT2
    assert main(["report", str(run), "--out", str(tmp_path / "report")]) == 0
    assert "Language models" in capsys.readouterr().out
    for flags, says in ((["--model-config", "n_layer=1,n_embd=16,n_head=2,vocab_size=50257"], "vocab_size"),
                        (["--model-config", "n_layer=1,n_embd=16,n_head=2,n_positions=4"], "shorter than"),
                        (["--model-config", "n_layers=1"], "no setting 'n_layers'"),
                        (["--model-config", "n_embd=15,n_head=2"], "gpt2"),
                        (["--n-layer", "3"], "--n-layer"),
                        (["--model-config", "n_layer"], "KEY=VALUE")):
        assert says in one_line_error(capsys, base + flags + ["--out", str(tmp_path / "bad")])
    assert "no model type" in one_line_error(capsys, base[:-1] + ["hf:no_such_type", "--out", str(tmp_path / "bad")])
    assert "causal LM" in one_line_error(capsys, base[:-1] + ["hf:t5", "--model-config", "d_model=16,num_layers=1",
                                                      "--out", str(tmp_path / "bad")])
    # resume: another model on the command line, then a config.yaml edited behind the checkpoint's back
    assert "model" in one_line_error(capsys, ["lm", "train", "--resume", "--out", str(run), "--model", "gpt"])
    assert main(["lm", "train", "--resume", "--out", str(run), "--model", "hf:gpt2", "--quiet"]) == 0
    capsys.readouterr()
    part = tmp_path / "part"
    assert main(base + ["--model-config", "n_layer=1,n_embd=16,n_head=2", "--out", str(part),
                        "--steps", "3", "--checkpoint-every", "1"]) == 0
    capsys.readouterr()
    config = yaml.safe_load((part / "config.yaml").read_text())
    config["model_config"] = {**GPT2, "n_embd": 32}
    (part / "config.yaml").write_text(yaml.safe_dump(config))
    assert "model_config" in one_line_error(capsys, ["lm", "train", "--resume", "--out", str(part)])
    store = CheckpointStore(part)  # the checkpoint's settings edited too: its weights do not fit
    payload, path = store.load_latest()
    store.save({**payload, "config": {**payload["config"], "model_config": config["model_config"]}}, step_of(path))
    assert "does not fit" in one_line_error(capsys, ["lm", "train", "--resume", "--out", str(part)])


def test_compile_keeps_the_plain_keys(data: Path) -> None:
    corpora = [open_corpus(data, n) for n in ("A", "B")]
    plain = LMTrainer(LMConfig(stream=["A"], steps=[3], **TINY), corpora[:1], 257)
    compiled = LMTrainer(LMConfig(stream=["A"], steps=[3], compile=True, **TINY), corpora[:1], 257)
    assert compiled.model._compiled_call_impl is not None and plain.model._compiled_call_impl is None
    assert list(compiled.state_dict()["model"]) == list(plain.state_dict()["model"])
    assert not any(k.startswith("_orig_mod") for k in compiled.state_dict()["model"])


@pytest.mark.slow  # torch.compile's first graphs take about 30 s on one CPU core
def test_compiled_run_resumes_bit_for_bit_under_plain_keys(data: Path, tmp_path: Path) -> None:
    """In a process of its own: compiling leaves state in the process (autograd's threads) that
    later tests' forked ``--jobs`` workers cannot share."""
    import os
    import subprocess

    root = Path(__file__).resolve().parents[1]
    code = (f"from pathlib import Path; from tests.test_lm_hf import _compiled_run_check; "
            f"_compiled_run_check(Path({str(data)!r}), Path({str(tmp_path)!r}))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _compiled_run_check(data: Path, tmp_path: Path) -> None:
    cfg = LMConfig(stream=["A", "B"], steps=[3, 3], compile=True, replay=0.25, **TINY)
    whole = train_run(cfg, data, tmp_path / "whole")
    part = train_run(cfg, data, tmp_path / "part", stop=lambda step: step == 4)
    again = resume_run(tmp_path / "part")
    assert again["loss_matrix"] == whole["loss_matrix"]
    a = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)
    plain = train_run(LMConfig(stream=["A", "B"], steps=[3, 3], replay=0.25, **TINY), data, tmp_path / "plain")
    b = torch.load(tmp_path / "plain" / "model.pt", weights_only=True)
    assert list(a) == list(b) and plain["complete"] and not part["complete"]
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)  # compiled kernels: equal up to rounding


# -- datasets corpora --------------------------------------------------------------------------------

def test_datasets_corpora_equal_the_folder_of_the_same_documents(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    docs = _docs(23, 3)
    rows = docs[:5] + ["   \n"] + docs[5:]  # a row of whitespace only is dropped, as an empty file is
    prepare([f"F={_folder(tmp_path / 'f', docs)}"], tmp_path / "ref")
    reference = (tmp_path / "ref" / "F.bin").read_bytes()
    datasets.Dataset.from_dict({"text": rows, "n": list(range(len(rows)))}).save_to_disk(str(tmp_path / "one"))
    both = {"train": datasets.Dataset.from_dict({"body": rows}), "test": datasets.Dataset.from_dict({"body": ["x"] * 3})}
    datasets.DatasetDict(both).save_to_disk(str(tmp_path / "dd"))
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"text": r}) + "\n" for r in rows))
    specs = [f"S=hf:{tmp_path / 'one'}", f"D=hf:{tmp_path / 'dd'}:train:body", f"J=hf:{tmp_path / 'rows.jsonl'}"]
    headers = prepare(specs, tmp_path / "out")
    for h in headers:
        assert h["documents"] == 23 and (tmp_path / "out" / f"{h['name']}.bin").read_bytes() == reference
    short = prepare([f"S=hf:{tmp_path / 'one'}"], tmp_path / "short", max_chars=len(docs[0]) + 1)
    assert short[0]["documents"] == 2


def test_datasets_corpus_mistakes_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"body": ["a b", "c d"]}).save_to_disk(str(tmp_path / "ds"))
    datasets.Dataset.from_dict({"text": ["", " "]}).save_to_disk(str(tmp_path / "blank"))
    datasets.Dataset.from_dict({"text": [1, 2]}).save_to_disk(str(tmp_path / "numbers"))
    capsys.readouterr()  # the progress bars of save_to_disk
    out = ["--out", str(tmp_path / "o")]
    for spec, says in ((f"hf:{tmp_path / 'ds'}", "no field 'text'"), (f"hf:{tmp_path / 'blank'}", "no text"),
                       (f"hf:{tmp_path / 'numbers'}", "not text"), (f"hf:{tmp_path / 'ds'}:test:body", "one split"),
                       (f"hf:{tmp_path / 'nothing'}", "hf-hub:"), (f"hf:{tmp_path}", "dataset")):
        assert says in one_line_error(capsys, ["lm", "prepare", "--corpus", f"C={spec}"] + out)


def test_hub_datasets_are_streamed_only_when_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake(*args: object, **kwargs: object) -> list[dict]:
        calls.append((args, kwargs))
        return [{"content": d} for d in _docs(12, 0)]
    monkeypatch.setattr(datasets, "load_dataset", fake)
    prepare(["W=hf-hub:org/wiki@raw:validation:content"], tmp_path / "out")
    assert calls == [(("org/wiki", "raw"), {"split": "validation", "streaming": True})]
