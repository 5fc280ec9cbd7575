"""Unlearning a finished run: read its folder (``config.yaml``, ``model.pt``), rebuild its model and
data with the run machinery's own builders, apply a method of :data:`~lifelong.unlearn.UNLEARNERS`,
measure it (:func:`~lifelong.unlearn.evaluate_unlearning`, against a retrained run with
``compare_to``) and write the unlearned model, ``metrics.json`` and ``config.yaml`` to a new
folder, all at once (a temporary folder renamed into place: a failure leaves nothing).

The retrain baseline is a run with the run setting ``forget`` (``lifelong run ... --forget SPEC``,
:func:`lifelong.runs.session.without_forget_set`): :func:`retrain_command` writes it out for the
source run's settings. Both draw a ``random:`` forget set from the source run's seed, so that the
two forget the same examples (checked by their ``forget_digest``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import yaml

from lifelong.config import KEYS
from lifelong.data.benchmarks import get_benchmark
from lifelong.errors import ConfigError
from lifelong.runs.load import SourceRun, staging_folder, write_folder
from lifelong.runs.load import load_run as load_finished
from lifelong.unlearn.data import UnlearnData
from lifelong.seeding import derive
from lifelong.unlearn.evaluate import accuracies, accuracy, evaluate_unlearning, membership_inference, zrf
from lifelong.unlearn.forget import ForgetSpec, corruption, forget_digest, forget_mask, parse_forget_spec, relabel_digest
from lifelong.unlearn.recovery import recovery_report
from lifelong.unlearn.registry import Unlearner, get_unlearner

SCHEMA_VERSION = 1  # of an unlearning's metrics.json (``kind: unlearn``)
# run settings a retrain command leaves out: where and how the run is written and logged, the device
LEFT_OUT_OF_RETRAIN = ("out", "overwrite", "threads", "checkpoint_every", "download", "log", "log_every", "device",
                       "forget")


def load_run(folder: str | Path, *, device: str = "auto", data_root: str | None = None, what: str = "run folder",
             source_cache: dict | None = None) -> tuple[SourceRun, Any]:
    """A finished run read back (:func:`lifelong.runs.load.load_run`); domain-incremental runs
    (permuted, rotated) are refused: their inputs depend on the task."""
    source, data = load_finished(folder, device=device, data_root=data_root, what=what, source_cache=source_cache)
    if source.config.benchmark and get_benchmark(source.config.benchmark).split in ("permuted", "rotated"):
        raise ConfigError(f"{folder} is a run of {source.config.benchmark}, whose inputs change with the task; "
                          f"unlearning covers class-incremental, blurry and task-free runs")
    return source, data


def method_params(unlearner: Unlearner, params: dict[str, Any] | None, seed: int) -> dict[str, Any]:
    """Every parameter of the method: its defaults, ``seed`` for a method that draws, then
    ``params``; an unknown name is one line."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(unlearner.defaults))
    if unknown:
        taken = ", ".join(unlearner.defaults) or "none"
        raise ConfigError(f"unlearning method {unlearner.name!r} has no parameter {unknown[0]!r}; it takes {taken}")
    seeded = {"seed": seed} if "seed" in unlearner.defaults else {}
    return {**unlearner.defaults, **seeded, **params}


def _flag_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _repeated(flag: str, values: dict[str, Any]) -> list[str]:
    """``--flag name=value`` for each setting of a mapping (``None`` values left to their defaults)."""
    return [part for name, v in values.items() if v is not None for part in (flag, f"{name}={_flag_value(v)}")]


def _setting_flags(key: str, value: Any) -> list[str] | None:
    """The flags of one setting; ``None`` when it has none (a mapping other than ``params`` and
    ``refresh``)."""
    if key == "params":
        return _repeated("--param", value)
    if key == "imports":
        return [part for name in value for part in ("--import", name)]
    if key == "refresh":
        if "form" not in value:  # a config file's mapping without a form: the flags would add one
            return None
        return ["--refresh", value["form"], *_repeated("--refresh-param", {k: v for k, v in value.items()
                                                                         if k != "form"})]
    if isinstance(value, dict):
        return None
    flag = "--" + key.replace("_", "-")
    return [flag] if value is True else [flag, _flag_value(value)]


def _given_refresh(resolved: dict[str, Any]) -> dict[str, Any]:
    """The refresh settings the run was given (its recipe's refresh entry, which the fingerprint
    covers as given), not ``refresh:`` with every default filled in."""
    plugins = (resolved.get("recipe") or {}).get("plugins") or []
    entry = next((p for p in reversed(plugins) if isinstance(p, dict) and p.get("plugin") == "refresh"), None)
    return {k: v for k, v in (entry or resolved["refresh"]).items() if k != "plugin"}


