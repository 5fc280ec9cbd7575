"""Hostile inputs, shared by the property tests and benchmarks/reliability.py.

Each ``check_*`` function feeds one input to one entry point and classifies the outcome:
``"accepted"`` (a valid input), ``"refused"`` (a user error with one clear line), or
``"crash"`` (anything else: an unexpected exception or a traceback on stderr).
"""
from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

from hypothesis import strategies as st

from lifelong.cli import main
from lifelong.config import KEYS, load_yaml, make_config
from lifelong.data.idx import read_idx
from lifelong.errors import UserError
from lifelong.methods import recipe_from_spec

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from([0, -1, 1, 10**18, "", "er", "split-mnist", "cuda", "paper", "code", 1e-3, -0.0, math.nan]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                      max_leaves=8)
keys = st.one_of(st.sampled_from(KEYS + ("buffer-size", "batch-size", "lr ", "LR", "")), st.text(max_size=12))
configs = st.dictionaries(keys, values, max_size=6)
yaml_texts = st.one_of(
    st.text(max_size=200),
    st.lists(st.tuples(keys, st.text(max_size=20)), max_size=6).map(lambda kv: "\n".join(f"{k}: {v}" for k, v in kv)),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)
raw_bytes = st.binary(max_size=300)
flags = st.sampled_from(["--benchmark", "--method", "--buffer-size", "--epochs", "--batch-size", "--replay-batch-size",
                         "--lr", "--momentum", "--weight-decay", "--seed", "--num-tasks", "--backbone", "--device",
                         "--threads", "--param", "--refresh", "--refresh-param", "--checkpoint-every", "--on-nan",
                         "--out", "--config", "--import"])
flag_values = st.one_of(st.text(max_size=30), st.integers(min_value=-(2**65), max_value=2**65).map(str),
                        st.floats(allow_nan=True, allow_infinity=True).map(repr),
                        st.sampled_from(["nan", "inf", "-inf", "1e309", "0", "-1", "a=b", "=", "alpha=", "x" * 300]))
recipes = st.fixed_dictionaries({}, optional={
    "terms": st.lists(st.one_of(values, st.fixed_dictionaries(
        {"term": st.sampled_from(["ce", "logit-mse", "distill-kl", "ewc", "si", "mas", "l2", "bregman", "icarl", "x"])},
        optional={"weight": scalars, "on": scalars, "draw": scalars, "online": scalars, "gamma": scalars,
                  "temperature": scalars, "phi": scalars, "xi": scalars, "mask": scalars})), max_size=3),
    "memory": scalars, "plugins": values, "joint": scalars, "name": scalars, "extra": scalars,
})


def _classify(call) -> str:
    try:
        call()
        return "accepted"
    except UserError:
        return "refused"
    except Exception:
        return "crash"


def check_config(values: dict) -> str:
    return _classify(lambda: make_config(values, {}))


def check_yaml(text: str, folder: Path) -> str:
    path = folder / "c.yaml"
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    return _classify(lambda: make_config(load_yaml(path), {}))


def check_recipe(spec: dict) -> str:
    return _classify(lambda: recipe_from_spec(spec))


def check_idx(data: bytes, folder: Path) -> str:
    path = folder / "f"
    path.write_bytes(data)
    return _classify(lambda: read_idx(path, ndim=3))


def check_cli(args: list[str], data_root: Path, out: Path) -> str:
    """``lifelong run --dry-run`` on tiny data with the given flags (nothing is trained)."""
    err = io.StringIO()
    base = ["run", "--dry-run", "--quiet", "--benchmark", "split-fashion-mnist", "--data-root", str(data_root),
            "--out", str(out)]
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(base + args)
    except SystemExit as exc:  # argparse
        code = exc.code
    except Exception:
        return "crash"
    text = err.getvalue()
    if "Traceback" in text or out.exists():
        return "crash"
    if code == 0:
        return "accepted"
    if code == 2 and len(text.strip().splitlines()) == 1:
        return "refused"
    return "crash"
