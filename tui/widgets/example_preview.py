"""A dataset's examples: a list of one-line previews beside the highlighted one as chat.

       12  My order arrived damaged, what are my options for a refund or a…

The list shows each example's source line and the start of its first user turn; moving
the cursor shows that example's conversation in the ChatView beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from engine.data.formats import Example, LoadedDataset
from tui.widgets.chat_view import ChatView

PREVIEW_CHARS = 70
PREVIEW_LIMIT = 2_000
"""Examples listed in the preview; a 100k-line file lists its first ones."""


class ExampleList(OptionList):
    """The first PREVIEW_LIMIT examples of one LoadedDataset; posts `ExampleHighlighted`."""

    @dataclass
    class ExampleHighlighted(Message):
        """The cursor moved onto an example."""

        example: Example

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.examples: list[Example] = []

    def show(self, dataset: LoadedDataset | None) -> bool:
        """List the dataset's examples, the cursor on the first; False when there is none."""
        self.clear_options()
        self.examples = dataset.examples[:PREVIEW_LIMIT] if dataset else []
        self.add_options(Option(preview(e), id=str(i)) for i, e in enumerate(self.examples))
        if self.examples:
            self.highlighted = 0
        return bool(self.examples)

    @on(OptionList.OptionHighlighted)
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        if event.option_index < len(self.examples):
            self.post_message(self.ExampleHighlighted(self.examples[event.option_index]))


class ExamplePreview(Horizontal):
    """The Examples tab: ExampleList (#example-list) and ChatView (#example-chat)."""

    def compose(self) -> ComposeResult:
        yield ExampleList(id="example-list")
        yield ChatView(id="example-chat")

    def show(self, dataset: LoadedDataset | None) -> None:
        """List the dataset's examples and show the first; None (or no example) clears."""
        if not self.query_one(ExampleList).show(dataset):
            self.query_one(ChatView).show(None)

    @on(ExampleList.ExampleHighlighted)
    def _show_example(self, message: ExampleList.ExampleHighlighted) -> None:
        message.stop()
        self.query_one(ChatView).show(message.example)


def preview(example: Example) -> str:
    """The example's source line and its first user turn, flattened and cut to one line."""
    text = next((m.content for m in example.messages if m.role == "user"), "")
    flat = " ".join(text.split())
    cut = flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"
    return f"{example.line:>5}  {cut}"
