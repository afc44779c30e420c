"""Blind A/B review: two answers to one example, sides shuffled, system names hidden.

Above the answers, the prompt they answer: the user's turn in full, earlier turns on one
line each, the system prompt collapsed to its first words (enter on it shows it all). The
reference stays hidden until asked for (`r`), and hides again at the next pair, so that
it does not sway a judgement it is not part of. Everything scrolls at 80x24.

The screen hands the dialog its pairs, the rows they come from, and a `record` function
(it has the preference saved in a worker thread, which then hands the updated statistics
to `show_stats`): the dialog touches no files.

BINDINGS: 1 left is better, 2 right is better, t tie, r show / hide the reference,
escape stops.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import Collapsible, Static

from engine.eval.review import AbPair, AbStats, EvalRow
from tui.paths import stylesheet

RecordFn = Callable[[AbPair, str], None]
"""Has one preference ("left" / "right" / "tie") saved; the win rate comes to `show_stats`."""
SYSTEM_CHARS = 48
"""Characters of the system prompt in its collapsed title (fits 80 columns)."""
TURN_CHARS = 100
"""Characters of each earlier turn of a conversation."""
KEYS = "1: left better  2: right better  t: tie  r: {} reference  escape: stop"


def stats_line(stats: AbStats | None) -> str:
    """`4 rated: fine-tuned won 3, lost 1, tied 0 (win rate 75%)`."""
    if stats is None or not stats.n:
        return "nothing rated yet"
    rate = "—" if stats.win_rate is None else f"{stats.win_rate:.0%}"
    return (
        f"{stats.n} rated: fine-tuned won {stats.wins}, lost {stats.losses}, "
        f"tied {stats.ties} (win rate {rate})"
    )


def shorten(text: str, limit: int) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def titled(title: str, body: str) -> Content:
    """A bold title line above a body shown as it is (no markup)."""
    return Content.assemble((title, "bold"), "\n", body)


def system_prompt(row: EvalRow) -> str:
    """The system prompt the example was asked with ("" when there is none)."""
    return "\n".join(m["content"] for m in row.messages if m.get("role") == "system")


def earlier_turns(row: EvalRow) -> str:
    """The turns before the last user turn, one shortened line each ("" for one turn)."""
    turns = [m for m in row.messages if m.get("role") != "system"]
    last_user = max((i for i, m in enumerate(turns) if m.get("role") == "user"), default=None)
    earlier = turns[:last_user] if last_user is not None else []
    return "\n".join(f"{m['role']}: {shorten(m['content'], TURN_CHARS)}" for m in earlier)


class AbReviewDialog(ModalScreen[int]):
    """Dismisses with the number of preferences recorded."""

    CSS_PATH = stylesheet("eval_dialogs")
    BINDINGS = [
        Binding("1", "choose('left')", "Left better"),
        Binding("2", "choose('right')", "Right better"),
        Binding("t", "choose('tie')", "Tie"),
        Binding("r", "toggle_reference", "Reference"),
        Binding("escape", "done", "Stop"),
    ]

    def __init__(
        self,
        pairs: list[AbPair],
        record: RecordFn,
        stats: AbStats | None,
        rows: Mapping[int, EvalRow],
    ) -> None:
        """`rows`: the examples of the pairs by index, for their prompt and reference."""
        super().__init__()
        self.pairs = pairs
        self.record = record
        self.stats = stats
        self.rows = rows
        self.position = 0
        self.recorded = 0
        self.show_reference = False

    def compose(self) -> ComposeResult:
        with Vertical(id="ab-box", classes="dialog") as box:
            box.border_title = "Blind A/B: which answer is better?"
            yield Static("", id="ab-progress", markup=False)
            with VerticalScroll(id="ab-scroll"):
                with Collapsible(title="system prompt", id="ab-system"):
                    yield Static("", id="ab-system-text", markup=False)
                yield Static("", id="ab-context", markup=False)
                yield Static("", id="ab-prompt", markup=False)
                yield Static("", id="ab-reference", markup=False)
                with Horizontal(id="ab-sides"):
                    yield Static("", id="ab-left", classes="ab-side", markup=False)
                    yield Static("", id="ab-right", classes="ab-side", markup=False)
            yield Static("", id="ab-stats", markup=False)
            yield Static("", id="ab-keys", markup=False)

    def on_mount(self) -> None:
        self._show()
        self.query_one("#ab-scroll", VerticalScroll).focus()

    @property
    def pair(self) -> AbPair | None:
        return self.pairs[self.position] if self.position < len(self.pairs) else None

    def _show(self) -> None:
        pair = self.pair
        row = self.rows.get(pair.index) if pair is not None else None
        self.query_one("#ab-scroll", VerticalScroll).display = pair is not None
        progress = self.query_one("#ab-progress", Static)
        if pair is None:
            progress.update("All pairs rated. escape closes.")
        else:
            position = f"{self.position + 1}/{len(self.pairs)}"
            progress.update(f"Example {pair.index + 1} ({position})")
            self._show_prompt(row)
            self.query_one("#ab-left", Static).update(f"1 (left)\n\n{pair.left_text}")
            self.query_one("#ab-right", Static).update(f"2 (right)\n\n{pair.right_text}")
            self.query_one("#ab-scroll", VerticalScroll).scroll_home(animate=False)
        self._show_reference(row)
        self.query_one("#ab-stats", Static).update(stats_line(self.stats))

    def _show_prompt(self, row: EvalRow | None) -> None:
        system = system_prompt(row) if row is not None else ""
        collapsible = self.query_one("#ab-system", Collapsible)
        collapsible.display = bool(system)
        collapsible.title = f"system prompt: {shorten(system, SYSTEM_CHARS)}"
        collapsible.collapsed = True
        self.query_one("#ab-system-text", Static).update(system)
        turns = earlier_turns(row) if row is not None else ""
        context = self.query_one("#ab-context", Static)
        context.update(turns)
        context.display = bool(turns)
        prompt = row.prompt if row is not None else "(the prompt of this example is not loaded)"
        self.query_one("#ab-prompt", Static).update(titled("prompt", prompt))

    def _show_reference(self, row: EvalRow | None) -> None:
        reference = self.query_one("#ab-reference", Static)
        shown = self.show_reference and row is not None
        reference.display = shown
        reference.update(titled("reference", row.reference) if shown and row is not None else "")
        keys = KEYS.format("hide" if shown else "show")
        self.query_one("#ab-keys", Static).update(keys)

    def action_toggle_reference(self) -> None:
        if self.pair is None:
            return
        self.show_reference = not self.show_reference
        self._show_reference(self.rows.get(self.pair.index))

    def action_choose(self, preferred: str) -> None:
        pair = self.pair
        if pair is None:
            return
        self.record(pair, preferred)
        self.recorded += 1
        self.position += 1
        self.show_reference = False  # each judgement starts blind to the reference
        self._show()

    def show_stats(self, stats: AbStats) -> None:
        """The win rate so far (once the screen's worker has saved a preference)."""
        self.stats = stats
        with contextlib.suppress(NoMatches):  # the dialog may be closed by now
            self.query_one("#ab-stats", Static).update(stats_line(stats))

    def action_done(self) -> None:
        self.dismiss(self.recorded)
