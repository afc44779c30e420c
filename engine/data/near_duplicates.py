"""Text normalisation, exact keys and MinHash near-duplicate groups, shared by lint and split.

One implementation on purpose: what lint calls a near-duplicate is exactly what split keeps
on one side, so a clean lint report means a leakage-free split.

Two examples are near-duplicates when both their prompts and their answers are similar:
the estimated Jaccard similarity of word-bigram sets is at least `THRESHOLD` on each side.
Requiring both sides keeps apart examples that only share a boilerplate answer (a
classifier's labels) or only a stock prompt ("Write a haiku.").

Cost is O(n) expected: one-permutation MinHash signatures (`engine.data.minhash`), then
locality-sensitive hashing over bands, verifying only examples that share a band.
Deterministic: no per-process salts, so lint and split agree run to run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.data.minhash import BANDS, BINS, band_keys, estimate, text_signatures

if TYPE_CHECKING:
    import numpy as np

    from engine.data.formats import Example

THRESHOLD = 0.7
"""Minimum estimated Jaccard similarity, on the prompt and on the answer, to call a match."""
ALL_PAIRS = 32
"""Buckets up to this size are verified pair by pair; bigger ones against representatives."""
_REPS_PER_BUCKET = 8  # representatives verified per big bucket: bounds work on templated data


def normalise(text: str) -> str:
    """Lower-cased, whitespace-collapsed text: what "the same prompt" means for contradictions.

    Deliberately cheap (C-level split/join, no regex): it runs on every example of a
    100k-example lint. Punctuation differences are the near-duplicate check's business.
    """
    return " ".join(text.lower().split())


def prompt_text(example: Example) -> str:
    """Everything the model is shown before the final answer, system prompt excluded."""
    last = _last_assistant(example)
    return "\n".join(
        m.content for i, m in enumerate(example.messages) if i != last and m.role != "system"
    )


def _last_assistant(example: Example) -> int:
    for index in range(len(example.messages) - 1, -1, -1):
        if example.messages[index].role == "assistant":
            return index
    return -1


def exact_key(example: Example) -> bytes:
    """Identity of an example's content (roles and texts), stable across processes."""
    joined = "\x1e".join(m.role + "\x1f" + m.content for m in example.messages)
    return hashlib.blake2b(joined.encode("utf-8"), digest_size=16).digest()


def content_hash(example: Example) -> int:
    """Cheap in-process identity of an example's content, for grouping exact duplicates.

    Python's string hash is salted per process, so never store it; within one run a
    64-bit collision among 100k examples has odds of about 1 in 10^9.
    """
    return hash(example.messages)


def prompt_key(example: Example) -> str:
    """The normalised conversation before the final answer, system prompt included."""
    last = _last_assistant(example)
    return normalise(" ".join(f"<{m.role}> {m.content}" for m in example.messages[:last]))


def answer_key(example: Example) -> str:
    """The normalised final answer."""
    return normalise(example.answer)


@dataclass(frozen=True)
class Signatures:
    """MinHash of many examples: raw bins (prompt | answer) for estimates, LSH band keys."""

    raw: np.ndarray
    """Shape (n, 2 * BINS), uint32: prompt bins, then answer bins."""
    bands: np.ndarray
    """Shape (n, BANDS), uint64."""

    def __len__(self) -> int:
        return len(self.raw)


class SignatureBuilder:
    """Accumulates signatures batch by batch (streaming), one row per example."""

    def __init__(self) -> None:
        self._raw: list[np.ndarray] = []
        self._bands: list[np.ndarray] = []

    def add(self, examples: Sequence[Example]) -> None:
        """Append the signatures of `examples`."""
        import numpy as np

        if not examples:
            return
        half = len(examples)
        sigs = text_signatures([prompt_text(e) for e in examples] + [e.answer for e in examples])
        prompt, answer = sigs[:half], sigs[half:]
        self._raw.append(np.concatenate([prompt, answer], axis=1))
        self._bands.append(band_keys(prompt, answer))

    def signatures(self) -> Signatures:
        """Everything added so far."""
        import numpy as np

        if not self._raw:
            empty = np.zeros((0, 2 * BINS), dtype=np.uint32)
            return Signatures(empty, np.zeros((0, BANDS), dtype=np.uint64))
        if len(self._raw) > 1:
            self._raw = [np.concatenate(self._raw)]
            self._bands = [np.concatenate(self._bands)]
        return Signatures(self._raw[0], self._bands[0])


def example_signatures(examples: Sequence[Example], batch: int = 2048) -> Signatures:
    """Signatures of a whole list of examples (split's entry point)."""
    builder = SignatureBuilder()
    for start in range(0, len(examples), batch):
        builder.add(examples[start : start + batch])
    return builder.signatures()


def similarity(signatures: Signatures, a: int, b: int) -> tuple[float, float]:
    """Estimated (prompt, answer) Jaccard similarity of examples a and b."""
    ra, rb = signatures.raw[a], signatures.raw[b]
    return float(estimate(ra[:BINS], rb[:BINS])), float(estimate(ra[BINS:], rb[BINS:]))


def _close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Which row pairs clear THRESHOLD on both sides (broadcasting)."""
    prompt = estimate(a[..., :BINS], b[..., :BINS])
    answer = estimate(a[..., BINS:], b[..., BINS:])
    return (prompt >= THRESHOLD) & (answer >= THRESHOLD)


def near_duplicate_groups(signatures: Signatures) -> list[list[int]]:
    """Groups (sorted example indices, size >= 2) of near-duplicates, linked transitively.

    Buckets of up to ALL_PAIRS examples are verified pair by pair, so the result does not
    depend on the order of the examples; bigger buckets (templated data) are verified
    against a few representatives to stay linear.
    """
    parent = list(range(len(signatures)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for members in _buckets(signatures.bands):
        # Exact and already-linked copies share every band: skip re-verifying them.
        if len({find(int(m)) for m in members}) == 1:
            continue
        for a, b in _similar_pairs(signatures.raw, members):
            parent[find(a)] = find(b)
    groups: dict[int, list[int]] = {}
    for index in range(len(signatures)):
        groups.setdefault(find(index), []).append(index)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def _buckets(bands: np.ndarray) -> Iterator[np.ndarray]:
    """Index arrays (ascending) of examples that share the key of some band."""
    import numpy as np

    n = len(bands)
    if n < 2:
        return
    for band in range(bands.shape[1]):
        order = np.argsort(bands[:, band], kind="stable")
        ordered = bands[order, band]
        breaks = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
        bounds = np.concatenate([[0], breaks, [n]])
        for run in np.flatnonzero(np.diff(bounds) > 1):  # only buckets of 2 or more
            yield order[bounds[run] : bounds[run + 1]]


def _similar_pairs(raw: np.ndarray, members: np.ndarray) -> Iterator[tuple[int, int]]:
    """Pairs of bucket members whose signatures clear the threshold."""
    import numpy as np

    if len(members) <= ALL_PAIRS:
        rows = raw[members]
        close = _close(rows[:, None, :], rows[None, :, :])
        for i, j in zip(*np.nonzero(np.triu(close, k=1)), strict=True):
            yield int(members[i]), int(members[j])
        return
    remaining = members
    for _ in range(_REPS_PER_BUCKET):
        if len(remaining) < 2:
            return
        rep, others = int(remaining[0]), remaining[1:]
        close = _close(raw[others], raw[rep])
        for other in others[close]:
            yield rep, int(other)
        remaining = others[~close]
