"""Runs: every run with its state and progress; Enter attaches the Train screen to one.

The list refreshes itself every few seconds (reading status.json files is cheap), so a run
started from the CLI or another terminal shows up by itself, and a run that completes or
fails meanwhile is announced (tui.notify). Space marks runs for the Compare screen; d
deletes a finished run after asking.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static

from engine.core.errors import TunedeckError
from engine.core.events import ACTIVE_STATES
from engine.runs.admin import Deletion
from engine.runs.store import RunInfo
from tui.backend import RunsBackend
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.error import ErrorDialog
from tui.paths import display_path, stylesheet
from tui.screens.base import WizardScreen
from tui.screens.compare import CompareScreen

REFRESH_S = 2.0
COLUMNS = ("✓", "run", "name", "state", "progress", "best val", "model")
MARK = "✓"


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
        space: mark / unmark the highlighted run for comparison
        c: compare the marked runs (two or more), oldest first: A is the earliest run and
           each later one is set against it
        d / delete: delete the highlighted run (asks first; refused while it trains)
        escape: back to the wizard step you came from
    """

    MODE = "runs"
    CSS_PATH = stylesheet("runs")
    BINDINGS = [
        Binding("enter", "attach", "Attach", priority=True),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        # Out of the footer (it would overflow 100 columns); `?` and the README list it.
        Binding("d,delete", "delete", "Delete", key_display="d", show=False),
        Binding("escape", "app.back", "Back"),
    ]

    @dataclass
    class Listed(Message):
        """The current list of runs; only the latest matters."""

        runs: list[RunInfo]

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, RunsScreen.Listed)

    @dataclass
    class DeleteChecked(Message):
        """The highlighted run may be deleted: ask the user."""

        deletion: Deletion

    @dataclass
    class Deleted(Message):
        """A run's directory is gone."""

        deletion: Deletion

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunInfo] = []
        self.highlight_id: str | None = None
        self.labels: dict[str, tuple[str, str]] = {}
        """Run id -> (run name, model) from its frozen config, read once."""
        self.marked: list[str] = []
        """Ids of the runs marked for comparison, in the order they were marked."""
        self.states: dict[str, str] | None = None
        """Run id -> state at the previous listing (None before the first one)."""

    def compose_body(self) -> ComposeResult:
        yield Static("", id="runs-notice")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="runs-empty")
        yield Static("", id="runs-marks")

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
        backend: RunsBackend = self.backend
        runs = backend.list_runs()
        for info in runs:
            if info.id not in self.labels:
                self.labels[info.id] = self._label(backend, info)
        active = [r for r in runs if r.state in ACTIVE_STATES]
        self.post_message(self.Listed(active + [r for r in runs if r not in active]))

    @on(Listed)
    def show_runs(self, message: Listed) -> None:
        self._announce(message.runs)
        table = self.query_one(DataTable)
        selected = self._selected_id() or self.highlight_id
        self.runs = message.runs
        ids = [info.id for info in self.runs]
        self.marked = [run_id for run_id in self.marked if run_id in ids]
        rows = [self._row(info) for info in message.runs]
        # Columns sized here from all rows: fixed widths render right on the first frame.
        table.clear(columns=True)
        for index, title in enumerate(COLUMNS):
            table.add_column(title, width=max(len(title), *(len(r[index]) for r in rows)))
        for info, row in zip(message.runs, rows, strict=True):
            table.add_row(*row, key=info.id)
        empty = self.query_one("#runs-empty", Static)
        empty.update("" if self.runs else "No runs yet: the wizard's Train step starts one.")
        if selected in ids:
            table.move_cursor(row=ids.index(selected), animate=False)
            self.highlight_id = None
        self._show_marks()

    def _announce(self, runs: list[RunInfo]) -> None:
        """Notify about runs that completed or failed since the previous listing."""
        if self.states is not None:
            for info in runs:
                self.tunedeck.notifier.watch(self.app, info, self.states.get(info.id), [])
        self.states = {info.id: info.state for info in runs}

    def _row(self, info: RunInfo) -> tuple[str, ...]:
        mark = MARK if info.id in self.marked else ""
        return (mark, *_row(info, *self.labels.get(info.id, ("", ""))))

    def _show_marks(self) -> None:
        count = len(self.marked)
        text = f"{count} run{'s' if count != 1 else ''} marked for comparison"
        text += ": c compares them" if count >= 2 else ": mark another with space"
        widget = self.query_one("#runs-marks", Static)
        widget.display = count > 0
        widget.update(text)

    def _selected_id(self) -> str | None:
        table = self.query_one(DataTable)
        if not self.runs or table.cursor_row >= len(self.runs):
            return None
        return self.runs[table.cursor_row].id

    def _label(self, backend: RunsBackend, info: RunInfo) -> tuple[str, str]:
        """The run's name and model, from its config (a worker's: it reads the file)."""
        try:
            cfg = backend.run_config(info.dir)
        except TunedeckError:
            return "", "?"
        return cfg.run_name or "", display_path(cfg.model) if "/" in cfg.model else cfg.model

    def highlight(self, run_id: str) -> None:
        """Put the cursor on `run_id` once the list shows it."""
        self.highlight_id = run_id

    def _selected(self) -> RunInfo | None:
        run_id = self._selected_id()
        return next((r for r in self.runs if r.id == run_id), None)

    def action_attach(self) -> None:
        info = self._selected()
        if info is not None:
            self.tunedeck.offer_runs = False
            self.tunedeck.attach(info.dir)

    # -- marking and comparing -------------------------------------------------------------

    def action_mark(self) -> None:
        info = self._selected()
        if info is None:
            return
        if info.id in self.marked:
            self.marked.remove(info.id)
        else:
            self.marked.append(info.id)
        table = self.query_one(DataTable)
        table.update_cell(info.id, table.ordered_columns[0].key, self._row(info)[0])
        self._show_marks()

    def action_compare(self) -> None:
        infos = {info.id: info for info in self.runs}
        marked = [infos[run_id] for run_id in self.marked if run_id in infos]
        # oldest first, whatever the marking order: the later runs are set against A. Run ids
        # sort by creation time (engine.runs.store.new_run_id); `created` moves with each
        # event a run writes, an evaluation's included.
        chosen = [info.dir for info in sorted(marked, key=lambda info: info.id)]
        if len(chosen) < 2:
            self.notify("Mark two or more runs with space first.", severity="warning")
            return
        self.app.push_screen(CompareScreen(chosen))

    # -- deleting ----------------------------------------------------------------------------

    def action_delete(self) -> None:
        info = self._selected()
        if info is not None:
            self.check_delete(info)

    @work(thread=True, exclusive=True, group="delete", exit_on_error=False)
    def check_delete(self, info: RunInfo) -> None:
        """Ask the engine first: a training run is refused before any question."""
        backend: RunsBackend = self.backend
        try:
            deletion = backend.check_deletable(info.dir)
        except TunedeckError as exc:
            self.app.call_from_thread(self._refused, exc)
            return
        self.post_message(self.DeleteChecked(deletion))

    def _refused(self, exc: TunedeckError) -> None:
        self.app.push_screen(ErrorDialog.of(exc, "Cannot delete the run"))

    @on(DeleteChecked)
    def confirm_delete(self, message: DeleteChecked) -> None:
        info = message.deletion.info
        self.app.push_screen(
            ConfirmDialog(
                "Delete the run?",
                f"Run {info.id} ({info.state}) and all its files go: checkpoints, adapter, "
                f"evaluation and logs, {_size(message.deletion.size)}. This cannot be undone.",
                "Delete",
                "Keep it",
                danger=True,
            ),
            lambda yes: self._deleting(info) if yes else None,
        )

    def _deleting(self, info: RunInfo) -> None:
        # Muted first: a viewer that reads the vanished directory meanwhile sees no status,
        # which is no failure to announce.
        self.tunedeck.notifier.mute(info.id)
        self.delete(info)

    @work(thread=True, exclusive=True, group="delete", exit_on_error=False)
    def delete(self, info: RunInfo) -> None:
        """Remove the run's directory (the engine checks again, under the run's lock)."""
        backend: RunsBackend = self.backend
        try:
            deletion = backend.delete_run(info.dir)
        except TunedeckError as exc:
            self.tunedeck.notifier.mute(info.id, muted=False)
            self.app.call_from_thread(self._refused, exc)
            return
        self.post_message(self.Deleted(deletion))

    @on(Deleted)
    def deleted(self, message: Deleted) -> None:
        run_id = message.deletion.info.id
        if run_id in self.marked:
            self.marked.remove(run_id)
        if self.wizard.run_dir == message.deletion.info.dir:
            self.wizard.run_dir = None  # the Train screen must not follow a deleted run
        self.notify(f"Run {run_id} deleted ({_size(message.deletion.size)} freed).")
        self.list_runs()


def _row(info: RunInfo, name: str, model: str) -> tuple[str, ...]:
    status = info.status
    best = f"{status.best_val_loss:.4f}" if status and status.best_val_loss is not None else "-"
    return (info.id, name, info.state, progress_text(info), best, model)


def _size(n: int) -> str:
    if n >= 2**30:
        return f"{n / 2**30:.1f} GB"
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"
