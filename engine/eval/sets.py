"""The examples an evaluation scores: the run's validation split, or a separate test file.

The checkpoint a run keeps was chosen on validation loss, so validation examples are not
a clean test of it. `tunedeck eval RUN --data FILE` scores a test file instead: read with
the same readers as training data (any format and container engine.data.formats reads), a
record with an error refused with its file and line, and frozen into the run
(`eval/<set>/examples.jsonl` and `set.json`, layout in engine.eval.store) so the results
stay readable after the file changes or moves. An edited file is a new set; its answers
never mix with another set's.

A file whose records have no answers is a prompt pool (engine.data.pool): its prompts are
answered and reviewed (accepted or corrected), never scored; `set.json` says `"pool": true`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.errors import TunedeckError
from engine.core.events import write_json_atomic
from engine.core.layout import DATA_DIR, MANIFEST_FILE, SET_EXAMPLES
from engine.data.formats import Example, LoadedDataset, load_examples, sha256_file, write_chat_jsonl
from engine.data.pool import PoolData, is_pool_file, read_pool
from engine.data.rules import Problem
from engine.eval.store import SET_FILE, VALIDATION, set_dir, set_path, stored_sets, test_set_name


class EvalDataError(TunedeckError):
    """A test file that cannot be scored: unreadable, a bad record, no examples."""


@dataclass(frozen=True)
class EvalSet:
    """Examples to score and where they came from."""

    name: str
    """VALIDATION, or a test set's name (engine.eval.store.test_set_name)."""
    title: str
    """`validation split`, or `test file support_tickets_test.jsonl`."""
    examples: list[Example]
    lines: list[int]
    """Each example's line in the user's file (validation: the split's source file)."""
    source: str | None = None
    """The test file's path as given (None: the validation split)."""
    pool: bool = False
    """A prompt pool: no reference answers (the examples have no assistant turn)."""

    @property
    def is_test(self) -> bool:
        return self.name != VALIDATION

    def describe(self, count: int | None = None) -> str:
        """`validation split, 14 examples` (count: how many were scored, default all)."""
        n = len(self.examples) if count is None else count
        what = "prompt" if self.pool else "example"
        return f"{self.title}, {n} {what}{'s' if n != 1 else ''}"

    def to_json(self, count: int) -> dict[str, Any]:
        """The `eval_set` field of a summary."""
        return {
            "name": self.name,
            "title": self.title,
            "source": self.source,
            "examples": count,
            "total": len(self.examples),
            "description": self.describe(count),
            "pool": self.pool,
        }


# ---------------------------------------------------------------------------
# The validation split
# ---------------------------------------------------------------------------


def read_split(run_dir: Path, name: str) -> list[Example]:
    """A run's own copy of a split (`data/<name>.jsonl`); an empty file is no examples."""
    path = run_dir / DATA_DIR / f"{name}.jsonl"
    if not path.is_file() or path.stat().st_size == 0:
        return []
    return load_examples(path).examples


def source_lines(run_dir: Path, val: list[Any]) -> list[int]:
    """Each validation example's line in the user's source file (from the split manifest)."""
    try:
        manifest = json.loads((run_dir / DATA_DIR / MANIFEST_FILE).read_text(encoding="utf-8"))
        lines = manifest.get("val_lines") or []
    except (OSError, ValueError):
        lines = []
    if len(lines) == len(val) and all(isinstance(n, int) for n in lines):
        return list(lines)
    return [example.line for example in val]


def validation_set(run_dir: Path) -> EvalSet:
    """The run's validation split as an eval set."""
    val = read_split(run_dir, "val")
    return EvalSet(VALIDATION, "validation split", val, source_lines(run_dir, val))


# ---------------------------------------------------------------------------
# Test files
# ---------------------------------------------------------------------------


def read_test_file(path: str | Path) -> LoadedDataset:
    """A test file read with the dataset readers; any record with an error is refused.

    Raises:
        EvalDataError: the file is unusable, a record has an error (file and line named),
            or it holds no example.
    """
    try:
        data = load_examples(Path(path).expanduser())
    except TunedeckError as exc:
        raise EvalDataError(f"test file: {exc.message}", hint=exc.hint) from exc
    name = data.path.name
    _refuse_problems("test file", data.path, [(ln, p) for ln, p in data.problems
                                              if p.severity == "error"])  # fmt: skip
    if not data.examples:
        raise EvalDataError(f"test file {name} holds no example", hint="give it one example a line")
    missing = next((e.line for e in data.examples if not e.answer.strip()), None)
    if missing is not None:
        raise EvalDataError(
            f"test file {name} line {missing}: no assistant answer to score against",
            hint="each test example ends with the answer the model should give",
        )
    return data


def _refuse_problems(kind: str, path: Path, problems: list[tuple[int, Problem]]) -> None:
    """Raise EvalDataError naming the first bad record's line (and how many more there are)."""
    if not problems:
        return
    line, problem = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    raise EvalDataError(
        f"{kind} {path.name} line {line}: {problem.message}{more}",
        hint=f"{problem.hint + '; ' if problem.hint else ''}"
        f"`tunedeck lint {path}` lists every problem",
    )


