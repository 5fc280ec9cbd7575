"""``pytest -m mutants``: every mutant of tests/mutants.py from the issue's list is killed, and at
least 90% of all (the mutation check; minutes, so not part of the default run)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import mutants  # noqa: E402


@pytest.mark.mutants
def test_the_tests_kill_the_mutants(capsys):
    status = mutants.main(["--jobs", "2"])
    with capsys.disabled():
        print()
        print(capsys.readouterr().out)
    assert status == 0
