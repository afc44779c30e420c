"""The eval table: one row per held-out example, base vs fine-tuned side by side.

A DataTable that keeps the rows it shows (engine.eval.review.EvalRow), so the screen can ask
which example the cursor is on. Answers are digested (engine.eval.answer_digest): a label with
✓ / ✗, the JSON fields that differ from the reference, or free text on one line, cut to
the column; the detail view (tui/dialogs/eval_detail.py) shows them in full.

BINDINGS (besides DataTable's arrows, page keys, home / end and enter):
    j / k: cursor down / up
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from textual.binding import Binding
from textual.widgets import DataTable

from engine.eval.answer_digest import answer_digest, label_key_of
from engine.eval.options import BASE_SYSTEMS, TUNED
from engine.eval.review import EvalRow

COLUMNS = (("#", 4), ("mark", 7), ("prompt", 16), ("reference", 15), ("base", 15),
           ("fine-tuned", 15), ("base→tuned", 10))  # fmt: skip
"""Column titles and widths: 100 cells with the cell padding. The mark comes second, so an
80-column terminal shows the review state beside the row's number."""
MARK_LABELS = {"good": "good", "bad": "BAD", "skip": "skip", None: "·"}
"""Marks as words, readable without colour."""
VERDICT_SIGNS = {"accepted": " ✓", "corrected": " ✎"}
"""After the mark: the fine-tuned answer accepted (✓) or corrected (✎); ` R` a fixed
reference; `*` a note."""


def review_cell(row: EvalRow) -> str:
    """`good* ✓`: the mark, a note (*), an accept or correction, a fixed reference."""
    text = MARK_LABELS.get(row.mark, "·") + ("*" if row.note else "")
    text += VERDICT_SIGNS.get(row.verdict or "", "")
    return text + (" R" if row.fixed_reference else "")


def one_line(text: str | None, width: int) -> str:
    """`text` on one line, cut to `width` cells with an ellipsis ("—": no answer)."""
    if text is None:
        return "—"
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def best_base_system(row: EvalRow) -> str | None:
    """The base system that scored higher on this row (few-shot on a tie)."""
    present = [s for s in reversed(BASE_SYSTEMS) if s in row.outputs]
    if not present:
        return None
    return max(present, key=lambda s: row.score("primary", s) or 0.0)


def rows_label_key(rows: Sequence[EvalRow]) -> str | None:
    """The JSON key of the rows' labels ("" the whole answer; None: no labels).

    Rows store each reference's label as scored, not the key: the key is found per row
    and the most common one wins, so one odd reference does not change every cell.
    """
    keys = Counter(
        key
        for row in rows
        if (key := label_key_of(row.reference, reference_label(row))) is not None
    )
    return keys.most_common(1)[0][0] if keys else None


def reference_label(row: EvalRow) -> str | None:
    """The reference's label as the metrics stored it (None: the data has no labels)."""
    labels = (s.get("ref_label") for s in row.scores.values())
    return next((label for label in labels if isinstance(label, str)), None)


def score_cell(row: EvalRow) -> str:
    """`0.25→1.00`: the better base's primary score, then the fine-tuned one."""
    base, tuned = row.best_base, row.score("primary", TUNED)
    left = "—" if base is None else f"{base:.2f}"
    right = "—" if tuned is None else f"{tuned:.2f}"
    return f"{left}→{right}"


class EvalTableView(DataTable[str]):
    """The rows of an evaluation; `current` is the example under the cursor."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.shown: list[EvalRow] = []
        self.label_key: str | None = None
        """The label key of the rows shown (engine.data.labels), for the answer digests."""

    def on_mount(self) -> None:
        for title, width in COLUMNS:
            self.add_column(title, width=width, key=title)

    @property
    def current(self) -> EvalRow | None:
        """The example under the cursor (None: the table is empty)."""
        if not self.shown:
            return None
        return self.shown[min(self.cursor_row, len(self.shown) - 1)]

    def show_rows(
        self, rows: Sequence[EvalRow], keep: int | None = None, label_key: str | None = None
    ) -> None:
        """Replace the rows; the cursor goes to example `keep` when it is still shown.

        Args:
            label_key: the run's label key, for rows without references (a prompt pool),
                so that a narrow column shows the answer's label rather than its first
                characters of JSON.
        """
        self.shown = list(rows)
        found = rows_label_key(self.shown)  # "" is a key: the whole answer is the label
        self.label_key = found if found is not None else label_key
        self.clear()
        for row in self.shown:
            self.add_row(*self._cells(row), key=str(row.index))
        indices = [row.index for row in self.shown]
        if keep in indices:
            self.move_cursor(row=indices.index(keep), scroll=True)

    def _cells(self, row: EvalRow) -> list[str]:
        widths = [width for _, width in COLUMNS]
        base = best_base_system(row)
        mark = review_cell(row)
        key = self.label_key

        def digest(output: str | None) -> str | None:
            return None if output is None else answer_digest(output, row.reference or None, key)

        return [
            str(row.index + 1),
            mark,
            one_line(row.prompt, widths[2]),
            one_line(answer_digest(row.reference, None, key), widths[3])
            if row.reference
            else "— (pool)",
            one_line(digest(row.outputs.get(base) if base else None), widths[4]),
            one_line(digest(row.tuned), widths[5]),
            score_cell(row),
        ]
