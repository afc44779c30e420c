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
    for _ in range(count):
        await settle(pilot)
        await pilot.press("ctrl+n")
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
        await pilot.pause(0.2)  # the view scrolls to the marked turn after a refresh

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
    app = TunedeckApp(FakeBackend(), SAMPLE.relative_to(REPO_ROOT), "smollm2-135m")
    assert snap_compare(app, terminal_size=SIZE, run_before=lambda pilot: steps(pilot, 1))


def test_hyperparameters(snap_compare) -> None:
    app = TunedeckApp(FakeBackend(), SAMPLE.relative_to(REPO_ROOT), "smollm2-135m")
    assert snap_compare(app, terminal_size=SIZE, run_before=lambda pilot: steps(pilot, 2))


def test_train_ready(snap_compare) -> None:
    app = TunedeckApp(FakeBackend(), SAMPLE.relative_to(REPO_ROOT), "smollm2-135m")
    assert snap_compare(app, terminal_size=SIZE, run_before=lambda pilot: steps(pilot, 3))


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
