"""Streaming collection of what dataset-level lint checks need, a few bytes per example.

`Collector.add` takes valid examples one at a time and, in batches, keeps only compact
features: digests for duplicates and contradictions, small integer ids for system prompts
and answer shapes, lengths, label tallies, MinHash signatures and token lengths. No example
text is kept, so memory grows by ~1 KB per example at most (the MinHash row is 512 bytes).

Token counting goes to a `TokenSurvey` (engine.data.token_lengths), which tokenizes in a worker
thread: the Rust tokenizer releases the GIL, so parsing the next batch overlaps with it.
"""

from __future__ import annotations

import re
from array import array
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.data.labels import LabelTally, parse_json_object
from engine.data.near_duplicates import (
    SignatureBuilder,
    answer_key,
    content_hash,
    prompt_key,
)

if TYPE_CHECKING:
    from engine.data.formats import Example
    from engine.data.near_duplicates import Signatures
    from engine.data.token_lengths import TokenSurvey, TokenSurveyResult

BATCH = 1024
_MAX_SYSTEMS = 1000  # distinct system prompts remembered; beyond, they are all "other"
KNOWLEDGE_SAMPLE = 2000
"""Examples whose answers are scanned for facts (first ones, then every 50th)."""

# Answer shapes
TEXT, JSON_OBJECT, JSON_ARRAY, BROKEN_JSON = 0, 1, 2, 3
NO_SYSTEM, OTHER_SYSTEM = -1, -2

# A "fact": a number with 2+ digits, or a capitalised word that does not start a sentence.
_FACT = re.compile(r"\b(?:[A-Z][A-Za-z]+|[0-9][0-9.,:/%-]*[0-9])\b")
_OPENERS = ".!?:;\"'([{*#>-\n"


@dataclass
class Features:
    """Per-example features, index-aligned: position i describes the i-th valid example."""

    lines: array = field(default_factory=lambda: array("l"))
    exact: array = field(default_factory=lambda: array("q"))
    """In-process hashes (content_hash, hash of prompt_key / answer_key): equality only."""
    prompts: array = field(default_factory=lambda: array("q"))
    answers: array = field(default_factory=lambda: array("q"))
    systems: array = field(default_factory=lambda: array("i"))
    system_texts: dict[str, int] = field(default_factory=dict)
    shapes: array = field(default_factory=lambda: array("b"))
    keysets: array = field(default_factory=lambda: array("i"))
    keyset_ids: dict[tuple[str, ...], int] = field(default_factory=dict)
    broken_json: dict[int, str] = field(default_factory=dict)
    """Example index -> parse error, for answers that look like JSON but do not parse."""
    total_chars: array = field(default_factory=lambda: array("l"))
    answer_chars: array = field(default_factory=lambda: array("l"))
    turns: Counter[int] = field(default_factory=Counter)
    labels: LabelTally = field(default_factory=LabelTally)
    facts: list[tuple[int, frozenset[str]]] = field(default_factory=list)
    """(example index, fact tokens of the answer absent from the prompt), for a sample."""
    signatures: Signatures | None = None
    tokens: TokenSurveyResult | None = None

    @property
    def count(self) -> int:
        return len(self.lines)


