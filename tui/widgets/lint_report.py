"""Lint findings grouped by severity: a header per group, one line per finding.

    ERRORS (4)
    ✗     7  invalid-json: invalid JSON: Unterminated string starting at column 522
    WARNINGS (7)
    !    12  exact-duplicate: exact duplicate of line 5

Moving the cursor posts `FindingHighlighted`; Enter posts `FindingChosen`.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from engine.data.lint.linter import Finding, LintReport

SEVERITIES = (("error", "ERRORS", "✗"), ("warning", "WARNINGS", "!"), ("info", "INFO", "i"))
MESSAGE_CHARS = 160
"""A finding's message is cut to this length in the list; the detail view shows all."""


class LintReportList(OptionList):
    """The findings of one LintReport."""

    @dataclass
    class FindingHighlighted(Message):
        """The cursor moved onto a finding."""

        finding: Finding

    @dataclass
    class FindingChosen(Message):
        """Enter was pressed on a finding."""

        finding: Finding

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.findings: tuple[Finding, ...] = ()

    def show(self, report: LintReport) -> None:
        """List the report's findings, errors first.

        The cursor stays on the finding it was on (a report gains token checks while the
        user reads it), else goes to the first finding.
        """
        current = self._current_key()
        self.findings = report.findings
        self.clear_options()
        options: list[Option] = []
        for severity, title, mark in SEVERITIES:
            indexed = [(i, f) for i, f in enumerate(report.findings) if f.severity == severity]
            if not indexed:
                continue
            header = Content.from_markup("[b]$title ($n)[/b]", title=title, n=str(len(indexed)))
            options.append(Option(header, disabled=True))
            options += [Option(_line(mark, f), id=str(i)) for i, f in indexed]
        self.add_options(options)
        keys = [self._key(o) for o in options]
        if current is not None and current in keys:
            self.highlighted = keys.index(current)
        else:
            self.highlighted = next((n for n, o in enumerate(options) if not o.disabled), None)

    def _key(self, option: Option) -> tuple[str, int, str] | None:
        finding = self._finding(option)
        return (finding.code, finding.line, finding.message) if finding else None

    def _current_key(self) -> tuple[str, int, str] | None:
        if self.highlighted is None or not self.option_count:
            return None
        return self._key(self.get_option_at_index(self.highlighted))

    def _finding(self, option: Option) -> Finding | None:
        return self.findings[int(option.id)] if option.id is not None else None

    @on(OptionList.OptionHighlighted)
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        finding = self._finding(event.option)
        if finding is not None:
            self.post_message(self.FindingHighlighted(finding))

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        finding = self._finding(event.option)
        if finding is not None:
            self.post_message(self.FindingChosen(finding))


def _line(mark: str, finding: Finding) -> Content:
    where = f"{finding.line:>5}" if finding.line else " file"
    message = " ".join(finding.message.split())
    if len(message) > MESSAGE_CHARS:
        message = message[: MESSAGE_CHARS - 1] + "…"
    return Content.from_markup(
        "$mark $where  [b]$code[/b]: $message",
        mark=mark,
        where=where,
        code=finding.code,
        message=message,
    )
