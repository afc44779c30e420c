"""The Evaluate screen's review keys: marks, notes, blind A/B and the CSV export.

A mixin of EvaluateScreen (tui/screens/evaluate.py), apart so that each file stays short.
It works on the screen's run, table and review counts, and redraws through the screen's
`_replace_row` and `_show_summary`. Each mark or note is one appended, fsynced line in
the run's eval/ directory: saved at the keystroke.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work

from engine.eval.review import AbPair, AbStats, EvalRow, EvalTable, ab_pair
from tui.dialogs.ab_review import AbReviewDialog
from tui.dialogs.prompt import PromptDialog
from tui.widgets.eval_table import EvalTableView

if TYPE_CHECKING:
    from tui.backend import Backend


class ReviewKeys:
    """g / b / s: mark good / bad / skip    n: note    a: blind A/B    x: export as CSV."""

    if TYPE_CHECKING:  # provided by EvaluateScreen
        from textual.app import App
        from textual.css.query import QueryType

        app: App[Any]
        backend: Backend
        run_dir: Path | None
        table: EvalTable | None
        review: dict[str, Any]

        def query_one(self, selector: type[QueryType]) -> QueryType: ...
        def notify(self, message: str, *, title: str = "", severity: Any = ...) -> None: ...
        def _replace_row(self, row: EvalRow) -> None: ...
        def _show_summary(self) -> None: ...

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

        rows = {row.index: row for row in ordered}
        dialog = AbReviewDialog(pairs, record, stats, rows)
        self.app.push_screen(dialog, lambda _: self._refresh_review())

    def action_export(self) -> None:
        if self.table is None or self.run_dir is None or not self.table.rows:
            self.notify("Nothing to export yet.", severity="warning")
            return
        self.export(self.run_dir)

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def export(self, run_dir: Path) -> None:
        """Write the review CSV (a worker: the table may be long)."""
        path = self.backend.export_review(run_dir)
        self.app.call_from_thread(self.notify, f"Review exported to {path}", title="Export")
