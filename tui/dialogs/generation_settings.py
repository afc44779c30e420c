"""Edit the playground's generation settings: max new tokens, temperature, top_p, seed."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from engine.core.errors import TunedeckError
from engine.model.generation import Sampling
from tui.paths import stylesheet

FIELDS: tuple[tuple[str, str, str], ...] = (
    ("max_new_tokens", "max new tokens", "integer"),
    ("temperature", "temperature (0: greedy)", "number"),
    ("top_p", "top_p", "number"),
    ("seed", "seed (empty: random)", "integer"),
)
"""(setting, label, Input type) in the order shown."""


class GenerationSettingsDialog(ModalScreen[Sampling | None]):
    """Dismisses with the new Sampling, or None when cancelled.

    BINDINGS: enter (in any field) applies, escape cancels.
    """

    CSS_PATH = stylesheet("playground")
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, settings: Sampling) -> None:
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        with Vertical(id="settings-box", classes="dialog") as box:
            box.border_title = "Generation settings"
            with Grid(id="settings-grid"):
                for name, label, kind in FIELDS:
                    value = getattr(self.settings, name)
                    yield Label(label)
                    yield Input(
                        "" if value is None else f"{value:g}" if kind == "number" else str(value),
                        type=kind,
                        id=f"setting-{name}",
                    )
            yield Static("", id="settings-error", classes="-error", markup=False)
            yield Static("enter: apply   escape: cancel", id="settings-keys")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def apply(self, event: Input.Submitted) -> None:
        event.stop()
        values = {
            name: self.query_one(f"#setting-{name}", Input).value.strip() for name, *_ in FIELDS
        }
        try:
            settings = Sampling(
                max_new_tokens=int(values["max_new_tokens"] or 0),
                temperature=float(values["temperature"] or 0),
                top_p=float(values["top_p"] or 0),
                seed=int(values["seed"]) if values["seed"] else None,
            )
        except ValueError as exc:  # Input's own type check lets "-" and "1e" through
            self.query_one("#settings-error", Static).update(f"not a number: {exc}")
        except TunedeckError as exc:
            self.query_one("#settings-error", Static).update(exc.message)
        else:
            self.dismiss(settings)
