"""Pilot tests of step 4, Train, and the Runs screen, on scripted runs (FakeBackend)."""

from __future__ import annotations

from textual.widgets import DataTable, Log, Static

from tests.tui.conftest import SIZE, FakeBackend, scripted_events, settle, train_event, wait_until
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.error import ErrorDialog
from tui.run_history import RunHistory
from tui.screens.runs import RunsScreen
from tui.screens.train import TrainScreen
from tui.widgets.loss_chart import LossChart
from tui.widgets.run_stats import RunStats

RUN_ID = "20250301-101500-c0ffee"


def footer_keys(app) -> dict[str, str]:
    return {key: b.binding.description for key, b in app.screen.active_bindings.items()}


async def test_attaching_replays_history_then_follows_new_points(make_app) -> None:
    backend = FakeBackend()
    run = backend.add_run(RUN_ID, events=scripted_events(20), log=["step 20 done"])
    app = make_app(backend=backend, run=run.dir)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        chart = screen.query_one(LossChart)
        await wait_until(pilot, lambda: len(chart.train) == 10)
        assert [s for s, _ in chart.train] == list(range(2, 21, 2))
        assert [s for s, _ in chart.val] == [0, 10, 20]
        assert chart.best == (20, chart.val[-1][1])
        numbers = screen.query_one(RunStats).numbers
        assert (numbers.step, numbers.max_steps, numbers.state) == (20, 40, "running")
        assert numbers.lr is not None and numbers.tokens_per_s == 1500.0
        assert screen.query_one(Log).lines == ["step 20 done"]

        run.events += [train_event(22, 0.9), train_event(24, 0.85)]
        run.log.append("step 24 done")
        await wait_until(pilot, lambda: len(chart.train) == 12)
        assert chart.train[-1] == (24, 0.85)
        await wait_until(pilot, lambda: len(screen.query_one(Log).lines) == 2)


async def test_overfitting_and_early_stop_raise_a_banner(make_app) -> None:
    backend = FakeBackend()
    run = backend.add_run(RUN_ID, events=scripted_events(40, overfit=True))
    app = make_app(backend=backend, run=run.dir)
    async with app.run_test(size=SIZE) as pilot:
        banner = app.screen.query_one("#train-banner", Static)
        await wait_until(pilot, lambda: banner.display)
        assert "▲ Overfitting: validation loss rose" in str(banner.render())
        assert banner.has_class("-overfitting")
        run.events.append(
            {"type": "early_stop", "step": 42, "best_step": 20, "best_val_loss": 0.64,
             "patience": 2}
        )  # fmt: skip
        await wait_until(pilot, lambda: "Early stopping" in str(banner.render()))
        assert "best adapter (step 20, val 0.6400)" in str(banner.render())


async def test_controls_go_to_the_run_and_stop_asks_first(make_app) -> None:
    backend = FakeBackend()
    run = backend.add_run(RUN_ID, events=scripted_events(10))
    app = make_app(backend=backend, run=run.dir)
    async with app.run_test(size=SIZE) as pilot:
        stats = app.screen.query_one(RunStats)
        await wait_until(pilot, lambda: stats.numbers.state == "running")
        keys = footer_keys(app)
        assert keys["p"] == "Pause" and keys["x"] == "Stop" and keys["c"] == "Checkpoint"
        await pilot.press("c", "v")
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("y")
        await pilot.press("p")
        asked = [(RUN_ID, "checkpoint"), (RUN_ID, "evaluate"), (RUN_ID, "stop"), (RUN_ID, "pause")]
        await wait_until(pilot, lambda: backend.requests == asked, 30)  # sent by a worker, in order
        run.state = "paused"
        await wait_until(pilot, lambda: stats.numbers.state == "paused")
        keys = footer_keys(app)
        assert keys["p"] == "Resume" and "x" not in keys
        await pilot.press("p")
        await wait_until(pilot, lambda: backend.resumed == [RUN_ID], 30)


async def test_a_refused_control_is_an_error_dialog(make_app) -> None:
    backend = FakeBackend()
    run = backend.add_run(RUN_ID, events=scripted_events(10))
    app = make_app(backend=backend, run=run.dir)
    async with app.run_test(size=SIZE) as pilot:
        stats = app.screen.query_one(RunStats)
        await wait_until(pilot, lambda: stats.numbers.state == "running")
        run.state = "completed"  # finished between two polls: the key is still shown
        app.screen._request("checkpoint")
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorDialog), 30)
        assert isinstance(app.screen, ErrorDialog)
        assert "needs a worker" in app.screen.message


