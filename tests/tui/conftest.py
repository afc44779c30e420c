"""A fake backend for Pilot and snapshot tests: real dataset work, scripted models and runs.

`FakeBackend` implements the protocols of tui.backend; it is no engine backend. Token
counts, models and runs are scripted so that tests are fast and screens are deterministic:
no child processes, no timestamps, fixed run ids. The calls that stay real (linting,
loading and splitting the sample data, configs, evaluation and review files, exports)
are handed, one by one, to the `EngineBackend` it holds.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.worker import WorkerCancelled, WorkerFailed

from engine.config.build import TrainConfig, with_overrides
from engine.core.control import Action
from engine.core.errors import TunedeckError
from engine.core.events import RunStatus
from engine.data.formats import Example, LoadedDataset, load_examples
from engine.data.lint.findings import sort_key
from engine.data.lint.linter import Finding, FixResult, LintReport, lint_file
from engine.data.sources import ALL_ROWS, DataReading
from engine.data.split import SplitResult
from engine.eval.options import EvalOptions
from engine.eval.primary import PrimaryOptions
from engine.eval.review import AbPair, AbStats, EvalTable
from engine.eval.store import VALIDATION
from engine.export.exporter import ExportKind, ExportResult
from engine.export.gguf.options import Quant
from engine.loop.grow import GrowResult
from engine.model.resolve import ModelInfo
from engine.playground.server import PlaygroundTarget
from engine.runs.admin import Deletion
from engine.runs.compare import Comparison, build_comparison
from engine.runs.outcome import Outcome
from engine.runs.store import RunInfo, RunStateError
from tests.conftest import REPO_ROOT
from tests.tiny_model import SMOLLM2_135M_CONFIG
from tui.app import TunedeckApp
from tui.backend import Backend, ProgressFn
from tui.backend_engine import EngineBackend, playground_target
from tui.playground_client import PlaygroundClient
from tui.token_survey import TokenSurvey

SAMPLE = REPO_ROOT / "sample_data" / "support_tickets.jsonl"
DEFECTS = REPO_ROOT / "sample_data" / "support_tickets_defects.jsonl"
SIZE = (100, 32)

SMOLLM2_CONFIG: dict[str, Any] = SMOLLM2_135M_CONFIG


@dataclass
class FakeRun:
    """A run the fake backend makes up: its events, log lines and status."""

    dir: Path
    config: TrainConfig
    state: str = "running"
    events: list[dict[str, Any]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    max_steps: int | None = 40
    summary: dict[str, Any] | None = None
    """Its eval/summary.json (None: never evaluated)."""

    def info(self) -> RunInfo:
        metrics = [e for e in self.events if e["type"] == "metric" and e["split"] == "train"]
        best = [e for e in self.events if e["type"] == "best"]
        status = RunStatus(
            state=self.state if not self.state.startswith("failed") else "failed",
            step=metrics[-1]["step"] if metrics else 0,
            max_steps=self.max_steps,
            epoch=metrics[-1]["epoch"] if metrics else 0.0,
            best_val_loss=best[-1]["val_loss"] if best else None,
            best_step=best[-1]["step"] if best else None,
        )
        return RunInfo(self.dir.name, self.dir, self.state, status, 0.0)


def train_event(step: int, loss: float, max_steps: int = 40) -> dict[str, Any]:
    """A training metric event as the worker writes it (no wall-clock fields)."""
    return {
        "type": "metric",
        "split": "train",
        "step": step,
        "epoch": round(step / 10, 4),
        "loss": loss,
        "lr": 2e-4 * 0.5 * (1 + math.cos(math.pi * step / max_steps)),
        "grad_norm": 0.5,
        "tokens_per_s": 1500.0,
        "trained_tokens": step * 900,
        "elapsed_s": step * 2.0,
        "eta_s": (max_steps - step) * 2.0,
        "memory": 600 * 2**20,
    }


def scripted_events(upto: int, overfit: bool = False) -> list[dict[str, Any]]:
    """Events of a run up to step `upto`: loss falls; with `overfit`, val loss turns up."""
    events: list[dict[str, Any]] = [
        {"type": "state", "state": "queued"},
        {"type": "state", "state": "running"},
    ]
    best: tuple[int, float] | None = None
    for step in range(0, upto + 1, 2):
        if step:
            events.append(train_event(step, round(2.4 * math.exp(-step / 12) + 0.3, 4)))
        if step % 10 == 0:
            rise = max(0, step - 20) * 0.02 if overfit else 0.0
            val = round(2.5 * math.exp(-step / 14) + 0.45 + rise, 4)
            events.append({"type": "metric", "split": "val", "step": step, "loss": val})
            if best is None or val < best[1]:
                best = (step, val)
                events.append({"type": "best", "step": step, "val_loss": val})
    if overfit and upto >= 40:
        events.append(
            {
                "type": "warning",
                "code": "overfitting",
                "step": 40,
                "message": "validation loss rose from 0.6400 to 0.8200 while training loss "
                "is 0.3830",
            }
        )
    return events


class FakeBackend:
    """Real dataset work; scripted token counts, models and runs (a `tui.backend.Backend`)."""

    def __init__(self, fail_prepare: bool = False) -> None:
        self.engine = EngineBackend()
        """What the calls that stay real are handed to."""
        self.fail_prepare = fail_prepare
        self.prepared: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.resumed: list[str] = []
        self.started: list[TrainConfig] = []
        self.runs: dict[Path, FakeRun] = {}
        self.evaluating: set[Path] = set()
        """Runs whose evaluation the test pretends is running."""
        self.models = [
            ModelInfo("smollm2-135m", "embedded", True, "converts on first use (~20 s)", "/x.gguf"),
            ModelInfo("tiny-local", "converted", True, "ready", "/models/tiny-local"),
        ]

    # -- data: real, except that tokens are counted as bytes / 4 (no tokenizer) -----------

    def lint(
        self, path: Path, progress: Callable[[float], None], reading: DataReading = ALL_ROWS
    ) -> LintReport:
        return self.engine.lint(path, progress, reading)

    def load_dataset(self, path: Path, reading: DataReading = ALL_ROWS) -> LoadedDataset:
        return self.engine.load_dataset(path, reading)

    def read_source_line(self, path: Path, line: int) -> str | None:
        return self.engine.read_source_line(path, line)

    def write_cleaned_copy(self, path: Path, out: Path) -> FixResult:
        return self.engine.write_cleaned_copy(path, out)

    def preview_split(
        self,
        path: Path,
        val_fraction: float,
        seed: int,
        val_file: Path | None,
        reading: DataReading = ALL_ROWS,
    ) -> SplitResult:
        return self.engine.preview_split(path, val_fraction, seed, val_file, reading)

    def survey_tokens(
        self,
        path: Path,
        model: str,
        max_seq_len: int,
        progress: Callable[[str, float], None],
        reading: DataReading = ALL_ROWS,
    ) -> TokenSurvey:
        progress("counting tokens per example", 0.5)
        examples = load_examples(path, limit=reading.limit, columns=reading.columns).examples
        lengths = {
            e.line: sum(len(m.content.encode()) for m in e.messages) // 4 + 12 for e in examples
        }
        report = lint_file(
            path, max_seq_len=max_seq_len, limit=reading.limit, columns=reading.columns
        )
        ordered = sorted(lengths.values())
        counted = Finding(
            "info",
            "token-lengths",
            0,
            f"tokens after the chat template: p50 {ordered[len(ordered) // 2]:,}, "
            f"max {ordered[-1]:,}; max_seq_len {max_seq_len:,}",
        )
        findings = [f for f in report.findings if f.code != "tokens-skipped"] + [counted]
        report = replace(report, findings=tuple(sorted(findings, key=sort_key)))
        return TokenSurvey(model, max_seq_len, lengths, False, report)

    # -- models: scripted; configs: real --------------------------------------------------

    def list_models(self) -> list[ModelInfo]:
        return list(self.models)

    def prepare_model(self, name: str, progress: Callable[[str, float], None]) -> Path:
        progress("reading the tokenizer", 0.25)
        progress("dequantising weights", 0.5)
        if self.fail_prepare:
            raise TunedeckError("disk full while writing", hint="free some space")
        self.prepared.append(name)
        self.models[0] = ModelInfo(name, "embedded", True, "ready", f"/models/{name}")
        return Path(f"/models/{name}")

    def model_config(self, model: str) -> dict[str, Any] | None:
        return dict(SMOLLM2_CONFIG)

    def device(self) -> tuple[str, int | None]:
        return "cpu", None

    def throughput(self, device: str) -> float | None:
        return 80e9  # the same figure on every machine: snapshots must not vary

    def save_config(self, cfg: TrainConfig, path: Path) -> None:
        self.engine.save_config(cfg, path)

    def load_config(self, path: Path) -> TrainConfig:
        return self.engine.load_config(path)

    # -- runs: scripted (FakeRun), except creating a run and starting a created one -------

    def add_run(self, run_id: str, state: str = "running", **kwargs: Any) -> FakeRun:
        run_dir = Path("/fake-runs") / run_id
        cfg = kwargs.pop("config", None) or with_overrides(TrainConfig(), model="smollm2-135m")
        self.runs[run_dir] = FakeRun(run_dir, cfg, state, **kwargs)
        return self.runs[run_dir]

    def start_run(self, cfg: TrainConfig, reasons: Mapping[str, str] | None = None) -> RunInfo:
        self.started.append(cfg)
        run = self.add_run(f"20250301-10150{len(self.started)}-c0ffee", "queued", config=cfg)
        run.events.append({"type": "state", "state": "queued"})
        return run.info()

    def list_runs(self) -> list[RunInfo]:
        return [run.info() for run in sorted(self.runs.values(), key=lambda r: r.dir.name)][::-1]

    def run_info(self, run_dir: Path) -> RunInfo:
        return self.runs[run_dir].info()

    def run_config(self, run_dir: Path) -> TrainConfig:
        return self.runs[run_dir].config

    def read_events(self, run_dir: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
        events = self.runs[run_dir].events
        return list(events[offset:]), len(events)

    def read_log(self, run_dir: Path, offset: int) -> tuple[list[str], int]:
        lines = self.runs[run_dir].log
        return list(lines[offset:]), len(lines)

    def request(self, run_dir: Path, action: Action) -> None:
        run = self.runs[run_dir]
        if run.state not in ("running", "queued"):
            raise RunStateError(f"run {run_dir.name} is {run.state}; `{action}` needs a worker")
        self.requests.append((run_dir.name, action))

    def resume_run(self, run_dir: Path) -> None:
        self.resumed.append(run_dir.name)
        self.runs[run_dir].state = "queued"

    def compare_runs(self, run_dirs: list[Path]) -> Comparison:
        runs = [self.runs[d] for d in run_dirs]
        return build_comparison([(r.dir.name, r.events, r.config, r.summary) for r in runs])

    def shared_test_sets(self, run_dirs: list[Path]) -> list[str]:
        return self.engine.shared_test_sets(run_dirs)  # none, unless a test made real runs

    def compare_outcome(self, run_dirs: list[Path], eval_set: str) -> Outcome:
        return self.engine.compare_outcome(run_dirs, eval_set)

    def check_deletable(self, run_dir: Path) -> Deletion:
        info = self.runs[run_dir].info()
        if info.state in ("running", "queued", "stopping"):
            raise RunStateError(
                f"run {info.id} is {info.state}: a run that is training cannot be deleted",
                hint=f"stop it first (`tunedeck stop {info.id}`)",
            )
        return Deletion(info, 3 * 2**20)

    def delete_run(self, run_dir: Path) -> Deletion:
        deletion = self.check_deletable(run_dir)
        del self.runs[run_dir]
        return deletion

    def create_run(self, cfg: TrainConfig, reasons: Mapping[str, str] | None = None) -> Path:
        return self.engine.create_run(cfg, reasons)

    def same_data_and_model(self, run_dir: Path, cfg: TrainConfig) -> bool:
        return self.engine.same_data_and_model(run_dir, cfg)

    def start_created_run(
        self, run_dir: Path, cfg: TrainConfig, reasons: Mapping[str, str] | None = None
    ) -> RunInfo:
        return self.engine.start_created_run(run_dir, cfg, reasons)

    # -- evaluation: `evaluating` is scripted, the rest real ------------------------------

    def eval_running(self, run_dir: Path) -> bool:
        return run_dir in self.evaluating

    def start_eval(self, run_dir: Path, options: EvalOptions | None = None) -> int:
        return self.engine.start_eval(run_dir, options)

    def stop_eval(self, run_dir: Path) -> bool:
        return self.engine.stop_eval(run_dir)

    def start_baseline(self, run_dir: Path) -> int:
        return self.engine.start_baseline(run_dir)

    def eval_adapters(self, run_dir: Path) -> tuple[bool, list[int]]:
        return self.engine.eval_adapters(run_dir)

    def load_eval_options(self, run_dir: Path) -> EvalOptions | None:
        return self.engine.load_eval_options(run_dir)

    def primary_options(self, run_dir: Path) -> PrimaryOptions:
        return self.engine.primary_options(run_dir)

    def set_verdict(
        self,
        run_dir: Path,
        index: int,
        verdict: str | None,
        answer: str | None = None,
        eval_set: str | None = None,
    ) -> dict[str, Any]:
        return self.engine.set_verdict(run_dir, index, verdict, answer, eval_set)

    def set_reference(
        self, run_dir: Path, index: int, reference: str | None, eval_set: str | None = None
    ) -> dict[str, Any]:
        return self.engine.set_reference(run_dir, index, reference, eval_set)

    def training_answers(self, run_dir: Path) -> list[str]:
        return self.engine.training_answers(run_dir)

    def grow_data(self, run_dir: Path, eval_set: str, out: Path) -> GrowResult:
        return self.engine.grow_data(run_dir, eval_set, out)

    def like_config(self, run_dir: Path, data: Path) -> tuple[TrainConfig, bool]:
        return self.engine.like_config(run_dir, data)

    def save_eval_options(self, run_dir: Path, options: EvalOptions) -> None:
        self.engine.save_eval_options(run_dir, options)

    def eval_rows_kept(
        self, run_dir: Path, systems: list[str], examples: int | None, eval_set: str | None = None
    ) -> int:
        return self.engine.eval_rows_kept(run_dir, systems, examples, eval_set)

    # -- review: real (the files of runs in real directories) -----------------------------

    def chosen_eval_set(self, run_dir: Path) -> str:
        return self.engine.chosen_eval_set(run_dir)

    def load_eval_table(self, run_dir: Path, eval_set: str = VALIDATION) -> EvalTable:
        return self.engine.load_eval_table(run_dir, eval_set)

    def review_summary(
        self, run_dir: Path, against: str, eval_set: str | None = None
    ) -> dict[str, Any]:
        return self.engine.review_summary(run_dir, against, eval_set)

    def set_mark(
        self,
        run_dir: Path,
        index: int,
        mark: Any = "keep",
        note: str | None = None,
        eval_set: str | None = None,
    ) -> dict[str, Any]:
        return self.engine.set_mark(run_dir, index, mark, note, eval_set)

    def ab_stats(self, run_dir: Path, against: str, eval_set: str | None = None) -> AbStats:
        return self.engine.ab_stats(run_dir, against, eval_set)

    def record_preference(
        self, run_dir: Path, pair: AbPair, preferred: str, against: str, eval_set: str | None = None
    ) -> AbStats:
        return self.engine.record_preference(run_dir, pair, preferred, against, eval_set)

    def export_review(self, run_dir: Path, eval_set: str | None = None) -> Path:
        return self.engine.export_review(run_dir, eval_set)

    # -- playground: the newest of the scripted runs; the model process is real ----------

    def playground_target(
        self, run_dir: Path | None, model: str, examples: Sequence[Example]
    ) -> PlaygroundTarget:
        return playground_target(run_dir, model, examples, self.list_runs)

    def open_playground(self, target: PlaygroundTarget) -> PlaygroundClient:
        return self.engine.open_playground(target)

    # -- export: real ------------------------------------------------------------------------

    def has_adapter(self, run_dir: Path) -> bool:
        return self.engine.has_adapter(run_dir)

    def export_run(
        self, run_dir: Path, out: Path, kind: ExportKind, quant: Quant, progress: ProgressFn
    ) -> ExportResult:
        return self.engine.export_run(run_dir, out, kind, quant, progress)

    def shutdown(self) -> None:
        self.engine.shutdown()


@pytest.fixture
def make_app() -> Callable[..., TunedeckApp]:
    """An app on the sample data with a FakeBackend (or the backend given)."""

    def factory(
        data: Path = SAMPLE,
        backend: Backend | None = None,
        model: str = "smollm2-135m",
        run: Path | None = None,
    ) -> TunedeckApp:
        return TunedeckApp(backend or FakeBackend(), data, model, run)

    return factory


async def settle(pilot: Any, rounds: int = 3) -> None:
    """Let workers finish and their messages be handled (a few rounds: work posts work)."""
    for _ in range(rounds):
        # A cancelled or failed worker is the test's to check, not settle's.
        with contextlib.suppress(WorkerCancelled, WorkerFailed):
            await pilot.app.workers.wait_for_complete()
        await pilot.pause()


@pytest.fixture(autouse=True)
def notes_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every notification's text in `app.notes_seen`: Textual drops a notification
    from `app._notifications` once its timeout has passed, which a loaded CI machine can
    reach before a test looks."""
    original = App.notify

    def notify(self: App[Any], message: str, *args: Any, **kwargs: Any) -> None:
        self.__dict__.setdefault("notes_seen", []).append(str(message))
        original(self, message, *args, **kwargs)

    monkeypatch.setattr(App, "notify", notify)


def notified(app: App[Any], text: str) -> bool:
    """Whether any notification the app raised so far contains `text`."""
    return any(text in message for message in app.__dict__.get("notes_seen", []))


async def wait_until(pilot: Any, condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Pause until `condition()` holds; fails the test after `timeout` seconds of waiting."""
    waited = 0.0
    while not condition():
        if waited >= timeout:
            pytest.fail(f"condition not met after {timeout:.0f} s of waiting")
        await pilot.pause(0.1)
        waited += 0.1