def retrain_flags(resolved: dict[str, Any]) -> list[str] | None:
    """The ``lifelong run`` flags of a run's settings (``config.yaml``), every setting that
    defines the run given explicitly, so that the run they start is the same configuration;
    ``None`` when one of them has no flag (a recipe mapping, a mapping of view-batch or
    error-memory settings)."""
    flags: list[str] = []
    for key in KEYS:
        value = _given_refresh(resolved) if key == "refresh" and resolved.get(key) else resolved.get(key)
        if key in LEFT_OUT_OF_RETRAIN or value is None or value is False or value == []:
            continue
        given = _setting_flags(key, value)
        if given is None:
            return None
        flags += given
    return flags


def retrain_command(resolved: dict[str, Any], forget: ForgetSpec | str, out: str | Path,
                    config_file: str | Path | None = None) -> str:
    """The command that trains the source run's configuration without the forget set: its flags
    (:func:`retrain_flags`) then ``--forget SPEC --out OUT``; where a setting has no flag,
    ``--config config_file`` (a file holding the run's settings, :func:`retrain_settings`)."""
    flags = retrain_flags(resolved)
    if flags is None:
        if config_file is None:
            raise ConfigError("the run's settings include a mapping that no flag gives; pass a config file")
        flags = ["--config", str(config_file)]
    return shlex.join(["lifelong", "run", *flags, "--forget", str(forget), "--out", str(out)])


def retrain_settings(resolved: dict[str, Any], forget: ForgetSpec | str) -> dict[str, Any]:
    """The run settings of a retrain, as a config file holds them: the source run's, with ``forget``."""
    settings = {k: resolved[k] for k in KEYS if k in resolved and k not in LEFT_OUT_OF_RETRAIN}
    if settings.get("refresh"):
        settings["refresh"] = _given_refresh(resolved)
    if settings.get("imports"):  # a config file's relative files are read from its own folder
        settings["imports"] = [str(Path(v).resolve()) if v.endswith(".py") else v for v in settings["imports"]]
    return {**settings, "forget": str(forget)}


def _percent(value: float) -> float | None:
    return None if math.isnan(value) else round(100.0 * value, 4)


def random_model(source: SourceRun, data_source: Any) -> nn.Module:
    """ZRF's randomly initialised model: the run's architecture (its recipe's head and
    projection) built as a run of seed ``derive(seed, "unlearn-zrf")`` would start, so neither
    the trained model's own initialisation nor a draw that changes between calls."""
    from lifelong.runs.session import build_model, check_run

    config = dataclasses.replace(source.config, seed=derive(source.config.seed, "unlearn-zrf"), init_from=None)
    _, recipe, backbone, _ = check_run(config)
    return build_model(config, recipe, backbone, data_source, next(source.model.parameters()).device).eval()


def _measures(model: nn.Module, data: UnlearnData, reference: nn.Module | None,
              random: nn.Module | None = None) -> dict[str, Any]:
    """Accuracies in percent (0 to 100), the attack's member fraction, agreement in percent and
    KL, ZRF with a random model."""
    doc = evaluate_unlearning(model, data, reference, random_model=random)
    out: dict[str, Any] = {"accuracy": {k: _percent(v) for k, v in doc["accuracy"].items()}, "mia": doc["mia"],
                           "mia_feature": doc["mia_feature"]}
    if random is not None:
        out["zrf"] = doc["zrf"]
    if reference is not None:
        out["agreement"] = {split: {"agreement": _percent(v["agreement"]), "kl": v["kl"]}
                            for split, v in doc["agreement"].items()}
    return out


