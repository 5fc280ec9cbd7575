"""The catalogue that ``lifelong list`` prints: every benchmark, method, backbone, term, memory
and plug-in, the user's registered ones marked; and one preset in full."""
from __future__ import annotations

from lifelong.errors import ConfigError


def catalog() -> list[str]:
    """What `lifelong list` prints: benchmarks, methods, backbones, terms, memories and plug-ins,
    registered ones marked."""
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
    out.append("methods:")
    for m in PRESETS.values():
        params = ", ".join(f"{k}={v}" for k, v in m.params.items())
        out.append(f"  {m.name:<22} {m.description}" + (f" [{params}]" if params else ""))
        if m.paper != "-":
            out.append(f"  {'':<22}   {m.paper}")
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
    return out


def method_card(name: str) -> list[str]:
    """What `lifelong list --method NAME` prints: one preset's description, source, recipe (as
    YAML), parameters and published settings."""
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
    out.append("parameters: " + (", ".join(f"{k}={v}" for k, v in preset.params.items()) or "none"))
    out.append("published settings (src/lifelong/hparams/):")
    found = False
    for benchmark in BENCHMARKS:
        entries = (hparams.load(benchmark).get("methods") or {}).get(name) or {}
        for key, entry in entries.items():
            found = True
            where = "any buffer" if key == "any" else f"buffer {key}"
            values = ", ".join(f"{k}={v}" for k, v in entry.items() if k not in ("params", "note"))
            params = ", ".join(f"{k}={v}" for k, v in (entry.get("params") or {}).items())
            out.append(f"  {benchmark}, {where}: {values}" + (f"; {params}" if params else "")
                  + (f"  ({entry['note']})" if entry.get("note") else ""))
    if not found:
        out.append("  none")
    out.append("every difference from the paper and its reference code: docs/METHODS.md")
    return out
