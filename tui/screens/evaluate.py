"""Wizard step 5, Evaluate: base vs fine-tuned on the held-out examples, then review.

`e` starts a detached evaluation process (engine.evaluate.start_eval, all systems), so
quitting the TUI never stops it; a worker tails the run's events.jsonl for `eval_*`
events and shows progress, then the table loads. Stored results show at once. Reviewing
(marks, notes, blind A/B) saves each keystroke to the run's eval/ directory.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, ProgressBar, Static
from textual.worker import get_current_worker

from engine.review import (
    FILTERS,
    AbPair,
    AbStats,
    EvalRow,
    EvalTable,
    ab_pair,
    filter_rows,
    sort_rows,
)
from tui.dialogs.ab_review import AbReviewDialog
from tui.dialogs.eval_detail import EvalDetailDialog
from tui.dialogs.prompt import PromptDialog
from tui.paths import stylesheet
from tui.screens.base import WizardScreen
from tui.widgets.eval_summary import EvalSummary
from tui.widgets.eval_table import EvalTableView

POLL_S = 0.5
"""How often the follower reads new events: at most two redraws a second."""
START_GRACE_POLLS = 20
"""Polls without the evaluation's lock or any event before we call the process dead."""
SORTS = (("index", False), ("delta", False), ("primary", True), ("mark", False))
"""Sort keys `o` cycles through (delta ascending: the worst regressions first)."""
END_EVENTS = ("eval_done", "eval_failed", "eval_stopped")
REVIEW_ACTIONS = frozenset(("mark", "note", "cycle_filter", "search", "cycle_sort", "ab", "export"))


