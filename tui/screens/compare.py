"""Compare: two or more runs side by side, opened from the Runs list (space marks, c).

One chart overlays every run's training loss (a line) and validation loss (points); below
it, the config fields whose values differ and the evaluation aggregates of each system,
one column per run. Runs are lettered A, B, ... in the order they were marked; the lines
on top say which run is which, with its markers on the chart. The data comes from
engine.runs.compare, the same that `tunedeck compare` prints.

When every run was scored on the same test file(s), an outcome section under the chart
shows, for one of them, each run's primary score with its 95 % interval and a sentence per
later run against the first (engine.runs.outcome, as `tunedeck compare --data` prints);
`t` cycles through the shared test files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Static

from engine.core.errors import TunedeckError
from engine.runs.compare import Comparison, config_rows, eval_rows
from engine.runs.outcome import Outcome
from tui.backend import RunsBackend
from tui.paths import stylesheet
from tui.screens.base import WizardScreen
from tui.widgets.compare_chart import CompareChart, RunCurves, series_key


def run_tag(index: int) -> str:
    """A, B, ... Z, then A2, B2, ...: short column headers and legend names."""
    letter = chr(ord("A") + index % 26)
    return letter if index < 26 else f"{letter}{index // 26 + 1}"


class CompareScreen(WizardScreen):
    """Loss curves, config differences and eval summaries of the runs given.

    BINDINGS:
        escape: back to the Runs list
        t: the outcome on the next test file every run was scored on (only while the
            outcome section shows; otherwise the app's `t`, the Playground)
    """

    MODE = "runs"
    CSS_PATH = stylesheet("compare")
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("t", "next_test_set", "Test file"),
    ]

    @dataclass
    class Loaded(Message):
        """The comparison of the runs, read off the event loop."""

        comparison: Comparison

    @dataclass
    class TestSetsListed(Message):
        """The test sets every compared run was scored on (maybe none)."""

        names: list[str]

    @dataclass
    class OutcomeLoaded(Message):
        """The runs' outcome on one shared test set, or why there is none."""

        eval_set: str
        outcome: Outcome | None
        error: str = ""

    def __init__(self, run_dirs: list[Path]) -> None:
        """Args:
        run_dirs: the runs to compare (two or more), in column order.
        """
        super().__init__()
        self.run_dirs = list(run_dirs)
        self.comparison: Comparison | None = None
        self.test_sets: list[str] = []
        """The test sets every run was scored on; the outcome shows one of them."""
        self.test_set_index = 0
        self.outcome: Outcome | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("Reading the runs…", id="compare-runs", markup=False)
        yield CompareChart(id="compare-chart")
        yield Static("", id="compare-outcome", markup=False)
        with Horizontal(id="compare-tables"):
            with Vertical(id="compare-config-side"):
                yield Static("Config differences", classes="compare-heading")
                yield DataTable(id="compare-config", cursor_type="row", zebra_stripes=True)
                yield Static("", id="compare-config-note", classes="compare-note")
            with Vertical(id="compare-eval-side"):
                yield Static("Evaluation", id="compare-eval-heading", classes="compare-heading")
                yield DataTable(id="compare-eval", cursor_type="row", zebra_stripes=True)
                yield Static("", id="compare-eval-note", classes="compare-note")

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, exit_on_error=False)
    def load(self) -> None:
        """Read every run's events, config and eval summary, then list the test sets they
        share (files: off the event loop)."""
        backend: RunsBackend = self.backend
        self.post_message(self.Loaded(backend.compare_runs(self.run_dirs)))
        self.post_message(self.TestSetsListed(backend.shared_test_sets(self.run_dirs)))

    @work(thread=True, exclusive=True, group="outcome", exit_on_error=False)
    def load_outcome(self, eval_set: str) -> None:
        """Re-score the runs' stored answers on one test set and test them in pairs."""
        backend: RunsBackend = self.backend
        try:
            outcome = backend.compare_outcome(self.run_dirs, eval_set)
        except TunedeckError as exc:
            self.post_message(self.OutcomeLoaded(eval_set, None, exc.message))
            return
        self.post_message(self.OutcomeLoaded(eval_set, outcome))

    @on(Loaded)
    def show_comparison(self, message: Loaded) -> None:
        comparison = self.comparison = message.comparison
        tags = [run_tag(index) for index in range(len(comparison.runs))]
        chart = self.query_one(CompareChart)
        self.query_one("#compare-runs", Static).update(_legend(comparison, tags, chart))
        chart.show(
            [RunCurves(t, r.train, r.val) for t, r in zip(tags, comparison.runs, strict=True)]
        )
        self._fill("config", ["field", *tags], config_rows(comparison),
                   "The configs are identical.")  # fmt: skip
        primary = comparison.primary
        heading = self.query_one("#compare-eval-heading", Static)
        heading.update(
            Text(f"Evaluation · primary: {primary['name']}" if primary else "Evaluation")
        )
        self._fill("eval", ["system · metric", *tags], eval_rows(comparison),
                   "No run evaluated on its validation split yet (Evaluate step, or "
                   "`tunedeck eval RUN`).")  # fmt: skip
        self.query_one("#compare-config", DataTable).focus()

    def _fill(
        self, name: str, header: list[str], rows: list[tuple[str, list[str]]], empty: str
    ) -> None:
        """One of the two tables, or its note when it would have no rows."""
        table = self.query_one(f"#compare-{name}", DataTable)
        table.clear(columns=True)
        for title in header:
            table.add_column(title)
        for label, cells in rows:
            table.add_row(label, *cells)
        table.display = bool(rows)
        note = self.query_one(f"#compare-{name}-note", Static)
        note.display = not rows
        note.update(empty)

    @on(TestSetsListed)
    def show_test_sets(self, message: TestSetsListed) -> None:
        self.test_sets = message.names
        self.refresh_bindings()
        if self.test_sets:
            self.load_outcome(self.test_sets[0])

    @on(OutcomeLoaded)
    def show_outcome(self, message: OutcomeLoaded) -> None:
        if message.eval_set != self.test_sets[self.test_set_index]:
            return  # a set `t` has moved past since (a thread worker runs to its end)
        self.outcome = message.outcome
        section = self.query_one("#compare-outcome", Static)
        section.display = True
        count = len(self.test_sets)
        place = f" · {self.test_set_index + 1} of {count} (t: next)" if count > 1 else ""
        if message.outcome is None:
            section.update(Text(f"Outcome on {message.eval_set}: {message.error}"))
            return
        tags = [run_tag(index) for index in range(len(message.outcome.runs))]
        section.update(_outcome_text(message.outcome, tags, place))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`t` is the test-file key only while there are test sets to show."""
        if action == "next_test_set":
            return bool(self.test_sets)
        return super().check_action(action, parameters)

    def action_next_test_set(self) -> None:
        if len(self.test_sets) < 2:
            self.notify("Every run was scored on this one test file only.")
            return
        self.test_set_index = (self.test_set_index + 1) % len(self.test_sets)
        self.load_outcome(self.test_sets[self.test_set_index])

    def action_back(self) -> None:
        self.dismiss()


def _legend(comparison: Comparison, tags: list[str], chart: CompareChart) -> Text:
    """One line per run: its letter and markers in its colour, its id, best val loss."""
    legend = Text()
    for index, (tag, run) in enumerate(zip(tags, comparison.runs, strict=True)):
        best = f"best val {run.best[1]:.4f} at step {run.best[0]}" if run.best else "no val loss"
        legend.append("\n" if index else "")
        legend.append(f"{tag}  {series_key(index)}", style=chart.run_style(index))
        legend.append(f"   {run.id}   {best}")
    return legend


def _outcome_text(outcome: Outcome, tags: list[str], place: str) -> Text:
    """The outcome section: heading, each run's primary score [95 % CI], the sentences."""
    text = Text()
    text.append(f"Outcome on test file {outcome.file} ({outcome.examples} examples)", "bold")
    text.append(f" · {outcome.primary['name']}{place}")
    if outcome.coverage():
        text.append(f"\n{outcome.coverage()}", "italic")
    scores = "   ".join(
        f"{tag} {run.primary.text()}" for tag, run in zip(tags, outcome.runs, strict=True)
    )
    text.append(f"\n{scores}")
    for sentence in outcome.sentences(tags):
        text.append(f"\n{sentence}")
    return text
