"""``lifelong lm prepare`` and ``lifelong lm train`` as library calls: a folder of prepared
corpora, and a run folder (``config.yaml``, ``metrics.json`` of ``kind: lm``, ``loss_matrix.csv``,
``loss_curve.csv``, ``model.pt``, ``checkpoints/``)."""
from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
import yaml

from lifelong.errors import ConfigError
from lifelong.lm.hf import DATASET_PREFIXES, dataset_documents
from lifelong.lm.offline import offline_corpus
from lifelong.lm.tokens import TokenCorpus, load_tokenizer, open_corpus, read_documents, split_documents, write_corpus
from lifelong.lm.train import LMConfig, LMTrainer
from lifelong.metrics import loss_summary
from lifelong.runs.checkpoint import CheckpointStore, atomic_write_bytes
from lifelong.runs.folder import RunLock, atomic_write, open_out_dir
from lifelong.runs.session import _StopFlag

SCHEMA_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
LM_FILES = ("loss_matrix.csv", "loss_curve.csv")
TOKENIZER_NAME = "tokenizer"  # prepare saves a BPE as tokenizer.json


def parse_corpus_spec(text: str) -> tuple[str, str]:
    """``NAME=SOURCE`` (SOURCE: a file, a folder, ``offline:prose``, ``offline:python``, or a
    ``datasets`` corpus ``hf:PATH[:SPLIT][:FIELD]``, ``hf-hub:NAME[@CONFIG][:SPLIT][:FIELD]``)."""
    name, sep, source = text.partition("=")
    if not sep or not _NAME.match(name) or not source:
        raise ConfigError(f"expected a corpus as NAME=PATH, NAME=offline:prose|python or NAME=hf:PATH[:SPLIT][:FIELD] "
                          f"(NAME of letters, digits, _ . -), got {text!r}")
    return name, source


def _documents(source: str, max_chars: int | None) -> list[str]:
    if source.startswith("offline:"):
        return offline_corpus(source.split(":", 1)[1], max_chars=max_chars)
    if source.startswith(DATASET_PREFIXES):  # read lazily: --max-chars stops the reading
        return _take(dataset_documents(source), max_chars)
    return _take(read_documents(Path(source)), max_chars)


def _take(docs: Iterable[str], max_chars: int | None) -> list[str]:
    """The documents up to the first that brings the total to ``max_chars`` characters (all: None)."""
    kept, total = [], 0
    for d in docs:
        kept.append(d)
        total += len(d)
        if max_chars is not None and total >= max_chars:
            break
    return kept


def prepare(specs: Sequence[str], out: Path, tokenizer: str = "byte", vocab_size: int = 4096,
            max_chars: int | None = None) -> list[dict]:
    """Tokenise each corpus once into ``out`` with one tokenizer (a BPE is trained on all the
    corpora's training documents together and saved as ``out/tokenizer.json``)."""
    named = [parse_corpus_spec(s) for s in specs]
    if len({n for n, _ in named}) != len(named):
        raise ConfigError("two corpora have the same name; give each a name of its own")
    if any(n == TOKENIZER_NAME for n, _ in named):  # its NAME.json would be the folder's tokenizer.json
        raise ConfigError(f"a corpus cannot be named {TOKENIZER_NAME!r} (the folder's {TOKENIZER_NAME}.json is the "
                          "BPE tokenizer); choose another name")
    if max_chars is not None and max_chars < 1:
        raise ConfigError(f"--max-chars must be at least 1, got {max_chars}")
    out = Path(out)
    created = not out.exists()
    _writable(out)  # before the corpora are read: a bad --out fails at once
    try:
        return _tokenise(named, out, tokenizer, vocab_size, max_chars)
    except BaseException:  # a corpus refused: the folder made for it does not stay behind, empty
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def _tokenise(named: list[tuple[str, str]], out: Path, tokenizer: str, vocab_size: int,
              max_chars: int | None) -> list[dict]:
    docs = {name: _documents(source, max_chars) for name, source in named}
    texts = (d for name in docs for d in split_documents(docs[name])[0])
    tok = load_tokenizer(tokenizer, texts, vocab_size)
    try:
        if tok.kind == "bpe":
            atomic_write(out / f"{TOKENIZER_NAME}.json", tok.definition())
        return [write_corpus(out, name, docs[name], tok) for name in docs]
    except OSError as exc:
        raise ConfigError(f"cannot write to {out}: {exc.strerror or exc}; choose another --out") from None


