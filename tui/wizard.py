"""The wizard's shared state: what each step decided, read by the steps after it.

One `Wizard` lives on the app. Screens write what their step decides (the dataset, the
split, the hyperparameters, the run) and read what earlier steps decided when they are
shown again, so going back and changing the data carries forward.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.config import (
    DataConfig,
    TrainConfig,
    from_preset,
    suggest_intervals,
    with_overrides,
)
from engine.formats import LoadedDataset
from engine.lint import LintReport
from engine.split import SplitResult
from tui.token_survey import TokenSurvey

DEFAULT_PRESET = "balanced"
AUTO_FIELDS = ("eval_steps", "save_steps", "logging_steps")
"""Fields the wizard sets from the dataset size until the user edits them: the defaults
(evaluate every 20 steps) suit thousands of examples, and a small dataset would otherwise
see no validation loss before the end of the run."""


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
    run_dir: Path | None = None
    """The run the Train step shows (started here, or attached from the Runs list); the
    Baseline step may create it before training, without starting it."""
    baseline_skipped: bool = False
    """The user skipped the Baseline step: the Evaluate step then evaluates the fine-tuned
    model alone, and its table has no base comparison."""

    def __post_init__(self) -> None:
        self.config = from_preset(self.preset, model=self.model)

    @property
    def n_train(self) -> int | None:
        return self.split_result.train_count if self.split_result else None

    def data_config(self) -> DataConfig:
        """The data section as the Data and Split steps set it."""
        fmt = self.dataset.format if self.dataset else None
        if self.split.val_file is not None:
            return DataConfig(train=str(self.data_path), val=str(self.split.val_file), format=fmt)
        return DataConfig(
            source=str(self.data_path),
            val_fraction=self.split.val_fraction,
            split_seed=self.split.seed,
            format=fmt,
        )

    def run_config(self) -> TrainConfig:
        """The complete config a run starts from."""
        return with_overrides(self.config, data=self.data_config())

    def set_data(self, path: Path) -> None:
        """A new dataset: everything derived from the old one is stale."""
        self.data_path = path
        self.dataset = self.report = self.tokens = self.split_result = None

    def apply_suggestions(self) -> dict[str, int]:
        """Set the AUTO_FIELDS the user has not edited from the data; returns what changed."""
        if self.n_train is None:
            return {}
        suggested = suggest_intervals(self.config, self.n_train)
        changes = {
            name: value
            for name, value in suggested.items()
            if name not in self.edited and getattr(self.config, name) != value
        }
        if changes:
            self.config = with_overrides(self.config, **changes)
        return changes

    def use_preset(self, name: str) -> None:
        """Start the hyperparameters over from a preset, keeping the model and method."""
        self.preset = name
        self.config = from_preset(name, model=self.config.model, method=self.config.method)
        self.edited.clear()
        self.apply_suggestions()
