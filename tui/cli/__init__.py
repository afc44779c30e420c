"""The `tunedeck` command line (argparse): the wizard with no subcommand, its scriptable
twin otherwise. `main` is the console script; `python -m tui.cli` runs it too.

One module per command group, each with `register(subparsers)` and handlers that return
the exit code (`COMMANDS` maps each subcommand to its module):

- `lint`, `split`: check a dataset, split it;
- `runs`: `train`, `runs`, `attach`, `stop`, `pause`, `resume`;
- `history`: `compare`, `delete`;
- `evaluate`: `eval`; `export`: `export`; `models`: `models`;
- `loop`: `review`, `data add`, `data fix` (the next run's data from a review).

The engine work sits behind function-level imports, so `tunedeck lint` never pays for
Textual and `tunedeck` (the wizard) never pays for torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from engine import __version__
from engine.core.errors import TunedeckError

# Subcommand name -> module of this package that implements it.
COMMANDS: dict[str, str] = {
    "lint": "lint",
    "split": "split",
    "train": "runs",
    "runs": "runs",
    "attach": "runs",
    "stop": "runs",
    "pause": "runs",
    "resume": "runs",
    "compare": "history",
    "delete": "history",
    "eval": "evaluate",
    "export": "export",
    "models": "models",
    "review": "loop",
    "data": "loop",
}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, every subcommand registered with its help text."""
    parser = argparse.ArgumentParser(
        prog="tunedeck",
        description=(
            "Fine-tune a language model with LoRA / QLoRA from the terminal: lint the data, "
            "split it, pick hyperparameters, train as a detached job, compare against the "
            "base model, export. With no subcommand, opens the wizard."
        ),
    )
    parser.add_argument("--version", action="version", version=f"tunedeck {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument(
        "--data", metavar="PATH",
        help="wizard: dataset to open first (a file, or a Hugging Face Hub dataset "
        "ORG/NAME[:CONFIG][@REVISION][[SPLIT]])",
    )  # fmt: skip
    parser.add_argument(
        "--model", metavar="MODEL", default=None, help="wizard: model to start from"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in dict.fromkeys(COMMANDS.values()):
        _command_module(module_name).register(subparsers)
    return parser


def _command_module(name: str):
    return importlib.import_module(f"tui.cli.{name}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command is None:
            from tui.app import run_app

            return run_app(data=args.data, model=args.model)
        return int(args.handler(args))
    except TunedeckError as exc:
        if args.debug:
            raise
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `tunedeck lint big.jsonl | head`: the reader left; that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
