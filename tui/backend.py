"""What the TUI talks to: a thin facade over engine, injected into the app.

Tests hand the app a fake with the same methods. Anything that needs torch (model
conversion) runs in a child process (`tunedeck models --prepare NAME --json`), so the
TUI process never imports the training stack.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from engine.errors import TunedeckError
from engine.formats import LoadedDataset, load_examples
from engine.models import DEFAULT_MODEL, ModelInfo, list_models


class Backend:
    """The engine as the TUI sees it."""

    default_model = DEFAULT_MODEL

    def list_models(self) -> list[ModelInfo]:
        """Models available offline (cheap: no torch)."""
        return list_models()

    def load_dataset(self, path: Path) -> LoadedDataset:
        """Parse a dataset file into examples (runs in a worker thread)."""
        return load_examples(path)

    def prepare_model(self, name: str, progress: Callable[[str, float], None]) -> Path:
        """Convert / resolve a model in a child process, reporting its progress lines."""
        command = [sys.executable, "-m", "tui.cli", "models", "--prepare", name, "--json"]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert process.stdout is not None and process.stderr is not None
        ready_path: Path | None = None
        for line in process.stdout:
            event = _parse_event(line)
            if event.get("type") == "progress":
                progress(str(event["stage"]), float(event["fraction"]))
            elif event.get("type") == "ready":
                ready_path = Path(event["path"])
        stderr = process.stderr.read()
        if process.wait() != 0 or ready_path is None:
            message, hint = _error_from_stderr(stderr)
            raise TunedeckError(message or f"preparing {name} failed", hint=hint)
        return ready_path


def _parse_event(line: str) -> dict:
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return {}
    return event if isinstance(event, dict) else {}


def _error_from_stderr(stderr: str) -> tuple[str, str]:
    """Pick the CLI's `error:` and `hint:` lines out of its stderr."""
    message = hint = ""
    for line in stderr.splitlines():
        if line.startswith("error: "):
            message = line.removeprefix("error: ")
        elif line.startswith("hint: "):
            hint = line.removeprefix("hint: ")
    return message, hint
