"""One lint finding in full: what, where, the hint, and the example with the problem marked.

The turn the problem is about is highlighted (and titled "◀ problem", for terminals
without colour): the message a finding names ("message 3 has role 'agent'"), the answer
for answer-shaped findings, the system prompt for an off-pattern one. A record that did not
parse is shown from its source text, its JSON error column marked. Examples a finding
refers to (the original of a duplicate, the contradicting example) are shown below it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from engine.data.formats import Example
from engine.data.lint.linter import Finding
from tui.widgets.chat_view import turn_blocks

SEVERITY_LABEL = {"error": "✗ error", "warning": "! warning", "info": "i info"}
"""Severity as text with a symbol: readable without colour."""

_MESSAGE_N = re.compile(r"\bmessage (\d+)\b")
_LINE_N = re.compile(r"\bline (\d+)\b")
_ANSWER_CODES = {
    "off-pattern-answer",
    "unknown-label",
    "knowledge-heavy",
    "length-outlier",
    "too-long",
    "label-imbalance",
}
_WHOLE_CODES = {"exact-duplicate", "near-duplicate", "template-error"}
_RAW_WINDOW = 240  # characters shown either side of a JSON error column


@dataclass(frozen=True)
class FindingContext:
    """A finding with the material to show it: its example, or its source text."""

    finding: Finding
    example: Example | None = None
    raw: str | None = None
    """The source line, for a record that did not parse into an example."""
    related: list[Example] = field(default_factory=list)
    """Other examples the finding refers to."""


def related_lines(finding: Finding, limit: int = 2) -> list[int]:
    """Lines of other examples a finding involves (its `lines`, or "line N" in its text)."""
    lines = list(finding.lines) or [int(n) for n in _LINE_N.findall(finding.message)]
    return [n for n in dict.fromkeys(lines) if n != finding.line][:limit]


def gather_context(
    finding: Finding, examples: Sequence[Example], read_line: Callable[[int], str | None]
) -> FindingContext:
    """What `finding` is about: its example, else its source line, and related examples.

    Args:
        finding: the finding to show.
        examples: the examples that loaded (a record with errors is not among them).
        read_line: the source text of a line; called only when no example has the line,
            since reading a big file takes a while.
    """
    by_line = {e.line: e for e in examples}
    example = by_line.get(finding.line)
    raw = read_line(finding.line) if example is None and finding.line else None
    related = [by_line[n] for n in related_lines(finding) if n in by_line]
    return FindingContext(finding, example, raw, related)


def problem_turns(finding: Finding, roles: list[str]) -> tuple[set[int], str | None]:
    """Indices of the turns a finding is about, and the role of a missing turn (or None)."""
    last = {role: i for i, role in enumerate(roles)}
    named = _MESSAGE_N.search(finding.message)
    if named and int(named.group(1)) <= len(roles):
        return {int(named.group(1)) - 1}, None
    code = finding.code
    if code == "no-assistant":
        return set(), "assistant"
    if code == "ends-with-user":
        return {len(roles) - 1}, "assistant"
    if code == "off-pattern-system":
        return {i for i, role in enumerate(roles) if role == "system"}, None
    if code == "contradiction":
        return {last[r] for r in ("user", "assistant") if r in last}, None
    if code in _ANSWER_CODES and "assistant" in last:
        return {last["assistant"]}, None
    if code in _WHOLE_CODES:
        return set(range(len(roles))), None
    return set(), None


def raw_turns(raw: str) -> list[tuple[str, str]] | None:
    """(role, content) of a chat / ShareGPT record that parses but is invalid, else None."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    turns = obj.get("messages") or obj.get("conversations") if isinstance(obj, dict) else None
    if not isinstance(turns, list):
        return None
    return [_turn(t) for t in turns]


def _turn(item: Any) -> tuple[str, str]:
    if not isinstance(item, dict):
        return "?", json.dumps(item, ensure_ascii=False)
    role = item.get("role", item.get("from", "?"))
    content = item.get("content", item.get("value", ""))
    if not isinstance(content, str):
        content = json.dumps(content, ensure_ascii=False)
    return str(role), content


def marked_source(raw: str, column: int | None) -> Text:
    """The source text around `column` (1-based), the character there in reverse video."""
    if not column or column > len(raw) + 1:
        return Text(raw[: 2 * _RAW_WINDOW] + ("…" if len(raw) > 2 * _RAW_WINDOW else ""))
    at = column - 1
    start = max(0, at - _RAW_WINDOW)
    text = Text("…" if start else "")
    text.append(raw[start:at])
    text.append(raw[at : at + 1] or "⏎", style="reverse bold")
    text.append(f" ◀ column {column} ", style="bold")
    text.append(raw[at + 1 : at + _RAW_WINDOW])
    return text


class FindingView(VerticalScroll):
    """Shows a FindingContext; scroll it when focused (Enter on a finding focuses it)."""

    can_focus = True

    def show(self, context: FindingContext | None) -> None:
        """Replace the shown finding; None clears the view."""
        self.remove_children()
        if context is None:
            return
        mounted = self.mount_all(self._blocks(context))
        self.scroll_home(animate=False)
        self.run_worker(self._scroll_when_mounted(mounted), group="finding-scroll", exclusive=True)

    async def _scroll_when_mounted(self, mounted: Awaitable[None]) -> None:
        """Once the blocks are mounted and laid out, bring the marked turn into view."""
        await mounted
        self.call_after_refresh(self._scroll_to_problem)

    def _scroll_to_problem(self) -> None:
        """Bring the marked turn into view (the system prompt alone can fill a screen)."""
        marked = self.query(".-problem, .finding-raw")
        if marked:
            self.scroll_to_widget(marked.first(), animate=False, top=True)

    def _blocks(self, context: FindingContext) -> list[Widget]:
        f = context.finding
        where = f"line {f.line}" if f.line else "whole file"
        head = f"{SEVERITY_LABEL[f.severity]}  {f.code}  ·  {where}"
        blocks: list[Widget] = [
            Static(head, classes=f"finding-head -{f.severity}", markup=False),
            Static(f.message, classes="finding-message", markup=False),
        ]
        if f.hint:
            blocks.append(Static(f"hint: {f.hint}", classes="finding-hint", markup=False))
        blocks += self._example_blocks(context)
        for example in context.related:
            note = f"line {example.line}, which it refers to:"
            blocks.append(Static(note, classes="finding-sub"))
            blocks += turn_blocks([(m.role, m.content) for m in example.messages])
        return blocks

    def _example_blocks(self, context: FindingContext) -> list[Widget]:
        f = context.finding
        if context.example is not None:
            turns = [(m.role, m.content) for m in context.example.messages]
        elif context.raw is not None:
            parsed = raw_turns(context.raw)
            if parsed is None:
                label = Static("the line as written:", classes="finding-sub")
                return [label, Static(marked_source(context.raw, f.column), classes="finding-raw")]
            turns = parsed
        else:
            return []
        problem, missing = problem_turns(f, [role for role, _ in turns])
        label = Static(f"line {f.line}:", classes="finding-sub")
        return [label, *turn_blocks(turns, problem, missing)]
