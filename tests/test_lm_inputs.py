"""``lifelong lm prepare``/``train`` given hostile inputs: each is one line, exit 2, and leaves no
run folder behind (a user's review of the commands; the main tests are tests/test_lm.py)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from lifelong.cli import main
from lifelong.lm.run import prepare
from tests.conftest import one_line_error

WORDS = "the cat sat on a mat while dogs ran over hills".split()


def _folder(root: Path, n_docs: int, seed: int) -> Path:
    rng = random.Random(seed)
    root.mkdir(parents=True)
    for i in range(n_docs):
        (root / f"doc{i:02d}.txt").write_text(" ".join(rng.choice(WORDS) for _ in range(40)) + ".\n")
    return root


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    prepare([f"A={_folder(tmp_path / 'a', 12, 0)}", f"B={_folder(tmp_path / 'b', 12, 1)}"], tmp_path / "data")
    return tmp_path / "data"




def _train(data: Path, out: Path, *extra: str) -> list[str]:
    return ["lm", "train", "--data", str(data), "--stream", "A,B", "--steps", "2", "--batch-size", "2",
            "--block-size", "8", "--n-layer", "1", "--n-embd", "16", "--eval-tokens", "32", "--warmup", "1",
            "--quiet", "--out", str(out), *extra]


def test_prepare_into_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "file").write_text("")
    corpus = _folder(tmp_path / "a", 3, 0)
    assert "cannot write" in one_line_error(capsys, ["lm", "prepare", "--corpus", f"A={corpus}", "--out",
                                             str(tmp_path / "file")])


def test_prepare_refuses_a_corpus_named_like_the_tokenizer_file(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    corpus = _folder(tmp_path / "a", 3, 0)  # its tokenizer.json header would replace the BPE's tokenizer.json
    assert "tokenizer" in one_line_error(capsys, ["lm", "prepare", "--corpus", f"tokenizer={corpus}", "--out",
                                          str(tmp_path / "d")])


def test_prepare_max_chars_below_one_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    corpus = _folder(tmp_path / "a", 3, 0)
    for n in ("0", "-5"):  # not "has one document"
        assert "--max-chars" in one_line_error(capsys, ["lm", "prepare", "--corpus", f"A={corpus}", "--max-chars", n,
                                                "--out", str(tmp_path / "d")])


def test_a_window_longer_than_a_held_out_part_writes_no_run_folder(data: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    held = json.loads((data / "A.json").read_text())["val_tokens"]
    run = tmp_path / "run"
    argv = _train(data, run)
    argv[argv.index("--block-size") + 1] = str(held)
    argv[argv.index("--eval-tokens") + 1] = str(held)
    assert "held-out tokens" in one_line_error(capsys, argv)
    assert not run.exists()  # no config.yaml left: the same command with a smaller window is not refused
    assert main(_train(data, run)) == 0


def test_eval_tokens_shorter_than_a_window_is_named(data: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    argv = _train(data, tmp_path / "run")
    argv[argv.index("--eval-tokens") + 1] = "4"
    assert "--eval-tokens" in one_line_error(capsys, argv)  # not "the corpus has fewer held-out tokens than a window"
    assert not (tmp_path / "run").exists()


def test_gpt_shape_flags_at_their_default_with_a_transformers_model_are_refused(
        data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from lifelong.lm.model import GPTConfig

    argv = _train(data, tmp_path / "run", "--model", "hf:gpt2")
    argv[argv.index("--n-layer") + 1] = str(GPTConfig.n_layer)  # the default: the value alone cannot tell
    del argv[argv.index("--n-embd"):argv.index("--n-embd") + 2]
    assert "--n-layer" in one_line_error(capsys, argv)


def test_a_config_value_of_the_wrong_type_is_one_line(data: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("transformers")
    argv = _train(data, tmp_path / "run", "--model", "hf:gpt2", "--model-config", "n_layer=1=2,n_embd=16,n_head=2")
    for flag in ("--n-layer", "--n-embd"):
        del argv[argv.index(flag):argv.index(flag) + 2]
    assert "n_layer" in one_line_error(capsys, argv)  # transformers 5's strict check: one line with its reason


def test_forgetting_n_a_of_a_repeated_corpus_does_not_say_one_task(data: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    argv = _train(data, tmp_path / "run")
    argv[argv.index("--stream") + 1] = "A,A"
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "forgetting n/a" in out and "one task" not in out


def test_resume_on_corpora_prepared_again_with_other_text_is_refused(data: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    from lifelong.lm.run import train_run
    from lifelong.lm.train import LMConfig

    run = tmp_path / "run"
    cfg = LMConfig(stream=["A", "B"], steps=[3], batch_size=2, block_size=8, n_layer=1, n_head=2, n_embd=16,
                   eval_tokens=32, warmup=1)
    assert not train_run(cfg, data, run, stop=lambda step: step == 2)["complete"]
    prepare([f"A={_folder(tmp_path / 'a2', 12, 7)}"], data)  # the same tokenizer, other documents
    assert "not the ones the run was trained on" in one_line_error(capsys, ["lm", "train", "--resume", "--out", str(run)])


def test_a_second_ctrl_c_in_training_names_the_checkpoint_to_resume(data: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from lifelong.lm.train import LMTrainer

    plain, calls = LMTrainer.step, []

    def step(self, task: int, step: int):  # the second signal, raised by the stop flag at once
        calls.append(step)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return plain(self, task, step)

    monkeypatch.setattr(LMTrainer, "step", step)
    run = tmp_path / "run"
    argv = _train(data, run, "--checkpoint-every", "1")
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "--resume" in err and "before training started" not in err, err
    monkeypatch.undo()
    assert main(["lm", "train", "--resume", "--out", str(run), "--quiet"]) == 0


def test_a_lone_text_file_says_how_to_make_documents_of_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "one.txt").write_text("first line\nsecond line\n")
    assert "hf:FILE.txt" in one_line_error(capsys, ["lm", "prepare", "--corpus", f"A={tmp_path / 'one.txt'}", "--out",
                                            str(tmp_path / "d")])
    (tmp_path / "empty").mkdir()
    one_line_error(capsys, ["lm", "prepare", "--corpus", f"A={tmp_path / 'empty'}", "--out", str(tmp_path / "d")])
    assert not (tmp_path / "d").exists()  # --out is checked first, and not left behind empty


def test_lm_under_torchrun_with_several_ranks_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in (("RANK", "0"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(key, value)  # rank 0 of two: it says why; the other exits 2 quietly
    corpus = _folder(tmp_path / "a", 3, 0)
    assert "without torchrun" in one_line_error(capsys, ["lm", "prepare", "--corpus", f"A={corpus}", "--out",
                                                 str(tmp_path / "d")])
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("flag, value", [("--lr", "-1"), ("--beta1", "1.5"), ("--grad-clip", "-1"),
                                         ("--eval-every", "-1"), ("--checkpoint-every", "-1"),
                                         ("--weight-decay", "-0.1"), ("--lr", "inf"), ("--grad-clip", "nan"),
                                         ("--weight-decay", "inf")])
def test_values_out_of_range_are_one_line(flag: str, value: str, data: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    # AdamW's ValueError was a traceback; a negative clip reversed the gradients, a negative period acted every step
    assert flag[2:].replace("-", "_") in one_line_error(capsys, _train(data, tmp_path / "run", flag, value))
    assert not (tmp_path / "run").exists()


def test_a_diverged_run_stops_marked_incomplete_without_nan_in_its_results(data: Path, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    argv = _train(data, run, "--lr", "1e4", "--min-lr", "1e3", "--grad-clip", "0")
    argv[argv.index("--steps") + 1] = "30"
    assert main(argv) == 1  # as `lifelong run` on a non-finite loss
    assert "loss became" in capsys.readouterr().err
    text = (run / "metrics.json").read_text()
    doc = json.loads(text)
    assert not doc["complete"] and "loss became" in doc["diverged"] and "NaN" not in text
    assert main(["report", str(run), "--out", str(tmp_path / "rep")]) == 2  # not shown as a finished run


def test_resume_from_elsewhere_names_the_missing_data_folder(data: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from lifelong.lm.run import train_run
    from lifelong.lm.train import LMConfig

    monkeypatch.chdir(data.parent)  # the run started with a relative --data ...
    cfg = LMConfig(stream=["A", "B"], steps=[3], batch_size=2, block_size=8, n_layer=1, n_head=2, n_embd=16,
                   eval_tokens=32, warmup=1)
    assert not train_run(cfg, Path(data.name), tmp_path / "run", stop=lambda step: step == 2)["complete"]
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # ... and is resumed from another folder
    assert "--data" in one_line_error(capsys, ["lm", "train", "--resume", "--out", str(tmp_path / "run")])
    assert main(["lm", "train", "--resume", "--out", str(tmp_path / "run"), "--data", str(data), "--quiet"]) == 0
