"""Reliability figures for docs/RELIABILITY.md: kill-and-resume trials of a run and of the
commands of many runs, two commands started at once on one folder, hostile inputs by kind, and
the reproducibility check. Prints a markdown report and writes it to
benchmarks/results/reliability.md.

    python benchmarks/reliability.py [--trials 20] [--examples 500] [--multi-trials 6]
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test helpers are the single definition of the checks

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests import hostile  # noqa: E402
from tests.conftest import write_fashion_mnist  # noqa: E402
from tests.test_resume import (MULTI_COMMANDS, STOPS, _config, _run, _same_results, kill_and_resume_trial,  # noqa: E402
                               multi_command, multi_kill_trial)


def hostile_counts(examples: int, data_root: Path) -> dict[str, Counter]:
    counts: dict[str, Counter] = {}
    every = settings(max_examples=examples, deadline=None, database=None,
                     suppress_health_check=list(HealthCheck))

    def run(kind, strategy, check):
        counts[kind] = Counter()

        @every
        @given(strategy)
        def probe(value):
            counts[kind][check(value)] += 1

        probe()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        run("config values (mappings of keys to random values)", hostile.configs, hostile.check_config)
        run("YAML documents (random text and bytes)", hostile.yaml_texts, lambda t: hostile.check_yaml(t, folder))
        run("recipes (random terms, memories, plug-ins)", hostile.recipes, hostile.check_recipe)
        run("IDX data files (random bytes)", hostile.raw_bytes, lambda b: hostile.check_idx(b, folder))
        run("command-line flags (`lifelong run --dry-run ...`)",
            st.lists(st.tuples(hostile.flags, hostile.flag_values), min_size=1, max_size=3),
            lambda pairs: hostile.check_cli([i for p in pairs for i in p], data_root, folder / "never"))

        def fresh(check):  # each input in a folder of its own
            def checked(value):
                with tempfile.TemporaryDirectory() as own:
                    return check(value, Path(own))
            return checked

        run("`--seeds` and `--jobs` (`lifelong run --dry-run --seeds S --jobs J`, with random flags)",
            st.tuples(hostile.seeds_texts, hostile.jobs_values,
                      st.lists(st.tuples(hostile.flags, hostile.flag_values), max_size=2)),
            fresh(lambda v, f: hostile.check_seeds(v[0], v[1], [i for p in v[2] for i in p], data_root, f)))
        run("`lifelong compare --dry-run` flags (random combinations)", hostile.compare_args,
            fresh(lambda args, f: hostile.check_compare(args, data_root, f)))
        run("sweep files (random base, grid, seeds, out, imports; and random text)", hostile.sweep_texts,
            fresh(hostile.check_sweep))
        run("`lifelong report` arguments (missing paths, files, empty folders, odd run folders)",
            st.tuples(hostile.report_entries, hostile.report_outs),
            fresh(lambda v, f: hostile.check_report(v[0], v[1], f)))
    return counts


def _timed_reference(kind: str, data_root: Path, out: Path) -> tuple[Path, float]:
    """The command run once, uninterrupted, and how long it ran after its first run started
    training, and a little more (the trials' signals land anywhere in that time)."""
    proc = hostile.start_command(multi_command(kind, data_root, out))
    while proc.poll() is None and not any(out.rglob("steps.csv")):
        time.sleep(0.02)
    start = time.perf_counter()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out, 1.2 * (time.perf_counter() - start)


def multi_trials(trials: int, data_root: Path, tmp: Path) -> tuple[list[str], list[str]]:
    """``trials`` kill-and-resume trials per command of many runs, the ways of stopping taken in
    turn, and ``trials`` starts of two copies at once per command; the report's lines for each."""
    rng = random.Random(2027)
    outcomes = Counter()
    for kind in MULTI_COMMANDS:
        reference, spread = _timed_reference(kind, data_root, tmp / f"{kind}-reference")
        for i in range(trials):
            stop = list(STOPS)[i % len(STOPS)]
            killed, same, resumed = multi_kill_trial(kind, data_root, reference, tmp / f"{kind}-{i}", rng, stop,
                                                     spread)
            outcomes[(kind, stop, killed, same)] += 1
            outcomes[(kind, stop, "resumed")] += resumed
    stops = ["| command | how it was stopped | stopped it (exit code not 0) | final summary and runs equal | trials "
             "| runs resumed from a checkpoint |", "|---|---|---|---|---|---|"]
    for (kind, stop, killed, same), n in sorted((k, n) for k, n in outcomes.items() if len(k) == 4):
        resumed = outcomes[(kind, stop, "resumed")] if killed else ""
        stops.append(f"| {kind} | {stop} | {'yes' if killed else 'no: it completed (the signal came after its runs or its end)'}"
                     f" | {'yes' if same else 'NO'} | {n} | {resumed} |")
    concurrent = ["| command | trials | sane (one completes, the other refused in one line or reusing its runs; "
                  "every run complete, trained once) |", "|---|---|---|"]
    for kind in ("seeds", "sweep", "compare"):
        sane = 0
        for i in range(trials):
            out = tmp / f"together-{kind}-{i}"
            args = multi_command(kind, data_root, out)
            runs = {"seeds": 3, "sweep": 4, "compare": 4}[kind]
            sane += hostile.check_concurrent(args, out, runs) == "ok"
        concurrent.append(f"| {kind} | {trials} | {sane} |")
    return stops, concurrent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--multi-trials", type=int, default=6,
                        help="trials per command of many runs (--seeds, compare, sweep), and concurrent starts")
    args = parser.parse_args()
    started = time.perf_counter()
    lines = [f"Measured {time.strftime('%Y-%m-%d')} with `python benchmarks/reliability.py --trials {args.trials} "
             f"--examples {args.examples} --multi-trials {args.multi_trials}`.", ""]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small, large = tmp / "small", tmp / "large"
        write_fashion_mnist(small, per_class_train=2, per_class_test=1)
        write_fashion_mnist(large, per_class_train=300, per_class_test=3)

        # reproducibility: the same configuration twice, compared byte for byte
        _run(_config(large, tmp / "a"))
        _run(_config(large, tmp / "b"))
        _same_results(tmp / "a", tmp / "b")
        lines += ["## Reproducibility", "",
                  "Two runs of the same configuration and seed (DER++, tiny Fashion-MNIST in the real IDX format, "
                  "about 750 steps, checkpoints every 3 steps): `metrics.json` equal apart from timings, and every "
                  "tensor of `model.pt` equal byte for byte: **yes**.", ""]

        # kill and resume
        rng = random.Random(2026)
        outcomes = Counter()
        for i in range(args.trials):
            sig = rng.choice([signal.SIGKILL, signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
            killed, same = kill_and_resume_trial(large, tmp / "a", tmp / f"trial{i}", rng, sig)
            outcomes[(signal.Signals(sig).name, killed, same)] += 1
        lines += ["## Kill and resume", "",
                  "Each trial starts `lifelong run`, waits for its first checkpoint, waits a random 0-0.6 s, sends "
                  "the signal, then resumes with `lifelong run --resume` and compares the final `metrics.json` and "
                  "`model.pt` with an uninterrupted run.", "",
                  "| signal | hit a running process | final results equal | trials |", "|---|---|---|---|"]
        for (name, killed, same), n in sorted(outcomes.items()):
            lines.append(f"| {name} | {'yes' if killed else 'no (already finished)'} | {'yes' if same else 'NO'} | {n} |")
        lines.append("")

        # the commands of many runs: stopped and run again; two started at once
        multi = tmp / "multi-data"
        write_fashion_mnist(multi, per_class_train=60, per_class_test=3)
        stops, concurrent = multi_trials(args.multi_trials, multi, tmp)
        lines += ["## Commands of many runs: stopped, then run again", "",
                  "Each trial starts `lifelong run --seeds 0-2`, `lifelong compare --seeds 0-1` or a sweep of 2 x 2 "
                  "runs (DER++, about 150 steps a run, checkpoints every 3 steps, `--jobs 2`), waits until a run "
                  "trains, waits a random time of up to 1.2 times what an uninterrupted command takes from there (so that "
                  "some signals land between runs, as the summary is written, or after the end), stops the command (SIGKILL to its "
                  "process group, as a crash; SIGINT to the group, as Ctrl-C; SIGTERM to the command; SIGKILL to one "
                  "run's process, as the out-of-memory killer), runs the same "
                  "command again, and compares summary.md and summary.csv (or compare-*.json and .md), wall seconds "
                  "masked, byte for byte, and every run's metrics.json and model.pt, with an uninterrupted command's.",
                  "", *stops, "",
                  "## Two commands started at once on one folder", "",
                  "The same command twice, started together, on one `--out` (`tests/hostile.py::check_concurrent`).",
                  "", *concurrent, ""]

        # hostile inputs
        counts = hostile_counts(args.examples, small)
        lines += ["## Hostile inputs", "",
                  "Generated by hypothesis (`tests/hostile.py`); each input is accepted, refused with one line "
                  "(exit code 2), or counted as a crash (any other exception, a traceback, another exit code, more "
                  "than one line, or a file written where nothing should be: by `--dry-run`, by a refused input, "
                  "by a report outside its folder). Sweep files are checked by the sweep's own checking "
                  "(`expand_sweep`, which runs nothing); those it refuses must also be refused by `lifelong sweep`.",
                  "",
                  "| kind | inputs | accepted | refused with one line | crashed |", "|---|---|---|---|---|"]
        for kind, c in counts.items():
            lines.append(f"| {kind} | {sum(c.values())} | {c['accepted']} | {c['refused']} | {c['crash']} |")
        if hostile.crashes:
            lines += ["", "What crashed:", ""] + [f"- `{c[:300]}`" for c in hostile.crashes[:20]]
    minutes = (time.perf_counter() - started) / 60
    lines += ["", f"The whole script took {minutes:.1f} minutes (load average at the end: "
              f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs)."]
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / "benchmarks" / "results" / "reliability.md").write_text(text)


if __name__ == "__main__":
    main()
