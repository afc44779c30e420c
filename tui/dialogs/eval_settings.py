"""Eval settings: what an evaluation scores (the validation split or a test file), by
which primary metric, which systems, how it generates, and the judge.

The Evaluate screen opens it with `E`; Start (ctrl+s, or enter in a field) dismisses it
with the EvalOptions, escape with None. Every field is checked as it changes by the
engine's own validation (EvalOptions, JudgeConfig), and the engine's message shows beside
the field at fault. The API key never passes through here: the dialog names the
environment variable that holds it, and says whether that variable is set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Select, Static, TextArea

from engine.core.errors import TunedeckError
from engine.data.pool import is_pool_file
from engine.data.primary import AUTO
from engine.eval.judge.config import DEFAULT_RUBRIC, JudgeConfig, JudgeError
from engine.eval.options import (
    BASE_FEW,
    BASE_ZERO,
    TUNED,
    EvalOptions,
    EvalOptionsError,
    checkpoint_system,
)
from engine.eval.primary import PrimaryOptions
from tui.dialogs.file_browser import FileBrowserDialog
from tui.paths import stylesheet
from tui.widgets.path_input import DATASET_SUFFIXES, PathInput

DEFAULT_KEY_ENV = str(next(f.default for f in fields(JudgeConfig) if f.name == "key_env"))
"""The judge key's variable when the field is left blank (one source: JudgeConfig)."""
SAMPLING_START = ("0.7", "0.9")
"""Temperature and top_p offered when decoding switches from greedy to sampling."""
NUMBERS = (("few_shot", int, False), ("temperature", float, False), ("top_p", float, False),
           ("max_new_tokens", int, True), ("max_examples", int, True))  # fmt: skip
"""Number fields: EvalOptions field, type, and whether blank means "automatic"."""
JUDGE_MODES = [("no judge", "none"), ("OpenAI-compatible endpoint", "url"),
               ("local Hugging Face model", "local")]  # fmt: skip
AGAINST = [("the stronger base (auto)", "auto"), ("base zero-shot", BASE_ZERO),
           ("base few-shot", BASE_FEW)]  # fmt: skip
NOTED = ("data", "primary", "systems", "few_shot", "temperature", "top_p", "max_new_tokens",
         "max_examples", "url", "model", "key_env", "local_model")  # fmt: skip
"""Fields with a note beside them (an error, or what blank means)."""
BLANK_NOTES = {
    "data": "blank: the run's validation split",
    "max_new_tokens": "blank: 1.5 × the longest reference + 16",
    "max_examples": "blank: every held-out example",
    "url": "e.g. http://127.0.0.1:8000/v1",
    "model": "the name the server serves",
    "local_model": "name, directory or hub id; runs here",
}


@dataclass(frozen=True)
class EvalChoices:
    """What the dialog can offer for one run."""

    run_name: str
    has_adapter: bool
    """The run has its kept adapter (the fine-tuned system can be evaluated)."""
    checkpoints: tuple[int, ...]
    """Steps of the complete saved checkpoints that hold an adapter."""
    primary: PrimaryOptions | None = None
    """The run's primary metric and the ones on offer (None: the field is not shown)."""


def primary_start(options: EvalOptions, choices: EvalChoices) -> str:
    """The primary-metric choice the field starts on: the options', else the user's stored
    choice, else `auto` (the data's decision)."""
    if options.primary:
        return options.primary
    current = choices.primary.current if choices.primary else None
    return current.spec if current is not None and current.source == "user" else AUTO


def primary_note(spelling: str, choices: PrimaryOptions) -> str:
    """Why the metric chosen in the field: the data's reason for `auto`."""
    if spelling == AUTO:
        decided = choices.decided
        return f"{decided.name}: {decided.why}" if decided else "decided from the training data"
    return "your choice: stored with the run for every eval set"


def checked_systems(options: EvalOptions, choices: EvalChoices) -> set[str]:
    """The systems whose toggles start checked."""
    if options.systems is None:
        start = {BASE_ZERO, BASE_FEW} | ({TUNED} if choices.has_adapter else set())
    else:
        start = set(options.systems)
    if options.checkpoints:
        start |= {checkpoint_system(step) for step in choices.checkpoints}
    return start


def parse_number(text: str, kind: type, blank_ok: bool) -> Any:
    """A field's number (None for blank when blank means automatic).

    Raises:
        EvalOptionsError: not a number of the kind.
    """
    text = text.strip()
    if not text and blank_ok:
        return None
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise EvalOptionsError(f"{text or 'blank'}: {what} is needed") from None


