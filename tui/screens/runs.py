"""Runs: every run with its state and progress; Enter attaches the Train screen to one.

The list refreshes itself every few seconds (reading status.json files is cheap), so a run
started from the CLI or another terminal shows up by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static

from engine.errors import TunedeckError
from engine.events import ACTIVE_STATES
from engine.runs import RunInfo
from tui.paths import display_path, stylesheet
from tui.screens.base import WizardScreen

REFRESH_S = 2.0
COLUMNS = ("run", "name", "state", "progress", "best val", "model")


def progress_text(info: RunInfo) -> str:
    """'12/40  30 %', or the step alone when the plan is not known yet."""
    status = info.status
    if status is None:
        return "-"
    if not status.max_steps:
        return str(status.step)
    return f"{status.step}/{status.max_steps}  {status.step / status.max_steps:4.0%}"


class RunsScreen(WizardScreen):
    """All runs, active ones first, newest first within each group.

    BINDINGS:
        enter: attach the Train screen to the highlighted run (history, then live)
        escape: back to the wizard step you came from
    """

    MODE = "runs"
    CSS_PATH = stylesheet("runs")
    BINDINGS = [
        Binding("enter", "attach", "Attach", priority=True),
        Binding("escape", "app.back", "Back"),
    ]

    @dataclass
    class Listed(Message):
        """The current list of runs; only the latest matters."""

        runs: list[RunInfo]

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, RunsScreen.Listed)

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunInfo] = []
        self.highlight_id: str | None = None
        self.labels: dict[str, tuple[str, str]] = {}
        """Run id -> (run name, model) from its frozen config, read once."""

    def compose_body(self) -> ComposeResult:
        yield Static("", id="runs-notice")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="runs-empty")

    def on_mount(self) -> None:
        self.set_interval(REFRESH_S, self.list_runs)

    def sync(self) -> None:
        offer = self.tunedeck.offer_runs
        notice = self.query_one("#runs-notice", Static)
        notice.display = offer
        if offer:
            notice.update(
                "A run is still training. Enter attaches to the highlighted run; "
                "ctrl+n starts the wizard for a new one."
            )
        self.list_runs()
        self.query_one(DataTable).focus()

    @work(thread=True, exclusive=True, group="list", exit_on_error=False)
    def list_runs(self) -> None:
        """Read every run's status off the event loop."""
        runs = self.backend.list_runs()
        for info in runs:
            if info.id not in self.labels:
                self.labels[info.id] = self._label(info)
        active = [r for r in runs if r.state in ACTIVE_STATES]
        self.post_message(self.Listed(active + [r for r in runs if r not in active]))

    @on(Listed)
    def show_runs(self, message: Listed) -> None:
        table = self.query_one(DataTable)
        selected = self._selected_id() or self.highlight_id
        self.runs = message.runs
        rows = [_row(info, *self.labels.get(info.id, ("", ""))) for info in message.runs]
        # Columns sized here from all rows: fixed widths render right on the first frame.
        table.clear(columns=True)
        for index, title in enumerate(COLUMNS):
            table.add_column(title, width=max(len(title), *(len(r[index]) for r in rows)))
        for info, row in zip(message.runs, rows, strict=True):
            table.add_row(*row, key=info.id)
        empty = self.query_one("#runs-empty", Static)
        empty.update("" if self.runs else "No runs yet: the wizard's Train step starts one.")
        ids = [info.id for info in self.runs]
        if selected in ids:
            table.move_cursor(row=ids.index(selected), animate=False)
            self.highlight_id = None

    def _selected_id(self) -> str | None:
        table = self.query_one(DataTable)
        if not self.runs or table.cursor_row >= len(self.runs):
            return None
        return self.runs[table.cursor_row].id

    def _label(self, info: RunInfo) -> tuple[str, str]:
        try:
            cfg = self.backend.run_config(info.dir)
        except TunedeckError:
            return "", "?"
        return cfg.run_name or "", display_path(cfg.model) if "/" in cfg.model else cfg.model

    def highlight(self, run_id: str) -> None:
        """Put the cursor on `run_id` once the list shows it."""
        self.highlight_id = run_id

    def action_attach(self) -> None:
        run_id = self._selected_id()
        info = next((r for r in self.runs if r.id == run_id), None)
        if info is not None:
            self.tunedeck.offer_runs = False
            self.tunedeck.attach(info.dir)


def _row(info: RunInfo, name: str, model: str) -> tuple[str, ...]:
    status = info.status
    best = f"{status.best_val_loss:.4f}" if status and status.best_val_loss is not None else "-"
    return (info.id, name, info.state, progress_text(info), best, model)
