"""The code's shape, as issue 10 asked: no function in src/ above cyclomatic complexity 20
(radon's count, as ``radon cc -s -n C src/`` shows it)."""
from __future__ import annotations

from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src"
LIMIT = 20


def _functions(blocks):
    """Every function and method of radon's blocks, nested classes' methods included."""
    for block in blocks:
        if hasattr(block, "methods"):  # a class
            yield from _functions(block.methods)
            yield from _functions(getattr(block, "inner_classes", []))
        else:
            yield block


def test_no_function_is_more_complex_than_the_limit():
    complexity = pytest.importorskip("radon.complexity")
    over = [f"{path.relative_to(SRC)}:{f.lineno} {f.fullname} ({f.complexity})"
            for path in sorted(SRC.rglob("*.py"))
            for f in _functions(complexity.cc_visit(path.read_text()))
            if f.complexity > LIMIT]
    assert not over, f"cyclomatic complexity above {LIMIT} (split them into named pieces): " + "; ".join(over)