class Collector:
    """Feed valid examples in source order with `add`, then call `finish` once."""

    def __init__(self, survey: TokenSurvey | None = None) -> None:
        self.features = Features()
        self._survey = survey
        self._pending: list[Example] = []
        self._signatures = SignatureBuilder()
        # MinHash is numpy work that mostly releases the GIL: a worker overlaps it with
        # parsing. One thread keeps batches in order; the bounded queue bounds memory.
        self._minhash = ThreadPoolExecutor(1, "tunedeck-minhash")
        self._minhash_queue: deque[Future[None]] = deque()

    def add(self, example: Example) -> None:
        self._add_features(example)
        self._pending.append(example)
        if len(self._pending) >= BATCH:
            self._flush()

    def finish(self) -> Features:
        """Process the last batch, wait for the workers, and return the features."""
        self._flush()
        if self._survey is not None:
            self.features.tokens = self._survey.finish()
        while self._minhash_queue:
            self._minhash_queue.popleft().result()
        self._minhash.shutdown()
        self.features.signatures = self._signatures.signatures()
        return self.features

    def close(self) -> None:
        """Stop the workers without waiting for queued batches (after an early stop)."""
        if self._survey is not None:
            self._survey.close()
        self._minhash.shutdown(wait=True, cancel_futures=True)

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            if self._survey is not None:
                self._survey.add(batch)
            if len(self._minhash_queue) >= 2:
                self._minhash_queue.popleft().result()
            self._minhash_queue.append(self._minhash.submit(self._signatures.add, batch))

    def _add_features(self, example: Example) -> None:
        f = self.features
        index = f.count
        messages = example.messages
        last = max(i for i, m in enumerate(messages) if m.role == "assistant")
        answer = messages[last].content
        f.lines.append(example.line)
        f.exact.append(content_hash(example))
        f.prompts.append(hash(prompt_key(example)))
        f.answers.append(hash(answer_key(example)))
        f.systems.append(
            self._system_id(messages[0].content if messages[0].role == "system" else None)
        )
        parsed = self._add_shape(index, answer)
        f.total_chars.append(sum(len(m.content) for m in messages))
        f.answer_chars.append(len(answer))
        f.turns[len(messages)] += 1
        f.labels.add(answer, parsed, example.line)
        if index < KNOWLEDGE_SAMPLE or index % 50 == 0:
            f.facts.append((index, novel_facts(example, last)))

    def _system_id(self, system: str | None) -> int:
        if system is None:
            return NO_SYSTEM
        ids = self.features.system_texts
        key = system.strip()
        if key not in ids and len(ids) < _MAX_SYSTEMS:
            ids[key] = len(ids)
        return ids.get(key, OTHER_SYSTEM)

    def _add_shape(self, index: int, answer: str) -> dict[str, Any] | None:
        f = self.features
        stripped = answer.lstrip()
        parsed = None
        shape = TEXT
        keyset = -1
        if stripped.startswith("{"):
            parsed = parse_json_object(stripped)
            if parsed is not None:
                shape = JSON_OBJECT
                keys = tuple(sorted(str(k) for k in parsed))
                keyset = f.keyset_ids.setdefault(keys, len(f.keyset_ids))
            else:
                shape = BROKEN_JSON
                f.broken_json[index] = json_error(stripped)
        elif stripped.startswith("["):
            shape = JSON_ARRAY if json_error(stripped) == "" else BROKEN_JSON
            if shape == BROKEN_JSON:
                f.broken_json[index] = json_error(stripped)
        f.shapes.append(shape)
        f.keysets.append(keyset)
        return parsed


def json_error(text: str) -> str:
    """Why `text` is not JSON ("" if it is), worded for a finding."""
    import json

    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return (
            f"{exc.msg} at column {exc.colno}"
            if exc.lineno == 1
            else f"{exc.msg} (line {exc.lineno})"
        )
    except (ValueError, RecursionError) as exc:
        return str(exc) or type(exc).__name__
    return ""


def novel_facts(example: Example, last: int) -> frozenset[str]:
    """Fact-like tokens of the answers that the prompt (system included) does not mention."""
    prompt = " ".join(m.content for m in example.messages[:last] if m.role != "assistant").lower()
    found: set[str] = set()
    for message in example.messages:
        if message.role != "assistant":
            continue
        text = message.content
        for match in _FACT.finditer(text):
            token = match.group()
            if token[0].isupper() and _starts_sentence(text, match.start()):
                continue  # "The", "Thanks": capitalised by grammar, not a name
            found.add(token)
    return frozenset(t for t in found if t.lower() not in prompt)


def _starts_sentence(text: str, position: int) -> bool:
    before = text[max(0, position - 8) : position].rstrip()
    return not before or before[-1] in _OPENERS