def _reference(compare_to: str | Path, spec: ForgetSpec, digest: str, source: SourceRun, device: str,
               data_root: str | None, cache: dict) -> tuple[nn.Module, str]:
    """The reference model and what it is: ``retrain``, a run that forgot the same examples of the
    same data, or, for a corruption, ``clean``: the run the corrupted run started from (its
    ``init_from``: ``model.pt``'s digest is the corrupted run's ``init_digest``). Else one line."""
    from lifelong.runs.load import file_digest

    retrained, _ = load_run(compare_to, device=device, data_root=data_root, what="--compare-to", source_cache=cache)
    theirs = retrained.resolved
    if theirs.get("benchmark") != source.resolved.get("benchmark"):
        raise ConfigError(f"--compare-to {compare_to} is a run of {theirs.get('benchmark')}, not of "
                          f"{source.resolved.get('benchmark')}")
    if theirs.get("forget_digest") == digest:
        return retrained.model, "retrain"
    if spec.kind == "corrupt" and file_digest(Path(compare_to) / "model.pt") == source.resolved.get("init_digest"):
        return retrained.model, "clean"
    got = f"without the forget set {theirs['forget']}" if theirs.get("forget") else "on all its data"
    clean = " nor the clean run the corrupted one started from" if spec.kind == "corrupt" else ""
    raise ConfigError(f"--compare-to {compare_to} was trained {got}, not without this unlearning's {spec} "
                      f"(drawn from seed {source.config.seed}){clean}; give a run made with the retrain command")


def check_corruption(spec: ForgetSpec, source: SourceRun, train_y: torch.Tensor, num_classes: int) -> None:
    """A ``corrupt:`` forget set is unlearnt from a run trained with that very corruption (the
    run setting ``relabel``, the same positions and wrong labels: ``relabel_digest``), else one line."""
    if spec.kind != "corrupt":
        return
    given = source.resolved.get("relabel")
    if not given:
        raise ConfigError(f"forget set {spec}: the run in {source.folder} was trained on true labels; unlearn a "
                          f"corruption from a run trained with it (`lifelong run --init-from CLEAN --relabel {spec}`)")
    idx, wrong = corruption(spec, train_y, num_classes, source.config.seed)
    if relabel_digest(idx, wrong) != source.resolved.get("relabel_digest"):
        raise ConfigError(f"forget set {spec} (drawn from seed {source.config.seed if spec.seed is None else spec.seed})"
                          f" is not the corruption the run in {source.folder} was trained with ({given})")


def _recovery(reference: nn.Module, kind: str, corrupted: nn.Module, unlearned: nn.Module,
              data: UnlearnData) -> dict[str, Any]:
    """RESTOR-style recovery on the corrupted examples (:func:`lifelong.unlearn.recovery_report`),
    ``reference`` the model that never saw the corruption: accuracies and agreement in percent;
    ``gap``: how many points of true-label accuracy the corruption took (the ratio's denominator)."""
    rows = recovery_report(reference, corrupted, {"unlearned": unlearned}, data.forget_x, data.clean_y[data.forget],
                           data.forget_y)
    ratio = {k: None if math.isnan(v) else v for k, v in ((n, r["recovery"]) for n, r in rows.items())}
    gap = _percent(rows["clean"]["clean_accuracy"] - rows["corrupted"]["clean_accuracy"])
    return {"reference": kind, "gap": gap,
            **{name: {**{k: _percent(v) for k, v in row.items() if k != "recovery"}, "recovery": ratio[name]}
               for name, row in rows.items()}}


def run_data(source: SourceRun, data_source: Any, spec: ForgetSpec, mask: torch.Tensor
             ) -> tuple[UnlearnData, list[torch.Tensor]]:
    """The data of an unlearning of a finished run, and its tasks' test examples (positions in
    the test set). ``D`` is the training examples the run trained on: its stream rebuilt from
    its settings (:func:`lifelong.runs.session.stream_of`), the union of its tasks' training
    examples (the source's whole training set unless ``train_tasks`` left some out); the forget
    set ``mask`` (over the source's training set, as the retrain's) cut to them. One line when
    it names none of them or leaves none to retain. A run trained with ``relabel`` trained on
    the corrupted labels: ``train_y`` holds them, ``clean_y`` the true ones."""
    from lifelong.runs.session import stream_of

    stream = stream_of(get_benchmark(source.config.benchmark), data_source, source.config)
    trained = torch.unique(torch.cat([t.train_idx for t in stream.tasks]))
    examples = None if len(trained) == len(mask) else trained
    kept = mask if examples is None else mask[examples]
    if not bool(kept.any()):
        raise ConfigError(f"forget set {spec} names no training example the run in {source.folder} trained on")
    if bool(kept.all()):
        raise ConfigError(f"forget set {spec} covers every training example the run in {source.folder} trained "
                          f"on: nothing would be retained")
    trained_y = stream.source.train_y if source.config.relabel is not None else None  # the corrupted labels
    data = UnlearnData.from_source(data_source, mask, examples=examples, trained_y=trained_y,
                                   forget_classes=spec.classes)
    return data, [t.test_idx for t in stream.tasks]