def test_set_of(path: str | Path) -> str:
    """The set name a test file would get (its content hash), without reading records."""
    file = Path(path).expanduser()
    try:
        return test_set_name(file, sha256_file(file))
    except OSError as exc:
        raise EvalDataError(
            f"test file {file}: {exc.strerror or exc}", hint="check the path"
        ) from exc


def read_pool_file(path: str | Path) -> PoolData:
    """A prompt pool read with engine.data.pool; any record that is no prompt is refused.

    Raises:
        EvalDataError: the file is unusable, a record is no prompt (file and line named),
            or it holds no prompt.
    """
    try:
        pool = read_pool(Path(path).expanduser())
    except TunedeckError as exc:
        raise EvalDataError(f"prompt pool: {exc.message}", hint=exc.hint) from exc
    name = pool.path.name
    _refuse_problems("prompt pool", pool.path, pool.problems)
    empty = next((e.line for e in pool.prompts if not e.messages[-1].content.strip()), None)
    if empty is not None:
        raise EvalDataError(f"prompt pool {name} line {empty}: the prompt is empty",
                            hint="write the input to answer, or remove the line")  # fmt: skip
    if not pool.prompts:
        raise EvalDataError(f"prompt pool {name} holds no prompt", hint="give it one a line")
    return pool


def check_eval_file(path: str | Path) -> None:
    """Read a test file or pool as an evaluation would, raising EvalDataError on a bad one."""
    if is_pool_file(path):
        read_pool_file(path)
    else:
        read_test_file(path)


def prepare_test_set(run_dir: Path, path: str | Path) -> EvalSet:
    """Read a test file (or prompt pool), freeze its examples into the run, and return it
    as an eval set."""
    pool = is_pool_file(path)
    if pool:
        data = read_pool_file(path)
        source, examples, fmt, container = data.path, data.prompts, "pool", data.container
    else:
        loaded = read_test_file(path)
        source, examples = loaded.path, loaded.examples
        fmt, container = loaded.format, loaded.container
    digest = sha256_file(source)
    name = test_set_name(source, digest)
    where = set_dir(run_dir, name)
    if not (where / SET_FILE).is_file():
        write_chat_jsonl(examples, where / SET_EXAMPLES)
        info = {
            "source": str(source.resolve()),
            "sha256": digest,
            "format": fmt,
            "container": container,
            "examples": len(examples),
            "lines": [e.line for e in examples],
            "pool": pool,
        }
        write_json_atomic(where / SET_FILE, info)
    lines = [e.line for e in examples]
    return _test_set(name, source.name, examples, lines, str(source), pool)


def _test_set(
    name: str,
    file_name: str,
    examples: list[Example],
    lines: list[int],
    source: str,
    pool: bool = False,
) -> EvalSet:
    title = f"prompt pool {file_name}" if pool else f"test file {file_name}"
    return EvalSet(name, title, examples, lines, source, pool)


def stored_test_set(run_dir: Path, name: str) -> EvalSet | None:
    """A test set frozen by an earlier evaluation, or None when the run has none by that name."""
    where = set_path(run_dir, name)
    try:
        info = json.loads((where / SET_FILE).read_text(encoding="utf-8"))
        pool = bool(info.get("pool"))
        frozen = where / SET_EXAMPLES
        examples = read_pool(frozen).prompts if pool else load_examples(frozen).examples
    except (OSError, ValueError, TunedeckError):
        return None
    lines = info.get("lines") or []
    if len(lines) != len(examples):
        lines = [e.line for e in examples]
    source = str(info.get("source", ""))
    return _test_set(name, Path(source).name or name, examples, lines, source, pool)


def load_eval_set(run_dir: Path, name: str = VALIDATION) -> EvalSet:
    """An eval set by name: the validation split, or a stored test set.

    Raises:
        EvalDataError: no test set of that name was evaluated in the run.
    """
    if name == VALIDATION:
        return validation_set(run_dir)
    found = stored_test_set(run_dir, name)
    if found is None:
        raise EvalDataError(
            f"run {run_dir.name} has no eval set {name}",
            hint="evaluate the test file first: tunedeck eval RUN --data FILE",
        )
    return found


def set_name_for(run_dir: Path, data: str | None) -> str:
    """The eval set that evaluating with `--data data` scores (VALIDATION for None).

    The file's current content decides the name; a file gone since it was evaluated is
    found again by its path among the run's stored test sets.

    Raises:
        EvalDataError: the file is unreadable and no stored set came from it.
    """
    if not data:
        return VALIDATION
    try:
        return test_set_of(data)
    except EvalDataError:
        wanted = str(Path(data).expanduser().resolve())
        for name in stored_sets(run_dir)[1:]:
            found = stored_test_set(run_dir, name)
            if found is not None and found.source == wanted:
                return name
        raise
