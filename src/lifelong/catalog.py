"""The catalogue that ``lifelong list`` prints: every benchmark, method, backbone, term, memory
and plug-in, the user's registered ones marked; and one preset in full."""
from __future__ import annotations

from lifelong.errors import ConfigError


def _check_where(benchmark: str, buffer_size: int) -> None:
    """The benchmark exists and the buffer size is one a run accepts."""
    from lifelong.config import make_config
    from lifelong.data.benchmarks import get_benchmark

    get_benchmark(benchmark)
    make_config({}, {"method": "finetune", "benchmark": benchmark, "buffer_size": buffer_size})


def settings_used(method: str, benchmark: str, buffer_size: int) -> tuple[str, str]:
    """What a run of the preset ``method`` on ``benchmark`` with ``buffer_size`` uses, as
    ``("lr=..., batch_size=..., ...; param=...", where it comes from)``: resolved by
    :func:`lifelong.config.make_config`, as the run resolves it."""
    from lifelong.config import make_config

    from lifelong.methods import PRESETS

    c = make_config({}, {"method": method, "benchmark": benchmark, "buffer_size": buffer_size})
    values = {"optimizer": c.optimizer, "lr": c.lr, "batch_size": c.batch_size,
              "replay_batch_size": c.replay_batch_size or c.batch_size, "epochs": c.epochs, "momentum": c.momentum, "weight_decay": c.weight_decay}
    if not PRESETS[method].recipe.get("memory"):
        del values["replay_batch_size"]  # nothing is replayed
    text = ", ".join(f"{k}={v}" for k, v in values.items()
                     if (v or k not in ("momentum", "weight_decay")) and (k, v) != ("optimizer", "sgd"))
    params = ", ".join(f"{k}={v}" for k, v in c.params.items())
    return text + (f"; {params}" if params else ""), c.hparams_source


def _uses(method: str, benchmark: str, buffer_size: int) -> str:
    """``uses ... [source]``, or ``refused: why`` for a configuration a run would refuse."""
    try:
        used, source = settings_used(method, benchmark, buffer_size)
    except ConfigError as exc:  # e.g. iCaRL with fewer slots than classes
        return f"refused: {exc}"
    return f"uses {used} [{source}]"


def catalog(benchmark: str = "split-mnist", buffer_size: int = 500) -> list[str]:
    """What `lifelong list` prints: benchmarks, methods (with the settings a run on ``benchmark``
    with ``buffer_size`` uses, and the preset's defaults), backbones, terms, memories and
    plug-ins, registered ones marked."""
    from lifelong.config import LIBRARY_DEFAULTS

    _check_where(benchmark, buffer_size)
    out: list[str] = []
    from lifelong.data.benchmarks import BENCHMARKS
    from lifelong.memory import MEMORIES
    from lifelong.methods import PRESETS
    from lifelong.nets import BACKBONES
    from lifelong.objective import TERMS
    from lifelong.plugins import PLUGINS

    mine = " (registered)"
    out.append("benchmarks:")
    for b in BENCHMARKS.values():
        out.append(f"  {b.name:<22} {b.description}{'' if b.builtin else mine}")
    fallback = ", ".join(f"{k}={v}" for k, v in LIBRARY_DEFAULTS.items())
    out.append(f"methods (the settings a run uses on {benchmark} with buffer {buffer_size}, published in "
               f"src/lifelong/hparams/; see --benchmark, --buffer-size;")
    out.append(f"         where none are published, {fallback} and the preset's defaults):")
    for m in PRESETS.values():
        out.append(f"  {m.name:<22} {m.description}")
        if m.paper != "-":
            out.append(f"  {'':<22}   {m.paper}")
        out.append(f"  {'':<22}   {_uses(m.name, benchmark, buffer_size)}")
        if m.params:
            out.append(f"  {'':<22}   preset defaults {', '.join(f'{k}={v}' for k, v in m.params.items())}")
    out.append("backbones:")
    for bb in BACKBONES.values():
        out.append(f"  {bb.name:<22} {bb.description}{'' if bb.builtin else mine}")
    out.append("for your own recipe (see examples/; `lifelong list --method NAME` shows a preset's):")
    builtin_modules = ("lifelong.",)

    def names(table: dict) -> str:
        return ", ".join(n + ("" if cls.__module__.startswith(builtin_modules) else mine) for n, cls in table.items())

    out.append(f"  {'terms':<22} {names(dict(sorted(TERMS.items())))}")
    out.append(f"  {'memories':<22} {names(MEMORIES)}")
    out.append(f"  {'plug-ins':<22} {names(dict(sorted(PLUGINS.items())))}")
    from lifelong.unlearn import UNLEARNERS

    out.append("unlearning methods (`lifelong unlearn RUN_DIR --forget SPEC --method NAME`; docs/UNLEARNING.md):")
    for u in UNLEARNERS.values():
        out.append(f"  {u.name:<22} {u.summary}; {', '.join(f'{k}={v}' for k, v in u.defaults.items())}")
    return out


def method_card(name: str, benchmark: str = "split-mnist", buffer_size: int = 500) -> list[str]:
    """What `lifelong list --method NAME` prints: one preset's description, source, recipe (as
    YAML), parameters, published settings and the settings a run on ``benchmark`` with
    ``buffer_size`` uses."""
    _check_where(benchmark, buffer_size)
    out: list[str] = []
    import yaml

    from lifelong import hparams
    from lifelong.data.benchmarks import BENCHMARKS
    from lifelong.methods import PRESETS

    if name not in PRESETS:
        raise ConfigError(f"unknown method {name!r}; choose one of: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    out.append(f"{preset.name}: {preset.description}")
    if preset.paper != "-":
        out.append(f"source: {preset.paper}")
    out.append("recipe:")
    out.append("  " + yaml.safe_dump(preset.recipe, sort_keys=False, default_flow_style=None).rstrip().replace("\n", "\n  "))
    out.append("parameters: " + (", ".join(f"{k}={v}" for k, v in preset.params.items())
                                 + " (the preset's defaults, used where no setting is published)"
                                 if preset.params else "none"))
    out.append("published settings (src/lifelong/hparams/):")
    found = False
    for known in BENCHMARKS:
        entries = (hparams.load(known).get("methods") or {}).get(name) or {}
        for key, entry in entries.items():
            found = True
            where = "any buffer" if key == "any" else f"buffer {key}"
            values = ", ".join(f"{k}={v}" for k, v in entry.items() if k not in ("params", "note"))
            params = ", ".join(f"{k}={v}" for k, v in (entry.get("params") or {}).items())
            out.append(f"  {known}, {where}: {values}" + (f"; {params}" if params else "")
                  + (f"  ({entry['note']})" if entry.get("note") else ""))
    if not found:
        out.append("  none")
    used = _uses(name, benchmark, buffer_size)
    out.append(f"a run on {benchmark} with buffer {buffer_size} "
               + (f"uses: {used[len('uses '):]}" if used.startswith("uses ") else f"is {used}"))
    out.append("every difference from the paper and its reference code: docs/METHODS.md")
    return out
