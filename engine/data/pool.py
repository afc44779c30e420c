"""Prompt pools: inputs without reference answers, to answer with a run and review.

A pool is a file whose records have no answer yet, in any container the readers take:

- chat / ShareGPT records that end on a user turn (a system turn and earlier turns kept);
- `{"prompt": ...}` without `completion`, Alpaca records without `output`;
- a CSV (or Parquet) with a single column: each row is one prompt.

`read_pool` turns each record into an `Example` without an assistant turn (its `answer` is
""), keeping its source line; a record that has an answer in a pool, or that cannot be
read, is a problem at its line. `pool_findings` is the pool's lint: empty prompts,
duplicates, and prompts that repeat (exactly or nearly) examples a run trained on, held
back for validation or was scored on: answers to those would only repeat, or leak held-out
examples into training.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.data.formats import DatasetError, Example, Message, detect_container
from engine.data.lint.findings import Finding
from engine.data.readers import iter_raw_records, peek_objects
from engine.data.rules import Problem, normalise_record

POOL_FORMAT = "pool"
"""The format lint and the Data step report for a pool ("prompt pool")."""
_PEEK = 50
_TABLES = ("csv", "parquet")
"""Containers whose one-column rows are prompts."""


@dataclass(frozen=True)
class PoolData:
    """The prompts of a pool file, and the problems of the records that are not prompts."""

    path: Path
    container: str
    prompts: list[Example]
    problems: list[tuple[int, Problem]]


def _error(code: str, message: str, hint: str) -> Problem:
    return Problem("error", code, message, hint)


def _answer_of(obj: Any, table: bool = False) -> bool | None:
    """Whether a record carries a reference answer (None: it is no record of a known kind).

    Args:
        table: the record is a CSV / Parquet row, where a single column is a prompt.
    """
    if not isinstance(obj, dict):
        return None
    for key in ("messages", "conversations"):
        turns = obj.get(key)
        if isinstance(turns, list):
            last = turns[-1] if turns else None
            role = last.get("role", last.get("from")) if isinstance(last, dict) else None
            return role in ("assistant", "gpt", "chatgpt", "bot", "model")
    for key, answer_key in (("prompt", "completion"), ("instruction", "output")):
        if key in obj:
            return answer_key in obj if isinstance(obj[key], str) else None
    return False if table and len(obj) == 1 else None


def is_pool_file(path: str | os.PathLike[str]) -> bool:
    """A file most of whose first records have no reference answer (a pool, not a dataset;
    a vote, so that a stray answered record is reported at its line, not the whole file)."""
    try:
        container = detect_container(path)
        objects = peek_objects(Path(path), container, _PEEK)
    except DatasetError:
        return False
    kinds = [_answer_of(obj, container in _TABLES) for obj in objects]
    return kinds.count(False) > len(kinds) / 2


def prompt_turns(
    obj: Any, table: bool = False
) -> tuple[list[tuple[str, str]] | None, list[Problem]]:
    """The turns of one pool record (ending on the user turn to answer), or its problems.

    Args:
        table: a CSV / Parquet row (a single column is the prompt).
    """
    answer = _answer_of(obj, table)
    if answer is None:
        return None, [
            _error(
                "not-a-prompt",
                "record is not a prompt: expected messages ending on a user turn, "
                '{"prompt": ...}, {"instruction": ...} or a single CSV column',
                "give every record of a pool the same shape, without an answer",
            )
        ]
    if answer:
        return None, [
            _error(
                "has-answer",
                "record has an answer, but this file is a prompt pool (records without one)",
                "put labelled examples in a dataset or test file, prompts to answer in a pool",
            )
        ]
    assert isinstance(obj, dict)
    if "messages" in obj or "conversations" in obj:
        fmt = "chat" if "messages" in obj else "sharegpt"
        turns, problems = normalise_record(obj, fmt)
        problems = [p for p in problems if p.code not in ("no-assistant", "ends-with-user")]
        return (turns, []) if turns is not None and not problems else (None, problems)
    if "prompt" in obj:
        text, system = obj.get("prompt"), obj.get("system")
    elif "instruction" in obj:
        extra = obj.get("input")
        text = obj.get("instruction")
        if isinstance(text, str) and isinstance(extra, str) and extra.strip():
            text = f"{text}\n\n{extra}"
        system = obj.get("system")
    else:
        text, system = next(iter(obj.values())), None
    if not isinstance(text, str):
        return None, [_error("not-text", "the prompt is not text", "write the prompt as a string")]
    turns = [("system", system)] if isinstance(system, str) and system.strip() else []
    return [*turns, ("user", text)], []


def read_pool(path: str | os.PathLike[str]) -> PoolData:
    """Every prompt of a pool file, with the problems of records that are none.

    Raises:
        DatasetError: the file cannot be read at all.
    """
    source = Path(path)
    container = detect_container(source)
    prompts: list[Example] = []
    problems: list[tuple[int, Problem]] = []
    for raw in iter_raw_records(source, container):
        if raw.blank:
            continue
        if raw.problem is not None:
            problems.append((raw.line, raw.problem))
            continue
        turns, found = prompt_turns(raw.obj, container in _TABLES)
        if turns is None:
            problems += [(raw.line, p) for p in found]
            continue
        messages = tuple(Message(role, content) for role, content in turns)  # type: ignore[arg-type]
        prompts.append(Example(messages, raw.line))
    return PoolData(source, container, prompts, problems)


# ---------------------------------------------------------------------------
# Lint
# ---------------------------------------------------------------------------


def prompt_text(example: Example) -> str:
    """The user text an example asks (its last user turn)."""
    return next((m.content for m in reversed(example.messages) if m.role == "user"), "")


def _key(text: str) -> str:
    return " ".join(text.casefold().split())


def pool_findings(
    pool: Sequence[Example], others: Mapping[str, Iterable[Example]] | None = None
) -> list[Finding]:
    """Empty and duplicate prompts, and prompts that repeat other sets' examples.

    Args:
        others: set title ("the run's training data", "the validation split", "test file
            x.jsonl") -> its examples; a pool prompt equal or nearly equal to one of theirs
            is a warning naming the set and its line.
    """
    findings: list[Finding] = []
    seen: dict[str, int] = {}
    for example in pool:
        text = prompt_text(example)
        if not text.strip():
            findings.append(Finding("error", "empty-prompt", example.line, "the prompt is empty",
                                    "write the input to answer, or remove the line"))  # fmt: skip
            continue
        first = seen.setdefault(_key(text), example.line)
        if first != example.line:
            findings.append(Finding("warning", "duplicate-prompt", example.line,
                                    f"the same prompt as line {first}",
                                    "remove the repeat: one answer to review is enough",
                                    (first,)))  # fmt: skip
    asked = [e for e in pool if prompt_text(e).strip()]
    for title, examples in (others or {}).items():
        for pool_line, their_line, how in prompt_overlaps(asked, list(examples)):
            findings.append(Finding(
                "warning", "prompt-seen", pool_line, f"{how} line {their_line} of {title}",
                "an answer to it would repeat that example (or leak a held-out one into "
                "training): remove it from the pool", (their_line,)))  # fmt: skip
    return sorted(findings, key=lambda f: (f.line, f.code))


def prompt_overlaps(
    asked: Sequence[Example], others: Sequence[Example]
) -> list[tuple[int, int, str]]:
    """(line, other's line, how) for each prompt of `asked` that repeats a prompt of
    `others`: "the same prompt as" (equal up to case and spacing) or "a near-duplicate of"
    (word-bigram Jaccard >= THRESHOLD, the lint's near-duplicate measure, on prompts only)."""
    if not asked or not others:
        return []
    import numpy as np

    from engine.data.minhash import estimate, text_signatures
    from engine.data.near_duplicates import THRESHOLD

    exact: dict[str, int] = {}
    for example in others:
        exact.setdefault(_key(prompt_text(example)), example.line)
    found = []
    near_todo = []
    for example in asked:
        line = exact.get(_key(prompt_text(example)))
        if line is not None:
            found.append((example.line, line, "the same prompt as"))
        else:
            near_todo.append(example)
    if near_todo:
        theirs = text_signatures([prompt_text(e) for e in others])
        mine = text_signatures([prompt_text(e) for e in near_todo])
        for example, signature in zip(near_todo, mine, strict=True):
            scores = estimate(np.broadcast_to(signature, theirs.shape), theirs)
            best = int(np.argmax(scores))
            if scores[best] >= THRESHOLD:
                found.append((example.line, others[best].line, "a near-duplicate of"))
    return sorted(found)
