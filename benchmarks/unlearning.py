"""The unlearning ledger on MNIST (issue 14): every method against retraining, over seeds.

For each seed, through the library: the clean run (``lifelong run --benchmark split-mnist
--method joint``: all of MNIST as one task, the MLP, one epoch of SGD at the published settings)
and, per scenario, its retrain (the same run with ``--forget SPEC``). Scenarios:

- ``class``: forget class 3 (``classes:3``);
- ``random``: forget 1% of the training examples (``random:0.01``, drawn from the run's seed);
- ``corrupt``: RESTOR-style recovery (``corrupt:0.01``): 1% of the examples relabelled to wrong
  labels (:func:`lifelong.unlearn.corruption`), the corrupted model the clean one trained further
  on them (:func:`lifelong.unlearn.corrupt_model`, ``--corrupt-epochs`` passes, each batch joined
  by as many retain examples); the methods unlearn the corrupted model; the recovery table
  (:func:`lifelong.unlearn.recovery_of`) compares each with the clean model;
- ``stream``: continual-stream unlearning: the clean run is ``--method er`` on the Split-MNIST
  stream (5 tasks), the forget set task 1's classes (``classes:0,1``) after the whole stream, the
  retrain the ER stream rerun without them (task 1 left untrained, still evaluated); ``D`` as
  ``lifelong unlearn`` takes it from the run (:func:`lifelong.unlearn.run.run_data`).

Methods: SSD and LFSSD at the reference's α = 10 and at α = 2 (what one MNIST class needs,
docs/UNLEARNING.md), fine-tune, gradient ascent, random labels, refresh, each at its defaults,
and SSD at α = 10 and 30 with I_D over D in its own order computed beforehand (``--importance-cache``),
timed alone (the method call); retrain's time is the retrain run's ``train_seconds``. Prints
and writes a markdown file of mean ± std over seeds (``--out``).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/unlearning.py --seeds 0 1 2 3 4
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

import lifelong
import lifelong.unlearn as u
from lifelong.unlearn.evaluate import accuracy
from lifelong.unlearn.run import load_run, method_params, random_model, run_data
from lifelong.unlearn.ssd import full_importance, ssd_given

SCENARIOS = {"class": "classes:3", "random": "random:0.01", "corrupt": "corrupt:0.01", "stream": "classes:0,1"}
SOURCE_METHOD = {"stream": "er"}  # the clean run's method per scenario; joint for the others
METHODS = [("ssd α=10", "ssd", {"alpha": 10.0}), ("ssd α=2", "ssd", {"alpha": 2.0}),
           ("lfssd α=10", "lfssd", {"alpha": 10.0}), ("lfssd α=2", "lfssd", {"alpha": 2.0}),
           ("finetune", "finetune", {}), ("gradient-ascent", "gradient-ascent", {}),
           ("random-labels", "random-labels", {}), ("refresh", "refresh", {}),
           ("ssd α=10, I_D cached", "ssd-cached", {"alpha": 10.0}),
           ("ssd α=30, I_D cached", "ssd-cached", {"alpha": 30.0})]
# ssd-cached: SSD with I_D over D in its own order computed beforehand (lifelong unlearn
# --importance-cache); timed without that one-time pass, as every request after the first
RUN = {"benchmark": "split-mnist", "method": "joint", "threads": 1, "device": "cpu"}


def library_run(work: Path, name: str, seed: int, data_root: str, forget: str | None = None,
                method: str = "joint") -> tuple[Path, float]:
    """A finished library run (its folder) and its training seconds."""
    out = work / f"{name}-{seed}"
    extra = {} if forget is None else {"forget": forget}
    doc = lifelong.run(**{**RUN, "method": method}, seed=seed, data_root=data_root, out=str(out), **extra)
    return out, float(doc["train_seconds"])


def measures(model: torch.nn.Module, data: u.UnlearnData, reference: torch.nn.Module,
             random: torch.nn.Module) -> dict[str, float]:
    doc = u.evaluate_unlearning(model, data, reference, random_model=random)
    split = {k: 100 * doc["accuracy"][k] for k in ("test_retain", "test_forget") if k in doc["accuracy"]}
    return {"forget": 100 * doc["accuracy"]["forget"], "retain": 100 * doc["accuracy"]["retain"],
            "test": 100 * doc["accuracy"]["test"], **split, "mia": doc["mia"], "zrf": doc["zrf"],
            "agree_test": 100 * doc["agreement"]["test"]["agreement"],
            "agree_forget": 100 * doc["agreement"]["forget"]["agreement"]}


def unlearn_all(model: torch.nn.Module, data: u.UnlearnData, seed: int) -> dict[str, tuple[torch.nn.Module, float]]:
    """Every method of :data:`METHODS` on ``model``: the unlearned model and the method's seconds."""
    out, cached = {}, {}
    for label, name, params in METHODS:
        if name == "ssd-cached":
            if "full" not in cached:  # once per model, as the cache keeps it
                cached["full"] = full_importance(model, data, 64, order="dataset")
            full = cached["full"]
            clock = time.perf_counter()
            out[label] = (ssd_given(model, data, full, **params), time.perf_counter() - clock)
            continue
        unlearner = u.get_unlearner(name)
        full = method_params(unlearner, params, seed)
        clock = time.perf_counter()
        out[label] = (unlearner(model, data, **full), time.perf_counter() - clock)
    return out


