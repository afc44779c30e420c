"""The wizard's shared state: what each step decided, read by the steps after it.

One `Wizard` lives on the app. Screens write what their step decides (the dataset, the
split, the hyperparameters, the run) and read what earlier steps decided when they are
shown again, so going back and changing the data carries forward.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.config.build import (
    PRESETS,
    DataConfig,
    TrainConfig,
    from_preset,
    with_overrides,
)
from engine.config.estimate_report import TokenFigures, token_figures
from engine.config.recipe import (
    RECIPE_FIELDS,
    Recipe,
    RecipeInputs,
    approximate_p95_tokens,
    choose_recipe,
    label_key,
)
from engine.data.formats import LoadedDataset
from engine.data.lint.linter import LintReport
from engine.data.sources import ALL_ROWS, DataReading
from engine.data.split import SplitResult
from tui.token_survey import TokenSurvey

DEFAULT_PRESET = "balanced"
AUTO_FIELDS = RECIPE_FIELDS
"""Fields the wizard chooses from the data, the model and the machine (`engine.config.recipe`)
until the user edits them: a fixed recipe gives small data too few optimizer steps to
learn, and a small model too low a learning rate."""


def _data_default(name: str) -> Any:
    """DataConfig's default for a field: one source of truth for split defaults."""
    return next(f.default for f in fields(DataConfig) if f.name == name)


@dataclass
class SplitChoice:
    """How the data is divided: a held-out fraction of one file, or a separate file."""

    val_fraction: float = field(default_factory=lambda: _data_default("val_fraction"))
    seed: int = field(default_factory=lambda: _data_default("split_seed"))
    val_file: Path | None = None


@dataclass
class Wizard:
    """Everything the steps have decided so far."""

    data_path: Path
    model: str
    reading: DataReading = ALL_ROWS
    """How `data_path` is read: its first N rows, columns mapped (the Data step's fields)."""
    dataset: LoadedDataset | None = None
    """The parsed examples of `data_path` (None until loaded)."""
    report: LintReport | None = None
    """Lint of `data_path`: without token checks first, then with them."""
    tokens: TokenSurvey | None = None
    """Token lengths with `model`'s tokenizer (None until counted, or if that failed)."""
    split: SplitChoice = field(default_factory=SplitChoice)
    split_result: SplitResult | None = None
    preset: str = DEFAULT_PRESET
    config: TrainConfig = field(init=False)
    """Hyperparameters; its data section is rebuilt from the Data and Split steps."""
    edited: set[str] = field(default_factory=set)
    """AUTO_FIELDS the user set by hand: the wizard leaves those alone."""
    recipe: Recipe | None = None
    """The recipe's latest choices, with their reasons (None until the split is known)."""
    run_dir: Path | None = None
    """The run the Train step shows (started here, or attached from the Runs list); the
    Baseline step may create it before training, without starting it."""
    baseline_skipped: bool = False
    """The user skipped the Baseline step: the Evaluate step then evaluates the fine-tuned
    model alone, and its table has no base comparison."""
    _label_key: tuple[LoadedDataset, str | None] | None = field(default=None, repr=False)
    """The dataset's class label key (`label_key`), computed once per dataset."""

    def __post_init__(self) -> None:
        self.config = from_preset(self.preset, model=self.model)

    @property
    def n_train(self) -> int | None:
        return self.split_result.train_count if self.split_result else None

    @property
    def n_val(self) -> int | None:
        return self.split_result.val_count if self.split_result else None

    def data_config(self) -> DataConfig:
        """The data section as the Data and Split steps set it."""
        fmt = self.dataset.format if self.dataset else None
        if self.reading.columns:
            fmt = None  # the mapping decides (prompt_completion)
        limit, columns = self.reading.limit, self.reading.columns
        if self.split.val_file is not None:
            val = str(self.split.val_file)
            return DataConfig(
                train=str(self.data_path), val=val, format=fmt, limit=limit, columns=columns
            )
        return DataConfig(
            source=str(self.data_path),
            val_fraction=self.split.val_fraction,
            split_seed=self.split.seed,
            format=fmt,
            limit=limit,
            columns=columns,
        )

    def run_config(self) -> TrainConfig:
        """The complete config a run starts from."""
        return with_overrides(self.config, data=self.data_config())

    def set_data(self, path: Path, reading: DataReading | None = None) -> None:
        """A new dataset (or a new way to read it): everything derived from the old one is
        stale. A new path keeps the row limit and drops the column mapping."""
        if reading is None:
            reading = DataReading(self.reading.limit) if path != self.data_path else self.reading
        self.data_path, self.reading = path, reading
        self.dataset = self.report = self.tokens = self.split_result = None

    def apply_suggestions(
        self,
        model_config: dict[str, Any] | None = None,
        device: str = "cpu",
        free_gpu_bytes: int | None = None,
    ) -> dict[str, Any]:
        """Choose the AUTO_FIELDS the user and the preset left alone; returns what changed.

        Args:
            model_config: the model's config.json when on disk (sizes the learning rate).
            device, free_gpu_bytes: where the run will train (decides LoRA or QLoRA).
        """
        if self.n_train is None:
            return {}
        inputs = RecipeInputs(
            n_train=self.n_train,
            n_val=self.n_val,
            p95_tokens=self._p95_tokens(),
            model_config=model_config,
            device="cuda" if device == "cuda" else "cpu",
            free_gpu_bytes=free_gpu_bytes,
            label_key=self.label_key(),
        )
        keep = self.edited | set(PRESETS[self.preset])
        before = self.config
        self.recipe = choose_recipe(before, inputs, keep)
        self.config = self.recipe.config
        return {
            name: getattr(self.config, name)
            for name in AUTO_FIELDS
            if getattr(self.config, name) != getattr(before, name)
        }

    def label_key(self) -> str | None:
        """The class label of the dataset's answers (as the run's recipe sees its split)."""
        if self.dataset is None:
            return None
        if self._label_key is None or self._label_key[0] is not self.dataset:
            self._label_key = (self.dataset, label_key(self.dataset.examples))
        return self._label_key[1]

    def token_figures(self) -> TokenFigures:
        """The examples' token lengths for the estimate: the survey's counts once they are
        in, a guess from the characters until then."""
        lengths = list(self.tokens.lengths.values()) if self.tokens is not None else []
        return token_figures(lengths, self.dataset.examples if self.dataset else [])

    def _p95_tokens(self) -> int | None:
        if self.tokens is not None and self.tokens.lengths:
            return self.tokens.percentile(0.95)
        return approximate_p95_tokens(self.dataset.examples) if self.dataset else None

    def reasons(self) -> dict[str, str]:
        """Why each value the recipe chose has it, for the fields it still holds."""
        if self.recipe is None:
            return {}
        return {c.field: c.reason for c in self.recipe.choices if c.field not in self.edited}

    def use_preset(self, name: str) -> None:
        """Start the hyperparameters over from a preset, keeping the model and method.

        The caller applies the recipe again (`apply_suggestions`) with what it knows of the
        model and the machine.
        """
        self.preset = name
        self.config = from_preset(name, model=self.config.model, method=self.config.method)
        self.edited &= {"method"}  # a method the user picked is still theirs
