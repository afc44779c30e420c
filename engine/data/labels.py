"""Do the answers look like labels? If so, which field is the label, and what is each one's?

Shared by lint (label distribution, imbalance, unknown labels) and split (stratification),
so both agree on what a label is. The rule, general on purpose:

- JSON answers: a top-level key whose values are short scalars (<= 40 characters) from a
  small set, present in at least 90 % of answers, is a label. Conventional names
  (label, category, class, intent, ...) win; otherwise the key with the fewest values.
  For the sample data this is the `category` of `{"category": ..., "reply": ...}`.
- Plain answers: when at least 95 % of answers are short (<= 4 words, <= 40 characters,
  one line) and they take few distinct values, the whole answer is the label.

"Few" means at least 2 and at most min(50, n / 2) distinct values over n answers.

Evaluation asks more before it scores by label accuracy (`is_class_label`): the values are
word-like (not numbers), and chosen from a set rather than copied from the prompt, as an
order's city or product is. Otherwise JSON answers are scored field by field.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.data.formats import Example

LABEL_NAMES = ("label", "category", "class", "intent", "sentiment", "type", "topic", "tag")
MAX_LABEL_CHARS = 40
MAX_LABEL_WORDS = 4
MAX_CLASSES = 50
LINES_KEPT = 20
"""Source lines remembered per label, to point at rare or unknown labels."""
WHOLE_ANSWER = ""
"""The `key` of a scheme whose label is the whole (stripped) answer."""

_MIN_JSON_SHARE = 0.9
_MIN_SHORT_SHARE = 0.95
_MIN_EXAMPLES = 4


@dataclass(frozen=True)
class LabelScheme:
    """Where the label of an answer is, and how often each label occurs."""

    key: str
    """JSON key holding the label, or WHOLE_ANSWER."""
    counts: dict[str, int]
    """Label -> number of answers with it, most common first."""

    @property
    def description(self) -> str:
        return "the whole answer" if self.key == WHOLE_ANSWER else f"the JSON key {self.key!r}"

    def label_of(self, answer: str, parsed: Any = None) -> str | None:
        """The label of one answer under this scheme (None if it has none)."""
        if self.key == WHOLE_ANSWER:
            return answer.strip()
        obj = parsed if parsed is not None else parse_json_object(answer)
        if isinstance(obj, dict):
            return _scalar_label(obj.get(self.key))
        return None


def parse_json_object(text: str) -> dict[str, Any] | None:
    """The answer as a JSON object, or None; cheap for non-JSON text (no parse attempted)."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        return None
    try:
        obj = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def _scalar_label(value: Any) -> str | None:
    if isinstance(value, bool | int) or (isinstance(value, str) and value.strip()):
        text = str(value).strip()
        return text if len(text) <= MAX_LABEL_CHARS and "\n" not in text else None
    return None


def _is_short(answer: str) -> bool:
    text = answer.strip()
    return (
        len(text) <= MAX_LABEL_CHARS and "\n" not in text and len(text.split()) <= MAX_LABEL_WORDS
    )


