"""Checks of the serving commands an export prints (engine.export.serve)."""

from __future__ import annotations

import shlex
from pathlib import Path


def serve_line(notes: tuple[str, ...] | list[str], prefix: str) -> list[str]:
    """The command of the one note starting with `prefix` ("vLLM: "), split as a shell would,
    after checking that every absolute path in it exists."""
    lines = [note for note in notes if note.startswith(prefix)]
    assert len(lines) == 1, notes
    words = shlex.split(lines[0][len(prefix) :])
    for word in words:
        path = word.split("=", 1)[-1]  # NAME=DIR in --lora-modules
        if path.startswith("/"):
            assert Path(path).exists(), f"{path} in {lines[0]!r} does not exist"
    return words
