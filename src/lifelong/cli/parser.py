"""The command line's grammar: every command's flags, their types and help, and the flags given
turned into settings (absent flags stay absent, so a config file's values survive). Usage
mistakes are one line and exit code 2."""
from __future__ import annotations

import argparse
from typing import Any


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters shown as escapes, so that a
    message quoting the user's input stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"lifelong: error: {one_line(message)} (see `{self.prog} --help`)\n")


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _number_or_auto(text: str) -> float | str:
    return "auto" if text == "auto" else _number(text)


def _param(text: str) -> tuple[str, Any]:
    from lifelong.config import parse_yaml

    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        parsed = parse_yaml(value) if value.strip() else value
    except Exception:  # anything YAML cannot read is kept as the string given
        parsed = value
    if isinstance(parsed, (dict, list)) or parsed is None:
        parsed = value
    return name.strip(), parsed


def _published(key: str) -> str:
    """The help's default for a setting the hyperparameter files give (one source: the config)."""
    from lifelong.config import LIBRARY_DEFAULTS

    value = LIBRARY_DEFAULTS.get(key, "the batch size")  # replay_batch_size: none of its own
    fallback = f"{value:g}" if isinstance(value, (int, float)) else value
    return (f"default: the method's published setting for the benchmark and buffer size (`lifelong list`), "
            f"else {fallback}")


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    """The flags of ``lifelong run`` (and ``compare``, ``sweep``), in the groups ``--help`` shows.
    Absent flags stay absent (``argparse.SUPPRESS``), so that a config file's values survive."""
    _run_flags(p.add_argument_group('the run', 'a config file, a resumed run, a dry run, your own components'))
    _method_flags(p.add_argument_group('method', 'the method and what it adds'))
    _training_flags(p.add_argument_group('training', 'the optimiser, the step and the device'))
    _stream_flags(p.add_argument_group('stream', 'the benchmark, its tasks and when they are evaluated'))
    _trained_on_flags(p.add_argument_group('what is trained on', 'examples left out or relabelled, tasks chosen, a starting model'))
    _output_flags(p.add_argument_group('output', 'the run folder, checkpoints and logs'))


def _run_flags(g: Any) -> None:
    s = argparse.SUPPRESS
    g.add_argument("--config", metavar="FILE", help="YAML file of settings; flags override it")
    g.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue an interrupted run from its newest good checkpoint")
    g.add_argument("--dry-run", action="store_true",
                   help="check the configuration, data and model, print the resolved configuration, train nothing")
    g.add_argument("--import", dest="imports", action="append", default=s, metavar="FILE_OR_MODULE",
                   help="Python file or module that registers your own terms or plug-ins (repeatable)")


def _method_flags(g: Any) -> None:
    from lifelong.config import RunConfig as C

    s = argparse.SUPPRESS
    g.add_argument("--method", default=s, help=f"method name (see `lifelong list`); default {C.method}")
    g.add_argument("--param", action="append", metavar="NAME=VALUE", type=_param,
                   help="a method parameter, e.g. --param alpha=0.5 (repeatable); default: the published setting "
                        "for the benchmark and buffer size, else the preset's (`lifelong list --method NAME`)")
    g.add_argument("--buffer-size", type=_integer, default=s, help=f"replay memory size; default {C.buffer_size}")
    g.add_argument("--refresh", nargs="?", const=True, default=s, metavar="FORM",
                   help="add refresh learning to the method: 'paper' or 'code' form (alone: the config file's "
                        "form, else paper); sets only the form, the file's other refresh settings are kept")
    g.add_argument("--refresh-param", action="append", metavar="NAME=VALUE", type=_param,
                   help="one refresh setting, over the file's, e.g. --refresh-param gamma=1e-4 (repeatable; "
                        "see the README)")
    g.add_argument("--view-batch", type=_integer, default=s, metavar="R",
                   help="add view-batch replay (Kang et al., CVPR 2025) to the method: R views of each example per "
                        "batch, re-augmented, with the view-kl self-distillation; more settings as `view_batch:` in "
                        "the config file (see the README)")
    g.add_argument("--error-memory", action="store_true", default=s,
                   help="evaluate with ReLoop2's error memory (Zhu et al., KDD 2023): the model's probabilities "
                        "compensated by its nearest recent errors; settings as `error_memory:` in the config file "
                        "(see the README)")


