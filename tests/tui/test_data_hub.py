"""Pilot tests of step 1, Data, on a hub dataset (a hand-made offline cache): the path
field takes `ORG/NAME`, the step asks for a column mapping listing the columns it saw, and
the rows field reads only the first N rows; the run's config carries all three."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from tests.engine.hub_cache import make_hub_dataset, offline_hf_home, qa_rows, write_parquet
from tests.tui.conftest import SIZE, settle, wait_until
from tui.dialogs.prompt import PromptDialog


@pytest.fixture
def qa_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = offline_hf_home(tmp_path, monkeypatch)
    snapshot = make_hub_dataset(home, "acme/qa")
    write_parquet(snapshot / "data/train-00000-of-00001.parquet", qa_rows(300))
    return snapshot


async def test_a_hub_id_asks_for_columns_then_loads_the_first_rows(make_app, qa_hub) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        field = app.screen.query_one("#data-path", Input)
        field.focus()
        field.value = "acme/qa"
        await pilot.press("enter")
        await settle(pilot)
        await wait_until(pilot, lambda: isinstance(app.screen, PromptDialog))
        dialog = app.screen
        assert isinstance(dialog, PromptDialog)
        assert "Columns seen: question, answer, id." in dialog.label
        assert dialog.query_one(Input).value == "prompt=question,response=answer"
        await pilot.press("enter")
        await settle(pilot)
        await wait_until(pilot, lambda: app.wizard.dataset is not None)
        assert app.wizard.data_path == Path("acme/qa")
        assert len(app.wizard.dataset.examples) == 300
        rows = app.screen.query_one("#data-limit", Input)
        rows.focus()
        rows.value = "120"
        await pilot.press("enter")
        await settle(pilot)
        await wait_until(pilot, lambda: app.wizard.dataset is not None)
        assert len(app.wizard.dataset.examples) == 120
        data = app.wizard.data_config()
        assert (data.source, data.limit) == ("acme/qa", 120)
        assert data.columns == "prompt=question,response=answer"
