"""End to end: the Evaluate screen starts a real detached evaluation of a tiny trained run,
follows its events and shows the table (real EngineBackend, real model, no fakes)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_evaluate import copy_run, data_file, trained_run  # noqa: F401
from tests.tui.conftest import SIZE, wait_until
from tui.app import TunedeckApp
from tui.backend_engine import EngineBackend
from tui.screens.evaluate import EvaluateScreen
from tui.widgets.eval_table import EvalTableView


async def test_e_evaluates_the_run_and_shows_the_table(
    trained_run: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    run = copy_run(trained_run, tmp_path)
    app = TunedeckApp(EngineBackend(), run / "data" / "train.jsonl", "tiny", run)
    async with app.run_test(size=SIZE) as pilot:
        await app.switch_mode("evaluate")
        screen = app.screen
        assert isinstance(screen, EvaluateScreen)
        await pilot.press("e")
        await wait_until(pilot, lambda: screen.evaluating, timeout=30)
        table = screen.query_one(EvalTableView)
        await wait_until(pilot, lambda: table.row_count > 0 and not screen.evaluating, 240)
        assert screen.table is not None and screen.table.summary is not None
        assert "tuned" in screen.table.systems
        app.backend.shutdown()
