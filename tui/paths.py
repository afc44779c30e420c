"""Where the TUI's own files live, and how paths are shown to the user.

Styles ship inside the wheel as the `styles` package.
"""

from __future__ import annotations

import os
from pathlib import Path

import styles

STYLES_DIR = Path(styles.__file__).parent


def stylesheet(name: str) -> Path:
    """Path of `styles/<name>.tcss`."""
    return STYLES_DIR / f"{name}.tcss"


def display_path(path: Path | str) -> str:
    """A path as short as it can be unambiguously: relative to the current directory
    when inside it, `~/...` when inside the home directory, else absolute."""
    absolute = Path(path).expanduser().absolute()
    cwd = Path.cwd()
    if absolute.is_relative_to(cwd):
        return str(absolute.relative_to(cwd))
    home = Path.home()
    if absolute.is_relative_to(home):
        return "~" + os.sep + str(absolute.relative_to(home))
    return str(absolute)
