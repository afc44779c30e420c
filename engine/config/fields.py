"""Field machinery shared by the config dataclasses: help text, type checks, suggestions.

The config classes in `engine.config.build` document each field with a docstring right under it
(the litgpt `args.py` style). `field_help` reads those docstrings from the source with `ast`,
so the text a user sees in the TUI and in a saved `config.toml` has one source of truth.

`check_types` enforces the annotations at construction time, so a wrong type is refused
with a `ConfigError` naming the field, whichever way the config was built (Python call,
TOML file, dotted override), and never surfaces later as a `TypeError` deep in training.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import math
import textwrap
import types
import typing
from collections.abc import Iterable
from typing import Any, Literal, Union

from engine.core.errors import TunedeckError


class ConfigError(TunedeckError):
    """A run configuration that is invalid: unknown key, wrong type, value out of range."""


_DOCS: dict[type, dict[str, str]] = {}
_TYPES: dict[type, dict[str, Any]] = {}


def field_docs(cls: type) -> dict[str, str]:
    """Map each field of a dataclass to the docstring written under it, as one paragraph."""
    if cls not in _DOCS:
        _DOCS[cls] = _parse_field_docs(cls)
    return _DOCS[cls]


def _parse_field_docs(cls: type) -> dict[str, str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    class_def = tree.body[0]
    assert isinstance(class_def, ast.ClassDef)
    docs: dict[str, str] = {}
    body = class_def.body
    for node, following in zip(body, body[1:], strict=False):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(inspect.cleandoc(following.value.value).split())
    return docs


def field_types(cls: type) -> dict[str, Any]:
    """The resolved annotations of a dataclass's fields (strings under PEP 563 resolved)."""
    if cls not in _TYPES:
        hints = typing.get_type_hints(cls)
        _TYPES[cls] = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    return _TYPES[cls]


def suggest(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def describe_type(hint: Any) -> str:
    """A user-facing name for an annotation: 'an integer', 'one of 'a', 'b'', ..."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (Union, types.UnionType):
        parts = [describe_type(a) for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(parts) + " or left unset"
    if origin is tuple:
        return "a list of strings"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if hint in names:
        return names[hint]
    if dataclasses.is_dataclass(hint):
        return "a table"
    return str(hint)


def check_types(obj: Any, prefix: str = "") -> None:
    """Check (and normalise) every field of a frozen dataclass against its annotation.

    ints are accepted where a float is expected (TOML writes `epochs = 2`) and stored as
    float; lists of strings are stored as tuples, so configs stay hashable and comparable.

    Raises:
        ConfigError: naming the field, the expected type and the value it got.
    """
    for name, hint in field_types(type(obj)).items():
        value = getattr(obj, name)
        checked = _check_value(f"{prefix}{name}", value, hint)
        if checked is not value:
            object.__setattr__(obj, name, checked)


def _type_error(name: str, hint: Any, value: Any) -> ConfigError:
    extra = ""
    if typing.get_origin(hint) is Literal and isinstance(value, str):
        extra = suggest(value, [str(a) for a in typing.get_args(hint)])
    return ConfigError(f"{name} must be {describe_type(hint)} (got {value!r}){extra}")


def _check_value(name: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        (inner,) = (a for a in args if a is not type(None))
        try:
            return _check_value(name, value, inner)
        except ConfigError:
            raise _type_error(name, hint, value) from None
    if origin is Literal:
        if isinstance(value, str) and value in typing.get_args(hint):
            return value
        raise _type_error(name, hint, value)
    if origin is tuple:
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise _type_error(name, hint, value)
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number (got {value!r})")
            return float(value)
        raise _type_error(name, hint, value)
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _type_error(name, hint, value)
    if isinstance(hint, type) and not isinstance(value, hint):
        raise _type_error(name, hint, value)
    return value


def require(ok: bool, name: str, rule: str, value: Any) -> None:
    """Raise `ConfigError("<name> must be <rule> (got <value>)")` unless `ok`."""
    if not ok:
        raise ConfigError(f"{name} must be {rule} (got {value!r})")
