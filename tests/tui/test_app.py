"""Pilot tests of the wizard frame: steps, navigation, help, errors, models, quitting."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, OptionList, ProgressBar, Static

from engine.core.errors import TunedeckError
from tests.tui.conftest import SIZE, FakeBackend, notified, scripted_events, settle, wait_until
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.error import ErrorDialog
from tui.dialogs.help import HelpDialog
from tui.screens.baseline import BaselineScreen
from tui.screens.data import DataScreen
from tui.screens.hparams import HyperparamsScreen
from tui.screens.models import ModelsScreen
from tui.screens.runs import RunsScreen
from tui.screens.split import SplitScreen
from tui.screens.train import TrainScreen
from tui.widgets.chat_view import ChatView
from tui.widgets.step_bar import StepBar


def bar_text(app) -> str:
    return str(app.screen.query_one(StepBar).render())


async def test_opens_on_the_sample_data_with_examples_as_chat(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DataScreen)
        summary = str(screen.query_one("#data-summary", Static).render())
        assert "chat format (jsonl)" in summary and "138 usable" in summary
        examples = screen.query_one("#example-list", OptionList)
        assert examples.option_count == len(app.wizard.dataset.examples) == 138
        turns = screen.query_one(ChatView).query(".turn")
        assert [t.border_title for t in turns] == ["system", "user", "assistant"]
        first_user = app.wizard.dataset.examples[0].messages[1].content
        assert str(turns[1].render()) == first_user

        await pilot.press("down")
        await pilot.pause()
        second_user = app.wizard.dataset.examples[1].messages[1].content
        assert str(screen.query_one(ChatView).query(".turn")[1].render()) == second_user


async def test_step_bar_and_next_previous_step_keys(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "▸ 1 Data" in bar_text(app) and "· 2 Split" in bar_text(app)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, SplitScreen)
        assert "✓ 1 Data" in bar_text(app) and "▸ 2 Split" in bar_text(app)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, HyperparamsScreen)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, BaselineScreen)
        await pilot.press("ctrl+n")  # neither run nor skipped: the step says so
        await settle(pilot)
        assert isinstance(app.screen, BaselineScreen)
        assert notified(app, "or skip it (s)")
        await pilot.press("s", "ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, TrainScreen)
        # seven steps do not fit 100 columns: the current one and its neighbours keep titles
        assert "✓ 3 › ✓ 4 Baseline › ▸ 5 Train › · 6 Evaluate › · 7 " in bar_text(app)
        await pilot.press("ctrl+p", "ctrl+p", "ctrl+p", "ctrl+p")
        await settle(pilot)
        assert isinstance(app.screen, DataScreen)
        assert app.steps_done == {"data", "split", "hparams", "baseline"}


async def test_a_step_cannot_be_skipped_while_an_earlier_one_is_not_done(
    make_app, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    app = make_app(data=empty)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.wizard.dataset is not None and not app.wizard.dataset.examples
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, DataScreen)
        assert notified(app, "no usable example")
        app.action_goto_step("train")
        await pilot.pause()
        assert isinstance(app.screen, DataScreen)
        assert notified(app, "Complete Data, Split, Hyperparameters")


async def test_step_bar_fits_80_columns(make_app) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = bar_text(app)
        assert len(text) <= 80 and "Runs" in text and "▸ 1 Data" in text


async def test_help_lists_the_bindings_of_every_screen(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpDialog)
        text = "\n".join(str(s.render()) for s in app.screen.query(".help-section"))
        for expected in (
            "Next step",
            "Prev step",
            "Clean copy",
            "More val",
            "Save config",
            "Start run",
            "Pause",
            "Resume",
            "Stop",
            "Checkpoint",
            "Eval now",
            "Run baseline",
            "Export adapter",
            "Export merged",
            "Attach",
            "Prepare model",
            "tab / shift+tab",
        ):
            assert expected in text, expected
        await pilot.press("escape")
        assert isinstance(app.screen, DataScreen)


async def test_an_unreadable_file_is_a_dialog_and_an_inline_error(make_app, tmp_path) -> None:
    app = make_app(data=tmp_path / "missing.jsonl")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ErrorDialog)
        assert "no such file" in app.screen.message
        assert app.screen.hint
        await pilot.press("enter")
        summary = app.screen.query_one("#data-summary", Static)
        assert "cannot be used" in str(summary.render())
        assert summary.has_class("-error")
        assert app.steps_done == set()


async def test_engine_errors_in_workers_become_a_dialog_and_the_app_goes_on(make_app) -> None:
    class Failing(FakeBackend):
        def preview_split(self, *args, **kwargs):
            raise RuntimeError("boom")

    app = make_app(backend=Failing())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, ErrorDialog)
        assert "unexpected error: RuntimeError: boom" in app.screen.message
        assert "traceback is in" in app.screen.hint
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, DataScreen)


async def test_models_screen_prepares_with_progress_and_sets_the_model(make_app) -> None:
    backend = FakeBackend()
    app = make_app(backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)  # the model list comes from a worker
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        table = screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count == 2, 30)
        assert "converts on first use" in str(table.get_row_at(0)[2])

        await pilot.press("p")
        await settle(pilot)
        assert backend.prepared == ["smollm2-135m"]
        assert screen.query_one(ProgressBar).progress == 1.0
        status = str(screen.query_one("#models-status", Static).render())
        assert "ready at /models/smollm2-135m" in status
        assert str(table.get_row_at(0)[2]) == "ready"

        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.wizard.model == app.wizard.config.model == "tiny-local"
        await pilot.press("escape")
        assert isinstance(app.screen, DataScreen)


async def test_a_failed_preparation_is_shown_with_its_reason(make_app) -> None:
    app = make_app(backend=FakeBackend(fail_prepare=True))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("m", "p")
        await settle(pilot)
        status = app.screen.query_one("#models-status", Static)
        assert "disk full while writing" in str(status.render())
        assert status.has_class("-error")
        assert not app.screen.query_one(ProgressBar).display


async def test_quitting_with_a_run_training_says_it_goes_on(make_app) -> None:
    backend = FakeBackend()
    backend.add_run("20250301-101500-c0ffee", events=scripted_events(10))
    app = make_app(backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)  # a running run is offered first
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        assert "keep training in the background" in app.screen.message
        assert "20250301-101500-c0ffee" in app.screen.message
        await pilot.press("y")
        await pilot.pause()
    assert app.left_running == ["20250301-101500-c0ffee"]
    assert backend.requests == []  # quitting asked the run for nothing


async def test_quitting_while_a_baseline_evaluates_says_it_goes_on(make_app) -> None:
    backend = FakeBackend()
    run = backend.add_run("20250301-101500-c0ffee", state="created")
    backend.evaluating.add(run.dir)
    app = make_app(backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        assert "evaluation of 20250301-101500-c0ffee keeps going" in app.screen.message
        assert "keep training" not in app.screen.message  # nothing is training
        await pilot.press("y")
        await pilot.pause()
    assert app.return_code == 0


async def test_quitting_without_runs_asks_nothing(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0 and app.left_running == []


async def test_error_dialog_shows_message_and_hint(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.show_error(TunedeckError("the run directory is gone", hint="check $TUNEDECK_HOME"))
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ErrorDialog)
        assert str(dialog.query_one("#error-message", Static).render()) == (
            "the run directory is gone"
        )
        assert "hint: check $TUNEDECK_HOME" in str(dialog.query_one("#error-hint").render())
        await pilot.press("enter")
        assert isinstance(app.screen, DataScreen)
