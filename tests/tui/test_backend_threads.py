"""The app calls its backend only off the UI thread, and fakes implement the protocols.

Each walk below drives screens the way their own tests do, with the app's backend wrapped
in a `ThreadCheckedBackend` (tests/tui/thread_check.py): every backend call that arrives on
the thread the app's event loop runs on is noted with the line in tui/ that made it. The
walks together call every method of `tui.backend.Backend`.
"""

from __future__ import annotations

import inspect
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input

from tests.tui.conftest import (
    DEFECTS,
    SAMPLE,
    SIZE,
    FakeBackend,
    scripted_events,
    settle,
    wait_until,
)
from tests.tui.test_baseline import BaselineBackend, run_baseline
from tests.tui.test_compare import LIVE, history_backend, listed, mark_rows, outcome_backend
from tests.tui.test_data import choose_finding
from tests.tui.test_eval_settings import StoppableBackend
from tests.tui.test_evaluate import RUN_ID, EvalBackend, evaluate_app, open_evaluate
from tests.tui.test_export_step import ExportBackend
from tests.tui.test_loop_review import pool_run
from tests.tui.test_playground import ScriptedBackend
from tests.tui.thread_check import BACKEND_METHODS, UI_THREAD_EXEMPT, ThreadCheckedBackend
from tui.app import TunedeckApp
from tui.backend import Backend
from tui.backend_engine import EngineBackend
from tui.dialogs.ab_review import AbReviewDialog
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.correction import CorrectionDialog
from tui.dialogs.eval_settings import EvalSettingsDialog
from tui.dialogs.file_browser import FileBrowserDialog
from tui.dialogs.prompt import PromptDialog
from tui.screens.evaluate import EvaluateScreen
from tui.screens.export import ExportScreen
from tui.screens.models import ModelsScreen
from tui.screens.playground import PlaygroundScreen
from tui.screens.train import TrainScreen


class WizardBackend(BaselineBackend, ExportBackend, EvalBackend):
    """Runs in real directories (Baseline's), a scripted evaluation (Evaluate's) and
    scripted exports (Export's): the whole wizard without a child process."""

    def eval_adapters(self, run_dir: Path) -> tuple[bool, list[int]]:
        return self.adapter, []  # the export's scripted adapter


def checked(inner: Backend) -> ThreadCheckedBackend:
    """`inner` wrapped; the test itself runs on the app's UI thread (Pilot)."""
    return ThreadCheckedBackend(inner, threading.current_thread())


def app_on(backend: ThreadCheckedBackend, data: Path = SAMPLE, **kwargs: Any) -> TunedeckApp:
    return TunedeckApp(backend, data, "smollm2-135m", **kwargs)  # type: ignore[arg-type]


async def called(pilot: Any, backend: ThreadCheckedBackend, name: str, times: int = 1) -> None:
    """Wait until `name` was called `times` times in all. Once a run is followed, its
    worker never ends: `settle` (all workers done) would wait forever."""
    await wait_until(pilot, lambda: backend.calls[name] >= times, timeout=10)


WIZARD_CALLS = {
    "lint", "load_dataset", "survey_tokens", "preview_split", "list_models", "device",
    "throughput", "model_config", "save_config", "load_config", "create_run", "read_events",
    "start_baseline", "eval_running", "run_info", "same_data_and_model", "load_eval_table",
    "start_created_run", "read_log", "request", "chosen_eval_set", "review_summary",
    "load_eval_options", "set_mark", "ab_stats", "record_preference", "export_review",
    "eval_adapters", "primary_options", "save_eval_options", "start_eval", "has_adapter",
    "export_run", "training_answers", "set_reference",
}  # fmt: skip


