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

Evaluation asks more before it scores by label accuracy (`class_label_check`): the values
are word-like (not numbers), and chosen from a set that the data shows is fixed (the system
prompt names them, or their number stops growing with the data) rather than copied from
the prompt, as an order's city or product is ("desk lamps" in the email counts as a copy of
"desk lamp"). Otherwise JSON answers are scored field by field (engine.data.primary).
"""

from __future__ import annotations

import json
import random
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
_WORD = re.compile(r"[^\W_]+")
_EXTRACTED_SHARE = 0.5
_NAMED_IN_INSTRUCTIONS = 2
_NEW_IN_HALF_SHARE = 0.2
"""A fixed set shows all but this share (at least one) of its values in half the data."""


def _words_of(text: str) -> list[str]:
    """Case-folded words; `_`, `-` and punctuation separate them."""
    return _WORD.findall(text.casefold())


def _same_word(a: str, b: str) -> bool:
    """Equal up to a plural ending: lamp ~ lamps, box ~ boxes, battery ~ batteries."""
    if a == b:
        return True
    short, long = sorted((a, b), key=len)
    if long in (short + "s", short + "es"):
        return True
    return short.endswith("y") and long == short[:-1] + "ies"


def _contains(text: str, label: str) -> bool:
    """The label's words occur in the text in a row, case, hyphens and plurals aside."""
    wanted, seen = _words_of(label), _words_of(text)
    k = len(wanted)
    return bool(wanted) and any(
        all(_same_word(w, s) for w, s in zip(wanted, seen[i : i + k], strict=True))
        for i in range(len(seen) - k + 1)
    )


def is_word_like(label: str) -> bool:
    """A class name: a letter in it, at most MAX_LABEL_WORDS words, not a number."""
    text = label.strip()
    return (
        bool(_LETTER.search(text))
        and len(text.split()) <= MAX_LABEL_WORDS
        and not _NUMBER.fullmatch(text.casefold())
    )


def values_stop_growing(labels: Sequence[str]) -> tuple[bool, int, int]:
    """Does the number of distinct values stop growing as the data grows?

    A random half of the examples (seeded: the same data gives the same answer; random, so
    a file sorted by label or cycling through the labels is still read throughout) against
    all of them: a fixed set of classes shows (nearly) every value in half the data, while
    extracted entities (names, cities, products) keep bringing new ones.

    Returns:
        (stops growing, distinct values in the half, distinct values in all).
    """
    whole = {_label_key(v) for v in labels}
    chosen = random.Random(len(labels)).sample(range(len(labels)), len(labels) // 2)
    half = {_label_key(labels[i]) for i in chosen}
    allowed = max(1, int(_NEW_IN_HALF_SHARE * len(whole)))
    return len(whole) - len(half) <= allowed, len(half), len(whole)


def _label_key(label: str) -> str:
    return " ".join(_words_of(label))


@dataclass(frozen=True)
class ClassLabelCheck:
    """Whether a label scheme's field is a class label, and the reason in words."""

    is_label: bool
    reason: str


def class_label_check(
    scheme: LabelScheme,
    answers: Sequence[str],
    prompts: Sequence[str] | None = None,
    instructions: str = "",
) -> ClassLabelCheck:
    """Is the scheme's field a class label (pick one of a fixed set), not an extracted value?

    The rule, for the primary score of an evaluation (lint and split keep detect_labels):

    1. every value is word-like: a letter in it, at most 4 words, not a number
       (`quantity: 3` or `"12.5"` is a value to get right, not a class);
    2. few values relative to the data (detect_labels: 2 to min(50, n / 2) distinct);
    3. the set is fixed: the system prompt names at least two of the values ("one
       category: billing, bug, ..."), which settles it; otherwise
    4. the value is chosen, not copied: in fewer than half of the examples does the
       answer's value appear in its own prompt (case, hyphens and plural endings aside:
       "5 desk lamps" holds "desk lamp"), and
    5. the values stop growing with the data (values_stop_growing).

    Args:
        answers / prompts: training answers and their user messages, in the same order
            (prompts None: check 4 is skipped).
        instructions: the system prompt text(s) of the data.
    """
    field = "the answer" if scheme.key == WHOLE_ANSWER else repr(scheme.key)
    numbers = [label for label in scheme.counts if not is_word_like(label)]
    if numbers:
        return ClassLabelCheck(False, f"{field} holds values such as {numbers[0]!r}, not names")
    named = sum(_contains(instructions, label) for label in scheme.counts)
    count = len(scheme.counts)
    if named >= _NAMED_IN_INSTRUCTIONS:
        return ClassLabelCheck(True, f"{field} takes one of {count} values named in the "
                                     "system prompt")  # fmt: skip
    labels: list[str] = []
    copied = 0
    for index, answer in enumerate(answers):
        label = scheme.label_of(answer)
        if label is None:
            continue
        labels.append(label)
        if prompts is not None and index < len(prompts):
            copied += _contains(prompts[index], label)
    if labels and copied >= _EXTRACTED_SHARE * len(labels):
        share = round(100 * copied / len(labels))
        return ClassLabelCheck(
            False, f"{field} is copied from the prompt in {share} % of the examples"
        )
    stops, half, whole = values_stop_growing(labels)
    if not stops:
        return ClassLabelCheck(
            False,
            f"{field} keeps taking new values as the data grows ({half} distinct in half "
            f"the examples, {whole} in all)",
        )
    return ClassLabelCheck(
        True,
        f"{field} takes one of {count} values, chosen (not copied from the prompt) from a "
        "set that stops growing with the data",
    )


def is_class_label(
    scheme: LabelScheme,
    answers: Sequence[str],
    prompts: Sequence[str] | None = None,
    instructions: str = "",
) -> bool:
    """class_label_check's yes or no."""
    return class_label_check(scheme, answers, prompts, instructions).is_label


def class_label_scheme(
    answers: Sequence[str], prompts: Sequence[str] | None = None, instructions: str = ""
) -> LabelScheme | None:
    """The best candidate label scheme of the answers that is a class label (is_class_label)."""
    return class_label_search(answers, prompts, instructions)[0]


def class_label_search(
    answers: Sequence[str], prompts: Sequence[str] | None = None, instructions: str = ""
) -> tuple[LabelScheme | None, list[ClassLabelCheck]]:
    """The first candidate scheme that is a class label (or None), and every check made."""
    tally = LabelTally()
    for answer in answers:
        tally.add(answer, parse_json_object(answer))
    checks = []
    for scheme in tally.schemes():
        check = class_label_check(scheme, answers, prompts, instructions)
        checks.append(check)
        if check.is_label:
            return scheme, checks
    return None, checks


def label_inputs(examples: Sequence[Example]) -> tuple[list[str], list[str], str]:
    """What `class_label_scheme` reads of training examples: their answers, their user text
    (for the copied-from-the-prompt check) and their system prompt(s)."""
    systems = dict.fromkeys(m.content for e in examples for m in e.messages if m.role == "system")
    users = ["\n".join(m.content for m in e.messages if m.role == "user") for e in examples]
    return [e.answer for e in examples], users, "\n".join(systems)
