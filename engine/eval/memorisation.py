"""Does an answer copy a training answer nearly verbatim? (the guide's "parroting")

An answer is a near-copy when its ROUGE-L against some training answer is at least
`SIMILARITY` (0.9). It counts as memorised when, in addition, it is closer to that
training answer than to its own reference: reproducing a training answer that happens to
be the right answer here is not parroting. Answers shorter than `MIN_WORDS` words are not
judged (every "billing" copies some training label).

The search is exact and cheap: ROUGE-L F = 2·LCS / (|a| + |b|) and the LCS is at most the
multiset overlap o of the two word bags, so F >= t needs o >= t·|a| / (2 - t). Treating
each word occurrence as an element, a training answer with that much overlap must share
one of the |a| - o + 1 rarest elements of the answer (prefix filtering, Chaudhuri et al.
2006). Only training answers found through those rare elements are scored, after a bag
overlap bound; most answers are compared with a handful of candidates, not all of them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.eval.metrics import rouge_l, words

SIMILARITY = 0.9
"""ROUGE-L against a training answer from which an answer counts as a near-copy."""
MIN_WORDS = 8
"""Shorter answers are not judged: short answers coincide by nature."""

Element = tuple[str, int]  # (word, occurrence number): makes a multiset a set


def _elements(tokens: Sequence[str]) -> list[Element]:
    seen: Counter[str] = Counter()
    out = []
    for token in tokens:
        seen[token] += 1
        out.append((token, seen[token]))
    return out


@dataclass(frozen=True)
class TrainMatch:
    """The most similar training answer found for one answer."""

    line: int
    """Source line of the training example."""
    similarity: float
    """ROUGE-L F-measure between the answer and that training answer."""


class TrainAnswerIndex:
    """Training answers, indexed by word occurrence for near-copy search."""

    def __init__(self, answers: Sequence[tuple[int, str]]) -> None:
        """Index `(line, answer)` pairs."""
        self._lines = [line for line, _ in answers]
        self._texts = [text for _, text in answers]
        self._bags = [Counter(words(text)) for text in self._texts]
        self._postings: dict[Element, list[int]] = {}
        for position, text in enumerate(self._texts):
            for element in _elements(words(text)):
                self._postings.setdefault(element, []).append(position)

    def __len__(self) -> int:
        return len(self._texts)

    def nearest(self, answer: str, threshold: float = SIMILARITY) -> TrainMatch | None:
        """The training answer with the highest ROUGE-L >= `threshold`, or None."""
        tokens = words(answer)
        if not tokens:
            return None
        needed = math.ceil(threshold * len(tokens) / (2 - threshold) - 1e-9)
        ranked = sorted(_elements(tokens), key=lambda e: (len(self._postings.get(e, ())), e))
        candidates: set[int] = set()
        for element in ranked[: len(tokens) - needed + 1]:
            candidates.update(self._postings.get(element, ()))
        bag = Counter(tokens)
        best: TrainMatch | None = None
        for position in sorted(candidates):
            other = self._bags[position]
            overlap = sum((bag & other).values())
            bound = 2 * overlap / (len(tokens) + sum(other.values()))
            if bound < threshold or (best is not None and bound <= best.similarity):
                continue
            similarity = rouge_l(answer, self._texts[position])
            if similarity >= threshold and (best is None or similarity > best.similarity):
                best = TrainMatch(self._lines[position], round(similarity, 6))
        return best


def memorisation_scores(
    index: TrainAnswerIndex, output: str, reference_similarity: float
) -> dict[str, Any]:
    """Per-example memorisation fields for a row: `train_copy` and `memorised`.

    Args:
        index: the run's training answers.
        output: the generated answer.
        reference_similarity: ROUGE-L of the output against its own reference.

    Returns:
        `memorised` is None for answers too short to judge.
    """
    if len(words(output)) < MIN_WORDS:
        return {"train_copy": None, "memorised": None}
    match = index.nearest(output)
    if match is None:
        return {"train_copy": None, "memorised": False}
    return {
        "train_copy": {"line": match.line, "similarity": match.similarity},
        "memorised": match.similarity > reference_similarity,
    }
