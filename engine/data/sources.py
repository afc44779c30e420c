"""Where records come from: one local file, or the files of a hub dataset, as one stream.

`open_source` turns what the user typed into a `DataSource`: a local dataset file, or a
hub id (`engine.data.hub`) resolved to the files of one config and split. `SourceReader`
reads its files one after the other as raw records numbered across them (1, 2, ... over
the whole split), stops after `limit` records without opening the rest (a Parquet file is
read batch by batch), and maps columns to a known format when asked (`ColumnMap`).
`SourceReader.place(line)` turns such a number back into the file and its own line or row
(`data/train-00000.parquet:row 812`), which is how lint names a hub dataset's records.

Files that tunedeck's readers do not take (Arrow, compressed JSON / CSV) are read through
`datasets.load_dataset(snapshot, streaming=True)`: rows in order, with no file lines.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.errors import TunedeckError
from engine.data.hub import HubDataset, parse_hub_id, resolve_hub_dataset
from engine.data.readers import DatasetError, RawRecord, iter_raw_records, sniff_container
from engine.data.rules import Problem

COLUMN_ROLES = ("prompt", "response", "system")
"""What `--columns` maps: the user's turn, the answer, and an optional system prompt."""


class ColumnError(DatasetError):
    """A column mapping that names a column the data does not have, or is malformed."""

    exit_code = 2


@dataclass(frozen=True)
class ColumnMap:
    """Which columns hold the prompt, the response and (optionally) the system prompt."""

    prompt: str
    response: str
    system: str | None = None

    @classmethod
    def parse(cls, text: str) -> ColumnMap:
        """`prompt=question,response=answer[,system=sys]` -> a ColumnMap.

        Raises:
            ColumnError: an unknown role, a missing prompt / response, or no column name.
        """
        roles: dict[str, str] = {}
        for part in (p.strip() for p in text.split(",") if p.strip()):
            role, sep, column = (s.strip() for s in part.partition("="))
            if not sep or not column or role not in COLUMN_ROLES:
                raise ColumnError(
                    f"column mapping {text!r}: cannot read {part!r}",
                    hint="write ROLE=COLUMN pairs, e.g. prompt=question,response=answer "
                    f"(roles: {', '.join(COLUMN_ROLES)})",
                    field="data.columns",
                )
            roles[role] = column
        if "prompt" not in roles or "response" not in roles:
            raise ColumnError(
                f"column mapping {text!r} needs both prompt= and response=",
                hint="e.g. prompt=question,response=answer",
                field="data.columns",
            )
        return cls(roles["prompt"], roles["response"], roles.get("system"))

    def __str__(self) -> str:
        system = f",system={self.system}" if self.system else ""
        return f"prompt={self.prompt},response={self.response}{system}"

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.prompt, self.response, *([self.system] if self.system else []))

    def apply(self, obj: Any) -> tuple[Any, Problem | None]:
        """A row as a prompt_completion record (its `meta` kept), or the missing column."""
        if not isinstance(obj, dict):
            return obj, None  # normalise_record says what it is
        missing = [c for c in self.columns if c not in obj]
        if missing:
            return None, Problem(
                "error",
                "no-format-keys",
                f"row has no column {missing[0]!r} (columns mapped: {self})",
                "every row needs the mapped columns; fix the row or the mapping",
            )
        out = {"prompt": obj[self.prompt], "completion": obj[self.response]}
        if self.system and obj[self.system] not in (None, ""):
            out["system"] = obj[self.system]
        if isinstance(obj.get("meta"), dict):
            out["meta"] = obj["meta"]
        return out, None


@dataclass(frozen=True)
class DataReading:
    """How a dataset is read: its first `limit` rows (None: all), `columns` mapped."""

    limit: int | None = None
    columns: str | None = None
    """A ColumnMap's spelling, `prompt=question,response=answer[,system=COLUMN]`."""


ALL_ROWS = DataReading()


@dataclass(frozen=True)
class SourceFile:
    """One file of a source, as read and as named in findings."""

    path: Path
    name: str
    """The local path as given, or the file's path inside the hub repository."""
    container: str
    """jsonl, json, csv, parquet, or `datasets` (read through the datasets library)."""


@dataclass(frozen=True)
class DataSource:
    """A local dataset file or a hub dataset's split, ready to read."""

    label: str
    """What the user typed (a hub id as asked), for messages."""
    files: tuple[SourceFile, ...]
    hub: HubDataset | None = None

    @property
    def container(self) -> str:
        kinds = sorted({f.container for f in self.files})
        return kinds[0] if len(kinds) == 1 else "+".join(kinds)

    @property
    def path(self) -> Path:
        """A local file's path; for a hub dataset its first file (in the cache)."""
        return self.files[0].path


def open_source(spec: str | os.PathLike[str]) -> DataSource:
    """The source `spec` names: a hub dataset (resolved now: cache, else the hub) or a file.

    Raises:
        DatasetError: an unusable local file. HubDatasetError: see resolve_hub_dataset.
    """
    text = str(spec)
    hub_id = parse_hub_id(text)
    if hub_id is None:
        path = check_readable(Path(spec))
        return DataSource(text, (SourceFile(path, str(path), sniff_container(path)),))
    hub = resolve_hub_dataset(hub_id)
    if not hub.native:
        first = hub.snapshot / hub.files[0]
        return DataSource(text, (SourceFile(first, f"{hub.asked}", "datasets"),), hub)
    files = []
    for name in hub.files:
        path = hub.snapshot / name
        try:
            container = sniff_container(path)
        except DatasetError as exc:
            raise DatasetError(f"{hub.asked}: {name}: {exc.message.split(': ', 1)[-1]}",
                               hint=exc.hint) from exc  # fmt: skip
        files.append(SourceFile(path, name, container))
    return DataSource(text, tuple(files), hub)


