"""End to end: the Evaluate screen's controls on a tiny trained run (real EngineBackend, real
detached evaluation process, no fakes): ctrl+x stops an evaluation that `e` then
continues without redoing a row, and an evaluation started from the Eval settings with a
judge on the loopback chat server shows the judge's win rate in the summary."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input, Select, Static

from engine.core.events import iter_all_events
from engine.eval.options import EvalOptions, load_options, save_options
from engine.eval.store import read_jsonl
from tests.chat_server import ChatServer
from tests.integration.test_evaluate import (  # noqa: F401
    chat_server,
    copy_run,
    data_file,
    evaluated_run,
    trained_run,
)
from tests.tui.conftest import SIZE, wait_until
from tui.app import TunedeckApp
from tui.backend_engine import EngineBackend
from tui.dialogs.eval_settings import EvalSettingsDialog
from tui.screens.evaluate import EvaluateScreen
from tui.widgets.eval_summary import EvalSummary

SYSTEMS = ("base_zero", "tuned")
SLOW = EvalOptions(systems=SYSTEMS, max_new_tokens=64, batch_size=1, loss=False, probes=False)
"""One example per generate call and long answers: slow enough to stop part-way."""


async def open_evaluate(app: TunedeckApp) -> EvaluateScreen:
    await app.switch_mode("evaluate")
    screen = app.screen
    assert isinstance(screen, EvaluateScreen)
    return screen


def generated(run: Path) -> dict[str, bytes]:
    """The rows files of SYSTEMS as they are (b"" for a system not reached yet)."""
    files = {s: run / "eval" / f"{s}.jsonl" for s in SYSTEMS}
    return {s: path.read_bytes() if path.exists() else b"" for s, path in files.items()}


def restarted_progress(run: Path) -> list[tuple[str, int]]:
    """(system, done) of each generate progress event after the second eval_started."""
    events = [e for e in iter_all_events(run) if e["type"].startswith("eval_")]
    starts = [i for i, e in enumerate(events) if e["type"] == "eval_started"]
    return [(e["system"], e["done"]) for e in events[starts[1] :]
            if e["type"] == "eval_progress" and e["phase"] == "generate"]  # fmt: skip


async def test_ctrl_x_stops_and_e_continues_without_redoing_rows(
    trained_run: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    run = copy_run(trained_run, tmp_path)
    save_options(run, SLOW)  # the run's eval settings: `e` uses them
    app = TunedeckApp(EngineBackend(), run / "data" / "train.jsonl", "tiny", run)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_evaluate(app)
        await wait_until(pilot, lambda: screen.options == SLOW, 30)
        await pilot.press("e")
        await wait_until(pilot, lambda: bool(read_jsonl(run / "eval" / "base_zero.jsonl")), 120)
        await pilot.press("ctrl+x")
        await wait_until(pilot, lambda: not screen.evaluating, 120)
        kept = generated(run)
        rows = sum(len(read_jsonl(run / "eval" / f"{s}.jsonl")) for s in SYSTEMS)
        assert 1 <= rows < 18, "the evaluation finished before it could be stopped"
        status = str(screen.query_one("#eval-status", Static).render())
        assert status == f"Evaluation stopped — {rows}/18 rows kept; press e to continue."
        assert [e["type"] for e in iter_all_events(run)][-1] == "eval_stopped"

        await pilot.press("e")
        await wait_until(pilot, lambda: screen.evaluating, 30)
        await wait_until(pilot, lambda: not screen.evaluating, 240)
        assert screen.stopped == ""
        for system, data in kept.items():  # the rows kept were not generated again
            assert (run / "eval" / f"{system}.jsonl").read_bytes().startswith(data), system
            assert sorted(r["index"] for r in read_jsonl(run / "eval" / f"{system}.jsonl")) == [
                *range(9)
            ]
        system, done = restarted_progress(run)[0]
        assert done == kept[system].count(b"\n")  # it went on from where it stopped
        app.backend.shutdown()


async def test_a_judge_set_in_the_settings_judges_over_loopback(
    evaluated_run: Path,  # noqa: F811
    chat_server: ChatServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    run = copy_run(evaluated_run, tmp_path)  # rows of every system: only the judge runs
    app = TunedeckApp(EngineBackend(), run / "data" / "train.jsonl", "tiny", run)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_evaluate(app)
        await wait_until(pilot, lambda: screen.table is not None, 30)
        await pilot.press("E")
        await wait_until(pilot, lambda: isinstance(app.screen, EvalSettingsDialog), 30)
        dialog = app.screen
        assert list(dialog.boxes)[:3] == ["base_zero", "base_few", "tuned"]
        assert any(s.startswith("tuned@") for s in dialog.boxes)  # the run's checkpoints
        fields = {"max_examples": "4", "max_new_tokens": "8"}  # the stored rows' settings
        for name, value in fields.items():
            dialog.query_one(f"#field-{name}", Input).value = value
        dialog.query_one("#field-judge", Select).value = "url"
        await pilot.pause()
        dialog.query_one("#field-url", Input).value = chat_server.url
        dialog.query_one("#field-model", Input).value = "judge"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: screen.evaluating, 30)
        await wait_until(pilot, lambda: not screen.evaluating, 240)
        summary = screen.query_one(EvalSummary)
        await wait_until(pilot, lambda: "judge vs" in str(summary.render()), 30)
        text = str(summary.render())
        assert "fine-tuned won" in text and "of 4 (" in text and "swap-consistent" in text
        assert len(chat_server.requests) == 8  # 4 examples, both orders
        options = load_options(run)
        assert options is not None and options.judge is not None
        assert options.judge.url == chat_server.url and options.max_examples == 4
        app.backend.shutdown()
