"""Pilot tests of the Runs screen's extras: marking, the Compare screen, deleting, and
notifications of runs that complete, fail or overfit (FakeBackend runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import DataTable, Static

from engine.config.build import TrainConfig, with_overrides
from tests.engine.test_outcome import TICKETS, answers, score_on, ticket_run, write_test_file
from tests.tui.conftest import (
    SIZE,
    FakeBackend,
    notified,
    scripted_events,
    settle,
    train_event,
    wait_until,
)
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.error import ErrorDialog
from tui.notify import Notifier
from tui.screens.compare import CompareScreen
from tui.screens.runs import RunsScreen
from tui.screens.train import TrainScreen
from tui.widgets.compare_chart import CompareChart

OLD, NEW, LIVE = "20250228-090000-aaaaaa", "20250301-090000-bbbbbb", "20250302-090000-cccccc"


def eval_summary(tuned: float, base: float) -> dict[str, Any]:
    """A summary.json as an evaluation writes it (the fields the comparison reads)."""
    stats = {"rouge_l": 0.5, "failures": 0, "n": 20}
    return {
        "primary": {"kind": "label", "name": "label accuracy"},
        "systems": {
            "tuned": {**stats, "primary": tuned, "val_loss": 0.61},
            "base_few": {**stats, "primary": base, "val_loss": 1.9},
        },
        "verdict": "fine-tuned beats few-shot base",
    }


def history_backend() -> FakeBackend:
    """Two finished runs (different learning rates, one evaluated) and one training."""
    backend = FakeBackend()
    base = with_overrides(TrainConfig(), model="smollm2-135m")
    backend.add_run(OLD, "completed", events=scripted_events(40), config=base,
                    summary=eval_summary(0.85, 0.4))  # fmt: skip
    faster = [  # the higher learning rate: training loss falls faster, then overfits
        {**e, "loss": round(e["loss"] * 0.7, 4)} if e.get("split") == "train" else e
        for e in scripted_events(30, overfit=True)
    ]
    backend.add_run(NEW, "completed", events=faster,
                    config=with_overrides(base, learning_rate=1e-3, **{"lora.r": 32}))  # fmt: skip
    backend.add_run(LIVE, events=scripted_events(10))
    return backend


def outcome_backend(folder: Path) -> FakeBackend:
    """history_backend, with OLD and NEW as real run directories (under `folder`) whose
    fine-tuned models were scored on two test files: tickets_test (NEW right on 8 more
    examples than OLD) and more_tickets (the same answers)."""
    backend = history_backend()
    for run_id in (OLD, NEW):
        fake = backend.runs.pop(Path("/fake-runs") / run_id)
        fake.dir = ticket_run(folder, run_id)
        backend.runs[fake.dir] = fake
    old, new = (d for d in backend.runs if d.name in (OLD, NEW))
    tickets = write_test_file(folder)
    score_on(old, tickets, answers(range(12)))
    score_on(new, tickets, answers(range(20)))
    more = TICKETS[30:40]
    other = write_test_file(folder, more, "more_tickets")
    for run_dir in (old, new):
        score_on(run_dir, other, answers(range(5), more))
    return backend


def outcome_text(screen) -> str:
    return str(screen.query_one("#compare-outcome", Static).render())


def table(app) -> DataTable:
    return app.screen.query_one("#runs-table", DataTable)


def cell_texts(data_table: DataTable) -> list[list[str]]:
    return [[str(c) for c in data_table.get_row_at(i)] for i in range(data_table.row_count)]


async def listed(pilot, rows: int = 3) -> None:
    """On the Runs screen with `rows` runs listed: active first, then newest first."""
    if not isinstance(pilot.app.screen, RunsScreen):
        await pilot.press("r")
    await wait_until(pilot, lambda: table(pilot.app).row_count == rows)


async def mark_rows(pilot, *rows: int) -> None:
    for row in rows:
        table(pilot.app).move_cursor(row=row, animate=False)
        await pilot.press("space")


async def test_space_marks_runs_and_c_opens_the_comparison(make_app) -> None:
    app = make_app(backend=history_backend())
    async with app.run_test(size=SIZE) as pilot:
        await listed(pilot)
        await mark_rows(pilot, 2)  # OLD
        assert cell_texts(table(app))[2][:2] == ["✓", OLD]
        marks = app.screen.query_one("#runs-marks", Static)
        assert marks.display and "1 run marked" in str(marks.render())
        await pilot.press("c")
        assert isinstance(app.screen, RunsScreen)  # one run is no comparison
        assert notified(app, "two or more")

        await mark_rows(pilot, 1)  # NEW
        await pilot.press("c")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert [d.name for d in screen.run_dirs] == [OLD, NEW]
        legend = str(screen.query_one("#compare-runs", Static).render()).splitlines()
        assert legend[0].startswith("A  ⠤⠤ train  x val") and OLD in legend[0]
        assert legend[1].startswith("B  •• train  o val") and NEW in legend[1]
        chart = screen.query_one(CompareChart)
        assert [r.tag for r in chart.runs] == ["A", "B"]
        assert len(chart.runs[0].train) == 20 and len(chart.runs[1].val) == 4

        config = cell_texts(screen.query_one("#compare-config", DataTable))
        assert ["learning_rate", "0.0002", "0.001"] in config
        assert ["lora.r", "16", "32"] in config and len(config) == 2
        evals = cell_texts(screen.query_one("#compare-eval", DataTable))
        assert ["fine-tuned · primary", "0.85", "—"] in evals
        assert ["base few-shot · primary", "0.4", "—"] in evals
        heading = str(screen.query_one("#compare-eval-heading", Static).render())
        assert heading == "Evaluation · primary: label accuracy"  # named once, above

        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)
        await mark_rows(pilot, 2)  # unmark OLD
        assert cell_texts(table(app))[2][0] == ""


async def test_the_outcome_on_shared_test_files_and_t_cycles_them(make_app, tmp_path: Path) -> None:
    app = make_app(backend=outcome_backend(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await listed(pilot)
        await mark_rows(pilot, 1, 2)  # NEW marked first: A is still OLD, the earlier run
        await pilot.press("c")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert screen.check_action("next_test_set", ()) is True
        assert screen.query_one("#compare-outcome", Static).display
        first = outcome_text(screen).splitlines()
        assert first[0] == (
            "Outcome on test file more_tickets.jsonl (10 examples) · category accuracy · "
            "1 of 2 (t: next)"
        )
        assert first[1] == "A 0.50 [0.24, 0.76]   B 0.50 [0.24, 0.76]"
        assert first[2].startswith("B and A score the same on every example's category acc")

        await pilot.press("t")
        await settle(pilot)
        text = outcome_text(screen)
        assert text.startswith("Outcome on test file tickets_test.jsonl (20 examples)")
        assert "· 2 of 2 (t: next)" in text
        assert "A 0.60 [0.39, 0.78]   B 1.00 [0.84, 1.00]" in text
        assert "B beats A on category accuracy: 1.00 [0.84, 1.00] vs 0.60 [0.39, 0.78], " in text
        assert "8 wins / 0 losses, p = 0.008" in text
        assert screen.outcome is not None and screen.outcome.versus[0].wins == 8

        await pilot.press("t")
        await settle(pilot)
        assert outcome_text(screen).startswith("Outcome on test file more_tickets.jsonl")
        assert isinstance(app.screen, CompareScreen)  # `t` never left for the Playground


async def test_runs_not_scored_on_one_test_file_show_no_outcome(make_app) -> None:
    app = make_app(backend=history_backend())  # no run directory: no test set shared
    async with app.run_test(size=SIZE) as pilot:
        await listed(pilot)
        await mark_rows(pilot, 1, 2)
        await pilot.press("c")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen) and screen.test_sets == []
        assert not screen.query_one("#compare-outcome", Static).display
        assert screen.check_action("next_test_set", ()) is False  # `t`: the app's Playground


async def test_compare_without_evaluations_says_so(make_app) -> None:
    backend = history_backend()
    backend.runs[next(d for d in backend.runs if d.name == OLD)].summary = None
    app = make_app(backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await listed(pilot)
        await mark_rows(pilot, 1, 2)
        await pilot.press("c")
        await settle(pilot)
        assert not app.screen.query_one("#compare-eval", DataTable).display
        note = app.screen.query_one("#compare-eval-note", Static)
        assert note.display and "No run evaluated on its validation split yet" in str(note.render())


async def test_d_deletes_a_finished_run_after_asking(make_app) -> None:
    backend = history_backend()
    app = make_app(backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await listed(pilot)
        table(app).move_cursor(row=2, animate=False)  # OLD, completed
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert OLD in app.screen.message and "3.0 MB" in app.screen.message
        await pilot.press("n")
        await settle(pilot)
        assert OLD in [d.name for d in backend.runs]

        await pilot.press("delete")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_until(pilot, lambda: table(app).row_count == 2)
        assert OLD not in [d.name for d in backend.runs]
        assert notified(app, f"Run {OLD} deleted")


async def test_deleting_a_training_run_is_refused_with_the_engine_message(make_app) -> None:
    backend = history_backend()
    app = make_app(backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await listed(pilot)
        table(app).move_cursor(row=0, animate=False)  # LIVE, running
        await pilot.press("d")
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert (app.screen.message, app.screen.title_text) == (
            f"run {LIVE} is running: a run that is training cannot be deleted",
            "Cannot delete the run",
        )
        assert "tunedeck stop" in app.screen.hint
        assert len(backend.runs) == 3


async def test_runs_screen_announces_a_run_that_completes_once(make_app) -> None:
    backend = history_backend()
    app = make_app(backend=backend)
    app.notifier = Notifier(env={"TERM": "xterm-256color"})
    async with app.run_test(size=SIZE) as pilot:
        await listed(pilot)
        screen = app.screen
        assert app.notifier.sent == []  # finished before we looked: not news
        live = next(run for run in backend.runs.values() if run.dir.name == LIVE)
        live.events.append({"type": "best", "step": 10, "val_loss": 0.9})
        live.state = "completed"
        screen.list_runs()
        await wait_until(pilot, lambda: len(app.notifier.sent) == 1)
        notice = app.notifier.sent[0]
        assert (notice.run_id, notice.kind) == (LIVE, "completed")
        assert "best val loss 0.9000 at step 10" in notice.body
        assert notified(app, f"run {LIVE} completed")
        screen.list_runs()
        await settle(pilot)
        assert len(app.notifier.sent) == 1


async def test_train_screen_announces_live_overfitting_not_the_replayed_one(make_app) -> None:
    backend = FakeBackend()
    run = backend.add_run(LIVE, events=scripted_events(40, overfit=True))
    app = make_app(backend=backend, run=run.dir)
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, TrainScreen)
        banner = app.screen.query_one("#train-banner", Static)
        await wait_until(pilot, lambda: banner.display)
        assert app.notifier.sent == []  # the history's warning is not news

        run.events += [train_event(42, 0.35),
                       {"type": "warning", "code": "overfitting", "step": 42,
                        "message": "validation loss rose again"}]  # fmt: skip
        await wait_until(pilot, lambda: len(app.notifier.sent) == 1)
        assert app.notifier.sent[0].kind == "overfitting"
        run.state = "failed"
        run.events.append({"type": "state", "state": "failed", "error": "CUDA out of memory"})
        await wait_until(pilot, lambda: len(app.notifier.sent) == 2)
        assert app.notifier.sent[1].kind == "failed"
