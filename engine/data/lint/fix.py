"""`tunedeck lint --fix OUT`: a cleaned copy without error lines and exact duplicates.

The input is never modified. A JSONL input keeps its own format: kept lines are copied
byte for byte (minus a leading BOM and CRLF endings). Other containers (JSON array, CSV,
Parquet) are written as normalised chat JSONL, since their rows have no line to copy.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from engine.core.files import replace_durably
from engine.data.formats import DatasetError, Record, iter_records
from engine.data.near_duplicates import exact_key
from engine.data.pool import is_pool_file, pool_findings, read_pool


@dataclass(frozen=True)
class FixResult:
    """What `write_cleaned_copy` kept and dropped."""

    source: Path
    out: Path
    kept: int
    dropped: tuple[tuple[int, str], ...]
    """(source line, reason code) of every record left out: an error code or exact-duplicate."""
    blank_lines: int
    normalised: bool
    """True when the copy is in normalised chat JSONL rather than the input's own format."""


def _same_file(a: Path, b: Path) -> bool:
    if b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def write_cleaned_copy(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    fmt: str | None = None,
    *,
    limit: int | None = None,
    columns: str | None = None,
) -> FixResult:
    """Copy a dataset without its error records and exact duplicates (first copy kept).

    Raises:
        DatasetError: the input is unusable, `out` is the input, or `out` cannot be written.
    """
    source, target = Path(path), Path(out)
    if source.exists() and _same_file(source, target):
        raise DatasetError(
            f"refusing to write the cleaned copy over the input {source}",
            hint="give --fix a new file name, e.g. data.clean.jsonl",
        )
    if fmt is None and columns is None and is_pool_file(source):
        return _cleaned_pool(source, target)
    stream = iter_records(path, fmt, limit=limit, columns=columns)
    normalised = stream.container != "jsonl" or columns is not None or stream.source.hub is not None
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    kept, dropped, blank = 0, [], 0
    seen: set[bytes] = set()
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            for record in stream:
                if record.blank:
                    blank += 1
                    continue
                reason = _drop_reason(record, seen)
                if reason:
                    dropped.append((record.line, reason))
                    continue
                handle.write(_line_of(record, normalised) + "\n")
                kept += 1
        replace_durably(tmp, target)
    except OSError as exc:
        raise DatasetError(
            f"cannot write {target}: {exc.strerror or exc}",
            hint="check the directory exists and is writable",
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return FixResult(source, target, kept, tuple(dropped), blank, normalised)


def _drop_reason(record: Record, seen: set[bytes]) -> str:
    if record.example is None:
        errors = [p.code for p in record.problems if p.severity == "error"]
        return errors[0] if errors else "unusable"
    key = exact_key(record.example)
    if key in seen:
        return "exact-duplicate"
    seen.add(key)
    return ""


def _line_of(record: Record, normalised: bool) -> str:
    if not normalised and record.raw is not None:
        return record.raw
    assert record.example is not None
    return json.dumps(record.example.to_dict(), ensure_ascii=False)


def _cleaned_pool(source: Path, target: Path) -> FixResult:
    """A prompt pool's copy without the records that are no prompts, empty prompts and
    repeated prompts, written as chat JSONL records that end on the user turn."""
    pool = read_pool(source)
    dropped = [(line, problem.code) for line, problem in pool.problems]
    drop = {f.line: f.code for f in pool_findings(pool.prompts) if f.code != "prompt-seen"}
    dropped += sorted(drop.items())
    kept = [e for e in pool.prompts if e.line not in drop]
    text = "".join(json.dumps(e.to_dict(), ensure_ascii=False) + "\n" for e in kept)
    try:
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        replace_durably(tmp, target)
    except OSError as exc:
        raise DatasetError(f"cannot write {target}: {exc.strerror or exc}",
                           hint="check the directory exists and is writable") from exc  # fmt: skip
    return FixResult(source, target, len(kept), tuple(sorted(dropped)), 0, True)
