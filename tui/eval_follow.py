"""Following a detached evaluation through its run's events.jsonl.

The Evaluate and Baseline steps both start `engine.eval.launch` as a detached process and
watch the `eval_*` events it appends: progress, notes, and one end event. `follow_eval`
is the polling loop both run in a worker thread; `progress_text` is the status line both
show. A process that dies before writing anything (no lock, no event for a while) counts
as failed, so a viewer never waits forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.eval.options import system_title

if TYPE_CHECKING:
    from pathlib import Path

    from tui.backend import Backend

POLL_S = 0.5
"""How often the follower reads new events: at most two redraws a second."""
START_GRACE_POLLS = 20
"""Polls without the evaluation's lock or any event before we call the process dead."""
END_EVENTS = ("eval_done", "eval_failed", "eval_stopped")


@dataclass(frozen=True)
class EvalNews:
    """What one poll found: the newest progress, notes to show, and the end if it came."""

    progress: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    ended: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return bool(self.progress or self.notes or self.ended)


def eval_news(events: list[dict[str, Any]]) -> EvalNews:
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


def follow_eval(
    backend: Backend,
    run_dir: Path,
    offset: int,
    report: Callable[[EvalNews], None],
    cancelled: Callable[[], bool],
) -> None:
    """Poll the run's events from `offset` and `report` news until the evaluation ends.

    Blocks: call it from a worker thread, with `cancelled` telling it when to give up.
    """
    quiet = 0
    while not cancelled():
        events, offset = backend.read_events(run_dir, offset)
        news = eval_news(events)
        if not news and not backend.eval_running(run_dir):
            quiet += 1
            if quiet >= START_GRACE_POLLS:
                news = EvalNews(ended={"type": "eval_failed",
                                       "error": "the evaluation process exited"})  # fmt: skip
        if news:
            report(news)
        if news.ended:
            return
        time.sleep(POLL_S)


def progress_text(event: dict[str, Any]) -> str:
    """`Evaluating: generate base few-shot 4/9` from an `eval_progress` event."""
    done, total = int(event.get("done", 0)), int(event.get("total", 0)) or None
    system = event.get("system")
    title = system_title(str(system)) if system else ""
    return f"Evaluating: {event.get('phase', '')} {title} {done}/{total or '?'}"
