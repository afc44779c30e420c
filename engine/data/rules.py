"""Per-record rules: turn one parsed record of a known format into chat turns, or say why not.

Each problem has a stable code (the same codes `tunedeck lint` prints), a message that
names what is wrong, and a hint on how to fix it. Errors make a record unusable; warnings
(e.g. a conversation that ends with a user turn) leave it usable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

FORMATS: tuple[str, ...] = ("chat", "sharegpt", "alpaca", "prompt_completion")
"""Record formats, in detection priority order."""

# The key(s) whose presence identifies each format.
FORMAT_KEYS: dict[str, tuple[str, ...]] = {
    "chat": ("messages",),
    "sharegpt": ("conversations",),
    "alpaca": ("instruction", "output"),
    "prompt_completion": ("prompt", "completion"),
}


def format_of_object(obj: Any) -> str | None:
    """The format whose identifying keys an object has, or None."""
    if not isinstance(obj, dict):
        return None
    for fmt in FORMATS:
        if all(key in obj for key in FORMAT_KEYS[fmt]):
            return fmt
    return None


Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with one record."""

    severity: Severity
    code: str
    message: str
    hint: str
    column: int | None = None
    """1-based column in the line, where the reader knows it (invalid JSON)."""


# Role spellings of the formats in the wild -> our three roles.
_ROLE_MAP = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
}
_LIST_KEY = {"chat": "messages", "sharegpt": "conversations"}
_TURN_KEYS = {"chat": ("role", "content"), "sharegpt": ("from", "value")}
_MAX_PROBLEMS = 5  # per record: the first few say enough, a 500-turn mess should not flood


def _error(code: str, message: str, hint: str) -> Problem:
    return Problem("error", code, message, hint)


def normalise_record(obj: Any, fmt: str) -> tuple[list[tuple[str, str]] | None, list[Problem]]:
    """Turns (role, content) of one record in format `fmt`, and the problems found.

    Returns (None, problems) when the record cannot be read as `fmt` at all.
    """
    if not isinstance(obj, dict):
        kind = type(obj).__name__ if obj is not None else "null"
        kind = {"list": "an array", "str": "a string", "dict": "an object"}.get(kind, kind)
        return None, [
            _error(
                "not-an-object",
                f"record is {kind}, not a JSON object",
                "each record must be one object such as "
                '{"messages": [{"role": "user", "content": "..."}, ...]}',
            )
        ]
    if fmt in _LIST_KEY:
        return _conversation_turns(obj, fmt)
    if fmt == "alpaca":
        return _alpaca_turns(obj)
    return _prompt_completion_turns(obj)


def _missing_keys_problem(obj: dict[str, Any], fmt: str, wanted: tuple[str, ...]) -> Problem:
    found = ", ".join(sorted(str(k) for k in obj)[:8]) or "none"
    other = format_of_object(obj)
    mixed = f"; it looks like {other} format" if other and other != fmt else ""
    return _error(
        "no-format-keys",
        f"record has no {' / '.join(repr(k) for k in wanted)} key for format {fmt} "
        f"(keys: {found}){mixed}",
        "every record of a file must use the same format; rename the keys or convert this record",
    )


def _conversation_turns(
    obj: dict[str, Any], fmt: str
) -> tuple[list[tuple[str, str]] | None, list[Problem]]:
    key = _LIST_KEY[fmt]
    if key not in obj:
        return None, [_missing_keys_problem(obj, fmt, (key,))]
    turns_in = obj[key]
    if not isinstance(turns_in, list):
        return None, [
            _error(
                "messages-not-list",
                f"'{key}' is {type(turns_in).__name__}, not a list of messages",
                f"'{key}' must be a JSON array of message objects",
            )
        ]
    problems: list[Problem] = []
    turns: list[tuple[str, str]] = []
    role_key, content_key = _TURN_KEYS[fmt]
    for index, message in enumerate(turns_in, start=1):
        turn = _read_turn(message, index, role_key, content_key, problems)
        if turn is not None:
            turns.append(turn)
        if len(problems) >= _MAX_PROBLEMS:
            break
    if problems:
        return None, problems[:_MAX_PROBLEMS]
    return turns, check_turns(turns)


def _read_turn(
    message: Any, index: int, role_key: str, content_key: str, problems: list[Problem]
) -> tuple[str, str] | None:
    # Fast path for the usual valid message: a 100k-example lint reads ~350k of them.
    if type(message) is dict:
        role, content = message.get(role_key), message.get(content_key)
        mapped = _ROLE_MAP.get(role) if type(role) is str else None
        if (
            mapped is not None
            and type(content) is str
            and content
            and not content.isspace()
            and (content.isascii() or not _has_lone_surrogate(content))
        ):
            return mapped, content
    return _read_turn_checked(message, index, role_key, content_key, problems)


