"""Hostile inputs, shared by the property tests and benchmarks/reliability.py.

Each ``check_*`` function feeds one input to one entry point and classifies the outcome:
``"accepted"`` (a valid input), ``"refused"`` (a user error with one clear line), or
``"crash"`` (anything else: an unexpected exception or a traceback on stderr).
"""
from __future__ import annotations

import contextlib
import io
import math
import os
from pathlib import Path
from typing import Any

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


def _run_flags() -> list[str]:
    """Every flag of `lifelong run` (read from its parser, so a new flag is fuzzed too), but
    --download (with a random --data-root it would go to the network) and --help."""
    from lifelong.cli.parser import build_parser
    run = next(a for a in build_parser()._subparsers._group_actions).choices["run"]
    names = [o for action in run._actions for o in action.option_strings if o.startswith("--")]
    return sorted(set(names) - {"--download", "--help"})


flags = st.sampled_from(_run_flags())
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
    except Exception as exc:
        import traceback

        return _crash(getattr(call, "__name__", "call"), "".join(traceback.format_exception(exc)[-3:]))


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


# --- the commands of many runs: `run --seeds`, `compare`, `sweep`, `report` -------------------
#
# Each check runs the command in-process with ``folder`` as the working directory (so that
# default folders such as ``runs/...`` land there) and compares every file below ``folder``
# before and after: a refused input, or a dry run, that leaves anything behind is a crash.

seeds_texts = st.one_of(
    st.text(alphabet="0123456789-, ", max_size=10),
    st.text(max_size=10),
    st.lists(st.integers(min_value=-3, max_value=2**65), min_size=1, max_size=4).map(lambda xs: ",".join(map(str, xs))),
    st.tuples(st.integers(min_value=-3, max_value=12), st.integers(min_value=-3, max_value=12)).map(
        lambda ab: f"{ab[0]}-{ab[1]}"),
    st.tuples(st.integers(min_value=0, max_value=2**70), st.integers(min_value=0, max_value=2**70)).map(
        lambda ab: f"{ab[0]}-{ab[1]}"),  # huge ranges: refused without being expanded
    st.sampled_from(["0-4", "0", "4-0", "0,0", "-1", "0-1000", "0-99999999999", f"0-{10**30}", str(2**63),
                     f"0,{2**63 - 1}", "1e3", "0x1", " 1 ", "1_0", "", ",", "0-", "-", "0--1", "0-1,1", "٣", "nan"]),
)
jobs_values = st.one_of(st.none(), st.integers(min_value=-2, max_value=2**65).map(str),
                        st.sampled_from(["0", "1", "2", "3", "-1", "x", "", "1.5", "nan", "1e3"]))
# flags with and without a value, as `compare` (and `run --seeds`) take them; --download is left
# out: with a random --data-root it would go to the network
value_flags = st.sampled_from(["--benchmark", "--method", "--buffer-size", "--epochs", "--batch-size", "--lr",
                               "--seed", "--num-tasks", "--backbone", "--device", "--threads", "--param",
                               "--refresh-param", "--checkpoint-every", "--on-nan", "--out", "--config",
                               "--import", "--resume", "--seeds", "--jobs", "--log", "--log-every"])
bare_flags = st.sampled_from(["--overwrite", "--shuffle-classes", "--deterministic", "--refresh", "--quiet",
                              "--dry-run", "--resume", "--seeds", "--jobs"])
compare_values = st.one_of(flag_values, seeds_texts, jobs_values.filter(lambda j: j is not None),
                           st.sampled_from(["paper", "code", "gamma=1e-4", "every=1", "steps=0", "form=code",
                                            "seed=1", "plugin=refresh", "gamma=nan", "every=-1", "tensorboard",
                                            "wandb", "derpp", "er", "mlp"]))
