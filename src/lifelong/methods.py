"""Methods as recipes: weighted terms, a memory policy and plug-ins.

Following Wang et al., "A Unified and General Framework for Continual Learning" (ICLR 2024),
a method is not a trainer class but a choice of terms in one objective. A recipe is written as
a small mapping, the same for the presets below and for a user's own method in YAML::

    terms:
      - {term: ce}                                  # cross-entropy on the current batch
      - {term: logit-mse, weight: ${alpha}}         # DER: match stored logits
      - {term: ce, on: replay, draw: 1, weight: ${beta}}
    memory: reservoir                               # reservoir | task-balanced | herding | activations
                                                    # or {memory: activations, recent_tasks: 1}: with options
    plugins: []                                     # e.g. [{plugin: agem}]
    replay_forward: separate                        # joint (default) | separate forwards per part
    replay_from: 0                                  # first task (from 0) that replays
    head: linear                                    # linear (default) | cosine classifier
    head_scale: 10                                  # the cosine classifier's scale s (logits s·cos)
    views: none                                     # none (default) | strong | padded: augmented copies too
    two_views: false                                # true: the inputs are augmented views as well
    projection: []                                  # widths of a projection MLP on the features

``${name}`` refers to a parameter of the method, given by the hyperparameter files, a config's
``params:`` or ``--param name=value``.
"""
from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass, field
from typing import Any

from lifelong.config import method_name
from lifelong.errors import ConfigError
from lifelong.memory import MEMORIES
from lifelong.objective import TERMS, Objective
from lifelong.plugins import PLUGINS


@dataclass
class Recipe:
    """What the loop needs to know about a method.

    ``memory``: ``None`` or a name from :data:`lifelong.memory.MEMORIES`. ``joint``: train once
    on all tasks' data together instead of task by task (the upper bound). ``plugins``: step
    plug-ins (see :mod:`lifelong.plugins`). ``replay_forward``: ``"joint"`` (one forward over
    current and replayed examples) or ``"separate"`` (one per part; they differ only through
    batch-norm statistics). ``replay_from``: the index of the first task whose steps draw replay
    samples (ER-ACE replays from the second). ``head``: ``"linear"`` or ``"cosine"``
    (:class:`lifelong.nets.heads.CosineLinear` replaces the backbone's classifier);
    ``head_scale``: its scale (``None``: the head's default, 10). ``views``: ``"none"`` or
    ``"strong"``: every input of a step (current and replayed) also goes through the forward as a
    strongly augmented copy (:func:`lifelong.data.strong_augment.strong_augment`, PCR's
    augmentation), whose outputs follow the plain ones (:class:`lifelong.objective.StepBatch`);
    ``"padded"``: the same with a padded random crop in place of the resized one and no hue jitter
    (PRD's augmentation; :data:`lifelong.data.strong_augment.VIEW_AUGMENTS`). ``two_views``: the
    inputs themselves are replaced by a second augmented view of the same kind (two augmented
    views of each example, SupCon's as PRD trains it) instead of the plain (benchmark-augmented)
    input. ``projection``: the widths of a projection MLP that :func:`lifelong.nets.set_projection`
    adds to the model as ``model.projection`` (ReLU between layers; empty: none), for terms that
    contrast projected features (``supcon``). ``spec``: the mapping it was built from.
    ``memory_options``: the options given with the memory (``memory: {memory: activations,
    recent_tasks: 1}``), passed to its constructor.
    """

    name: str
    objective: Objective
    memory: str | None = None
    plugins: list = field(default_factory=list)
    joint: bool = False
    spec: dict = field(default_factory=dict)
    replay_forward: str = "joint"
    replay_from: int = 0
    head: str = "linear"
    head_scale: float | None = None
    views: str = "none"
    memory_options: dict = field(default_factory=dict)
    two_views: bool = False
    projection: tuple[int, ...] = ()


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    paper: str
    recipe: dict
    params: dict = field(default_factory=dict)


def _ce(**kw: Any) -> dict:
    return {"term": "ce", **kw}


