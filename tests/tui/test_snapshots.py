"""Snapshot tests (pytest-textual-snapshot): every screen at 100x32, and 80x24 / NO_COLOR.

The FakeBackend keeps them deterministic: fixed run ids, scripted metrics, token counts
from byte lengths, a fixed throughput for the time estimate, no timestamps. Paths show
relative to the repository (the tests run from there). Update with
`pytest tests/tui/test_snapshots.py --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input

from tests.conftest import REPO_ROOT
from tests.tui.conftest import (
    DEFECTS,
    SAMPLE,
    SIZE,
    FakeBackend,
    scripted_events,
    settle,
    wait_until,
)
from tui.app import TunedeckApp
from tui.screens.train import TrainScreen
from tui.widgets.finding_view import FindingView
from tui.widgets.lint_report import LintReportList
from tui.widgets.loss_chart import LossChart

RUN_ID = "20250301-101500-c0ffee"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)  # paths show as sample_data/...


def still_cursors(app: TunedeckApp) -> None:
    """A blinking cursor would make two screenshots differ."""
    for field in app.screen.query(Input):
        field.cursor_blink = False


async def steps(pilot, count: int) -> None:
    """Go `count` steps on, each once its screen lets the user leave (a loaded machine may
    still be inspecting the data when the settle rounds end)."""
    for _ in range(count):
        await settle(pilot)
        screen = pilot.app.screen
        await wait_until(pilot, lambda s=screen: s.leave_blocker() is None)
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda s=screen: pilot.app.screen is not s)
    await settle(pilot)
    still_cursors(pilot.app)


def test_data_examples(snap_compare) -> None:
    app = TunedeckApp(FakeBackend(), SAMPLE.relative_to(REPO_ROOT), "smollm2-135m")
    assert snap_compare(app, terminal_size=SIZE, run_before=lambda pilot: steps(pilot, 0))


def test_data_lint_finding(snap_compare) -> None:
    async def open_finding(pilot) -> None:
        await steps(pilot, 0)
        # The report is refreshed when token counts arrive: choose the finding after that.
        await wait_until(pilot, lambda: pilot.app.wizard.tokens is not None)
        await settle(pilot)
        report = pilot.app.screen.query_one(LintReportList)
        report.highlighted = 3  # ✗ line 20: unknown-role, turn 3 marked
        await pilot.press("enter")
        await settle(pilot)
        view = pilot.app.screen.query_one(FindingView)
        await wait_until(pilot, lambda: bool(view.query(".-problem")))

        def marked_turn_on_top() -> bool:  # the view scrolls there once laid out
            marked = view.query(".-problem").first()
            target = min(marked.virtual_region.y, int(view.max_scroll_y))
            return target > 0 and int(view.scroll_y) == target

        await wait_until(pilot, marked_turn_on_top)
        await settle(pilot)

    app = TunedeckApp(FakeBackend(), DEFECTS.relative_to(REPO_ROOT), "smollm2-135m")
    assert snap_compare(app, terminal_size=SIZE, run_before=open_finding)


def test_data_stats(snap_compare) -> None:
    async def stats(pilot) -> None:
        await steps(pilot, 0)
        await pilot.press("s")
        await settle(pilot)

    app = TunedeckApp(FakeBackend(), SAMPLE.relative_to(REPO_ROOT), "smollm2-135m")
    assert snap_compare(app, terminal_size=SIZE, run_before=stats)


def test_split(snap_compare) -> None:
    async def split_shown(pilot) -> None:
        await steps(pilot, 1)
        # The split is computed in a worker started when the screen resumes: on a loaded
        # machine that can come after the settle rounds, so wait for its result explicitly.
        await wait_until(pilot, lambda: pilot.app.wizard.split_result is not None)
        await settle(pilot)

    app = TunedeckApp(FakeBackend(), SAMPLE.relative_to(REPO_ROOT), "smollm2-135m")
    assert snap_compare(app, terminal_size=SIZE, run_before=split_shown)


def test_hyperparameters(snap_compare) -> None:
    app = TunedeckApp(FakeBackend(), SAMPLE.relative_to(REPO_ROOT), "smollm2-135m")
    assert snap_compare(app, terminal_size=SIZE, run_before=lambda pilot: steps(pilot, 2))


def test_train_ready(snap_compare) -> None:
    async def ready(pilot) -> None:
        await steps(pilot, 3)
        await pilot.press("s")  # skip the baseline
        await steps(pilot, 1)

    app = TunedeckApp(FakeBackend(), SAMPLE.relative_to(REPO_ROOT), "smollm2-135m")
    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def live_run_app() -> TunedeckApp:
    backend = FakeBackend()
    log = ["{'loss': '0.6112', 'grad_norm': '0.41', 'learning_rate': '3.1e-05', 'epoch': '4'}"]
    run = backend.add_run(RUN_ID, events=scripted_events(40, overfit=True), log=log)
    return TunedeckApp(backend, SAMPLE.relative_to(REPO_ROOT), "smollm2-135m", run=run.dir)


async def followed(pilot) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, TrainScreen)
    chart = screen.query_one(LossChart)
    await wait_until(pilot, lambda: chart.redraws > 0 and len(chart.train) == 20)
    await wait_until(pilot, lambda: screen.query_one("#train-banner").display)
    await pilot.pause(0.3)  # one more chart tick


def test_train_live(snap_compare) -> None:
    assert snap_compare(live_run_app(), terminal_size=SIZE, run_before=followed)


def test_train_live_80x24(snap_compare) -> None:
    assert snap_compare(live_run_app(), terminal_size=(80, 24), run_before=followed)


def test_train_live_no_color(snap_compare, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(live_run_app(), terminal_size=SIZE, run_before=followed)


def test_stop_confirmation(snap_compare) -> None:
    async def stop(pilot) -> None:
        await followed(pilot)
        await pilot.press("x")
        await pilot.pause()

    assert snap_compare(live_run_app(), terminal_size=SIZE, run_before=stop)


def test_runs(snap_compare) -> None:
    backend = FakeBackend()
    backend.add_run("20250228-090000-aaaaaa", "completed", events=scripted_events(40))
    backend.add_run(RUN_ID, events=scripted_events(12))

    async def listed(pilot) -> None:
        await wait_until(pilot, lambda: pilot.app.screen.query_one(DataTable).row_count == 2)
        await pilot.pause(0.2)  # the table sizes its columns to new rows on its next update

    app = TunedeckApp(backend, SAMPLE.relative_to(REPO_ROOT), "smollm2-135m")
    assert snap_compare(app, terminal_size=SIZE, run_before=listed)


def test_models(snap_compare) -> None:
    async def models(pilot) -> None:
        await steps(pilot, 0)
        await pilot.press("m")
        await settle(pilot)

    app = TunedeckApp(FakeBackend(), SAMPLE.relative_to(REPO_ROOT), "smollm2-135m")
    assert snap_compare(app, terminal_size=SIZE, run_before=models)


def test_help(snap_compare) -> None:
    async def help_open(pilot) -> None:
        await steps(pilot, 0)
        await pilot.press("question_mark")
        await pilot.pause()

    app = TunedeckApp(FakeBackend(), SAMPLE.relative_to(REPO_ROOT), "smollm2-135m")
    assert snap_compare(app, terminal_size=SIZE, run_before=help_open)


def test_error_dialog(snap_compare) -> None:
    async def missing(pilot) -> None:
        await steps(pilot, 0)

    app = TunedeckApp(
        FakeBackend(),
        REPO_ROOT.joinpath("sample_data", "nope.jsonl").relative_to(REPO_ROOT),
        "smollm2-135m",
    )
    assert snap_compare(app, terminal_size=SIZE, run_before=missing)


def test_compare(snap_compare) -> None:
    from tests.tui.test_compare import history_backend, mark_rows

    async def compared(pilot) -> None:
        await wait_until(pilot, lambda: pilot.app.screen.query_one(DataTable).row_count == 3)
        await mark_rows(pilot, 2, 1)
        await pilot.press("c")
        await settle(pilot)
        await pilot.pause(0.2)  # the tables size their columns to new rows on their next update

    app = TunedeckApp(history_backend(), SAMPLE.relative_to(REPO_ROOT), "smollm2-135m")
    assert snap_compare(app, terminal_size=SIZE, run_before=compared)


def test_eval_settings(snap_compare, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.eval.judge.config import JudgeConfig
    from engine.eval.options import EvalOptions, save_options
    from tests.tui.test_eval_settings import SettingsBackend, open_settings
    from tests.tui.test_evaluate import evaluate_app, open_evaluate, write_eval

    monkeypatch.delenv("TUNEDECK_SNAPSHOT_KEY", raising=False)
    run = tmp_path / RUN_ID
    run.mkdir()
    write_eval(run)
    judge = JudgeConfig(url="http://127.0.0.1:8000/v1", model="qwen2.5-7b-instruct",
                        key_env="TUNEDECK_SNAPSHOT_KEY")  # fmt: skip
    options = EvalOptions(systems=("base_few", "tuned", "tuned@12"), max_examples=20,
                          temperature=0.7, top_p=0.9, judge=judge)  # fmt: skip
    save_options(run, options)

    async def settings_open(pilot) -> None:
        await open_evaluate(pilot)
        await open_settings(pilot)
        still_cursors(pilot.app)
        await pilot.pause()

    assert snap_compare(evaluate_app(run, SettingsBackend()), terminal_size=SIZE,
                        run_before=settings_open)  # fmt: skip


def test_playground(snap_compare) -> None:
    """One exchange with a scripted model process: both columns, settings, prompt line."""
    from tests.tui.test_playground import ScriptedBackend, open_playground, send

    async def one_turn(pilot) -> None:
        screen = await open_playground(pilot)
        await send(pilot, screen, "How do I reset my password?")
        await pilot.pause()
        still_cursors(pilot.app)

    app = TunedeckApp(ScriptedBackend(), SAMPLE.relative_to(REPO_ROOT), "smollm2-135m")
    assert snap_compare(app, terminal_size=SIZE, run_before=one_turn)


def test_baseline(snap_compare, tmp_path) -> None:
    """Step 4 after a (scripted) baseline: the base systems' summary and the sentence."""
    from tests.tui.test_baseline import BaselineBackend, run_baseline

    async def done(pilot) -> None:
        await run_baseline(pilot)
        await pilot.pause()

    app = TunedeckApp(BaselineBackend(tmp_path), SAMPLE.relative_to(REPO_ROOT), "smollm2-135m")
    assert snap_compare(app, terminal_size=SIZE, run_before=done)


def test_export(snap_compare, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Step 7 after a (scripted) adapter export: the files written and their sizes."""
    from tests.tui.test_export_step import ExportBackend, export_app, open_export

    monkeypatch.chdir(tmp_path)  # exports/ is written under the current directory

    async def exported(pilot) -> None:
        screen = await open_export(pilot)
        await pilot.press("a")
        await wait_until(pilot, lambda: "export" in pilot.app.steps_done)
        still_cursors(pilot.app)
        table = screen.query_one(DataTable)
        # the table sizes its columns to new rows on its next update, then redraws
        await wait_until(pilot, lambda: table.virtual_size.width > len("File  Size"))
        await pilot.pause(0.3)
        assert table.row_count == 5

    assert snap_compare(export_app(ExportBackend()), terminal_size=SIZE, run_before=exported)
