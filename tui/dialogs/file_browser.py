"""Browse directories for a file: a directory tree that shows only the wanted kinds."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Static


class FileTree(DirectoryTree):
    """A DirectoryTree with plain-text icons (no emoji) and a filter on file suffixes."""

    ICON_NODE = "▸ "
    ICON_NODE_EXPANDED = "▾ "
    ICON_FILE = "  "

    def __init__(self, path: Path, suffixes: Iterable[str], *, id: str | None = None) -> None:
        super().__init__(path, id=id)
        self.suffixes = tuple(s.lower() for s in suffixes)

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [
            p
            for p in paths
            if not p.name.startswith((".", "__"))
            and (p.is_dir() or not self.suffixes or p.suffix.lower() in self.suffixes)
        ]


class FileBrowserDialog(ModalScreen[Path | None]):
    """Dismisses with the chosen file, or None.

    BINDINGS: ↑↓ move, enter opens a directory / picks a file, backspace goes to the
    parent directory, escape cancels.
    """

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("backspace", "parent", "Parent directory"),
    ]

    def __init__(self, title: str, start: Path, suffixes: Iterable[str] = ()) -> None:
        super().__init__()
        self.title_text = title
        self.start = start if start.is_dir() else start.parent
        self.suffixes = tuple(suffixes)

    def compose(self) -> ComposeResult:
        with Vertical(id="browser-box", classes="dialog") as box:
            box.border_title = self.title_text
            yield Static(str(self.start), id="browser-path", markup=False)
            yield FileTree(self.start, self.suffixes, id="browser-tree")
            yield Static("enter: open / choose   backspace: parent   escape: cancel")

    def on_mount(self) -> None:
        self.query_one(FileTree).focus()

    @on(DirectoryTree.FileSelected)
    def choose(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.dismiss(event.path)

    def action_parent(self) -> None:
        tree = self.query_one(FileTree)
        parent = Path(tree.path).resolve().parent
        tree.path = parent
        self.query_one("#browser-path", Static).update(str(parent))