def _training_flags(g: Any) -> None:
    from lifelong.config import RunConfig as C

    s = argparse.SUPPRESS
    g.add_argument("--epochs", type=_integer, default=s, help=f"epochs per task; {_published('epochs')}")
    g.add_argument("--batch-size", type=_integer, default=s,
                   help=f"current-task batch size; {_published('batch_size')}")
    g.add_argument("--replay-batch-size", type=_integer, default=s,
                   help=f"examples replayed per step; {_published('replay_batch_size')}")
    g.add_argument("--optimizer", default=s, metavar="sgd|adadelta",
                   help=f"sgd or adadelta (torch's: rho 0.9, eps 1e-6; no momentum); {_published('optimizer')}")
    g.add_argument("--lr", type=_number, default=s, help=f"learning rate; {_published('lr')} (adadelta: 1)")
    g.add_argument("--momentum", type=_number, default=s, help=f"SGD momentum; {_published('momentum')}")
    g.add_argument("--weight-decay", type=_number, default=s,
                   help=f"weight decay (L2 added to the gradient); {_published('weight_decay')}")
    g.add_argument("--seed", type=_integer, default=s, help=f"the one seed of the run; default {C.seed}")
    g.add_argument("--precision", default=s, metavar="fp32|bf16|fp16",
                   help="the training step's precision: fp32 (default), bf16 (autocast) or fp16 (autocast and a "
                        "gradient scaler; GPU only)")
    g.add_argument("--deterministic", action="store_true", default=s,
                   help="PyTorch's deterministic algorithms (for bit-exact GPU runs; slower)")
    g.add_argument("--on-nan", choices=["stop", "skip"], default=s,
                   help="on a non-finite loss: stop (default; a checkpoint from before is kept) or skip the step")
    g.add_argument("--device", default=s, help="cpu, cuda or auto (default)")
    g.add_argument("--threads", type=_integer, default=s,
                   help="CPU threads for torch (default 1: at continual-learning batch sizes a second thread buys "
                        "nothing, and runs side by side do not fight over the cores)")


def _stream_flags(g: Any) -> None:
    from lifelong.config import RunConfig as C

    s = argparse.SUPPRESS
    g.add_argument("--benchmark", default=s, help=f"benchmark name (see `lifelong list`); default {C.benchmark}")
    g.add_argument("--num-tasks", type=_integer, default=s, help="number of tasks; default: the benchmark's")
    g.add_argument("--shuffle-classes", action="store_true", default=s,
                   help="shuffle the class order by seed (default: the literature's fixed order)")
    g.add_argument("--blurry-disjoint", type=_integer, default=s, metavar="N",
                   help="si-blurry-* benchmarks: percentage of classes that appear in one task only (default 50)")
    g.add_argument("--blurry-mix", type=_integer, default=s, metavar="M",
                   help="si-blurry-* benchmarks: percentage of the other classes' examples moved across tasks "
                        "(default 10)")
    g.add_argument("--blurry-variant", default=s, metavar="si|i",
                   help="si-blurry-* benchmarks: si (Si-Blurry: tasks of random sizes; default) or i (i-Blurry: "
                        "equal sizes)")
    g.add_argument("--task-free-width", type=_number, default=s, metavar="W",
                   help="task-free-* benchmarks: standard deviation of each class's Gaussian in the stream, as a "
                        "fraction of the distance between class centres (default: the reference's, 0.5 for 10 "
                        "classes, 5 for 100)")
    g.add_argument("--online", action="store_true", default=s,
                   help="the online protocol: one pass over each task's data, batch 10 and replay batch 10 unless "
                        "given (not the published offline settings), anytime evaluation every 1000 examples")
    g.add_argument("--eval-every", type=_integer, default=s, metavar="K",
                   help="anytime evaluation: accuracy on the classes seen so far every K training examples and at "
                        "each task end (default 1000 with --online and on si-blurry-*/task-free-* streams, else off)")
    g.add_argument("--backbone", default=s,
                   help="mlp, resnet18, reduced-resnet18 or a registered one; default: the benchmark's")
    g.add_argument("--data-root", default=s, help=f"folder of downloaded data sets; default {C.data_root}")
    g.add_argument("--download", action="store_true", default=s, help="fetch missing data sets (needs internet)")


