"""Compare: two or more runs side by side, opened from the Runs list (space marks, c).

One chart overlays every run's training loss (a line) and validation loss (points); below
it, the config fields whose values differ and the evaluation aggregates of each system,
one column per run. Runs are lettered A, B, ... in the order they were marked; the lines
on top say which run is which, with its markers on the chart. The data comes from
engine.runs.compare, the same that `tunedeck compare` prints.
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

from engine.runs.compare import Comparison, config_rows, eval_rows
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
    """

    MODE = "runs"
    CSS_PATH = stylesheet("compare")
    BINDINGS = [Binding("escape", "back", "Back")]

    @dataclass
    class Loaded(Message):
        """The comparison of the runs, read off the event loop."""

        comparison: Comparison

    def __init__(self, run_dirs: list[Path]) -> None:
        """Args:
        run_dirs: the runs to compare (two or more), in column order.
        """
        super().__init__()
        self.run_dirs = list(run_dirs)
        self.comparison: Comparison | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("Reading the runs…", id="compare-runs", markup=False)
        yield CompareChart(id="compare-chart")
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
        """Read every run's events, config and eval summary (files: off the event loop)."""
        backend: RunsBackend = self.backend
        self.post_message(self.Loaded(backend.compare_runs(self.run_dirs)))

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
                   "No run evaluated yet (Evaluate step, or `tunedeck eval RUN`).")  # fmt: skip
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
