"""Wizard step 1, Data: the dataset file, its format and size, and its examples as chat."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from engine.errors import TunedeckError
from engine.formats import LoadedDataset
from tui.widgets.chat_view import ChatView

PREVIEW_CHARS = 60


class DataScreen(Screen[None]):
    """Shows what the wizard will train on. Loading runs in a worker thread."""

    BINDINGS = [("j", "cursor_down", "Next"), ("k", "cursor_up", "Previous")]

    @dataclass
    class Loaded(Message):
        """The dataset was parsed."""

        dataset: LoadedDataset

    @dataclass
    class Failed(Message):
        """The dataset could not be read; `text` says why and what to do."""

        text: str

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.dataset: LoadedDataset | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"Loading {self.path} …", id="data-summary")
        with Horizontal(id="data-body"):
            yield OptionList(id="example-list")
            yield ChatView(id="example-chat")
        yield Footer()

    def on_mount(self) -> None:
        self.load(self.path)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def load(self, path: Path) -> None:
        """Parse the file off the event loop; big files must not freeze the UI."""
        try:
            dataset = self.app.backend.load_dataset(path)  # type: ignore[attr-defined]
        except TunedeckError as exc:
            self.post_message(self.Failed(str(exc)))
        except OSError as exc:
            self.post_message(self.Failed(f"cannot read {path}: {exc.strerror or exc}"))
        else:
            self.post_message(self.Loaded(dataset))

    @on(Loaded)
    def show_dataset(self, message: Loaded) -> None:
        self.dataset = dataset = message.dataset
        skipped = len(dataset.skipped_lines)
        summary = (
            f"{dataset.path}  ·  format: {dataset.format}  ·  {len(dataset.examples)} examples"
        )
        if skipped:
            summary += f"  ·  {skipped} unreadable lines skipped (run `tunedeck lint`)"
        self.query_one("#data-summary", Static).update(summary)
        options = self.query_one("#example-list", OptionList)
        options.clear_options()
        options.add_options(
            Option(f"{ex.line:>5}  {_first_user_text(ex)}", id=str(i))
            for i, ex in enumerate(dataset.examples)
        )
        if dataset.examples:
            options.highlighted = 0
            options.focus()

    @on(Failed)
    def show_failure(self, message: Failed) -> None:
        summary = self.query_one("#data-summary", Static)
        summary.update(message.text)
        summary.add_class("-error")

    @on(OptionList.OptionHighlighted, "#example-list")
    def show_example(self, event: OptionList.OptionHighlighted) -> None:
        if self.dataset is not None and event.option_index is not None:
            self.query_one(ChatView).show(self.dataset.examples[event.option_index])

    def action_cursor_down(self) -> None:
        self.query_one("#example-list", OptionList).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one("#example-list", OptionList).action_cursor_up()


def _first_user_text(example) -> str:
    text = next((m.content for m in example.messages if m.role == "user"), "")
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"
