"""Dataset formats: detect, read and normalise the common SFT formats to one chat form.

Supported record formats (auto-detected from the first records, overridable):

- ``chat``: ``{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}``
- ``sharegpt``: ``{"conversations": [{"from": "system"|"human"|"gpt", "value": str}, ...]}``
- ``alpaca``: ``{"instruction": str, "input": str, "output": str}``
- ``prompt_completion``: ``{"prompt": str, "completion": str}``

in any of these containers: JSONL, one JSON array, CSV/TSV, Parquet, or a Hugging Face Hub
dataset (`engine.data.sources`: its files read as one stream; `--columns` maps other
columns to prompt / response / system). Every record becomes an
`Example` (a tuple of `Message`s) that keeps its source line: the 1-based line of the file
(JSONL, CSV: the line the row starts on), or the 1-based element / row index (JSON array,
Parquet). Records that cannot become a valid example carry `Problem`s instead;
`engine.data.lint.linter` turns those into findings, `load_examples` skips them.

Reading streams: a 100 MB JSONL never sits in memory as a whole (a JSON array file does,
since it is one JSON value).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.core.files import replace_durably
from engine.data.hub import HubDataset
from engine.data.readers import DatasetError, RawRecord, sniff_container
from engine.data.rules import (
    FORMATS,
    Problem,
    Severity,
    format_of_object,
    normalise_record,
)
from engine.data.sources import (
    ColumnMap,
    DataSource,
    SourceReader,
    as_column_map,
    check_columns,
    check_readable,
    open_source,
)

__all__ = [
    "CONTAINERS",
    "FORMATS",
    "DatasetError",
    "Example",
    "LoadedDataset",
    "Message",
    "Problem",
    "Record",
    "RecordStream",
    "Role",
    "Severity",
    "UnknownFormatError",
    "detect_container",
    "detect_format",
    "iter_records",
    "load_examples",
    "sha256_file",
    "write_chat_jsonl",
]

Role = Literal["system", "user", "assistant"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant")

CONTAINERS: tuple[str, ...] = ("jsonl", "json", "csv", "parquet")
"""File containers: JSON lines, one JSON array, CSV/TSV with a header row, Parquet."""

_FORMAT_ALIASES = {
    "openai": "chat",
    "messages": "chat",
    "conversations": "sharegpt",
    "prompt-completion": "prompt_completion",
    "completion": "prompt_completion",
}

_DETECT_SAMPLE = 50  # records looked at to pick a format; a vote, so stray bad lines don't win


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of a conversation."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Example:
    """One training conversation, normalised, with where it came from."""

    messages: tuple[Message, ...]
    line: int
    """1-based source line (JSON array / Parquet: 1-based element / row index)."""
    meta: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    """The record's `meta` object (where an example came from, e.g. `tunedeck data add`'s
    provenance), kept through the split and never trained on."""

    @property
    def answer(self) -> str:
        """Content of the last assistant message (the target a label or format lives in)."""
        for message in reversed(self.messages):
            if message.role == "assistant":
                return message.content
        return ""

    def to_dict(self) -> dict[str, Any]:
        """The normalised chat form, as written to train.jsonl / val.jsonl (`meta` kept)."""
        out: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in self.messages]
        }
        if self.meta is not None:
            out["meta"] = self.meta
        return out


@dataclass(frozen=True, slots=True)
class Record:
    """One source record as read: a valid example, or the problems that prevent one."""

    line: int
    example: Example | None
    problems: tuple[Problem, ...] = ()
    raw: str | None = None
    """JSONL only: the line's text without its line ending (`--fix` copies it verbatim)."""
    blank: bool = False

    @property
    def has_error(self) -> bool:
        return any(p.severity == "error" for p in self.problems)


class UnknownFormatError(DatasetError):
    """Records that match no known format; `columns` are the keys the first ones have
    (the Data step offers to map them, `--columns` does it on the command line)."""

    def __init__(self, message: str, hint: str, columns: list[str]) -> None:
        super().__init__(message, hint=hint, field="data.columns")
        self.columns = columns


class RecordStream:
    """Records of one source (a file, or a hub dataset's files) in order; `format` and
    `container` are known up front.

    Iterate it once. `fraction_read` reports progress (0..1) for long files; `place(line)`
    names a record's file and line (`data/train-00000.parquet:row 812` for a hub dataset).
    """

    def __init__(
        self,
        source: DataSource,
        fmt: str,
        limit: int | None = None,
        columns: ColumnMap | None = None,
    ) -> None:
        self.source = source
        self.path = Path(source.label) if source.hub else source.path
        self.format = fmt
        self.container = source.container
        self._raw = SourceReader(source, limit, columns)
        self._records = self._normalised()

    @property
    def fraction_read(self) -> float:
        return self._raw.fraction_read

    def place(self, line: int) -> str:
        return self._raw.place(line)

    def __iter__(self) -> Iterator[Record]:
        return self

    def __next__(self) -> Record:
        return next(self._records)

    def _normalised(self) -> Iterator[Record]:
        for raw in self._raw:
            yield to_record(raw, self.format)


def to_record(raw: RawRecord, fmt: str) -> Record:
    """Normalise one raw record (parsed object or read problem) into a `Record`."""
    if raw.blank:
        return Record(raw.line, None, (), raw.text, blank=True)
    if raw.problem is not None:
        return Record(raw.line, None, (raw.problem,), raw.text)
    turns, problems = normalise_record(raw.obj, fmt)
    if turns is None or any(p.severity == "error" for p in problems):
        return Record(raw.line, None, tuple(problems), raw.text)
    messages = tuple(Message(role, content) for role, content in turns)  # type: ignore[arg-type]
    meta = raw.obj.get("meta") if isinstance(raw.obj, dict) else None
    example = Example(messages, raw.line, meta if isinstance(meta, dict) else None)
    return Record(raw.line, example, tuple(problems), raw.text)


