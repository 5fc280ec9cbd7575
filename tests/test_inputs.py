"""Input handling and friction (issue 11): every mistake a user can make at the command line, in
a config or sweep file, in an imported file or in a registration gets one line that says what is
wrong and how to fix it; what the command line shows as a default is what a run uses."""
from __future__ import annotations

from pathlib import Path

import pytest

import lifelong
from lifelong.cli import main


def run_cli(args, capsys):
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own exits (--help, --version, usage errors)
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, out, err) -> str:
    """The single error line of a refused command (exit 2, nothing on stdout, no traceback)."""
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("lifelong: error: "), (code, err)
    assert out == "" and "Traceback" not in err
    return lines[0]


# -- --version ---------------------------------------------------------------------------------

def test_version_prints_the_package_version(capsys):
    code, out, err = run_cli(["--version"], capsys)
    assert code == 0 and out == f"lifelong {lifelong.__version__}\n"


def test_the_version_has_one_source():
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and 'attr = "lifelong.__version__"' in text
    assert "\nversion = " not in text.split("[project]")[1].split("\n[")[0]
