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