class EvaluateScreen(WizardScreen):
    """The eval table of the wizard's run, its summary, and the review keys.

    BINDINGS:
        e: evaluate (base zero-shot, few-shot, fine-tuned)    enter: the example in full
        g / b / s: mark good / bad / skip    n: note    f: filter    /: search    o: sort
        a: blind A/B    x: export the review as CSV
    """

    MODE = "evaluate"
    CSS_PATH = stylesheet("evaluate")
    BINDINGS = [
        Binding("e", "evaluate", "Evaluate"),
        Binding("g", "mark('good')", "Good"),
        Binding("b", "mark('bad')", "Bad"),
        Binding("s", "mark('skip')", "Skip"),
        Binding("n", "note", "Note"),
        Binding("f", "cycle_filter", "Filter"),
        Binding("slash", "search", "Search", key_display="/"),
        Binding("o", "cycle_sort", "Sort"),
        Binding("a", "ab", "A/B"),
        Binding("x", "export", "Export"),
    ]

    @dataclass
    class TableLoaded(Message):
        """The run's stored evaluation and review counts were read."""

        run_dir: Path
        table: EvalTable
        review: dict[str, Any]

    @dataclass
    class EvalRead(Message):
        """The latest eval events of the followed run (only the newest progress counts)."""

        run_dir: Path
        progress: dict[str, Any] | None
        notes: list[str]
        ended: dict[str, Any] | None

    @dataclass
    class ExportWritten(Message):
        """The review was exported to `path`."""

        path: Path

    def __init__(self) -> None:
        super().__init__()
        self.run_dir: Path | None = None
        self.table: EvalTable | None = None
        self.review: dict[str, Any] = {}
        self.filter_index = 0
        self.sort_index = 0
        self.search = ""
        self.evaluating = False

    def compose_body(self) -> ComposeResult:
        yield EvalSummary("", id="eval-summary", markup=False)
        yield Static("", id="eval-status", markup=False)
        yield ProgressBar(id="eval-progress", show_eta=False)
        yield EvalTableView(id="eval-table")

    def on_mount(self) -> None:
        self.query_one("#eval-progress").display = False

    def sync(self) -> None:
        run_dir = self.wizard.run_dir
        if run_dir is None:
            self._status("No run yet: train one first (ctrl+p), or open one from Runs (r).")
        elif run_dir != self.run_dir:
            self.run_dir = run_dir
            self.table = None
            self._status(f"Run {run_dir.name}: reading its evaluation…")
            self.load(run_dir)
            if self.backend.eval_running(run_dir):
                self._following(run_dir, offset=0)

    # -- loading and evaluating -------------------------------------------------------------

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self, run_dir: Path) -> None:
        """Read the stored rows, marks, judge verdicts and summary."""
        table = self.backend.load_eval_table(run_dir)
        review = self.backend.review_summary(run_dir, table.against)
        self.post_message(self.TableLoaded(run_dir, table, review))

    @on(TableLoaded)
    def table_loaded(self, message: TableLoaded) -> None:
        if message.run_dir != self.run_dir:
            return
        self.table, self.review = message.table, message.review
        self._show_summary()
        self._show_rows()
        self.tunedeck.set_step_done(self.MODE, bool(message.table.rows))
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Review keys show dimmed until there are rows to review."""
        if action in REVIEW_ACTIONS and (self.table is None or not self.table.rows):
            return None
        return True

    def action_evaluate(self) -> None:
        if self.run_dir is None:
            self.notify("No run to evaluate: train one first.", severity="warning")
        elif self.evaluating:
            self.notify("The evaluation is running already.", severity="warning")
        else:
            self.start_eval(self.run_dir)

    @work(thread=True, exclusive=True, group="start", exit_on_error=False)
    def start_eval(self, run_dir: Path) -> None:
        """Start the detached evaluation (engine errors go to the error dialog)."""
        _, offset = self.backend.read_events(run_dir, 0)
        self.backend.start_eval(run_dir)
        self.app.call_from_thread(self._following, run_dir, offset)

    def _following(self, run_dir: Path, offset: int) -> None:
        self.evaluating = True
        self.query_one("#eval-progress").display = True
        self._status("Evaluating: loading the model…")
        self.follow(run_dir, offset)

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def follow(self, run_dir: Path, offset: int) -> None:
        """Tail eval events from `offset` until the evaluation ends (or its process dies)."""
        worker = get_current_worker()
        quiet = 0
        while not worker.is_cancelled:
            events, offset = self.backend.read_events(run_dir, offset)
            evals = [e for e in events if str(e.get("type", "")).startswith("eval_")]
            progress = next((e for e in reversed(evals) if e["type"] == "eval_progress"), None)
            notes = [str(e.get("message", "")) for e in evals if e["type"] == "eval_note"]
            ended = next((e for e in reversed(evals) if e["type"] in END_EVENTS), None)
            if ended is None and not evals and not self.backend.eval_running(run_dir):
                quiet += 1
                if quiet >= START_GRACE_POLLS:
                    ended = {"type": "eval_failed", "error": "the evaluation process exited"}
            if progress or notes or ended:
                self.post_message(self.EvalRead(run_dir, progress, notes, ended))
            if ended:
                return
            time.sleep(POLL_S)

    @on(EvalRead)
    def eval_read(self, message: EvalRead) -> None:
        if message.run_dir != self.run_dir:
            return
        for note in message.notes:
            self.notify(note, title="Evaluation")
        if message.progress:
            self._show_progress(message.progress)
        if message.ended:
            self._ended(message.ended)

    def _show_progress(self, event: dict[str, Any]) -> None:
        done, total = int(event.get("done", 0)), int(event.get("total", 0)) or None
        self.query_one(ProgressBar).update(total=total, progress=done)
        system = event.get("system") or ""
        self._status(f"Evaluating: {event.get('phase', '')} {system} {done}/{total or '?'}")

    def _ended(self, event: dict[str, Any]) -> None:
        self.evaluating = False
        self.query_one("#eval-progress").display = False
        kind = event["type"]
        if kind == "eval_failed":
            hint = event.get("hint") or ""
            self.notify(f"{event.get('error', 'failed')}\n{hint}".strip(),
                        title="Evaluation failed", severity="error")  # fmt: skip
        elif kind == "eval_stopped":
            self.notify("Evaluation stopped; rows so far are kept (e resumes).")
        if self.run_dir is not None:
            self.load(self.run_dir)

    # -- the table -----------------------------------------------------------------------

    def _status(self, text: str) -> None:
        self.query_one("#eval-status", Static).update(text)

    def _show_summary(self) -> None:
        table = self.table
        if table is not None:
            summary = self.query_one(EvalSummary)
            summary.show(table.summary, table.systems, table.primary_name, self.review)

    def _show_rows(self) -> None:
        table = self.table
        if table is None:
            return
        view = self.query_one(EvalTableView)
        current = view.current
        kind = FILTERS[self.filter_index]
        key, descending = SORTS[self.sort_index]
        rows = sort_rows(filter_rows(table.rows, kind, self.search), key, descending=descending)
        view.show_rows(rows, keep=current.index if current else None)
        search = f" · search “{self.search}”" if self.search else ""
        if not table.rows:
            self._status(f"Run {table.run_dir.name} is not evaluated yet: e evaluates it.")
        elif not self.evaluating:
            self._status(
                f"{len(rows)} of {len(table.rows)} examples · filter {kind} · sort {key}"
                f"{search} · enter: full example"
            )

    def _replace_row(self, row: EvalRow) -> None:
        if self.table is not None:
            rows = [row if r.index == row.index else r for r in self.table.rows]
            self.table = replace(self.table, rows=rows)
            self._show_rows()

    def action_cycle_filter(self) -> None:
        self.filter_index = (self.filter_index + 1) % len(FILTERS)
        self._show_rows()

    def action_cycle_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self._show_rows()

    def action_search(self) -> None:
        def searched(text: str | None) -> None:
            self.search = text or ""  # escape / empty clears the search
            self._show_rows()

        prompt = PromptDialog("Search", "Text in the prompt, an answer or a note:", self.search)
        self.app.push_screen(prompt, searched)

    @on(DataTable.RowSelected)
    def open_detail(self, event: DataTable.RowSelected) -> None:
        row = self.query_one(EvalTableView).current
        if row is not None:
            self.app.push_screen(EvalDetailDialog(row))

    # -- review --------------------------------------------------------------------------

    def _current(self) -> EvalRow | None:
        row = self.query_one(EvalTableView).current
        if row is None or self.run_dir is None:
            self.notify("No example to review.", severity="warning")
            return None
        return row

    def action_mark(self, mark: str) -> None:
        row = self._current()
        if row is None or self.run_dir is None:
            return
        new = None if row.mark == mark else mark  # the same key again clears the mark
        # One appended, fsynced line: fast enough for the keystroke, and saved at once.
        stored = self.backend.set_mark(self.run_dir, row.index, new)
        self._replace_row(replace(row, mark=stored.get("mark"), note=stored.get("note", "")))
        self._refresh_review()

    def action_note(self) -> None:
        row = self._current()
        if row is None or self.run_dir is None:
            return
        run_dir = self.run_dir

        def noted(text: str | None) -> None:
            if text is None:
                return
            stored = self.backend.set_mark(run_dir, row.index, note=text)
            self._replace_row(replace(row, note=stored.get("note", "")))
            self._refresh_review()

        prompt = PromptDialog(f"Note on example {row.index + 1}", "Note:", row.note)
        self.app.push_screen(prompt, noted)

    def _refresh_review(self) -> None:
        if self.table is not None and self.run_dir is not None:
            self.review = self.backend.review_summary(self.run_dir, self.table.against)
            self._show_summary()

    def action_ab(self) -> None:
        view = self.query_one(EvalTableView)
        if self.table is None or self.run_dir is None or view.current is None:
            self.notify("Nothing to compare yet.", severity="warning")
            return
        rng = random.Random()
        start = view.shown.index(view.current)
        ordered = view.shown[start:] + view.shown[:start]
        pairs = [p for row in ordered if (p := ab_pair(row, self.table.against, rng))]
        if not pairs:
            self.notify("No example has both a fine-tuned and a base answer.", severity="warning")
            return
        run_dir = self.run_dir
        stats = self.backend.ab_stats(run_dir, self.table.against)
        against = self.table.against

        def record(pair: AbPair, side: str) -> AbStats:
            return self.backend.record_preference(run_dir, pair, side, against)

        self.app.push_screen(AbReviewDialog(pairs, record, stats), lambda _: self._refresh_review())

    def action_export(self) -> None:
        if self.table is None or self.run_dir is None or not self.table.rows:
            self.notify("Nothing to export yet.", severity="warning")
            return
        self.export(self.run_dir)

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def export(self, run_dir: Path) -> None:
        self.post_message(self.ExportWritten(self.backend.export_review(run_dir)))

    @on(ExportWritten)
    def export_written(self, message: ExportWritten) -> None:
        self.notify(f"Review exported to {message.path}", title="Export")
