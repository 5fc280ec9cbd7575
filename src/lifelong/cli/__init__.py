"""The ``lifelong`` command: the only package that parses arguments or prints. ``main`` sends
each command to its module (:mod:`~lifelong.cli.single`: run, list, report;
:mod:`~lifelong.cli.many`: ``--seeds``, compare, sweep; :mod:`~lifelong.cli.unlearn`; :mod:`~lifelong.cli.edit`: edit, merge; :mod:`~lifelong.cli.lm`: lm), whose functions turn flags into calls
of the library and print what comes back; the grammar is :mod:`~lifelong.cli.parser`."""
from __future__ import annotations

import os
import sys
import time
from typing import Sequence

from lifelong.cli.edit import edit_command, merge_command
from lifelong.cli.lm import lm_command
from lifelong.cli.many import compare_command, sweep_command
from lifelong.cli.parser import build_parser, one_line
from lifelong.cli.single import list_command, report_command, run_command
from lifelong.cli.unlearn import unlearn_command
from lifelong.errors import UserError

__all__ = ["main", "build_parser", "one_line"]

QUIET_RANK_DELAY = 2.0  # seconds a rank other than 0 waits before it exits on a refusal (see main)


def main(argv: Sequence[str] | None = None) -> int:
    started = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return run_command(args, started)
        if args.command == "list":
            return list_command(args)
        if args.command == "compare":
            return compare_command(args)
        if args.command == "report":
            return report_command(args)
        if args.command == "sweep":
            return sweep_command(args)
        if args.command == "unlearn":
            return unlearn_command(args)
        if args.command == "edit":
            return edit_command(args)
        if args.command == "merge":
            return merge_command(args)
        if args.command == "lm":
            return lm_command(args)
        parser.print_help()
        return 2
    except UserError as exc:
        from lifelong.distributed import speaks

        if speaks():  # under torchrun, rank 0 alone says it (every rank refuses alike) ...
            print(f"lifelong: error: {one_line(str(exc))}", file=sys.stderr)
        else:  # ... before torchrun, seeing another rank end, stops it
            time.sleep(QUIET_RANK_DELAY)
        return 2
    except KeyboardInterrupt:
        from lifelong.distributed import speaks

        if speaks():  # under torchrun every rank gets Ctrl-C: rank 0 alone says it
            print("\nlifelong: interrupted before training started; nothing was written as complete", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `lifelong list | head`: the reader went away; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