async def test_the_wizard_calls_the_backend_off_the_ui_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the export lands here
    backend = checked(WizardBackend(tmp_path))
    app = app_on(backend)
    async with app.run_test(size=SIZE) as pilot:
        baseline = await run_baseline(pilot)  # Data, Split, Hyperparameters, Baseline
        await pilot.press("ctrl+p")
        await settle(pilot)
        await pilot.press("ctrl+s")  # the Hyperparameters' config, saved and loaded back
        await pilot.pause()
        assert isinstance(app.screen, PromptDialog)
        app.screen.query_one(Input).value = str(tmp_path / "run.toml")
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, FileBrowserDialog)
        app.screen.dismiss(tmp_path / "run.toml")
        await settle(pilot)
        await pilot.press("ctrl+n", "ctrl+n")  # Baseline, Train
        await settle(pilot)
        train = app.screen
        assert isinstance(train, TrainScreen) and baseline.has_results
        await pilot.press("s")
        await wait_until(pilot, lambda: train.run_dir is not None, timeout=10)
        await wait_until(pilot, lambda: train.info is not None, timeout=10)
        await pilot.press("p")  # pause: a request to the run's worker
        await called(pilot, backend, "request")

        await app.switch_mode("evaluate")
        evaluate = app.screen
        assert isinstance(evaluate, EvaluateScreen)
        await wait_until(pilot, lambda: evaluate.table is not None, timeout=10)
        await pilot.press("E")  # the settings dialog: Start evaluates
        await wait_until(pilot, lambda: isinstance(app.screen, EvalSettingsDialog), timeout=10)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: evaluate.table is not None and bool(evaluate.table.rows)
                         and not evaluate.evaluating, timeout=10)  # fmt: skip
        await pilot.press("g", "n")  # a mark, then a note
        await wait_until(pilot, lambda: isinstance(app.screen, PromptDialog), timeout=10)
        await pilot.press(*"ok", "enter")
        await called(pilot, backend, "set_mark", 2)
        await pilot.press("w")  # the reference is wrong: the editor, saved as it is
        await wait_until(pilot, lambda: isinstance(app.screen, CorrectionDialog), timeout=10)
        await pilot.press("ctrl+s")
        await called(pilot, backend, "set_reference")
        await pilot.press("a")  # blind A/B: one preference
        await wait_until(pilot, lambda: isinstance(app.screen, AbReviewDialog), timeout=10)
        await pilot.press("1", "escape")
        await called(pilot, backend, "record_preference")
        await pilot.press("x")  # the review as CSV
        await called(pilot, backend, "export_review")

        backend.inner.runs[train.run_dir].state = "completed"  # type: ignore[attr-defined]
        await app.switch_mode("export")
        export = app.screen
        assert isinstance(export, ExportScreen)
        await wait_until(pilot, lambda: export.has_adapter, timeout=10)
        await pilot.press("a")
        await wait_until(pilot, lambda: "export" in app.steps_done, timeout=10)
    assert backend.on_ui_thread == []
    assert set(backend.calls) >= WIZARD_CALLS, WIZARD_CALLS - set(backend.calls)


DATA_CALLS = {"lint", "load_dataset", "survey_tokens", "read_source_line", "write_cleaned_copy"}


async def test_the_data_step_calls_the_backend_off_the_ui_thread(tmp_path: Path) -> None:
    data = tmp_path / "tickets.jsonl"
    shutil.copy(DEFECTS, data)
    backend = checked(FakeBackend())
    app = app_on(backend, data)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await choose_finding(pilot, "unknown-role", 20)  # a finding's source line
        await settle(pilot)
        await pilot.press("w")  # a cleaned copy
        await pilot.pause()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), timeout=10)
        await pilot.press("n")
        await settle(pilot)
    assert backend.on_ui_thread == []
    assert set(backend.calls) >= DATA_CALLS, DATA_CALLS - set(backend.calls)


ASIDE_CALLS = {
    "list_runs", "run_config", "compare_runs", "check_deletable", "delete_run", "run_info",
    "read_events", "read_log", "request", "resume_run", "list_models", "prepare_model",
    "eval_running", "shutdown", "shared_test_sets",
}  # fmt: skip


async def test_runs_compare_and_models_call_the_backend_off_the_ui_thread() -> None:
    inner = history_backend()
    backend = checked(inner)
    app = app_on(backend)  # a run is training: the app opens on Runs
    async with app.run_test(size=SIZE) as pilot:
        await listed(pilot)
        await mark_rows(pilot, 1, 2)
        await pilot.press("c")  # compare
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=2, animate=False)  # a finished run: delete it
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), timeout=10)
        await pilot.press("y")
        await wait_until(pilot, lambda: table.row_count == 2, timeout=10)

        live = next(run for run in inner.runs.values() if run.dir.name == LIVE)
        app.attach(live.dir)  # Train, following the live run: stop it, then resume it
        train = app.screen
        assert isinstance(train, TrainScreen)
        await wait_until(pilot, lambda: train.info is not None, timeout=10)
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), timeout=10)
        await pilot.press("y")
        await called(pilot, backend, "request")
        live.state = "stopped"
        await wait_until(pilot, lambda: train.info is not None
                         and train.info.state == "stopped", timeout=10)  # fmt: skip
        await pilot.press("p")
        await called(pilot, backend, "resume_run")

        await pilot.press("m")  # Models: the list, then prepare the first one
        models = app.screen
        assert isinstance(models, ModelsScreen)
        await wait_until(pilot, lambda: models.query_one(DataTable).row_count == 2, timeout=10)
        await pilot.press("p")
        await called(pilot, backend, "prepare_model")
        await pilot.press("q")  # a run is training: the app asks first
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), timeout=10)
        await pilot.press("y")
        await called(pilot, backend, "shutdown")
    assert inner.resumed == [LIVE] and inner.prepared == ["smollm2-135m"]
    assert backend.on_ui_thread == []
    assert set(backend.calls) >= ASIDE_CALLS, ASIDE_CALLS - set(backend.calls)


OUTCOME_CALLS = {"compare_runs", "shared_test_sets", "compare_outcome"}