compare_args = st.lists(st.one_of(st.tuples(value_flags, compare_values), st.tuples(bare_flags)),
                        min_size=1, max_size=4).map(lambda parts: [a for p in parts for a in p])


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder below ``folder`` (links not followed): path -> (size, mtime)."""
    found = {}
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(top, name)
            st_ = os.lstat(path)
            found[path] = (st_.st_size, st_.st_mtime_ns)
    return found


def check_command(args: list[str], folder: Path, may_write: Path | None = None) -> str:
    """``lifelong ARGS`` run in ``folder``: ``accepted`` (exit code 0, no traceback, nothing
    written but below ``may_write``), ``refused`` (exit code 2, exactly one line
    ``lifelong: error: ...`` on stderr, nothing written) or ``crash`` (anything else)."""
    before = _tree(folder)
    err = io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(args)
    except SystemExit as exc:  # argparse
        code = exc.code
    except Exception as exc:
        return _crash(args, f"{type(exc).__name__}: {exc}")
    finally:
        os.chdir(cwd)
    after = _tree(folder)
    written = [p for p, stamp in after.items() if before.get(p) != stamp]
    text = err.getvalue()
    if "Traceback" in text:
        return _crash(args, text)
    if code == 0:
        allowed = None if may_write is None else str(may_write)
        ok = all(allowed is not None and (p == allowed or p.startswith(allowed + os.sep)) for p in written)
        return "accepted" if ok else _crash(args, f"written: {written}")
    lines = text.strip().splitlines()
    if code == 2 and len(lines) == 1 and lines[0].startswith("lifelong: error: ") and not written:
        return "refused"
    return _crash(args, f"exit code {code}, written {written}, stderr {text!r}")


crashes: list[str] = []  # what each crash of the checks below was, for the benchmark's report and debugging


def _crash(args: Any, why: str) -> str:
    crashes.append(f"{args!r}: {why}"[:2000])
    return "crash"


def _tiny(data_root: Path) -> list[str]:
    return ["--quiet", "--benchmark", "split-fashion-mnist", "--data-root", str(data_root)]


def check_seeds(seeds: str, jobs: str | None, extra: list[str], data_root: Path, folder: Path) -> str:
    """``lifelong run --dry-run --seeds SEEDS [--jobs JOBS] EXTRA`` on tiny data: checks every run,
    trains and writes nothing."""
    args = ["run", "--dry-run", *_tiny(data_root), "--out", str(folder / "never"), "--seeds", seeds]
    return check_command(args + (["--jobs", jobs] if jobs is not None else []) + extra, folder)


def check_compare(extra: list[str], data_root: Path, folder: Path) -> str:
    """``lifelong compare --dry-run --seeds 0-1 EXTRA`` on tiny data (EXTRA's flags come last and
    win); ``--dry-run`` is given first, so every accepted comparison writes nothing."""
    args = ["compare", "--dry-run", *_tiny(data_root), "--out", str(folder / "never"), "--seeds", "0-1"]
    return check_command(args + extra, folder)


# sweep files: random base, grid, seeds, out and imports, with the user files they may import
USER_FILES = {
    "user_term.py": "from lifelong.objective import Term, register_term\n\n\n@register_term\nclass Zero(Term):\n"
                    "    name = 'hostile-zero'\n\n    def __call__(self, batch):\n"
                    "        return batch.logits.new_zeros(())\n",
    "exits.py": "import sys\nsys.exit(3)\n",
    "raises.py": "raise ValueError('from the user file')\n",
}
run_keys = st.one_of(st.sampled_from(KEYS + ("buffer-size", "batch-size", "params.alpha", "params.beta", "params.",
                                             "seed", "out", "overwrite", "imports", "data-root")),
                     st.text(max_size=8), st.integers(min_value=-2, max_value=2), st.none(), st.booleans())
run_values = st.one_of(
    values,
    st.sampled_from(["er", "derpp", "finetune", "icarl", "joint", "no-such", "split-fashion-mnist", "split-cifar10",
                     "mlp", "resnet18", 0.1, 0.0, -1, 200, 10**9, "paper", "code",
                     {"name": "r", "terms": [{"term": "ce"}]}, {"name": "u", "terms": [{"term": "hostile-zero"}]},
                     {"terms": [{"term": "ce"}], "memory": "reservoir"}, {"form": "code", "gamma": 1e-4}]),
    st.lists(st.sampled_from(["user_term.py", "exits.py", "raises.py", "nope.py", "json", "no_such_module_x", "",
                              "/abs/nope.py"]), max_size=2),
)
_plausible = {  # values a user would write, some of them wrong
    "method": st.sampled_from(["er", "derpp", "finetune", "icarl", "lwf", "no-such",
                               {"name": "r", "terms": [{"term": "ce"}]}, {"name": "u", "terms": [{"term": "hostile-zero"}]}]),
    "buffer-size": st.sampled_from([20, 200, 0, -5, 10**12, "200", 1.5]),
    "lr": st.sampled_from([0.1, 0.03, 0, -1, "0.1", math.inf, math.nan, 1e-3]),
    "params.alpha": st.sampled_from([0.1, 0.5, -1, "x", None, [1]]),
    "epochs": st.sampled_from([1, 2, 0, 10**6, True]),
    "benchmark": st.sampled_from(["split-fashion-mnist", "split-mnist", "split-cifar10", "no-such"]),
    "refresh": st.sampled_from(["paper", "code", None, {"form": "code", "gamma": 1e-4}, {"form": "x"}]),
    "imports": st.lists(st.sampled_from(["user_term.py", "exits.py", "raises.py", "nope.py", "json"]), max_size=2),
}
plausible_sweeps = st.fixed_dictionaries({
    "base": st.fixed_dictionaries({}, optional={k: v for k, v in _plausible.items() if k != "params.alpha"}),
    "grid": st.dictionaries(st.sampled_from(sorted(_plausible)), st.just(None), max_size=3).flatmap(
        lambda keys: st.fixed_dictionaries({k: st.lists(_plausible[k], min_size=1, max_size=3) for k in keys})),
}, optional={"seeds": st.sampled_from(["0-2", "0", [0, 1], [1, 1], "2-0", 3, "0-5000"]),
             "out": st.sampled_from(["out", "sub/dir", "sweep.yaml", "x" * 300, ""])})
sweep_docs = st.fixed_dictionaries({}, optional={
    "base": st.one_of(st.dictionaries(run_keys, run_values, max_size=4), values),
    "grid": st.one_of(st.dictionaries(run_keys, st.one_of(st.lists(run_values, max_size=3), run_values), max_size=3),
                      values),
    "seeds": st.one_of(seeds_texts, st.lists(st.one_of(st.integers(min_value=-2, max_value=2**64), scalars),
                                             max_size=3), values),
    "out": st.one_of(values, st.sampled_from(["out", "sub/dir", "", "x" * 300, "sweep.yaml", "sweep.yaml/below",
                                              "/", "a\0b", "."])),
    "imports": values,
    "": values,
})


def _sweep_text(doc: dict) -> str:
    import yaml

    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


big_grids = st.dictionaries(st.sampled_from(["lr", "epochs", "buffer-size", "batch-size", "momentum", "seed", "x"]),
                            st.integers(min_value=1, max_value=80).map(lambda n: list(range(1, n + 1))),
                            min_size=1, max_size=7).map(lambda grid: {"grid": grid, "seeds": "0-2"})
sweep_texts = st.one_of(sweep_docs.map(_sweep_text), plausible_sweeps.map(_sweep_text), big_grids.map(_sweep_text),
                        yaml_texts)


def check_sweep(text: str, folder: Path) -> str:
    """A sweep file checked by the sweep's own checking (:func:`lifelong.runs.sweep.expand_sweep`,
    which runs nothing); one it refuses must also be refused by ``lifelong sweep`` in one line,
    exit code 2, with nothing written."""
    from lifelong.runs.sweep import expand_sweep

    for name, code in USER_FILES.items():
        (folder / name).write_text(code)
    path = folder / "sweep.yaml"
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    before = _tree(folder)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        outcome = _classify(lambda: expand_sweep(path))
        if outcome == "crash":
            crashes[-1] = f"{text!r}: {crashes[-1]}"[:2000]
    finally:
        os.chdir(cwd)
    if _tree(folder) != before:
        return "crash"
    if outcome == "refused":
        return "refused" if check_command(["sweep", str(path), "--quiet"], folder) == "refused" else "crash"
    return outcome


# `lifelong report`: paths that do not exist, files, empty folders, folders of odd run files
_doc_keys = st.sampled_from(["schema_version", "complete", "status", "benchmark", "method", "refresh", "seed",
                             "num_tasks", "wall_seconds", "class_il", "task_il", "class_il.accuracy_matrix",
                             "task_il.accuracy_matrix", "class_il.accuracy_matrix.0", "class_il.accuracy_matrix.2.1",
                             "task_il.accuracy_matrix.1", "class_il.average_accuracy", "class_il.forgetting",
                             "task_il.initial_accuracy", "params"])
_DELETE = object()
_doc_changes = st.lists(st.tuples(_doc_keys, st.one_of(values, st.just(_DELETE))), max_size=3)
_run_entries = st.tuples(st.just("run"), st.sampled_from(["er", "finetune", "joint"]), st.integers(0, 2), st.booleans(),
                         st.lists(st.tuples(_doc_keys, st.one_of(values, st.just(_DELETE))), max_size=1),
                         st.sampled_from(["ok", "ok", "ok", "missing", "text"]))
report_entries = st.one_of(st.lists(_run_entries, min_size=1, max_size=4), st.lists(st.one_of(
    st.tuples(st.just("missing")),
    st.tuples(st.just("file"), st.binary(max_size=20)),
    st.tuples(st.just("empty")),
    st.tuples(st.just("run"), st.sampled_from(["er", "finetune", "joint"]), st.integers(0, 2), st.booleans(),
              _doc_changes, st.sampled_from(["ok", "missing", "text", "list"])),
    st.tuples(st.just("metrics-bytes"), st.one_of(st.binary(max_size=60), st.text(max_size=60).map(str.encode))),
    st.tuples(st.just("loop")),
), min_size=1, max_size=4))
report_outs = st.sampled_from(["new", "existing", "file", "below-file", "default"])
# the folders of lifelong unlearn, edit and merge (tests/test_report_outputs.py's documents, changed)
_output_keys = st.sampled_from(["schema_version", "kind", "complete", "seed", "method", "forget", "source_run",
                                "source_method", "params", "params.alpha", "params.beta", "params.lam",
                                "params.lines", "accuracy", "accuracy.forget", "accuracy.class_il",
                                "accuracy.class_il.0", "accuracy.task_il", "mia", "agreement", "agreement.test",
                                "agreement.test.kl", "recovery", "wall_seconds", "compare_to", "base", "source_runs",
                                "source_runs.0", "zrf", "rmm", "benchmark"])
output_entries = st.tuples(st.just("output"), st.sampled_from(["unlearn", "edit", "merge"]),
                           st.lists(st.tuples(_output_keys, st.one_of(values, st.just(_DELETE))), max_size=3))


def _set(doc: Any, dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for part in path:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    key = int(last) if isinstance(doc, list) else last
    if value is _DELETE:
        del doc[key]
    else:
        doc[key] = value


def apply_changes(doc: Any, changes: list[tuple[str, Any]]) -> None:
    """Set (or, with ``_DELETE``, remove) each dotted path of ``doc``; paths an earlier change
    removed are skipped."""
    for key, value in changes:
        try:
            _set(doc, key, value)
        except (KeyError, IndexError, TypeError, ValueError):
            pass  # the path no longer exists in the changed document


def _write_entry(entry: tuple, path: Path) -> None:
    import json

    from tests.test_report import ER, ER_TASK, JOINT, make_run

    kind = entry[0]
    if kind == "file":
        path.write_bytes(entry[1])
    elif kind == "empty":
        path.mkdir()
    elif kind == "loop":
        path.mkdir()
        (path / "self").symlink_to(path, target_is_directory=True)
    elif kind == "metrics-bytes":
        run = make_run(path.parent, path.name, "er", 0, ER[0], ER_TASK)
        (run / "metrics.json").write_bytes(entry[1])
    elif kind == "tree":  # a folder holding the entries (reported together, found below it)
        path.mkdir()
        for i, sub in enumerate(entry[1]):
            _write_entry(sub, path / f"x{i}")
    elif kind == "output":
        from tests.output_docs import output_doc, write_output

        doc = output_doc(entry[1], seed=0)
        apply_changes(doc, entry[2])
        write_output(path.parent, path.name, doc)
    elif kind == "run":
        _, method, seed, complete, changes, config = entry
        matrix = JOINT if method == "joint" else ER[seed % 2]
        run = make_run(path.parent, path.name, method, seed, matrix, complete=complete)
        doc = json.loads((run / "metrics.json").read_text())
        apply_changes(doc, changes)
        (run / "metrics.json").write_text(json.dumps(doc))
        if config == "missing":
            (run / "config.yaml").unlink()
        elif config == "text":
            (run / "config.yaml").write_text("just: [text\n")
        elif config == "list":
            (run / "config.yaml").write_text("- 1\n- 2\n")


def check_report(entries: list[tuple], out: str, folder: Path) -> str:
    """``lifelong report`` of the paths made from ``entries`` (``missing`` is never made), with
    ``--out`` a new folder, an existing one, a file, a path below a file or the default
    (``./report``): an accepted report writes below its folder only; a refused one writes nothing."""
    inputs = folder / "in"
    inputs.mkdir()
    paths = []
    for i, entry in enumerate(entries):
        path = inputs / f"e{i}"
        if entry[0] != "missing":
            _write_entry(entry, path)
        paths.append(str(path))
    target = {"new": folder / "report", "existing": folder / "existing", "file": folder / "a-file",
              "below-file": folder / "a-file" / "report", "default": folder / "report"}[out]
    if out == "existing":
        target.mkdir()
        (target / "notes.txt").write_text("kept\n")
    if out in ("file", "below-file"):
        (folder / "a-file").write_text("a file\n")
    args = ["report", *paths] + ([] if out == "default" else ["--out", str(target)])
    return check_command(args, folder, may_write=target)


# --- two commands of many runs started at once on one folder ---------------------------------

SRC = Path(__file__).resolve().parents[1] / "src"


def start_command(args: list[str], cwd: Path | None = None, env: dict | None = None):
    """``python -m lifelong ARGS`` in a process group of its own (so that a signal can reach the
    command and its runs' processes together, as a terminal's or a crash's would)."""
    import subprocess
    import sys

    environment = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "lifelong", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environment, start_new_session=True)


