"""Every command that examples/ documents runs as written, checked with ``--dry-run`` (the
configuration, the user's imports, the data and the model, nothing trained; about a second each)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import run_cli
from lifelong.data.benchmarks import BENCHMARKS
from lifelong.memory import MEMORIES
from lifelong.nets import BACKBONES
from lifelong.objective.base import TERMS
from lifelong.plugins import PLUGINS

ROOT = Path(__file__).parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml")) + sorted((ROOT / "examples").glob("*.py"))
# a command of a file's header comment or docstring: `lifelong run ...` or `lifelong sweep ...`
COMMAND = re.compile(r"^[#\s]*lifelong ((?:run|sweep) [^#\n]*)", re.MULTILINE)


def documented_commands() -> list[tuple[str, str]]:
    return [(path.name, match.strip()) for path in EXAMPLES for match in COMMAND.findall(path.read_text())]


def test_every_yaml_example_documents_its_command():
    documented = {name for name, _ in documented_commands()}
    assert {p.name for p in EXAMPLES if p.suffix == ".yaml"} <= documented


@pytest.fixture
def registries():
    """The registries as they were before the example's imports registered into them."""
    saved = [(r, dict(r)) for r in (BENCHMARKS, BACKBONES, MEMORIES, TERMS, PLUGINS)]
    yield
    for registry, before in saved:
        registry.clear()
        registry.update(before)


@pytest.mark.parametrize("example, command", documented_commands(), ids=lambda v: v.replace(" ", "_"))
def test_the_documented_command_dry_runs(example, command, registries, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the commands name files from the repository's root
    code, _, err = run_cli([*shlex.split(command), "--dry-run"], capsys)
    assert code == 0, f"{example}: lifelong {command} --dry-run: {err}"
    assert "nothing was trained" in err
