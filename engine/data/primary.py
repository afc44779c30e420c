"""The task's primary metric: decided once from the training data, or chosen by the user.

What "better" means when two systems (or two runs) are compared on one example:

- `label` (spelled `label:KEY`, or `label` for a whole-answer label): the answer's class
  label is right, when a field really is a class label (engine.data.labels.class_label_check);
- `json_keys` (spelled `fields`): field accuracy, the share of the reference's JSON fields
  matched exactly, when the answers are other JSON objects (extraction);
- `exact` (spelled `exact`): the whole answer matches the reference;
- `rouge_l` (spelled `rouge`): ROUGE-L against the reference, for free text.

The decision reads the training answers only, never the set being scored, so every eval
set of a run (validation split, test files) is scored the same way, and two runs of one
task get the same metric (engine.eval.primary stores it with the run). The recipe's
choice of adapter (keep the last one for labels) rests on the same decision.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from engine.core.errors import TunedeckError
from engine.data.labels import WHOLE_ANSWER, class_label_search, label_inputs, parse_json_object

if TYPE_CHECKING:
    from engine.data.formats import Example

PrimaryKind = Literal["label", "json_keys", "exact", "rouge_l"]
Source = Literal["data", "user"]
SPELLINGS: dict[str, PrimaryKind] = {"fields": "json_keys", "exact": "exact", "rouge": "rouge_l"}
"""How a user names each kind but `label:KEY` (CLI --primary, the eval settings)."""
AUTO = "auto"
"""The spelling that drops a user's choice: back to the data's decision."""
_NAMES: dict[str, str] = {"json_keys": "field accuracy", "exact": "exact match",
                          "rouge_l": "ROUGE-L"}  # fmt: skip
_MIN_JSON_SHARE = 0.9


class PrimaryError(TunedeckError):
    """A primary metric the user named does not exist or does not fit the data."""


@dataclass(frozen=True)
class Primary:
    """One task's primary metric and why it was chosen."""

    kind: PrimaryKind
    key: str | None = None
    """The label's JSON key (kind `label`; "" for the whole answer), else None."""
    why: str = ""
    """The reason, in words a user reads in the summary."""
    source: Source = "data"
    """`data`: decided from the training data; `user`: named by the user (it wins)."""

    @property
    def spec(self) -> str:
        """How a user writes it: `label:category`, `label`, `fields`, `exact`, `rouge`."""
        if self.kind == "label":
            return f"label:{self.key}" if self.key else "label"
        return next(spelling for spelling, kind in SPELLINGS.items() if kind == self.kind)

    @property
    def name(self) -> str:
        """How the summary names it: `category accuracy`, `field accuracy`, ..."""
        if self.kind == "label":
            return f"{self.key} accuracy" if self.key else "label accuracy"
        return _NAMES[self.kind]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "spec": self.spec, "name": self.name}

    @classmethod
    def from_json(cls, data: Any) -> Primary | None:
        """The stored form back (None when it is not one)."""
        if not isinstance(data, dict):
            return None
        kind, key, source = data.get("kind"), data.get("key"), data.get("source", "data")
        if kind not in (*SPELLINGS.values(), "label") or source not in ("data", "user"):
            return None
        if kind == "label" and not isinstance(key, str):
            return None
        return cls(kind, key if kind == "label" else None, str(data.get("why") or ""), source)


def parse_primary(text: str) -> Primary:
    """A user's spelling (`label:KEY`, `label`, `fields`, `exact`, `rouge`) as a choice.

    Raises:
        PrimaryError: an unknown spelling.
    """
    spelling = text.strip()
    choices = "label:KEY (or label for a whole-answer label), fields, exact, rouge, auto"
    if spelling == "label" or spelling.startswith("label:"):
        key = spelling.partition(":")[2].strip()
        return Primary("label", key, f"chosen by you (--primary {spelling})", "user")
    kind = SPELLINGS.get(spelling.lower())
    if kind is None:
        raise PrimaryError(f"unknown primary metric {spelling!r}", hint=f"choose {choices}")
    return Primary(kind, None, f"chosen by you (--primary {spelling.lower()})", "user")


def check_fits(primary: Primary, answers: Sequence[str]) -> None:
    """A user's `label:KEY` must name a key that the training answers use.

    Raises:
        PrimaryError: no training answer has that key.
    """
    if primary.kind != "label" or primary.key == WHOLE_ANSWER:
        return
    keys: dict[str, None] = {}
    for answer in answers:
        obj = parse_json_object(answer)
        if obj is not None:
            keys.update(dict.fromkeys(obj))
    if primary.key not in keys:
        seen = ", ".join(list(keys)[:12]) or "none: the answers are not JSON objects"
        raise PrimaryError(
            f"no training answer has the key {primary.key!r}",
            hint=f"keys in the training answers: {seen}",
        )


def decide_primary(
    answers: Sequence[str], prompts: Sequence[str] | None = None, instructions: str = ""
) -> Primary:
    """The primary metric of training answers (their user text and system prompt beside).

    Label accuracy when a field is a class label; field accuracy when at least 90 % of
    the answers are JSON; ROUGE-L otherwise. Each with its reason.
    """
    scheme, checks = class_label_search(answers, prompts, instructions)
    if scheme is not None:
        return Primary("label", scheme.key, checks[-1].reason)
    if answers_are_json(answers):
        why = "JSON answers whose values come from the prompt, not from a fixed set"
        rejected = [c.reason for c in checks if not c.is_label]
        if rejected:
            why += f" ({'; '.join(rejected)})"
        return Primary("json_keys", None, why)
    return Primary("rouge_l", None, "the answers are free text")


def answers_are_json(answers: Sequence[str]) -> bool:
    """At least 90 % of the answers are JSON objects or arrays (extraction, not text)."""
    return bool(answers) and sum(_is_json(a) for a in answers) >= _MIN_JSON_SHARE * len(answers)


def _is_json(text: str) -> bool:
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return False
    try:
        return isinstance(json.loads(stripped), dict | list)
    except (ValueError, RecursionError):
        return False


def decide_for_examples(examples: Sequence[Example]) -> Primary:
    """decide_primary on training examples (what a run decides from its frozen split)."""
    return decide_primary(*label_inputs(examples))
