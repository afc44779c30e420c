"""Is a corrected answer fit to train on? The same shape as the training answers.

A correction becomes a training example (`tunedeck data add`) or a reference
(`tunedeck data fix`), so it must look like the answers the run learned from: when those
are JSON objects, it must parse as one, and a key that no training answer uses is named
(a typo such as `categroy` would teach a new key).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from engine.data.labels import parse_json_object

_JSON_SHARE = 0.9


@dataclass(frozen=True)
class CorrectionCheck:
    """What is wrong with a correction (error: refused) and what is odd (warnings)."""

    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def answer_keys(answers: Iterable[str]) -> tuple[bool, set[str]]:
    """Whether the training answers are JSON objects (90 % or more), and their keys."""
    count = objects = 0
    keys: set[str] = set()
    for answer in answers:
        count += 1
        obj = parse_json_object(answer)
        if obj is not None:
            objects += 1
            keys.update(obj)
    return count > 0 and objects >= _JSON_SHARE * count, keys


def check_correction(text: str, train_answers: Sequence[str]) -> CorrectionCheck:
    """Check a corrected answer against the run's training answers."""
    if not text.strip():
        return CorrectionCheck("the corrected answer is empty")
    is_json, keys = answer_keys(train_answers)
    if not is_json:
        return CorrectionCheck()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return CorrectionCheck(
            f"not valid JSON ({exc.msg} at line {exc.lineno} column "
            f"{exc.colno}): the training answers are JSON objects"
        )
    if not isinstance(value, dict):
        return CorrectionCheck("not a JSON object: the training answers are JSON objects")
    unknown = [key for key in value if key not in keys]
    warnings = [f"key {key!r} is in no training answer" for key in unknown]
    missing = sorted(keys - set(value))
    if missing and len(missing) < len(keys):
        warnings.append(f"keys the training answers use are missing: {', '.join(missing)}")
    return CorrectionCheck(None, warnings)


def compact_json(text: str) -> str:
    """A JSON answer written the way the training answers usually are (one line, default
    separators, non-ASCII kept); other text unchanged, stripped."""
    try:
        value = json.loads(text)
    except ValueError:
        return text.strip()
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else text.strip()


def pretty_json(text: str) -> str:
    """A JSON answer indented for editing; other text unchanged."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return (
        json.dumps(value, ensure_ascii=False, indent=2) if isinstance(value, dict | list) else text
    )
