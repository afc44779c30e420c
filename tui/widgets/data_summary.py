"""The one-line summary above the Data tabs: what the file is and what lint thinks of it.

chat format (jsonl) · 30 records · 26 usable · 4 errors · 7 warnings
"""

from __future__ import annotations

from textual.widgets import Static

from engine.data.lint.linter import LintReport
from tui.paths import display_path


class DataSummary(Static):
    """A line of text; the `-error` class marks a file that cannot be used."""

    def note(self, text: str, error: bool = False) -> None:
        """Show `text` instead of a report (linting, cannot be read)."""
        self.update(text)
        self.set_class(error, "-error")

    def show_report(self, report: LintReport) -> None:
        """Format, counts and findings of `report`, or why the file cannot be used."""
        if report.unreadable:
            self.note(f"{display_path(report.path)}: cannot be used — see Lint", error=True)
            return
        s = report.stats
        errors, warnings = len(report.errors), len(report.warnings)
        self.note(
            f"{report.format} format ({s.container}) · {s.records:,} records · "
            f"{report.count:,} usable · {errors} error{'s' * (errors != 1)} · "
            f"{warnings} warning{'s' * (warnings != 1)}"
        )
