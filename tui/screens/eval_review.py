"""The Evaluate screen's review keys: marks, notes, accepts and corrections, wrong
references, blind A/B, the CSV export, and the next run's data.

A mixin of EvaluateScreen (tui/screens/evaluate.py), apart so that each file stays short.
It works on the screen's run, table and review counts, and redraws through the screen's
`_replace_row` and `_show_summary`. Each mark or note is one appended, fsynced line in
the run's eval/ directory: the row shows it at the keystroke, and a worker thread saves it
(the backend is never called on the UI thread), after the changes made before it.

`D` writes the next run's data from the accepted and corrected answers (engine.loop.grow)
and offers to train it with this run's settings (engine.loop.like), on the Train step.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from textual import work

from engine.core.errors import TunedeckError
from engine.eval.review import AbPair, EvalRow, EvalTable, Mark, ab_pair
from tui.backend_calls import OrderedCalls
from tui.dialogs.ab_review import AbReviewDialog
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.correction import CorrectionDialog
from tui.dialogs.error import ErrorDialog
from tui.dialogs.prompt import PromptDialog
from tui.widgets.eval_table import EvalTableView

if TYPE_CHECKING:
    from tui.backend import Backend, ReviewBackend

ReviewCall = Callable[["ReviewBackend"], Any]
"""A call of the review backend, made in a worker thread."""


class ReviewKeys:
    """g / b / s: mark good / bad / skip    n: note    y: accept the fine-tuned answer
    c: correct it    w: the reference is wrong    D: add the accepted and corrected answers
    to a new dataset, then train on it    a: blind A/B    x: export as CSV."""

    if TYPE_CHECKING:  # provided by EvaluateScreen
        from textual.app import App
        from textual.css.query import QueryType

        app: App[Any]
        backend: Backend
        tunedeck: Any
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

    def action_accept(self) -> None:
        row = self._current()
        if row is None or self.run_dir is None:
            return
        if row.tuned is None:
            self.notify("No fine-tuned answer to accept here.", severity="warning")
            return
        run_dir, index = self.run_dir, row.index
        undo = row.verdict == "accepted"  # the same key again takes it back
        verdict, answer = (None, None) if undo else ("accepted", row.tuned)
        self._replace_row(replace(row, verdict=verdict, answer=answer))
        self._call_review(
            lambda backend: backend.set_verdict(run_dir, index, verdict, answer), _ignore
        )
        self._refresh_review()

    def action_correct(self) -> None:
        row = self._current()
        if row is not None and self.run_dir is not None:
            start = row.answer if row.verdict == "corrected" else (row.tuned or row.reference)
            self._edit(row, f"Correct the answer of example {row.index + 1}", start or "",
                       "corrected")  # fmt: skip

    def action_wrong_reference(self) -> None:
        row = self._current()
        if row is None or self.run_dir is None:
            return
        if not row.reference:
            self.notify("A prompt pool has no reference: c corrects the answer.",
                        severity="warning")  # fmt: skip
            return
        self._edit(row, f"The right reference of example {row.index + 1}",
                   row.fixed_reference or row.reference, "reference")  # fmt: skip

    def _edit(self, row: EvalRow, title: str, text: str, kind: str) -> None:
        """Read the training answers (a worker), then open the editor on `text`."""
        assert self.run_dir is not None
        run_dir = self.run_dir

        def saved(result: str | None) -> None:
            if result is None:
                return
            if kind == "reference":
                self._replace_row(replace(row, fixed_reference=result))
                call: ReviewCall = lambda b: b.set_reference(run_dir, row.index, result)  # noqa: E731
            else:
                self._replace_row(replace(row, verdict="corrected", answer=result))
                call = lambda b: b.set_verdict(run_dir, row.index, "corrected", result)  # noqa: E731
            self._call_review(call, _ignore)
            self._refresh_review()

        def opened(answers: list[str]) -> None:
            dialog = CorrectionDialog(title, row.prompt, text, answers)
            self.app.push_screen(dialog, saved)

        self._call_review(lambda backend: backend.training_answers(run_dir), opened)

    def action_grow(self) -> None:
        """Ask for the new file, write it (a worker), then offer the next run."""
        table, run_dir = self.table, self.run_dir
        if table is None or run_dir is None:
            return
        if not any(row.verdict for row in table.rows):
            self.notify("Nothing to add yet: y accepts an answer, c corrects one.",
                        severity="warning")  # fmt: skip
            return
        default = str(Path.cwd() / f"{run_dir.name}-next.jsonl")

        def chosen(path: str | None) -> None:
            if path:
                self.grow(run_dir, table.eval_set, Path(path).expanduser())

        prompt = PromptDialog("Add to the training data",
                              "New dataset file (the run's training data + your answers):",
                              default, suffixes=(".jsonl",))  # fmt: skip
        self.app.push_screen(prompt, chosen)

    @work(thread=True, exclusive=True, group="grow", exit_on_error=False)
    def grow(self, run_dir: Path, eval_set: str, out: Path) -> None:
        """Write the grown data; then ask whether to train the next run on it."""
        backend: ReviewBackend = self.backend
        try:
            result = backend.grow_data(run_dir, eval_set, out)
        except TunedeckError as exc:
            self.app.call_from_thread(self.app.push_screen,
                                      ErrorDialog.of(exc, "Cannot add to the data"))  # fmt: skip
            return
        text = "\n".join(result.lines())
        self.app.call_from_thread(self._offer_next_run, run_dir, out, text)

    def _offer_next_run(self, run_dir: Path, out: Path, text: str) -> None:
        dialog = ConfirmDialog("Train the next run?", f"{text}\n\nTrain the next run on "
                               f"{out.name} with run {run_dir.name}'s settings?",
                               "Train", "Not now")  # fmt: skip
        self.app.push_screen(dialog, lambda yes: self.start_next(run_dir, out) if yes else None)

    @work(thread=True, exclusive=True, group="grow", exit_on_error=False)
    def start_next(self, run_dir: Path, data: Path) -> None:
        """Start the run `--like` this one on the new data, and show it on the Train step."""
        backend: Backend = self.backend
        try:
            cfg, _keep = backend.like_config(run_dir, data)
            info = backend.start_run(cfg)
        except TunedeckError as exc:
            self.app.call_from_thread(self.app.push_screen,
                                      ErrorDialog.of(exc, "Cannot start the run"))  # fmt: skip
            return
        self.app.call_from_thread(self.tunedeck.attach, info.dir)

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
