"""Pilot tests of the loop in the Evaluate step: a prompt pool's answers reviewed with y
(accept) and c (correct, in a checked editor), then D writes the next run's data and
starts the next run like this one. No model: the pool's answers are written by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from textual.widgets import Input, Static, TextArea

from engine.config.build import from_preset, save_config, with_overrides
from engine.data.formats import load_examples, write_chat_jsonl
from engine.eval.answer_digest import NOT_JSON
from engine.eval.metrics import METRICS_VERSION, POOL, pool_scores
from engine.eval.options import EvalOptions, save_options
from engine.eval.pool_summary import pool_summary
from engine.eval.review import load_marks
from engine.eval.sets import prepare_test_set
from engine.eval.store import append_jsonl, system_file
from engine.eval.summary import build_scoring, write_summary
from tests.conftest import REPO_ROOT
from tests.tui.conftest import SIZE, wait_until
from tests.tui.test_evaluate import RUN_ID, EvalBackend, evaluate_app, open_evaluate
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.correction import CorrectionDialog
from tui.dialogs.eval_detail import EvalDetailDialog
from tui.dialogs.prompt import PromptDialog
from tui.screens.train import TrainScreen
from tui.widgets.eval_table import EvalTableView

SAMPLE = REPO_ROOT / "sample_data"
ANSWERS = [
    '{"category": "billing", "reply": "Invoices are under Settings > Billing."}',
    '{"category": "bug", "reply": "Thanks, please send a screenshot."}',
    "I am not sure.",
    '{"category": "account", "reply": "Reset it from the sign-in page."}',
]
RIGHT = '{"category": "outage", "reply": "We are on it: see the status page."}'


def pool_run(tmp_path: Path) -> tuple[Path, Path]:
    """A finished run (config, split) that answered a four-prompt pool."""
    run = tmp_path / RUN_ID
    (run / "data").mkdir(parents=True)
    tickets = load_examples(SAMPLE / "support_tickets.jsonl").examples
    write_chat_jsonl(tickets[:40], run / "data" / "train.jsonl")
    write_chat_jsonl(tickets[40:46], run / "data" / "val.jsonl")
    cfg = with_overrides(from_preset("quick"), **{"data.source": str(tmp_path / "t.jsonl")})
    save_config(cfg, run / "config.toml")
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(SAMPLE.joinpath("support_tickets_pool.jsonl").read_text()
                            .splitlines(keepends=True)[:4]))  # fmt: skip
    eval_set = prepare_test_set(run, pool)
    rows = [
        {"index": i, "line": i + 1, "system": "tuned", "prompt": e.messages[-1].content,
         "messages": [], "reference": "", "output": ANSWERS[i], "finished": True,
         "metrics_version": METRICS_VERSION, "scored_as": POOL,
         "metrics": pool_scores(ANSWERS[i], True)}
        for i, e in enumerate(eval_set.examples)
    ]  # fmt: skip
    append_jsonl(system_file(run, "tuned", eval_set.name), rows)
    ctx, _ = build_scoring(tickets[:40], [])
    extra = {"examples": 4, "eval_set": eval_set.to_json(4)}
    summary = pool_summary(run, ["tuned"], ctx, {}, None, extra, eval_set.name)
    write_summary(run, summary, eval_set.name)
    save_options(run, EvalOptions(data=str(pool)))  # the set the Evaluate step shows
    return run, pool


async def edit(pilot: Any, text: str) -> CorrectionDialog:
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, CorrectionDialog), 10)
    dialog = pilot.app.screen
    dialog.query_one(TextArea).text = text
    await pilot.pause()
    return dialog


async def test_a_pool_is_reviewed_grown_and_trained_again(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    run, pool = pool_run(tmp_path)
    name = prepare_test_set(run, pool).name
    backend = EvalBackend()
    async with evaluate_app(run, backend).run_test(size=SIZE) as pilot:
        screen = await open_evaluate(pilot)
        summary = str(screen.query_one("#eval-summary").render())
        assert "no references: review to score" in summary
        cells = screen.query_one(EvalTableView).get_row_at(0)
        assert cells[3] == "— (pool)"
        # at 80 columns the answer's label shows, not its first characters of JSON
        assert cells[5] == "billing", cells
        assert screen.query_one(EvalTableView).get_row_at(2)[5].startswith(NOT_JSON)

        await pilot.press("y")  # accept the first answer
        await wait_until(pilot, lambda: load_marks(run, name).get(0, {}).get("verdict")
                         == "accepted", 10)  # fmt: skip
        assert load_marks(run, name)[0]["answer"] == ANSWERS[0]
        await wait_until(pilot, lambda: screen.query_one(EvalTableView).get_row_at(0)[1]
                         == "· ✓", 10)  # fmt: skip

        await pilot.press("j", "j", "c")  # the third answer is no JSON: correct it
        dialog = await edit(pilot, "outage")
        check = str(dialog.query_one("#correction-check", Static).render())
        assert check.startswith("✗ not valid JSON")
        await pilot.press("ctrl+s")  # refused: the dialog stays
        assert isinstance(pilot.app.screen, CorrectionDialog)
        await edit(pilot, json.dumps(json.loads(RIGHT), indent=2))
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: load_marks(run, name).get(2, {}).get("answer") == RIGHT,
                         10)  # fmt: skip
        summary = screen.query_one("#eval-summary")
        await wait_until(pilot, lambda: "1 accepted · 1 corrected (D: to a new dataset)"
                         in str(summary.render()), 10)  # fmt: skip
        await pilot.press("enter")  # the detail: the correction, no diff with no reference
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, EvalDetailDialog), 10)
        titles = [str(title.render()) for title in pilot.app.screen.query(".detail-title")]
        assert "your answer (corrected)" in titles, titles
        assert not pilot.app.screen.query("#detail-diff")
        await pilot.press("escape")
        await pilot.press("w")  # a pool has no reference to fix
        await pilot.pause()
        assert not isinstance(pilot.app.screen, CorrectionDialog)

        await pilot.press("D")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, PromptDialog), 10)
        grown = tmp_path / "next.jsonl"
        pilot.app.screen.query_one(Input).value = str(grown)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog), 10)
        message = str(pilot.app.screen.query_one("#confirm-message", Static).render())
        assert "40 training examples of the run + 2 added (1 accepted, 1 corrected)" in message
        assert "lint: 42 usable examples, 0 error(s)" in message  # the grown file, linted
        await pilot.press("y")  # train the next run like this one
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, TrainScreen), 10)
    records = [json.loads(line) for line in grown.read_text().splitlines()]
    assert len(records) == 42 and records[-1]["meta"]["how"] == "corrected"
    assert records[-1]["messages"][-1]["content"] == RIGHT
    (started,) = backend.started
    assert started.data.source == str(grown) and started.method == "lora"
    assert started.max_steps == from_preset("quick").max_steps  # the run's own settings
