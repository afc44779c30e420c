"""`tunedeck eval RUN`: compare the fine-tuned adapter with the base model on held-out data."""

from __future__ import annotations

import argparse

from tui.commands.pending import not_implemented


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `eval` to the CLI."""
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a run: fine-tuned vs base model (zero- and few-shot) on validation data",
        description=(
            "Generate answers for the run's validation prompts with the base model "
            "(zero-shot and few-shot) and the fine-tuned adapter, and score them "
            "(exact match, token F1, ROUGE-L, JSON validity, label accuracy)."
        ),
    )
    parser.add_argument("run", metavar="RUN", help="run id (or a unique prefix of it)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=not_implemented("eval", 6))
