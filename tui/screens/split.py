"""Wizard step 2, Split: hold out validation data, and check the split is honest.

The preview is the very split a run makes: the same engine call (`split_dataset`) with
the same arguments, written to a temporary directory. It shows the counts, label balance
per side, leakage (validation examples that also occur in training), and, when the
validation set is too small to tell models apart, the share that would be enough
(engine.data.split_advice).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import DataTable, Input, Static
from textual.worker import get_current_worker

from engine.core.errors import TunedeckError
from engine.data.split import RECOMMENDED, SplitResult
from engine.data.split_advice import validation_advice
from tui.backend import DataBackend
from tui.paths import display_path, stylesheet
from tui.screens.base import WizardScreen
from tui.widgets.path_input import DATASET_SUFFIXES, PathInput
from tui.wizard import SplitChoice

MAX_FRACTION = 0.5
"""The run config's limit (data.val_fraction <= 0.5)."""
PAIRS_SHOWN = 6


def parse_fraction(text: str) -> float:
    """'0.15', '15 %' or '15' -> 0.15; raises ValueError with a message for anything else."""
    cleaned = text.strip().rstrip("%").strip()
    try:
        value = float(cleaned)
    except ValueError:
        raise ValueError("a fraction such as 0.1, or a percentage such as 10 %") from None
    if text.strip().endswith("%") or value > 1:
        value /= 100
    if not 0 < value <= MAX_FRACTION:
        raise ValueError(f"between 1 % and {MAX_FRACTION:.0%}")
    return round(value, 4)


class SplitScreen(WizardScreen):
    """Choose the validation set: a fraction of the data (with a seed) or a separate file.

    BINDINGS:
        + / -: validation fraction up / down by 5 points (when not typing in a field)
    """

    MODE = "split"
    CSS_PATH = stylesheet("split")
    BINDINGS = [
        Binding("plus,equals_sign", "nudge(0.05)", "More val"),
        Binding("minus", "nudge(-0.05)", "Less val"),
    ]

    @dataclass
    class Previewed(Message):
        """The split for `choice` was computed."""

        choice: SplitChoice
        result: SplitResult

    @dataclass
    class PreviewFailed(Message):
        """The split for `choice` cannot be made; message and hint say why."""

        choice: SplitChoice
        message: str
        hint: str

    def __init__(self) -> None:
        super().__init__()
        self.shown: tuple[object, ...] | None = None

    def compose_body(self) -> ComposeResult:
        yield Static(
            "Validation examples are held out of training: their loss shows whether the "
            "model learns the pattern or memorises the examples.",
            id="split-intro",
        )
        with Horizontal(id="split-form"):
            yield Static("Validation fraction ", classes="split-label")
            yield Input(id="val-fraction", compact=True)
            yield Static("  Seed ", classes="split-label")
            yield Input(id="split-seed", compact=True, type="integer")
        with Horizontal(id="split-file"):
            yield Static("or a separate file ", classes="split-label")
            yield PathInput(
                suffixes=DATASET_SUFFIXES,
                placeholder="validation file (empty: split the dataset; → completes)",
                id="val-file",
            )
        yield Static("", id="split-field-error")
        yield Static("", id="split-summary")
        with Horizontal(id="split-body"):
            yield DataTable(id="label-table", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="split-side"):
                yield Static("", id="split-advice")
                yield Static("", id="split-warnings")
                yield Static("", id="leakage")

    def on_mount(self) -> None:
        choice = self.wizard.split
        self.query_one("#val-fraction", Input).value = f"{choice.val_fraction:g}"
        self.query_one("#split-seed", Input).value = str(choice.seed)
        if choice.val_file is not None:
            self.query_one("#val-file", PathInput).value = display_path(choice.val_file)

    def sync(self) -> None:
        dataset = self.wizard.dataset
        choice = self.wizard.split
        key = (id(dataset), choice.val_fraction, choice.seed, choice.val_file)
        if dataset is None:
            self.query_one("#split-summary", Static).update("Load a dataset in step 1 first.")
        elif key != self.shown:
            self.shown = key
            self.query_one("#split-summary", Static).update("Splitting …")
            self.preview(self.wizard.data_path, SplitChoice(**vars(choice)))

    @work(thread=True, exclusive=True, group="split", exit_on_error=False)
    def preview(self, path: Path, choice: SplitChoice) -> None:
        """Compute the split off the event loop (near-duplicate search takes a while)."""
        backend: DataBackend = self.backend
        try:
            result = backend.preview_split(
                path, choice.val_fraction, choice.seed, choice.val_file, self.wizard.reading
            )
        except TunedeckError as exc:
            self.post_message(self.PreviewFailed(choice, exc.message, exc.hint))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(self.Previewed(choice, result))

    # -- the form --------------------------------------------------------------------------

    @on(Input.Changed, "#val-fraction, #split-seed")
    @on(Input.Submitted, "#val-file")
    @on(Input.Blurred, "#val-file")
    def choice_edited(self) -> None:
        error = self.query_one("#split-field-error", Static)
        try:
            choice = self._read_choice()
        except ValueError as exc:
            error.update(str(exc))
            error.add_class("-error")
            self.tunedeck.set_step_done("split", False)
            return
        error.update("")
        error.remove_class("-error")
        if vars(choice) != vars(self.wizard.split):
            self.wizard.split = choice
            self.tunedeck.split_changed()
        self.sync()

    def _read_choice(self) -> SplitChoice:
        fraction_text = self.query_one("#val-fraction", Input).value
        try:
            fraction = parse_fraction(fraction_text)
        except ValueError as exc:
            raise ValueError(f"Validation fraction: {exc}") from None
        seed_text = self.query_one("#split-seed", Input).value.strip()
        if not seed_text.isdigit() or int(seed_text) > 2**32 - 1:
            raise ValueError("Seed: a whole number from 0 to 4294967295")
        file_text = self.query_one("#val-file", PathInput).value.strip()
        val_file = Path(file_text).expanduser() if file_text else None
        if val_file is not None and not val_file.is_file():
            raise ValueError(f"Validation file: {file_text} is not a file")
        return SplitChoice(fraction, int(seed_text), val_file)

    def action_nudge(self, delta: float) -> None:
        fraction = min(MAX_FRACTION, max(0.05, round(self.wizard.split.val_fraction + delta, 2)))
        self.query_one("#val-fraction", Input).value = f"{fraction:g}"

    # -- the preview -----------------------------------------------------------------------

    @on(Previewed)
    def show_split(self, message: Previewed) -> None:
        if vars(message.choice) != vars(self.wizard.split):
            return  # the user changed the choice since
        result = message.result
        self.wizard.split_result = result
        self.tunedeck.set_step_done("split", True)
        self.query_one("#split-summary", Static).update(_summary(result))
        self._show_labels(result)
        self._show_advice(result, message.choice)
        self.query_one("#split-warnings", Static).update(_warnings(result))
        self.query_one("#leakage", Static).update(_leakage(result))

    @on(PreviewFailed)
    def show_failure(self, message: PreviewFailed) -> None:
        if vars(message.choice) != vars(self.wizard.split):
            return
        self.wizard.split_result = None
        self.tunedeck.set_step_done("split", False)
        hint = f"\nhint: {message.hint}" if message.hint else ""
        summary = self.query_one("#split-summary", Static)
        summary.update(Content(f"✗ {message.message}{hint}"))
        self.query_one(DataTable).clear()
        self.query_one("#split-advice", Static).display = False

    def _show_labels(self, result: SplitResult) -> None:
        table = self.query_one(DataTable)
        labels = list(dict.fromkeys([*result.train_labels, *result.val_labels]))
        # Widths set from the labels: the automatic ones could stay at the header's width
        # when the rows arrived before the table's first layout (labels cut to "how_t").
        table.clear(columns=True)
        table.add_column("label", width=max([5, *map(len, labels)]))
        table.add_columns("train", "val", "val share")
        for label in labels:
            train, val = result.train_labels.get(label, 0), result.val_labels.get(label, 0)
            share = f"{val / (train + val):.0%}" if train + val else "-"
            table.add_row(label, str(train), str(val), share)

    def _show_advice(self, result: SplitResult, choice: SplitChoice) -> None:
        total = result.train_count + result.val_count
        fraction = None if choice.val_file is not None else choice.val_fraction
        advice = validation_advice(total, result.val_count, fraction)
        line = self.query_one("#split-advice", Static)
        line.update(Content(f"! {advice.message}") if advice else "")
        line.display = advice is not None

    def leave_blocker(self) -> str | None:
        if self.wizard.split_result is None:
            return "the split is not ready: fix the fields marked above"
        return None


