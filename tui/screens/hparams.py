"""Wizard step 3, Hyperparameters: model, method, preset, every field, and what it costs.

Each edit is validated by the engine at once (`with_overrides` builds a new frozen
config; a `ConfigError` marks the field). The side panel shows the engine's memory and
time estimate and its warnings for this config on this dataset. The intervals between
learning rate, batch, epochs, method and evaluation intervals follow the data, the model
and the machine (the engine's recipe, `engine.config.recipe`) until the user sets them; the side
panel shows each chosen value with its reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Input, Select, Static

from engine.config.build import (
    PRESET_DESCRIPTIONS,
    PRESETS,
    ConfigError,
    DataConfig,
    TrainConfig,
    config_warnings,
    suggest_max_seq_len,
    with_overrides,
)
from engine.config.estimate_report import estimate_lines
from engine.model.resolve import ModelInfo
from tui.backend import ConfigBackend, ModelsBackend
from tui.dialogs.error import ErrorDialog
from tui.dialogs.file_browser import FileBrowserDialog
from tui.dialogs.prompt import PromptDialog
from tui.paths import display_path, stylesheet
from tui.screens.base import WizardScreen
from tui.widgets.config_form import ConfigForm
from tui.widgets.path_input import NameOrPathSuggester
from tui.wizard import AUTO_FIELDS

TEMPLATE_CODES = ("template-error", "template-folds-system")
"""Lint's findings about the model's chat template, shown with the warnings."""


class HyperparamsScreen(WizardScreen):
    """Set the run's hyperparameters; see the estimate and the warnings as you type.

    BINDINGS:
        ctrl+s: save the run config as TOML
        ctrl+o: load a config TOML (its data section is ignored: data comes from steps 1-2)
    """

    MODE = "hparams"
    CSS_PATH = stylesheet("hparams")
    BINDINGS = [
        Binding("ctrl+s", "save", "Save config"),
        Binding("ctrl+o", "load", "Load config"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.invalid: dict[str, str] = {}
        self.device: tuple[str, int | None] = ("cpu", None)
        self.flops_per_s: float | None = None
        """What the estimate assumes for the device (None: the engine's default)."""
        self.model_configs: dict[str, dict[str, Any] | None] = {}
        self.models: dict[str, ModelInfo] = {}
        self.sized_for: str | None = None
        """The model whose config.json the recipe last saw (None: not on disk yet)."""

    def compose_body(self) -> ComposeResult:
        cfg = self.wizard.config
        presets = [(name, name) for name in PRESETS]
        methods = [("LoRA", "lora"), ("QLoRA", "qlora")]
        with Horizontal(id="hp-top"):
            yield Static("Model ", classes="hp-label")
            yield Input(cfg.model, id="hp-model", compact=True)
            yield Static(" Method ", classes="hp-label")
            yield Select(methods, value=cfg.method, allow_blank=False, compact=True,
                         id="hp-method")  # fmt: skip
            yield Static(" Preset ", classes="hp-label")
            yield Select(presets, value=self.wizard.preset, allow_blank=False, compact=True,
                         id="hp-preset")  # fmt: skip
        yield Static("", id="hp-model-note")
        with Horizontal(id="hp-body"):
            yield ConfigForm(cfg, id="hp-form")
            with VerticalScroll(id="hp-side"):
                yield Static("", id="hp-estimate")
                yield Static("", id="hp-recipe")
                yield Static("", id="hp-warnings")
                yield Static("", id="hp-data")

    def on_mount(self) -> None:
        self.list_models()
        self.detect_device()
        self.set_interval(2.0, self._size_when_model_appears)

    @work(thread=True, exclusive=True, group="models", exit_on_error=False)
    def list_models(self) -> None:
        """The models available offline (for the model field's suggestions and note)."""
        models: ModelsBackend = self.backend
        self.app.call_from_thread(self._set_models, models.list_models())

    def _set_models(self, infos: list[ModelInfo]) -> None:
        self.models = {info.name: info for info in infos}
        self.query_one("#hp-model", Input).suggester = NameOrPathSuggester(self.models)
        self._model_note()

    @work(thread=True, exclusive=True, group="device", exit_on_error=False)
    def detect_device(self) -> None:
        """nvidia-smi takes a moment; the estimate assumes CPU until it answers."""
        models: ModelsBackend = self.backend
        device = models.device()
        self.app.call_from_thread(self._set_device, device, models.throughput(device[0]))

    def _set_device(self, device: tuple[str, int | None], flops_per_s: float | None) -> None:
        self.device, self.flops_per_s = device, flops_per_s
        self._apply_recipe()
        self._refresh_side()

    def sync(self) -> None:
        if self.query_one("#hp-model", Input).value != self.wizard.config.model:
            self._fill()  # the Models screen chose another model
        self._apply_recipe()
        self._refresh_side()

    def _apply_recipe(self) -> None:
        """Let the engine's recipe choose the fields nobody set, and show what it chose."""
        device, free = self.device
        model_config = self._model_config()
        if model_config is None:
            self.read_model_config(self.wizard.config.model)  # it may be on disk by now
        self.sized_for = self.wizard.config.model if model_config is not None else None
        changed = self.wizard.apply_suggestions(model_config, device, free)
        form = self.query_one(ConfigForm)
        for name, value in changed.items():
            if name == "method":
                with self.prevent(Select.Changed):
                    self.query_one("#hp-method", Select).value = value
            else:
                form.set_value(name, value)

    def _fill(self) -> None:
        """Show the wizard's config in every widget (no change events)."""
        cfg = self.wizard.config
        with self.prevent(Input.Changed, Select.Changed):
            self.query_one("#hp-model", Input).value = cfg.model
            self.query_one("#hp-method", Select).value = cfg.method
            self.query_one("#hp-preset", Select).value = self.wizard.preset
        self.query_one(ConfigForm).load(cfg)
        self.invalid.clear()

    # -- edits -----------------------------------------------------------------------------

    @on(ConfigForm.FieldEdited)
    def field_edited(self, message: ConfigForm.FieldEdited) -> None:
        form = self.query_one(ConfigForm)
        name = message.name
        try:
            cfg = with_overrides(self.wizard.config, **{name: message.value})
        except ConfigError as exc:
            self.invalid[name] = exc.message.removeprefix("override: ")
            form.show_error(name, self.invalid[name])
            self._refresh_side()
            return
        self.invalid.pop(name, None)
        form.show_error(name, None)
        if cfg != self.wizard.config:  # widgets echo their initial values: not an edit
            self.wizard.config = cfg
            if name in AUTO_FIELDS:
                self.wizard.edited.add(name)
            self._apply_recipe()  # e.g. a new micro-batch moves accumulation and intervals
        self._refresh_side()

    @on(Input.Changed, "#hp-model")
    def model_edited(self, event: Input.Changed) -> None:
        model = event.value.strip()
        if not model:
            self.invalid["model"] = "a model name or path"
        else:
            self.invalid.pop("model", None)
            self.wizard.model = model
            self.wizard.config = with_overrides(self.wizard.config, model=model)
            self._apply_recipe()  # the learning rate follows the model's width
        self._refresh_side()

    @on(Select.Changed, "#hp-method")
    def method_chosen(self, event: Select.Changed) -> None:
        if event.value != self.wizard.config.method:
            self.wizard.config = with_overrides(self.wizard.config, method=event.value)
            self.wizard.edited.add("method")
            self._apply_recipe()
        self._refresh_side()

    @on(Select.Changed, "#hp-preset")
    def preset_chosen(self, event: Select.Changed) -> None:
        if event.value != self.wizard.preset:
            self.wizard.use_preset(str(event.value))
            self._fill()
            self._apply_recipe()
            self._refresh_side()

    # -- the side panel --------------------------------------------------------------------

    def _refresh_side(self) -> None:
        wizard = self.wizard
        valid = not self.invalid
        self.tunedeck.set_step_done("hparams", valid and wizard.n_train is not None)
        self._model_note()
        self._auto_notes()
        estimate = self.query_one("#hp-estimate", Static)
        warnings = self.query_one("#hp-warnings", Static)
        if not valid:
            fields = ", ".join(sorted(self.invalid))
            estimate.update(Content(f"✗ Fix the field(s) marked ✗ first: {fields}"))
            warnings.update("")
        else:
            estimate.update(Content("\n".join(self._estimate_lines())))
            found = config_warnings(
                wizard.run_config(),
                wizard.n_train,
                device=self.device[0],  # type: ignore[arg-type]
                model_config=self._model_config(),
            )
            found += [f"chat template: {f.message}" for f in self._template_findings()]
            text = "\n".join(f"! {w}" for w in found) or "✓ no warnings for this config"
            warnings.update(Content(text))
        self.query_one("#hp-recipe", Static).update(Content(self._recipe_text()))
        self.query_one("#hp-data", Static).update(Content(_data_text(wizard.data_config())))

    def _model_config(self) -> dict[str, Any] | None:
        """The model's config.json as `read_model_config` last found it; None until it is
        on disk (looked for again each time: preparing the model, e.g. the token survey
        converting the embedded one, writes it)."""
        return self.model_configs.get(self.wizard.config.model)

    @work(thread=True, exclusive=True, group="model-config", exit_on_error=False)
    def read_model_config(self, model: str) -> None:
        models: ModelsBackend = self.backend
        try:
            config = models.model_config(model)
        except ConfigError:
            config = None
        self.app.call_from_thread(self._model_config_read, model, config)

    def _model_config_read(self, model: str, config: dict[str, Any] | None) -> None:
        """Apply the recipe again once the model's config.json appears: the learning rate
        follows the model's width, which is unknown until the model is prepared."""
        self.model_configs[model] = config
        if config is not None and model == self.wizard.config.model and self.sized_for != model:
            self._apply_recipe()
            self._refresh_side()

    def _size_when_model_appears(self) -> None:
        if self._model_config() is None:
            self.read_model_config(self.wizard.config.model)

    def _estimate_lines(self) -> list[str]:
        wizard = self.wizard
        device, free = self.device
        return estimate_lines(
            wizard.run_config(),
            self._model_config(),
            wizard.n_train or 0,
            wizard.token_figures(),
            device,  # type: ignore[arg-type]
            free,
            n_val=wizard.split_result.val_count if wizard.split_result else None,
            flops_per_s=self.flops_per_s,
            prepare_hint="m: Models, p: prepare",
        )

    def _model_note(self) -> None:
        model = self.wizard.config.model
        if model in self.models:
            text = f"{model}: {self.models[model].status}"
        elif Path(model).expanduser().exists():
            text = f"{display_path(model)}: local model"
        else:
            text = f"✗ {model}: not found offline (a hub id needs network)"
        note = self.query_one("#hp-model-note", Static)
        note.update(Content(f"{text}  ·  preset {self.wizard.preset}: "
                            f"{PRESET_DESCRIPTIONS[self.wizard.preset]}"))  # fmt: skip

    def _recipe_text(self) -> str:
        """Each value the recipe chose, with its reason; what the user set is theirs."""
        reasons = self.wizard.reasons()
        if not reasons:
            return ""
        cfg = self.wizard.config
        lines = ["Why (chosen for this data and model; edit a field to override it)"]
        for name, reason in reasons.items():
            value = getattr(cfg, name)
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            lines.append(f"• {name} = {shown}: {reason}")
        return "\n".join(lines)

    def _auto_notes(self) -> None:
        form = self.query_one(ConfigForm)
        chosen = self.wizard.reasons()
        for name in AUTO_FIELDS:
            if name in form.widgets:
                form.show_note(name, "auto → why" if name in chosen else "")
        tokens = self.wizard.tokens
        if tokens is not None and tokens.lengths:
            suggested = suggest_max_seq_len(list(tokens.lengths.values()))
            form.show_note("max_seq_len", f"suggested {suggested} (p99 of the data, rounded)")

    # -- save / load -----------------------------------------------------------------------

    def action_save(self) -> None:
        if self.invalid:
            self.notify("Fix the fields marked ✗ before saving.", severity="warning")
            return
        self.app.push_screen(
            PromptDialog("Save the run config", "Save as (TOML):", "tunedeck-run.toml",
                         suffixes=(".toml",)),
            self._save,
        )  # fmt: skip

    def _save(self, target: str | None) -> None:
        if not target:
            return
        path = Path(target).expanduser()
        try:
            cfg = self.wizard.run_config()
        except ConfigError as exc:
            self._file_failed(exc, "Cannot save the config")
            return
        self.save(cfg, path)

    @work(thread=True, exclusive=True, group="file", exit_on_error=False)
    def save(self, cfg: TrainConfig, path: Path) -> None:
        configs: ConfigBackend = self.backend
        try:
            configs.save_config(cfg, path)
        except (ConfigError, OSError) as exc:
            self.app.call_from_thread(self._file_failed, exc, "Cannot save the config")
            return
        done = f"Saved {display_path(path)} (`tunedeck train {path.name}` runs it)"
        self.app.call_from_thread(self.notify, done)

    def _file_failed(self, exc: Exception, title: str) -> None:
        self.app.push_screen(ErrorDialog.of(exc, title))

    def action_load(self) -> None:
        self.app.push_screen(
            FileBrowserDialog("Load a run config", Path.cwd(), (".toml",)), self._load
        )

    def _load(self, path: Path | None) -> None:
        if path is not None:
            self.load(path)

    @work(thread=True, exclusive=True, group="file", exit_on_error=False)
    def load(self, path: Path) -> None:
        configs: ConfigBackend = self.backend
        try:
            cfg = configs.load_config(path)
        except ConfigError as exc:
            self.app.call_from_thread(self._file_failed, exc, "Cannot load the config")
            return
        self.app.call_from_thread(self._apply_loaded, cfg)
        done = f"Loaded {display_path(path)}; its data section is left to steps 1-2"
        self.app.call_from_thread(self.notify, done)

    def _apply_loaded(self, cfg: TrainConfig) -> None:
        self.wizard.config = with_overrides(cfg, data=DataConfig())
        self.wizard.model = cfg.model
        self.wizard.edited.update(AUTO_FIELDS)  # the file's intervals are the user's
        self._fill()
        self._refresh_side()

    def _template_findings(self) -> list[Any]:
        """What the token survey found about the model's chat template (lint's findings):
        a template that refuses the data stops training; one without a system turn gets
        the system text folded into the first user turn."""
        tokens = self.wizard.tokens
        if tokens is None or tokens.model != self.wizard.config.model:
            return []
        return [f for f in tokens.report.findings if f.code in TEMPLATE_CODES]

    def leave_blocker(self) -> str | None:
        if self.invalid:
            return "fix the field(s) marked ✗: " + ", ".join(sorted(self.invalid))
        refused = [f for f in self._template_findings() if f.code == "template-error"]
        if refused:
            return f"the model's chat template cannot train on this data: {refused[0].message}"
        try:
            self.wizard.run_config().validate_for_run()
        except ConfigError as exc:
            return exc.message
        return None


def _data_text(data: DataConfig) -> str:
    if data.val is not None:
        where = f"data.train = {display_path(str(data.train))}\ndata.val = {display_path(data.val)}"
    else:
        where = (
            f"data.source = {display_path(str(data.source))}\n"
            f"data.val_fraction = {data.val_fraction:g} · data.split_seed = {data.split_seed}"
        )
    return f"Data (from steps 1 and 2)\n{where}\ndata.format = {data.format or 'detected'}"
