"""Handlers for subcommands whose engine part is still to be built: they fail honestly."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from engine.errors import TunedeckError


class NotImplementedYet(TunedeckError):
    """A registered subcommand whose implementation has not landed yet."""

    exit_code = 3


def not_implemented(command: str, issue: int) -> Callable[[argparse.Namespace], int]:
    """A handler that refuses with exit code 3 instead of pretending to succeed."""

    def handler(args: argparse.Namespace) -> int:
        raise NotImplementedYet(
            f"`tunedeck {command}` is not implemented yet",
            hint=f"it is planned in issue {issue}; nothing was started or changed",
        )

    return handler
