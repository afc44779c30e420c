"""Review marks and blind A/B preferences of an evaluation, saved as they are made.

Marks (`review.jsonl`) and preferences (`ab.jsonl`) of each eval set (its directory:
engine.eval.store.set_path; the validation split's is `eval/`) are appended and fsynced
one line per action, so a crash loses at most the keystroke in flight; the last line for
an example wins, so changing one's mind is one more line. engine.eval.review re-exports all of
this next to the table it annotates.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from engine.core.layout import AB_FILE, REVIEW_FILE
from engine.eval.options import TUNED
from engine.eval.store import VALIDATION, append_jsonl, read_jsonl, set_dir, set_path

Mark = Literal["good", "bad", "skip"]
MARKS: tuple[Mark, ...] = ("good", "bad", "skip")
Preference = Literal["left", "right", "tie"]


# ---------------------------------------------------------------------------
# Marks
# ---------------------------------------------------------------------------


def load_marks(run_dir: Path, eval_set: str = VALIDATION) -> dict[int, dict[str, Any]]:
    """The current mark and note of each reviewed example (last line per example wins)."""
    marks: dict[int, dict[str, Any]] = {}
    for row in read_jsonl(set_path(run_dir, eval_set) / REVIEW_FILE):
        if isinstance(row.get("index"), int):
            marks[row["index"]] = row
    return {i: m for i, m in marks.items() if m.get("mark") is not None or m.get("note")}


_KEEP: Any = object()


def set_mark(
    run_dir: Path,
    index: int,
    mark: Mark | None = _KEEP,
    note: str | None = None,
    eval_set: str = VALIDATION,
) -> dict[str, Any]:
    """Mark an example good / bad / skip (None clears it) and/or set its note; saved at once.

    Args:
        mark: the new mark; leave it out to change only the note.
        note: the new note; None keeps the current one, "" clears it.
        eval_set: the eval set the example belongs to (engine.eval.store).

    Returns:
        The stored state of the example.
    """
    if mark is not _KEEP and mark is not None and mark not in MARKS:
        raise ValueError(f"unknown mark {mark!r}; marks are {MARKS}")
    current = load_marks(run_dir, eval_set).get(index, {})
    state = {
        "index": index,
        "mark": current.get("mark") if mark is _KEEP else mark,
        "note": current.get("note", "") if note is None else note,
        "time": time.time(),
    }
    append_jsonl(set_dir(run_dir, eval_set) / REVIEW_FILE, [state])
    return state


# ---------------------------------------------------------------------------
# Blind A/B
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AbPair:
    """Two answers to one example in random order; the screen shows only the texts."""

    index: int
    left: str
    """System shown on the left (hidden from the reviewer)."""
    right: str
    left_text: str
    right_text: str


def record_preference(
    run_dir: Path, pair: AbPair, preferred: Preference, eval_set: str = VALIDATION
) -> dict[str, Any]:
    """Store which side the reviewer preferred (or a tie); saved at once."""
    if preferred not in ("left", "right", "tie"):
        raise ValueError(f"preferred must be left, right or tie, not {preferred!r}")
    winner = {"left": pair.left, "right": pair.right, "tie": "tie"}[preferred]
    row = {
        "index": pair.index,
        "left": pair.left,
        "right": pair.right,
        "preferred": preferred,
        "winner": winner,
        "time": time.time(),
    }
    append_jsonl(set_dir(run_dir, eval_set) / AB_FILE, [row])
    return row


def load_preferences(
    run_dir: Path, eval_set: str = VALIDATION
) -> dict[tuple[int, frozenset[str]], dict[str, Any]]:
    """The current preference per example and pair of systems (last line wins)."""
    prefs = {}
    for row in read_jsonl(set_path(run_dir, eval_set) / AB_FILE):
        if isinstance(row.get("index"), int) and row.get("left") and row.get("right"):
            prefs[(row["index"], frozenset((row["left"], row["right"])))] = row
    return prefs


@dataclass(frozen=True)
class AbStats:
    """Human blind preferences of fine-tuned vs one base system."""

    against: str
    n: int
    wins: int
    losses: int
    ties: int
    win_rate: float | None
    """(wins + ties / 2) / n, the same convention as the judge's."""


def ab_stats(run_dir: Path, against: str, eval_set: str = VALIDATION) -> AbStats:
    """Win rate of the fine-tuned model in the reviewer's blind A/B choices."""
    pair = frozenset((TUNED, against))
    prefs = load_preferences(run_dir, eval_set)
    rows = [r for (_, systems), r in prefs.items() if systems == pair]
    wins = sum(r["winner"] == TUNED for r in rows)
    ties = sum(r["winner"] == "tie" for r in rows)
    n = len(rows)
    rate = round((wins + ties / 2) / n, 6) if n else None
    return AbStats(against, n, wins, n - wins - ties, ties, rate)


def review_summary(run_dir: Path, against: str, eval_set: str = VALIDATION) -> dict[str, Any]:
    """Counts of marks and the A/B statistics, for the summary panel and `tunedeck eval`."""
    marks = load_marks(run_dir, eval_set)
    counts = {m: sum(v.get("mark") == m for v in marks.values()) for m in MARKS}
    notes = sum(bool(v.get("note")) for v in marks.values())
    return {"marks": counts, "notes": notes, "ab": asdict(ab_stats(run_dir, against, eval_set))}