def task_accuracy(model: nn.Module, data: UnlearnData, tasks: list[torch.Tensor]) -> dict[str, list]:
    """``{"task_accuracy": [...]}``: class-incremental accuracy (percent, every output) on each
    task's test examples, for a run of more than one task; ``{}`` for one task."""
    if len(tasks) < 2:
        return {}
    return {"task_accuracy": [_percent(accuracy(model, data.test_x[idx], data.test_y[idx])) for idx in tasks]}


CACHED = ("ssd", "lfssd")  # the methods whose full-set importance --importance-cache keeps


def importance_key(source: SourceRun, data: UnlearnData, batch_size: int, label_free: bool) -> str:
    """16 hex digits naming a full-set importance: the SHA-256 of the run's ``model.pt``, then
    ``D`` (its positions in the training set and the labels it carries), the batch size and the
    kind (SSD or label-free)."""
    from lifelong.runs.load import file_digest

    h = hashlib.sha256(f"{file_digest(source.folder / 'model.pt')}:{batch_size}:{label_free}:".encode())
    for values in (data.positions, data.train_y):
        h.update(values.cpu().to(torch.int64).numpy().tobytes())
    return h.hexdigest()[:16]


def cached_importance(source: SourceRun, data: UnlearnData, batch_size: int, label_free: bool
                      ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``I_D`` over ``D`` in its own order (:func:`lifelong.unlearn.ssd.full_importance`,
    ``order="dataset"``), read from ``ssd-importance-KEY.pt`` in the run folder when it is there
    and fits the model, else computed and written there (atomically) for the next request; and
    what happened: the file's name, ``hit`` and the seconds it took (reading, or computing)."""
    from lifelong.runs.checkpoint import atomic_write_bytes
    from lifelong.unlearn.ssd import full_importance

    path = source.folder / f"ssd-importance-{importance_key(source, data, batch_size, label_free)}.pt"
    clock = time.perf_counter()
    shapes = {name: p.shape for name, p in source.model.named_parameters()}
    device = next(source.model.parameters()).device
    try:
        found = torch.load(path, map_location=device, weights_only=True) if path.is_file() else None
    except Exception:  # a damaged cache file: torch raises many kinds; it is computed again
        found = None
    if isinstance(found, dict) and {k: getattr(v, "shape", None) for k, v in found.items()} == shapes:
        return found, {"file": path.name, "hit": True, "seconds": time.perf_counter() - clock}
    full = full_importance(source.model, data, batch_size, label_free, order="dataset")
    buffer = io.BytesIO()
    torch.save(full, buffer)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        raise ConfigError(f"--importance-cache: cannot write {path}: {exc.strerror or exc}") from None
    return full, {"file": path.name, "hit": False, "seconds": time.perf_counter() - clock}


def _apply(unlearner: Unlearner, source: SourceRun, data: UnlearnData, params: dict[str, Any], cache: bool
           ) -> tuple[nn.Module, dict[str, Any] | None]:
    """The method on the run's model; with ``cache`` (SSD, LFSSD), its ``I_D`` from the run folder."""
    if not cache:
        return unlearner(source.model, data, **params), None
    from lifelong.unlearn.ssd import check_ssd_settings, ssd_given

    label_free = params.get("label_free", unlearner.name == "lfssd")
    check_ssd_settings(params["alpha"], params["lam"], params["batch_size"])
    full, info = cached_importance(source, data, params["batch_size"], label_free)
    return ssd_given(source.model, data, full, params["alpha"], params["lam"], params["batch_size"], label_free), info


def _before(source: Any, data: Any, random: Any, tasks: Any) -> dict[str, Any]:
    """The source model's measures, before unlearning: accuracies, the attack, ZRF, per task."""
    return {"accuracy": {k: _percent(v) for k, v in accuracies(source.model, data).items()},
            "mia": membership_inference(source.model, data), "zrf": zrf(source.model, random, data.forget_x),
            **task_accuracy(source.model, data, tasks)}


def _write(tmp: Path, out: Path, source: Any, spec: Any, method: str, params: dict[str, Any],
           doc: dict[str, Any], data: Any, unlearned: Any) -> None:
    """The unlearned folder, staged in ``tmp`` and moved to ``out`` whole: model.pt, metrics.json,
    config.yaml, and retrain.yaml where the retrain needs a settings file."""
    config = {"source_run": str(source.folder), "forget": str(spec), "method": method,
              "params": params, "compare_to": doc["compare_to"], "device": str(data.train_y.device)}
    if retrain_flags(source.resolved) is None:
        (tmp / "retrain.yaml").write_text(yaml.safe_dump(retrain_settings(source.resolved, spec),
                                                         sort_keys=False), encoding="utf-8")
    write_folder(tmp, out, unlearned.state_dict(), doc, config)


def unlearn_run(run_dir: str | Path, forget: str, method: str, params: dict[str, Any] | None = None,
                out: str | Path | None = None, compare_to: str | Path | None = None, *, seed: int | None = None,
                device: str = "auto", data_root: str | None = None, importance_cache: bool = False
                ) -> dict[str, Any]:
    """Unlearn the forget set ``forget`` (``classes:3,7``, ``random:0.01``, ``indices:FILE``; a
    ``random:`` draw from the source run's seed) from the finished run in ``run_dir`` with the
    method ``method`` and ``params`` (``seed``, for a method that draws: ``seed``, else the run's).

    Returns the metrics document (see docs/UNLEARNING.md): accuracy on the forget, retain and
    test sets before and after (percent), the membership-inference attack, the method's wall
    seconds, the method and every parameter, the source run, the forget set, the retrain
    command and, with ``compare_to`` (a finished run trained with ``--forget`` the same set),
    agreement and KL with its model on the test and forget sets. A ``corrupt:`` forget set is
    unlearnt from a run trained with that corruption (``relabel``); with ``compare_to`` (a
    retrain, or the clean run the corrupted one started from) the document adds ``recovery``
    (RESTOR-style, :func:`_recovery`). With ``out``, writes
    ``out/model.pt``, ``out/metrics.json`` and ``out/config.yaml`` together, or nothing."""
    started = time.perf_counter()
    unlearner = get_unlearner(method)
    if importance_cache and unlearner.name not in CACHED:
        raise ConfigError(f"--importance-cache keeps SSD's full-set importance; it is for {' and '.join(CACHED)}, "
                          f"not {unlearner.name}")
    spec = parse_forget_spec(forget)
    method_params(unlearner, params, 0)  # unknown names before any data are read
    out = None if out is None else Path(out)
    tmp = None if out is None else staging_folder(out, ".lifelong-unlearn-")
    try:
        cache: dict = {}
        source, data_source = load_run(run_dir, device=device, data_root=data_root, source_cache=cache)
        if source.resolved.get("forget"):
            raise ConfigError(f"the run in {run_dir} was itself trained without the forget set "
                              f"{source.resolved['forget']}; unlearn a run trained on all its data")
        params = method_params(unlearner, params, source.config.seed if seed is None else seed)
        check_corruption(spec, source, data_source.train_y, data_source.num_classes)
        mask = forget_mask(spec, data_source.train_y, data_source.num_classes, source.config.seed)
        data, tasks = run_data(source, data_source, spec, mask)
        digest = forget_digest(mask)
        reference, kind = (None, None) if compare_to is None else _reference(compare_to, spec, digest, source, device,
                                                                              data_root, cache)
        random = random_model(source, data_source)
        before = _before(source, data, random, tasks)
        clock = time.perf_counter()
        unlearned, cache_info = _apply(unlearner, source, data, params, importance_cache)
        method_seconds = time.perf_counter() - clock
        measured = {**_measures(unlearned, data, reference, random), **task_accuracy(unlearned, data, tasks)}
        if spec.kind == "corrupt" and reference is not None:
            measured["recovery"] = _recovery(reference, kind, source.model, unlearned, data)
        retrain_out = f"{out}-retrain" if out is not None else "RETRAIN_DIR"
        settings_file = None if out is None else out / "retrain.yaml"
        doc = {
            "schema_version": SCHEMA_VERSION, "kind": "unlearn", "complete": True,
            "method": unlearner.name, "params": params,
            "source_run": str(source.folder), "benchmark": source.resolved.get("benchmark"),
            "source_method": source.resolved.get("method_name", source.resolved.get("method")),
            "seed": source.config.seed,
            "forget": str(spec), "forget_count": int(data.forget.sum()), "forget_digest": digest,
            "retain_count": int((~data.forget).sum()), "test_count": len(data.test_y),
            "before": before, **measured,
            "compare_to": None if compare_to is None else str(compare_to), "compare_to_kind": kind,
            "wall_seconds": method_seconds, "total_seconds": time.perf_counter() - started,
            **({} if cache_info is None else {"importance_cache": cache_info}),
            "retrain_command": retrain_command(source.resolved, spec, retrain_out, settings_file),
            "command": " ".join(sys.argv),
        }
        if tmp is not None:
            _write(tmp, out, source, spec, unlearner.name, params, doc, data, unlearned)
            tmp = None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return doc