def _writable(out: Path) -> None:
    """Create ``out`` and prove it writable, else a :class:`ConfigError` (a file in its place, no permission)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write to output folder {out}: {exc.strerror or exc}; choose another --out") from None


def _open_stream(data: Path, stream: Sequence[str]) -> tuple[list[TokenCorpus], dict]:
    corpora = [open_corpus(Path(data), name) for name in stream]
    kinds = {json.dumps(c.tokenizer, sort_keys=True) for c in corpora}
    if len(kinds) > 1:
        raise ConfigError(f"the corpora {', '.join(stream)} were prepared with different tokenizers; prepare them "
                          "together (one `lifelong lm prepare`)")
    return corpora, corpora[0].tokenizer


def _identities(corpora: Sequence[TokenCorpus]) -> dict[str, dict]:
    """Each corpus's text digest and token counts: a checkpoint's corpora, checked on resume."""
    return {c.name: {k: c.header.get(k) for k in ("text_digest", "train_tokens", "val_tokens")} for c in corpora}


def _same_corpora(saved: dict | None, corpora: Sequence[TokenCorpus], data: Path) -> None:
    """A :class:`ConfigError` when the corpora differ from the checkpoint's (prepared again with other
    documents or another --max-chars); a checkpoint from before the corpora were recorded passes."""
    if saved is None:
        return
    now = _identities(corpora)
    changed = sorted(n for n in now if saved.get(n) != now[n])
    if changed:
        raise ConfigError(f"the corpora {', '.join(changed)} in {data} are not the ones the run was trained on (other "
                          "text or token counts); resume with the data it was trained on")


def _matrix_csv(tasks: Sequence[str], names: Sequence[str], init: list[float], rows: list[list[float]]) -> str:
    lines = ["after," + ",".join(names), "init," + ",".join(f"{v:.6f}" for v in init)]
    lines += [f"{tasks[i]}," + ",".join(f"{v:.6f}" for v in row) for i, row in enumerate(rows)]
    return "\n".join(lines) + "\n"


def _curve_csv(tasks: Sequence[str], names: Sequence[str], curve: list[dict]) -> str:
    lines = ["step,tokens,task," + ",".join(names)]
    lines += [f"{p['step']},{p['tokens']},{tasks[p['task']] if p['task'] < len(tasks) else p['task']},"
              + ",".join(f"{v:.6f}" for v in p["losses"]) for p in curve]
    return "\n".join(lines) + "\n"


def _write_results(out: Path, trainer: LMTrainer, tokenizer: dict, data: Path, wall: float) -> dict:
    cfg, res = trainer.cfg, trainer.result
    doc = {"schema_version": SCHEMA_VERSION, "kind": "lm", "complete": res.complete, "diverged": res.diverged,
           "stream": cfg.stream,
           "corpora": cfg.corpus_names(), "seed": cfg.seed, "data": str(data), "tokenizer": tokenizer, "loss_matrix": res.loss_matrix,
           "init_losses": res.init_losses,
           "metrics": loss_summary(res.loss_matrix) if res.loss_matrix else None,
           "curve": res.curve, "tokens": res.tokens, "train_seconds": res.train_seconds,
           "tokens_per_second": res.tokens / res.train_seconds if res.train_seconds else None,
           "wall_seconds": wall, "parameters": sum(p.numel() for p in trainer.model.parameters()),
           "model": {"kind": cfg.model, "config": trainer.model.config.to_dict()}}
    atomic_write(out / "loss_matrix.csv", _matrix_csv(cfg.stream, cfg.corpus_names(), res.init_losses, res.loss_matrix))
    atomic_write(out / "loss_curve.csv", _curve_csv(cfg.stream, cfg.corpus_names(), res.curve))
    buffer = io.BytesIO()
    torch.save(trainer.model.state_dict(), buffer)
    atomic_write_bytes(out / "model.pt", buffer.getvalue())
    atomic_write(out / "metrics.json", json.dumps(doc, indent=1) + "\n")
    return doc


def _train(trainer: LMTrainer, out: Path, tokenizer: dict, data: Path, store: CheckpointStore,
           stop: Callable[[int], bool] | None, progress: Callable | None) -> dict:
    started = time.perf_counter()
    with _StopFlag() as signalled:  # SIGINT/SIGTERM: a checkpoint at the next step, then stop
        corpora = _identities(trainer.corpora)
        trainer.run(save=lambda payload, step: store.save({**payload, "tokenizer": tokenizer, "corpora": corpora},
                                                          step),
                    stop=lambda step: signalled() or (stop is not None and stop(step)), progress=progress)
    return _write_results(out, trainer, tokenizer, data, time.perf_counter() - started)


def train_run(cfg: LMConfig, data: Path, out: Path, *, overwrite: bool = False,
              stop: Callable[[int], bool] | None = None, progress: Callable | None = None) -> dict:
    """Train ``cfg`` on the corpora prepared in ``data``; write the run folder ``out``."""
    corpora, tokenizer = _open_stream(data, cfg.corpus_names())
    trainer = LMTrainer(cfg, corpora, tokenizer["vocab_size"])
    lock = RunLock(Path(out))
    try:
        open_out_dir(Path(out), lock, overwrite=overwrite)
        for name in LM_FILES:
            (Path(out) / name).unlink(missing_ok=True)
        config = {"data": str(data), "tokenizer": tokenizer, **cfg.to_dict()}
        atomic_write(Path(out) / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        return _train(trainer, Path(out), tokenizer, Path(data), CheckpointStore(Path(out)), stop, progress)
    finally:
        lock.release()


def resume_run(out: Path, data: Path | None = None, *, stop: Callable[[int], bool] | None = None,
               progress: Callable | None = None, settings: dict[str, Any] | None = None) -> dict:
    """Continue the run in ``out`` from its newest checkpoint, with its ``config.yaml``; ``settings``
    given (the command line's) must be the run's own."""
    out = Path(out)
    try:
        config = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
        data = Path(data or config.pop("data"))
        config.pop("data", None)
        config.pop("tokenizer")
        cfg = LMConfig(**config)
    except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{out} is not a `lifelong lm train` run folder ({type(exc).__name__}); "
                          "give the --out of a run") from None
    _same_settings(cfg, settings or {}, out)
    if not data.is_dir():  # config.yaml keeps --data as it was given: relative to where the run started
        raise ConfigError(f"the run's data folder {data} is not there (config.yaml keeps --data as it was given); "
                          "give --data with the folder of its prepared corpora")
    corpora, tokenizer = _open_stream(data, cfg.corpus_names())
    lock = RunLock(out)
    try:
        open_out_dir(out, lock, clear=False)
        store = CheckpointStore(out)
        loaded = store.load_latest()
        if loaded is None:
            raise ConfigError(f"{out} has no checkpoint to resume from")
        payload, _ = loaded
        if payload.get("tokenizer") != tokenizer:
            raise ConfigError(f"the corpora in {data} were tokenised with {_describe(tokenizer)}, the run with "
                              f"{_describe(payload.get('tokenizer') or {})}; resume with the data it was "
                              "trained on")
        _same_corpora(payload.get("corpora"), corpora, data)
        trainer = LMTrainer(cfg, corpora, tokenizer["vocab_size"])
        trainer.load_state_dict(payload)
        return _train(trainer, out, tokenizer, data, store, stop, progress)
    finally:
        lock.release()


def _same_settings(cfg: LMConfig, settings: dict[str, Any], out: Path) -> None:
    """A :class:`ConfigError` when ``settings`` change the run's (as another ``--model`` on resume)."""
    run = cfg.to_dict()
    wanted = LMConfig(**{**run, **settings}).to_dict()
    diff = sorted(k for k, v in wanted.items() if run[k] != v)
    if diff:
        raise ConfigError(f"the run in {out} was started with other {', '.join(diff)}; --resume continues it with "
                          "the settings of its config.yaml: drop those flags")


def _describe(tok: dict) -> str:
    return f"a {tok.get('kind')} tokenizer of vocabulary {tok.get('vocab_size')} (digest {str(tok.get('digest'))[:12]})"
