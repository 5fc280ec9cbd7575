"""Hugging Face models and corpora for ``lifelong lm``, with the optional extra
``pip install 'lifelong[hf]'`` (``transformers``, ``datasets``); nothing here downloads unless a
Hub dataset is named (``hf-hub:``).

**Models.** ``--model hf:TYPE`` trains a causal language model of a ``transformers`` model type
(``gpt2``, ``llama``, ``gpt_neox``, ...) built from a configuration and freshly initialised:
``AutoConfig.for_model(TYPE, **settings)`` and ``AutoModelForCausalLM.from_config`` (never
``from_pretrained``). The settings (``--model-config``) are ``KEY=VALUE`` pairs, a JSON file or a
folder's ``config.json`` (:func:`parse_model_config`); a ``model_type`` in them may stand for TYPE
(``--model hf``). The prepared corpora set ``vocab_size`` and ``--block-size`` the context
(``max_position_embeddings``, when the type has one): a ``vocab_size`` given that differs, a
context given shorter than ``--block-size``, or a setting the type does not know is a
:class:`~lifelong.errors.ConfigError`. Special-token ids outside the vocabulary (GPT-2's 50256)
become ``None``.

:class:`HFCausalLM` makes the model look like :class:`lifelong.lm.model.GPT` to the loop:
``forward(idx, targets)`` returns ``(logits, loss)``, the loss the mean next-token cross-entropy;
:meth:`~HFCausalLM.hidden` the last hidden states, ``hidden_states[-1]`` with
``output_hidden_states=True`` (after the final norm in GPT-2, Llama, GPT-NeoX and Qwen2: the layer
:meth:`GPT.hidden` gives GeRe, and the one the GeRe reference records); and
:meth:`~HFCausalLM.lm_head` the logits of hidden states.

**Corpora.** ``NAME=hf:PATH[:SPLIT][:FIELD]`` reads a local dataset: a folder written by
``save_to_disk`` (``load_from_disk``) or a data file (``.json``/``.jsonl``, ``.csv``,
``.parquet``, ``.txt`` one row a line, ``.arrow``; read with ``load_dataset(..., streaming=True)``
and a throw-away cache). ``NAME=hf-hub:NAME[@CONFIG][:SPLIT][:FIELD]`` streams a dataset of the Hub
(the user's explicit choice). SPLIT defaults to ``train``, FIELD to ``text``; each row's field is
one document (rows of whitespace only are dropped), as a file of a folder is one.
"""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from lifelong.errors import ConfigError, DataError

_INSTALL = "pip install 'lifelong[hf]'"
_METADATA = ("transformers_version", "_name_or_path", "architectures")  # provenance, not the model
_TYPE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_TOKEN_IDS = ("bos_token_id", "eos_token_id", "pad_token_id")
DATASET_PREFIXES = ("hf:", "hf-hub:")
_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text",
             ".arrow": "arrow"}


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise ConfigError(f"--model hf:... needs the `transformers` package: {_INSTALL}") from None
    return transformers


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError(f"a corpus hf:... needs the `datasets` package: {_INSTALL}") from None
    return datasets


# -- models ------------------------------------------------------------------------------------------

