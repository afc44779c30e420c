"""An Input for file paths: completes directory entries as you type (→ accepts).

The suggestion is the first entry of the typed directory that starts with the typed name;
directories end in "/" so the next → descends. `suffixes` limits files to the kinds the
field wants (datasets, configs); directories are always offered.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from textual.suggester import Suggester
from textual.widgets import Input

DATASET_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")


class PathSuggester(Suggester):
    """Completes the last component of a path from the file system."""

    def __init__(self, suffixes: Iterable[str] = ()) -> None:
        super().__init__(use_cache=False, case_sensitive=True)  # the disk changes
        self.suffixes = tuple(s.lower() for s in suffixes)

    async def get_suggestion(self, value: str) -> str | None:
        if not value or value.endswith(("/..", "/.")):
            return None
        head, _, name = value.rpartition("/")
        directory = Path(os.path.expanduser(head + "/" if head or value.startswith("/") else "."))
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            return None
        for entry in entries:
            if not entry.name.startswith(name) or entry.name == name:
                continue
            if entry.name.startswith(".") and not name.startswith("."):
                continue
            if entry.is_dir():
                return f"{value}{entry.name[len(name) :]}/"
            if not self.suffixes or entry.name.lower().endswith(self.suffixes):
                return f"{value}{entry.name[len(name) :]}"
        return None


class NameOrPathSuggester(PathSuggester):
    """Completes one of `names` (model names) first, else a path."""

    def __init__(self, names: Iterable[str]) -> None:
        super().__init__()
        self.names = sorted(names)

    async def get_suggestion(self, value: str) -> str | None:
        for name in self.names:
            if value and name.startswith(value) and name != value:
                return name
        return await super().get_suggestion(value)


class PathInput(Input):
    """An Input with path completion (→ accepts the greyed-out suggestion)."""

    def __init__(
        self,
        value: str = "",
        *,
        suffixes: Iterable[str] = (),
        placeholder: str = "path (→ completes)",
        id: str | None = None,
    ) -> None:
        super().__init__(
            value,
            placeholder=placeholder,
            suggester=PathSuggester(suffixes),
            compact=True,
            id=id,
        )