def _summary(result: SplitResult) -> Content:
    total = result.train_count + result.val_count
    share = result.val_count / total if total else 0.0
    text = (
        f"Training {result.train_count:,} · validation {result.val_count:,} ({share:.0%})"
        f" · seed {result.seed}"
    )
    if result.label_key is not None:
        name = "the whole answer" if result.label_key == "" else f"'{result.label_key}'"
        text += f" · stratified by {name}"
    if result.groups:
        text += f" · {result.groups} duplicate group(s) kept on one side"
    return Content(text)


def _warnings(result: SplitResult) -> Content:
    low, high = RECOMMENDED
    lines = [f"! {w}" for w in result.warnings]
    if not lines:
        lines = [f"✓ validation share within the usual {low:.0%}-{high:.0%}"]
    if result.skipped_lines:
        lines.append(f"  {len(result.skipped_lines)} line(s) with errors are left out")
    return Content("\n".join(lines))


def _leakage(result: SplitResult) -> Content:
    leak = result.leakage
    if leak.is_clean:
        return Content(
            "✓ No leakage: no validation example also occurs in training (exact, "
            "near-duplicate or same prompt)."
        )
    lines = [f"✗ Leakage: {leak.summary()}", "  validation line ↔ training line:"]
    for kind, pairs in (
        ("exact", leak.exact_pairs),
        ("near", leak.near_pairs),
        ("same prompt", leak.same_prompt_pairs),
    ):
        lines += [f"  {val:>5} ↔ {train:<5} {kind}" for val, train in pairs[:PAIRS_SHOWN]]
    return Content("\n".join(lines))
