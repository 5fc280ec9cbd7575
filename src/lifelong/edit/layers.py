"""Which layer block ``ℓ ∈ 0..L−1`` each state-dict entry belongs to, for depth-dependent edits
such as LiNeS (:mod:`lifelong.edit.lines`); ``None`` marks an entry outside the blocks.

The reference (``wang-kee/LiNeS`` ``src/eval/eval.py::LiNeS_scaling``, CLIP ViTs) numbers the
transformer's residual blocks: an entry belongs to block ℓ when its name contains ``.ℓ.``, with
``L = 12`` (ViT-B) or ``24`` (ViT-L); everything else (patch embedding, class and position
embeddings, the pre- and post-layer norms, the output projection) is outside. The built-in
rule maps that structure onto the library's backbones:

* ResNets (:class:`lifelong.nets.resnet.ResNet`): the residual blocks (``BasicBlock`` children of
  ``features``) in order, 8 for ResNet-18; the stem (first convolution and its batch norm) is
  outside, as the ViT's patch embedding.
* Other ``features`` stacks (the MLP, SHARP's network, a user's ``nn.Sequential``): each child of
  ``features`` that holds parameters or buffers, in order (the MLP: its two hidden ``Linear``
  layers, ``L = 2``; SHARP's network: two convolutions and two hidden linear layers, ``L = 4``).
* The ``classifier`` is outside the blocks in every backbone, as the ViT's output projection
  (the reference's classification heads are frozen and not part of its task vectors at all).

A user passes their own blocks as a list of module names in order (``["features.1",
"features.3", "classifier"]``: an entry belongs to the block whose name is its own or a prefix
of it at a dot), or a full mapping ``{state-dict key: ℓ or None}`` (keys left out are outside).
"""
from __future__ import annotations

from typing import Iterable, Mapping, Optional, Sequence, Union

import torch.nn as nn

from lifelong.errors import ConfigError
from lifelong.nets.resnet import BasicBlock

LayerMap = dict[str, Optional[int]]
LayerSpec = Union[None, nn.Module, Sequence[str], Mapping[str, Optional[int]]]


def _holds_state(module: nn.Module) -> bool:
    return any(True for _ in module.parameters()) or any(True for _ in module.buffers())


def default_blocks(model: nn.Module) -> list[str]:
    """The module names of ``model``'s layer blocks in order, by the built-in rule above."""
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential):
        names = ", ".join(n for n, _ in model.named_children())
        raise ConfigError(f"no built-in layer blocks for {type(model).__name__} (it has no `features` "
                          f"nn.Sequential); name them in order, e.g. blocks=[...] from its modules: {names}")
    children = list(features.named_children())
    residual = [n for n, c in children if isinstance(c, BasicBlock)]
    names = residual or [n for n, c in children if _holds_state(c)]
    return [f"features.{n}" for n in names]


def _block_of(key: str, blocks: Sequence[str]) -> Optional[int]:
    hits = [i for i, b in enumerate(blocks) if key == b or key.startswith(b + ".")]
    if len(hits) > 1:
        raise ConfigError(f"state-dict entry {key!r} is in two layer blocks: "
                          f"{', '.join(repr(blocks[i]) for i in hits)}")
    return hits[0] if hits else None


def blocks_map(keys: Iterable[str], blocks: Sequence[str]) -> LayerMap:
    """``{key: ℓ}`` for the blocks named in order (``None``: outside every block)."""
    keys = list(keys)
    mapping = {k: _block_of(k, blocks) for k in keys}
    empty = [b for i, b in enumerate(blocks) if i not in mapping.values()]
    if empty:
        raise ConfigError(f"layer block {empty[0]!r} matches no state-dict entry "
                          f"(entries look like {keys[0]!r})" if keys else "no state-dict entries")
    return mapping


def layer_map(model: nn.Module, blocks: Optional[Sequence[str]] = None) -> LayerMap:
    """``{state-dict key: ℓ or None}`` for ``model``: its ``blocks`` (module names in order) or
    the built-in rule's."""
    return blocks_map(model.state_dict().keys(), default_blocks(model) if blocks is None else list(blocks))


def num_layers(mapping: Mapping[str, Optional[int]]) -> int:
    """``L``, checking that the indices used are exactly ``0..L−1`` (one-line error otherwise)."""
    used = sorted({v for v in mapping.values() if v is not None})
    if any(not isinstance(v, int) or isinstance(v, bool) for v in used):
        raise ConfigError("layer indices must be integers (or None for entries outside the blocks)")
    if used != list(range(len(used))):
        raise ConfigError(f"layer indices must be contiguous from 0; got {used}")
    return len(used)


def resolve_layers(keys: Iterable[str], layers: LayerSpec, model: Optional[nn.Module] = None) -> tuple[LayerMap, int]:
    """``({key: ℓ or None} for every key in ``keys``, L)`` from ``layers``: ``None`` (the built-in
    rule on ``model``), a module (the built-in rule on it), block names in order, or a mapping."""
    keys = list(keys)
    if layers is None or isinstance(layers, nn.Module):
        source = model if layers is None else layers
        if source is None:
            raise ConfigError("layer blocks unknown: pass layers= (a model, block names in order, or "
                              "{key: index}) when the weights are state dicts")
        layers = default_blocks(source)
    if isinstance(layers, Mapping):
        unknown = sorted(set(layers) - set(keys))
        if unknown:
            raise ConfigError(f"layer map names entries the model lacks: {unknown[:3]}")
        mapping = {k: layers.get(k) for k in keys}
    elif isinstance(layers, (list, tuple)) and all(isinstance(b, str) for b in layers):
        mapping = blocks_map(keys, layers)
    else:
        raise ConfigError(f"layers: expected a model, a list of block names or a {{key: index}} mapping, "
                          f"got {type(layers).__name__}")
    return mapping, num_layers(mapping)