def _value(text: str) -> Any:
    """A ``KEY=VALUE`` value: JSON (``2``, ``1e-5``, ``false``, ``null``, ``[1, 2]``), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_model_config(spec: str) -> dict[str, Any]:
    """``--model-config``: ``KEY=VALUE,KEY=VALUE``, a JSON file of an object, or a folder holding
    ``config.json``; provenance keys (``transformers_version``, ...) are dropped."""
    path = Path(spec)
    if path.is_dir() or spec.endswith(".json"):
        file = path / "config.json" if path.is_dir() else path
        try:
            settings = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--model-config {spec}: cannot read {file} as JSON ({type(exc).__name__})") from None
        if not isinstance(settings, dict):
            raise ConfigError(f"--model-config {file} must hold a JSON object of settings")
    else:
        pairs = [p.partition("=") for p in spec.split(",") if p.strip()]
        if not pairs or any(not sep or not key.strip() for key, sep, _ in pairs):
            raise ConfigError(f"--model-config expects KEY=VALUE[,KEY=VALUE...], a JSON file or a folder with "
                              f"config.json, got {spec!r}")
        settings = {key.strip(): _value(value.strip()) for key, _, value in pairs}
    return {k: v for k, v in settings.items() if k not in _METADATA}


def hf_model_type(model: str, settings: dict[str, Any]) -> str:
    """The transformers model type of ``--model hf:TYPE`` (or ``hf`` and the settings' ``model_type``)."""
    named = model.partition(":")[2]
    given = settings.get("model_type")
    if named and given and named != given:
        raise ConfigError(f"--model {model} and the model config's model_type {given!r} differ; give one")
    kind = named or given
    if not isinstance(kind, str) or not _TYPE.match(kind):
        raise ConfigError(f"--model {model}: name a transformers model type, as hf:gpt2 or hf:llama (or give "
                          "model_type in --model-config)")
    return kind


def check_model(model: str, settings: dict[str, Any], shape_flags: list[str]) -> None:
    """A :class:`ConfigError` for an unknown ``--model``, settings for the library GPT, or the GPT's
    shape flags (``shape_flags``: those changed) given with a transformers model."""
    if model == "gpt":
        if settings:
            raise ConfigError("--model-config is for a transformers model (--model hf:TYPE); the library GPT "
                              "takes --n-layer, --n-head, --n-embd")
        return
    if model != "hf" and not model.startswith("hf:"):
        raise ConfigError(f"unknown --model {model!r}: gpt (the library's GPT) or hf:TYPE (a transformers model "
                          "type, as hf:gpt2)")
    if not isinstance(settings, dict):
        raise ConfigError(f"the model config must be a mapping of settings, got {settings!r}")
    hf_model_type(model, settings)
    if shape_flags:
        raise ConfigError(f"{', '.join(shape_flags)} shape the library GPT; for --model {model} give the shape "
                          "in --model-config (as n_layer=2,n_embd=64 for gpt2)")


def _config_errors() -> tuple[type[BaseException], ...]:
    """The errors a config's values raise: Python's, and huggingface_hub's strict-dataclass check
    (transformers 5 validates each field's type: ``n_layer=1=2`` is a text, not an int)."""
    try:
        from huggingface_hub.errors import StrictDataclassError
    except ImportError:  # an older huggingface_hub: no such check
        return (ValueError, TypeError, KeyError)
    return (ValueError, TypeError, KeyError, StrictDataclassError)


def _first_line(exc: BaseException, limit: int = 200) -> str:
    lines = [t.strip() for t in str(exc).strip().splitlines() if t.strip()] or [type(exc).__name__]
    line = " ".join(lines[:2]) if lines[0].endswith(":") else lines[0]  # "Validation error for field 'x':" + why
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _check_known(config: Any, default: Any, settings: dict[str, Any], kind: str) -> None:
    """A setting the type does not know is kept verbatim by transformers: refuse it (a typo)."""
    known = set(default.to_dict()) | set(getattr(default, "attribute_map", {}))
    built = config.to_dict()
    unknown = sorted(k for k in settings if k not in known and k in built)
    if unknown:
        own = sorted(k for k in default.to_diff_dict() if k not in ("model_type", "transformers_version"))
        raise ConfigError(f"the {kind} config has no setting {', '.join(map(repr, unknown))} (check the name; "
                          f"its own settings: {', '.join(own)})")


def _context_keys(config: Any) -> set[str]:
    """The names of the context length: ``max_position_embeddings`` and its aliases (GPT-2's n_positions)."""
    alias = getattr(config, "attribute_map", {}).get("max_position_embeddings")
    return {"max_position_embeddings"} | ({alias} if alias else set())


def check_vocab(settings: dict[str, Any], vocab_size: int) -> None:
    """A :class:`ConfigError` for a ``vocab_size`` given that is not the corpora's."""
    if settings.get("vocab_size", vocab_size) != vocab_size:
        raise ConfigError(f"the model config's vocab_size {settings['vocab_size']} differs from the corpora's "
                          f"vocabulary {vocab_size}; drop vocab_size from --model-config (the tokenizer sets it)")


def fit_config(config: Any, settings: dict[str, Any], vocab_size: int, block_size: int) -> None:
    """Set the corpora's vocabulary and the context on ``config``; a context given that is shorter
    than ``block_size`` is a ConfigError."""
    config.vocab_size = vocab_size  # set after construction: transformers' check of the token ids stays quiet
    if hasattr(config, "max_position_embeddings"):
        if _context_keys(config) & set(settings):
            if config.max_position_embeddings < block_size:
                raise ConfigError(f"the model config's context of {config.max_position_embeddings} tokens is "
                                  f"shorter than --block-size {block_size}")
        else:
            config.max_position_embeddings = block_size
    for key in _TOKEN_IDS:
        value = getattr(config, key, None)
        if isinstance(value, int) and not 0 <= value < vocab_size:  # not used in training; transformers warns
            setattr(config, key, None)


def build_hf_model(model: str, settings: dict[str, Any], vocab_size: int, block_size: int) -> "HFCausalLM":
    """A freshly initialised transformers causal LM of ``--model hf:TYPE`` and its settings."""
    transformers = _transformers()
    kind = hf_model_type(model, settings)
    given = {k: v for k, v in settings.items() if k != "model_type"}
    check_vocab(given, vocab_size)
    if kind not in transformers.CONFIG_MAPPING:
        raise ConfigError(f"transformers {transformers.__version__} has no model type {kind!r} (causal LMs include "
                          "gpt2, llama, gpt_neox, qwen2; transformers.CONFIG_MAPPING lists them all)")
    try:
        default = transformers.AutoConfig.for_model(kind)
        config = transformers.AutoConfig.for_model(kind, **{k: v for k, v in given.items() if k != "vocab_size"})
    except _config_errors() as exc:
        raise ConfigError(f"transformers cannot make a {kind!r} config: {_first_line(exc)}") from None
    _check_known(config, default, given, kind)
    fit_config(config, given, vocab_size, block_size)
    try:
        inner = transformers.AutoModelForCausalLM.from_config(config)
    except (*_config_errors(), AttributeError) as exc:
        raise ConfigError(f"transformers cannot build a causal LM of type {kind!r}: {_first_line(exc)}") from None
    return HFCausalLM(inner)


class HFCausalLM(nn.Module):
    """A transformers causal LM with :class:`lifelong.lm.model.GPT`'s interface. Its state dict is
    the model's under the prefix ``hf.``; :attr:`config` is the model's config."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.hf = inner.train()  # from_config's model is already in training mode; made sure
        self.config = inner.config
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """The last hidden states (``hidden_states[-1]``), ``B x T x width``. With gradients on, the
        pass's logits are kept for :meth:`lm_head` of these very states."""
        out = self.hf(input_ids=idx, output_hidden_states=True, use_cache=False)
        h = out.hidden_states[-1]
        self._last = (h, out.logits) if torch.is_grad_enabled() else None
        return h

    def lm_head(self, h: torch.Tensor) -> torch.Tensor:
        """The logits of ``h``: the model's own for the states :meth:`hidden` just returned (so a
        final soft-cap or logit scale of the type is applied), else the output projection of ``h``."""
        last, self._last = self._last, None
        if last is not None and last[0] is h:
            return last[1]
        return self.hf.get_output_embeddings()(h)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.hf(input_ids=idx, use_cache=False).logits
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


# -- corpora -----------------------------------------------------------------------------------------

def parse_dataset_spec(source: str) -> tuple[bool, str, str | None, str | None, str]:
    """``hf:PATH[:SPLIT][:FIELD]`` or ``hf-hub:NAME[@CONFIG][:SPLIT][:FIELD]`` as (hub, path or
    name, Hub config, split or None, field); an empty SPLIT or FIELD is the default."""
    hub = source.startswith("hf-hub:")
    parts = source.split(":", 1)[1].split(":")
    if len(parts) > 3 or not parts[0]:
        raise ConfigError(f"expected a dataset as hf:PATH[:SPLIT][:FIELD] or hf-hub:NAME[@CONFIG][:SPLIT][:FIELD], "
                          f"got {source!r}")
    parts += [""] * (3 - len(parts))
    name, config = parts[0].partition("@")[::2] if hub else (parts[0], "")
    return hub, name, config or None, parts[1] or None, parts[2] or "text"


def _pick_split(loaded: Any, split: str | None, where: str) -> Any:
    """A split of what ``load_from_disk`` read (a DatasetDict; ``train`` by default), or the Dataset."""
    if hasattr(loaded, "keys"):  # a DatasetDict
        split = split or "train"
        if split not in loaded:
            raise ConfigError(f"dataset {where} has no split {split!r} (its splits: {', '.join(loaded)})")
        return loaded[split]
    if split is not None:
        raise ConfigError(f"dataset {where} is one split (a Dataset saved alone); drop :{split}")
    return loaded


def _rows(source: str, cache: str) -> Iterator[dict]:
    datasets = _datasets()
    hub, name, config, split, _ = parse_dataset_spec(source)
    try:
        if hub:
            yield from datasets.load_dataset(name, config, split=split or "train", streaming=True)
            return
        path = Path(name)
        if path.is_dir():
            yield from _pick_split(datasets.load_from_disk(str(path)), split, name)
            return
        if not path.is_file():
            raise DataError(f"no dataset at {name} (a folder of save_to_disk or a data file; a Hub dataset is "
                            f"hf-hub:{name})")
        builder = _BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise ConfigError(f"{name}: a data file of {', '.join(sorted(_BUILDERS))}, got {path.suffix!r}")
        yield from datasets.load_dataset(builder, data_files=str(path), split=split or "train", streaming=True,
                                         cache_dir=cache)
    except (ValueError, FileNotFoundError) as exc:  # datasets' own: a bad split, not a dataset folder
        raise DataError(f"dataset {name}: {_first_line(exc)}") from None


def dataset_documents(source: str) -> Iterator[str]:
    """The documents of a ``hf:``/``hf-hub:`` corpus, one per row, lazily (so ``--max-chars`` reads
    no further than it keeps); a missing field, a value that is not text, or no text is an error."""
    field = parse_dataset_spec(source)[4]
    count = 0
    with tempfile.TemporaryDirectory(prefix="lifelong-datasets-") as cache:
        for row in _rows(source, cache):
            if field not in row:
                raise ConfigError(f"corpus {source}: no field {field!r} (its fields: {', '.join(row)}); give it "
                                  "as hf:PATH:SPLIT:FIELD")
            text = row[field]
            if not isinstance(text, str):
                raise DataError(f"corpus {source}: field {field!r} holds {type(text).__name__}, not text")
            if text.strip():
                count += 1
                yield text
    if not count:
        raise DataError(f"corpus {source} holds no text")
