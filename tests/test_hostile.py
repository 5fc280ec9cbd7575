"""Property-based tests: whatever a user feeds the config loader, the recipe builder, the data
readers or the command line, the answer is acceptance or one clear line with exit code 2."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import hostile
from tests.conftest import write_fashion_mnist

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_fashion_mnist(root, per_class_train=2, per_class_test=1)
    return root


@FAST
@given(hostile.configs)
def test_config_values(values):
    assert hostile.check_config(values) != "crash"


@FAST
@given(hostile.yaml_texts)
def test_yaml_documents(text):
    with tempfile.TemporaryDirectory() as tmp:
        assert hostile.check_yaml(text, Path(tmp)) != "crash"


@FAST
@given(hostile.recipes)
def test_recipes(spec):
    assert hostile.check_recipe(spec) != "crash"


@FAST
@given(hostile.raw_bytes)
def test_idx_bytes(data):
    with tempfile.TemporaryDirectory() as tmp:
        assert hostile.check_idx(data, Path(tmp)) != "crash"


@FAST
@given(st.lists(st.tuples(hostile.flags, hostile.flag_values), min_size=1, max_size=3))
def test_command_line_flags(data_root, pairs):
    args = [item for pair in pairs for item in pair]
    with tempfile.TemporaryDirectory() as tmp:
        assert hostile.check_cli(args, data_root, Path(tmp) / "never") != "crash"
