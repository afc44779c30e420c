"""Errors a user can hit, with a message they understand and a hint on what to do.

The CLI and the TUI print `message` and `hint`; a traceback is shown only with --debug.
"""

from __future__ import annotations


class TunedeckError(Exception):
    """An error caused by the user's input or environment, not by a bug in tunedeck."""

    exit_code = 2

    def __init__(self, message: str, hint: str = "", field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.field = field
        """The input the error is about (a config key, an option, a form field), if one."""

    def __str__(self) -> str:
        return f"{self.message}\nhint: {self.hint}" if self.hint else self.message


def is_out_of_memory(exc: BaseException) -> bool:
    """torch's (CUDA) out-of-memory error, recognised without importing torch."""
    return type(exc).__name__ == "OutOfMemoryError"


class ModelNotFoundError(TunedeckError):
    """A model name that is neither embedded, a local model directory, nor a cached hub id."""


class ModelLoadError(TunedeckError):
    """A model that was found but could not be converted or loaded."""
