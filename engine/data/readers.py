"""Container readers: JSONL, JSON array, CSV/TSV and Parquet files as a stream of raw records.

A raw record is one parsed object with its source line, or the problem that prevented
parsing it (invalid JSON with its column, a line that is not UTF-8, a short CSV row).
Whole-file problems (missing, empty, binary, UTF-16, not UTF-8 from the start) raise
`DatasetError` before the first record, so a caller either gets records or one clear error.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.errors import TunedeckError
from engine.data.rules import Problem

UTF8_BOM = b"\xef\xbb\xbf"
_HEAD_BYTES = 1 << 16
_CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
# Columns that hold a list of turns; in CSV (and some Parquet files) they arrive as JSON text.
_NESTED_COLUMNS = ("messages", "conversations")
_ICONV_HINT = "convert it to UTF-8, e.g. iconv -f latin1 -t utf-8 IN > OUT"


class DatasetError(TunedeckError):
    """A dataset file that cannot be used at all: missing, empty, binary, not UTF-8, no format."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as read from the container, before any format rules."""

    line: int
    obj: Any = None
    problem: Problem | None = None
    text: str | None = None
    """JSONL only: the decoded line without its line ending."""
    blank: bool = False


def _unreadable(path: Path, what: str, hint: str) -> DatasetError:
    return DatasetError(f"{path}: {what}", hint=hint)


