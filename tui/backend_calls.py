"""`OrderedCalls`: backend calls asked for on the UI thread, made in a worker in that order.

Screens call the backend only off the UI thread (tui.backend). Most calls stand alone and
get a worker each; some must reach the engine in the order the keys were pressed: a review
mark and the same key again (its undo), a run's checkpoint, stop and pause requests. A
screen puts those here and starts a worker that runs `run`: whichever worker holds the
lock makes every call queued so far, one at a time, oldest first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any, Generic, TypeVar

from textual.app import App

B = TypeVar("B")


class OrderedCalls(Generic[B]):
    """A queue of calls on a backend `B`, each with what to do with its result."""

    def __init__(self) -> None:
        self._queue: SimpleQueue[tuple[Callable[[B], Any], Callable[[Any], None]]] = SimpleQueue()
        self._lock = threading.Lock()

    def put(self, call: Callable[[B], Any], then: Callable[[Any], None]) -> None:
        """Queue `call` (on the UI thread); `then` gets its result on the UI thread."""
        self._queue.put((call, then))

    def run(self, backend: B, app: App[Any]) -> None:
        """Make the queued calls in order (in a worker thread). An exception ends the run
        (the worker's error dialog shows it); the calls after it wait for the next run."""
        with self._lock:
            while True:
                try:
                    call, then = self._queue.get_nowait()
                except Empty:
                    return
                app.call_from_thread(then, call(backend))
