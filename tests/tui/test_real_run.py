"""The wizard end to end with the real backend: a tiny model, a real detached run.

Nothing is faked here: lint and the token count (a child process with the tiny model's
tokenizer), the split, the config, and a training worker in its own session. The second
test quits the app mid-run and reattaches with a new app instance.
"""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input

from engine.runs.store import run_info
from tests.tui.conftest import SAMPLE, SIZE, settle, wait_until
from tui.app import TunedeckApp
from tui.backend_engine import EngineBackend
from tui.dialogs.confirm import ConfirmDialog
from tui.screens.hparams import HyperparamsScreen
from tui.screens.train import TrainScreen
from tui.widgets.config_form import ConfigForm
from tui.widgets.loss_chart import LossChart

RUN_TIMEOUT_S = 300.0


async def to_train_step(app: TunedeckApp, pilot, fields: dict[str, str]) -> TrainScreen:
    """Data (with real token counts) -> Split -> Hyperparameters (edited) -> Baseline
    (skipped) -> Train."""
    await wait_until(pilot, lambda: app.wizard.tokens is not None, RUN_TIMEOUT_S)
    assert app.wizard.tokens.model == app.wizard.model  # counted with the tiny tokenizer
    await pilot.press("ctrl+n")
    await wait_until(pilot, lambda: app.wizard.split_result is not None, RUN_TIMEOUT_S)
    await pilot.press("ctrl+n")
    await settle(pilot)
    screen = app.screen
    assert isinstance(screen, HyperparamsScreen)
    form = screen.query_one(ConfigForm)
    for name, value in fields.items():
        widget = form.widgets[name]
        assert isinstance(widget, Input)
        widget.value = value
        await pilot.pause()
    await settle(pilot)
    assert not screen.invalid, screen.invalid
    await pilot.press("ctrl+n")
    await pilot.pause()
    await pilot.press("s", "ctrl+n")  # skip the baseline (tests/tui/test_baseline.py runs one)
    await pilot.pause()
    assert isinstance(app.screen, TrainScreen)
    return app.screen


def run_fields(max_steps: int, eval_steps: int) -> dict[str, str]:
    return {
        "max_steps": str(max_steps),
        "micro_batch_size": "4",
        "gradient_accumulation": "1",
        "max_seq_len": "256",
        "learning_rate": "0.01",
        "eval_steps": str(eval_steps),
        "save_steps": str(eval_steps),
        "logging_steps": "1",
        "lora.dropout": "0",
    }


async def test_the_wizard_trains_the_sample_data_through_a_real_detached_run(
    tiny_model_dir: Path,
) -> None:
    app = TunedeckApp(EngineBackend(), SAMPLE, str(tiny_model_dir))
    async with app.run_test(size=SIZE) as pilot:
        screen = await to_train_step(app, pilot, run_fields(max_steps=8, eval_steps=4))
        await pilot.press("s")
        await wait_until(pilot, lambda: screen.run_dir is not None, RUN_TIMEOUT_S)
        run_dir = screen.run_dir
        await wait_until(
            pilot, lambda: screen.info is not None and screen.info.state == "completed",
            RUN_TIMEOUT_S,
        )  # fmt: skip
        chart = screen.query_one(LossChart)
        await wait_until(pilot, lambda: len(chart.train) == 8)
        assert [s for s, _ in chart.train] == list(range(1, 9))
        assert [s for s, _ in chart.val] == [0, 4, 8]
        assert chart.best is not None
        assert "train" in app.steps_done
        assert (run_dir / "adapter" / "adapter_config.json").is_file()
        assert screen.query_one("#train-log").line_count > 0


STEPS_LEFT_RUNNING = 300
"""Long enough that the tiny model is still training when the app has quit and when the
second app has attached (24 steps could all finish while the quit dialog was answered);
the second app stops it."""


async def test_quitting_mid_run_then_reattaching_shows_old_and_new_points(
    tiny_model_dir: Path,
) -> None:
    first = TunedeckApp(EngineBackend(), SAMPLE, str(tiny_model_dir))
    async with first.run_test(size=SIZE) as pilot:
        screen = await to_train_step(
            first,
            pilot,
            run_fields(max_steps=STEPS_LEFT_RUNNING, eval_steps=STEPS_LEFT_RUNNING // 2),
        )
        await pilot.press("s")
        chart = screen.query_one(LossChart)
        await wait_until(pilot, lambda: len(chart.train) >= 3, RUN_TIMEOUT_S)
        before = list(chart.train)
        run_dir = screen.run_dir
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(first.screen, ConfirmDialog)
        await pilot.press("y")
    assert first.left_running == [run_dir.name]
    assert run_info(run_dir).state == "running"  # quitting the app did not stop the run

    second = TunedeckApp(EngineBackend(), SAMPLE, str(tiny_model_dir), run=run_dir)
    async with second.run_test(size=SIZE) as pilot:
        screen = second.screen
        assert isinstance(screen, TrainScreen)
        chart = screen.query_one(LossChart)
        await wait_until(pilot, lambda: len(chart.train) >= len(before), RUN_TIMEOUT_S)
        assert chart.train[: len(before)] == before  # the history, replayed
        replayed = len(chart.train)
        # Points that arrive live after attaching, in order after the replayed ones; then
        # the run is stopped from the screen (the rest of its 300 steps would only cost time).
        await wait_until(pilot, lambda: len(chart.train) >= replayed + 3, RUN_TIMEOUT_S)
        assert [s for s, _ in chart.train] == list(range(1, len(chart.train) + 1))
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(second.screen, ConfirmDialog)
        await pilot.press("y")
        await wait_until(
            pilot, lambda: screen.info is not None and screen.info.state == "stopped",
            RUN_TIMEOUT_S,
        )  # fmt: skip
        assert replayed < len(chart.train) < STEPS_LEFT_RUNNING
        assert [s for s, _ in chart.train] == list(range(1, len(chart.train) + 1))
