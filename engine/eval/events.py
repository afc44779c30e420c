"""An evaluation's `eval_*` events read back: what a batch says, and what a stop kept.

A detached evaluation (`launch`) appends `eval_started`, `eval_progress`, `eval_note` and
one end (`eval_done`, `eval_failed`, `eval_stopped`) to its run's events.jsonl. Viewers
read them in batches: `eval_news` is what one batch says about the evaluation followed,
`ended_by_stop` whether its end was a stop, and `rows_kept` how many of the rows it set
out to generate a stopped evaluation left on disk (a later start continues from them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "END_EVENTS",
    "EvalNews",
    "RowCounter",
    "RowsKept",
    "ended_by_stop",
    "eval_news",
    "rows_kept",
]

END_EVENTS = ("eval_done", "eval_failed", "eval_stopped")

RowCounter = Callable[[list[str], int, "str | None"], int]
"""(systems, examples, eval set or None for the run's chosen one) -> generated rows of
those systems stored for the first `examples` examples (`store.stored_rows`)."""


@dataclass(frozen=True)
class EvalNews:
    """What one batch of events says: the newest progress, notes to show, the end if it came."""

    progress: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    ended: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return bool(self.progress or self.notes or self.ended)


def eval_news(events: Sequence[dict[str, Any]]) -> EvalNews:
    """The evaluation's news in a batch of run events (other events are ignored).

    A batch read from the start of the file (a viewer attaching again) also holds earlier
    evaluations, the Baseline step's for one: only an end after the newest
    `eval_started` ends the evaluation being followed.
    """
    evals = [e for e in events if str(e.get("type", "")).startswith("eval_")]
    starts = [i for i, e in enumerate(evals) if e["type"] == "eval_started"]
    current = evals[starts[-1] :] if starts else evals
    return EvalNews(
        progress=next((e for e in reversed(evals) if e["type"] == "eval_progress"), None),
        notes=[str(e.get("message", "")) for e in evals if e["type"] == "eval_note"],
        ended=next((e for e in reversed(current) if e["type"] in END_EVENTS), None),
    )


def ended_by_stop(ended: Mapping[str, Any], stop_asked: bool) -> bool:
    """Whether an end event is a stop: the evaluation said so, or it died without a word
    (SIGTERM before its handler was installed) after it was asked to stop."""
    return ended["type"] == "eval_stopped" or (stop_asked and ended["type"] == "eval_failed")


@dataclass(frozen=True)
class RowsKept:
    """What a stopped evaluation left: generated rows on disk, of all it set out to make."""

    kept: int
    planned: int
    """Systems x examples of its `eval_started` (0: it had nothing to generate)."""


def rows_kept(events: Sequence[Mapping[str, Any]], count_stored: RowCounter) -> RowsKept | None:
    """The rows a stopped evaluation kept, from the events it wrote since it was started.

    Args:
        events: the run's events from where the evaluation was started on.
        count_stored: counts the stored rows (the run's eval files) of what it planned.

    Returns:
        None when it was stopped before its `eval_started` (while loading): this one
        generated nothing.
    """
    started = next((e for e in reversed(events) if e.get("type") == "eval_started"), None)
    if started is None:
        return None
    systems, examples = list(started.get("systems", [])), int(started.get("examples", 0))
    kept = count_stored(systems, examples, started.get("eval_set"))
    return RowsKept(kept, len(systems) * examples)
