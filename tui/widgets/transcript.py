"""One side of the playground: a conversation whose last answer grows as tokens stream in.

Each turn is a bordered Static (who speaks in the border title); the answer being written
is the last one, and `append` adds text to it. The playground screen already batches
tokens (a few updates a second), so each `append` is one redraw. The view follows new
text while it is scrolled to the end; scrolled up to read, it stays where it is.
"""

from __future__ import annotations

from typing import Any

from textual.containers import VerticalScroll
from textual.widgets import Static

WRITING = "assistant …"
"""Border title of the answer while it is being written."""


def answer_line(done: dict[str, Any]) -> str:
    """What an answer cost, for its border: `42 tokens · 3.1 s · 14 tok/s · stopped`."""
    tokens, seconds = int(done.get("tokens", 0)), float(done.get("seconds", 0.0))
    parts = [f"{tokens} tokens", f"{seconds:.1f} s"]
    if seconds > 0 and tokens:
        parts.append(f"{tokens / seconds:.0f} tok/s")
    if done.get("cancelled"):
        parts.append("stopped")
    elif not done.get("finished"):
        parts.append("cut at max tokens")
    if done.get("dropped"):
        parts.append(f"{done['dropped']} earlier messages left out")
    return " · ".join(parts)


class Transcript(VerticalScroll):
    """A scrollable conversation: user turns, streamed answers, and notes."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._answer: Static | None = None
        self._text = ""

    @property
    def answer_text(self) -> str:
        """The text of the answer being written (or the last one written)."""
        return self._text

    def add_user(self, text: str) -> None:
        """Show the user's turn."""
        turn = Static(text, classes="turn -user", markup=False)
        turn.border_title = "you"
        self.mount(turn)
        self._follow()

    def start_answer(self) -> None:
        """Open an empty answer that `append` fills."""
        self._text = ""
        self._answer = Static("", classes="turn -assistant -writing", markup=False)
        self._answer.border_title = WRITING
        self.mount(self._answer)
        self._follow()

    def append(self, text: str) -> None:
        """Add streamed text to the answer being written."""
        if self._answer is None:
            return
        self._text += text
        self._answer.update(self._text)
        self._follow()

    def finish(self, text: str, subtitle: str) -> None:
        """Close the answer with its final text and a line of what it cost."""
        if self._answer is None:
            return
        self._text = text
        self._answer.update(text.strip() or "(no text)")
        self._answer.remove_class("-writing")
        self._answer.border_title = "assistant"
        self._answer.border_subtitle = subtitle
        self._answer = None
        self._follow()

    def note(self, text: str, error: bool = False) -> None:
        """A line that is not a turn: why a side is silent, or an error."""
        if self._answer is not None and error:
            self._answer.remove()  # the answer that failed never started
            self._answer = None
        self.mount(Static(text, classes="note -error" if error else "note", markup=False))
        self._follow()

    def clear(self) -> None:
        """Remove every turn and note."""
        self._answer = None
        self._text = ""
        self.remove_children()

    @property
    def turns(self) -> list[str]:
        """The shown turns' texts in order (tests read this)."""
        return [str(turn.content) for turn in self.query(".turn").results(Static)]

    def _follow(self) -> None:
        if self.is_vertical_scroll_end or self.max_scroll_y == 0:
            self.call_after_refresh(self.scroll_end, animate=False)
