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


@pytest.mark.parametrize("setting, wanted", [
    ("steps=abc", "`steps` must be an integer, got 'abc'"),
    ("every=1.5", "`every` must be an integer, got 1.5"),
    ("steps=true", "`steps` must be an integer, got True"),
    ("gamma=abc", "`gamma` must be a number, got 'abc'"),
    ("damping=x", "`damping` must be a number, got 'x'"),
    ("normalize=maybe", "`normalize` must be true or false, got 'maybe'"),
])
def test_a_bad_refresh_setting_is_named(setting, wanted, capsys):
    line = one_line_error(*run_cli(["run", "--dry-run", "--refresh-param", setting], capsys))
    assert line == f"lifelong: error: `refresh`: plugin 'refresh': {wanted}", line


# -- --refresh and --refresh-param override the file's `refresh:` key by key -------------------

def _refresh_settings(tmp_path, file_text: str | None, *flags: str) -> dict | None:
    """The refresh settings a run would use, from a config file and the command line."""
    from lifelong.cli.parser import build_parser, flags_of as _flags
    from lifelong.config import make_config, refresh_plugins
    from lifelong.methods import build_plugin

    args = ["run"]
    if file_text is not None:
        (tmp_path / "c.yaml").write_text(file_text)
        args += ["--config", str(tmp_path / "c.yaml")]
    flag_values, file_values = _flags(build_parser().parse_args(args + list(flags)))
    entries = refresh_plugins(make_config(file_values, flag_values).refresh)
    return build_plugin(entries[0]).settings() if entries else None


FILE = "refresh: {form: code, every: 1, gamma: 0.5}\n"


def test_refresh_form_flag_keeps_the_files_other_settings(tmp_path):
    s = _refresh_settings(tmp_path, FILE, "--refresh", "code")
    assert (s["form"], s["every"], s["gamma"], s["noise"]) == ("code", 1, 0.5, 1e-3)


def test_bare_refresh_keeps_the_files_form(tmp_path):
    s = _refresh_settings(tmp_path, FILE, "--refresh")
    assert (s["form"], s["every"], s["gamma"]) == ("code", 1, 0.5)
    assert _refresh_settings(tmp_path, "refresh: code\n", "--refresh")["form"] == "code"
    assert _refresh_settings(tmp_path, None, "--refresh")["form"] == "paper"  # no file: the paper form
    assert _refresh_settings(tmp_path, "refresh: null\n", "--refresh")["form"] == "paper"
    assert _refresh_settings(tmp_path, None) is None and _refresh_settings(tmp_path, "lr: 0.1\n") is None


def test_another_form_keeps_the_files_explicit_settings(tmp_path):
    """Documented rule: --refresh FORM sets only `form`; what the file sets explicitly still
    applies, everything else takes the new form's defaults."""
    s = _refresh_settings(tmp_path, FILE, "--refresh", "paper")
    assert (s["form"], s["every"], s["gamma"], s["noise"], s["loss"]) == ("paper", 1, 0.5, 0.01, "objective")


def test_refresh_param_overrides_single_keys(tmp_path):
    s = _refresh_settings(tmp_path, FILE, "--refresh-param", "gamma=1e-3")
    assert (s["form"], s["every"], s["gamma"]) == ("code", 1, 1e-3)
    s = _refresh_settings(tmp_path, FILE, "--refresh", "paper", "--refresh-param", "every=3")
    assert (s["form"], s["every"], s["gamma"]) == ("paper", 3, 0.5)
    s = _refresh_settings(tmp_path, None, "--refresh-param", "steps=2")
    assert (s["form"], s["steps"]) == ("paper", 2)


# -- bounded inputs ----------------------------------------------------------------------------

_LIMITED = """
import resource, sys
import torch  # imported before the limit: it maps gigabytes of address space
from lifelong.cli import main
with open("/proc/self/status") as f:
    size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (size + (1 << 30), size + (1 << 30)))
sys.exit(main(sys.argv[1:]))
"""