def _trained_on_flags(g: Any) -> None:
    s = argparse.SUPPRESS
    g.add_argument("--forget", default=s, metavar="SPEC",
                   help="leave these training examples out of every task (the test set untouched): classes:3,7, "
                        "random:0.01 or indices:FILE; the retrain baseline of `lifelong unlearn`")
    g.add_argument("--init-from", default=s, metavar="RUN_DIR",
                   help="start from this finished run's model.pt instead of a fresh initialisation (fine-tuning; "
                        "for `lifelong edit` and `lifelong merge`)")
    g.add_argument("--train-tasks", default=s, metavar="LIST",
                   help="train on these tasks of the stream only, e.g. 2 or 1,3 (counted from 1); every task is "
                        "still evaluated")
    g.add_argument("--relabel", default=s, metavar="corrupt:F[:SEED]",
                   help="train with a corruption: round(F*N) training examples drawn from SEED (default: the run's "
                        "seed) carry wrong labels; with --init-from, the corrupted run of `lifelong unlearn "
                        "--forget corrupt:F`")


def _output_flags(g: Any) -> None:
    from lifelong.config import RunConfig as C

    s = argparse.SUPPRESS
    g.add_argument("--out", default=s, help="run folder; default runs/<benchmark>-<method>-<seed>-<time>")
    g.add_argument("--overwrite", action="store_true", default=s, help="reuse a non-empty run folder")
    g.add_argument("--checkpoint-every", type=_integer, default=s, metavar="N",
                   help="checkpoint every N steps as well as at every task end; 0: task ends only "
                        f"(default {C.checkpoint_every})")
    g.add_argument("--log", action="append", default=s, choices=["tensorboard", "wandb"],
                   help="also log to TensorBoard or Weights & Biases (JSON lines and CSV are always written)")
    g.add_argument("--log-every", type=_integer, default=s, metavar="N",
                   help=f"log the loss every N steps (default {C.log_every})")
    g.add_argument("--quiet", action="store_true",
                   help="no progress bars while a single run trains (--seeds and compare show none; their line "
                        "per finished run is printed all the same)")

