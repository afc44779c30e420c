"""Where the TUI's own files live (styles ship inside the wheel as the `styles` package)."""

from __future__ import annotations

from pathlib import Path

import styles

STYLES_DIR = Path(styles.__file__).parent


def stylesheet(name: str) -> Path:
    """Path of `styles/<name>.tcss`."""
    return STYLES_DIR / f"{name}.tcss"