def _limited_cli(*args: str):
    """The command in a child process allowed 1 GiB more address space than it starts with, and
    60 s, so that a reader without a bound fails the test instead of exhausting the machine."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    return subprocess.run([sys.executable, "-c", _LIMITED, *args], capture_output=True, text=True, env=env,
                          timeout=60)


@pytest.mark.parametrize("command", [["run", "--dry-run", "--config"], ["sweep"]])
def test_an_endless_file_is_refused_in_one_line(command):
    proc = _limited_cli(*command, "/dev/zero")
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr[-500:]
    assert proc.stderr == "lifelong: error: /dev/zero is not a regular file (a device or socket); give a YAML file\n"


def test_a_file_over_one_mib_is_refused(tmp_path, capsys):
    from lifelong.config import MAX_FILE_BYTES

    big = tmp_path / "big.yaml"
    big.write_text("lr: 0.1\n" + "#" * MAX_FILE_BYTES + "\n")
    for command in (["run", "--dry-run", "--config", str(big)], ["sweep", str(big)]):
        line = one_line_error(*run_cli(command, capsys))
        assert line.endswith(f"{big} is too large (over 1 MiB); a configuration is a few lines of YAML")
    exact = tmp_path / "exact.yaml"
    exact.write_text("lr: 0.1\n" + "#" * (MAX_FILE_BYTES - 9) + "\n")
    from lifelong.config import load_yaml

    assert exact.stat().st_size == MAX_FILE_BYTES and load_yaml(exact) == {"lr": 0.1}


def test_a_pipe_is_read_like_a_file(tmp_path):
    """`--config <(envsubst < template.yaml)` works: a pipe is read, up to the same bound."""
    import os
    import threading

    from lifelong.config import load_yaml

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("lr: 0.2\n"))
    writer.start()
    try:
        assert load_yaml(fifo) == {"lr": 0.2}
    finally:
        writer.join(5)


# -- registrations do not replace what is there ------------------------------------------------

CLASHES = {
    "term": ("from lifelong.objective import Term, register_term\n"
             "@register_term\nclass Mine(Term):\n    name = 'ce'\n", "term 'ce' is built in"),
    "plugin": ("from lifelong.plugins import register_plugin\n"
               "@register_plugin\nclass Mine:\n    name = 'agem'\n", "plug-in 'agem' is built in"),
    "memory": ("import lifelong\n@lifelong.register_memory\nclass Mine(lifelong.Memory):\n    name = 'reservoir'\n",
               "memory 'reservoir' is built in"),
    "backbone": ("import lifelong\nlifelong.register_backbone('mlp', lambda shape, n: None)\n",
                 "backbone 'mlp' is built in"),
    "benchmark": ("import lifelong\nlifelong.register_benchmark('split-mnist', lambda: None, num_tasks=5)\n",
                  "'split-mnist' is a built-in benchmark"),
}


@pytest.mark.parametrize("kind", sorted(CLASHES))
def test_a_built_in_name_cannot_be_taken(kind, tmp_path, capsys):
    from lifelong.data.benchmarks import BENCHMARKS
    from lifelong.memory import MEMORIES
    from lifelong.nets import BACKBONES
    from lifelong.objective import TERMS
    from lifelong.plugins import PLUGINS

    before = {id(t): dict(t) for t in (TERMS, PLUGINS, MEMORIES, BACKBONES, BENCHMARKS)}
    text, wanted = CLASHES[kind]
    path = tmp_path / f"clash_{kind}.py"
    path.write_text(text)
    line = one_line_error(*run_cli(["list", "--import", str(path)], capsys))
    assert f"cannot import {path}: " in line and wanted in line and "another name" in line, line
    for table in (TERMS, PLUGINS, MEMORIES, BACKBONES, BENCHMARKS):
        assert table == before[id(table)]  # nothing replaced, nothing added


def test_importing_the_same_file_again_is_fine(tmp_path):
    """A re-import (a second run in one process, a notebook cell run again) re-registers the
    same definition: that is allowed; another definition under a taken name is not."""
    from lifelong.nets import BACKBONES
    from lifelong.objective import TERMS
    from lifelong.runs.session import import_user_code

    mine = tmp_path / "mine.py"
    mine.write_text("import lifelong\n"
                    "@lifelong.register_term\nclass Mine(lifelong.Term):\n    name = 'test-mine'\n"
                    "@lifelong.register_backbone('test-net')\ndef net(shape, n):\n    return None\n")
    other = tmp_path / "other.py"
    other.write_text("import lifelong\n@lifelong.register_term\nclass Other(lifelong.Term):\n    name = 'test-mine'\n")
    try:
        import_user_code([str(mine)])
        first = TERMS["test-mine"]
        import_user_code([str(mine)])
        assert TERMS["test-mine"] is not first and TERMS["test-mine"].__qualname__ == "Mine"
        with pytest.raises(lifelong.errors.ConfigError,
                           match=r"term 'test-mine' is already registered \(lifelong_user_mine\.Mine\); "
                                 r"register yours under another name"):
            import_user_code([str(other)])
        assert TERMS["test-mine"].__qualname__ == "Mine"
    finally:
        TERMS.pop("test-mine", None)
        BACKBONES.pop("test-net", None)


# -- an imported file that exits or raises a BaseException -------------------------------------

@pytest.mark.parametrize("body, wanted", [
    ("import sys\nsys.exit(3)\n", "it called sys.exit(3); an imported file must only define and register"),
    ("raise SystemExit\n", "it called sys.exit(None); an imported file must only define and register"),
    ("class Boom(BaseException):\n    pass\nraise Boom('bang')\n", "Boom: bang"),
])
def test_an_imported_file_that_exits_is_one_line(body, wanted, tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text(body)
    line = one_line_error(*run_cli(["list", "--import", str(bad)], capsys))
    assert line == f"lifelong: error: cannot import {bad}: {wanted}", line


def test_ctrl_c_during_an_import_still_interrupts(tmp_path, capsys):
    bad = tmp_path / "slow.py"
    bad.write_text("raise KeyboardInterrupt\n")
    code, _, err = run_cli(["list", "--import", str(bad)], capsys)
    assert code == 130 and "interrupted" in err


# -- settings that would run for ever ----------------------------------------------------------

@pytest.mark.parametrize("values, wanted", [
    ({"epochs": 1001}, "`epochs` is too large (1001); use at most 1000"),
    ({"batch_size": 100_001}, "`batch-size` is too large (100001); use at most 100000"),
    ({"replay_batch_size": 10**6}, "`replay-batch-size` is too large (1000000); use at most 100000"),
    ({"num_tasks": 1001}, "`num-tasks` is too large (1001); use at most 1000"),
    ({"refresh": {"steps": 1_000_000_000}}, "`steps` must be at most 100 unlearning steps per refresh"),
    ({"refresh": {"every": 10**7}}, "`every` must be at most 1000000 steps"),
    ({"method": {"terms": [{"term": "ce"}], "plugins": [{"plugin": "head-warmup", "epochs": 10**6}]}},
     "`epochs` must be an integer in 0..1000 or null"),
])
def test_settings_that_mean_hang_are_refused(values, wanted):
    from lifelong.config import make_config
    from lifelong.errors import ConfigError
    from lifelong.methods import build_recipe

    with pytest.raises(ConfigError) as info:
        config = make_config({}, values)
        build_recipe(config.method, config.params)
    assert wanted in str(info.value)


def test_the_bounds_admit_the_published_settings():
    from lifelong.config import make_config

    config = make_config({}, {"epochs": 1000, "batch_size": 100_000, "num_tasks": None,
                              "refresh": {"steps": 100, "every": 1_000_000}})
    assert config.epochs == 1000


# -- a herding memory smaller than the number of classes ---------------------------------------

@pytest.mark.parametrize("method", ["icarl", "icarl-replay"])
def test_icarl_with_fewer_slots_than_classes_is_refused_before_anything(method, tmp_path, capsys):
    out = tmp_path / "never"
    line = one_line_error(*run_cli(["run", "--method", method, "--buffer-size", "9", "--out", str(out)], capsys))
    assert f"method {method!r} on split-mnist: its herding memory keeps at least one exemplar of every class" in line
    assert "`buffer-size` must be at least 10, the number of classes, got 9" in line and not out.exists()
    code, _, err = run_cli(["run", "--method", method, "--buffer-size", "10", "--dry-run"], capsys)
    assert code == 0, err


def test_a_herding_recipe_is_checked_too():
    from lifelong.config import make_config
    from lifelong.errors import ConfigError

    recipe = {"terms": [{"term": "icarl"}], "memory": "herding"}
    with pytest.raises(ConfigError, match="split-cifar100: its herding memory .* at least 100, the number of classes"):
        make_config({}, {"method": recipe, "benchmark": "split-cifar100", "buffer_size": 50})
    make_config({}, {"method": "agem", "buffer_size": 3})  # task-balanced: keeps what it can, the first tasks


def test_the_loop_refuses_a_herding_memory_without_a_slot_per_class():
    """A benchmark of the user's is only known once loaded: the loop checks before any step."""
    import torch

    from lifelong.data.streams import class_incremental
    from lifelong.errors import ConfigError
    from lifelong.methods import build_recipe
    from lifelong.optim import SGD
    from tests.conftest import make_source

    stream = class_incremental(make_source(num_classes=4, per_class_train=5), 2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    steps = []
    model.register_forward_hook(lambda *a: steps.append(1))
    with pytest.raises(ConfigError, match="method 'icarl': its herding memory .* at least 4, the number of classes, "
                                          "got 3"):
        lifelong.train(stream, model, build_recipe("icarl"), SGD(model.parameters(), lr=0.1), seed=0, buffer_size=3)
    assert steps == []


def test_built_in_benchmarks_declare_their_classes():
    from lifelong.data.benchmarks import BENCHMARKS

    assert {n: b.num_classes for n, b in BENCHMARKS.items() if b.builtin} == {
        "split-mnist": 10, "permuted-mnist": 10, "rotated-mnist": 10, "split-fashion-mnist": 10, "split-cifar10": 10,
        "split-cifar100": 100, "split-tiny-imagenet": 200, "si-blurry-mnist": 10, "si-blurry-fashion-mnist": 10,
        "si-blurry-cifar10": 10, "si-blurry-cifar100": 100, "task-free-mnist": 10, "task-free-fashion-mnist": 10,
        "task-free-cifar10": 10, "task-free-cifar100": 100}
    assert lifelong.load_mnist().num_classes == BENCHMARKS["split-mnist"].num_classes


# -- `lifelong list` and `--help` show what runs use -------------------------------------------

def test_list_shows_what_a_run_uses_beside_the_preset_defaults(capsys):
    code, out, err = run_cli(["list"], capsys)
    assert code == 0, err
    assert "methods (the settings a run uses on split-mnist with buffer 500, published in" in out
    lines = out.splitlines()
    der = lines.index(next(line for line in lines if line.startswith("  der ")))
    block = "\n".join(lines[der:der + 4])
    assert ("uses lr=0.03, batch_size=10, replay_batch_size=128, epochs=1; alpha=1.0 "
            "[hparams/split-mnist.yaml: der, 500]") in block
    assert "preset defaults alpha=0.3" in block and "[alpha=0.3]" not in block
    code, out, _ = run_cli(["list", "--benchmark", "split-cifar100", "--buffer-size", "50"], capsys)
    assert "uses lr=0.1, batch_size=10, replay_batch_size=10, epochs=1; alpha=0.3 [no published settings" in out
    assert "refused: method 'icarl' on split-cifar100: its herding memory" in out  # 50 slots, 100 classes
    line = one_line_error(*run_cli(["list", "--buffer-size", "0"], capsys))
    assert "`buffer-size` must be positive, got 0" in line


def test_list_one_method_at_a_benchmark_and_buffer(capsys):
    code, out, err = run_cli(["list", "--method", "er", "--benchmark", "split-mnist", "--buffer-size", "200"], capsys)
    assert code == 0, err
    assert ("a run on split-mnist with buffer 200 uses: lr=0.01, batch_size=10, replay_batch_size=10, epochs=1 "
            "[hparams/split-mnist.yaml: er, 200]") in out
    code, out, _ = run_cli(["list", "--method", "derpp"], capsys)
    assert "parameters: alpha=0.1, beta=0.5 (the preset's defaults, used where no setting is published)" in out
    assert "a run on split-mnist with buffer 500 uses: lr=0.03, batch_size=10, replay_batch_size=10, epochs=1; " \
           "alpha=1.0, beta=0.5" in out
    code, out, _ = run_cli(["list", "--method", "icarl", "--buffer-size", "5"], capsys)
    assert code == 0 and "a run on split-mnist with buffer 5 is refused: method 'icarl' on split-mnist: " in out
    line = one_line_error(*run_cli(["list", "--benchmark", "split-mnsit"], capsys))
    assert "unknown benchmark 'split-mnsit'" in line


def test_what_list_shows_is_what_a_run_resolves(capsys):
    import yaml

    code, out, err = run_cli(["run", "--dry-run", "--method", "derpp", "--buffer-size", "200"], capsys)
    assert code == 0, err
    resolved = yaml.safe_load(out)
    code, out, _ = run_cli(["list", "--method", "derpp", "--buffer-size", "200"], capsys)
    used = next(line for line in out.splitlines() if line.startswith("a run on split-mnist with buffer 200 uses:"))
    for key in ("lr", "batch_size", "replay_batch_size", "epochs"):
        assert f"{key}={resolved[key]}" in used
    assert all(f"{k}={v}" in used for k, v in resolved["params"].items())


def test_every_default_in_run_help_is_the_one_runs_use():
    import argparse

    from lifelong.cli import build_parser
    from lifelong.config import HPARAM_KEYS, LIBRARY_DEFAULTS, RunConfig

    parser = build_parser()
    run = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["run"]
    helps = {a.dest: a.help or "" for a in run._actions}
    for key in HPARAM_KEYS:
        assert "the method's published setting for the benchmark and buffer size" in helps[key], key
        value = LIBRARY_DEFAULTS.get(key)
        fallback = ("the batch size" if value is None else f"else {value}" if isinstance(value, str)
                    else f"else {value:g}")
        assert fallback in helps[key], (key, helps[key])
    assert "published setting" in helps["param"] and "else the preset's" in helps["param"]
    for key in ("benchmark", "method", "buffer_size", "seed", "checkpoint_every", "log_every", "data_root"):
        assert f"default {getattr(RunConfig, key)}" in helps[key], (key, helps[key])
