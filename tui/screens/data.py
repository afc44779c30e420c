"""Wizard step 1, Data: the dataset file, its examples as chat, and what lint found.

The path field takes a file or a Hugging Face Hub dataset (`ORG/NAME[:CONFIG][@REVISION]
[[SPLIT]]`), the rows field a row limit (the first N rows; empty: all). When the records
match no known format, the step asks which columns hold the prompt and the response,
listing the columns it saw (`--columns` on the command line).

Linting runs in a worker thread with a progress bar (big files take seconds); token
lengths need the model's tokenizer, so they are counted in a child process afterwards
(`tui.token_survey`) and the report gains the token checks when they arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, ProgressBar, Static, TabbedContent, TabPane, Tabs
from textual.worker import Worker, WorkerState, get_current_worker

from engine.core.paths import sample_data_dir
from engine.data.formats import LoadedDataset
from engine.data.lint.linter import Finding, FixResult, LintReport
from engine.data.sources import DataReading
from tui.backend import DataBackend
from tui.dialogs.clean_copy import clean_copy_prompt, clean_copy_written
from tui.dialogs.error import ErrorDialog
from tui.dialogs.file_browser import FileBrowserDialog
from tui.dialogs.prompt import PromptDialog
from tui.paths import display_path, stylesheet
from tui.screens.base import WizardScreen
from tui.widgets.data_summary import DataSummary
from tui.widgets.example_preview import ExamplePreview
from tui.widgets.finding_view import FindingContext, gather_context
from tui.widgets.lint_pane import LintPane
from tui.widgets.lint_report import LintReportList
from tui.widgets.path_input import DATASET_SUFFIXES, PathInput
from tui.widgets.stats_pane import StatsPane


class DataScreen(WizardScreen):
    """Pick the dataset; see its examples, its lint report and its token lengths.

    BINDINGS:
        ctrl+o: browse for a dataset file (starts in the current file's directory)
        w: write a cleaned copy without error records and exact duplicates
        e / l / s: show the Examples / Lint / Stats tab
    """

    MODE = "data"
    CSS_PATH = stylesheet("data")
    AUTO_FOCUS = "#example-list"
    BINDINGS = [
        Binding("ctrl+o", "browse", "Open file"),
        Binding("w", "clean_copy", "Clean copy"),
        Binding("e", "tab('examples')", "Examples tab", show=False),
        Binding("l", "tab('lint')", "Lint tab", show=False),
        Binding("s", "tab('stats')", "Stats tab", show=False),
    ]

    @dataclass
    class LintProgressed(Message):
        """Share of the file linted so far; only the latest matters."""

        fraction: float

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, DataScreen.LintProgressed)

    @dataclass
    class Inspected(Message):
        """The file was linted and (when usable) loaded."""

        path: Path
        reading: DataReading
        report: LintReport
        dataset: LoadedDataset | None

    @dataclass
    class FindingLoaded(Message):
        """What a finding refers to was read; show it."""

        context: FindingContext
        focus: bool

    @dataclass
    class CleanCopyWritten(Message):
        """`write_cleaned_copy` finished."""

        result: FixResult

    def __init__(self) -> None:
        super().__init__()
        self.shown: tuple[Path, DataReading] | None = None
        self.token_key: tuple[Path, str, int, DataReading] | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="data-file"):
            yield Static("Dataset ", id="data-file-label")
            yield PathInput(suffixes=DATASET_SUFFIXES, id="data-path")
            yield Static(" ^o browse  rows ", id="data-file-keys")
            yield Input(placeholder="all", type="integer", compact=True, id="data-limit")
        yield DataSummary(id="data-summary")
        yield ProgressBar(id="data-progress", total=1.0, show_eta=False)
        with TabbedContent(id="data-tabs", initial="examples"):
            with TabPane("Examples", id="examples"):
                yield ExamplePreview()
            with TabPane("Lint", id="lint"):
                yield LintPane()
            with TabPane("Stats", id="stats"):
                yield StatsPane()

    def sync(self) -> None:
        if (self.wizard.data_path, self.wizard.reading) != self.shown:
            self.open(self.wizard.data_path, self.wizard.reading)
        elif self.wizard.dataset is not None:
            self.count_tokens_if_stale()

    # -- loading -------------------------------------------------------------------------

    def open(self, path: Path, reading: DataReading | None = None) -> None:
        """Show `path` (a file or hub dataset), read as `reading` (default: the row limit
        kept, columns mapped only for the same path): lint and load it in a worker, then
        count its tokens."""
        if path != self.wizard.data_path or (reading or self.wizard.reading) != self.wizard.reading:
            self.wizard.set_data(path, reading)
            self.tunedeck.data_changed()
        reading = self.wizard.reading
        self.shown = (path, reading)
        self.token_key = None
        self.query_one("#data-path", PathInput).value = display_path(path)
        self.query_one("#data-limit", Input).value = str(reading.limit or "")
        self.query_one(DataSummary).note(f"Linting {display_path(path)} …")
        bar = self.query_one("#data-progress", ProgressBar)
        bar.update(progress=0.0)
        bar.display = True
        self.inspect(path, reading)

    @work(thread=True, exclusive=True, group="inspect", exit_on_error=False)
    def inspect(self, path: Path, reading: DataReading) -> None:
        """Lint the data (with progress), then load its examples; off the event loop."""
        backend: DataBackend = self.backend
        progress = lambda f: self.post_message(self.LintProgressed(f))  # noqa: E731
        report = backend.lint(path, progress, reading)
        dataset = None if report.unreadable else backend.load_dataset(path, reading)
        if not get_current_worker().is_cancelled:
            self.post_message(self.Inspected(path, reading, report, dataset))

    @on(Worker.StateChanged)
    def inspection_failed(self, event: Worker.StateChanged) -> None:
        """The file broke the loader: say so here too (the base class shows the dialog)."""
        if event.worker.group == "inspect" and event.state == WorkerState.ERROR:
            self.query_one("#data-progress", ProgressBar).display = False
            text = f"{display_path(self.wizard.data_path)}: cannot be read"
            self.query_one(DataSummary).note(text, error=True)

    @on(LintProgressed)
    def show_lint_progress(self, message: LintProgressed) -> None:
        self.query_one("#data-progress", ProgressBar).update(progress=message.fraction)

    @on(Inspected)
    def show_inspection(self, message: Inspected) -> None:
        if (message.path, message.reading) != (self.wizard.data_path, self.wizard.reading):
            return  # the user has opened another file (or changed the rows) since
        self.query_one("#data-progress", ProgressBar).display = False
        self.wizard.report = message.report
        self.wizard.dataset = message.dataset
        self._show_report(message.report)
        self.query_one(ExamplePreview).show(message.dataset)
        usable = message.dataset is not None and bool(message.dataset.examples)
        self.tunedeck.set_step_done("data", usable)
        if message.report.unreadable and message.report.stats.columns:
            self.ask_columns(message.report.stats.columns)
        elif message.report.unreadable:
            unreadable = message.report.errors[-1]
            self.app.push_screen(
                ErrorDialog(unreadable.message, unreadable.hint, "Cannot use file")
            )
        self.action_tab("lint" if message.report.errors else self.query_one(TabbedContent).active)
        if usable:
            self.count_tokens_if_stale()

    def count_tokens_if_stale(self) -> None:
        """(Re)count tokens when the file, the model or max_seq_len changed."""
        wizard = self.wizard
        key = (wizard.data_path, wizard.model, wizard.config.max_seq_len, wizard.reading)
        if key == self.token_key:
            return
        self.token_key = key
        backend: DataBackend = self.backend  # the pane's worker calls it
        survey = partial(backend.survey_tokens, reading=wizard.reading)
        self.query_one(StatsPane).count(survey, *key[:3])

    @on(StatsPane.TokensCounted)
    def show_tokens(self, message: StatsPane.TokensCounted) -> None:
        if message.path != self.wizard.data_path:
            return
        self.wizard.tokens = message.survey
        self.wizard.report = message.survey.report
        self._show_report(message.survey.report)
        self.query_one(StatsPane).show_survey(message.survey)

    @on(StatsPane.TokensFailed)
    def show_token_failure(self, message: StatsPane.TokensFailed) -> None:
        if message.path == self.wizard.data_path:
            self.token_key = None  # let a later visit try again
            self.query_one(StatsPane).note(f"tokens not counted: {message.reason}")

    # -- showing -------------------------------------------------------------------------

    def _show_report(self, report: LintReport) -> None:
        self.query_one(DataSummary).show_report(report)
        tabs = self.query_one(TabbedContent)
        tabs.get_tab("lint").label = f"Lint ({len(report.errors)}✗ {len(report.warnings)}!)"
        self.query_one(LintPane).show_report(report)
        self.query_one(StatsPane).show_report(report, self.wizard.tokens)

    @on(LintReportList.FindingHighlighted)
    def preview_finding(self, message: LintReportList.FindingHighlighted) -> None:
        self.load_finding(message.finding, focus=False)

    @on(LintReportList.FindingChosen)
    def open_finding(self, message: LintReportList.FindingChosen) -> None:
        self.load_finding(message.finding, focus=True)

    @work(thread=True, exclusive=True, group="finding", exit_on_error=False)
    def load_finding(self, finding: Finding, focus: bool) -> None:
        """Gather the example (or source line) a finding is about; reading may take a while."""
        path, dataset = self.wizard.data_path, self.wizard.dataset
        examples = dataset.examples if dataset else []
        backend: DataBackend = self.backend
        context = gather_context(
            finding, examples, lambda line: backend.read_source_line(path, line)
        )
        if not get_current_worker().is_cancelled:
            self.post_message(self.FindingLoaded(context, focus))

    @on(FindingLoaded)
    def show_finding(self, message: FindingLoaded) -> None:
        self.query_one(LintPane).show_finding(message.context, message.focus)

    # -- actions -------------------------------------------------------------------------

    @on(PathInput.Submitted, "#data-path")
    def path_entered(self, event: PathInput.Submitted) -> None:
        path = Path(event.value.strip()).expanduser()
        if event.value.strip() and (self.shown is None or path != self.shown[0]):
            self.open(path)

    @on(Input.Submitted, "#data-limit")
    def limit_entered(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        limit = int(text) if text.isdigit() and int(text) > 0 else None
        reading = DataReading(limit, self.wizard.reading.columns)
        if reading != self.wizard.reading:
            self.open(self.wizard.data_path, reading)

    def ask_columns(self, columns: tuple[str, ...]) -> None:
        """No known format: ask which columns hold the prompt and the response."""
        guess = f"prompt={columns[0]},response={columns[1]}" if len(columns) > 1 else ""
        label = (
            f"The records match no known format. Columns seen: {', '.join(columns)}.\n"
            "Which hold the prompt and the response (and optionally the system prompt)?\n"
            "prompt=COLUMN,response=COLUMN[,system=COLUMN]"
        )
        self.app.push_screen(PromptDialog("Map columns", label, guess), self._columns_chosen)

    def _columns_chosen(self, text: str | None) -> None:
        if text:
            self.open(self.wizard.data_path, DataReading(self.wizard.reading.limit, text))

    def action_tab(self, tab: str) -> None:
        """Show a tab and put the focus on its list, so the keys work at once."""
        tabs = self.query_one(TabbedContent)
        tabs.active = tab
        # Focus must move into the shown pane: focus left in a hidden pane would make
        # TabbedContent switch back to it. The Stats pane has nothing to focus but the tabs.
        target = {"examples": "#example-list", "lint": "#lint-report"}.get(tab)
        (self.query_one(target) if target else tabs.query_one(Tabs)).focus()

    def action_browse(self) -> None:
        current = self.wizard.data_path
        start = current.parent if current.parent.is_dir() else sample_data_dir()
        self.app.push_screen(
            FileBrowserDialog("Open a dataset", start, DATASET_SUFFIXES), self._browsed
        )

    def _browsed(self, path: Path | None) -> None:
        if path is not None:
            self.open(path)

    def action_clean_copy(self) -> None:
        report = self.wizard.report
        if report is None or report.unreadable:
            self.notify("Nothing to clean: the file is not loaded.", severity="warning")
            return
        prompt = clean_copy_prompt(report, self.wizard.data_path)
        self.app.push_screen(prompt, self._write_clean_copy)

    def _write_clean_copy(self, target: str | None) -> None:
        if target:
            self.write_clean_copy(self.wizard.data_path, Path(target).expanduser())

    @work(thread=True, exclusive=True, group="clean", exit_on_error=False)
    def write_clean_copy(self, path: Path, out: Path) -> None:
        """Write the copy off the event loop; errors reach the app's error dialog."""
        backend: DataBackend = self.backend
        self.post_message(self.CleanCopyWritten(backend.write_cleaned_copy(path, out)))

    @on(CleanCopyWritten)
    def offer_clean_copy(self, message: CleanCopyWritten) -> None:
        out = message.result.out
        self.app.push_screen(
            clean_copy_written(message.result), lambda yes: self.open(out) if yes else None
        )

    def leave_blocker(self) -> str | None:
        dataset = self.wizard.dataset
        if dataset is None:
            return "the dataset is not loaded (yet): pick a file that lints without `unreadable`"
        if not dataset.examples:
            return "the dataset has no usable example: see the Lint tab, or pick another file"
        return None