# PCR's proxy classifier: logits cos(f, w_c) / 0.09 (``cosLinear`` in FelixHuiweiLin/PCR, fixed in the code)
PCR_HEAD_SCALE = 1 / 0.09

# GPM's options as preset parameters; defaults: the reference's Permuted-MNIST settings (sahagobinda/GPM,
# main_pmnist.py: 300 examples, thresholds 0.95 for the first layer, 0.99 for the others)
_GPM_OPTIONS = {"threshold": "${threshold}", "first_threshold": "${first_threshold}",
                "threshold_step": "${threshold_step}", "examples": "${examples}"}
_GPM_PARAMS = {"threshold": 0.99, "first_threshold": 0.95, "threshold_step": 0.0, "examples": 300}

PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("finetune", "SGD on each task in turn; the lower bound", "-", {"terms": [_ce()]}),
    Preset("joint", "all tasks' data at once, same epochs; the upper bound", "-",
           {"terms": [_ce()], "joint": True}),
    Preset("er", "experience replay from a reservoir memory",
           "Chaudhry et al., On tiny episodic memories in continual learning, 2019",
           {"terms": [_ce(on="both")], "memory": "reservoir"}),
    Preset("er-ace", "ER with asymmetric cross-entropy: new classes do not push old ones down",
           "Caccia et al., New insights on reducing abrupt representation change, ICLR 2022",
           {"terms": [_ce(mask="batch"), _ce(on="replay")], "memory": "reservoir", "replay_from": 1,
            "replay_forward": "separate", "head": "${head}"},
           {"head": "cosine"}),
    Preset("der", "dark experience replay: match the logits stored with replayed examples",
           "Buzzega et al., Dark experience for general continual learning, NeurIPS 2020",
           {"terms": [_ce(), {"term": "logit-mse", "weight": "${alpha}"}], "memory": "reservoir",
            "replay_forward": "separate"},
           {"alpha": 0.3}),
    Preset("derpp", "DER++: DER plus cross-entropy on a second replay draw",
           "Buzzega et al., Dark experience for general continual learning, NeurIPS 2020",
           {"terms": [_ce(), {"term": "logit-mse", "weight": "${alpha}"},
                      _ce(on="replay", draw=1, weight="${beta}")], "memory": "reservoir",
            "replay_forward": "separate"},
           {"alpha": 0.1, "beta": 0.5}),
    Preset("lwf", "learning without forgetting: warm up the new head, then distil the previous model's outputs",
           "Li and Hoiem, Learning without forgetting, ECCV 2016",
           {"terms": [_ce(mask="future"),
                      {"term": "distill-kl", "weight": "${alpha}", "temperature": "${temperature}"}],
            "plugins": [{"plugin": "head-warmup"}]},
           {"alpha": 1.0, "temperature": 2.0}),
    Preset("ewc", "elastic weight consolidation, one Fisher and anchor per task",
           "Kirkpatrick et al., Overcoming catastrophic forgetting in neural networks, PNAS 2017",
           {"terms": [_ce(), {"term": "ewc", "weight": "${lambda}"}]}, {"lambda": 100.0}),
    Preset("ewc-online", "online EWC: one running Fisher with decay gamma",
           "Schwarz et al., Progress & compress, ICML 2018",
           {"terms": [_ce(), {"term": "ewc", "online": True, "gamma": "${gamma}", "weight": "${lambda}"}]},
           {"lambda": 100.0, "gamma": 1.0}),
    Preset("si", "synaptic intelligence: importance from the path integral of the loss",
           "Zenke et al., Continual learning through synaptic intelligence, ICML 2017",
           {"terms": [_ce(), {"term": "si", "xi": "${xi}", "weight": "${c}"}],
            "plugins": [{"plugin": "clip-grad", "value": 1.0}]}, {"c": 1.0, "xi": 1.0}),
    Preset("mas", "memory aware synapses: importance from the output's sensitivity",
           "Aljundi et al., Memory aware synapses, ECCV 2018",
           {"terms": [_ce(), {"term": "mas", "weight": "${lambda}"}]}, {"lambda": 1.0}),
    Preset("agem", "averaged GEM: project the gradient so the memory loss does not rise",
           "Chaudhry et al., Efficient lifelong learning with A-GEM, ICLR 2019",
           {"terms": [_ce()], "memory": "task-balanced", "plugins": [{"plugin": "agem"}]}),
    Preset("gpm", "gradient projection memory: each layer's gradient loses its component in the input "
           "subspaces of finished tasks (SVD bases kept to an energy threshold)",
           "Saha et al., Gradient projection memory for continual learning, ICLR 2021",
           {"terms": [_ce()], "plugins": [{"plugin": "gpm", **_GPM_OPTIONS}]},
           _GPM_PARAMS),
    Preset("cuber", "GPM that keeps the step in an old task's subspace where the new task's gradient projects "
           "sufficiently on it and correlates positively with the old task's (backward transfer)",
           "Lin et al., Beyond not-forgetting: continual learning with backward knowledge transfer, NeurIPS 2022",
           {"terms": [_ce()], "plugins": [{"plugin": "cuber", **_GPM_OPTIONS, "epsilon": "${epsilon}",
                                           "beta": "${beta}"}]},
           {**_GPM_PARAMS, "epsilon": 0.2, "beta": 0.0}),
    Preset("icarl", "iCaRL: herding exemplars added to each task's data, distillation, nearest-mean classifier",
           "Rebuffi et al., iCaRL: incremental classifier and representation learning, CVPR 2017",
           {"terms": [{"term": "icarl", "on": "current"}], "memory": "herding",
            "plugins": [{"plugin": "mix-memory"}, {"plugin": "nme"}]}),
    Preset("pcr", "proxy-based contrastive replay: features against the proxies of the batch's classes, "
           "strong augmentation, cosine classifier",
           "Lin et al., PCR: Proxy-based contrastive replay for online class-incremental continual learning, CVPR 2023",
           {"terms": [{"term": "pcr", "temperature": "${temperature}"}], "memory": "reservoir", "views": "strong",
            "replay_forward": "separate", "head": "cosine", "head_scale": PCR_HEAD_SCALE},
           {"temperature": 0.09}),
    Preset("hpcr", "holistic PCR: PCR with a periodic loss scale and proxy and similarity distillation",
           "Lin et al., HPCR: Holistic proxy-based contrastive replay for online continual learning, TNNLS 2025",
           {"terms": [{"term": "pcr", "temperature": "${temperature}", "t_max": "${t_max}", "t_min": "${t_min}",
                       "period": "${period}"},
                      {"term": "pcd", "weight": "${alpha}"},
                      {"term": "scd", "temperature": "${temperature}", "weight": "${beta}"}],
            "memory": "reservoir", "views": "strong", "replay_forward": "separate", "head": "cosine",
            "head_scale": PCR_HEAD_SCALE},
           {"temperature": 0.09, "t_max": 1.8, "t_min": 0.5625, "period": 500, "alpha": 0.1, "beta": 0.5}),
    Preset("sharp-lite", "SHARP without its sparse network: 8-bit replay of a frozen early part's activations "
           "through the late part, supervised contrastive loss, kNN prediction",
           "Gurbuz et al., SHARP: Sparsity and hidden activation replay for neuro-inspired continual learning, 2023",
           {"terms": [{"term": "supcon", "on": "both", "temperature": "${temperature}"}],
            "memory": {"memory": "activations", "recent_tasks": "${recent_tasks}", "split_after": "${split_after}"},
            "plugins": [{"plugin": "masked-knn", "k": "${k}", "per_class": "${per_class}"}]},
           {"temperature": 0.1, "recent_tasks": 0, "split_after": "auto", "k": 5, "per_class": 25}),
    Preset("sharp", "SHARP: a fixed-density sparse late network whose units age from plastic to candidate to "
           "stable and frozen, rewired (drop and grow) at each phase; 8-bit replay of the frozen early part's "
           "activations of the last task; supervised contrastive loss; masked kNN prediction",
           "Gurbuz et al., SHARP: Sparsity and hidden activation replay for neuro-inspired continual learning, 2023",
           {"terms": [{"term": "supcon", "on": "both", "temperature": "${temperature}"}],
            "memory": {"memory": "activations", "recent_tasks": "${recent_tasks}", "split_after": "${split_after}"},
            "plugins": [{"plugin": "sparse-rewiring", "pruning": "${pruning}", "phases": "${phases}",
                         "min_selection": "${min_selection}", "tau": "${tau}", "short_term_tasks": "${recent_tasks}",
                         "reinit": "${reinit}"},
                        {"plugin": "masked-knn", "k": "${k}", "per_class": "${per_class}"}]},
           {"temperature": 0.1, "recent_tasks": 1, "split_after": "auto", "k": 5, "per_class": 25, "pruning": 0.6,
            "phases": 10, "min_selection": 0.9, "tau": 30.0, "reinit": True}),
    Preset("prd", "prototype-sample relation distillation, replay-free: supervised contrastive learning of two "
           "augmented views, prototypes learned from detached features, the old model's sample-to-prototype "
           "similarities distilled, cosine-prototype classifier",
           "Asadi et al., Prototype-sample relation distillation: towards replay-free continual learning, ICML 2023",
           {"terms": [{"term": "supcon", "temperature": "${supcon_temperature}", "base_temperature": 0.07},
                      {"term": "prototype", "weight": "${prototypes_coef}"},
                      {"term": "relation-distill", "temperature": "${distill_temp}", "weight": "${distill_coef}"}],
            "views": "padded", "two_views": True, "head": "cosine", "head_scale": 1.0, "projection": [512, 512, 128]},
           {"supcon_temperature": 0.1, "prototypes_coef": 2.0, "distill_coef": 4.0, "distill_temp": 1.0}),
    Preset("icarl-replay", "iCaRL with a batch of exemplars replayed at every step instead of mixed into the data",
           "Rebuffi et al., iCaRL: incremental classifier and representation learning, CVPR 2017 (variant)",
           {"terms": [{"term": "icarl", "on": "both"}], "memory": "herding", "plugins": [{"plugin": "nme"}]}),
    Preset("lora", "one LoRA adapter per task on a frozen base (the model at the run's start); task-IL picks the "
           "task's adapter, class-IL uses the sum of the adapters trained so far",
           "Hu et al., LoRA: low-rank adaptation of large language models, 2021",
           {"terms": [_ce()], "plugins": [{"plugin": "lora", "rank": "${rank}", "alpha": "${alpha}"}]},
           {"rank": 8, "alpha": 8.0})
]}

