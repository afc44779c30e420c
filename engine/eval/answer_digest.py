"""An answer in a few words for a table cell: what it says, and what differs from the reference.

Cut to a 15-cell column, every JSON answer of a table starts with the same `{"category": "…`.
`answer_digest` shows what tells the answers apart instead:

- labelled data (`label_key`, see engine.data.labels): the label, marked `✓` when it is the
  reference's label and `✗` when not: `✗ how_to`;
- JSON objects without a label (extraction): the fields that differ from the reference,
  `quantity=3 city=Lyon`, a missing field as `no city`, an extra one as `+note=…`;
  `✓ all fields` when every field matches;
- an answer that should be JSON and is not: `✗json` and the start of its text;
- free text: the text on one line, as it is.

Without a reference the digest describes the answer itself (its label, or its fields as
`name=Ann quantity=3`): the reference column of a table. Values compare as the metrics
compare them (engine.eval.metrics: normalised text, a label's trailing full stop ignored),
so a `✓` here is a match there.
"""

from __future__ import annotations

import json
from typing import Any

from engine.data.labels import LABEL_NAMES, WHOLE_ANSWER, LabelScheme
from engine.eval.metrics import normalise, parse_json

ALL_MATCH = "✓ all fields"
SAME_JSON = "✓ same JSON"
RIGHT, WRONG = "✓", "✗"
NOT_JSON = "✗json"
"""Marks an answer that is not the JSON its reference is."""
MAX_VALUE = 24
"""Characters of one field value shown before an ellipsis."""
TEXT_START = 60
"""Characters of a text kept after the NOT_JSON mark (the table cuts it further)."""


def answer_digest(output: str, reference: str | None = None, label_key: str | None = None) -> str:
    """A short, one-line description of `output`, against `reference` when given.

    Args:
        output: the answer (or the reference itself, with `reference` None).
        reference: the expected answer; None describes `output` on its own.
        label_key: the JSON key holding the label, "" when the whole answer is the label
            (engine.data.labels.WHOLE_ANSWER), None when the data has no labels.
    """
    if label_key is not None:
        return _label_digest(output, reference, label_key)
    expected = parse_json(reference) if reference is not None else None
    if isinstance(expected, dict):
        return _fields_digest(output, expected)
    if isinstance(expected, list):
        answer = parse_json(output)
        if answer is None:
            return _not_json(output)
        return SAME_JSON if answer == expected else _flat(output)
    own = parse_json(output) if reference is None else None
    if isinstance(own, dict) and own:
        return " ".join(f"{key}={_value(value)}" for key, value in own.items())
    return _flat(output)


def label_key_of(reference: str, ref_label: str | None) -> str | None:
    """The key holding the label, found from a reference and its label as scoring stored it.

    Eval rows store each reference's label (`ref_label`), not the scheme's key: the key is
    the top-level field whose value is that label (conventional names such as `category`
    first), or WHOLE_ANSWER when the reference is the label. None: no label.
    """
    if ref_label is None:
        return None
    if _same_label(reference, ref_label):
        return WHOLE_ANSWER
    obj = parse_json(reference)
    if not isinstance(obj, dict):
        return None
    keys = [
        k for k, v in obj.items() if isinstance(v, str | int) and _same_label(str(v), ref_label)
    ]
    named = sorted((k for k in keys if k.lower() in LABEL_NAMES), key=_name_rank)
    return (named or keys or [None])[0]


def _name_rank(key: str) -> int:
    return LABEL_NAMES.index(key.lower())


def _label_digest(output: str, reference: str | None, key: str) -> str:
    scheme = LabelScheme(key, {})
    if key != WHOLE_ANSWER and not isinstance(parse_json(output), dict):
        return _not_json(output)
    label = scheme.label_of(output)
    shown = _flat(label) if label else f"no {key or 'label'}"
    if reference is None:
        return shown
    expected = scheme.label_of(reference)
    if expected is None:
        return shown
    right = label is not None and _same_label(label, expected)
    return f"{RIGHT if right else WRONG} {shown}"


def _fields_digest(output: str, expected: dict[str, Any]) -> str:
    answer = parse_json(output)
    if not isinstance(answer, dict):
        return _not_json(output)
    parts = [
        f"{key}={_value(answer[key])}" if key in answer else f"no {key}"
        for key, value in expected.items()
        if key not in answer or not _same_value(answer[key], value)
    ]
    parts += [f"+{key}={_value(value)}" for key, value in answer.items() if key not in expected]
    return " ".join(parts) if parts else ALL_MATCH


def _same_label(a: str, b: str) -> bool:
    return normalise(a).rstrip(".!") == normalise(b).rstrip(".!")


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return normalise(a) == normalise(b)
    return bool(a == b)


def _value(value: Any) -> str:
    """A field value as it reads best: bare text, quoted when it has spaces or looks like a
    number (so `"3"` and `3` differ on screen as they do in the data), JSON otherwise."""
    if isinstance(value, str):
        text = " ".join(value.split())
        if not text or " " in text or _json_scalar(text):
            text = json.dumps(text, ensure_ascii=False)
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _json_scalar(text: str) -> bool:
    try:
        return not isinstance(json.loads(text), str)
    except ValueError:
        return False


def _not_json(output: str) -> str:
    flat = _flat(output)
    return f"{NOT_JSON} {flat[:TEXT_START]}" if flat else f"{NOT_JSON} (empty)"


def _flat(text: str) -> str:
    return " ".join(text.split())