def _add_edit_commands(sub: Any) -> None:
    """``lifelong edit lines`` and ``lifelong merge`` (:mod:`lifelong.edit.run`)."""
    edit = sub.add_parser("edit", help="edit a fine-tuned run's weights (LiNeS layer scaling) and measure it")
    kinds = edit.add_subparsers(dest="edit_command", metavar="EDIT", parser_class=_Parser)
    lines = kinds.add_parser("lines", help="LiNeS: scale the update of layer block l by alpha + beta*l/(L-1)")
    lines.add_argument("--base", required=True, metavar="RUN_OR_MODEL",
                       help="the run (or model.pt) the fine-tuned run started from (--init-from)")
    lines.add_argument("--finetuned", required=True, metavar="RUN_DIR", help="a finished run trained with --init-from")
    lines.add_argument("--alpha", required=True, type=_number_or_auto, metavar="A|auto",
                       help="alpha in [0, 1], or auto: chosen on validation by the reference's target/control "
                            "trade-off")
    lines.add_argument("--beta", type=_number, default=None, metavar="B",
                       help="depth scaling (default 1 - alpha, the reference's; 0: plain interpolation)")
    merge = sub.add_parser("merge", help="merge runs fine-tuned from one start (task arithmetic, TIES, LiNeS)")
    merge.add_argument("--base", default=None, metavar="RUN_OR_MODEL",
                       help="the run (or model.pt) every model started from (--init-from); not with rmm")
    merge.add_argument("--models", required=True, nargs="+", metavar="RUN_DIR",
                       help="finished runs trained with --init-from the base")
    merge.add_argument("--method", required=True, metavar="task-arithmetic|ties|rmm",
                       help="how to combine the updates (rmm: the adapters of lora runs, given as --models)")
    merge.add_argument("--lam", type=_number_or_auto, default=None, metavar="L|auto",
                       help="scale of the merged update (default 1; auto: chosen on validation; not with --lines)")
    merge.add_argument("--k", type=_number, default=20.0, metavar="K",
                       help="TIES: percentage of each update's entries kept (default %(default)s)")
    merge.add_argument("--lines", action="store_true",
                       help="LiNeS on the merged update: alpha from the L1 norms, --beta given")
    merge.add_argument("--beta", type=_number_or_auto, default=None, metavar="B|auto",
                       help="LiNeS' depth scaling (with --lines; auto: chosen on validation)")
    merge.add_argument("--basis", type=int, default=None, metavar="K",
                       help="rmm: the basis size written (1..number of adapters; every size is measured)")
    merge.add_argument("--basis-per", default="position", metavar="position|layer",
                       help="rmm: one basis per position of the factors (default) or per layer")
    merge.add_argument("--alpha", type=_number, default=None, metavar="A",
                       help="rmm: scale of the plain merges it is compared with, in [0, 1] (default 1/n, the mean)")
    for p in (lines, merge):
        p.add_argument("--grid", type=_number, nargs="+", default=None, metavar="V",
                       help="with auto: the values tried (default: the reference's, e.g. alpha 0, 0.1, ..., 1)")
        p.add_argument("--validation-fraction", type=_number, default=None, metavar="F",
                       help="with auto: the seeded share of each task's test examples that chooses, in (0, 1) "
                            "(default 0.5); the rest is reported")
        p.add_argument("--out", required=True, metavar="DIR", help="new folder for model.pt, metrics.json, config.yaml")
        p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
        p.add_argument("--data-root", default=None, help="the data folder, if not the runs'")


