"""`tunedeck export RUN`: write the adapter (or a merged model) and a reproducibility bundle."""

from __future__ import annotations

import argparse

from tui.commands.pending import not_implemented


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `export` to the CLI."""
    parser = subparsers.add_parser(
        "export",
        help="export a run's best adapter (or a merged model) with a model card and report",
        description=(
            "Write the run's best adapter as a PEFT directory, or with --merged a full "
            "model with the adapter merged in, plus config, data hash and a run report."
        ),
    )
    parser.add_argument("run", metavar="RUN", help="run id (or a unique prefix of it)")
    parser.add_argument("--out", metavar="DIR", required=True, help="directory to write")
    parser.add_argument("--merged", action="store_true", help="merge the adapter into the base")
    parser.set_defaults(handler=not_implemented("export", 7))