@dataclass(frozen=True)
class LoadedDataset:
    """A whole dataset in memory: the valid examples and what was skipped and why."""

    path: Path
    format: str
    container: str
    examples: list[Example]
    problems: list[tuple[int, Problem]] = field(default_factory=list)
    """(line, problem) for every problem, warnings included."""
    skipped_lines: list[int] = field(default_factory=list)
    """Lines that had errors and are not in `examples` (blank lines are not counted)."""
    blank_lines: list[int] = field(default_factory=list)
    hub: HubDataset | None = None
    """Where a hub dataset's records came from (repository, config, split, commit)."""
    limit: int | None = None
    """The row limit it was read with, if any."""
    columns: str | None = None
    """The column mapping it was read with, if any (`prompt=q,response=a`)."""

    @property
    def record_count(self) -> int:
        return len(self.examples) + len(self.skipped_lines)


def canonical_format(fmt: str) -> str:
    """Accept a format name or a common alias; raise DatasetError for anything else."""
    name = fmt.strip().lower().replace(" ", "_")
    name = _FORMAT_ALIASES.get(name, name)
    if name not in FORMATS:
        raise DatasetError(
            f"unknown dataset format {fmt!r}",
            hint=f"use one of: {', '.join(FORMATS)} (or leave it out to auto-detect)",
        )
    return name


def detect_container(path: str | os.PathLike[str]) -> str:
    """The container of a local file: jsonl, json (array), csv or parquet. Raises
    DatasetError."""
    return sniff_container(check_readable(Path(path)))


def detect_format(path: str | os.PathLike[str] | DataSource) -> str:
    """The record format of a source, by a vote over its first records. Raises DatasetError
    (UnknownFormatError, with the columns seen, when no format matches)."""
    source = path if isinstance(path, DataSource) else open_source(path)
    votes: dict[str, int] = {}
    seen_keys: dict[str, None] = {}
    for raw in SourceReader(source, limit=_DETECT_SAMPLE):
        if raw.problem is not None or raw.blank:
            continue
        fmt = format_of_object(raw.obj)
        if fmt is not None:
            votes[fmt] = votes.get(fmt, 0) + 1
        elif isinstance(raw.obj, dict):
            seen_keys.update(dict.fromkeys(str(k) for k in raw.obj))
    if not votes:
        found = ", ".join(list(seen_keys)[:12]) or "no JSON objects"
        raise UnknownFormatError(
            f"{source.label}: not a dataset format tunedeck knows (found: {found})",
            hint="records need 'messages' (chat), 'conversations' (ShareGPT), "
            "'instruction'+'output' (Alpaca) or 'prompt'+'completion'; or map columns: "
            "--columns prompt=COLUMN,response=COLUMN",
            columns=list(seen_keys),
        )
    # Ties go to the earlier format in FORMATS: max() keeps the first maximum.
    return max(FORMATS, key=lambda f: votes.get(f, 0))


def iter_records(
    path: str | os.PathLike[str] | DataSource,
    fmt: str | None = None,
    *,
    limit: int | None = None,
    columns: ColumnMap | str | None = None,
) -> RecordStream:
    """Stream the records of a dataset file or hub dataset, valid or not, in source order.

    Args:
        path: the dataset file, or a hub id `ORG/NAME[:CONFIG][@REVISION][[SPLIT]]`.
        fmt: a name from FORMATS to skip detection (aliases accepted).
        limit: read only the first `limit` records (the rest is never read).
        columns: map columns to prompt / response / system (`prompt=q,response=a`); the
            records are then read as prompt_completion.

    Returns:
        A `RecordStream` (an iterator of `Record`) with `.format` and `.container`.

    Raises:
        DatasetError: the source is unusable as a whole (missing, empty, binary, not UTF-8,
            no known format). ColumnError: a mapped column the data lacks. HubDatasetError:
            a hub dataset that cannot be had. Problems of single records are never raised.
    """
    source = path if isinstance(path, DataSource) else open_source(path)
    mapping = as_column_map(columns)
    if mapping is not None:
        check_columns(source, mapping)
        chosen = "prompt_completion"
    else:
        chosen = canonical_format(fmt) if fmt else detect_format(source)
    return RecordStream(source, chosen, limit, mapping)


def load_examples(
    path: str | os.PathLike[str] | DataSource,
    fmt: str | None = None,
    *,
    limit: int | None = None,
    columns: ColumnMap | str | None = None,
) -> LoadedDataset:
    """Read a whole dataset: valid examples in order, plus the lines skipped and why."""
    stream = iter_records(path, fmt, limit=limit, columns=columns)
    examples: list[Example] = []
    problems: list[tuple[int, Problem]] = []
    skipped: list[int] = []
    blank: list[int] = []
    for record in stream:
        problems.extend((record.line, p) for p in record.problems)
        if record.blank:
            blank.append(record.line)
        elif record.example is None:
            skipped.append(record.line)
        else:
            examples.append(record.example)
    mapping = as_column_map(columns)
    return LoadedDataset(
        stream.path, stream.format, stream.container, examples, problems, skipped, blank,
        stream.source.hub, limit, str(mapping) if mapping else None,
    )  # fmt: skip


def write_chat_jsonl(examples: Iterable[Example], path: str | os.PathLike[str]) -> int:
    """Write examples in the normalised chat form, one JSON object a line; returns the count.

    Writes to a temporary sibling and renames it into place, so a crash never leaves a
    half-written file under the final name.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    count = 0
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as out:
            for example in examples:
                out.write(json.dumps(example.to_dict(), ensure_ascii=False) + "\n")
                count += 1
        replace_durably(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
