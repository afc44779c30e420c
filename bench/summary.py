"""The machine-readable result every bench writes with `--json PATH`, for `bench/run_all.py`.

One file per bench: {"bench": name, "rows": [Row, ...]}. A row is one line of the common
table: a tunedeck figure, the peer measured in the same run, their ratio, the target the
issue sets and whether it is met (None when the bench cannot say, e.g. no target).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    """One line of the `make bench` table."""

    benchmark: str
    """What is measured, e.g. "eval generation (prompts/s)"."""
    figure: str
    """tunedeck's figure, formatted with its unit."""
    peer: str
    """What it is compared with (measured in the same run)."""
    peer_figure: str
    ratio: float | None
    """How many times better tunedeck is than the peer (> 1: better), None without peer."""
    target: str
    met: bool | None


def write_summary(path: str | Path | None, bench: str, rows: list[Row]) -> None:
    """Write the rows to `path` as JSON (nothing when `path` is None)."""
    if path is None:
        return
    data: dict[str, Any] = {"bench": bench, "rows": [asdict(row) for row in rows]}
    Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def read_summary(path: Path) -> tuple[str, list[Row]]:
    """The bench name and rows of a summary file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return str(data["bench"]), [Row(**row) for row in data["rows"]]
