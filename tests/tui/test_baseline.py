"""Pilot tests of step 4, Baseline: scripted base answers for the UI (no model), and one
real baseline: a created run, a detached evaluation of the tiny model, then training."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Static

from engine.config.build import TrainConfig, with_overrides
from engine.core.errors import TunedeckError
from engine.eval.baseline import baseline_verdict
from engine.eval.memorisation import TrainAnswerIndex
from engine.eval.metrics import METRICS_VERSION, scoring_context
from engine.eval.options import BASE_SYSTEMS
from engine.eval.store import append_jsonl, read_jsonl, system_file
from engine.eval.summary import build_summary, load_summary, score_output, write_summary
from engine.runs.store import CREATED, RunInfo, run_info
from tests.engine.test_review import OUTPUTS, PROMPTS, REFERENCES, TICKET
from tests.integration.test_evaluate import data_file  # noqa: F401
from tests.tui.conftest import SAMPLE, SIZE, FakeBackend, FakeRun, notified, settle, wait_until
from tui.app import TunedeckApp
from tui.backend_engine import EngineBackend
from tui.dialogs.error import ErrorDialog
from tui.screens.baseline import BaselineScreen
from tui.screens.hparams import HyperparamsScreen
from tui.screens.train import TrainScreen
from tui.widgets.config_form import ConfigForm
from tui.wizard import AUTO_FIELDS

RUN_ID = "20250301-101400-baba00"
REAL_TIMEOUT_S = 300.0
SHORT_RUN = {"max_steps": 2, "eval_steps": 2, "save_steps": 2, "logging_steps": 1,
             "max_seq_len": 256, "micro_batch_size": 4, "gradient_accumulation": 1}  # fmt: skip


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # nothing here may write into the repository


def write_baseline(run: Path) -> None:
    """Base answers of four tickets and their summary, as a baseline evaluation leaves them."""
    labels = [TICKET % (c, "x") for c in ("billing", "bug", "outage") * 4]
    ctx = scoring_context(REFERENCES, labels)
    for system in BASE_SYSTEMS:
        rows = [
            {"index": i, "line": 100 + i, "system": system, "prompt": PROMPTS[i],
             "reference": REFERENCES[i], "output": output, "metrics_version": METRICS_VERSION,
             "metrics": score_output(output, REFERENCES[i], ctx, TrainAnswerIndex([]))}
            for i, output in enumerate(OUTPUTS[system])
        ]  # fmt: skip
        append_jsonl(system_file(run, system), rows)
    write_summary(run, build_summary(run, BASE_SYSTEMS, ctx, {}, None, {"examples": 4}))


class BaselineBackend(FakeBackend):
    """Runs in real directories under `root`; the baseline writes scripted base answers."""

    def __init__(self, root: Path, finish: bool = True) -> None:
        super().__init__()
        self.root = root
        self.finish = finish
        self.created: list[TrainConfig] = []
        self.started_created: list[tuple[Path, TrainConfig]] = []
        self.baselines: list[Path] = []
        self.stopped: list[Path] = []

    def create_run(self, cfg: TrainConfig, reasons: Mapping[str, str] | None = None) -> Path:
        self.created.append(cfg)
        run_dir = self.root / (RUN_ID if len(self.created) == 1 else f"{RUN_ID}{len(self.created)}")
        run_dir.mkdir(parents=True)
        self.runs[run_dir] = FakeRun(run_dir, cfg, CREATED, [{"type": "state", "state": "queued"}])
        return run_dir

    def start_run(self, cfg: TrainConfig, reasons: Mapping[str, str] | None = None) -> RunInfo:
        self.started.append(cfg)
        run_dir = self.root / f"20250301-10150{len(self.started)}-c0ffee"
        run_dir.mkdir(parents=True)
        self.runs[run_dir] = FakeRun(run_dir, cfg, "queued", [{"type": "state", "state": "queued"}])
        return self.runs[run_dir].info()

    def same_data_and_model(self, run_dir: Path, cfg: TrainConfig) -> bool:
        stored = self.runs[run_dir].config
        return (stored.data, stored.model) == (cfg.data, cfg.model)

    def start_created_run(
        self, run_dir: Path, cfg: TrainConfig, reasons: Mapping[str, str] | None = None
    ) -> RunInfo:
        self.started_created.append((run_dir, cfg))
        run = self.runs[run_dir]
        run.config, run.state = cfg, "queued"
        return run.info()

    def start_baseline(self, run_dir: Path) -> int:
        self.baselines.append(run_dir)
        progress = {"type": "eval_progress", "phase": "generate", "system": "base_few"}
        self.runs[run_dir].events += [
            {"type": "eval_started", "systems": list(BASE_SYSTEMS), "examples": 4},
            {**progress, "done": 2, "total": 4},
        ]
        if self.finish:
            write_baseline(run_dir)
            self.runs[run_dir].events.append({"type": "eval_done", "verdict": "baseline only"})
        return 4321

    def eval_running(self, run_dir: Path) -> bool:
        events = self.runs[run_dir].events if run_dir in self.runs else []
        started = any(e["type"] == "eval_started" for e in events)
        return started and not any(e["type"] in ("eval_done", "eval_stopped") for e in events)

    def stop_eval(self, run_dir: Path) -> bool:
        self.stopped.append(run_dir)
        return True


async def to_baseline(pilot: Any) -> BaselineScreen:
    """Data -> Split -> Hyperparameters -> Baseline, each step done."""
    for _ in range(3):
        await settle(pilot)
        await pilot.press("ctrl+n")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, BaselineScreen)
    return screen


def text(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def another_split(pilot: Any) -> None:
    """Back to the Split step: a bigger validation share, so other data for the run."""
    await pilot.app.switch_mode("split")
    pilot.app.screen.query_one("#val-fraction", Input).value = "0.2"
    await settle(pilot)


async def run_baseline(pilot: Any) -> BaselineScreen:
    screen = await to_baseline(pilot)
    await pilot.press("b")
    await wait_until(pilot, lambda: screen.has_results, timeout=10)
    return screen


async def test_b_creates_the_run_and_shows_the_base_summary(tmp_path: Path) -> None:
    backend = BaselineBackend(tmp_path)
    app = TunedeckApp(backend, SAMPLE, "smollm2-135m")
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_baseline(pilot)
        run_dir = tmp_path / RUN_ID
        assert backend.created == [app.wizard.run_config()] and backend.baselines == [run_dir]
        assert app.wizard.run_dir == run_dir and "baseline" in app.steps_done
        panel = text(screen, "#baseline-summary")
        assert "base zero-shot" in panel and "base few-shot" in panel
        assert baseline_verdict(load_summary(run_dir)) in panel
        assert "review:" not in panel  # the Evaluate step's review line has no place here
        assert "baseline of 4 validation examples" in text(screen, "#baseline-status")
        await pilot.press("ctrl+n")
        await settle(pilot)
        train = app.screen
        assert isinstance(train, TrainScreen)
        assert f"The Baseline step's run {RUN_ID} is the one trained" in text(train, "#train-intro")


async def test_train_starts_the_baseline_run_with_the_edited_hyperparameters(tmp_path) -> None:
    backend = BaselineBackend(tmp_path)
    app = TunedeckApp(backend, SAMPLE, "smollm2-135m")
    async with app.run_test(size=SIZE) as pilot:
        await run_baseline(pilot)
        await pilot.press("ctrl+p")  # back to the hyperparameters: a change after the baseline
        await settle(pilot)
        assert isinstance(app.screen, HyperparamsScreen)
        field = app.screen.query_one(ConfigForm).widgets["learning_rate"]
        assert isinstance(field, Input)
        field.value = "0.0005"
        await settle(pilot)
        await pilot.press("ctrl+n", "ctrl+n")
        await settle(pilot)
        train = app.screen
        assert isinstance(train, TrainScreen)
        await pilot.press("s")
        await wait_until(pilot, lambda: train.run_dir is not None, timeout=10)
        ((run_dir, cfg),) = backend.started_created
        assert run_dir == train.run_dir == tmp_path / RUN_ID and backend.started == []
        assert cfg.learning_rate == 0.0005 and cfg == app.wizard.run_config()


async def test_other_data_after_the_baseline_trains_a_new_run_and_says_so(tmp_path) -> None:
    backend = BaselineBackend(tmp_path)
    app = TunedeckApp(backend, SAMPLE, "smollm2-135m")
    async with app.run_test(size=SIZE) as pilot:
        await run_baseline(pilot)
        await another_split(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)
        app.action_goto_step("train")  # straight past the Baseline step
        await settle(pilot)
        train = app.screen
        assert isinstance(train, TrainScreen)
        await pilot.press("s")
        await wait_until(pilot, lambda: train.run_dir is not None, timeout=10)
        assert backend.started_created == [] and len(backend.started) == 1
        assert app.wizard.run_dir == train.run_dir != tmp_path / RUN_ID
        assert "baseline" not in app.steps_done
        assert notified(app, "run the Baseline step again")
        await app.switch_mode("baseline")  # no settle: the Train step follows its run
        status = lambda: text(app.screen, "#baseline-status")  # noqa: E731
        await wait_until(pilot, lambda: "no baseline yet: b runs it" in status(), timeout=10)


async def test_a_baseline_for_other_data_is_stale_and_not_done(tmp_path: Path) -> None:
    backend = BaselineBackend(tmp_path)
    app = TunedeckApp(backend, SAMPLE, "smollm2-135m")
    async with app.run_test(size=SIZE) as pilot:
        screen = await run_baseline(pilot)
        await another_split(pilot)
        await pilot.press("ctrl+n", "ctrl+n")
        await settle(pilot)
        assert app.screen is screen
        await wait_until(pilot, lambda: "other data" in text(screen, "#baseline-status"), 10)
        assert "baseline" not in app.steps_done and not screen.has_results
        await pilot.press("b")  # a new run for the new split
        await wait_until(pilot, lambda: screen.has_results, timeout=10)
        assert len(backend.created) == 2 and app.wizard.run_dir == tmp_path / f"{RUN_ID}2"


async def test_skipping_marks_the_step_done_with_a_note(tmp_path: Path) -> None:
    backend = BaselineBackend(tmp_path)
    app = TunedeckApp(backend, SAMPLE, "smollm2-135m")
    async with app.run_test(size=SIZE) as pilot:
        screen = await to_baseline(pilot)
        await pilot.press("s")
        await pilot.pause()
        assert app.wizard.baseline_skipped and "baseline" in app.steps_done
        assert "the eval table will lack the base comparison" in text(screen, "#baseline-note")
        assert backend.created == []
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, TrainScreen)


async def test_a_running_baseline_blocks_the_next_step_and_x_stops_it(tmp_path: Path) -> None:
    backend = BaselineBackend(tmp_path, finish=False)
    app = TunedeckApp(backend, SAMPLE, "smollm2-135m")
    async with app.run_test(size=SIZE) as pilot:
        screen = await to_baseline(pilot)
        await pilot.press("b")
        status = "#baseline-status"
        await wait_until(pilot, lambda: "generate base few-shot 2/4" in text(screen, status), 10)
        assert screen.running
        await pilot.press("ctrl+n", "s")
        await pilot.pause()
        assert app.screen is screen and not app.wizard.baseline_skipped
        assert notified(app, "wait for it or stop it (x)")
        await pilot.press("x")
        run_dir = tmp_path / RUN_ID
        await wait_until(pilot, lambda: backend.stopped == [run_dir], timeout=30)  # a worker
        backend.runs[run_dir].events.append({"type": "eval_stopped", "reason": "interrupted"})
        await wait_until(pilot, lambda: not screen.running, timeout=10)
        assert notified(app, "the answers so far are kept")
        assert "baseline" not in app.steps_done


async def test_an_evaluation_that_cannot_start_is_a_dialog(tmp_path: Path) -> None:
    class NoValidation(BaselineBackend):
        def start_baseline(self, run_dir: Path) -> int:
            raise TunedeckError("run has no validation examples to evaluate on", hint="split")

    app = TunedeckApp(NoValidation(tmp_path), SAMPLE, "smollm2-135m")
    async with app.run_test(size=SIZE) as pilot:
        screen = await to_baseline(pilot)
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorDialog), timeout=10)
        assert "no validation examples" in app.screen.message
        await pilot.press("escape")
        await wait_until(pilot, lambda: "no baseline yet" in text(screen, "#baseline-status"))
        assert not screen.running


async def test_a_real_baseline_of_the_tiny_model_then_its_run_trains(
    tiny_model_dir: Path,
    data_file: Path,  # noqa: F811
) -> None:
    app = TunedeckApp(EngineBackend(), data_file, str(tiny_model_dir))
    app.backend.survey_tokens = FakeBackend().survey_tokens  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: "data" in app.steps_done, timeout=60)
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: app.wizard.split_result is not None, timeout=60)
        # A short run; the wizard leaves intervals the user set alone.
        app.wizard.config = with_overrides(app.wizard.config, **SHORT_RUN)
        app.wizard.edited.update(AUTO_FIELDS)
        screen = await to_baseline_from_split(pilot)
        await pilot.press("b")
        await wait_until(pilot, lambda: screen.running, timeout=60)
        await wait_until(pilot, lambda: not screen.running, timeout=REAL_TIMEOUT_S)
        # The stored answers are read in a worker once the evaluation has ended.
        await wait_until(pilot, lambda: "baseline" in text(screen, "#baseline-status"), 60)
        run_dir = app.wizard.run_dir
        assert screen.has_results, text(screen, "#baseline-status")
        val = len(read_jsonl(run_dir / "data" / "val.jsonl"))
        for system in BASE_SYSTEMS:
            assert len(read_jsonl(run_dir / "eval" / f"{system}.jsonl")) == val
        assert baseline_verdict(load_summary(run_dir)) in text(screen, "#baseline-summary")
        assert run_info(run_dir).state == CREATED
        await pilot.press("ctrl+n")
        await settle(pilot)
        train = app.screen
        assert isinstance(train, TrainScreen)
        await pilot.press("s")
        await wait_until(pilot, lambda: train.run_dir == run_dir, timeout=60)
        await wait_until(
            pilot, lambda: train.info is not None and train.info.state == "completed",
            REAL_TIMEOUT_S,
        )  # fmt: skip
        assert (run_dir / "adapter" / "adapter_config.json").is_file()
        app.backend.shutdown()


async def to_baseline_from_split(pilot: Any) -> BaselineScreen:
    await pilot.press("ctrl+n")
    await settle(pilot)
    assert not pilot.app.screen.invalid
    await pilot.press("ctrl+n")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, BaselineScreen), screen
    return screen