def scenario_seed(scenario: str, seed: int, clean_dir: Path, work: Path, args: argparse.Namespace
                  ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """One scenario, one seed: the ledger rows and (corruption only) the recovery rows."""
    spec = SCENARIOS[scenario]
    retrain_dir, retrain_seconds = library_run(work, f"retrain-{scenario}", seed, args.data_root, spec,
                                               SOURCE_METHOD.get(scenario, "joint"))
    clean, source = load_run(clean_dir, device="cpu", data_root=args.data_root)
    retrained, _ = load_run(retrain_dir, device="cpu", data_root=args.data_root)
    if scenario == "stream":  # D from the run's stream, as lifelong unlearn takes it
        data, _ = run_data(clean, source, u.parse_forget_spec(spec), u.forget_mask(spec, source.train_y, 10, seed))
    else:
        data = u.UnlearnData.from_source(source, spec, seed=seed)
    random = random_model(clean, source)
    start = clean.model
    if scenario == "corrupt":
        start = u.corrupt_model(clean.model, data, epochs=args.corrupt_epochs, seed=seed)
    rows = {"retrain": {**measures(retrained.model, data, retrained.model, random), "seconds": retrain_seconds,
                        "ratio": 1.0},
            "corrupted" if scenario == "corrupt" else "original": {**measures(start, data, retrained.model, random)}}
    models = unlearn_all(start, data, seed)
    for label, (model, seconds) in models.items():
        rows[label] = {**measures(model, data, retrained.model, random), "seconds": seconds,
                       "ratio": seconds / retrain_seconds}
    recovery: dict[str, dict[str, float]] = {}
    if scenario == "corrupt":
        named = {"retrain": retrained.model, **{label: m for label, (m, _) in models.items()}}
        recovery = u.recovery_of(data, clean.model, start, named)
        for label, model in {"clean": clean.model, "corrupted": start, **named}.items():
            recovery[label]["test"] = 100 * accuracy(model, data.test_x, data.test_y)
            for key in ("clean_accuracy", "corrupt_accuracy", "clean_agreement"):
                recovery[label][key] *= 100
    return rows, recovery


def mean_std(values: list[float]) -> str:
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def table(rows_by_seed: list[dict[str, dict[str, float]]], columns: list[tuple[str, str]]) -> list[str]:
    lines = ["| model | " + " | ".join(title for _, title in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for name in rows_by_seed[0]:
        cells = [mean_std([seed_rows[name].get(key, float("nan")) for seed_rows in rows_by_seed]) for key, _ in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


LEDGER = [("forget", "forget acc"), ("retain", "retain acc"), ("test", "test acc"), ("mia", "MIA"),
          ("agree_test", "agree. retrain (test)"), ("agree_forget", "agree. retrain (D_f)"),
          ("seconds", "time (s)"), ("ratio", "time / retrain")]
CLASS_SPLIT = [("test_retain", "test acc, kept classes"), ("test_forget", "test acc, forgotten classes")]


def ledger_columns(scenario: str) -> list[tuple[str, str]]:
    """The columns of a scenario's table: for full-class forgetting the test set split by class, and ZRF."""
    split = CLASS_SPLIT if scenario in ("class", "stream") else []
    return LEDGER[:3] + split + LEDGER[3:4] + [("zrf", "ZRF")] + LEDGER[4:]
RECOVERY = [("clean_accuracy", "clean-label acc"), ("corrupt_accuracy", "corrupted-label acc"),
            ("clean_agreement", "agreement with clean"), ("recovery", "recovery"), ("test", "test acc")]


def markdown(results: dict[str, list], recovery: list, args: argparse.Namespace, seconds: float) -> str:
    seeds = " ".join(str(s) for s in args.seeds)
    out = [f"<!-- written by benchmarks/unlearning.py --seeds {seeds} (corrupt epochs {args.corrupt_epochs}); "
           f"{seconds:.0f} s in all, one CPU thread -->", ""]
    for scenario, rows in results.items():
        out += [f"**{scenario}** (`{SCENARIOS[scenario]}`), seeds {seeds}, mean ± std; accuracies and agreement "
                "in percent, MIA the member fraction on D_f", "", *table(rows, ledger_columns(scenario)), ""]
    if recovery:
        out += [f"**recovery** (`{SCENARIOS['corrupt']}`): on the corrupted examples, accuracy against the true "
                "and the corrupted labels, agreement with the clean model (percent), recovery = the fraction of "
                "the clean − corrupted gap in true-label accuracy closed; test accuracy", "",
                *table(recovery, RECOVERY), ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--data-root", default="../shared/data/mnist")
    parser.add_argument("--corrupt-epochs", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/results/unlearning.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="lifelong-unlearning-"))
    results: dict[str, list] = {s: [] for s in args.scenarios}
    recovery: list = []
    try:
        for seed in args.seeds:
            clock = time.perf_counter()
            clean_dirs: dict[str, Path] = {}
            for scenario in args.scenarios:
                method = SOURCE_METHOD.get(scenario, "joint")
                if method not in clean_dirs:
                    clean_dirs[method], _ = library_run(work, f"clean-{method}", seed, args.data_root, method=method)
                rows, rec = scenario_seed(scenario, seed, clean_dirs[method], work, args)
                results[scenario].append(rows)
                if rec:
                    recovery.append(rec)
            print(f"seed {seed}: {time.perf_counter() - clock:.0f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = markdown(results, recovery, args, time.perf_counter() - began)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    Path(args.out).with_suffix(".json").write_text(json.dumps({"results": results, "recovery": recovery}, indent=1))


if __name__ == "__main__":
    main()
