"""Wizard step 6, Evaluate: base vs fine-tuned on the held-out examples, then review.

`e` starts a detached evaluation process (engine.eval.launch.start_eval) with the run's eval
settings: `E` edits them first (test file, systems, checkpoints, decoding, judge; kept in
the run's eval/options.json); without any, all systems on the validation split, or the
fine-tuned one alone when the Baseline step was skipped. The table and summary show the
eval set the settings choose (the validation split, or the test file), and the status
line names it; marks and A/B choices are kept per set. Quitting the TUI never stops it;
`ctrl+x` asks it to stop after its current batch, and `e` then continues where it
stopped. A worker tails the run's events.jsonl for `eval_*` events (tui.eval_follow) and
shows progress, then the table loads; after a stop, engine.eval.events says how many
rows were kept. Base answers the Baseline step generated are reused. Stored results show
at once. Reviewing (marks, notes, blind A/B) saves each keystroke to the eval set's
directory in the run's eval/.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.reactive import var
from textual.widgets import DataTable, ProgressBar, Static
from textual.worker import get_current_worker

from engine.eval.events import RowsKept, ended_by_stop
from engine.eval.options import TUNED, EvalOptions
from engine.eval.review import FILTERS, EvalRow, EvalTable, filter_rows, sort_rows
from engine.eval.store import VALIDATION
from tui.backend import EvalBackend, ReviewBackend
from tui.dialogs.eval_detail import EvalDetailDialog
from tui.dialogs.eval_settings import EvalChoices, EvalSettingsDialog
from tui.dialogs.prompt import PromptDialog
from tui.eval_follow import EvalNews, FollowBackend, follow_eval, progress_text, stop_outcome
from tui.paths import stylesheet
from tui.screens.base import WizardScreen
from tui.screens.eval_review import ReviewKeys
from tui.widgets.eval_summary import EvalSummary
from tui.widgets.eval_table import EvalTableView

SORTS = (("index", False), ("delta", False), ("primary", True), ("mark", False))
"""Sort keys `o` cycles through (delta ascending: the worst regressions first)."""
REVIEW_ACTIONS = frozenset(("mark", "note", "cycle_filter", "search", "cycle_sort", "ab", "export",
                            "accept", "correct", "wrong_reference", "grow"))  # fmt: skip


def stopped_text(kept: RowsKept | None) -> str:
    """`Evaluation stopped — 12/20 rows kept; press e to continue.`"""
    if kept is None or not kept.planned:
        return "Evaluation stopped before it generated anything; press e to start it again."
    return f"Evaluation stopped — {kept.kept}/{kept.planned} rows kept; press e to continue."


class EvaluateScreen(ReviewKeys, WizardScreen):
    """The eval table of the wizard's run, its summary, and the review keys.

    BINDINGS:
        e: evaluate with the run's eval settings (continues a stopped evaluation)
        E: eval settings, then start    ctrl+x: stop the evaluation    enter: the example
        g / b / s: mark good / bad / skip    n: note    f: filter    /: search    o: sort
        y: accept the fine-tuned answer    c: correct it (an editor)    w: the reference is
        wrong (an editor)    D: add the accepted and corrected answers to a new dataset and
        train the next run on it    a: blind A/B    x: export the review as CSV
    """

    MODE = "evaluate"
    CSS_PATH = stylesheet("evaluate")
    BINDINGS = [
        Binding("e", "evaluate", "Evaluate"),
        Binding("E", "settings", "Settings"),
        Binding("ctrl+x", "stop_eval", "Stop eval"),
        Binding("g", "mark('good')", "Good"),
        Binding("b", "mark('bad')", "Bad"),
        Binding("s", "mark('skip')", "Skip"),
        Binding("n", "note", "Note"),
        Binding("y", "accept", "Accept"),
        Binding("c", "correct", "Correct"),
        Binding("w", "wrong_reference", "Wrong ref", show=False),
        Binding("D", "grow", "Add to data", show=False),
        Binding("f", "cycle_filter", "Filter", show=False),  # the status line names f, o, /
        Binding("slash", "search", "Search", key_display="/", show=False),
        Binding("o", "cycle_sort", "Sort", show=False),
        Binding("a", "ab", "A/B"),
        Binding("x", "export", "Export"),
    ]

    evaluating: var[bool] = var(False, bindings=True)
    """An evaluation of the run is followed: the start keys dim, the stop key shows."""

    @dataclass
    class TableLoaded(Message):
        """The run's stored evaluation, review counts and eval settings were read."""

        run_dir: Path
        table: EvalTable
        review: dict[str, Any]
        options: EvalOptions | None

    @dataclass
    class EvalRead(Message):
        """The latest eval events of the followed run (only the newest progress counts)."""

        run_dir: Path
        progress: dict[str, Any] | None
        notes: list[str]
        ended: dict[str, Any] | None
        kept: RowsKept | None = None
        """After a stop: rows on disk, of the rows the evaluation generates in all."""

    def __init__(self) -> None:
        super().__init__()
        self.run_dir: Path | None = None
        self.table: EvalTable | None = None
        self.review: dict[str, Any] = {}
        self.filter_index = 0
        self.sort_index = 0
        self.search = ""
        self.options: EvalOptions | None = None
        """The run's eval settings (None: none chosen yet, the defaults)."""
        self.stopping = False
        self.stopped = ""
        """What the last stop kept, in the status line until the next start."""

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
            self.table, self.options, self.stopped = None, None, ""
            self._status(f"Run {run_dir.name}: reading its evaluation…")
            self.load(run_dir, follow=True)

    # -- loading and evaluating -------------------------------------------------------------

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load(self, run_dir: Path, follow: bool = False) -> None:
        """Read the stored rows, marks, judge verdicts, summary and eval settings; with
        `follow` (a run the screen has not shown yet), follow its running evaluation too."""
        evals: EvalBackend = self.backend
        if follow and evals.eval_running(run_dir):
            self.app.call_from_thread(self._following, run_dir, 0)
        backend: ReviewBackend = self.backend
        eval_set = backend.chosen_eval_set(run_dir)
        table = backend.load_eval_table(run_dir, eval_set)
        review = backend.review_summary(run_dir, table.against, eval_set)
        options = evals.load_eval_options(run_dir)
        self.post_message(self.TableLoaded(run_dir, table, review, options))

    @on(TableLoaded)
    def table_loaded(self, message: TableLoaded) -> None:
        if message.run_dir != self.run_dir:
            return
        self.table, self.review = message.table, message.review
        self.options = message.options
        self._show_summary()
        self._show_rows()
        self.tunedeck.set_step_done(self.MODE, bool(message.table.rows))
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Review keys dim until there are rows; start keys dim, stop shows while running."""
        if action in REVIEW_ACTIONS and (self.table is None or not self.table.rows):
            return None
        if action == "stop_eval":
            return self.evaluating
        return None if action in ("evaluate", "settings") and self.evaluating else True

    def _startable(self) -> Path | None:
        """The run to evaluate now, or None (with a notice saying why not)."""
        if self.run_dir is None:
            self.notify("No run to evaluate: train one first.", severity="warning")
        elif self.evaluating:
            self.notify("The evaluation is running already (ctrl+x stops it).", severity="warning")
        else:
            return self.run_dir
        return None

    def _eval_options(self) -> EvalOptions | None:
        """The run's settings; none chosen and Baseline skipped: the fine-tuned model alone."""
        if self.options is None and self.wizard.baseline_skipped:
            return EvalOptions(systems=(TUNED,))
        return self.options

    def action_evaluate(self) -> None:
        if (run_dir := self._startable()) is not None:
            self.start_eval(run_dir, self._eval_options())

    def action_settings(self) -> None:
        if (run_dir := self._startable()) is not None:
            self.open_settings(run_dir)

    @work(thread=True, exclusive=True, group="start", exit_on_error=False)
    def open_settings(self, run_dir: Path) -> None:
        """Look for the run's adapters, then open the eval settings; Start starts."""
        evals: EvalBackend = self.backend
        has_adapter, steps = evals.eval_adapters(run_dir)
        primary = evals.primary_options(run_dir)
        choices = EvalChoices(run_dir.name, has_adapter, tuple(steps), primary)
        dialog = EvalSettingsDialog(self._eval_options() or EvalOptions(), choices)

        def chosen(options: EvalOptions | None) -> None:
            if options is not None and run_dir == self.run_dir:
                self.options = options
                self.start_eval(run_dir, options, save=True)

        self.app.call_from_thread(self.app.push_screen, dialog, chosen)

    @work(thread=True, exclusive=True, group="start", exit_on_error=False)
    def start_eval(self, run_dir: Path, options: EvalOptions | None, save: bool = False) -> None:
        """Start the detached evaluation (engine errors go to the error dialog).

        Args:
            save: keep `options` as the run's eval settings first (kept even if it fails).
        """
        backend: FollowBackend = self.backend
        if save and options is not None:
            backend.save_eval_options(run_dir, options)
            self.app.call_from_thread(self.load, run_dir)  # the set chosen may be another
        _, offset = backend.read_events(run_dir, 0)
        backend.start_eval(run_dir, options)
        self.app.call_from_thread(self._following, run_dir, offset)

    def _following(self, run_dir: Path, offset: int) -> None:
        self.evaluating, self.stopping, self.stopped = True, False, ""
        self.query_one("#eval-progress").display = True
        self._status("Evaluating: loading the model…")
        self.follow(run_dir, offset)

    def action_stop_eval(self) -> None:
        if self.run_dir is None or not self.evaluating:
            self.notify("No evaluation is running.", severity="warning")
            return
        self.stopping = True
        self._status("Stopping after the current batch; the rows generated are kept…")
        self.stop_eval(self.run_dir)

    @work(thread=True, exclusive=True, group="stop", exit_on_error=False)
    def stop_eval(self, run_dir: Path) -> None:
        """Signal the evaluation process (SIGTERM); the follower sees it end."""
        evals: EvalBackend = self.backend
        if not evals.stop_eval(run_dir):
            self.app.call_from_thread(self.notify, "The evaluation had already ended.")

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def follow(self, run_dir: Path, offset: int) -> None:
        """Tail eval events from `offset` until the evaluation ends (or its process dies)."""
        worker = get_current_worker()
        backend: FollowBackend = self.backend

        def report(news: EvalNews) -> None:
            stopped = news.ended is not None and ended_by_stop(news.ended, self.stopping)
            kept = stop_outcome(backend, run_dir, offset) if stopped else None
            message = self.EvalRead(run_dir, news.progress, news.notes, news.ended, kept)
            self.post_message(message)

        follow_eval(backend, run_dir, offset, report, lambda: worker.is_cancelled)

    @on(EvalRead)
    def eval_read(self, message: EvalRead) -> None:
        if message.run_dir != self.run_dir:
            return
        for note in message.notes:
            self.notify(note, title="Evaluation")
        if message.progress:
            self._show_progress(message.progress)
        if message.ended:
            self._ended(message.ended, message.kept)

    def _show_progress(self, event: dict[str, Any]) -> None:
        done, total = int(event.get("done", 0)), int(event.get("total", 0)) or None
        self.query_one(ProgressBar).update(total=total, progress=done)
        if not self.stopping:  # "Stopping…" stays until it has stopped
            self._status(progress_text(event))

    def _ended(self, event: dict[str, Any], kept: RowsKept | None) -> None:
        self.evaluating = False
        self.query_one("#eval-progress").display = False
        if ended_by_stop(event, self.stopping):
            self.stopped = stopped_text(kept)
            self.notify(self.stopped, title="Evaluation")
        elif event["type"] == "eval_failed":
            hint = event.get("hint") or ""
            self.notify(f"{event.get('error', 'failed')}\n{hint}".strip(),
                        title="Evaluation failed", severity="error")  # fmt: skip
        self.stopping = False
        if self.run_dir is not None:
            self._status(self.stopped or "Evaluation ended: reading the results…")
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
        primary = (table.summary or {}).get("primary") or {}
        pool_key = primary.get("key") if primary.get("kind") == "label" else None
        view.show_rows(rows, keep=current.index if current else None, label_key=pool_key)
        search = f" · search “{self.search}”" if self.search else ""
        if self.evaluating:
            return
        if self.stopped:
            self._status(self.stopped)
        elif not table.rows:
            skipped = " the fine-tuned model only (Baseline skipped: no base comparison)"
            what = skipped if self.wizard.baseline_skipped else " it"
            self._status(
                f"Run {table.run_dir.name} is not evaluated on the {self._set_title()} yet: "
                f"e evaluates{what}."
            )
        else:
            self._status(
                f"{self._set_title()}: {len(rows)} of {len(table.rows)} examples · "
                f"f filter {kind} · o sort {key}{search} · / search · enter: full example"
            )

    def _set_title(self) -> str:
        """The eval set shown; says so when the settings' test file could not be used."""
        table, data = self.table, self.options.data if self.options else None
        if table is None:
            return "validation split"
        if data and table.eval_set == VALIDATION:
            return f"validation split (test file {Path(data).name} unreadable)"
        if table.eval_set != VALIDATION and not table.summary and data:
            return f"test file {Path(data).name}"
        return table.set_title

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