def sniff_container(path: Path) -> str:
    """jsonl, json, csv or parquet, from the first bytes and the suffix; DatasetError if none."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(_HEAD_BYTES)
    if size == 0:
        raise _unreadable(path, "the file is empty", "a dataset needs one example per line")
    if head.startswith(b"PAR1"):
        return "parquet"
    if path.suffix.lower() == ".parquet":
        raise _unreadable(path, "not a Parquet file (no PAR1 magic)", "re-export the file")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _unreadable(
            path, "the file is UTF-16, not UTF-8", _ICONV_HINT.replace("latin1", "utf-16")
        )
    if b"\x00" in head:
        raise _unreadable(
            path, "binary data, not a text dataset", "pass a JSONL, JSON, CSV or Parquet file"
        )
    text = _decode_head(path, head.removeprefix(UTF8_BOM), final=size <= len(head))
    if size <= len(head) and not text.strip():
        raise _unreadable(
            path, "the file has only blank lines", "a dataset needs one example per line"
        )
    if path.suffix.lower() in _CSV_SUFFIXES:
        return "csv"
    return "json" if text.lstrip().startswith("[") else "jsonl"


def _decode_head(path: Path, head: bytes, final: bool) -> str:
    """The head as text; unreadable when most of its lines are not UTF-8.

    A few bad lines are line findings (`not-utf8`); a file in another encoding is one
    whole-file error.
    """
    try:
        # Incremental: the 64 KiB cut may split a multi-byte character; that is not an error.
        return codecs.getincrementaldecoder("utf-8")().decode(head, final=final)
    except UnicodeDecodeError as exc:
        lines = [line for line in head.split(b"\n") if line.strip()]
        if not final and len(lines) > 1:
            lines = lines[:-1]  # the last line may be cut mid-character
        bad = sum(1 for line in lines if not _is_utf8(line))
        if bad * 2 > len(lines):
            raise _unreadable(
                path, f"not UTF-8 text (invalid byte at offset {exc.start})", _ICONV_HINT
            ) from exc
        return head.decode("utf-8", "replace")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class RawReader:
    """Iterator of `RawRecord`s; `bytes_read` grows as the file is consumed (for progress)."""

    def __init__(self, path: Path, container: str) -> None:
        self.bytes_read = 0
        readers = {"jsonl": _jsonl, "json": _json_array, "csv": _csv, "parquet": _parquet}
        self._records = readers[container](path, self)

    def __iter__(self) -> Iterator[RawRecord]:
        return self._records


def iter_raw_records(path: Path, container: str) -> RawReader:
    """Raw records of `path` read as `container`."""
    return RawReader(path, container)


def peek_objects(path: Path, container: str, limit: int) -> list[Any]:
    """The first `limit` records that parse, for format detection."""
    objects = []
    for raw in iter_raw_records(path, container):
        if raw.problem is None and not raw.blank:
            objects.append(raw.obj)
            if len(objects) >= limit:
                break
    return objects


def _json_problem(exc: ValueError, where: str = "") -> Problem:
    if isinstance(exc, json.JSONDecodeError):
        return Problem(
            "error",
            "invalid-json",
            f"invalid JSON{where}: {exc.msg}{'' if exc.msg.endswith(' at') else ' at'} "
            f"column {exc.colno}",
            f"fix the JSON near column {exc.colno}: each record must be one complete object "
            "(check quotes, commas, brackets; JSONL allows no line breaks inside a record)",
            column=exc.colno,
        )
    return Problem("error", "invalid-json", f"invalid JSON{where}: {exc}", "fix the value")


def _parse_json(text: str) -> tuple[Any, Problem | None]:
    try:
        return json.loads(text), None
    except RecursionError:
        return None, Problem("error", "invalid-json", "JSON nested too deeply", "flatten it")
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        return None, _json_problem(exc)


_NOT_UTF8_HINT = "the line has bytes that are not UTF-8; " + _ICONV_HINT


def _decode_line(raw: bytes) -> tuple[str | None, Problem | None]:
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        message = f"line is not valid UTF-8 (byte {exc.start + 1})"
        return None, Problem("error", "not-utf8", message, _NOT_UTF8_HINT, column=exc.start + 1)


def _jsonl(path: Path, progress: RawReader) -> Iterator[RawRecord]:
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            progress.bytes_read += len(raw)
            if number == 1:
                raw = raw.removeprefix(UTF8_BOM)  # a BOM is fine, not a finding
            text, problem = _decode_line(raw.rstrip(b"\r\n"))
            if text is None:
                yield RawRecord(number, problem=problem)
            elif not text.strip():
                yield RawRecord(number, text=text, blank=True)
            else:
                obj, problem = _parse_json(text)
                yield RawRecord(number, obj, problem, text)


def _json_array(path: Path, progress: RawReader) -> Iterator[RawRecord]:
    """Elements of one top-level JSON array, numbered from 1; stops at a syntax error."""
    raw = path.read_bytes().removeprefix(UTF8_BOM)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _unreadable(
            path, f"not UTF-8 (invalid byte at offset {exc.start})", _ICONV_HINT
        ) from exc
    decoder = json.JSONDecoder()
    index = _skip_ws(text, text.index("[") + 1)
    element = 1
    while index < len(text) and text[index] != "]":
        progress.bytes_read = index
        try:
            obj, index = decoder.raw_decode(text, index)
        except RecursionError:
            yield RawRecord(
                element,
                problem=Problem("error", "invalid-json", "JSON nested too deeply", "flatten it"),
            )
            return
        except ValueError as exc:
            yield RawRecord(
                element,
                problem=_json_problem(
                    exc, f" in element {element} (file line {getattr(exc, 'lineno', '?')})"
                ),
            )
            return  # after a syntax error the rest of the array cannot be located
        yield RawRecord(element, obj)
        index = _skip_ws(text, index)
        if index < len(text) and text[index] == ",":
            index = _skip_ws(text, index + 1)
            element += 1
        elif index >= len(text) or text[index] != "]":
            problem = Problem(
                "error",
                "invalid-json",
                f"expected ',' or ']' after element {element}",
                "separate array elements with commas and close the array with ]",
            )
            yield RawRecord(element + 1, problem=problem)
            return
    progress.bytes_read = len(raw)


def _skip_ws(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def _decode_nested(row: dict[str, Any]) -> Problem | None:
    """Parse list columns that arrive as JSON text (CSV cells, some Parquet exports)."""
    for column in _NESTED_COLUMNS:
        value = row.get(column)
        if isinstance(value, str) and value.strip():
            obj, problem = _parse_json(value)
            if problem is not None:
                return Problem(
                    problem.severity,
                    problem.code,
                    f"column '{column}': {problem.message}",
                    problem.hint,
                )
            row[column] = obj
    return None


def _csv(path: Path, progress: RawReader) -> Iterator[RawRecord]:
    """Rows as dicts keyed by the header; `line` is the file line the row starts on."""
    csv.field_size_limit(2**31 - 1)  # long answers exceed the 128 KiB default
    delimiter = _CSV_SUFFIXES.get(path.suffix.lower(), ",")
    with open(path, "rb") as binary, io.TextIOWrapper(binary, "utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = [name.strip() for name in next(reader)]
            start = reader.line_num + 1
            for row in reader:
                yield _csv_row(header, row, start)
                start = reader.line_num + 1
                progress.bytes_read = binary.tell()  # read-ahead position: close enough
        except UnicodeDecodeError as exc:
            raise _unreadable(path, f"not UTF-8 after line {reader.line_num}", _ICONV_HINT) from exc
        except csv.Error as exc:
            problem = Problem(
                "error",
                "bad-csv-row",
                f"unreadable CSV: {exc}",
                "check quoting: a field with commas, quotes or newlines must be in double quotes",
            )
            yield RawRecord(reader.line_num, problem=problem)


def _csv_row(header: list[str], row: list[str], line: int) -> RawRecord:
    if not any(cell.strip() for cell in row):
        return RawRecord(line, blank=True)
    if len(row) != len(header):
        problem = Problem(
            "error",
            "bad-csv-row",
            f"row has {len(row)} fields, the header has {len(header)}",
            "quote fields that contain the delimiter, or fix the row",
        )
        return RawRecord(line, problem=problem)
    record = dict(zip(header, row, strict=True))
    return RawRecord(line, record, _decode_nested(record))


def _parquet(path: Path, progress: RawReader) -> Iterator[RawRecord]:
    import pyarrow.parquet as pq  # lazy: pyarrow costs ~0.2 s to import

    try:
        parquet = pq.ParquetFile(path)
        total = max(1, parquet.metadata.num_rows)
        size = path.stat().st_size
        row_number = 0
        for batch in parquet.iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                row_number += 1
                progress.bytes_read = size * row_number // total
                yield RawRecord(row_number, row, _decode_nested(row))
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise _unreadable(
            path, f"unreadable Parquet file ({exc})", "re-export the file with pyarrow or pandas"
        ) from exc
