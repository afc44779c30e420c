"""Review of an evaluation, saved as it is made: marks, notes, accepts and corrections,
fixed references, and blind A/B preferences.

The review state of each example (`review.jsonl`) and the preferences (`ab.jsonl`) of each
eval set (its directory: engine.eval.store.set_path; the validation split's is `eval/`) are
appended and fsynced one line per action, so a crash loses at most the keystroke in flight;
the last line for an example wins (each line carries the example's whole state), so
changing one's mind is one more line. engine.eval.review re-exports all of this next to the
table it annotates.

An example's state: `mark` (good / bad / skip), `note`, `verdict` on the fine-tuned answer
(`accepted`: right as it is; `corrected`: `answer` holds the right one) with the `answer`
kept as text (a later evaluation may answer differently), and `reference`: a corrected
reference when the set's own is wrong. engine.loop turns accepts and corrections into
training data (`tunedeck data add`) and fixed references into a corrected source file
(`tunedeck data fix`).
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
Verdict = Literal["accepted", "corrected"]
VERDICTS: tuple[Verdict, ...] = ("accepted", "corrected")
STATE_FIELDS = ("mark", "note", "verdict", "answer", "reference")
"""What a review line carries besides `index` and `time`."""
Preference = Literal["left", "right", "tie"]


# ---------------------------------------------------------------------------
# Marks
# ---------------------------------------------------------------------------


def load_marks(run_dir: Path, eval_set: str = VALIDATION) -> dict[int, dict[str, Any]]:
    """The current review state of each reviewed example (last line per example wins)."""
    marks: dict[int, dict[str, Any]] = {}
    for row in read_jsonl(set_path(run_dir, eval_set) / REVIEW_FILE):
        if isinstance(row.get("index"), int):
            marks[row["index"]] = row
    return {i: m for i, m in marks.items() if any(m.get(f) for f in STATE_FIELDS)}


_KEEP: Any = object()


def _save_state(
    run_dir: Path, index: int, eval_set: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Append the example's whole state with `changes` applied; fsynced before returning."""
    current = load_marks(run_dir, eval_set).get(index, {})
    state: dict[str, Any] = {"index": index}
    for name in STATE_FIELDS:
        state[name] = changes[name] if name in changes else current.get(name)
    state["note"] = state["note"] or ""
    state["time"] = time.time()
    append_jsonl(set_dir(run_dir, eval_set) / REVIEW_FILE, [state])
    return state


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
    changes: dict[str, Any] = {} if mark is _KEEP else {"mark": mark}
    if note is not None:
        changes["note"] = note
    return _save_state(run_dir, index, eval_set, changes)


def set_verdict(
    run_dir: Path,
    index: int,
    verdict: Verdict | None,
    answer: str | None = None,
    eval_set: str = VALIDATION,
) -> dict[str, Any]:
    """Accept the fine-tuned answer (`answer`: its text) or correct it (`answer`: the right
    one); None clears the verdict. Saved at once.

    Raises:
        ValueError: an unknown verdict, or a verdict without its answer.
    """
    if verdict is not None and verdict not in VERDICTS:
        raise ValueError(f"unknown verdict {verdict!r}; verdicts are {VERDICTS}")
    if verdict is not None and not (answer or "").strip():
        raise ValueError(f"an {verdict} example needs its answer text")
    changes = {"verdict": verdict, "answer": answer if verdict is not None else None}
    return _save_state(run_dir, index, eval_set, changes)


def set_reference(
    run_dir: Path, index: int, reference: str | None, eval_set: str = VALIDATION
) -> dict[str, Any]:
    """Record that the example's reference is wrong, with the right one (None: it is not
    wrong after all). Saved at once."""
    if reference is not None and not reference.strip():
        raise ValueError("a corrected reference cannot be empty")
    return _save_state(run_dir, index, eval_set, {"reference": reference})


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
    verdicts = {v: sum(s.get("verdict") == v for s in marks.values()) for v in VERDICTS}
    fixed = sum(bool(s.get("reference")) for s in marks.values())
    return {"marks": counts, "notes": notes, "verdicts": verdicts, "fixed_references": fixed,
            "ab": asdict(ab_stats(run_dir, against, eval_set))}  # fmt: skip
