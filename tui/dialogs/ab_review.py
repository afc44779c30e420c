"""Blind A/B review: two answers to one example, sides shuffled, system names hidden.

The screen hands the dialog its pairs and a `record` function (it saves the preference
and returns the updated statistics), so the dialog itself touches no files.

BINDINGS: 1 left is better, 2 right is better, t tie, escape stops.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from engine.review import AbPair, AbStats
from tui.paths import stylesheet

RecordFn = Callable[[AbPair, str], AbStats]
"""Saves one preference ("left" / "right" / "tie"); returns the win rate so far."""


def stats_line(stats: AbStats | None) -> str:
    """`4 rated: fine-tuned won 3, lost 1, tied 0 (win rate 75%)`."""
    if stats is None or not stats.n:
        return "nothing rated yet"
    rate = "—" if stats.win_rate is None else f"{stats.win_rate:.0%}"
    return (
        f"{stats.n} rated: fine-tuned won {stats.wins}, lost {stats.losses}, "
        f"tied {stats.ties} (win rate {rate})"
    )


class AbReviewDialog(ModalScreen[int]):
    """Dismisses with the number of preferences recorded."""

    CSS_PATH = stylesheet("eval_dialogs")
    BINDINGS = [
        Binding("1", "choose('left')", "Left better"),
        Binding("2", "choose('right')", "Right better"),
        Binding("t", "choose('tie')", "Tie"),
        Binding("escape", "done", "Stop"),
    ]

    def __init__(self, pairs: list[AbPair], record: RecordFn, stats: AbStats | None) -> None:
        super().__init__()
        self.pairs = pairs
        self.record = record
        self.stats = stats
        self.position = 0
        self.recorded = 0

    def compose(self) -> ComposeResult:
        with Vertical(id="ab-box", classes="dialog") as box:
            box.border_title = "Blind A/B: which answer is better?"
            yield Static("", id="ab-prompt", markup=False)
            with Horizontal(id="ab-sides"):
                yield Static("", id="ab-left", classes="ab-side", markup=False)
                yield Static("", id="ab-right", classes="ab-side", markup=False)
            yield Static("", id="ab-stats", markup=False)
            yield Static("1: left better   2: right better   t: tie   escape: stop", id="ab-keys")

    def on_mount(self) -> None:
        self._show()

    @property
    def pair(self) -> AbPair | None:
        return self.pairs[self.position] if self.position < len(self.pairs) else None

    def _show(self) -> None:
        pair = self.pair
        left, right = self.query_one("#ab-left", Static), self.query_one("#ab-right", Static)
        progress = f"{min(self.position + 1, len(self.pairs))}/{len(self.pairs)}"
        if pair is None:
            self.query_one("#ab-prompt", Static).update("All pairs rated. escape closes.")
            left.update("")
            right.update("")
        else:
            self.query_one("#ab-prompt", Static).update(f"Example {pair.index + 1} ({progress})")
            left.update(f"1 (left)\n\n{pair.left_text}")
            right.update(f"2 (right)\n\n{pair.right_text}")
        self.query_one("#ab-stats", Static).update(stats_line(self.stats))

    def action_choose(self, preferred: str) -> None:
        pair = self.pair
        if pair is None:
            return
        # One appended, fsynced line: fast enough to do on the keystroke.
        self.stats = self.record(pair, preferred)
        self.recorded += 1
        self.position += 1
        self._show()

    def action_done(self) -> None:
        self.dismiss(self.recorded)
