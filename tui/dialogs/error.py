"""A modal that shows an engine error as its message and hint, never as a traceback."""

from __future__ import annotations

import traceback

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from engine.core.errors import TunedeckError
from engine.core.paths import tunedeck_home

ERROR_LOG = "tui-errors.log"
"""Under $TUNEDECK_HOME: tracebacks of unexpected errors (bugs), never shown on screen."""


def describe(error: BaseException) -> tuple[str, str]:
    """(message, hint) of an exception as a user should read it.

    An unexpected exception (a bug) is logged with its traceback, and the hint says where.
    """
    if isinstance(error, TunedeckError):
        return error.message, error.hint
    if isinstance(error, OSError):
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror or error}{where}", "check the path and its permissions"
    log = tunedeck_home() / ERROR_LOG
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as handle:
            handle.write("".join(traceback.format_exception(error)))
        where = f"the traceback is in {log}"
    except OSError:
        where = "its traceback could not be written"
    return (
        f"unexpected error: {type(error).__name__}: {error}",
        f"this is a bug in tunedeck; {where}",
    )


class ErrorDialog(ModalScreen[None]):
    """Shows what went wrong and what to do; Enter or Escape closes it.

    BINDINGS: escape / enter close the dialog.
    """

    BINDINGS = [Binding("escape,enter", "dismiss", "Close", show=True)]

    def __init__(self, message: str, hint: str = "", title: str = "Something went wrong") -> None:
        super().__init__()
        self.message = message
        self.hint = hint
        self.title_text = title

    @classmethod
    def of(cls, error: BaseException, title: str = "Something went wrong") -> ErrorDialog:
        """The dialog for an exception (TunedeckError: its message and hint)."""
        message, hint = describe(error)
        return cls(message, hint, title)

    def compose(self) -> ComposeResult:
        with Vertical(id="error-box", classes="dialog") as box:
            box.border_title = self.title_text
            yield Static(self.message, id="error-message", markup=False)
            if self.hint:
                yield Static(f"hint: {self.hint}", id="error-hint", markup=False)
            yield Button("OK", id="error-ok", variant="error")

    def on_mount(self) -> None:
        self.query_one(Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)
