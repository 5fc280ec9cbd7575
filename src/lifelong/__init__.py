"""lifelong: continual learning with PyTorch.

One objective for every method (Wang et al., "A Unified and General Framework for Continual
Learning", ICLR 2024), one lean training loop, and metrics from one accuracy matrix.

The names below are the public API; they are imported on first use, so that ``import lifelong``
(and the ``lifelong`` command) stays fast::

    import lifelong
    doc = lifelong.run(method="derpp", buffer_size=200, seed=0)      # a whole run, like the CLI
    recipe = lifelong.build_recipe("derpp", {"alpha": 0.2})             # or the pieces, for your own loop
    result = lifelong.train(stream, model, recipe, optimizer, seed=0, buffer_size=200)
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_API = {
    # runs
    "run": "lifelong.api", "RunConfig": "lifelong.config", "make_config": "lifelong.config",
    # methods: recipes of terms, memories and plug-ins
    "build_recipe": "lifelong.methods", "recipe_from_spec": "lifelong.methods", "Recipe": "lifelong.methods",
    "PRESETS": "lifelong.methods",
    "Objective": "lifelong.objective", "StepBatch": "lifelong.objective", "Term": "lifelong.objective",
    "TERMS": "lifelong.objective", "register_term": "lifelong.objective",
    "PLUGINS": "lifelong.plugins", "register_plugin": "lifelong.plugins",
    "MEMORIES": "lifelong.memory", "Memory": "lifelong.memory", "register_memory": "lifelong.memory",
    # data and networks
    "Source": "lifelong.data.source", "Stream": "lifelong.data.streams", "Task": "lifelong.data.streams",
    "class_incremental": "lifelong.data.streams", "permuted": "lifelong.data.streams",
    "rotated": "lifelong.data.streams",
    "BENCHMARKS": "lifelong.data.benchmarks", "get_benchmark": "lifelong.data.benchmarks",
    "build_stream": "lifelong.data.benchmarks", "load_mnist": "lifelong.data.mnist",
    "register_benchmark": "lifelong.data.user", "source_from_arrays": "lifelong.data.user",
    "source_from_torchvision": "lifelong.data.user", "source_from_image_folder": "lifelong.data.user",
    "BACKBONES": "lifelong.nets", "build_backbone": "lifelong.nets", "set_head": "lifelong.nets",
    "set_projection": "lifelong.nets", "register_backbone": "lifelong.nets", "split_head": "lifelong.nets",
    # the loop and its results
    "train": "lifelong.loop", "RunResult": "lifelong.loop", "TrainState": "lifelong.loop",
    "SGD": "lifelong.optim", "Adadelta": "lifelong.optim", "metrics": "lifelong",
    "AnytimeEvaluation": "lifelong.anytime",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'lifelong' has no attribute {name!r}")
    if name == "metrics":
        value = importlib.import_module("lifelong.metrics")
    else:
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
