"""A run's event log (`events.jsonl`) and status file (`status.json`).

The run directory is the only channel between the worker and its viewers. Events are
appended one JSON object per line and never rewritten; a reader tolerates a torn last
line (a worker killed mid-write) by consuming only complete lines. `status.json` is
replaced atomically (temp file, fsync, rename), so a reader sees the old or the new
status, never half of one.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.files import read_complete_lines, write_text_atomic
from engine.core.layout import EVENTS_FILE, STATUS_FILE

STATES = ("queued", "running", "paused", "stopping", "stopped", "completed", "failed")
ACTIVE_STATES = ("queued", "running", "stopping")
FINAL_STATES = ("stopped", "completed", "failed")


def now() -> float:
    """Event timestamps: seconds since the epoch (wall clock, comparable across processes)."""
    return time.time()


def _json_safe(value: Any) -> Any:
    """NaN and inf are not JSON; write them as strings a reader can still show."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


class EventWriter:
    """Appends events to a run's events.jsonl; safe to share between threads.

    `enabled=False` makes a silent writer: in a multi-process run only rank 0 speaks.
    """

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.path = run_dir / EVENTS_FILE
        self.enabled = enabled
        self._lock = threading.Lock()

    def emit(self, type_: str, **fields: Any) -> dict[str, Any]:
        """Append one event (`type` and `time` added) and flush it to the OS."""
        event = {"type": type_, "time": now(), **fields}
        if not self.enabled:
            return event
        line = json.dumps(_json_safe(event), allow_nan=False) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
        return event


def read_events(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete events from byte `offset` on, and the offset to continue from.

    A last line without its newline (torn write) is left for the next call; a line that
    is not a JSON object (a foreign or corrupted writer) is skipped, not fatal.
    """
    data, next_offset = read_complete_lines(path, offset)
    events = []
    for raw in data.splitlines():
        try:
            event = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(event, dict) and _well_formed(event):
            events.append(event)
    return events, next_offset


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _well_formed(event: dict[str, Any]) -> bool:
    """The fields readers rely on have the right types (a foreign writer may differ)."""
    kind = event.get("type")
    if not isinstance(kind, str):
        return False
    if kind == "metric":
        loss = event.get("loss")
        return (
            event.get("split") in ("train", "val")
            and _is_int(event.get("step"))
            and (isinstance(loss, int | float | str) and not isinstance(loss, bool))
        )
    if kind == "resume":
        return _is_int(event.get("from_step"))
    if kind == "state":
        return isinstance(event.get("state"), str)
    return True


def iter_all_events(run_dir: Path) -> Iterator[dict[str, Any]]:
    """Every complete event of a run, from the start."""
    events, _ = read_events(run_dir / EVENTS_FILE)
    yield from events


def metric_history(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The metric points of one continuous curve, across resumes.

    After a crash the worker resumes from its last checkpoint at step N, so points it
    logged after N before dying are superseded by the resumed run's: on each `resume`
    event, drop earlier points with step > N.
    """
    points: list[dict[str, Any]] = []
    for event in events:
        if event.get("type") == "resume":
            from_step = event.get("from_step", 0)
            points = [p for p in points if p.get("step", 0) <= from_step]
        elif event.get("type") == "metric":
            points.append(event)
    return points


# ---------------------------------------------------------------------------
# status.json
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunStatus:
    """The latest status of a run as its worker last wrote it."""

    state: str
    pid: int | None = None
    step: int = 0
    max_steps: int | None = None
    epoch: float = 0.0
    heartbeat: float | None = None
    best_val_loss: float | None = None
    best_step: int | None = None
    error: str | None = None
    hint: str | None = None


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace `path` with `data` so that readers see the old or the new file, whole."""
    write_text_atomic(path, json.dumps(_json_safe(data), indent=2) + "\n")


def write_status(run_dir: Path, status: RunStatus) -> None:
    """Atomically replace the run's status.json."""
    from dataclasses import asdict

    write_json_atomic(run_dir / STATUS_FILE, asdict(status))


def read_status(run_dir: Path) -> RunStatus | None:
    """The run's status, or None when status.json is missing or unreadable (garbled)."""
    try:
        data = json.loads((run_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("state") not in STATES:
        return None
    known = RunStatus.__dataclass_fields__
    fields = {k: v for k, v in data.items() if k in known}
    try:
        return RunStatus(**fields)
    except TypeError:
        return None
