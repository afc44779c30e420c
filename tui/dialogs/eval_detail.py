"""One evaluated example in full: prompt, reference, every system's answer, a word diff of
the fine-tuned answer against the reference, the review note and the judge's reason.

The diff is readable without colour: `[-only in the reference-]{+only in the answer+}`.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from engine.eval.options import system_title
from engine.eval.review import EvalRow, word_diff
from tui.paths import stylesheet

DIFF_STYLES = {"equal": "", "delete": "red strike", "insert": "green bold"}
DIFF_MARKERS = {"equal": ("", ""), "delete": ("[-", "-]"), "insert": ("{+", "+}")}


def diff_text(reference: str, output: str) -> Text:
    """The word diff as text: deletions `[-...-]`, insertions `{+...+}`, plus colour."""
    text = Text()
    for n, (op, words) in enumerate(word_diff(reference, output)):
        if n:
            text.append(" ")
        start, end = DIFF_MARKERS[op]
        text.append(f"{start}{words}{end}", style=DIFF_STYLES[op])
    return text


class EvalDetailDialog(ModalScreen[None]):
    """The full texts of one example. BINDINGS: escape / enter / q close."""

    CSS_PATH = stylesheet("eval_dialogs")
    BINDINGS = [
        Binding("escape,enter,q", "dismiss(None)", "Close"),
    ]

    def __init__(self, row: EvalRow) -> None:
        super().__init__()
        self.row = row

    def compose(self) -> ComposeResult:
        row = self.row
        with VerticalScroll(id="detail-box", classes="dialog") as box:
            box.border_title = f"Example {row.index + 1} (line {row.line})"
            box.border_subtitle = "escape closes"
            yield from self._section("prompt", row.prompt)
            yield from self._section(
                "reference", row.reference or "(none: a prompt pool; y accepts, c corrects)"
            )
            if row.fixed_reference:
                yield from self._section("reference as corrected (w)", row.fixed_reference)
            for system, output in row.outputs.items():
                yield from self._section(system_title(system), output)
            if row.verdict and row.answer:
                yield from self._section(f"your answer ({row.verdict})", row.answer)
            if row.tuned is not None and row.reference:
                yield Static("fine-tuned vs reference  [-reference only-] {+answer only+}",
                             classes="detail-title", markup=False)  # fmt: skip
                yield Static(diff_text(row.reference, row.tuned), id="detail-diff")
            if row.note:
                yield from self._section("note", row.note)
            if row.judge_reason:
                winner = system_title(row.judge_winner) if row.judge_winner else "?"
                yield from self._section(f"judge (winner: {winner})", row.judge_reason)

    def _section(self, title: str, body: str) -> ComposeResult:
        yield Static(title, classes="detail-title", markup=False)
        yield Static(body or "(empty)", classes="detail-body", markup=False)
