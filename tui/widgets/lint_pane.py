"""The Data screen's Lint tab: the findings list beside the highlighted finding in full.

The list posts `LintReportList.FindingHighlighted` / `FindingChosen`; they bubble to the
screen, which reads what the finding refers to (in a worker) and hands it back here.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal

from engine.data.lint.linter import LintReport
from tui.widgets.finding_view import FindingContext, FindingView
from tui.widgets.lint_report import LintReportList


class LintPane(Horizontal):
    """LintReportList (#lint-report) and FindingView (#finding-view), side by side."""

    def compose(self) -> ComposeResult:
        yield LintReportList(id="lint-report")
        yield FindingView(id="finding-view")

    def show_report(self, report: LintReport) -> None:
        """List the report's findings (the cursor stays on the finding it was on)."""
        self.query_one(LintReportList).show(report)

    def show_finding(self, context: FindingContext, focus: bool) -> None:
        """Show a finding in full; `focus` moves the focus there, to scroll it."""
        view = self.query_one(FindingView)
        view.show(context)
        if focus:
            view.focus()
