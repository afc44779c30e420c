"""The tunedeck Textual app: orchestrates the wizard's screens, nothing more.

The app is handed a Backend (the engine facade) so tests can inject a fake.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.binding import Binding

from engine.paths import sample_data_dir
from tui.backend import Backend
from tui.paths import stylesheet
from tui.screens.data import DataScreen
from tui.screens.models import ModelsScreen

DEFAULT_SAMPLE = "support_tickets.jsonl"


class TunedeckApp(App[None]):
    """Fine-tuning wizard: data first; models one key away."""

    TITLE = "tunedeck"
    CSS_PATH = [stylesheet("app"), stylesheet("data"), stylesheet("models")]
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("d", "show_data", "Data"),
        Binding("m", "show_models", "Models"),
    ]

    def __init__(self, backend: Backend, data_path: Path, model: str) -> None:
        super().__init__()
        self.backend = backend
        self.data_path = data_path
        self.model = model

    def on_mount(self) -> None:
        self.sub_title = f"model: {self.model}"
        self.push_screen(DataScreen(self.data_path))

    def action_show_data(self) -> None:
        if not isinstance(self.screen, DataScreen):
            self.pop_screen()

    def action_show_models(self) -> None:
        if not isinstance(self.screen, ModelsScreen):
            self.push_screen(ModelsScreen(selected=self.model))


def run_app(data: str | None = None, model: str | None = None) -> int:
    """Open the wizard (blocking) and return the exit code."""
    backend = Backend()
    data_path = Path(data) if data else sample_data_dir() / DEFAULT_SAMPLE
    TunedeckApp(backend, data_path, model or backend.default_model).run()
    return 0
