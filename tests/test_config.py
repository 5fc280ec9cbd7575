import math

import pytest

from lifelong.config import RunConfig, load_yaml, make_config
from lifelong.errors import ConfigError


def test_defaults_are_the_documented_first_run():
    c = make_config({}, {})
    assert (c.benchmark, c.method, c.buffer_size, c.epochs, c.batch_size, c.lr, c.seed) == (
        "split-mnist", "er", 500, 1, 10, 0.1, 0)


def test_flags_override_the_file_which_overrides_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("method: finetune\nlr: 0.05\nbuffer-size: 200\n")
    c = make_config(load_yaml(path), {"lr": 0.2})
    assert (c.method, c.lr, c.buffer_size) == ("finetune", 0.2, 200)


@pytest.mark.parametrize("text, message", [
    ("lrr: 0.1\n", "unknown key `lrr` (did you mean `lr`?)"),
    ("zzz: 1\n", "unknown key `zzz`; known keys: benchmark"),
    ("epochs: two\n", "`epochs` must be an integer, got 'two'"),
    ("epochs: 1.5\n", "`epochs` must be an integer"),
    ("epochs: true\n", "`epochs` must be an integer, got True"),
    ("lr: .nan\n", "`lr` must be a finite number"),
    ("lr: .inf\n", "`lr` must be a finite number"),
    ("download: 1\n", "`download` must be true or false"),
    ("- a\n- b\n", "must hold a mapping"),
    ("method: [er\n", "is not valid YAML at line"),
])
def test_bad_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    assert message in str(info.value)


def test_non_utf8_and_missing_files(tmp_path):
    (tmp_path / "bin.yaml").write_bytes(b"lr: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_yaml(tmp_path / "bin.yaml")
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml(tmp_path / "nope.yaml")
    assert load_yaml((tmp_path / "empty.yaml", (tmp_path / "empty.yaml").write_text(""))[0]) == {}


@pytest.mark.parametrize("values, message", [
    ({"buffer_size": 0}, "`buffer-size` must be positive"),
    ({"lr": -0.1}, "`lr` must be positive"),
    ({"momentum": 1.0}, "`momentum` must lie in [0, 1)"),
    ({"weight_decay": -1e-4}, "`weight-decay` must not be negative"),
    ({"replay_batch_size": 0}, "`replay-batch-size` must be positive"),
    ({"seed": -1}, "`seed` must lie in"),
    ({"epochs": 10**12}, "`epochs` is too large"),
    ({"device": "tpu"}, "unknown device 'tpu'"),
    ({"lr": math.inf}, "`lr` must be a finite number"),
])
def test_values_out_of_range(values, message):
    with pytest.raises(ConfigError) as info:
        make_config({}, values)
    assert message in str(info.value)


def test_config_round_trips_as_a_dict():
    c = make_config({}, {"method": "joint"})
    assert RunConfig(**c.to_dict()) == c


def test_yaml_details(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-3\nweight_decay: 5e-4\n")
    assert load_yaml(path) == {"lr": 0.001, "weight_decay": 0.0005}
    path.write_text("lr: 0.1\nlr: 0.2\n")
    with pytest.raises(ConfigError, match="`lr` appears twice"):
        load_yaml(path)
    path.write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(ConfigError, match="c.yaml"):
        load_yaml(path)


@pytest.mark.parametrize("values, message", [
    ({"threads": 10_000}, "`threads` must be at most"),
    ({"out": ""}, "`out` must not be empty"),
    ({"data_root": " "}, "`data-root` must not be empty"),
])
def test_more_values_out_of_range(values, message):
    with pytest.raises(ConfigError) as info:
        make_config({}, values)
    assert message in str(info.value)
