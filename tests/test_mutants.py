"""``pytest -m mutants``: every mutant of tests/mutants.py from the issue's list is killed, and at
least 90% of all (the mutation check; minutes, so not part of the default run). Run with ``-s``
to see the table."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import mutants  # noqa: E402


@pytest.mark.mutants
def test_the_tests_kill_the_mutants():
    assert mutants.main(["--jobs", "2"]) == 0


def test_every_mutant_still_applies_to_the_source():
    """A refactor that changes a mutated line must update the mutant (fast; runs by default)."""
    src = Path(__file__).parents[1] / "src" / "lifelong"
    for m in mutants.MUTANTS:
        text = (src / m.file).read_text()
        assert text.count(m.old) == 1, f"mutant {m.name}: its text occurs {text.count(m.old)} times in {m.file}"
        compile(text.replace(m.old, m.new), m.file, "exec")
