"""A yes/no question as a modal: y / n, Enter on the focused button, Escape for no."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmDialog(ModalScreen[bool]):
    """Dismisses with True (yes) or False (no).

    BINDINGS: y yes, n / escape no; Tab moves between the buttons.
    """

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(
        self,
        title: str,
        message: str,
        yes: str = "Yes",
        no: str = "No",
        *,
        danger: bool = False,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.yes = yes
        self.no = no
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="dialog") as box:
            box.border_title = self.title_text
            yield Static(self.message, id="confirm-message", markup=False)
            with Horizontal(id="confirm-buttons"):
                variant = "error" if self.danger else "primary"
                yield Button(f"{self.yes} (y)", id="confirm-yes", variant=variant)
                yield Button(f"{self.no} (n)", id="confirm-no")

    def on_mount(self) -> None:
        # A dangerous action is not the default: Enter on the focused "no" is harmless.
        self.query_one("#confirm-no" if self.danger else "#confirm-yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
