"""`tunedeck train | runs | attach | stop | pause | resume`: start and control detached runs."""

from __future__ import annotations

import argparse

from tui.commands.pending import not_implemented

TRAINING_ISSUE = 4


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the run subcommands to the CLI."""
    train = subparsers.add_parser(
        "train",
        help="start a training run as a detached background job; prints the run id",
        description=(
            "Start a LoRA / QLoRA run from a config TOML (e.g. a previous run's config.toml) "
            "or from options. The run survives the terminal closing; follow it with "
            "`tunedeck attach RUN`."
        ),
    )
    train.add_argument("config", nargs="?", metavar="CONFIG", help="config TOML to run")
    train.add_argument("--data", metavar="PATH", help="training data (any supported format)")
    train.add_argument("--model", metavar="MODEL", help="model name, directory or hub id")
    train.set_defaults(handler=not_implemented("train", TRAINING_ISSUE))

    runs = subparsers.add_parser(
        "runs",
        help="list runs with their state, progress and best validation loss",
        description="List the runs under $TUNEDECK_HOME/runs, newest first.",
    )
    runs.add_argument("--json", action="store_true", help="print one JSON object per run")
    runs.set_defaults(handler=not_implemented("runs", TRAINING_ISSUE))

    for name, text in (
        ("attach", "follow a run's live progress and metrics (replays its history first)"),
        ("stop", "ask a run to stop after saving a checkpoint"),
        ("pause", "pause a run at the next step boundary, keeping its state"),
        ("resume", "resume a paused or interrupted run from its newest valid checkpoint"),
    ):
        sub = subparsers.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        sub.add_argument("run", metavar="RUN", help="run id (or a unique prefix of it)")
        sub.set_defaults(handler=not_implemented(name, TRAINING_ISSUE))
