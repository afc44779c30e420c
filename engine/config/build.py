"""The run configuration: build, override, save and load it; presets.

A config is a frozen, validated `TrainConfig` (defined in `engine.config.schema`, re-exported
here with everything else a caller needs). It is saved as commented TOML in the run
directory, and `tunedeck train config.toml` reproduces a run from the file alone.

    cfg = from_preset("quick", **{"data.source": "tickets.jsonl", "lora.r": 4})
    cfg.validate_for_run()
    save_config(cfg, run_dir / CONFIG_FILE)
    assert load_config(run_dir / CONFIG_FILE) == cfg
"""

from __future__ import annotations

import re
import textwrap
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import tomli_w

from engine.config.advice import config_warnings, suggest_max_seq_len
from engine.config.fields import ConfigError, field_docs, field_types, suggest
from engine.config.schema import (
    Bf16Mode,
    DataConfig,
    Distributed,
    LoraConfig,
    Method,
    ReportTo,
    Scheduler,
    TrainConfig,
    field_help,
)
from engine.core.files import write_text_atomic

__all__ = [
    "PRESETS",
    "PRESET_DESCRIPTIONS",
    "Bf16Mode",
    "ConfigError",
    "DataConfig",
    "LoraConfig",
    "Method",
    "ReportTo",
    "Distributed",
    "Scheduler",
    "TrainConfig",
    "config_value",
    "config_warnings",
    "field_help",
    "from_dict",
    "from_preset",
    "load_config",
    "parse_assignment",
    "save_config",
    "suggest_max_seq_len",
    "to_dict",
    "with_overrides",
]

# ---------------------------------------------------------------------------
# dicts, TOML files, overrides
# ---------------------------------------------------------------------------


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as plain data: nested dicts, lists for tuples, None for unset fields."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def config_value(cfg: Any, name: str) -> Any:
    """The value of a (dotted) field of a config: `config_value(cfg, "lora.r")`."""
    for part in name.split("."):
        cfg = getattr(cfg, part)
    return cfg


def from_dict(d: Any, *, where: str = "config") -> TrainConfig:
    """Build a validated `TrainConfig` from plain data; missing keys take the defaults.

    TOML has no null, so `false` for an optional (non-boolean) field means unset:
    `early_stopping_patience = false` turns early stopping off.

    Args:
        d: a mapping shaped like `to_dict`'s output (nested tables for data and lora).
        where: where the data came from (a file name), prefixed to error messages.

    Raises:
        ConfigError: an unknown key (with the closest valid one), a wrong type, or a value
            out of range.
    """
    try:
        cfg: TrainConfig = _build(TrainConfig, d, "")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}", exc.hint) from None
    return cfg


def _build(cls: type, d: Any, prefix: str) -> Any:
    if not isinstance(d, dict):
        name = prefix.rstrip(".") or "the configuration"
        raise ConfigError(f"{name} must be a table of key = value pairs (got {d!r})")
    hints = field_types(cls)
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        if key not in hints:
            raise _unknown_key(cls, str(key), prefix)
        if _is_table(hints[key]) and not is_dataclass(value):
            value = _build(hints[key], value, f"{prefix}{key}.")
        elif value is False and _is_optional(hints[key]):
            value = None  # TOML has no null: `key = false` unsets an optional field
        kwargs[key] = value
    return cls(**kwargs)


def _is_optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint) and bool not in typing.get_args(hint)


def _is_table(hint: Any) -> bool:
    return isinstance(hint, type) and is_dataclass(hint)


def _unknown_key(cls: type, key: str, prefix: str) -> ConfigError:
    hints = field_types(cls)
    candidates = [f"{prefix}{name}" for name in hints]
    for name, hint in hints.items():  # "r" at the top level probably means "lora.r"
        if _is_table(hint):
            candidates += [f"{prefix}{name}.{sub}" for sub in field_types(hint)]
            if key in field_types(hint):
                return ConfigError(
                    f"unknown key '{prefix}{key}': it belongs in the [{prefix}{name}] table",
                    hint=f"write it as {prefix}{name}.{key}",
                )
    return ConfigError(
        f"unknown key '{prefix}{key}'{suggest(prefix + key, candidates)}",
        hint="valid keys: " + ", ".join(f"{prefix}{n}" for n in hints),
    )