async def test_start_runs_the_wizards_config_and_follows_it(make_app) -> None:
    backend = FakeBackend()
    app = make_app(backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(3):
            await settle(pilot)
            await pilot.press("ctrl+n")
        await settle(pilot)
        await pilot.press("s", "ctrl+n")  # skip the baseline
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        intro = str(screen.query_one("#train-intro", Static).render())
        assert "124 training / 14 validation" in intro and "validation every 15 steps" in intro
        assert "3 epoch(s), learning rate 0.0013" in intro  # the recipe's, for 124 examples
        await pilot.press("s")
        await wait_until(pilot, lambda: screen.run_dir is not None)
        (cfg,) = backend.started
        assert cfg == app.wizard.run_config() and cfg.eval_steps == 15
        assert cfg.data.source is not None and cfg.data.source.endswith("support_tickets.jsonl")
        note = str(screen.query_one("#train-note", Static).render())
        assert "q leaves it training; back with `tunedeck attach 20250301-101501-c0ffee`" in note


async def test_runs_list_active_first_and_enter_attaches(make_app) -> None:
    backend = FakeBackend()
    backend.add_run("20250228-090000-aaaaaa", "completed", events=scripted_events(40))
    backend.add_run("20250227-090000-bbbbbb", "running", events=scripted_events(12))
    app = make_app(backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs)
        screen = app.screen
        assert screen.query_one("#runs-notice").display
        table = screen.query_one(DataTable)
        ids = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]  # 0: the mark
        assert ids == ["20250227-090000-bbbbbb", "20250228-090000-aaaaaa"]
        assert str(table.get_row_at(0)[4]).startswith("12/40")
        await pilot.press("down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, TrainScreen)
        chart = app.screen.query_one(LossChart)
        await wait_until(pilot, lambda: len(chart.train) == 20)
        assert app.wizard.run_dir.name == "20250228-090000-aaaaaa"


def test_run_history_drops_points_superseded_by_a_resume() -> None:
    history = RunHistory()
    history.ingest([train_event(2, 2.0), train_event(4, 1.8), train_event(6, 1.7)])
    history.ingest([{"type": "resume", "from_step": 4}, train_event(6, 1.65)])
    assert history.train == [(2, 2.0), (4, 1.8), (6, 1.65)]
    history.ingest([{"type": "state", "state": "failed", "error": "OOM", "hint": "smaller"}])
    assert history.banner is not None and history.banner.kind == "failed"
    history.ingest([{"type": "state", "state": "running"}])
    assert history.banner is None


def test_banners_name_the_last_adapter_when_the_run_keeps_it() -> None:
    history = RunHistory()
    history.ingest([{"type": "best", "step": 20, "val_loss": 0.64},
                    {"type": "kept", "step": 30, "rule": "last"},
                    {"type": "warning", "code": "overfitting", "step": 30,
                     "message": "validation loss rose from 0.64 to 0.80"}])  # fmt: skip
    assert history.banner is not None
    assert "keeps its last adapter" in history.banner.text and "step 20" not in history.banner.text
    history.ingest([{"type": "early_stop", "step": 42, "best_step": 20, "best_val_loss": 0.64,
                     "patience": 2, "kept": "last"}])  # fmt: skip
    assert history.banner.kind == "early_stop"
    assert "the last adapter is kept" in history.banner.text


def test_overfitting_banner_offers_stopping_only_while_the_run_goes_on() -> None:
    for rule, kept in (("best", "best adapter (step 20) is kept"), ("last", "last adapter")):
        history = RunHistory()
        history.ingest([{"type": "state", "state": "running"},
                        {"type": "best", "step": 20, "val_loss": 0.64},
                        {"type": "kept", "step": 30, "rule": rule},
                        {"type": "warning", "code": "overfitting", "step": 30,
                         "message": "validation loss rose from 0.64 to 0.80"}])  # fmt: skip
        assert history.banner is not None and "stop now (x)" in history.banner.text
        history.ingest([{"type": "state", "state": "completed"}])
        assert history.banner is not None and history.banner.kind == "overfitting"
        assert "stop now" not in history.banner.text and kept in history.banner.text
        assert "validation loss rose from 0.64 to 0.80" in history.banner.text


def test_loss_chart_redraws_at_most_once_per_tick() -> None:
    chart = LossChart()
    chart._draw = lambda: None  # no terminal in a unit test: count the redraws only
    for step in range(1, 101):
        chart.set_series([(s, 1 / s) for s in range(1, step + 1)], [], None)
    chart._redraw_if_dirty()
    chart._redraw_if_dirty()
    assert chart.redraws == 1 and len(chart.train) == 100


async def test_the_note_says_which_gpu_a_pinned_run_uses(make_app) -> None:
    backend = FakeBackend()
    run = backend.add_run(RUN_ID, events=scripted_events(4))
    note = "GPU 0 only (pinned: 4 GPUs visible; set num_processes = 4 to train on all of them)"
    app = make_app(backend=backend, run=run.dir)
    async with app.run_test(size=SIZE) as pilot:
        widget = app.screen.query_one("#train-note", Static)
        await wait_until(pilot, lambda: "tunedeck attach" in str(widget.render()))
        run.events.append({"type": "runtime", "device": "cuda", "gpus": note})
        await wait_until(pilot, lambda: "4 GPUs visible" in str(widget.render()))