_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
RECIPE_KEYS = ("name", "terms", "memory", "plugins", "joint", "replay_forward", "replay_from", "head", "head_scale",
               "views", "two_views", "projection")


def _substitute(value: Any, params: dict[str, Any], used: set[str], where: str) -> Any:
    if isinstance(value, str):
        match = _REF.match(value)
        if match:
            name = match.group(1)
            if name not in params:
                raise ConfigError(f"{where}: `{value}` refers to a parameter that is not set; "
                                  f"give it with --param {name}=VALUE or `params: {{{name}: ...}}`")
            used.add(name)
            return params[name]
    return value


def _reference(value: Any) -> str | None:
    """The parameter that ``value`` refers to (``${name}``), or ``None``."""
    match = _REF.match(value) if isinstance(value, str) else None
    return match.group(1) if match else None


def _from_parameters(entry: dict, params: dict) -> str:
    """``parameter `a` (value)`` for the entry's options that come from parameters, or ``""``."""
    refs = [(name, params[name]) for name in map(_reference, entry.values()) if name in params]
    return " or ".join(f"parameter `{name}` ({_short(value)})" for name, value in refs)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _construct(registry: dict[str, type], kind: str, entry: Any, params: dict, used: set[str], where: str,
               label: str = ""):
    if not isinstance(entry, dict) or kind not in entry:
        raise ConfigError(f"{where}: each entry must be a mapping with a `{kind}` name, e.g. `{{{kind}: ...}}`")
    name = entry[kind]
    if name not in registry:
        raise ConfigError(f"{where}: unknown {kind} {name!r}; choose one of: {', '.join(sorted(registry))}")
    cls = registry[name]
    kwargs = {k: _substitute(v, params, used, where) for k, v in entry.items() if k not in (kind, "weight")}
    accepted = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        options = ", ".join(accepted) if accepted else "none"
        raise ConfigError(f"{where}: {kind} {name!r} has no option `{unknown[0]}`; its options: {options}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise _refused(exc, entry, params, where, kind, name, label) from None


def _refused(exc: Exception, entry: dict, params: dict, where: str, kind: str, name: str, label: str) -> ConfigError:
    """The error for an entry its class refused; it names the parameters the entry's options
    come from, since those are what the user set."""
    given = _from_parameters({k: v for k, v in entry.items() if k != "weight"}, params)
    if given:
        head, _, _ = where.rpartition(", ")
        return ConfigError(f"{head or where}: {given} is refused by {label or kind} ({name}): {exc}")
    return ConfigError(f"{where}: {kind} {name!r}: {exc}")


def build_plugin(entry: dict, where: str = "plugin") -> Any:
    """One plug-in from its entry (``{plugin: name, option: value, ...}``), with the same
    one-line errors as in a recipe."""
    return _construct(PLUGINS, "plugin", entry, {}, set(), where)


def build_term(entry: dict, where: str = "term") -> Any:
    """One term from its entry (``{term: name, option: value, ...}``; ``weight`` is the
    objective's, not the term's), with the same one-line errors as in a recipe."""
    return _construct(TERMS, "term", entry, {}, set(), where)


def _terms(raw: Any, params: dict, used: set[str], where: str) -> list[tuple[float, Any]]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: `terms` must be a non-empty list, e.g. `terms: [{{term: ce}}]`")
    terms = []
    for i, entry in enumerate(raw):
        at = f"{where}, term {i + 1}"
        term = _construct(TERMS, "term", entry, params, used, at, f"term {i + 1}")
        weight = _substitute(entry.get("weight", 1.0), params, used, at)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            ref = _reference(entry.get("weight"))
            what = f"parameter `{ref}` must be a finite number (it is the `weight`)" if ref else \
                "`weight` must be a finite number"
            raise ConfigError(f"{at}: {what}, got {weight!r}")
        terms.append((float(weight), term))
    return terms


def _plugins(raw: Any, params: dict, used: set[str], where: str) -> list:
    raw = raw or []
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: `plugins` must be a list, e.g. `plugins: [{{plugin: agem}}]`")
    return [_construct(PLUGINS, "plugin", p, params, used, f"{where}, plugin {i + 1}", f"plug-in {i + 1}")
            for i, p in enumerate(raw)]


# recipe key -> (default, allowed values or a test, what to say when it fails)
_OPTIONS: dict[str, tuple[Any, Any, str]] = {
    "joint": (False, (True, False), "true or false"),
    "replay_forward": ("joint", ("joint", "separate"), "'joint' or 'separate'"),
    "replay_from": (0, lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a task index >= 0"),
    "head": ("linear", ("linear", "cosine"), "'linear' or 'cosine'"),
    "head_scale": (None, lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                                 and math.isfinite(v) and v > 0), "a positive number"),
    "views": ("none", ("none", "strong", "padded"), "'none', 'strong' or 'padded'"),
    "two_views": (False, (True, False), "true or false"),
    "projection": ((), lambda v: isinstance(v, (list, tuple)) and all(
        isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in v), "a list of layer widths >= 1"),
}


def _option(spec: dict, key: str, params: dict, used: set[str], where: str) -> Any:
    default, allowed, wanted = _OPTIONS[key]
    value = _substitute(spec.get(key, default), params, used, where)
    ok = allowed(value) if callable(allowed) else any(value is a or (value == a and type(value) is type(a))
                                                      for a in allowed)
    if not ok:
        ref = _reference(spec.get(key))
        what = f"parameter `{ref}`" if ref else f"`{key}`"
        raise ConfigError(f"{where}: {what} must be {wanted}, got {value!r}")
    return value


LOOP_MEMORY_ARGS = ("self", "capacity", "generator", "sample_generator", "max_rows", "device", "kwargs")


def _memory_entry(raw: Any, params: dict, used: set[str], where: str) -> tuple[Any, dict]:
    """``(name, options)`` of a recipe's ``memory:``: a name, or a mapping ``{memory: name,
    option: value, ...}`` whose options are the memory's own constructor arguments."""
    if not isinstance(raw, dict):
        return raw, {}
    if "memory" not in raw:
        raise ConfigError(f"{where}: a `memory:` mapping needs a `memory` name, e.g. `{{memory: activations}}`")
    name = raw["memory"]
    if name not in MEMORIES:
        raise ConfigError(f"{where}: unknown memory {name!r}; choose one of: {', '.join(MEMORIES)}")
    cls = MEMORIES[name]
    accepted = [p for p in inspect.signature(cls).parameters if p not in LOOP_MEMORY_ARGS]
    options = {k: _substitute(v, params, used, where) for k, v in raw.items() if k != "memory"}
    unknown = [k for k in options if k not in accepted]
    if unknown:
        raise ConfigError(f"{where}: memory {name!r} has no option `{unknown[0]}`; its options: "
                          f"{', '.join(accepted) if accepted else 'none'}")
    check = getattr(cls, "check_options", None)
    if check is not None:
        try:
            check(**options)
        except (TypeError, ValueError) as exc:
            raise _refused(exc, raw, params, where, "memory", name, "its memory") from None
    return name, options


def _either(names: list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _check_memory(memory: Any, objective: Objective, plugins: list, where: str) -> None:
    """The memory exists and suits the terms and plug-ins that use it."""
    if memory is not None and memory not in MEMORIES:
        raise ConfigError(f"{where}: unknown memory {memory!r}; choose one of: {', '.join(MEMORIES)}")
    if memory is None and (objective.uses_replay or any(getattr(p, "uses_memory", False) for p in plugins)):
        raise ConfigError(f"{where}: its terms or plug-ins replay examples, so it needs `memory: reservoir` "
                          f"(or task-balanced, herding)")
    indexed = [name for name, cls in MEMORIES.items() if getattr(cls, "keeps_source_index", False)]
    for plugin in plugins:
        if getattr(plugin, "needs_source_index", False) and not getattr(MEMORIES.get(memory), "keeps_source_index", False):
            raise ConfigError(f"{where}: plug-in {plugin.name!r} needs `memory:` {_either(indexed)} "
                              f"(a memory that keeps each example's source index)")
    fixed = [name for name, cls in MEMORIES.items() if getattr(cls, "fixed", False)]
    for _, term in objective.terms:
        if getattr(term, "needs_fixed_memory", False) and not getattr(MEMORIES.get(memory), "fixed", False):
            raise ConfigError(f"{where}: term {term.name!r} records each replayed example's activations once, so it "
                              f"needs a memory whose slots never change: `memory:` {' or '.join(fixed)}")
    if objective.stores and memory is not None and not hasattr(MEMORIES[memory], "add"):
        raise ConfigError(f"{where}: terms that store {' and '.join(objective.stores)} need a memory filled at "
                          f"every step, e.g. `memory: reservoir`")


def recipe_from_spec(spec: dict, params: dict[str, Any] | None = None, *, name: str | None = None,
                     where: str = "method") -> Recipe:
    """Build a recipe from its mapping (see the module docstring), named ``name`` or by
    :func:`lifelong.config.method_name`; every mistake is a :class:`ConfigError` saying where
    and what to fix."""
    params = dict(params or {})
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: a recipe must be a mapping with `terms:`")
    name = name or method_name(spec)
    unknown = [k for k in spec if k not in RECIPE_KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown recipe key `{unknown[0]}`; recipe keys: {', '.join(RECIPE_KEYS)}")
    used: set[str] = set()
    objective = Objective(_terms(spec.get("terms"), params, used, where))
    plugins = _plugins(spec.get("plugins"), params, used, where)
    options = {key: _option(spec, key, params, used, where) for key in _OPTIONS}
    if options["head_scale"] is not None and options["head"] != "cosine":
        raise ConfigError(f"{where}: `head_scale` applies to the cosine classifier; add `head: cosine` or remove it")
    memory, memory_options = _memory_entry(spec.get("memory"), params, used, where)
    if options["two_views"] and options["views"] == "none":
        raise ConfigError(f"{where}: `two_views` needs augmented views; add `views: strong` or `views: padded`")
    options["projection"] = tuple(options["projection"])
    _check_memory(memory, objective, plugins, where)
    if getattr(MEMORIES.get(memory), "hidden", False) and options["views"] != "none":
        raise ConfigError(f"{where}: memory {memory!r} replays hidden activations, which have no augmented views; "
                          f"remove `views: {options['views']}`")
    scoring = [p.name for p in plugins if hasattr(p, "scores")]
    if len(scoring) > 1:  # evaluation ranks the classes by one plug-in's scores
        raise ConfigError(f"{where}: plug-ins {scoring[0]!r} and {scoring[1]!r} both replace the class scores at "
                          f"evaluation; keep one")
    unused = sorted(set(params) - used)
    if unused:
        raise ConfigError(f"{where}: parameter `{unused[0]}` is not used by this method")
    return Recipe(str(spec.get("name", name)), objective, memory, plugins, spec=spec, memory_options=memory_options,
                  **options)


def _kind(value: Any) -> str:
    """What a parameter value is, in the words of an error message."""
    if isinstance(value, bool):
        return "true or false"
    return "a number" if isinstance(value, (int, float)) else "a string"


def _check_like_default(method: str, key: str, value: Any, default: Any) -> None:
    """A preset's parameter has the kind of its default: a number, true or false, or a string."""
    if _kind(value) != _kind(default):
        raise ConfigError(f"method {method!r}: parameter `{key}` must be {_kind(default)} (default {default!r}), "
                          f"got {value!r}; e.g. --param {key}={default}")


def build_recipe(method: str | dict, params: dict[str, Any] | None = None,
                 plugins: list[dict] | None = None, terms: list[dict] | None = None) -> Recipe:
    """A fresh recipe (terms keep state, so never share one) for a preset name or a mapping,
    with ``plugins`` (entries like those of ``plugins:``, e.g. ``--refresh``'s) added after its own,
    and ``terms`` (e.g. ``--view-batch``'s ``view-kl``) after its own terms.

    For a preset, ``params`` override its defaults; unknown names are errors."""
    def with_plugins(spec: dict) -> dict:
        if terms and isinstance(spec.get("terms"), list):
            spec = {**spec, "terms": list(spec["terms"]) + list(terms)}
        if not plugins:
            return spec
        own = spec.get("plugins") or []
        return {**spec, "plugins": (list(own) if isinstance(own, list) else own) + list(plugins)}

    if isinstance(method, dict):
        return recipe_from_spec(with_plugins(method), params)
    if method not in PRESETS:
        raise ConfigError(f"unknown method {method!r}; choose one of: {', '.join(PRESETS)}")
    preset = PRESETS[method]
    merged = {**preset.params, **(params or {})}
    unknown = [k for k in (params or {}) if k not in preset.params]
    if unknown:
        known = ", ".join(preset.params) if preset.params else "none"
        raise ConfigError(f"method {method!r} has no parameter `{unknown[0]}`; its parameters: {known}")
    for key, value in (params or {}).items():
        _check_like_default(method, key, value, preset.params[key])
    return recipe_from_spec(with_plugins(preset.recipe), merged, name=method, where=f"method {method!r}")
