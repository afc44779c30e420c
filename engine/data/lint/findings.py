"""The `Finding` of a lint run and the catalogue of stable finding codes.

Codes are part of the CLI's JSON contract: tools and tests match on them, so a code is
never renamed; a new check gets a new code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.data.rules import Severity

SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2}

CODES: dict[str, tuple[Severity, str]] = {
    # Whole file
    "unreadable": ("error", "the file cannot be read as a dataset (exit code 2)"),
    # One record
    "invalid-json": ("error", "the line is not valid JSON"),
    "not-utf8": ("error", "the line has bytes (or escapes) that are not valid UTF-8"),
    "bad-csv-row": ("error", "a CSV row does not match the header"),
    "not-an-object": ("error", "the record is not a JSON object"),
    "no-format-keys": ("error", "the record lacks the keys of the file's format"),
    "messages-not-list": ("error", "messages / conversations is not a list"),
    "message-not-object": ("error", "a message is not an object"),
    "missing-role": ("error", "a message has no role"),
    "missing-content": ("error", "a message or field has no content"),
    "unknown-role": ("error", "a role other than system, user, assistant"),
    "non-string-content": ("error", "content that is not a string"),
    "empty-content": ("error", "empty content"),
    "no-assistant": ("error", "no assistant message to learn from"),
    "role-order": ("error", "system not first, repeated roles, or assistant before user"),
    "ends-with-user": ("warning", "the conversation ends with an unanswered user turn"),
    # Across records
    "exact-duplicate": ("warning", "the same example appears more than once"),
    "near-duplicate": ("warning", "an almost identical example appears elsewhere"),
    "contradiction": ("warning", "the same prompt has different answers"),
    "too-long": ("warning", "longer than max_seq_len tokens after the chat template"),
    "template-error": ("warning", "the model's chat template refuses the conversation"),
    "off-pattern-answer": ("warning", "the answer's shape differs from most answers"),
    "off-pattern-system": ("warning", "the system prompt differs from most examples'"),
    "length-outlier": ("warning", "far longer or shorter than the other examples"),
    "too-few-examples": ("warning", "fewer than 50 usable examples"),
    "label-imbalance": ("warning", "one label is far more common than another"),
    "unknown-label": ("warning", "a label outside the set the other examples use"),
    "knowledge-heavy": ("warning", "answers carry facts the prompts lack: consider retrieval"),
    # Prompt pools (inputs without answers)
    "not-a-prompt": ("error", "a pool record that is no prompt"),
    "has-answer": ("error", "a pool record that has an answer"),
    "not-text": ("error", "a prompt that is not text"),
    "empty-prompt": ("error", "an empty prompt"),
    "duplicate-prompt": ("warning", "the same prompt appears more than once in the pool"),
    "prompt-seen": ("warning", "the prompt repeats an example a run trained or was scored on"),
    # Information
    "summary": ("info", "counts, format and turns"),
    "blank-lines": ("info", "blank lines, skipped"),
    "token-lengths": ("info", "token length p50 / p95 / max after the chat template"),
    "tokens-skipped": ("info", "token checks were not run"),
    "template-folds-system": ("info", "the chat template has no system turn: folded in"),
    "label-distribution": ("info", "how often each label occurs"),
}
"""code -> (severity, what it means)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One lint result, at a 1-based source line (0: the file as a whole)."""

    severity: Severity
    code: str
    line: int
    message: str
    hint: str = ""
    lines: tuple[int, ...] = ()
    """Other lines involved (the duplicate's original, the contradicting example, ...)."""
    column: int | None = None
    place: str | None = None
    """Where `line` is, for a source of several files (a hub dataset's split):
    `data/train-00000.parquet:row 812`; None for a single local file (`line` says it)."""

    def to_dict(self) -> dict[str, Any]:
        """The finding as in `tunedeck lint --json`."""
        out: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "line": self.line,
            "message": self.message,
            "hint": self.hint,
        }
        if self.lines:
            out["lines"] = list(self.lines)
        if self.column is not None:
            out["column"] = self.column
        if self.place is not None:
            out["place"] = self.place
        return out


def finding(code: str, line: int, message: str, hint: str = "", **extra: Any) -> Finding:
    """A finding whose severity comes from the catalogue."""
    return Finding(CODES[code][0], code, line, message, hint, **extra)


def line_list(lines: list[int] | tuple[int, ...], limit: int = 5) -> str:
    """'3, 9 and 12' or '3, 9, 12, 15, 20 and 7 more'."""
    shown = [str(n) for n in lines[:limit]]
    rest = len(lines) - len(shown)
    if rest > 0:
        return f"{', '.join(shown)} and {rest} more"
    if len(shown) > 1:
        return f"{', '.join(shown[:-1])} and {shown[-1]}"
    return shown[0] if shown else ""


def sort_key(item: Finding) -> tuple[int, int, str]:
    """Whole-file findings first, then by line; errors before warnings on a line."""
    return (item.line, SEVERITY_ORDER[item.severity], item.code)
