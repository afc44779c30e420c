"""Models: what is available offline, and preparing one (GGUF conversion) with progress."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, ProgressBar, Static

from engine.errors import TunedeckError


class ModelsScreen(Screen[None]):
    """Lists models (embedded, converted, hub cache); `p` prepares the highlighted one."""

    BINDINGS = [
        Binding("p", "prepare", "Prepare model"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    @dataclass
    class ProgressChanged(Message):
        """A stage of a model's preparation; only the latest one matters."""

        stage: str
        fraction: float

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, ModelsScreen.ProgressChanged)

    @dataclass
    class Prepared(Message):
        """The model is ready to load from `path`."""

        name: str
        path: Path

    @dataclass
    class PrepareFailed(Message):
        """Preparing the model failed; `text` says why."""

        name: str
        text: str

    def __init__(self, selected: str) -> None:
        super().__init__()
        self.selected = selected
        self.preparing = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Models available without network", id="models-title")
        yield DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="models-status")
        yield ProgressBar(id="models-progress", total=1.0, show_eta=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("model", "kind", "status", "location")
        self.query_one(ProgressBar).display = False
        self.refresh_models()
        table.focus()

    def refresh_models(self) -> None:
        """Re-read the model list (cheap: no torch) and keep the selection."""
        table = self.query_one(DataTable)
        table.clear()
        for info in self.app.backend.list_models():  # type: ignore[attr-defined]
            marker = " ★" if info.name == self.selected else ""
            table.add_row(info.name + marker, info.kind, info.status, info.location, key=info.name)

    def action_prepare(self) -> None:
        if self.preparing:
            self.notify("A model is already being prepared.", severity="warning")
            return
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return
        name = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        self.preparing = True
        bar = self.query_one(ProgressBar)
        bar.display = True
        bar.update(progress=0.0)
        self.query_one("#models-status", Static).update(f"Preparing {name} …")
        self.prepare(name)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def prepare(self, name: str) -> None:
        """Convert / resolve in a child process; progress comes back as messages."""
        backend = self.app.backend  # type: ignore[attr-defined]
        try:
            path = backend.prepare_model(
                name, lambda stage, f: self.post_message(self.ProgressChanged(stage, f))
            )
        except TunedeckError as exc:
            self.post_message(self.PrepareFailed(name, str(exc)))
        else:
            self.post_message(self.Prepared(name, path))

    @on(ProgressChanged)
    def show_progress(self, message: ProgressChanged) -> None:
        self.query_one(ProgressBar).update(progress=message.fraction)
        self.query_one("#models-status", Static).update(message.stage)

    @on(Prepared)
    def show_prepared(self, message: Prepared) -> None:
        self.preparing = False
        self.query_one(ProgressBar).update(progress=1.0)
        self.query_one("#models-status", Static).update(f"{message.name} ready at {message.path}")
        self.refresh_models()

    @on(PrepareFailed)
    def show_failed(self, message: PrepareFailed) -> None:
        self.preparing = False
        self.query_one(ProgressBar).display = False
        status = self.query_one("#models-status", Static)
        status.update(f"Could not prepare {message.name}: {message.text}")
        status.add_class("-error")