def check_concurrent(args: list[str], out: Path, runs: int, copies: int = 2, timeout: float = 600) -> str:
    """``copies`` of one command of many runs (``args``, writing to ``out``) started at once.
    ``ok`` when: no traceback; each command completes (exit code 0) or is refused with exactly
    one line ``lifelong: error: ...`` (exit code 2); at least one completes; and the folder ends
    with ``runs`` run folders, each complete exactly once (one start in its ``run.log``, no
    resume), and a summary that counts every run complete. Else ``crash``, with why."""
    import json

    procs = [start_command(args) for _ in range(copies)]
    results = []
    for proc in procs:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except Exception:
            proc.kill()
            proc.communicate()
            return _crash(args, "a command did not finish")
        results.append((proc.returncode, stderr))
    why = []
    for code, stderr in results:
        lines = stderr.strip().splitlines()
        if "Traceback" in stderr:
            why.append(f"traceback: {stderr[-1500:]}")
        elif code == 2 and not (len(lines) == 1 and lines[0].startswith("lifelong: error: ")):
            why.append(f"refused in {len(lines)} lines: {stderr[-1500:]}")
        elif code not in (0, 2):
            why.append(f"exit code {code}: {stderr[-1500:]}")
    if not any(code == 0 for code, _ in results):
        why.append(f"no command completed: {[e[-300:] for _, e in results]}")
    folders = sorted(p.parent for p in out.rglob("metrics.json"))
    if len(folders) != runs:
        why.append(f"{len(folders)} run folders, not {runs}: {folders}")
    for folder in folders:
        doc = json.loads((folder / "metrics.json").read_text())
        log = (folder / "run.log").read_text()
        starts = sum(" start: " in line for line in log.splitlines())
        if not doc.get("complete") or starts != 1 or "resuming" in log:
            why.append(f"{folder}: complete {doc.get('complete')}, started {starts} times: {log[-800:]}")
    if (out / "summary.csv").is_file():
        import csv

        for row in csv.DictReader((out / "summary.csv").read_text().splitlines()):
            if row["complete"] != row["seeds"]:
                why.append(f"summary row {row}")
    else:
        for path in out.glob("compare-*.json"):
            if not json.loads(path.read_text())["complete"]:
                why.append(f"{path.name} is not complete")
    return _crash(args, "; ".join(why)) if why else "ok"
