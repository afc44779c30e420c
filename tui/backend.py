"""What the TUI talks to: the engine as a few protocols, one per domain.

Screens, widgets and the app type against these protocols, never against the class that
implements them: `tui.backend_engine.EngineBackend` calls the engine, tests hand the app a
`FakeBackend` (tests/tui/conftest.py). Each screen names the domain protocol(s) it uses
where it calls them, so what a screen may ask of the engine is written down.

Threads: every method may block (file reads, child processes, nvidia-smi), so the app calls
them only from worker threads, never on the UI thread (tests/tui/test_backend_threads.py
checks it). The one exception is `Backend.shutdown`, which only signals processes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engine.data.sources import ALL_ROWS, DataReading
from engine.eval.store import VALIDATION

if TYPE_CHECKING:
    from engine.config.build import TrainConfig
    from engine.core.control import Action
    from engine.data.formats import Example, LoadedDataset
    from engine.data.lint.linter import FixResult, LintReport
    from engine.data.split import SplitResult
    from engine.eval.options import EvalOptions
    from engine.eval.primary import PrimaryOptions
    from engine.eval.review import AbPair, AbStats, EvalTable
    from engine.export.exporter import ExportKind, ExportResult
    from engine.export.gguf.options import Quant
    from engine.loop.grow import GrowResult
    from engine.model.resolve import ModelInfo
    from engine.playground.server import PlaygroundTarget
    from engine.runs.admin import Deletion
    from engine.runs.compare import Comparison
    from engine.runs.outcome import Outcome
    from engine.runs.store import RunInfo
    from tui.playground_client import PlaygroundClient
    from tui.token_survey import TokenSurvey

ProgressFn = Callable[[str, float], None]
"""Receives a stage description and the fraction done (0..1)."""


class DataBackend(Protocol):
    """Steps 1 and 2: the dataset file, its lint, its token counts and its split."""

    def lint(
        self, path: Path, progress: Callable[[float], None], reading: DataReading = ALL_ROWS
    ) -> LintReport:
        """Lint without a tokenizer (structure, duplicates, labels). `path` may be a hub
        dataset id; `reading` says how many rows and which columns."""
        ...

    def load_dataset(self, path: Path, reading: DataReading = ALL_ROWS) -> LoadedDataset:
        """Parse a dataset file (or hub dataset) into examples."""
        ...

    def read_source_line(self, path: Path, line: int) -> str | None:
        """The text of one line of a JSONL file (to show a record that did not parse)."""
        ...

    def survey_tokens(
        self,
        path: Path,
        model: str,
        max_seq_len: int,
        progress: ProgressFn,
        reading: DataReading = ALL_ROWS,
    ) -> TokenSurvey:
        """Lint with the model's tokenizer and count every example's tokens."""
        ...

    def write_cleaned_copy(self, path: Path, out: Path) -> FixResult:
        """A copy without error records and exact duplicates; the input is never modified."""
        ...

    def preview_split(
        self,
        path: Path,
        val_fraction: float,
        seed: int,
        val_file: Path | None,
        reading: DataReading = ALL_ROWS,
    ) -> SplitResult:
        """The split a run will make of the data (nothing is kept)."""
        ...


class ModelsBackend(Protocol):
    """The models this machine has, and the machine they would train on."""

    def list_models(self) -> list[ModelInfo]:
        """Models available offline."""
        ...

    def prepare_model(self, name: str, progress: ProgressFn) -> Path:
        """Convert / resolve a model for training; its local directory."""
        ...

    def model_config(self, model: str) -> dict[str, Any] | None:
        """The model's config.json when it is on disk already (None: not yet)."""
        ...

    def device(self) -> tuple[str, int | None]:
        """("cuda", free bytes) when an NVIDIA GPU answers, else ("cpu", None)."""
        ...

    def throughput(self, device: str) -> float | None:
        """FLOP/s the time estimate assumes (None: the engine's default for the device)."""
        ...


class ConfigBackend(Protocol):
    """Run configs as TOML files."""

    def save_config(self, cfg: TrainConfig, path: Path) -> None:
        """Write the config as commented TOML."""
        ...

    def load_config(self, path: Path) -> TrainConfig:
        """Read a TOML config (raises ConfigError with the line at fault)."""
        ...


