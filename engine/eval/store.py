"""The files of `<run>/eval/`: append-only JSONL that a crash never corrupts.

    eval/<system>.jsonl   one row per validation example and system (base_zero, base_few,
                          tuned, tuned@<step>), appended as generated
    eval/loss.jsonl       validation loss per model (base, tuned, tuned@<step>)
    eval/probes.jsonl     general-ability probe answers (base, tuned)
    eval/judge.jsonl      LLM-as-judge verdicts, two calls per example (positions swapped)
    eval/review.jsonl     human review marks, last mark per example wins
    eval/ab.jsonl         blind A/B preferences, last per example and pair wins
    eval/summary.json     aggregates and verdict, replaced atomically after each eval
    eval/options.json     the options last chosen for the run in the TUI (as flags)
    eval/primary.json     the run's primary metric: decided from its training data on first
                          use, or named by the user (engine.eval.primary); every set uses it
    eval.lock             held by a running evaluation (flock; in the run directory)

Eval sets. The files above score the run's validation split (the set VALIDATION). A test
file (`tunedeck eval RUN --data FILE`) is an eval set of its own, named
`test-<file stem>-<first 8 hex of its sha256>`, with its results in `eval/<set name>/`:
the same system, loss, judge, review, A/B and summary files, plus

    eval/<set>/set.json        the source path, sha256, format, example count and lines
    eval/<set>/examples.jsonl  the examples as scored (normalised chat form)

so a later validation eval never mixes with it, and an edited test file is a new set.
Probes ask the same questions whatever the set, and stay in eval/probes.jsonl.

Rows carry a `settings` fingerprint of everything that decided them (model, adapter
weights, prompt kind, sampling); rows whose fingerprint differs from the current one are
stale and are redone, the rest are kept: that is what makes evaluation resumable.
A last line without its newline (a process killed mid-write) is cut off before the next
append, and skipped by readers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any

from engine.core.files import read_complete_lines, write_text_atomic
from engine.core.layout import EVAL_DIR, EVAL_LOCK_FILE, EVAL_LOG_FILE, EVAL_OPTIONS_FILE, SET_FILE

LOCK_FILE = EVAL_LOCK_FILE
LOG_FILE = EVAL_LOG_FILE
OPTIONS_FILE = EVAL_OPTIONS_FILE
VALIDATION = "validation"
"""The eval set of the run's own validation split (its results directly in eval/)."""
TEST_PREFIX = "test-"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def eval_dir(run_dir: Path) -> Path:
    """`<run>/eval/`, created on first use."""
    path = run_dir / EVAL_DIR
    path.mkdir(exist_ok=True)
    return path


def test_set_name(source: Path, sha256: str) -> str:
    """The eval set of a test file: `test-<stem>-<8 hex of its content hash>`."""
    stem = _UNSAFE.sub("_", source.stem).strip("._")[:40] or "data"
    return f"{TEST_PREFIX}{stem}-{sha256[:8]}"


def is_test_set(name: str) -> bool:
    """A test file's set name (what test_set_name makes), never a path."""
    return name.startswith(TEST_PREFIX) and not _UNSAFE.search(name) and ".." not in name


def set_path(run_dir: Path, eval_set: str = VALIDATION) -> Path:
    """Where an eval set's results live (not created): eval/ or eval/<set>/."""
    if eval_set == VALIDATION:
        return run_dir / EVAL_DIR
    if not is_test_set(eval_set):
        raise ValueError(f"not an eval set name: {eval_set!r}")
    return run_dir / EVAL_DIR / eval_set


def set_dir(run_dir: Path, eval_set: str = VALIDATION) -> Path:
    """set_path, created on first use."""
    path = set_path(run_dir, eval_set)
    path.mkdir(parents=True, exist_ok=True)
    return path


def stored_sets(run_dir: Path) -> list[str]:
    """The validation set, then every test set evaluated in the run, by name."""
    tests = sorted(
        marker.parent.name
        for marker in (run_dir / EVAL_DIR).glob(f"{TEST_PREFIX}*/{SET_FILE}")
        if is_test_set(marker.parent.name)
    )
    return [VALIDATION, *tests]


def system_file(run_dir: Path, system: str, eval_set: str = VALIDATION) -> Path:
    """The generations of one system on one eval set: `eval/[<set>/]<system>.jsonl`."""
    return set_dir(run_dir, eval_set) / f"{system}.jsonl"


def fingerprint(value: Any) -> str:
    """A short stable hash of JSON-able data (what decided a row)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def file_digest(paths: Iterable[Path]) -> str:
    """Content hash of files (an adapter's weights): a retrained adapter hashes differently."""
    digest = hashlib.blake2b(digest_size=8)
    for path in sorted(paths):
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Complete JSON-object lines of a file; a torn last line or a garbled line is skipped."""
    data, _ = read_complete_lines(path, 0)
    rows = []
    for raw in data.splitlines():
        try:
            row = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _cut_torn_tail(path: Path) -> None:
    """Drop a last line without newline, so the next append starts on a line of its own."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with open(path, "rb+") as handle:
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        content = handle.read()  # only after a crash, and eval files are small
        handle.truncate(content.rfind(b"\n") + 1)


def append_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append rows and fsync: once this returns, a crash or power loss keeps them."""
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if not lines:
        return
    _cut_torn_tail(path)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(lines)
        handle.flush()
        os.fsync(handle.fileno())


def rewrite_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Replace a file with `rows` (temp file, fsync, rename): readers see old or new."""
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def keep_current(
    path: Path,
    current: Callable[[dict[str, Any]], bool],
    key: Callable[[dict[str, Any]], Hashable] = lambda row: row.get("index"),
) -> list[dict[str, Any]]:
    """The rows that are still current; stale rows are removed from the file.

    Args:
        current: tells a row made with today's settings from a stale one.
        key: what identifies a row; one row per key is kept (the first written: a
            repeated key can only come from two processes racing, which the lock prevents).
    """
    rows = read_jsonl(path)
    kept: dict[Hashable, dict[str, Any]] = {}
    for row in rows:
        if current(row) and key(row) not in kept:
            kept[key(row)] = row
    if len(kept) != len(rows):
        rewrite_jsonl(path, kept.values())
    return list(kept.values())


def stored_rows(
    run_dir: Path, systems: Iterable[str], limit: int | None = None, eval_set: str = VALIDATION
) -> int:
    """Generated rows of `systems` on disk (examples below `limit`): what a stop keeps.

    Counts every stored row; one made with other settings is counted until the next
    evaluation that reaches its system replaces it.
    """
    total = 0
    for system in systems:
        rows = read_jsonl(system_file(run_dir, system, eval_set))
        indices = {r["index"] for r in rows if isinstance(r.get("index"), int)}
        total += sum(1 for i in indices if limit is None or i < limit)
    return total
