import math
from pathlib import Path

import pytest
import torch

from lifelong import hparams
from lifelong.config import make_config
from lifelong.data.benchmarks import BENCHMARKS
from lifelong.data.streams import class_incremental
from lifelong.errors import ConfigError
from lifelong.methods import PRESETS, build_recipe, recipe_from_spec
from lifelong.nets import build_backbone, set_head
from lifelong.optim import SGD
from lifelong.loop import train
from tests.conftest import make_source

EXPECTED = {"finetune", "joint", "er", "er-ace", "der", "derpp", "lwf", "ewc", "ewc-online", "si", "mas", "agem",
            "icarl", "icarl-replay"}


def _train(recipe, **kw):
    stream = class_incremental(make_source(num_classes=6, per_class_train=20), 3)
    torch.manual_seed(0)
    model = set_head(build_backbone("mlp", (1, 8, 8), 6), recipe.head)
    return train(stream, model, recipe, SGD(model.parameters(), lr=0.05), seed=0, epochs=2, batch_size=8,
                 buffer_size=24, replay_batch_size=6, **kw)


def test_every_issue_preset_exists():
    assert EXPECTED <= set(PRESETS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_preset_trains_a_few_steps_on_tiny_data(name):
    result = _train(build_recipe(name))
    assert result.status == "complete"
    rows = 1 if name == "joint" else 3
    assert len(result.class_il) == rows and all(math.isfinite(v) for r in result.class_il for v in r)
    assert result.task_il[-1][-1] > 50  # the last task is learnt (task-IL: among its own classes)


def test_replay_helps_on_tiny_data():
    """The replay presets keep more of the first task than fine-tuning does (class-IL)."""
    ft = _train(build_recipe("finetune")).class_il[-1][0]
    for name in ("er", "derpp", "icarl"):
        assert _train(build_recipe(name)).class_il[-1][0] > ft + 20, name


def test_preset_parameters_and_their_errors():
    recipe = build_recipe("derpp", {"alpha": 0.7})
    weights = [w for w, _ in recipe.objective.terms]
    assert weights == [1.0, 0.7, 0.5]
    assert recipe.objective.draws == 2 and recipe.objective.stores == ("logits",)
    with pytest.raises(ConfigError, match="has no parameter `gamma`; its parameters: alpha, beta"):
        build_recipe("derpp", {"gamma": 1.0})
    with pytest.raises(ConfigError, match="unknown method 'dper'"):
        build_recipe("dper")


@pytest.mark.parametrize("spec, message", [
    ({"terms": []}, "`terms` must be a non-empty list"),
    ({"terms": [{"term": "cee"}]}, "unknown term 'cee'; choose one of:"),
    ({"terms": [{"term": "ce", "onn": "both"}]}, "term 'ce' has no option `onn`; its options: on, draw, mask"),
    ({"terms": [{"term": "ce", "on": "everything"}]}, "`on` must be one of"),
    ({"terms": [{"term": "ce", "weight": "heavy"}]}, "`weight` must be a finite number"),
    ({"terms": [{"term": "ce", "weight": "${alpha}"}]}, "refers to a parameter that is not set"),
    ({"terms": [{"term": "ce", "on": "both"}]}, "needs `memory: reservoir`"),
    ({"terms": [{"term": "logit-mse"}], "memory": "herding"}, "terms that store logits need a memory filled at every step"),
    ({"terms": [{"term": "ce"}], "memory": "fifo"}, "unknown memory 'fifo'"),
    ({"terms": [{"term": "ce"}], "plugins": [{"plugin": "gem"}]}, "unknown plugin 'gem'"),
    ({"terms": [{"term": "ce"}], "lr": 0.1}, "unknown recipe key `lr`"),
    ({"terms": ["ce"]}, "must be a mapping with a `term` name"),
])
def test_recipe_mistakes_say_what_to_fix(spec, message):
    with pytest.raises(ConfigError) as info:
        recipe_from_spec(spec, where="my.yaml")
    assert message in str(info.value) and str(info.value).startswith("my.yaml")


def test_unused_parameter_is_an_error():
    with pytest.raises(ConfigError, match="parameter `beta` is not used"):
        recipe_from_spec({"terms": [{"term": "ce"}]}, {"beta": 1.0})


def test_a_composed_recipe_trains():
    spec = {"name": "der-ewc", "memory": "reservoir", "terms": [
        {"term": "ce"}, {"term": "logit-mse", "weight": 0.5}, {"term": "ewc", "online": True, "weight": 10.0}]}
    result = _train(recipe_from_spec(spec))
    assert result.status == "complete" and len(result.class_il) == 3


def test_hyperparameter_files_are_valid_and_name_real_methods():
    files = sorted(Path(hparams.HERE).glob("*.yaml"))
    assert {f.stem for f in files} >= {"split-mnist", "permuted-mnist"}
    for f in files:
        assert f.stem in BENCHMARKS, f
        data = hparams.load(f.stem)
        assert data["source"]
        for method, entries in data["methods"].items():
            assert method in PRESETS, (f, method)
            for key, entry in entries.items():
                assert key == "any" or isinstance(key, int)
                assert set(entry) <= set(hparams.ENTRY_KEYS), (f, method, key)
                build_recipe(method, entry.get("params", {}))  # the parameters fit the method
                make_config({}, {"benchmark": f.stem, "method": method, "buffer_size": 200 if key == "any" else key})


def test_hyperparameter_lookup():
    entry, note = hparams.lookup("split-mnist", "er", 200)
    assert entry["lr"] == 0.01 and note == "hparams/split-mnist.yaml: er, 200"
    entry, note = hparams.lookup("split-mnist", "er", 300)
    assert entry["lr"] == 0.01 and "nearest to buffer 300" in note
    assert hparams.lookup("split-mnist", "si", 500)[0]["params"] == {"c": 1.0, "xi": 0.9}
    assert hparams.lookup("split-cifar100", "er", 500) == ({}, "no published settings for er on split-cifar100; library defaults")


def test_config_takes_published_settings_unless_the_user_sets_them():
    c = make_config({}, {"method": "der", "buffer_size": 500})
    assert (c.lr, c.replay_batch_size, c.params) == (0.03, 128, {"alpha": 1.0})
    c = make_config({"lr": 0.2}, {"params": {"alpha": 0.1}, "method": "der", "buffer_size": 500})
    assert (c.lr, c.params) == (0.2, {"alpha": 0.1})
    c = make_config({}, {"benchmark": "permuted-mnist", "method": "ewc-online"})
    assert (c.batch_size, c.lr, c.params) == (128, 0.1, {"lambda": 0.7, "gamma": 1.0})