def key_status(name: str) -> str:
    """Whether the judge key's variable is set (its value is never shown)."""
    if os.environ.get(name.strip() or DEFAULT_KEY_ENV):
        return "✓ set in this environment"
    return "not set: no key is sent"


class EvalSettingsDialog(ModalScreen[EvalOptions | None]):
    """Systems, generation and judge of the next evaluation; dismisses with the options.

    BINDINGS: ctrl+s starts (enter in a field too), ctrl+o browses for the test file,
    escape cancels.
    """

    CSS_PATH = stylesheet("eval_dialogs")
    BINDINGS = [
        Binding("ctrl+s", "start", "Start"),
        Binding("ctrl+o", "browse", "Test file"),
        Binding("escape", "dismiss(None)", "Cancel"),
    ]

    def __init__(self, options: EvalOptions, choices: EvalChoices) -> None:
        super().__init__()
        self.initial = options
        self.choices = choices
        self.boxes: dict[str, Checkbox] = {}
        """System name -> its toggle."""
        self.pool = False
        """Whether the test file field names a prompt pool (answers, no references)."""
        self.systems_set_by_hand = False
        """A toggle was changed by the user: a pool no longer resets them."""
        self._checked_before_pool: set[str] = set()

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="settings-box", classes="dialog") as box:
            box.border_title = f"Eval settings · run {self.choices.run_name}"
            box.border_subtitle = "ctrl+s: start   ctrl+o: test file   escape: cancel"
            yield Static("Examples", classes="settings-section")
            data = PathInput(self.initial.data or "", suffixes=DATASET_SUFFIXES, id="field-data")
            yield self._row("test file", data.add_class("settings-input"), "data")
            if self.choices.primary is not None:
                yield self._row("primary metric", self._primary_select(), "primary")
            yield Static("Systems", classes="settings-section")
            yield from self._system_rows()
            yield Static("Generation", classes="settings-section")
            yield from self._generation_rows()
            yield Static("Judge (optional): fine-tuned vs base, positions swapped",
                         classes="settings-section")  # fmt: skip
            yield from self._judge_rows()
            yield Static("", id="settings-error", markup=False)
            with Horizontal(id="settings-buttons"):
                yield Button("Start", variant="primary", id="settings-start", compact=True)
                yield Button("Cancel", id="settings-cancel", compact=True)

    def _row(self, label: str, widget: Widget, name: str | None = None) -> Horizontal:
        """One line of the form: label, field, and the note beside it."""
        parts = [Static(label, classes="settings-label"), widget]
        if name is not None:
            parts.append(Static("", id=f"note-{name}", classes="settings-note", markup=False))
        return Horizontal(*parts, classes="settings-row", id=f"row-{name}" if name else None)

    def _primary_select(self) -> Select[str]:
        assert self.choices.primary is not None
        offered = self.choices.primary.choices()
        start = primary_start(self.initial, self.choices)
        if start not in [value for _title, value in offered]:
            offered.append((start, start))
        return Select(offered, value=start, allow_blank=False, compact=True, id="field-primary")

    def _system_rows(self) -> ComposeResult:
        checked = checked_systems(self.initial, self.choices)
        has_adapter = self.choices.has_adapter
        tuned = "fine-tuned (kept adapter)" if has_adapter else "fine-tuned (no adapter yet)"
        for system, title in ((BASE_ZERO, "base zero-shot"), (BASE_FEW, "base few-shot"),
                              (TUNED, tuned)):  # fmt: skip
            missing = system == TUNED and not has_adapter
            box = Checkbox(title, system in checked and not missing, compact=True,
                           id=f"sys-{system}", disabled=missing)  # fmt: skip
            self.boxes[system] = box
        yield self._row("systems", Horizontal(*self.boxes.values(), classes="settings-boxes"))
        steps = []
        for step in self.choices.checkpoints:
            system = checkpoint_system(step)
            self.boxes[system] = Checkbox(f"step {step}", system in checked, compact=True,
                                          id=f"sys-ckpt-{step}")  # fmt: skip
            steps.append(self.boxes[system])
        if not steps:
            steps = [Static("none saved with an adapter yet", classes="settings-none")]
        yield self._row("checkpoints", Horizontal(*steps, classes="settings-boxes"), "systems")

    def _generation_rows(self) -> ComposeResult:
        o = self.initial
        greedy = o.temperature == 0
        temperature, top_p = SAMPLING_START if greedy else (str(o.temperature), str(o.top_p))
        mode = "greedy" if greedy else "sample"
        decoding = [("greedy (reproducible)", "greedy"), ("sampling", "sample")]
        yield self._row("few-shot k", self._input("few_shot", str(o.few_shot)), "few_shot")
        yield self._row("decoding", Select(decoding, value=mode, allow_blank=False,
                                           compact=True, id="field-decoding"))  # fmt: skip
        yield self._row("temperature", self._input("temperature", temperature), "temperature")
        yield self._row("top_p", self._input("top_p", top_p), "top_p")
        tokens = "" if o.max_new_tokens is None else str(o.max_new_tokens)
        yield self._row("max new tokens", self._input("max_new_tokens", tokens), "max_new_tokens")
        examples = "" if o.max_examples is None else str(o.max_examples)
        yield self._row("examples", self._input("max_examples", examples), "max_examples")

    def _judge_rows(self) -> ComposeResult:
        judge = self.initial.judge
        mode = "none" if judge is None else ("url" if judge.url else "local")
        yield self._row("judge", Select(JUDGE_MODES, value=mode, allow_blank=False,
                                        compact=True, id="field-judge"))  # fmt: skip
        with Vertical(id="judge-fields"):
            yield self._row("base URL", self._input("url", judge and judge.url), "url")
            yield self._row("model", self._input("model", judge and judge.model), "model")
            key_env = judge.key_env if judge else DEFAULT_KEY_ENV
            yield self._row("API key env var", self._input("key_env", key_env), "key_env")
            local = judge and judge.local_model
            yield self._row("local model", self._input("local_model", local), "local_model")
            against = (judge and judge.against) or "auto"
            yield self._row("compare with", Select(AGAINST, value=against, allow_blank=False,
                                                   compact=True, id="field-against"))  # fmt: skip
            yield Static("rubric: what the judge is told to prefer", classes="settings-muted")
            rubric = judge.rubric if judge else DEFAULT_RUBRIC
            yield TextArea(rubric, id="field-rubric", soft_wrap=True, compact=True)

    def _input(self, name: str, value: str | None) -> Input:
        return Input(value or "", compact=True, id=f"field-{name}", classes="settings-input")

    def on_mount(self) -> None:
        self._show_modes()
        self.options()
        self.query_one("#field-data", Input).focus()

    # -- reading the fields -----------------------------------------------------------------

    def _text(self, name: str) -> str:
        return self.query_one(f"#field-{name}", Input).value.strip()

    def _choice(self, name: str) -> str:
        return str(self.query_one(f"#field-{name}", Select).value)

    def _primary(self) -> str | None:
        """The primary metric to store (None: keep the run's; `auto` undoes a user's)."""
        if self.choices.primary is None:
            return self.initial.primary
        chosen = self._choice("primary")
        current = self.choices.primary.current
        if chosen == AUTO and (current is None or current.source == "data"):
            return None
        return chosen

    def _systems(self) -> tuple[str, ...]:
        return tuple(s for s, box in self.boxes.items() if box.value and not box.disabled)

    def _data(self, errors: dict[str, str]) -> str | None:
        """The test file's absolute path (None: the validation split); a file that is not
        there is an error beside the field. Its records are checked when it starts."""
        text = self._text("data")
        if not text:
            return None
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
        if not path.is_file():
            errors["data"] = "no such file" if not path.exists() else "not a file"
            return None
        return str(path.resolve())

    def _numbers(self, errors: dict[str, str]) -> dict[str, Any]:
        """The number fields, each checked alone by EvalOptions (messages into `errors`)."""
        sampling = self._choice("decoding") == "sample"
        values: dict[str, Any] = {} if sampling else {"temperature": 0.0, "top_p": 1.0}
        for name, kind, blank_ok in NUMBERS:
            if name in values:
                continue
            try:
                value = parse_number(self._text(name), kind, blank_ok)
                EvalOptions(**{name: value})  # the engine's own range check
                values[name] = value
            except TunedeckError as exc:
                errors[name] = exc.message
        if sampling and values.get("temperature") == 0:
            errors["temperature"] = "sampling needs a temperature above 0 (0 is greedy)"
        return values

    def _judge(self, errors: dict[str, str]) -> JudgeConfig | None:
        """The judge the fields describe (None: no judge, or a message in `errors`)."""
        mode = self._choice("judge")
        if mode == "none":
            return None
        url = self._text("url") if mode == "url" else ""
        against = self._choice("against")
        try:
            if url and not url.startswith(("http://", "https://")):
                raise JudgeError("the URL starts with http:// or https://")
            return JudgeConfig(
                url=url or None,
                model=(self._text("model") or None) if mode == "url" else None,
                key_env=self._text("key_env") or DEFAULT_KEY_ENV,
                local_model=(self._text("local_model") or None) if mode == "local" else None,
                rubric=self.query_one(TextArea).text.strip() or DEFAULT_RUBRIC,
                against=None if against == "auto" else against,
            )
        except TunedeckError as exc:
            errors[(exc.field or "url") if mode == "url" else "local_model"] = exc.message
            return None

    def _follow_pool(self, data: str | None) -> None:
        """A prompt pool is answered by the fine-tuned model alone (as `tunedeck eval --data
        POOL` does: base answers to unlabelled prompts are rarely worth their time); the
        toggles come back when the field names a scored file again. Toggles the user set
        are left as they are."""
        pool = data is not None and is_pool_file(data)
        if pool == self.pool:
            return
        self.pool = pool
        if self.systems_set_by_hand or not self.choices.has_adapter:
            return
        if pool:
            self._checked_before_pool = {s for s, box in self.boxes.items() if box.value}
        wanted = {TUNED} if pool else self._checked_before_pool
        for system, box in self.boxes.items():
            with box.prevent(Checkbox.Changed):
                box.value = system in wanted

    def options(self) -> EvalOptions | None:
        """The options the fields describe; None, with the messages shown, when some are wrong."""
        errors: dict[str, str] = {}
        data = self._data(errors)
        self._follow_pool(data)
        values = self._numbers(errors)
        systems = self._systems()
        try:
            EvalOptions(systems=systems)
        except TunedeckError as exc:
            errors["systems"] = f"{exc.message}: check at least one"
        judge = self._judge(errors)
        self._show_notes(errors)
        if errors:
            return None
        try:
            return replace(self.initial, systems=systems, checkpoints=False, judge=judge,
                           data=data, primary=self._primary(), **values)  # fmt: skip
        except TunedeckError as exc:
            self.query_one("#settings-error", Static).update(f"✗ {exc.message}")
            return None

    # -- showing ----------------------------------------------------------------------------

    def _show_notes(self, errors: dict[str, str]) -> None:
        for name in NOTED:
            if name == "primary" and self.choices.primary is None:
                continue
            note = self.query_one(f"#note-{name}", Static)
            message = errors.get(name)
            note.set_class(message is not None, "-error")
            if message is not None:
                note.update(f"✗ {message}")
            elif name == "key_env":
                note.update(key_status(self._text("key_env")))
            elif name == "data" and self._text("data") and self.pool:
                note.update("✓ a prompt pool: answered, not scored (review to score)")
            elif name == "data" and self._text("data"):
                note.update("✓ scored instead of the validation split")
            elif name == "primary" and self.choices.primary is not None:
                note.update(primary_note(self._choice("primary"), self.choices.primary))
            else:
                note.update(BLANK_NOTES.get(name, ""))
        summary = f"✗ fix the {len(errors)} field(s) marked ✗ to start" if errors else ""
        self.query_one("#settings-error", Static).update(summary)

    def _show_modes(self) -> None:
        """Sampling fields only with sampling; judge fields only for the judge chosen."""
        greedy = self._choice("decoding") == "greedy"
        for name in ("temperature", "top_p"):
            self.query_one(f"#field-{name}", Input).disabled = greedy
        mode = self._choice("judge")
        self.query_one("#judge-fields").display = mode != "none"
        for name in ("url", "model", "key_env"):
            self.query_one(f"#row-{name}").display = mode == "url"
        self.query_one("#row-local_model").display = mode == "local"

    # -- events -----------------------------------------------------------------------------

    @on(Select.Changed)
    def _mode_changed(self, event: Select.Changed) -> None:
        self._show_modes()
        self.options()

    @on(Input.Changed)
    @on(TextArea.Changed)
    def _edited(self) -> None:
        self.options()

    @on(Checkbox.Changed)
    def _toggled(self) -> None:
        self.systems_set_by_hand = True
        self.options()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_start()

    @on(Button.Pressed, "#settings-start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Button.Pressed, "#settings-cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(None)

    def action_browse(self) -> None:
        """Choose the test file in a file browser (from the field's directory, else here)."""
        current = Path(self._text("data") or ".").expanduser()
        start = current if current.is_dir() else current.parent
        dialog = FileBrowserDialog("Test file to score", start.resolve(), DATASET_SUFFIXES)
        self.app.push_screen(dialog, self._browsed)

    def _browsed(self, path: Path | None) -> None:
        if path is not None:
            field = self.query_one("#field-data", Input)
            field.value = str(path)
            field.focus()

    def action_start(self) -> None:
        """Dismiss with the options, or stay (with the messages shown) while some are wrong."""
        options = self.options()
        if options is None:
            self.app.bell()
        else:
            self.dismiss(options)
