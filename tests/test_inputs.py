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


# -- parameter errors name the parameter -------------------------------------------------------

@pytest.mark.parametrize("extra, wanted", [
    (["--method", "der", "--param", "alpha=abc"], "method 'der': parameter `alpha` must be a number (default 0.3), "
                                                  "got 'abc'"),
    (["--method", "derpp", "--param", "beta=true"], "parameter `beta` must be a number (default 0.5), got True"),
    (["--method", "lwf", "--param", "temperature=-1"], "parameter `temperature` (-1) is refused by term 2 "
                                                       "(distill-kl): `temperature` must be positive"),
    (["--method", "er-ace", "--param", "head=conv"], "parameter `head` must be 'linear' or 'cosine', got 'conv'"),
    (["--method", "er-ace", "--param", "head=1"], "parameter `head` must be a string (default 'cosine'), got 1"),
])
def test_a_bad_preset_parameter_is_named(extra, wanted, capsys):
    line = one_line_error(*run_cli(["run", "--dry-run", *extra], capsys))
    assert wanted in line, line


def test_a_bad_recipe_parameter_is_named():
    from lifelong.errors import ConfigError
    from lifelong.methods import recipe_from_spec

    spec = {"terms": [{"term": "ce"}, {"term": "logit-mse", "weight": "${w}"}], "memory": "reservoir"}
    with pytest.raises(ConfigError) as info:
        recipe_from_spec(spec, {"w": "abc"})
    assert "method, term 2: parameter `w` must be a finite number (it is the `weight`), got 'abc'" in str(info.value)
    spec = {"terms": [{"term": "ewc", "online": True, "gamma": "${g}"}]}
    with pytest.raises(ConfigError, match=r"parameter `g` \(2\.0\) is refused by term 1 \(ewc\): `gamma` must lie"):
        recipe_from_spec(spec, {"g": 2.0})
