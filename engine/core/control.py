"""Control of a running worker from any viewer, through files in the run directory.

- `worker.lock`: the worker holds an exclusive flock for its whole life. The kernel
  drops it when the process dies (kill -9 and reboots included), so "is the lock free?"
  is a liveness test that pid reuse cannot fool.
- `control.jsonl`: viewers append requests (`stop`, `pause`, `checkpoint`, `evaluate`);
  the worker reads new lines at every step boundary. Appends of one short line are atomic,
  so several viewers can write at once, and nothing depends on a pipe to a viewer.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from engine.core.errors import TunedeckError
from engine.core.files import read_complete_lines
from engine.core.layout import CONTROL_FILE, LOCK_FILE

Action = Literal["stop", "pause", "checkpoint", "evaluate"]
ACTIONS: tuple[Action, ...] = ("stop", "pause", "checkpoint", "evaluate")


class RunLockedError(TunedeckError):
    """Another worker already owns this run directory."""


@contextlib.contextmanager
def pid_lock(path: Path, busy: TunedeckError, wait_s: float = 0.0) -> Iterator[None]:
    """Hold an exclusive flock on `path` (our pid written in it), or raise `busy`.

    The kernel drops the lock when the holder dies, kill -9 and reboots included, so a
    dead process never leaves it held. `wait_s` covers a viewer probing it just then.
    """
    deadline = time.monotonic() + wait_s
    with open(path, "a+") as handle:  # closing releases the flock
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise busy from None
                time.sleep(0.05)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield


def lock_holder(path: Path) -> int | None:
    """The pid holding the lock at `path` (-1 if unreadable), or None when it is free."""
    if not path.exists():
        return None
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def worker_lock(run_dir: Path, wait_s: float = 5.0) -> contextlib.AbstractContextManager[None]:
    """Hold the run's worker lock, or raise RunLockedError after `wait_s`."""
    busy = RunLockedError(
        f"run {run_dir.name} is already owned by a running worker",
        hint="`tunedeck runs` shows its state; stop it before resuming",
    )
    return pid_lock(run_dir / LOCK_FILE, busy, wait_s)


def worker_alive(run_dir: Path) -> bool:
    """True while some process holds the run's worker lock."""
    return lock_holder(run_dir / LOCK_FILE) is not None


def send_request(run_dir: Path, action: Action) -> None:
    """Append a control request for the run's worker."""
    if action not in ACTIONS:
        raise ValueError(f"unknown control action {action!r}")
    line = json.dumps({"action": action, "time": time.time()}) + "\n"
    # O_APPEND: concurrent viewers' lines never interleave within a line.
    fd = os.open(run_dir / CONTROL_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


class ControlReader:
    """The worker's side: new requests since the last poll (cheap when there are none)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / CONTROL_FILE
        # Requests written before this worker started were for an earlier worker.
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def poll(self) -> list[Action]:
        """Actions appended since the previous poll, in order."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size <= self.offset:
            return []
        data, self.offset = read_complete_lines(self.path, self.offset)
        actions: list[Action] = []
        for raw in data.splitlines():
            try:
                action = json.loads(raw).get("action")
            except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
                continue
            if action in ACTIONS:
                actions.append(action)
        return actions
