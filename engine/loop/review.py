"""Scriptable review: the keys of the Evaluate step's review as actions on numbered examples.

`tunedeck review RUN [--data FILE]` accepts, corrects, marks and notes examples of an eval
set by their number (#, as the review table shows it, from 1), one at a time or from a
JSONL file of `{"index": N, "accept": true | "answer": TEXT | "mark": M | "note": TEXT |
"reference": TEXT}`. Each action is checked before any is saved (an unknown number, a
correction that is not JSON where the training answers are), and saved like a keystroke:
one appended, fsynced line (engine.eval.review_marks).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.errors import TunedeckError
from engine.data.pool import prompt_text
from engine.eval.options import TUNED
from engine.eval.review_marks import MARKS, load_marks, set_mark, set_reference, set_verdict
from engine.eval.sets import EvalSet, load_eval_set, read_split
from engine.eval.summary import system_rows
from engine.loop.corrections import check_correction, compact_json

KINDS = ("accept", "answer", "mark", "note", "reference", "clear")
"""What an action does: accept the fine-tuned answer, correct it (`answer`), mark, note,
fix the reference, or clear the accept / correction."""


class ReviewError(TunedeckError):
    """A review action that cannot be applied (named by its file line where it has one)."""


@dataclass(frozen=True)
class Action:
    """One review action on example `number` (1-based, as the table shows it)."""

    number: int
    kind: str
    value: Any = None
    line: int = 0
    """Line of the import file (0: from the command line)."""

    @property
    def where(self) -> str:
        return f"line {self.line}: " if self.line else ""


def parse_actions(path: Path) -> list[Action]:
    """The actions of an import file, each line checked; the first bad line is an error.

    Raises:
        ReviewError: unreadable file or a bad record (file:line named).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReviewError(f"cannot read {path}: {exc}") from exc
    actions = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        actions += _record_actions(path, line, raw)
    if not actions:
        raise ReviewError(
            f"{path} holds no review action",
            hint='one JSON object a line, e.g. {"index": 3, "accept": true}',
        )
    return actions


def _record_actions(path: Path, line: int, raw: str) -> list[Action]:
    where = f"{path.name}:{line}"
    try:
        record = json.loads(raw)
    except ValueError as exc:
        raise ReviewError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(record, dict) or not isinstance(record.get("index"), int):
        raise ReviewError(
            f'{where}: needs an integer "index" (the example\'s # in the table)',
            hint='e.g. {"index": 3, "accept": true}',
        )
    found = [Action(record["index"], kind, record[kind], line) for kind in KINDS if kind in record]
    unknown = sorted(set(record) - {"index", *KINDS})
    if unknown or not found:
        raise ReviewError(
            f"{where}: {'unknown key ' + repr(unknown[0]) if unknown else 'no action'}",
            hint=f"keys: index and one of {', '.join(KINDS)}",
        )
    return found


def apply_actions(run_dir: Path, eval_set: str, actions: list[Action]) -> list[str]:
    """Check every action, then save them in order; warnings to show (unknown JSON keys).

    Raises:
        ReviewError: an action that cannot be applied; nothing is saved then.
    """
    examples = load_eval_set(run_dir, eval_set)
    tuned = tuned_answers(run_dir, eval_set)
    answers = [e.answer for e in read_split(run_dir, "train")]
    planned, warnings = [], []
    for action in actions:
        step, said = _plan(action, examples, tuned, answers)
        planned.append(step)
        warnings += [f"#{action.number}: {w}" for w in said]
    for index, kind, value in planned:
        _save(run_dir, eval_set, index, kind, value)
    return warnings


def _plan(
    action: Action, eval_set: EvalSet, tuned: dict[int, str], answers: list[str]
) -> tuple[tuple[int, str, Any], list[str]]:
    index = action.number - 1
    count = len(eval_set.examples)
    if not 0 <= index < count:
        raise ReviewError(
            f"{action.where}no example #{action.number} in {eval_set.title}",
            hint=f"examples are numbered 1 to {count}",
        )
    kind, value = action.kind, action.value
    if kind == "accept":
        if index not in tuned:
            raise ReviewError(
                f"{action.where}#{action.number} has no fine-tuned answer to accept",
                hint="evaluate the set with the fine-tuned model first",
            )
        return (index, "accepted", tuned[index]), []
    if kind in ("answer", "reference"):
        if kind == "reference" and eval_set.pool:
            raise ReviewError(
                f"{action.where}a prompt pool has no reference to fix",
                hint="correct the answer instead (answer)",
            )
        check = check_correction(str(value or ""), answers)
        if not check.ok:
            raise ReviewError(
                f"{action.where}#{action.number}: {check.error}",
                hint="write the answer the way the training answers are",
            )
        return (
            index,
            "corrected" if kind == "answer" else "reference",
            compact_json(value),
        ), check.warnings
    if kind == "mark" and value not in (*MARKS, None, "none"):
        raise ReviewError(
            f"{action.where}unknown mark {value!r}",
            hint=f"marks are {', '.join(MARKS)} (none clears)",
        )
    if kind == "note" and not isinstance(value, str):
        raise ReviewError(f"{action.where}a note is text")
    return (index, kind, value), []


def _save(run_dir: Path, eval_set: str, index: int, kind: str, value: Any) -> None:
    if kind in ("accepted", "corrected"):
        set_verdict(run_dir, index, kind, value, eval_set)  # type: ignore[arg-type]
    elif kind == "reference":
        set_reference(run_dir, index, value, eval_set)
    elif kind == "clear":
        set_verdict(run_dir, index, None, None, eval_set)
    elif kind == "mark":
        set_mark(run_dir, index, None if value in (None, "none") else value, eval_set=eval_set)
    else:
        set_mark(run_dir, index, note=value, eval_set=eval_set)


def tuned_answers(run_dir: Path, eval_set: str) -> dict[int, str]:
    """The fine-tuned model's stored answer of each example of the set, by index."""
    return {r["index"]: r["output"] for r in system_rows(run_dir, TUNED, None, eval_set)}


def review_listing(run_dir: Path, eval_set: str) -> list[dict[str, Any]]:
    """Every example of the set with its fine-tuned answer and review state (for --json)."""
    examples = load_eval_set(run_dir, eval_set)
    tuned = tuned_answers(run_dir, eval_set)
    state = load_marks(run_dir, eval_set)
    listing = []
    for index, example in enumerate(examples.examples):
        s = state.get(index, {})
        user = prompt_text(example)
        listing.append(
            {
                "index": index + 1,
                "line": examples.lines[index],
                "prompt": user,
                "reference": example.answer or None,
                "answer": tuned.get(index),
                "mark": s.get("mark"),
                "note": s.get("note") or "",
                "verdict": s.get("verdict"),
                "corrected": s.get("answer") if s.get("verdict") == "corrected" else None,
                "fixed_reference": s.get("reference"),
            }
        )
    return listing
