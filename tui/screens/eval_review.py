"""The Evaluate screen's review keys: marks, notes, blind A/B and the CSV export.

A mixin of EvaluateScreen (tui/screens/evaluate.py), apart so that each file stays short.
It works on the screen's run, table and review counts, and redraws through the screen's
`_replace_row` and `_show_summary`. Each mark or note is one appended, fsynced line in
the run's eval/ directory: the row shows it at the keystroke, and a worker thread saves it
(the backend is never called on the UI thread), after the changes made before it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from textual import work

from engine.eval.review import AbPair, EvalRow, EvalTable, Mark, ab_pair
from tui.backend_calls import OrderedCalls
from tui.dialogs.ab_review import AbReviewDialog
from tui.dialogs.prompt import PromptDialog
from tui.widgets.eval_table import EvalTableView

if TYPE_CHECKING:
    from tui.backend import Backend, ReviewBackend

ReviewCall = Callable[["ReviewBackend"], Any]
"""A call of the review backend, made in a worker thread."""


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

    @cached_property
    def _review_calls(self) -> OrderedCalls[ReviewBackend]:
        """Marks, notes and A/B preferences reach the files in the order they were made."""
        return OrderedCalls()

    def _call_review(self, call: ReviewCall, then: Callable[[Any], None]) -> None:
        """Make `call` in a worker thread, after the review calls asked for before it."""
        self._review_calls.put(call, then)
        self._make_review_calls(self._review_calls)

    @work(thread=True, group="review", exit_on_error=False)
    def _make_review_calls(self, calls: OrderedCalls[ReviewBackend]) -> None:
        backend: ReviewBackend = self.backend
        calls.run(backend, self.app)

    def action_mark(self, mark: str) -> None:
        row = self._current()
        if row is None or self.run_dir is None:
            return
        run_dir, index = self.run_dir, row.index
        # The same key again clears the mark (the binding gives one of MARKS).
        new = None if row.mark == mark else cast("Mark", mark)
        # What set_mark stores (the note is kept), shown at the keystroke: the next key
        # toggles from it. One appended, fsynced line, saved by a worker.
        self._replace_row(replace(row, mark=new))
        self._call_review(lambda backend: backend.set_mark(run_dir, index, new), _ignore)
        self._refresh_review()

    def action_note(self) -> None:
        row = self._current()
        if row is None or self.run_dir is None:
            return
        run_dir = self.run_dir

        def noted(text: str | None) -> None:
            if text is None:
                return
            self._replace_row(replace(row, note=text))  # what set_mark stores
            self._call_review(lambda backend: backend.set_mark(run_dir, row.index, note=text),
                              _ignore)  # fmt: skip
            self._refresh_review()

        prompt = PromptDialog(f"Note on example {row.index + 1}", "Note:", row.note)
        self.app.push_screen(prompt, noted)

    def _refresh_review(self) -> None:
        """Count the marks again (after the review calls before it) and show the counts."""
        if self.table is not None and self.run_dir is not None:
            run_dir, against = self.run_dir, self.table.against
            self._call_review(lambda backend: backend.review_summary(run_dir, against),
                              self._show_review)  # fmt: skip

    def _show_review(self, review: dict[str, Any]) -> None:
        self.review = review
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
        run_dir, against = self.run_dir, self.table.against
        rows = {row.index: row for row in ordered}

        def record(pair: AbPair, side: str) -> None:
            self._call_review(
                lambda backend: backend.record_preference(run_dir, pair, side, against),
                dialog.show_stats,
            )

        dialog = AbReviewDialog(pairs, record, None, rows)
        self.app.push_screen(dialog, lambda _: self._refresh_review())
        self._call_review(lambda backend: backend.ab_stats(run_dir, against), dialog.show_stats)

    def action_export(self) -> None:
        if self.table is None or self.run_dir is None or not self.table.rows:
            self.notify("Nothing to export yet.", severity="warning")
            return
        self.export(self.run_dir)

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def export(self, run_dir: Path) -> None:
        """Write the review CSV (a worker: the table may be long)."""
        backend: ReviewBackend = self.backend
        path = backend.export_review(run_dir)
        self.app.call_from_thread(self.notify, f"Review exported to {path}", title="Export")


def _ignore(result: object) -> None:
    """For a review call whose result the screen already shows."""
