"""`lifelong unlearn`: a finished run's model with a forget set removed
(:func:`lifelong.unlearn.unlearn_run`), a short table of what changed, and the retrain command."""
from __future__ import annotations

import argparse
from typing import Any


def _cell(value: float | None, digits: int = 2) -> str:
    return f"{'-':>8}" if value is None else f"{value:>8.{digits}f}"


MEANINGFUL_GAP = 2.0  # points of true-label accuracy below which the recovery ratio is noise


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _cache_note(doc: dict[str, Any]) -> str:
    info = doc.get("importance_cache")
    if info is None:
        return ""
    what = "read from" if info["hit"] else "computed and kept in"
    return f" (full-set importance {what} {info['file']}, {info['seconds']:.2f} s)"


def unlearn_table(doc: dict[str, Any]) -> list[str]:
    """The lines ``lifelong unlearn`` prints: the method, the forget set, accuracy (percent) and
    the attack before and after, agreement with the retrained model, the retrain command."""
    params = ", ".join(f"{k}={v}" for k, v in doc["params"].items())
    lines = [f"lifelong: {doc['method']} ({params}) on {doc['source_run']}, forget {doc['forget']} "
             f"({doc['forget_count']} of {doc['forget_count'] + doc['retain_count']} training examples), "
             f"{doc['wall_seconds']:.2f} s" + _cache_note(doc),
             f"{'':<8}{'forget':>8}{'retain':>8}{'test':>8}{'MIA':>8}{'ZRF':>8}"]
    for name, part in (("before", doc["before"]), ("after", doc)):
        acc = part["accuracy"]
        lines.append(f"{name:<8}{_cell(acc['forget'])}{_cell(acc['retain'])}{_cell(acc['test'])}"
                     f"{_cell(part['mia'], 3)}{_cell(part.get('zrf'), 3)}")
    if "test_retain" in doc["accuracy"]:
        lines.append("test, retained classes / forgotten classes: "
                     + ", ".join(f"{name} {part['accuracy']['test_retain']:.2f} / {part['accuracy']['test_forget']:.2f}"
                                 for name, part in (("before", doc["before"]), ("after", doc))))
    if "task_accuracy" in doc:
        lines.append("per task (class-IL, test): before " + " ".join(f"{a:.1f}" for a in doc["before"]["task_accuracy"])
                     + "; after " + " ".join(f"{a:.1f}" for a in doc["task_accuracy"]))
    if "agreement" in doc:
        a = doc["agreement"]
        lines.append(f"agreement with {doc['compare_to']}: test {a['test']['agreement']:.2f}% "
                     f"(KL {a['test']['kl']:.4f}), forget {a['forget']['agreement']:.2f}% (KL {a['forget']['kl']:.4f})")
    if "recovery" in doc:
        r = doc["recovery"]
        lines.append(f"recovery against the {r['reference']} model, on the corrupted examples: true-label accuracy "
                     f"{r['corrupted']['clean_accuracy']:.2f} -> {r['unlearned']['clean_accuracy']:.2f}, "
                     f"corrupted-label {r['corrupted']['corrupt_accuracy']:.2f} -> "
                     f"{r['unlearned']['corrupt_accuracy']:.2f}, recovery {_ratio(r['unlearned']['recovery'])}")
        if r["gap"] is not None and abs(r["gap"]) < MEANINGFUL_GAP:
            lines.append(f"note: the corruption took {r['gap']:.2f} points of true-label accuracy on these examples; "
                         f"a recovery ratio over so small a gap means little (corrupt harder: more epochs or lr)")
    lines.append(f"retrain: {doc['retrain_command']}")
    return lines


def unlearn_command(args: argparse.Namespace) -> int:
    from lifelong.unlearn.run import unlearn_run

    doc = unlearn_run(args.run_dir, args.forget, args.method, dict(args.param or []), args.out, args.compare_to,
                      seed=args.seed, device=args.device, data_root=args.data_root,
                      importance_cache=args.importance_cache)
    print("\n".join(unlearn_table(doc)))
    print(f"lifelong: unlearned model and metrics in {args.out}")
    return 0
