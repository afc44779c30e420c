"""`EngineBackend`: the backend protocols (tui.backend) implemented by calling the engine.

`run_app` builds one and hands it to the app. Everything here may block (file reads,
child processes), so screens call it from worker threads. Anything that needs torch or
transformers (model conversion, counting tokens with a model's tokenizer) runs in a child
process, so the TUI process never imports the training stack.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from engine.config import build as engine_config
from engine.config.build import TrainConfig
from engine.config.estimate import detect_device
from engine.config.recipe import local_model_config
from engine.core.control import Action
from engine.core.errors import TunedeckError
from engine.core.events import EVENTS_FILE, read_events
from engine.core.files import read_complete_lines
from engine.data.formats import Example, LoadedDataset, load_examples
from engine.data.lint.linter import FixResult, LintReport, lint_file, write_cleaned_copy
from engine.data.sources import ALL_ROWS, DataReading
from engine.data.split import SplitResult, split_dataset
from engine.eval import launch as engine_evaluate
from engine.eval import plan as eval_plan
from engine.eval import review as engine_review
from engine.eval import review_marks
from engine.eval.baseline import BASELINE_OPTIONS
from engine.eval.options import EvalOptions, load_options, save_options
from engine.eval.primary import PrimaryOptions, primary_options
from engine.eval.review import AbPair, AbStats, EvalTable
from engine.eval.sets import read_split, set_name_for
from engine.eval.store import VALIDATION, stored_rows
from engine.export import exporter as engine_export
from engine.export.gguf.options import Quant
from engine.loop.grow import GrowResult, grow_set
from engine.loop.like import like_config
from engine.model.resolve import (
    DEFAULT_MODEL,
    ModelInfo,
    list_models,
)
from engine.playground.server import (
    ADAPTER_DIR,
    PlaygroundTarget,
    default_system_prompt,
    has_safe_adapter,
    target_for_run,
)
from engine.runs import admin as run_admin
from engine.runs import store as engine_runs
from engine.runs.admin import Deletion
from engine.runs.compare import Comparison, compare_runs
from engine.runs.outcome import Outcome, outcome_on_set, shared_test_sets
from engine.runs.store import LOG_FILE, RunInfo
from tui.backend import ProgressFn
from tui.playground_client import PlaygroundClient
from tui.token_survey import TokenSurvey, survey_from_json

LOG_TAIL_BYTES = 64 * 1024
"""How much of worker.log a viewer reads when it attaches: the tail is what matters."""


class EngineBackend:
    """The engine as the TUI sees it: implements `tui.backend.Backend`."""

    default_model = DEFAULT_MODEL
    """The model the wizard starts from when none is given (`run_app`)."""

    def __init__(self) -> None:
        self._children: set[subprocess.Popen[str]] = set()

    def shutdown(self) -> None:
        """Stop child processes still working for the TUI (never a training run)."""
        for process in list(self._children):
            process.kill()

    # -- data ------------------------------------------------------------------------------

    def lint(
        self, path: Path, progress: Callable[[float], None], reading: DataReading = ALL_ROWS
    ) -> LintReport:
        """Lint without a tokenizer (structure, duplicates, labels): fast, in-process."""
        return lint_file(
            path,
            progress=progress,
            tokens_note="counting tokens separately",
            limit=reading.limit,
            columns=reading.columns,
        )

    def load_dataset(self, path: Path, reading: DataReading = ALL_ROWS) -> LoadedDataset:
        """Parse a dataset file (or hub dataset) into examples."""
        return load_examples(path, limit=reading.limit, columns=reading.columns)

    def read_source_line(self, path: Path, line: int) -> str | None:
        """The text of one line of a JSONL file (to show a record that did not parse)."""
        if path.suffix.lower() not in (".jsonl", ".ndjson") or line < 1:
            return None
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = next(islice(handle, line - 1, None), None)
        return None if text is None else text.rstrip("\r\n")

    def survey_tokens(
        self,
        path: Path,
        model: str,
        max_seq_len: int,
        progress: ProgressFn,
        reading: DataReading = ALL_ROWS,
    ) -> TokenSurvey:
        """Lint with the model's tokenizer and count every example's tokens (child process)."""
        command = [sys.executable, "-m", "tui.token_survey", str(path), model, str(max_seq_len)]
        command += [str(reading.limit or 0), reading.columns or ""]
        event = self._run_child(command, progress, f"counting tokens with {model}")
        return survey_from_json(event)

    def write_cleaned_copy(self, path: Path, out: Path) -> FixResult:
        """A copy without error records and exact duplicates; the input is never modified."""
        return write_cleaned_copy(path, out)

    def preview_split(
        self,
        path: Path,
        val_fraction: float,
        seed: int,
        val_file: Path | None,
        reading: DataReading = ALL_ROWS,
    ) -> SplitResult:
        """The split a run will make (same engine call, same arguments), into a temp dir."""
        with tempfile.TemporaryDirectory(prefix="tunedeck-split-") as tmp:
            return split_dataset(
                path,
                Path(tmp),
                val_fraction=val_fraction,
                seed=seed,
                val_file=val_file,
                limit=reading.limit,
                columns=reading.columns,
            )

    # -- models and config -----------------------------------------------------------------

    def list_models(self) -> list[ModelInfo]:
        """Models available offline (cheap: no torch)."""
        return list_models()

    def prepare_model(self, name: str, progress: ProgressFn) -> Path:
        """Convert / resolve a model in a child process, reporting its progress lines."""
        command = [sys.executable, "-m", "tui.cli", "models", "--prepare", name, "--json"]
        event = self._run_child(command, progress, f"preparing {name}", result_type="ready")
        return Path(event["path"])

    def model_config(self, model: str) -> dict[str, Any] | None:
        """The model's config.json when it is on disk already (no conversion, no network)."""
        return local_model_config(model)

    def device(self) -> tuple[str, int | None]:
        """("cuda", free bytes) when an NVIDIA GPU answers nvidia-smi, else ("cpu", None)."""
        return detect_device()

    def throughput(self, device: str) -> float | None:
        """FLOP/s the time estimate assumes (None: the engine's default for the device)."""
        return None

    def save_config(self, cfg: TrainConfig, path: Path) -> None:
        """Write the config as commented TOML."""
        engine_config.save_config(cfg, path)

    def load_config(self, path: Path) -> TrainConfig:
        """Read a TOML config (raises ConfigError with the line at fault)."""
        return engine_config.load_config(path)

    # -- runs ------------------------------------------------------------------------------

    def start_run(self, cfg: TrainConfig, reasons: Mapping[str, str] | None = None) -> RunInfo:
        """Create the run directory and start its detached worker; returns at once.

        `reasons`: why the wizard's recipe chose some values (written into config.toml).
        """
        return engine_runs.start_run(cfg, reasons=reasons)

    def create_run(self, cfg: TrainConfig, reasons: Mapping[str, str] | None = None) -> Path:
        """Create the run directory (config, data split) without starting its worker."""
        return engine_runs.create_run(cfg, reasons=reasons)

    def same_data_and_model(self, run_dir: Path, cfg: TrainConfig) -> bool:
        """True when `cfg` trains the run's model on the run's split (its baseline holds)."""
        return engine_runs.same_data_and_model(run_dir, cfg)

    def start_created_run(
        self, run_dir: Path, cfg: TrainConfig, reasons: Mapping[str, str] | None = None
    ) -> RunInfo:
        """Start the worker of a created, never started run with `cfg`'s hyperparameters."""
        return engine_runs.start_created_run(run_dir, cfg, reasons)

    def list_runs(self) -> list[RunInfo]:
        """All runs, newest first."""
        return engine_runs.list_runs()

    def run_info(self, run_dir: Path) -> RunInfo:
        """Status and effective state of a run (a dead worker shows as failed)."""
        return engine_runs.run_info(run_dir)

    def run_config(self, run_dir: Path) -> TrainConfig:
        """The frozen config a run was started with."""
        return engine_config.load_config(run_dir / engine_runs.CONFIG_FILE)

    def find_run(self, ref: str) -> Path:
        """A run directory by id, unique prefix or path."""
        return engine_runs.find_run(ref)

    def read_events(self, run_dir: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
        """Complete events from byte `offset` on, and the offset to continue from."""
        return read_events(run_dir / EVENTS_FILE, offset)

    def read_log(self, run_dir: Path, offset: int) -> tuple[list[str], int]:
        """New complete lines of worker.log from `offset` (0: start from its recent tail)."""
        data, next_offset = read_complete_lines(run_dir / LOG_FILE, offset, LOG_TAIL_BYTES)
        return data.decode("utf-8", errors="replace").splitlines(), next_offset

    def request(self, run_dir: Path, action: Action) -> None:
        """Ask the run's worker to stop, pause, checkpoint or evaluate at its next step."""
        engine_runs.request(run_dir, action)

    def resume_run(self, run_dir: Path) -> None:
        """Start a new worker that continues from the newest checkpoint."""
        engine_runs.resume_run(run_dir)

    def check_deletable(self, run_dir: Path) -> Deletion:
        """What deleting the run would remove; raises RunStateError while it trains."""
        return run_admin.check_deletable(run_dir)

    def delete_run(self, run_dir: Path) -> Deletion:
        """Remove a finished run's directory (refused while it trains or is evaluated)."""
        return run_admin.delete_run(run_dir)

    def compare_runs(self, run_dirs: list[Path]) -> Comparison:
        """Loss curves, config differences and eval summaries of two or more runs."""
        return compare_runs(run_dirs)

    def shared_test_sets(self, run_dirs: list[Path]) -> list[str]:
        """The test sets every run's fine-tuned model was scored on (no prompt pool)."""
        return shared_test_sets(run_dirs)

    def compare_outcome(self, run_dirs: list[Path], eval_set: str) -> Outcome:
        """The runs' outcome on one shared test set: scores with intervals, paired tests."""
        return outcome_on_set(run_dirs, eval_set)

    def _run_child(
        self, command: list[str], progress: ProgressFn, what: str, result_type: str = "result"
    ) -> dict[str, Any]:
        """Run a child that prints JSON lines; relay `progress` lines, return its result.

        Raises:
            TunedeckError: the child failed; its `error:` / `hint:` stderr lines become ours.
        """
        # stderr goes to a file: a chatty child (progress bars) must not fill a pipe
        # nobody reads while we read stdout, or both would wait forever.
        with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as stderr:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
            self._children.add(process)
            try:
                result = _read_child(process, progress, result_type)
            finally:
                self._children.discard(process)
            if result is None:
                stderr.seek(0)
                message, hint = _error_from_stderr(stderr.read())
                raise TunedeckError(message or f"{what} failed", hint=hint)
        return result

    # -- playground ------------------------------------------------------------------------

    def playground_target(
        self, run_dir: Path | None, model: str, examples: Sequence[Example]
    ) -> PlaygroundTarget:
        """What the playground loads (see `playground_target`)."""
        return playground_target(run_dir, model, examples, self.list_runs)

    def open_playground(self, target: PlaygroundTarget) -> PlaygroundClient:
        """Start the playground's model process for `target` (it loads in the background)."""
        client = PlaygroundClient(target.argv())
        client.start()
        assert client.process is not None
        self._children = {p for p in self._children if p.poll() is None}
        self._children.add(client.process)  # shutdown() kills it with the others
        return client

    # -- evaluation and review -------------------------------------------------------------

    def start_eval(self, run_dir: Path, options: EvalOptions | None = None) -> int:
        """Start the detached evaluation (default options: every system); its pid.

        Raises:
            EvalRunningError, NoValidationDataError, NoAdapterError: nothing started.
        """
        return engine_evaluate.start_eval(run_dir, options or EvalOptions())

    def stop_eval(self, run_dir: Path) -> bool:
        """Ask the running evaluation to stop after its current batch (False: none runs)."""
        return engine_evaluate.stop_eval(run_dir)

    def start_baseline(self, run_dir: Path) -> int:
        """Start the detached evaluation of the base systems only (before training); its pid."""
        return engine_evaluate.start_eval(run_dir, BASELINE_OPTIONS)

    def eval_running(self, run_dir: Path) -> bool:
        """True while some process evaluates the run."""
        return engine_evaluate.eval_running(run_dir)

    def eval_adapters(self, run_dir: Path) -> tuple[bool, list[int]]:
        """Whether the run has its kept adapter yet, and the steps of saved checkpoints."""
        return self.has_adapter(run_dir), sorted(eval_plan.checkpoint_adapters(run_dir))

    def load_eval_options(self, run_dir: Path) -> EvalOptions | None:
        """The evaluation options last chosen for the run (None: none saved)."""
        return load_options(run_dir)

    def primary_options(self, run_dir: Path) -> PrimaryOptions:
        """The run's primary metric now, the data's decision, and the label keys offered."""
        return primary_options(run_dir)

    def save_eval_options(self, run_dir: Path, options: EvalOptions) -> None:
        """Keep the options for the run's next evaluation (the key's env var name only)."""
        save_options(run_dir, options)

    def eval_rows_kept(
        self, run_dir: Path, systems: list[str], examples: int | None, eval_set: str | None = None
    ) -> int:
        """Generated rows of `systems` stored for the first `examples` examples."""
        return stored_rows(run_dir, systems, examples, eval_set or self.chosen_eval_set(run_dir))

    # Review calls without an `eval_set` act on the run's chosen eval set: the test file
    # of its saved eval settings (the one the Evaluate step shows), else the validation split.

    def chosen_eval_set(self, run_dir: Path) -> str:
        """The eval set of the run's saved eval settings; VALIDATION when they name none,
        or a test file that is unreadable and was never evaluated in the run."""
        options = load_options(run_dir)
        try:
            return set_name_for(run_dir, options.data if options else None)
        except TunedeckError:
            return VALIDATION

    def load_eval_table(self, run_dir: Path, eval_set: str = VALIDATION) -> EvalTable:
        """One eval set's stored rows, marks, judge verdicts and summary."""
        return engine_review.load_table(run_dir, eval_set)

    def review_summary(
        self, run_dir: Path, against: str, eval_set: str | None = None
    ) -> dict[str, Any]:
        """Counts of review marks and the blind A/B statistics."""
        return engine_review.review_summary(
            run_dir, against, eval_set or self.chosen_eval_set(run_dir)
        )

    def set_verdict(
        self,
        run_dir: Path,
        index: int,
        verdict: str | None,
        answer: str | None = None,
        eval_set: str | None = None,
    ) -> dict[str, Any]:
        """Accept the fine-tuned answer or correct it (None clears); saved at once."""
        where = eval_set or self.chosen_eval_set(run_dir)
        return review_marks.set_verdict(run_dir, index, verdict, answer, where)  # type: ignore[arg-type]

    def set_reference(
        self, run_dir: Path, index: int, reference: str | None, eval_set: str | None = None
    ) -> dict[str, Any]:
        """Record the right reference of an example whose own is wrong; saved at once."""
        where = eval_set or self.chosen_eval_set(run_dir)
        return review_marks.set_reference(run_dir, index, reference, where)

    def training_answers(self, run_dir: Path) -> list[str]:
        """The run's training answers (what a correction is checked against)."""
        return [example.answer for example in read_split(run_dir, "train")]

    def grow_data(self, run_dir: Path, eval_set: str, out: Path) -> GrowResult:
        """Write the run's training data + the set's accepted and corrected answers to `out`
        (engine.loop.grow); refuses held-out examples and an existing `out`."""
        return grow_set(run_dir, eval_set, out)

    def like_config(self, run_dir: Path, data: Path) -> tuple[TrainConfig, bool]:
        """The run's config on new data, and whether it keeps the run's split."""
        return like_config(run_dir, data)

    def set_mark(
        self,
        run_dir: Path,
        index: int,
        mark: Any = "keep",
        note: str | None = None,
        eval_set: str | None = None,
    ) -> dict[str, Any]:
        """Mark an example good / bad / skip (None clears) and/or set its note; saved at once."""
        where = eval_set or self.chosen_eval_set(run_dir)
        if mark == "keep":
            return engine_review.set_mark(run_dir, index, note=note, eval_set=where)
        return engine_review.set_mark(run_dir, index, mark, note=note, eval_set=where)

    def ab_stats(self, run_dir: Path, against: str, eval_set: str | None = None) -> AbStats:
        """The fine-tuned model's blind A/B win rate against `against`."""
        return engine_review.ab_stats(run_dir, against, eval_set or self.chosen_eval_set(run_dir))

    def record_preference(
        self, run_dir: Path, pair: AbPair, preferred: str, against: str, eval_set: str | None = None
    ) -> AbStats:
        """Save one blind A/B preference; the updated win rate against `against`."""
        where = eval_set or self.chosen_eval_set(run_dir)
        engine_review.record_preference(run_dir, pair, preferred, where)  # type: ignore[arg-type]
        return engine_review.ab_stats(run_dir, against, where)

    def export_review(self, run_dir: Path, eval_set: str | None = None) -> Path:
        """Write the review as CSV in the eval set's directory; its path."""
        where = eval_set or self.chosen_eval_set(run_dir)
        return engine_review.export_review(run_dir, fmt="csv", eval_set=where)

    # -- export ------------------------------------------------------------------------------

    def has_adapter(self, run_dir: Path) -> bool:
        """True once the run has saved its adapter (at its first validation)."""
        return eval_plan.has_adapter(run_dir / eval_plan.ADAPTER_DIR)

    def export_run(
        self,
        run_dir: Path,
        out: Path,
        kind: engine_export.ExportKind,
        quant: Quant,
        progress: ProgressFn,
    ) -> engine_export.ExportResult:
        """Export the adapter, a merged model or GGUF, card, report and bundle (child process).

        Raises:
            TunedeckError: the export failed (no adapter, `out` exists, too little space,
                an architecture GGUF export does not support).
        """
        flag = {"adapter": [], "merged": ["--merged"], "gguf": ["--gguf", "--quant", quant],
                "gguf-adapter": ["--gguf-adapter"]}[kind]  # fmt: skip
        command = [sys.executable, "-m", "tui.cli", "export", str(run_dir), "--out", str(out),
                   "--json", *flag]  # fmt: skip
        event = self._run_child(command, progress, f"exporting run {run_dir.name}")
        files = [str(name) for name in event["files"]]
        notes = tuple(str(note) for note in event.get("notes", []))
        return engine_export.ExportResult(
            Path(event["out"]), event["kind"], files, int(event["bytes"]), notes
        )


def playground_target(
    run_dir: Path | None,
    model: str,
    examples: Sequence[Example],
    list_runs: Callable[[], Sequence[RunInfo]],
) -> PlaygroundTarget:
    """What the playground loads: `run_dir`'s model and adapter; without a run, the newest
    of `list_runs()` that has an adapter; without any, `model` alone (system prompt from
    `examples`)."""
    if run_dir is None:
        runs = (info.dir for info in list_runs())
        run_dir = next((d for d in runs if has_safe_adapter(d / ADAPTER_DIR)), None)
    if run_dir is not None:
        return target_for_run(run_dir)
    return PlaygroundTarget(model, system=default_system_prompt(examples))


def _read_child(
    process: subprocess.Popen[str], progress: ProgressFn, result_type: str
) -> dict[str, Any] | None:
    """The child's result event (None if it failed), relaying its progress events."""
    assert process.stdout is not None
    result: dict[str, Any] | None = None
    for line in process.stdout:
        event = _parse_event(line)
        if event.get("type") == "progress":
            progress(str(event["stage"]), float(event["fraction"]))
        elif event.get("type") == result_type:
            result = event
    return result if process.wait() == 0 else None


def _parse_event(line: str) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return {}
    return event if isinstance(event, dict) else {}


def _error_from_stderr(stderr: str) -> tuple[str, str]:
    """Pick the `error:` and `hint:` lines out of a child's stderr."""
    message = hint = ""
    for line in stderr.splitlines():
        if line.startswith("error: "):
            message = line.removeprefix("error: ")
        elif line.startswith("hint: "):
            hint = line.removeprefix("hint: ")
    return message, hint
