"""Pilot tests: the app opens on the data, shows examples as chat, and manages models."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, OptionList, ProgressBar, Static

from tests.tui.conftest import FakeBackend
from tui.screens.data import DataScreen
from tui.screens.models import ModelsScreen
from tui.widgets.chat_view import ChatView

SIZE = (100, 32)


async def test_opens_on_the_sample_data_with_examples_as_chat(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DataScreen)
        summary = str(screen.query_one("#data-summary", Static).render())
        assert "support_tickets.jsonl" in summary and "format: chat" in summary
        examples = screen.query_one("#example-list", OptionList)
        assert examples.option_count == len(screen.dataset.examples) >= 120
        turns = screen.query_one(ChatView).query(".turn")
        assert [t.border_title for t in turns] == ["system", "user", "assistant"]
        first_user = screen.dataset.examples[0].messages[1].content
        assert str(turns[1].render()) == first_user

        await pilot.press("j")
        await pilot.pause()
        second_user = screen.dataset.examples[1].messages[1].content
        assert str(screen.query_one(ChatView).query(".turn")[1].render()) == second_user


async def test_an_unreadable_file_is_a_message_not_a_crash(make_app, tmp_path: Path) -> None:
    app = make_app(data=tmp_path / "missing.jsonl")
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        summary = app.screen.query_one("#data-summary", Static)
        assert "missing.jsonl" in str(summary.render())
        assert summary.has_class("-error")


async def test_models_screen_prepares_with_progress(make_app) -> None:
    backend = FakeBackend()
    app = make_app(backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("m")
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        table = screen.query_one(DataTable)
        assert table.row_count == 2
        assert "converts on first use" in str(table.get_row_at(0)[2])

        await pilot.press("p")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert backend.prepared == ["smollm2-135m"]
        assert screen.query_one(ProgressBar).progress == 1.0
        assert "ready at /models/smollm2-135m" in str(
            screen.query_one("#models-status", Static).render()
        )
        assert str(table.get_row_at(0)[2]) == "ready"

        await pilot.press("escape")
        assert isinstance(app.screen, DataScreen)


async def test_a_failed_preparation_is_shown_with_its_reason(make_app) -> None:
    app = make_app(backend=FakeBackend(fail_prepare=True))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("m", "p")
        await app.workers.wait_for_complete()
        await pilot.pause()
        status = app.screen.query_one("#models-status", Static)
        assert "disk full while writing" in str(status.render())
        assert status.has_class("-error")
        assert not app.screen.query_one(ProgressBar).display
