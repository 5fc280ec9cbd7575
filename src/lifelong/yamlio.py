"""The YAML dialect of config, recipe, sweep and hyperparameter files."""
from __future__ import annotations

import re

import yaml

from lifelong.errors import ConfigError


class YamlLoader(yaml.SafeLoader):
    """Safe YAML with three fixes for config files, following YAML 1.2 where PyYAML follows
    YAML 1.1: ``1e-3`` is a number (not a string), only ``true``/``false`` are booleans (so
    ``on: both`` keeps the key ``on``, and ``yes``/``no``/``off`` stay strings), and a key given
    twice in one mapping is an error."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                raise ConfigError(f"a mapping key at line {key_node.start_mark.line + 1} is not a plain value") from None
            if duplicate:
                raise ConfigError(f"key `{key}` appears twice in one mapping (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep)


YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str):
    """Parse ``text`` with :class:`YamlLoader`."""
    return yaml.load(text, Loader=YamlLoader)  # noqa: S506 - a SafeLoader subclass