class LabelTally:
    """Streaming tally of label candidates; memory stays bounded (MAX_CLASSES per key)."""

    def __init__(self) -> None:
        self.answers = 0
        self._short: Counter[str] | None = Counter()
        self._short_seen = 0
        self._keys: dict[str, Counter[str] | None] = {}
        self._key_seen: Counter[str] = Counter()
        self._lines: dict[tuple[str, str], list[int]] = {}

    def add(self, answer: str, parsed: dict[str, Any] | None, line: int = 0) -> None:
        """Count one answer; `parsed` is its JSON object (parse_json_object) or None."""
        self.answers += 1
        if _is_short(answer):
            self._short_seen += 1
            self._short = _bounded_add(self._short, answer.strip())
            if self._short is not None:
                self._remember(WHOLE_ANSWER, answer.strip(), line)
        if parsed is None:
            return
        for key, value in parsed.items():
            label = _scalar_label(value)
            if label is None:
                continue
            self._key_seen[key] += 1
            counts = self._keys[key] = _bounded_add(self._keys.get(key, Counter()), label)
            if counts is not None:
                self._remember(key, label, line)

    def _remember(self, key: str, label: str, line: int) -> None:
        lines = self._lines.setdefault((key, label), [])
        if len(lines) < LINES_KEPT:
            lines.append(line)

    def lines_of(self, key: str, label: str) -> list[int]:
        """The first LINES_KEPT source lines whose answer has this label."""
        return self._lines.get((key, label), [])

    def scheme(self) -> LabelScheme | None:
        """The label scheme of the answers counted so far, or None if they are not labels."""
        candidates = self.schemes()
        return candidates[0] if candidates else None

    def schemes(self) -> list[LabelScheme]:
        """Every candidate scheme, best first (what `scheme` picks from)."""
        n = self.answers
        if n < _MIN_EXAMPLES:
            return []
        limit = min(MAX_CLASSES, max(2, n // 2))
        keys = [
            (key, counts)
            for key, counts in self._keys.items()
            if counts is not None
            and self._key_seen[key] >= _MIN_JSON_SHARE * n
            and 2 <= len(counts) <= limit
        ]
        named = sorted((k for k in keys if k[0].lower() in LABEL_NAMES), key=_rank_of)
        others = sorted((k for k in keys if k[0].lower() not in LABEL_NAMES), key=_rank_of)
        found = [LabelScheme(key, dict(counts.most_common())) for key, counts in named + others]
        short = self._short
        if (
            short is not None
            and self._short_seen >= _MIN_SHORT_SHARE * n
            and 2 <= len(short) <= limit
        ):
            found.append(LabelScheme(WHOLE_ANSWER, dict(short.most_common())))
        return found


def _rank_of(item: tuple[str, Counter[str]]) -> tuple[int, int, str]:
    return _rank(*item)


def _rank(key: str, counts: Counter[str]) -> tuple[int, int, str]:
    name = key.lower()
    return (LABEL_NAMES.index(name) if name in LABEL_NAMES else len(LABEL_NAMES), len(counts), key)


def _bounded_add(counts: Counter[str] | None, label: str) -> Counter[str] | None:
    """Count a label; a key that exceeds MAX_CLASSES distinct values is no label: drop it."""
    if counts is None:
        return None
    counts[label] += 1
    return counts if len(counts) <= MAX_CLASSES else None


def detect_labels(answers: Iterable[str]) -> LabelScheme | None:
    """The label scheme of a list of answers (split's entry point)."""
    tally = LabelTally()
    for answer in answers:
        tally.add(answer, parse_json_object(answer))
    return tally.scheme()


# ---------------------------------------------------------------------------
# Class labels: when label accuracy is the right primary score of an evaluation
# ---------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)(e[+-]?\d+)?")
_LETTER = re.compile(r"[^\W\d_]")
_EXTRACTED_SHARE = 0.5
_NAMED_IN_INSTRUCTIONS = 2


def _words_of(text: str) -> str:
    """Case-folded words joined by single spaces, `_` and `-` read as spaces."""
    return " ".join(re.findall(r"[^\W_]+", text.casefold()))


def _contains(text: str, label: str) -> bool:
    words = _words_of(label)
    return bool(words) and f" {words} " in f" {_words_of(text)} "


def is_word_like(label: str) -> bool:
    """A class name: a letter in it, at most MAX_LABEL_WORDS words, not a number."""
    text = label.strip()
    return (
        bool(_LETTER.search(text))
        and len(text.split()) <= MAX_LABEL_WORDS
        and not _NUMBER.fullmatch(text.casefold())
    )


def is_class_label(
    scheme: LabelScheme,
    answers: Sequence[str],
    prompts: Sequence[str] | None = None,
    instructions: str = "",
) -> bool:
    """Is the scheme's field a class label (pick one of a fixed set), not an extracted value?

    The rule, for the primary score of an evaluation (lint and split keep detect_labels):

    1. every value is word-like: a letter in it, at most 4 words, not a number
       (`quantity: 3` or `"12.5"` is a value to get right, not a class);
    2. few values relative to the data (detect_labels: 2 to min(50, n / 2) distinct);
    3. the value is chosen, not copied: in fewer than half of the examples does the
       answer's value appear word for word in its own prompt (an order's `city` or
       `product` is copied from the email; a ticket's `category` rarely is). The system
       prompt naming at least two of the values ("one category: billing, bug, ...")
       marks a fixed set outright and overrides this check.

    Args:
        answers / prompts: training answers and their user messages, in the same order
            (prompts None: check 3 is skipped).
        instructions: the system prompt text(s) of the data.
    """
    if not all(is_word_like(label) for label in scheme.counts):
        return False
    named = sum(_contains(instructions, label) for label in scheme.counts)
    if named >= _NAMED_IN_INSTRUCTIONS or prompts is None:
        return True
    copied = total = 0
    for answer, prompt in zip(answers, prompts, strict=False):
        label = scheme.label_of(answer)
        if label is None:
            continue
        total += 1
        copied += _contains(prompt, label)
    return total == 0 or copied < _EXTRACTED_SHARE * total


def class_label_scheme(
    answers: Sequence[str], prompts: Sequence[str] | None = None, instructions: str = ""
) -> LabelScheme | None:
    """The best candidate label scheme of the answers that is a class label (is_class_label)."""
    tally = LabelTally()
    for answer in answers:
        tally.add(answer, parse_json_object(answer))
    for scheme in tally.schemes():
        if is_class_label(scheme, answers, prompts, instructions):
            return scheme
    return None


def label_inputs(examples: Sequence[Example]) -> tuple[list[str], list[str], str]:
    """What `class_label_scheme` reads of training examples: their answers, their user text
    (for the copied-from-the-prompt check) and their system prompt(s)."""
    systems = dict.fromkeys(m.content for e in examples for m in e.messages if m.role == "system")
    users = ["\n".join(m.content for m in e.messages if m.role == "user") for e in examples]
    return [e.answer for e in examples], users, "\n".join(systems)


def examples_class_label(examples: Sequence[Example]) -> LabelScheme | None:
    """The class label of training examples' answers, if they carry one (is_class_label)."""
    return class_label_scheme(*label_inputs(examples))
