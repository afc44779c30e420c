"""Renders one example's conversation as chat turns, one block per message."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widgets import Static

from engine.formats import Example


class ChatView(VerticalScroll):
    """A scrollable column of role-labelled turns (system, user, assistant)."""

    def show(self, example: Example | None) -> None:
        """Replace the shown conversation; None clears it."""
        self.remove_children()
        if example is None:
            return
        turns = [
            Static(message.content, classes=f"turn -{message.role}", markup=False)
            for message in example.messages
        ]
        for turn, message in zip(turns, example.messages, strict=True):
            turn.border_title = message.role
        self.mount_all(turns)
        self.scroll_home(animate=False)
