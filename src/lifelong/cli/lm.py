"""``lifelong lm prepare`` and ``lifelong lm train``: their flags and their printing; the work is
:mod:`lifelong.lm.run`'s."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lifelong.lm.train import LMConfig

_DEFAULTS = LMConfig(stream=["x"], steps=[1])
_HELP = {
    "batch_size": "windows per batch", "block_size": "tokens per window (the GPT's context)",
    "n_layer": "transformer blocks", "n_head": "attention heads", "n_embd": "embedding width",
    "dropout": "dropout probability", "lr": "peak learning rate", "min_lr": "final learning rate",
    "warmup": "warm-up steps (per corpus with rewarm)", "schedule": "cosine, rewarm, constant or infinite",
    "const_lr": "infinite: the constant learning rate", "cooldown": "infinite: cool-down steps",
    "anneal": "infinite: anneal steps at the stream's end", "weight_decay": "AdamW weight decay",
    "beta1": "Adam beta1", "beta2": "Adam beta2", "grad_clip": "gradient-norm clip (0: none)",
    "replay": "fraction of each batch from the earlier corpora, in [0, 1)",
    "mer_k": "efficient MER: a Reptile step every K steps (0: off)", "mer_beta": "efficient MER's beta",
    "gere": "GeRe: weight of the threshold-margin term on a fixed set of earlier windows (0: off)",
    "gere_windows": "GeRe: windows in the fixed general set", "gere_batch": "GeRe: general windows per step",
    "gere_weighting": "GeRe: fixed (w = --gere) or dynamic (w = --gere x CE / L_TM, the reference's 'dy' at 1)",
    "recap": "RECAP: window W (steps) of the adaptive weights over the batch's corpora's losses (0: off)",
    "recap_temperature": "RECAP: softmax temperature T",
    "eval_every": "held-out loss of every corpus every N steps (0: corpus ends only)",
    "eval_tokens": "held-out tokens per corpus per evaluation", "checkpoint_every": "checkpoint every N steps "
    "(0: corpus ends only)", "seed": "the one seed (initialisation, batches)",
    "model": "gpt (the library's GPT) or hf:TYPE, a transformers causal LM built from a config (as hf:gpt2; "
    "needs lifelong[hf])",
}


def _list_of(kind: type, text: str) -> list:
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {text!r}") from None


def add_lm_commands(sub: Any, parser_class: type, integer: Any, number: Any) -> None:
    """The ``lm`` command group of ``lifelong`` (called by :func:`lifelong.cli.parser.build_parser`)."""
    lm = sub.add_parser("lm", help="continual pre-training of language models (prepare corpora, train)")
    kinds = lm.add_subparsers(dest="lm_command", metavar="LM", parser_class=parser_class)
    prep = kinds.add_parser("prepare", help="tokenise corpora once into memory-mapped token files")
    prep.add_argument("--corpus", action="append", required=True, metavar="NAME=SOURCE",
                      help="a corpus: NAME=FILE, NAME=FOLDER, NAME=offline:prose, NAME=offline:python, "
                      "NAME=hf:PATH[:SPLIT][:FIELD] (a `datasets` dataset) or "
                      "NAME=hf-hub:NAME[@CONFIG][:SPLIT][:FIELD] (the Hub: downloads; repeatable)")
    prep.add_argument("--out", required=True, metavar="DIR", help="folder for NAME.bin, NAME.json (and tokenizer.json)")
    prep.add_argument("--tokenizer", default="byte", metavar="byte|bpe|FILE",
                      help="byte (default), bpe (trained here; needs `tokenizers`) or a saved tokenizer.json")
    prep.add_argument("--vocab-size", type=integer, default=4096, metavar="N", help="BPE vocabulary (default 4096)")
    prep.add_argument("--max-chars", type=integer, default=None, metavar="N",
                      help="stop adding documents to a corpus once it holds N characters")
    train = kinds.add_parser("train", help="train a language model (a small GPT or a transformers model) on a "
                             "stream of prepared corpora")
    train.add_argument("--data", default=None, metavar="DIR", help="the folder `lifelong lm prepare` wrote")
    train.add_argument("--stream", type=lambda t: _list_of(str, t), default=None, metavar="A,B",
                       help="the corpora in training order; A+B is one task on A and B joined (the joint baseline)")
    train.add_argument("--steps", type=lambda t: _list_of(int, t), default=None, metavar="N[,N...]",
                       help="optimiser steps per corpus: one number for all or one per corpus")
    train.add_argument("--out", required=True, metavar="DIR", help="the run folder")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    train.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    train.add_argument("--quiet", action="store_true", help="no line per corpus")
    train.add_argument("--model-config", default=None, metavar="K=V,...|FILE|DIR",
                       help="--model hf:TYPE: the transformers config's settings, as n_layer=2,n_embd=64,n_head=2, "
                       "a JSON file, or a folder with config.json")
    train.add_argument("--compile", action="store_const", const=True, default=None,
                       help="torch.compile the model (off by default)")
    for key, value in _DEFAULTS.to_dict().items():
        if key in ("stream", "steps", "model_config", "compile"):
            continue
        kind = integer if isinstance(value, int) else number if isinstance(value, float) or value is None else str
        train.add_argument("--" + key.replace("_", "-"), type=kind, default=None, metavar=key.upper(),
                           help=f"{_HELP[key]} (default {value})")


def _settings(args: argparse.Namespace) -> dict:
    from lifelong.lm.hf import parse_model_config

    given = {key: getattr(args, key) for key in _DEFAULTS.to_dict() if getattr(args, key, None) is not None}
    if "model_config" in given:
        given["model_config"] = parse_model_config(given["model_config"])
    return given


def _print_matrix(doc: dict) -> None:
    names, tasks = doc.get("corpora", doc["stream"]), doc["stream"]
    print("held-out loss (nats/token)   " + "".join(f"{n:>10}" for n in names))
    print(f"{'init':<29}" + "".join(f"{v:>10.4f}" for v in doc["init_losses"]))
    for i, row in enumerate(doc["loss_matrix"]):
        print(f"{'after ' + tasks[i]:<29}" + "".join(f"{v:>10.4f}" for v in row))
    m = doc["metrics"] or {}
    forgetting = m.get("forgetting")
    if forgetting is not None:
        print(f"forgetting {forgetting:.4f} nats")
    else:  # one task, or a stream whose loss matrix is not square (A,A or A+B,C: a row per task, a column per corpus)
        print("forgetting n/a (" + ("one task)" if len(tasks) == 1 else
                                    "the stream repeats or joins corpora: not a task per corpus)"))
    if doc["tokens_per_second"]:
        print(f"{doc['tokens']} tokens in {doc['train_seconds']:.1f} s of training, "
              f"{doc['tokens_per_second']:.0f} tokens/s")


def _train(args: argparse.Namespace) -> dict:
    from lifelong.errors import ConfigError
    from lifelong.lm.run import resume_run, train_run

    progress = None if args.quiet else _progress()
    if args.resume:
        return resume_run(args.out, args.data, progress=progress, settings=_settings(args))
    missing = [f"--{k}" for k in ("data", "stream", "steps") if getattr(args, k) is None]
    if missing:
        raise ConfigError(f"lifelong lm train needs {', '.join(missing)} (or --resume)")
    settings = _settings(args)
    _no_shape_flags(settings)
    cfg = LMConfig(**settings)
    return train_run(cfg, args.data, args.out, overwrite=args.overwrite, progress=progress)


def _no_shape_flags(settings: dict) -> None:
    """The GPT's shape flags given with a transformers model are an error, even at the GPT's default
    values (LMConfig sees only values, so ``--n-layer 2``, the default, would pass unnoticed)."""
    from lifelong.lm.hf import check_model

    model = settings.get("model", _DEFAULTS.model)
    shape = [f"--{k.replace('_', '-')}" for k in ("n_layer", "n_head", "n_embd", "dropout") if k in settings]
    if model != "gpt" and shape:
        check_model(model, settings.get("model_config", {}), shape)


def _interrupted(out: str) -> str:
    """What an interrupted ``lm train`` left: its newest checkpoint and the resume line, or nothing to resume."""
    from lifelong.runs.checkpoint import CheckpointStore

    found = CheckpointStore(Path(out)).paths()
    if not found:
        return "interrupted before the first checkpoint; nothing was written as complete"
    return (f"interrupted; the newest checkpoint is {found[0].name}; continue with lifelong lm train --resume "
            f"--out {out}")


def _progress() -> Any:
    last = {"task": None}

    def show(task: int, step: int, loss: float) -> None:
        if last["task"] != task:
            print(f"lifelong: corpus {task + 1}, from step {step}", file=sys.stderr)
            last["task"] = task
    return show


def lm_command(args: argparse.Namespace) -> int:
    from lifelong.distributed import from_environment
    from lifelong.errors import ConfigError
    from lifelong.lm.run import prepare
    from lifelong.runs.checkpoint import CheckpointStore

    layout = from_environment()
    if layout is not None and layout.world > 1:  # each rank would train (or tokenise) alone into the same folder
        raise ConfigError(f"lifelong lm runs in one process, not as {layout.world} ranks of a torchrun job; start "
                          "it without torchrun (several processes train `lifelong run`)")

    if args.lm_command == "prepare":
        headers = prepare(args.corpus, args.out, args.tokenizer, args.vocab_size, args.max_chars)
        for h in headers:
            print(f"lifelong: {h['name']}: {h['documents']} documents, {h['train_tokens']} training and "
                  f"{h['val_tokens']} held-out tokens ({h['tokenizer']['kind']}, vocabulary "
                  f"{h['tokenizer']['vocab_size']}) in {args.out}")
        return 0
    if args.lm_command == "train":
        try:
            doc = _train(args)
        except KeyboardInterrupt:  # a second Ctrl-C: at once, without a checkpoint of this step
            print(f"\nlifelong: {_interrupted(args.out)}", file=sys.stderr)
            return 130
        if doc.get("diverged"):
            before = ", with the checkpoints from before" if CheckpointStore(Path(args.out)).paths() else ""
            print(f"lifelong: training stopped: {doc['diverged']}; the results so far are in {args.out}, marked "
                  f"incomplete{before}. Try a smaller --lr or a --grad-clip", file=sys.stderr)
            return 1
        if not doc["complete"]:
            print(f"lifelong: stopped after {doc['tokens']} tokens with a checkpoint; continue with "
                  f"lifelong lm train --resume --out {args.out}", file=sys.stderr)
            return 130
        _print_matrix(doc)
        print(f"lifelong: run in {args.out}")
        return 0
    print("lifelong: error: choose lifelong lm prepare or lifelong lm train", file=sys.stderr)
    return 2
