"""Correct an answer (or a wrong reference) in an editor, checked as you type.

The Evaluate step opens it with `c` (the fine-tuned answer, to correct) or `w` (the
reference, found wrong). JSON answers are shown pretty-printed; what is saved is written
the way the training answers are (one line). A correction that is not JSON where the
training answers are cannot be saved; a key that no training answer uses is named
(engine.loop.corrections). ctrl+s saves, escape cancels; the prompt is shown above.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static, TextArea

from engine.loop.corrections import check_correction, compact_json, pretty_json
from tui.paths import stylesheet

PROMPT_CHARS = 400
"""Characters of the prompt shown above the editor (the detail view has it all)."""


def _short(text: str) -> str:
    return text if len(text) <= PROMPT_CHARS else text[:PROMPT_CHARS] + "…"


class CorrectionDialog(ModalScreen[str | None]):
    """Dismisses with the corrected text (compact JSON where it is JSON), or None.

    BINDINGS: ctrl+s saves (only a correction that passes the check), escape cancels.
    """

    CSS_PATH = stylesheet("eval_dialogs")
    BINDINGS = [
        Binding("ctrl+s", "save", "Save"),
        Binding("escape", "dismiss(None)", "Cancel"),
    ]

    def __init__(self, title: str, prompt: str, text: str, train_answers: Sequence[str]) -> None:
        super().__init__()
        self.title_text = title
        self.prompt = prompt
        self.text = pretty_json(text)
        self.train_answers = list(train_answers)

    def compose(self) -> ComposeResult:
        with Vertical(id="correction-box", classes="dialog") as box:
            box.border_title = self.title_text
            box.border_subtitle = "ctrl+s: save   escape: cancel"
            shown = (
                self.prompt
                if len(self.prompt) <= PROMPT_CHARS
                else self.prompt[:PROMPT_CHARS] + "…"
            )
            yield Static(shown, id="correction-prompt", markup=False)
            yield TextArea(self.text, id="correction-text", soft_wrap=True, compact=True)
            yield Static("", id="correction-check", markup=False)

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()
        self._check()

    @on(TextArea.Changed)
    def _check(self) -> bool:
        """Show what the check says; True when the text may be saved."""
        check = check_correction(self.query_one(TextArea).text, self.train_answers)
        note = self.query_one("#correction-check", Static)
        note.set_class(not check.ok, "-error")
        if not check.ok:
            note.update(f"✗ {check.error}")
        elif check.warnings:
            note.update("⚠ " + "; ".join(check.warnings))
        else:
            note.update("✓ ready to save")
        return check.ok

    def action_save(self) -> None:
        if not self._check():
            self.app.bell()
            return
        self.dismiss(compact_json(self.query_one(TextArea).text))