def _read_turn_checked(
    message: Any, index: int, role_key: str, content_key: str, problems: list[Problem]
) -> tuple[str, str] | None:
    """The slow path: say exactly what is wrong with a message."""
    if not isinstance(message, dict):
        problems.append(
            _error(
                "message-not-object",
                f"message {index} is {type(message).__name__}, not an object",
                f'write each message as {{"{role_key}": ..., "{content_key}": ...}}',
            )
        )
        return None
    # ShareGPT variants in the wild use role/content too; accept either spelling.
    role = message[role_key] if role_key in message else message.get("role")
    content = message[content_key] if content_key in message else message.get("content")
    if role is None:
        problems.append(
            _error(
                "missing-role",
                f"message {index} has no '{role_key}'",
                f'add "{role_key}": "user" (or system / assistant) to the message',
            )
        )
        return None
    mapped = _ROLE_MAP.get(role.strip().lower()) if isinstance(role, str) else None
    if mapped is None:
        problems.append(
            _error(
                "unknown-role",
                f"message {index} has role {role!r}",
                "use system, user or assistant (ShareGPT: system, human, gpt); "
                "tool and function turns are not supported",
            )
        )
        return None
    text = _content_text(content, f"message {index} ({mapped})", content_key, problems)
    return None if text is None else (mapped, text)


def _content_text(
    content: Any, label: str, key: str, problems: list[Problem], required: bool = True
) -> str | None:
    if content is None:
        if required:
            problems.append(
                _error(
                    "missing-content",
                    f"{label} has no '{key}'",
                    f'add "{key}": "..." with the text of the turn',
                )
            )
        return None
    if not isinstance(content, str):
        shape = "a list of parts" if isinstance(content, list) else type(content).__name__
        problems.append(
            _error(
                "non-string-content",
                f"{label}: '{key}' is {shape}, not a string",
                "make it a plain string (join multi-part content into one text)",
            )
        )
        return None
    if not content.isascii() and _has_lone_surrogate(content):
        problems.append(
            _error(
                "not-utf8",
                f"{label}: '{key}' has an unpaired surrogate escape (\\ud800-\\udfff)",
                "the JSON escapes half of a UTF-16 pair; re-export the text as UTF-8",
            )
        )
        return None
    if not content or content.isspace():
        problems.append(
            _error(
                "empty-content",
                f"{label}: '{key}' is empty",
                "write the text of the turn, or remove the record",
            )
        )
        return None
    return content


def check_turns(turns: list[tuple[str, str]]) -> list[Problem]:
    """Role-order rules for a conversation whose turns are individually valid."""
    problems: list[Problem] = []
    if not any(role == "assistant" for role, _ in turns):
        problems.append(
            _error(
                "no-assistant",
                "conversation has no assistant message",
                "add the answer the model should learn as an assistant turn",
            )
        )
        return problems
    order = _role_order_problem([role for role, _ in turns])
    if order is not None:
        problems.append(order)
    elif turns[-1][0] == "user":
        problems.append(
            Problem(
                "warning",
                "ends-with-user",
                "conversation ends with a user turn that has no answer",
                "remove the trailing user turn or add the assistant's reply; the model "
                "learns nothing from it",
            )
        )
    return problems


def _role_order_problem(roles: list[str]) -> Problem | None:
    hint = "order turns as: optional system first, then user and assistant alternating"
    seen_user = False
    for index, role in enumerate(roles, start=1):
        previous = roles[index - 2] if index > 1 else None
        if role == "system" and index != 1:
            return _error("role-order", f"system message at position {index}, not first", hint)
        if role == "assistant" and not seen_user:
            return _error("role-order", f"assistant message {index} before any user message", hint)
        if role == previous and role != "system":
            return _error(
                "role-order", f"two {role} messages in a row ({index - 1}, {index})", hint
            )
        seen_user = seen_user or role == "user"
    return None


def _field_problems(
    obj: dict[str, Any], keys: dict[str, bool]
) -> tuple[dict[str, str], list[Problem]]:
    problems: list[Problem] = []
    values: dict[str, str] = {}
    for key, required in keys.items():
        if key not in obj and not required:
            continue
        if not required and isinstance(obj[key], str) and not obj[key].strip():
            continue  # an empty optional field (alpaca's input) is normal
        text = _content_text(obj.get(key), "record", key, problems, required)
        if text is not None:
            values[key] = text
    return values, problems


def _system_turn(values: dict[str, str]) -> list[tuple[str, str]]:
    return [("system", values["system"])] if "system" in values else []


def _alpaca_turns(obj: dict[str, Any]) -> tuple[list[tuple[str, str]] | None, list[Problem]]:
    if "instruction" not in obj or "output" not in obj:
        return None, [_missing_keys_problem(obj, "alpaca", ("instruction", "output"))]
    values, problems = _field_problems(
        obj, {"system": False, "instruction": True, "input": False, "output": True}
    )
    if problems:
        return None, problems
    user = values["instruction"]
    if "input" in values:
        user = f"{user}\n\n{values['input']}"
    return _system_turn(values) + [("user", user), ("assistant", values["output"])], []


def _prompt_completion_turns(
    obj: dict[str, Any],
) -> tuple[list[tuple[str, str]] | None, list[Problem]]:
    if "prompt" not in obj or "completion" not in obj:
        return None, [_missing_keys_problem(obj, "prompt_completion", ("prompt", "completion"))]
    values, problems = _field_problems(obj, {"system": False, "prompt": True, "completion": True})
    if problems:
        return None, problems
    turns = [("user", values["prompt"]), ("assistant", values["completion"])]
    return _system_turn(values) + turns, []


def _has_lone_surrogate(text: str) -> bool:
    """JSON can escape half a UTF-16 pair; such text cannot be encoded, tokenized or written."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
