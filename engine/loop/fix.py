"""`tunedeck data fix`: a corrected copy of a source file where review found a reference wrong.

In the review of the validation split or a test file, one key records "the reference is
wrong" with the right one (engine.eval.review_marks.set_reference). The fixed copy is the
source file with exactly those lines replaced: the answer of each record changed (the last
assistant turn of a chat / ShareGPT record, `output`, `completion`), every other byte of
the file as it was. The source must be the file the run froze (same sha256), so the lines
still mean what they meant. JSON lines files only: their lines can be replaced one by one.

The split of the fixed file keeps every example on the side it was on when the next run
is made `--like` this one (engine.loop.pinned_split): a fixed validation reference never
slides into training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.errors import TunedeckError
from engine.core.files import write_text_atomic
from engine.core.layout import DATA_DIR, MANIFEST_FILE
from engine.data.formats import detect_container, sha256_file
from engine.eval.review_marks import load_marks
from engine.eval.sets import load_eval_set, set_name_for
from engine.eval.store import SET_FILE, VALIDATION, is_test_set, set_path

_ASSISTANT = ("assistant", "gpt", "chatgpt", "bot", "model")


class FixError(TunedeckError):
    """A corrected copy that cannot be written as asked."""


@dataclass(frozen=True)
class FixResult:
    out: Path
    source: Path
    lines: list[int]
    """The source lines replaced."""

    def text(self) -> str:
        where = ", ".join(str(line) for line in self.lines)
        return f"wrote {self.out}: {self.source.name} with line(s) {where} corrected"


def resolve_set(run_dir: Path, spelling: str) -> str:
    """`validation` (or `val`), a test set's name, or the test file's path -> its set."""
    if spelling.strip().lower() in ("validation", "val", VALIDATION):
        return VALIDATION
    if is_test_set(spelling) and set_path(run_dir, spelling).is_dir():
        return spelling
    return set_name_for(run_dir, spelling)


def source_of(run_dir: Path, eval_set: str) -> tuple[Path, str]:
    """The user's file a set came from and the sha256 the run froze it with."""
    if eval_set == VALIDATION:
        info = json.loads((run_dir / DATA_DIR / MANIFEST_FILE).read_text("utf-8"))["source"]
        return Path(info["path"]), str(info["sha256"])
    info = json.loads((set_path(run_dir, eval_set) / SET_FILE).read_text("utf-8"))
    return Path(info["source"]), str(info["sha256"])


def fix_data(run_dir: Path, spelling: str, out: Path, overwrite: bool = False) -> FixResult:
    """Write the set's source file with the references the review fixed.

    Raises:
        FixError: nothing fixed, the source changed or is gone or not JSONL, `out` exists.
    """
    name = resolve_set(run_dir, spelling)
    eval_set = load_eval_set(run_dir, name)
    fixed = {i: s["reference"] for i, s in load_marks(run_dir, name).items() if s.get("reference")}
    if not fixed:
        raise FixError(
            f"no reference of {eval_set.title} is marked wrong",
            hint="in the review, w records the right reference (or `tunedeck review RUN "
            "--fix-reference N --answer TEXT`)",
        )
    try:
        source, digest = source_of(run_dir, name)
    except (OSError, ValueError, KeyError) as exc:
        raise FixError(
            f"run {run_dir.name} does not record the source of {eval_set.title}",
            hint="only a split of one file (data.source) or a test file can be fixed",
        ) from exc
    _check(source, digest, out, overwrite)
    by_line = {eval_set.lines[i]: text for i, text in fixed.items() if i < len(eval_set.lines)}
    raw = source.read_bytes().split(b"\n")
    for line, text in sorted(by_line.items()):
        raw[line - 1] = _replaced(raw[line - 1], text, source, line)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, b"\n".join(raw).decode("utf-8"))
    return FixResult(out, source, sorted(by_line))


def _check(source: Path, digest: str, out: Path, overwrite: bool) -> None:
    if not source.is_file():
        raise FixError(f"the source file {source} is gone", hint="put it back where it was")
    if sha256_file(source) != digest:
        raise FixError(
            f"{source} changed since the run read it: its lines no longer match",
            hint="fix the references in the file itself, or restore the version the run used",
        )
    if detect_container(source) != "jsonl":
        raise FixError(
            f"{source.name} is not a JSON lines file", hint="data fix replaces lines of JSONL files"
        )
    if out.resolve() == source.resolve():
        raise FixError("--out is the source file", hint="the fixed copy is a new file")
    if out.exists() and not overwrite:
        raise FixError(f"{out} exists", hint="choose a new name, or --force to replace it")


def _replaced(raw: bytes, answer: str, source: Path, line: int) -> bytes:
    """One JSONL record with its answer replaced (key order and other fields kept)."""
    ending = b"\r" if raw.endswith(b"\r") else b""
    try:
        record: Any = json.loads(raw)
    except ValueError as exc:
        raise FixError(f"{source.name} line {line} is not valid JSON") from exc
    if not _set_answer(record, answer):
        raise FixError(f"{source.name} line {line} has no answer to replace")
    return json.dumps(record, ensure_ascii=False).encode("utf-8") + ending


def _set_answer(record: Any, answer: str) -> bool:
    if not isinstance(record, dict):
        return False
    for key, role_key, text_key in (
        ("messages", "role", "content"),
        ("conversations", "from", "value"),
    ):
        turns = record.get(key)
        if isinstance(turns, list):
            for turn in reversed(turns):
                if isinstance(turn, dict) and turn.get(role_key) in _ASSISTANT:
                    turn[text_key] = answer
                    return True
            return False
    for key in ("output", "completion"):
        if key in record:
            record[key] = answer
            return True
    return False


def is_fixed_copy(run_dir: Path, path: str | Path) -> bool:
    """Is `path` the run's source file with (only) answers changed: the same number of
    examples, and the run's validation prompts at the same lines? Then the next run keeps
    the run's split (data.split_like)."""
    from engine.data.formats import load_examples
    from engine.data.near_duplicates import prompt_key
    from engine.eval.sets import read_split

    try:
        manifest = json.loads((run_dir / DATA_DIR / MANIFEST_FILE).read_text("utf-8"))
        val_lines = list(manifest["val_lines"])
        count = int(manifest["source"]["examples"])
        examples = load_examples(Path(path).expanduser()).examples
    except (OSError, ValueError, KeyError, TypeError, TunedeckError):
        return False
    if len(examples) != count or not val_lines:
        return False
    by_line = {e.line: e for e in examples}
    frozen = read_split(run_dir, "val")
    return len(frozen) == len(val_lines) and all(
        line in by_line and prompt_key(by_line[line]) == prompt_key(example)
        for line, example in zip(val_lines, frozen, strict=True)
    )
