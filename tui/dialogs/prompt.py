"""Ask for one value (a file path, usually) in a modal; Enter accepts, Escape cancels."""

from __future__ import annotations

from collections.abc import Iterable

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from tui.widgets.path_input import PathInput


class PromptDialog(ModalScreen[str | None]):
    """Dismisses with the entered text, or None when cancelled.

    BINDINGS: enter accepts, escape cancels; → completes a path.
    """

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(
        self, title: str, label: str, value: str = "", *, suffixes: Iterable[str] = ()
    ) -> None:
        super().__init__()
        self.title_text = title
        self.label = label
        self.value = value
        self.suffixes = tuple(suffixes)

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-box", classes="dialog") as box:
            box.border_title = self.title_text
            yield Static(self.label, id="prompt-label", markup=False)
            yield PathInput(self.value, suffixes=self.suffixes, id="prompt-input")
            yield Static("enter: OK   escape: cancel   →: complete", id="prompt-keys")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def accept(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)