def build_parser() -> argparse.ArgumentParser:
    from lifelong import __version__
    from lifelong.config import RunConfig

    parser = _Parser(prog="lifelong", description="Continual learning with PyTorch.")
    parser.add_argument("--version", action="version", version=f"lifelong {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = sub.add_parser("run", help="train a method on a benchmark and write a run folder")
    _add_run_flags(run)
    run.add_argument("--seeds", default=None, help="several seeds, e.g. 0-4: one run folder each, then mean ± std")
    run.add_argument("--jobs", type=_integer, default=None,
                     help="with --seeds: runs in parallel processes (default: CPUs // --threads, at most one per run)")
    compare = sub.add_parser("compare", help="a method with and without refresh learning over several seeds")
    _add_run_flags(compare)
    compare.add_argument("--seeds", default="0-4", help="seeds, e.g. 0-4 or 0,1,2 (default %(default)s)")
    compare.add_argument("--jobs", type=_integer, default=None,
                         help="runs in parallel processes (default: CPUs // --threads, at most one per run)")
    sweep = sub.add_parser("sweep", help="a grid of runs from a sweep file, then a summary table")
    sweep.add_argument("file", metavar="SWEEP.yaml", help="base settings, a grid of values, seeds (see the README)")
    sweep.add_argument("--jobs", type=_integer, default=None,
                       help="runs in parallel processes (default: CPUs // --threads, at most one per run)")
    sweep.add_argument("--out", default=None, help="folder of the sweep's runs (default: the file's `out:`)")
    sweep.add_argument("--quiet", action="store_true", help="no line per finished run")
    sweep.add_argument("--dry-run", action="store_true",
                       help="check every run's configuration, data and model and say what would happen to its "
                            "folder; train nothing, write nothing")
    report = sub.add_parser("report", help="an HTML page and PNG figures of finished runs")
    report.add_argument("runs", nargs="+", metavar="RUN_DIR",
                        help="run folders, or folders holding run folders (e.g. a sweep's or compare's)")
    report.add_argument("--out", default="report", help="folder for report.html and the figures (default ./report)")
    unlearn = sub.add_parser("unlearn", help="remove a forget set from a finished run's model, and measure it")
    unlearn.add_argument("run_dir", metavar="RUN_DIR", help="a finished run folder (config.yaml, model.pt)")
    unlearn.add_argument("--forget", required=True, metavar="SPEC",
                         help="the training examples to forget: classes:3,7, random:0.01 (drawn from the run's seed) "
                              "or indices:FILE")
    unlearn.add_argument("--method", required=True, metavar="NAME",
                         help="ssd, lfssd, finetune, gradient-ascent, random-labels or refresh (`lifelong list`)")
    unlearn.add_argument("--param", action="append", metavar="NAME=VALUE", type=_param,
                         help="a parameter of the method, e.g. --param alpha=2 (repeatable)")
    unlearn.add_argument("--out", required=True, metavar="DIR",
                         help="new folder for model.pt, metrics.json and config.yaml")
    unlearn.add_argument("--compare-to", default=None, metavar="RETRAIN_DIR",
                         help="a finished run trained with --forget the same set: agreement and KL with its model")
    unlearn.add_argument("--seed", type=_integer, default=None,
                         help="the seed of a method that draws (default: the run's)")
    unlearn.add_argument("--importance-cache", action="store_true",
                         help="ssd, lfssd: keep the full-set importance I_D in the run folder (computed once, over "
                              "the training set in its own order) and reuse it: later requests pay the forget set's "
                              "pass only")
    unlearn.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    unlearn.add_argument("--data-root", default=None, help="the data folder, if not the run's")
    _add_edit_commands(sub)
    from lifelong.cli.lm import add_lm_commands
    add_lm_commands(sub, _Parser, _integer, _number)
    listing = sub.add_parser("list", help="list the benchmarks and methods")
    listing.add_argument("--method", default=None, metavar="NAME",
                         help="one preset in full: its recipe, parameters and published settings")
    listing.add_argument("--benchmark", default=RunConfig.benchmark, metavar="NAME",
                         help=f"show the settings runs use on this benchmark (default {RunConfig.benchmark})")
    listing.add_argument("--buffer-size", type=_integer, default=RunConfig.buffer_size, metavar="N",
                         help=f"... and with this buffer size (default {RunConfig.buffer_size})")
    listing.add_argument("--import", dest="imports", action="append", default=[], metavar="FILE_OR_MODULE",
                         help="your Python file or module that registers benchmarks, backbones, memories, terms or "
                              "plug-ins: they are listed too (repeatable)")
    return parser


def flags_of(args: argparse.Namespace) -> tuple[dict, dict]:
    """The flags given (absent ones stay absent) and the config file's values."""
    from lifelong.config import load_yaml, merge_refresh

    flags = {k: v for k, v in vars(args).items()
             if k not in ("command", "config", "quiet", "param", "refresh_param", "seeds", "jobs", "resume",
                          "dry_run")}
    if args.param:
        flags["params"] = dict(args.param)
    file_values = load_yaml(args.config) if args.config else {}
    if "refresh" in flags or args.refresh_param:  # key by key over the file's `refresh:`
        flags["refresh"] = merge_refresh(file_values.get("refresh"), flags.get("refresh"),
                                         dict(args.refresh_param or []))
    if flags.get("error_memory") is True and isinstance(file_values.get("error_memory"), dict):  # keep its settings
        flags["error_memory"] = file_values["error_memory"]
    if "view_batch" in flags and isinstance(file_values.get("view_batch"), dict):  # only the number of views
        flags["view_batch"] = {**file_values["view_batch"], "repeats": flags["view_batch"]}
    return flags, file_values
