"""Every hyperparameter of the run config as a labelled field, with its explanation.

The widget for a field follows its type in `TrainConfig`: a choice list for a `Literal`,
a checkbox for a bool, a one-line input otherwise. The explanation under each field is
the engine's own (`field_help`: the docstring under the field), so the form, the saved
TOML and the CLI say the same thing. The form parses what is typed and posts
`FieldEdited`; whether the value is valid is the engine's call (the screen tries it and
hands back the error with `show_error`).
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Literal

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Select, Static

from engine.config.build import TrainConfig, config_value, field_help, parse_assignment
from engine.config.fields import field_types

SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Training",
        ("epochs", "max_steps", "learning_rate", "scheduler", "warmup_ratio",
         "micro_batch_size", "gradient_accumulation", "max_seq_len"),
    ),
    ("Adapter (LoRA)", ("lora.r", "lora.alpha", "lora.dropout", "lora.target_modules")),
    (
        "Validation and checkpoints",
        ("eval_steps", "save_steps", "logging_steps", "early_stopping_patience", "keep_adapter"),
    ),
    (
        "Memory and speed",
        ("gradient_checkpointing", "packing", "bf16", "num_processes", "distributed",
         "oom_retry"),
    ),
    ("Reproducibility and tracking", ("seed", "weight_decay", "max_grad_norm", "report_to",
                                      "run_name")),
)  # fmt: skip
"""The form's fields by section. `model`, `method` and `data.*` are set elsewhere."""


def field_type(name: str) -> Any:
    """The annotation of a (dotted) TrainConfig field."""
    cls: Any = TrainConfig
    *parents, last = name.split(".")
    for part in parents:
        cls = field_types(cls)[part]
    return field_types(cls)[last]


def all_field_names(cls: type = TrainConfig, prefix: str = "") -> list[str]:
    """Every leaf field of the config, dotted (`lora.r`, `data.source`, ...)."""
    names: list[str] = []
    for f in fields(cls):
        hint = field_types(cls)[f.name]
        if isinstance(hint, type) and is_dataclass(hint):
            names += all_field_names(hint, f"{prefix}{f.name}.")
        else:
            names.append(prefix + f.name)
    return names


def value_text(value: Any) -> str:
    """A field value as typed in the form (None: empty)."""
    if value is None:
        return ""
    if isinstance(value, tuple):
        return ", ".join(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def parse_field(name: str, text: str) -> Any:
    """What was typed, as the config value it means (validation is the engine's job)."""
    hint = field_type(name)
    text = text.strip()
    optional = type(None) in typing.get_args(hint)
    if not text:
        return None if optional else ""
    if typing.get_origin(hint) is tuple:
        return [part for part in re.split(r"[,\s]+", text) if part]
    return parse_assignment(f"{name}={text}")[1]


def _same(value: Any, shown: Any) -> bool:
    """Whether an edited value is the one shown (lists compare equal to tuples)."""
    if isinstance(value, list):
        value = tuple(value)
    return type(value) is type(shown) and value == shown


def _slug(name: str) -> str:
    return name.replace(".", "-").replace("_", "-")


class ConfigForm(VerticalScroll):
    """The hyperparameter fields of SECTIONS; `load` fills them from a config."""

    @dataclass
    class FieldEdited(Message):
        """The user changed a field; `value` is parsed but not yet validated."""

        name: str
        value: Any

    def __init__(self, cfg: TrainConfig, *, id: str | None = None) -> None:
        """Args:
        cfg: the config whose values the fields start with.
        """
        super().__init__(id=id)
        self.cfg = cfg
        self.widgets: dict[str, Widget] = {}
        self.shown: dict[str, Any] = {}
        """Field -> the value the form last put in its widget. A change event carrying
        that value is the widget's echo (at mount, or of `set_value`), not an edit."""

    def compose(self) -> ComposeResult:
        for title, names in SECTIONS:
            yield Static(title, classes="form-section")
            for name in names:
                with Horizontal(classes="form-row"):
                    yield Static(name, classes="form-name")
                    widget = self._widget(name)
                    self.widgets[name] = widget
                    yield widget
                    yield Static("", classes="form-note", id=f"note-{_slug(name)}")
                yield Static(field_help(TrainConfig, name), classes="form-help", markup=False)

    def _widget(self, name: str) -> Widget:
        """The widget for a field, holding its current value (so no change is posted)."""
        hint = field_type(name)
        field_id = f"field-{_slug(name)}"
        value = config_value(self.cfg, name)
        self.shown[name] = value
        if typing.get_origin(hint) is Literal:
            options = [(str(v), v) for v in typing.get_args(hint)]
            return Select(options, value=value, allow_blank=False, compact=True, id=field_id)
        if hint is bool:
            return Checkbox("", value, compact=True, id=field_id)
        # Built empty and filled at mount without a change event: a value given here would
        # be echoed as Input.Changed after mount, possibly after the wizard has set another
        # value (the recipe's), and would then look like the user's edit.
        return Input(compact=True, id=field_id, classes="form-input")

    def on_mount(self) -> None:
        for name, widget in self.widgets.items():
            if isinstance(widget, Input):
                self.set_value(name, self.shown[name])

    def load(self, cfg: TrainConfig) -> None:
        """Show `cfg`'s values without posting FieldEdited; clears all errors."""
        for name in self.widgets:
            self.set_value(name, config_value(cfg, name))
            self.show_error(name, None)

    def set_value(self, name: str, value: Any) -> None:
        """Show a value the wizard chose (an automatic interval) without FieldEdited."""
        widget = self.widgets[name]
        self.shown[name] = value
        with self.prevent(Input.Changed, Select.Changed, Checkbox.Changed):
            if isinstance(widget, Input):
                widget.value = value_text(value)
            else:
                widget.value = value  # type: ignore[attr-defined]

    def show_error(self, name: str, message: str | None) -> None:
        """Mark a field invalid with the engine's message (None: valid again)."""
        widget = self.widgets[name]
        widget.set_class(message is not None, "-invalid")
        note = self.query_one(f"#note-{_slug(name)}", Static)
        note.set_class(message is not None, "-error")
        note.update(f"✗ {message}" if message else "")

    def show_note(self, name: str, text: str) -> None:
        """A remark beside a valid field (e.g. "auto: from the dataset size")."""
        note = self.query_one(f"#note-{_slug(name)}", Static)
        if not note.has_class("-error"):
            note.update(text)

    def _name_of(self, widget: Widget) -> str | None:
        return next((n for n, w in self.widgets.items() if w is widget), None)

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _edited(self, event: Input.Changed | Select.Changed | Checkbox.Changed) -> None:
        name = self._name_of(event.control)
        if name is None:
            return
        event.stop()
        value = parse_field(name, event.value) if isinstance(event, Input.Changed) else event.value
        if _same(value, self.shown[name]):
            return
        self.shown[name] = value
        self.post_message(self.FieldEdited(name, value))
