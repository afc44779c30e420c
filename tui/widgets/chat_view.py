"""Renders one example's conversation as chat turns, one bordered block per message."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from textual.containers import VerticalScroll
from textual.widgets import Static

from engine.data.formats import Example

PROBLEM_MARK = "◀ problem"
"""Appended to the border title of a highlighted turn, so it reads without colour too."""


def turn_blocks(
    turns: Sequence[tuple[str, str]],
    problem: Collection[int] = (),
    missing: str | None = None,
) -> list[Static]:
    """One Static per turn (role in the border title); `problem` turns are highlighted.

    Args:
        turns: (role, content) in order; any role string is shown as given.
        problem: indices of the turns the problem is about.
        missing: when set, a highlighted placeholder turn of this role is appended (for
            a conversation that lacks, say, its assistant answer).
    """
    blocks = []
    for index, (role, content) in enumerate(turns):
        known = role if role in ("system", "user", "assistant") else "other"
        classes = f"turn -{known}" + (" -problem" if index in problem else "")
        block = Static(content or "(empty)", classes=classes, markup=False)
        block.border_title = role + (f"  {PROBLEM_MARK}" if index in problem else "")
        blocks.append(block)
    if missing:
        block = Static(f"(no {missing} turn)", classes="turn -missing -problem", markup=False)
        block.border_title = f"{missing}  {PROBLEM_MARK}"
        blocks.append(block)
    return blocks


class ChatView(VerticalScroll):
    """A scrollable column of role-labelled turns (system, user, assistant)."""

    def show(self, example: Example | None) -> None:
        """Replace the shown conversation; None clears it."""
        self.remove_children()
        if example is None:
            return
        self.mount_all(turn_blocks([(m.role, m.content) for m in example.messages]))
        self.scroll_home(animate=False)
