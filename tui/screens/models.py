"""Models: what is available offline, and preparing one (GGUF conversion) with progress."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, ProgressBar, Static

from engine.core.errors import TunedeckError
from engine.model.resolve import ModelInfo
from tui.backend import ModelsBackend
from tui.paths import stylesheet
from tui.screens.base import WizardScreen


class ModelsScreen(WizardScreen):
    """Lists models (embedded, converted, hub cache); `p` prepares the highlighted one.

    BINDINGS:
        enter: use the highlighted model for the run (step 3 shows it)
        p: prepare (convert) the highlighted model now, with progress
        escape: back to the wizard step you came from
    """

    MODE = "models"
    CSS_PATH = stylesheet("models")
    BINDINGS = [
        Binding("enter", "use", "Use model", priority=True),
        Binding("p", "prepare", "Prepare model"),
        Binding("escape", "app.back", "Back"),
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

    def __init__(self) -> None:
        super().__init__()
        self.preparing = False

    def compose_body(self) -> ComposeResult:
        yield Static("Models available without network (★: the run's model)", id="models-title")
        yield DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="models-status")
        yield ProgressBar(id="models-progress", total=1.0, show_eta=False)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("model", "kind", "status", "location")
        self.query_one(ProgressBar).display = False

    def sync(self) -> None:
        self.refresh_models()
        self.query_one(DataTable).focus()

    def refresh_models(self) -> None:
        """Re-read the model list (cheap: no torch, but files: a worker reads it)."""
        self.list_models()

    @work(thread=True, exclusive=True, group="list", exit_on_error=False)
    def list_models(self) -> None:
        models: ModelsBackend = self.backend
        self.app.call_from_thread(self._show_models, models.list_models())

    def _show_models(self, infos: list[ModelInfo]) -> None:
        """Fill the table, keeping the selection."""
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for info in infos:
            marker = " ★" if info.name == self.wizard.model else ""
            table.add_row(info.name + marker, info.kind, info.status, info.location, key=info.name)
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1), animate=False)

    def _highlighted(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def action_use(self) -> None:
        name = self._highlighted()
        if name is not None:
            self.tunedeck.use_model(name)
            self.refresh_models()
            self.notify(f"The run will use {name}.")

    def action_prepare(self) -> None:
        if self.preparing:
            self.notify("A model is already being prepared.", severity="warning")
            return
        name = self._highlighted()
        if name is None:
            return
        self.preparing = True
        bar = self.query_one(ProgressBar)
        bar.display = True
        bar.update(progress=0.0)
        self.query_one("#models-status", Static).update(f"Preparing {name} …")
        self.prepare(name)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def prepare(self, name: str) -> None:
        """Convert / resolve in a child process; progress comes back as messages."""
        models: ModelsBackend = self.backend
        try:
            path = models.prepare_model(
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