def with_overrides(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """A copy of `cfg` with some fields changed, validated as a whole.

    Keys may be dotted (`**{"lora.r": 8}`); a dict value for a table merges into it
    (`lora={"r": 8}` keeps alpha); a dataclass value replaces the table.
    """
    d = to_dict(cfg)
    for key, value in changes.items():
        _set_dotted(d, key, to_dict(value) if is_dataclass(value) else value)
    return from_dict(d, where="override")


def _set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    target = d
    for i, part in enumerate(parents):
        if not isinstance(target.get(part), dict):
            raise ConfigError(
                f"override: {'.'.join(parents[: i + 1])!r} is not a table (in key {key!r})"
            )
        target = target[part]
    if isinstance(value, dict) and isinstance(target.get(last), dict):
        for sub, sub_value in value.items():
            _set_dotted(target[last], str(sub), sub_value)
    else:
        target[last] = value


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse a command-line override `key=value`; the value is read as TOML, else a string.

    `lora.r=8` gives `("lora.r", 8)`, `packing=true` gives `True`, `model=x/y` gives "x/y".
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*", key):
        raise ConfigError(f"expected key=value, got {text!r}", hint="for example lora.r=8")
    try:
        return key, tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return key, raw.strip()


def save_config(
    cfg: TrainConfig, path: str | Path, reasons: Mapping[str, str] | None = None
) -> None:
    """Write `cfg` as commented TOML, atomically (temp file + rename).

    Unset fields are omitted, except those whose default is set: they are written as
    `false` (TOML has no null), so the file loads back to the same config.

    Args:
        reasons: why a (dotted) field has its value, for values that tunedeck chose
            (`engine.config.recipe`); written as a comment above the key.
    """
    path = Path(path)
    text = "# tunedeck run configuration (tunedeck train <this file> repeats the run)\n"
    text += _toml_table(cfg, "", reasons or {})
    write_text_atomic(path, text)  # 0644: the run's config is not private


def _toml_table(cfg: Any, prefix: str, reasons: Mapping[str, str]) -> str:
    docs = field_docs(type(cfg))
    scalars, tables = [], []
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if value is None and f.default is None:
            continue  # unset and unset by default: nothing to say
        if value is None:
            value = False  # unset where the default is set (early stopping off)
        if is_dataclass(value):
            nested = _toml_table(value, f"{prefix}{f.name}.", reasons)
            tables.append(f"\n[{prefix}{f.name}]\n" + nested)
        else:
            value = list(value) if isinstance(value, tuple) else value
            comment = "".join(f"# {line}\n" for line in textwrap.wrap(docs[f.name], 88))
            reason = reasons.get(prefix + f.name)
            if reason:
                chosen = f"chosen for this data and model: {reason}"
                comment += "".join(f"# {line}\n" for line in textwrap.wrap(chosen, 88))
            scalars.append(comment + tomli_w.dumps({f.name: value}))
    return "".join(scalars) + "".join(tables)


def load_config(path: str | Path) -> TrainConfig:
    """Read a TOML config file; keys not in the file take the defaults.

    Raises:
        ConfigError: the file is missing or unreadable, is not valid TOML (the message
            names the line and column), or holds an invalid config.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(path, text, exc) from None
    return from_dict(data, where=str(path))


def _syntax_error(path: Path, text: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    # Python 3.11's TOMLDecodeError has no lineno attribute: the position is in the text.
    match = re.search(r"^(.*) \(at line (\d+), column (\d+)\)$", str(exc))
    if not match:
        return ConfigError(f"{path}: invalid TOML: {exc}")
    reason, line, column = match.group(1), int(match.group(2)), int(match.group(3))
    lines = text.splitlines()
    shown = lines[line - 1] if 0 < line <= len(lines) else ""
    return ConfigError(
        f"{path}:{line}:{column}: invalid TOML: {reason}",
        hint=f"line {line}: {shown.strip()}" if shown.strip() else "",
    )


# ---------------------------------------------------------------------------
# presets
# ---------------------------------------------------------------------------

PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        "epochs": 1.0,
        "lora.r": 8,
        "lora.alpha": 16,
        "max_seq_len": 512,
    },
    "balanced": {},
    "thorough": {
        "epochs": 3.0,
        "lora.r": 32,
        "lora.alpha": 64,
        "early_stopping_patience": 4,
    },
}
"""Overrides on top of the `TrainConfig` defaults, by preset name (dotted keys). A preset's
values count as set by the user: the data-aware recipe (`engine.config.recipe`) chooses only the
fields a preset leaves alone, so "balanced" is the recipe itself."""

PRESET_DESCRIPTIONS: dict[str, str] = {
    "quick": "a first look: 1 epoch, small adapter (r=8), short sequences",
    "balanced": "sized to your data and model: learning rate from the model's width, batch "
    "and epochs from the number of examples, the adapter to keep from the answers (the last "
    "one for labels, else the best by validation loss)",
    "thorough": "3 epochs, larger adapter (r=32), more patience before stopping early",
}


def from_preset(name: str, **overrides: Any) -> TrainConfig:
    """The config of preset `name` with `overrides` (dotted keys allowed) applied on top."""
    if name not in PRESETS:
        raise ConfigError(
            f"unknown preset {name!r}{suggest(name, PRESETS)}",
            hint="presets: " + ", ".join(PRESETS),
        )
    return with_overrides(TrainConfig(), **{**PRESETS[name], **overrides})
