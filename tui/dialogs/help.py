"""Every key binding of the app, screen by screen, in one scrollable modal (`?`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

GENERAL_KEYS: tuple[tuple[str, str], ...] = (
    ("tab / shift+tab", "move between fields and lists"),
    ("↑ ↓ / pgup pgdn", "move in a list or table"),
    ("enter", "open / choose / apply the focused item"),
    ("→", "accept the greyed-out completion of a path"),
    ("escape", "close a dialog, or go back from Runs / Models"),
    ("ctrl+q", "quit, even while typing in a field (runs keep training)"),
)
"""Keys the widgets themselves handle; listed so that nothing needs the mouse."""


def binding_rows(app_key_display, bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    """(keys, description) for each described binding, keys of one action joined."""
    rows: dict[str, list[str]] = {}
    for binding in Binding.make_bindings(bindings):
        if not binding.description:
            continue
        rows.setdefault(binding.description, []).append(app_key_display(binding))
    return [(" / ".join(dict.fromkeys(keys)), text) for text, keys in rows.items()]


class HelpDialog(ModalScreen[None]):
    """Lists `sections` of (title, bindings); escape, q or ? closes it.

    BINDINGS: escape / q / ? close.
    """

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, sections: Sequence[tuple[str, Iterable[BindingType]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box", classes="dialog") as box:
            box.border_title = "Keys (escape closes)"
            with VerticalScroll(id="help-body"):
                yield Static(self._section("General", list(GENERAL_KEYS)), classes="help-section")
                for title, bindings in self.sections:
                    rows = binding_rows(self.app.get_key_display, bindings)
                    if rows:
                        yield Static(self._section(title, rows), classes="help-section")

    @staticmethod
    def _section(title: str, rows: list[tuple[str, str]]) -> Content:
        width = max(len(keys) for keys, _ in rows)
        lines = [Content.from_markup("[b]$title[/b]", title=title)]
        lines += [
            Content.from_markup("  [b]$keys[/b]  $text", keys=keys.ljust(width), text=text)
            for keys, text in rows
        ]
        return Content("\n").join(lines)
