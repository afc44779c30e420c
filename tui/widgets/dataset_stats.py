"""The numbers behind a dataset: records, turns, labels, and token lengths."""

from __future__ import annotations

from rich.table import Table
from textual.widgets import Static

from engine.data.lint.linter import LintReport
from tui.token_survey import TokenSurvey

LABELS_SHOWN = 8


def stats_rows(report: LintReport, tokens: TokenSurvey | None) -> list[tuple[str, str]]:
    """(name, value) rows describing a linted dataset."""
    s = report.stats
    rows = [
        ("format", f"{report.format} ({s.container})"),
        ("records", f"{s.records:,}"),
        ("usable", f"{s.examples:,}"),
        (
            "skipped",
            f"{s.skipped:,} with errors" + (f", {s.blank_lines} blank" if s.blank_lines else ""),
        ),
        ("turns", ", ".join(f"{n} msgs: {count:,}" for n, count in s.turns.items()) or "-"),
    ]
    if s.labels is not None:
        shown = list(s.labels.counts.items())[:LABELS_SHOWN]
        more = len(s.labels.counts) - len(shown)
        text = ", ".join(f"{label} {n}" for label, n in shown) + (f", +{more} more" if more else "")
        rows.append((f"labels ({s.labels.key or 'answer'})", text))
    if tokens is not None and tokens.lengths:
        sample = " (sample)" if tokens.sampled else ""
        rows += [
            ("tokens", f"p50 {tokens.percentile(0.5):,} · p95 {tokens.percentile(0.95):,} "
                       f"· p99 {tokens.percentile(0.99):,} · max {max(tokens.lengths.values()):,}"
                       f"{sample}"),
            (f"> {tokens.max_seq_len:,}", f"{tokens.longer_than(tokens.max_seq_len):,} "
                                          "longer than max_seq_len"),
        ]  # fmt: skip
    return rows


class DatasetStats(Static):
    """Summary numbers of the linted dataset, one per line."""

    rows: list[tuple[str, str]] = []
    """What is shown, as (name, value)."""

    def show(self, report: LintReport | None, tokens: TokenSurvey | None) -> None:
        self.rows = stats_rows(report, tokens) if report is not None else []
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for name, value in self.rows:
            table.add_row(name, value)
        self.update(table)
