"""Following a detached evaluation through its run's events.jsonl.

The Evaluate and Baseline steps both start `engine.eval.launch` as a detached process and
watch the `eval_*` events it appends: progress, notes, and one end event (what a batch
says is `engine.eval.events.eval_news`). `follow_eval` is the polling loop both run in a
worker thread; `progress_text` is the status line both show; `stop_outcome` reads what a
stopped evaluation kept. A process that dies before writing anything (no lock, no event
for a while) counts as failed, so a viewer never waits forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from engine.eval.events import EvalNews, RowsKept, eval_news, rows_kept
from engine.eval.options import system_title
from tui.backend import EvalBackend, RunsBackend

if TYPE_CHECKING:
    from pathlib import Path

POLL_S = 0.5
"""How often the follower reads new events: at most two redraws a second."""
START_GRACE_POLLS = 20
"""Polls without the evaluation's lock or any event before we call the process dead."""

__all__ = ["EvalNews", "follow_eval", "progress_text", "stop_outcome"]


class FollowBackend(RunsBackend, EvalBackend, Protocol):
    """What following an evaluation asks of the backend: the run's events, and whether
    (and how far) its evaluation runs."""


def follow_eval(
    backend: FollowBackend,
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


def stop_outcome(backend: FollowBackend, run_dir: Path, offset: int) -> RowsKept | None:
    """Rows a stopped evaluation left on disk, of all it meant to generate (blocks: call
    it from a worker thread); None when it was stopped before it generated anything.

    Args:
        offset: where in the run's events the evaluation was started.
    """
    events, _ = backend.read_events(run_dir, offset)
    return rows_kept(events, partial(backend.eval_rows_kept, run_dir))


def progress_text(event: dict[str, Any]) -> str:
    """`Evaluating: generate base few-shot 4/9` from an `eval_progress` event."""
    done, total = int(event.get("done", 0)), int(event.get("total", 0)) or None
    system = event.get("system")
    title = system_title(str(system)) if system else ""
    return f"Evaluating: {event.get('phase', '')} {title} {done}/{total or '?'}"