class RunsBackend(Protocol):
    """Training runs: start them, follow their events and log, control, compare, delete."""

    def start_run(self, cfg: TrainConfig, reasons: Mapping[str, str] | None = None) -> RunInfo:
        """Create the run directory and start its detached worker; returns at once.

        `reasons`: why the wizard's recipe chose some values (written into config.toml).
        """
        ...

    def create_run(self, cfg: TrainConfig, reasons: Mapping[str, str] | None = None) -> Path:
        """Create the run directory (config, data split) without starting its worker."""
        ...

    def same_data_and_model(self, run_dir: Path, cfg: TrainConfig) -> bool:
        """True when `cfg` trains the run's model on the run's split (its baseline holds)."""
        ...

    def start_created_run(
        self, run_dir: Path, cfg: TrainConfig, reasons: Mapping[str, str] | None = None
    ) -> RunInfo:
        """Start the worker of a created, never started run with `cfg`'s hyperparameters."""
        ...

    def list_runs(self) -> list[RunInfo]:
        """All runs, newest first."""
        ...

    def run_info(self, run_dir: Path) -> RunInfo:
        """Status and effective state of a run (a dead worker shows as failed)."""
        ...

    def run_config(self, run_dir: Path) -> TrainConfig:
        """The frozen config a run was started with."""
        ...

    def read_events(self, run_dir: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
        """Complete events from `offset` on, and the offset to continue from."""
        ...

    def read_log(self, run_dir: Path, offset: int) -> tuple[list[str], int]:
        """New complete lines of the worker's log from `offset` (0: its recent tail)."""
        ...

    def request(self, run_dir: Path, action: Action) -> None:
        """Ask the run's worker to stop, pause, checkpoint or evaluate at its next step."""
        ...

    def resume_run(self, run_dir: Path) -> None:
        """Start a new worker that continues from the newest checkpoint."""
        ...

    def check_deletable(self, run_dir: Path) -> Deletion:
        """What deleting the run would remove; raises RunStateError while it trains."""
        ...

    def delete_run(self, run_dir: Path) -> Deletion:
        """Remove a finished run's directory (refused while it trains or is evaluated)."""
        ...

    def compare_runs(self, run_dirs: list[Path]) -> Comparison:
        """Loss curves, config differences and eval summaries of two or more runs."""
        ...

    def shared_test_sets(self, run_dirs: list[Path]) -> list[str]:
        """The test sets every run's fine-tuned model was scored on (no prompt pool)."""
        ...

    def compare_outcome(self, run_dirs: list[Path], eval_set: str) -> Outcome:
        """The runs' outcome on one shared test set: scores with intervals, paired tests.

        Raises:
            TunedeckError: a run is not scored on the set (any more).
        """
        ...


class EvalBackend(Protocol):
    """Detached evaluations of a run: start, stop, watch, and their settings."""

    def start_eval(self, run_dir: Path, options: EvalOptions | None = None) -> int:
        """Start the detached evaluation (default options: every system); its pid.

        Raises:
            EvalRunningError, NoValidationDataError, NoAdapterError: nothing started.
        """
        ...

    def stop_eval(self, run_dir: Path) -> bool:
        """Ask the running evaluation to stop after its current batch (False: none runs)."""
        ...

    def start_baseline(self, run_dir: Path) -> int:
        """Start the detached evaluation of the base systems only (before training); its pid."""
        ...

    def eval_running(self, run_dir: Path) -> bool:
        """True while some process evaluates the run."""
        ...

    def eval_adapters(self, run_dir: Path) -> tuple[bool, list[int]]:
        """Whether the run has its kept adapter yet, and the steps of saved checkpoints."""
        ...

    def load_eval_options(self, run_dir: Path) -> EvalOptions | None:
        """The evaluation options last chosen for the run (None: none saved)."""
        ...

    def primary_options(self, run_dir: Path) -> PrimaryOptions:
        """The run's primary metric now, the data's decision, and the label keys offered."""
        ...

    def save_eval_options(self, run_dir: Path, options: EvalOptions) -> None:
        """Keep the options for the run's next evaluation (the key's env var name only)."""
        ...

    def eval_rows_kept(
        self, run_dir: Path, systems: list[str], examples: int | None, eval_set: str | None = None
    ) -> int:
        """Generated rows of `systems` stored for the first `examples` examples."""
        ...


class ReviewBackend(Protocol):
    """An evaluation's results and their human review (marks, notes, blind A/B).

    Calls without an `eval_set` act on the run's chosen eval set: the test file of its
    saved eval settings (the one the Evaluate step shows), else the validation split.
    """

    def chosen_eval_set(self, run_dir: Path) -> str:
        """The eval set of the run's saved eval settings (else the validation split)."""
        ...

    def load_eval_table(self, run_dir: Path, eval_set: str = VALIDATION) -> EvalTable:
        """One eval set's stored rows, marks, judge verdicts and summary."""
        ...

    def review_summary(
        self, run_dir: Path, against: str, eval_set: str | None = None
    ) -> dict[str, Any]:
        """Counts of review marks and the blind A/B statistics."""
        ...

    def set_mark(
        self,
        run_dir: Path,
        index: int,
        mark: Any = "keep",
        note: str | None = None,
        eval_set: str | None = None,
    ) -> dict[str, Any]:
        """Mark an example good / bad / skip (None clears; "keep" leaves it) and/or set its
        note; saved at once."""
        ...

    def ab_stats(self, run_dir: Path, against: str, eval_set: str | None = None) -> AbStats:
        """The fine-tuned model's blind A/B win rate against `against`."""
        ...

    def record_preference(
        self, run_dir: Path, pair: AbPair, preferred: str, against: str, eval_set: str | None = None
    ) -> AbStats:
        """Save one blind A/B preference; the updated win rate against `against`."""
        ...

    def export_review(self, run_dir: Path, eval_set: str | None = None) -> Path:
        """Write the review as CSV in the eval set's directory; its path."""
        ...

    def set_verdict(
        self,
        run_dir: Path,
        index: int,
        verdict: str | None,
        answer: str | None = None,
        eval_set: str | None = None,
    ) -> dict[str, Any]:
        """Accept the fine-tuned answer or correct it (None clears); saved at once."""
        ...

    def set_reference(
        self, run_dir: Path, index: int, reference: str | None, eval_set: str | None = None
    ) -> dict[str, Any]:
        """Record the right reference of an example whose own is wrong; saved at once."""
        ...

    def training_answers(self, run_dir: Path) -> list[str]:
        """The run's training answers (what a correction is checked against)."""
        ...

    def grow_data(self, run_dir: Path, eval_set: str, out: Path) -> GrowResult:
        """Write the run's training data + the set's accepted and corrected answers to `out`
        (engine.loop.grow); refuses held-out examples and an existing `out`."""
        ...

    def like_config(self, run_dir: Path, data: Path) -> tuple[TrainConfig, bool]:
        """The run's config on new data, and whether it keeps the run's split."""
        ...


class PlaygroundBackend(Protocol):
    """The playground's model process."""

    def playground_target(
        self, run_dir: Path | None, model: str, examples: Sequence[Example]
    ) -> PlaygroundTarget:
        """What the playground loads: `run_dir`'s model and adapter; without a run, the
        newest run that has an adapter; without any, `model` alone (system prompt from
        `examples`)."""
        ...

    def open_playground(self, target: PlaygroundTarget) -> PlaygroundClient:
        """Start the model process for `target` (it loads in the background)."""
        ...


class ExportBackend(Protocol):
    """Exports of a trained run."""

    def has_adapter(self, run_dir: Path) -> bool:
        """True once the run has saved its adapter (at its first validation)."""
        ...

    def export_run(
        self, run_dir: Path, out: Path, kind: ExportKind, quant: Quant, progress: ProgressFn
    ) -> ExportResult:
        """Export the adapter, a merged model or GGUF, card, report and bundle.

        Raises:
            TunedeckError: the export failed (no adapter, `out` exists, too little space,
                an architecture GGUF export does not support).
        """
        ...


class Backend(
    DataBackend,
    ModelsBackend,
    ConfigBackend,
    RunsBackend,
    EvalBackend,
    ReviewBackend,
    PlaygroundBackend,
    ExportBackend,
    Protocol,
):
    """Everything the app is handed: every domain, and the end of the session."""

    def shutdown(self) -> None:
        """Stop child processes still working for the TUI (never a training run).

        Called on the UI thread as the app quits: it only signals processes, so it must
        not block.
        """
        ...
