"""`ThreadCheckedBackend`: a backend wrapper that notes each call made on the UI thread.

The app must call its backend only from worker threads (tui.backend). The wrapper hands
every call to the backend it wraps and remembers where the calls that arrived on the UI
thread came from, so a test can fail with the screen's file and line.
"""

from __future__ import annotations

import threading
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

from tui.backend import Backend

BACKEND_METHODS = frozenset(name for name in dir(Backend) if not name.startswith("_"))
"""Every method of the protocols (Protocol itself adds no public names)."""

UI_THREAD_EXEMPT = {
    "shutdown": "as the app quits; it only signals the child processes the backend started",
}
"""Calls allowed on the UI thread, each with the reason it cannot block."""

TUI_DIR = Path(__file__).resolve().parents[2] / "tui"


class ThreadCheckedBackend:
    """Hands every call to `inner`; notes the backend calls made on the UI thread.

    Args:
        inner: the backend that does the work (tests keep it to set up runs and to call
            it themselves: their calls do not count).
        ui_thread: the thread the app's event loop runs on (a Pilot test's own).
    """

    def __init__(self, inner: Backend, ui_thread: threading.Thread) -> None:
        self.inner = inner
        self.ui_thread = ui_thread
        self.calls: Counter[str] = Counter()
        """How often each backend method was called, from any thread."""
        self.on_ui_thread: list[str] = []
        """`method (where in tui/ it was called)` for each call made on the UI thread."""

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in BACKEND_METHODS:
            return attr

        def checked(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if threading.current_thread() is self.ui_thread and name not in UI_THREAD_EXEMPT:
                self.on_ui_thread.append(f"{name} ({_caller_in_tui()})")
            return attr(*args, **kwargs)

        return checked


def _caller_in_tui() -> str:
    """The innermost frame of the stack that is in tui/: the code that made the call."""
    for frame in reversed(traceback.extract_stack()):
        path = Path(frame.filename).resolve()
        if path.is_relative_to(TUI_DIR):
            return f"{path.relative_to(TUI_DIR.parent)}:{frame.lineno} in {frame.name}"
    return "outside tui/"