async def test_the_outcome_on_a_test_file_calls_the_backend_off_the_ui_thread(
    tmp_path: Path,
) -> None:
    backend = checked(outcome_backend(tmp_path))
    app = app_on(backend)
    async with app.run_test(size=SIZE) as pilot:
        await listed(pilot)
        await mark_rows(pilot, 1, 2)
        await pilot.press("c")  # compare: the outcome on the first shared test file
        await called(pilot, backend, "compare_outcome")
        await settle(pilot)
        await pilot.press("t")  # the next one
        await called(pilot, backend, "compare_outcome", 2)
    assert backend.on_ui_thread == []
    assert set(backend.calls) >= OUTCOME_CALLS, OUTCOME_CALLS - set(backend.calls)


LOOP_CALLS = {"set_verdict", "training_answers", "grow_data", "like_config", "start_run"}


async def test_the_loop_in_review_calls_the_backend_off_the_ui_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run, _pool = pool_run(tmp_path)
    backend = checked(EvalBackend())
    async with evaluate_app(run, backend).run_test(size=SIZE) as pilot:  # type: ignore[arg-type]
        await open_evaluate(pilot)
        await pilot.press("y", "j", "c")  # accept one, correct the next (saved as shown)
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, CorrectionDialog), 10)
        await pilot.press("ctrl+s")
        await called(pilot, backend, "set_verdict", 2)
        await pilot.press("D")  # the next run's data, then the next run
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, PromptDialog), 10)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog), 10)
        await pilot.press("y")
        await called(pilot, backend, "start_run")
    assert backend.on_ui_thread == []
    assert set(backend.calls) >= LOOP_CALLS, LOOP_CALLS - set(backend.calls)


RUN_CALLS = {"start_run", "start_eval", "stop_eval", "eval_rows_kept"}


async def test_a_run_and_a_stopped_evaluation_call_the_backend_off_the_ui_thread(
    tmp_path: Path,
) -> None:
    backend = checked(FakeBackend())
    app = app_on(backend)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(3):  # Split, Hyperparameters, Baseline (skipped), then Train
            await settle(pilot)
            await pilot.press("ctrl+n")
        await settle(pilot)
        await pilot.press("s", "ctrl+n")
        await settle(pilot)
        train = app.screen
        assert isinstance(train, TrainScreen)
        await pilot.press("s")
        await called(pilot, backend, "start_run")

    run = tmp_path / RUN_ID
    run.mkdir()
    stoppable = checked(StoppableBackend())
    async with evaluate_app(run, stoppable).run_test(size=SIZE) as pilot:  # type: ignore[arg-type]
        screen = await open_evaluate(pilot, rows=0)
        await pilot.press("e")
        await wait_until(pilot, lambda: screen.evaluating, 10)
        await pilot.press("ctrl+x")
        await called(pilot, stoppable, "eval_rows_kept")
    assert backend.on_ui_thread == stoppable.on_ui_thread == []
    calls = set(backend.calls) | set(stoppable.calls)
    assert calls >= RUN_CALLS, RUN_CALLS - calls


PLAYGROUND_CALLS = {"playground_target", "open_playground"}


async def test_the_playground_calls_the_backend_off_the_ui_thread() -> None:
    backend = checked(ScriptedBackend())
    app = app_on(backend)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("t")
        screen = app.screen
        assert isinstance(screen, PlaygroundScreen)
        await wait_until(pilot, lambda: screen.ready, timeout=10)
        await pilot.press("ctrl+r")  # reload: a new model process
        await wait_until(pilot, lambda: screen.ready and len(backend.inner.clients) == 2, 10)
    assert backend.on_ui_thread == []
    assert set(backend.calls) >= PLAYGROUND_CALLS, PLAYGROUND_CALLS - set(backend.calls)


def test_the_walks_call_every_backend_method() -> None:
    walked = (WIZARD_CALLS | DATA_CALLS | ASIDE_CALLS | OUTCOME_CALLS | RUN_CALLS
              | PLAYGROUND_CALLS | LOOP_CALLS)  # fmt: skip
    assert walked == BACKEND_METHODS
    assert set(UI_THREAD_EXEMPT) <= BACKEND_METHODS


@pytest.mark.parametrize("implementation", [EngineBackend, FakeBackend])
def test_backends_implement_every_protocol_method_with_its_parameters(
    implementation: type,
) -> None:
    """Structural: what mypy checks for `backend: Backend = FakeBackend()`, at test time."""
    for name in BACKEND_METHODS:
        expected = inspect.signature(getattr(Backend, name))
        actual = inspect.signature(getattr(implementation, name))
        assert list(actual.parameters) == list(expected.parameters), name
        defaults = {p.name: p.default for p in expected.parameters.values()}
        assert {p.name: p.default for p in actual.parameters.values()} == defaults, name


def test_the_fake_backend_is_no_engine_backend() -> None:
    assert not issubclass(FakeBackend, EngineBackend)
    fake = FakeBackend()
    run = fake.add_run("20250301-101500-c0ffee", events=scripted_events(4))
    assert fake.list_runs() == [run.info()]  # scripted: the engine's runs are not asked
