"""Pilot tests of step 5, Evaluate, on hand-written eval rows (no model, no torch).

The rows are the engine review tests' four support tickets, scored by the real metrics,
in a run directory named like a real run: nothing on screen depends on the temp path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from engine.eval.memorisation import TrainAnswerIndex
from engine.eval.metrics import METRICS_VERSION, scoring_context
from engine.eval.options import EvalOptions
from engine.eval.review import ab_stats, filter_rows, load_marks, load_table
from engine.eval.store import append_jsonl, system_file
from engine.eval.summary import build_summary, score_output, write_summary
from engine.runs.store import RunInfo
from tests.engine.test_review import OUTPUTS, PROMPTS, REFERENCES, TICKET
from tests.tui.conftest import SIZE, FakeBackend, FakeRun, wait_until
from tui.app import TunedeckApp
from tui.dialogs.ab_review import AbReviewDialog
from tui.dialogs.error import ErrorDialog
from tui.dialogs.eval_detail import EvalDetailDialog
from tui.screens.evaluate import EvaluateScreen
from tui.widgets.eval_table import EvalTableView

RUN_ID = "20250301-101500-c0ffee"


def write_eval(run: Path) -> None:
    """Stored rows of three systems and their summary, as engine.eval.launch leaves them."""
    labels = [TICKET % (c, "x") for c in ("billing", "bug", "outage") * 4]
    ctx = scoring_context(REFERENCES, labels)
    index = TrainAnswerIndex([])
    for system, outputs in OUTPUTS.items():
        rows = [
            {
                "index": i, "line": 100 + i, "system": system, "prompt": PROMPTS[i],
                "messages": [{"role": "user", "content": PROMPTS[i]}],
                "reference": REFERENCES[i], "output": output,
                "metrics_version": METRICS_VERSION,
                "metrics": score_output(output, REFERENCES[i], ctx, index),
            }
            for i, output in enumerate(outputs)
        ]  # fmt: skip
        append_jsonl(system_file(run, system), rows)
    write_summary(run, build_summary(run, list(OUTPUTS), ctx, {}, None, {"examples": 4}))


class EvalBackend(FakeBackend):
    """A FakeBackend whose runs live in real directories; `start_eval` scripts events."""

    def __init__(self) -> None:
        super().__init__()
        self.eval_starts = 0
        self.eval_options: list[EvalOptions | None] = []

    def add_dir(self, run_dir: Path) -> FakeRun:
        self.runs[run_dir] = FakeRun(run_dir, self.add_run("x").config, "completed")
        return self.runs[run_dir]

    def start_eval(self, run_dir: Path, options: EvalOptions | None = None) -> int:
        self.eval_starts += 1
        self.eval_options.append(options)
        progress = {"type": "eval_progress", "phase": "generate", "system": "tuned"}
        self.runs[run_dir].events += [
            {"type": "eval_started", "systems": list(OUTPUTS), "examples": 4},
            {**progress, "done": 2, "total": 4},
            {**progress, "done": 4, "total": 4},
        ]
        write_eval(run_dir)
        self.runs[run_dir].events.append({"type": "eval_done", "verdict": "ok"})
        return 1234

    def run_info(self, run_dir: Path) -> RunInfo:
        return self.runs[run_dir].info()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / RUN_ID
    run.mkdir()
    write_eval(run)
    return run


async def open_evaluate(pilot: Any, rows: int | None = 4) -> EvaluateScreen:
    await pilot.app.switch_mode("evaluate")
    screen = pilot.app.screen
    assert isinstance(screen, EvaluateScreen)
    if rows is not None:
        table = screen.query_one(EvalTableView)
        await wait_until(pilot, lambda: table.row_count == rows, timeout=10)
    return screen


def evaluate_app(run: Path, backend: EvalBackend | None = None) -> TunedeckApp:
    backend = backend or EvalBackend()
    backend.add_dir(run)
    return TunedeckApp(backend, Path("data.jsonl"), "smollm2-135m", run)


async def test_marks_are_saved_at_once_and_shown_by_a_new_app(run_dir: Path) -> None:
    async with evaluate_app(run_dir).run_test(size=SIZE) as pilot:
        screen = await open_evaluate(pilot)
        await pilot.press("g", "j", "b", "j", "s", "s")  # s twice: the mark is cleared

        def marked() -> dict[int, str]:  # saved by a worker, in key order, just after
            return {i: m["mark"] for i, m in load_marks(run_dir).items() if m.get("mark")}

        await wait_until(pilot, lambda: marked() == {0: "good", 1: "bad"}, 30)
        summary = screen.query_one("#eval-summary")
        await wait_until(pilot, lambda: "1 good · 1 bad · 0 skip" in str(summary.render()), 30)
    async with evaluate_app(run_dir).run_test(size=SIZE) as pilot:
        screen = await open_evaluate(pilot)
        table = screen.query_one(EvalTableView)
        assert [table.get_row_at(i)[1] for i in range(3)] == ["good", "BAD", "·"]


async def test_a_note_is_saved_with_the_example(run_dir: Path) -> None:
    async with evaluate_app(run_dir).run_test(size=SIZE) as pilot:
        await open_evaluate(pilot)
        await pilot.press("n")
        await pilot.pause()
        await pilot.press(*"polite", "enter")
        await wait_until(pilot, lambda: load_marks(run_dir).get(0, {}).get("note") == "polite", 30)


async def test_filters_search_and_sort_change_the_rows(run_dir: Path) -> None:
    rows = load_table(run_dir).rows
    expected = [len(filter_rows(rows, kind)) for kind in ("regressions", "failures")]
    async with evaluate_app(run_dir).run_test(size=SIZE) as pilot:
        screen = await open_evaluate(pilot)
        table = screen.query_one(EvalTableView)
        await pilot.press("f")
        assert (table.row_count, expected[0]) == (expected[0], 1)
        await pilot.press("f")
        assert table.row_count == expected[1]
        await pilot.press("f", "f")  # unreviewed, then all again
        assert table.row_count == 4
        await pilot.press("slash")
        await pilot.pause()
        await pilot.press(*"receipt", "enter")
        await pilot.pause()
        assert [r.index for r in table.shown] == [3]
        assert "search “receipt”" in str(screen.query_one("#eval-status", Static).render())


async def test_enter_opens_the_example_with_a_word_diff(run_dir: Path) -> None:
    async with evaluate_app(run_dir).run_test(size=SIZE) as pilot:
        await open_evaluate(pilot)
        await pilot.press("j", "enter")
        await pilot.pause()
        dialog = pilot.app.screen
        assert isinstance(dialog, EvalDetailDialog) and dialog.row.index == 1
        diff = str(dialog.query_one("#detail-diff", Static).render())
        assert '[-"bug",-] {+"outage",+}' in diff
        await pilot.press("escape")
        assert isinstance(pilot.app.screen, EvaluateScreen)


async def test_blind_ab_records_preferences(run_dir: Path) -> None:
    async with evaluate_app(run_dir).run_test(size=SIZE) as pilot:
        screen = await open_evaluate(pilot)
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(pilot.app.screen, AbReviewDialog)
        await pilot.press("1", "t")
        await wait_until(pilot, lambda: ab_stats(run_dir, "base_few").n == 2, 30)
        assert ab_stats(run_dir, "base_few").ties == 1
        stats_line = pilot.app.screen.query_one("#ab-stats", Static)
        await wait_until(pilot, lambda: "2 rated" in str(stats_line.render()), 30)
        await pilot.press("escape")
        summary = screen.query_one("#eval-summary")
        rated = "A/B vs base few-shot: 2 rated"
        await wait_until(pilot, lambda: rated in str(summary.render()), 30)


async def test_export_writes_csv_in_the_eval_dir(run_dir: Path) -> None:
    async with evaluate_app(run_dir).run_test(size=SIZE) as pilot:
        await open_evaluate(pilot)
        await pilot.press("x")
        csv = run_dir / "eval" / "review.csv"
        await wait_until(pilot, lambda: csv.is_file(), timeout=10)


async def test_evaluate_follows_progress_then_loads_the_table(tmp_path: Path) -> None:
    run = tmp_path / RUN_ID
    run.mkdir()
    backend = EvalBackend()
    async with evaluate_app(run, backend).run_test(size=SIZE) as pilot:
        screen = await open_evaluate(pilot, rows=0)
        await wait_until(pilot, lambda: "not evaluated on the validation split yet" in str(
            screen.query_one("#eval-status", Static).render()), timeout=10)  # fmt: skip
        await pilot.press("e")
        table = screen.query_one(EvalTableView)
        await wait_until(pilot, lambda: table.row_count == 4, timeout=10)
        assert backend.eval_starts == 1 and not screen.evaluating


async def test_evaluating_a_run_without_validation_data_explains_why(tmp_path: Path) -> None:
    run = tmp_path / RUN_ID
    run.mkdir()
    backend = EvalBackend()
    backend.start_eval = FakeBackend.start_eval.__get__(backend)  # type: ignore[method-assign]
    async with evaluate_app(run, backend).run_test(size=SIZE) as pilot:
        await open_evaluate(pilot, rows=0)
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ErrorDialog), timeout=10)
        message = pilot.app.screen.query_one("#error-message", Static)
        assert "no validation examples" in str(message.render())


def test_snapshot_evaluate(snap_compare, tmp_path: Path) -> None:
    run = tmp_path / RUN_ID
    run.mkdir()
    write_eval(run)

    async def ready(pilot: Any) -> None:
        await open_evaluate(pilot)
        await pilot.pause()

    assert snap_compare(evaluate_app(run), terminal_size=SIZE, run_before=ready)