def check_readable(path: Path) -> Path:
    """`path` as a readable dataset file. Raises DatasetError naming what is wrong."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(
            f"{path}: no such file",
            hint="check the path (tab completion helps); a hub dataset is spelled "
            "ORG/NAME[:CONFIG][@REVISION][[SPLIT]]",
        )
    if path.is_dir():
        raise DatasetError(f"{path} is a directory", hint="pass one dataset file, e.g. data.jsonl")
    if not os.access(path, os.R_OK):
        raise DatasetError(f"{path}: permission denied", hint=f"check permissions: ls -l {path}")
    return path


class SourceReader:
    """Raw records of a source's files in order, numbered across files, up to `limit`."""

    def __init__(
        self, source: DataSource, limit: int | None = None, columns: ColumnMap | None = None
    ) -> None:
        self.source = source
        self.limit = limit
        self.columns = columns
        self.read = 0
        """Non-blank records read so far."""
        self._starts: list[int] = []
        """Number of records before each file opened so far (its line 1 is start + 1)."""
        self._done_bytes = 0
        self._current: Any = None
        self._total = sum(f.path.stat().st_size for f in source.files) or 1

    @property
    def fraction_read(self) -> float:
        if self.limit:
            return min(1.0, self.read / self.limit)
        current = self._current.bytes_read if self._current is not None else 0
        return min(1.0, (self._done_bytes + current) / self._total)

    def __iter__(self) -> Iterator[RawRecord]:
        offset = 0
        for file in self.source.files:
            if self.limit is not None and self.read >= self.limit:
                return  # the files after the limit are never opened
            self._starts.append(offset)
            last = 0
            for raw in self._raw(file):
                last = raw.line
                if not raw.blank:
                    if self.limit is not None and self.read >= self.limit:
                        return
                    self.read += 1
                yield self._mapped(raw, offset)
            self._done_bytes += file.path.stat().st_size
            offset += last

    def _raw(self, file: SourceFile) -> Iterator[RawRecord]:
        if file.container == "datasets":
            self._current = None
            return _datasets_rows(self.source)
        self._current = iter_raw_records(file.path, file.container)
        return iter(self._current)

    def _mapped(self, raw: RawRecord, offset: int) -> RawRecord:
        line = raw.line + offset
        if self.columns is None or raw.blank or raw.problem is not None:
            return RawRecord(line, raw.obj, raw.problem, raw.text, raw.blank)
        obj, problem = self.columns.apply(raw.obj)
        return RawRecord(line, obj, problem, raw.text)

    def place(self, line: int) -> str:
        """`name:line` of a record number (Parquet and datasets rows: `name:row N`)."""
        if not self._starts:
            return f"{self.source.files[0].name}:{line}"
        index = max(0, bisect.bisect_left(self._starts, line) - 1)
        file = self.source.files[index]
        local = line - self._starts[index]
        if file.container in ("parquet", "datasets"):
            return f"{file.name}:row {local}"
        return f"{file.name}:{local}"


def _datasets_rows(source: DataSource) -> Iterator[RawRecord]:
    """Rows through `datasets.load_dataset(snapshot)` (streaming: a limit stops early)."""
    import datasets  # lazy: ~1 s, and only for data files tunedeck's readers do not take

    hub = source.hub
    assert hub is not None
    try:
        rows = datasets.load_dataset(
            str(hub.snapshot), name=hub.config, split=hub.split, streaming=True
        )
        for number, row in enumerate(rows, start=1):
            yield RawRecord(number, dict(row))
    except TunedeckError:
        raise
    except Exception as exc:  # datasets' own errors: a damaged or unexpected file
        raise DatasetError(
            f"{hub.asked}: datasets could not read the {hub.split} split ({exc})",
            hint="the files may be damaged; fetch them again, or convert them to Parquet",
        ) from exc


def peek_columns(source: DataSource, count: int = 50) -> list[str]:
    """Column names of the first records (in order of first appearance), for messages."""
    seen: dict[str, None] = {}
    for raw in SourceReader(source, limit=count):
        if isinstance(raw.obj, dict):
            seen.update(dict.fromkeys(str(k) for k in raw.obj))
    return list(seen)


def check_columns(source: DataSource, columns: ColumnMap) -> None:
    """Raise ColumnError when the mapping names a column the first records lack."""
    seen = peek_columns(source)
    unknown = [c for c in columns.columns if c not in seen]
    if unknown:
        raise ColumnError(
            f"{source.label}: no column {unknown[0]!r} (columns: {', '.join(seen) or 'none'})",
            hint="map columns that exist: --columns prompt=COLUMN,response=COLUMN",
            field="data.columns",
        )


def as_column_map(columns: ColumnMap | str | Mapping[str, str] | None) -> ColumnMap | None:
    """A ColumnMap from its spelling (`prompt=q,response=a`), a mapping, or None."""
    if columns is None or isinstance(columns, ColumnMap):
        return columns
    if isinstance(columns, str):
        return ColumnMap.parse(columns)
    return ColumnMap.parse(",".join(f"{k}={v}" for k, v in columns.items()))
