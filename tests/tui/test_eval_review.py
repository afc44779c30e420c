"""Pilot tests of review at a glance: eval table cells that show labels and differing
fields, and a blind A/B dialog that shows the prompt and, on request, the reference.

The labelled run is the Evaluate tests' four support tickets (tests/tui/test_evaluate.py);
the extraction and free-text runs are written here the same way: stored rows scored by
the real metrics, no model.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual.containers import VerticalScroll
from textual.widgets import Collapsible, Static

from engine.eval.memorisation import TrainAnswerIndex
from engine.eval.metrics import METRICS_VERSION, ScoringContext
from engine.eval.review import AbPair, load_table
from engine.eval.store import append_jsonl, system_file
from engine.eval.summary import build_summary, score_output, write_summary
from tests.engine.test_review import PROMPTS
from tests.tui.conftest import SIZE
from tests.tui.test_evaluate import RUN_ID, evaluate_app, open_evaluate, write_eval
from tui.dialogs.ab_review import TURN_CHARS, AbReviewDialog, earlier_turns, system_prompt
from tui.widgets.eval_table import EvalTableView, one_line

SYSTEM = (
    "You are the order desk of Lumen Lights. Read the customer's email and reply with a "
    "JSON object with name, product, quantity and city, and nothing else."
)
ORDER = {"name": "Ann Lee", "product": "desk lamp", "quantity": 2, "city": "Paris"}
EMAILS = [
    "Hi, Ann Lee here from Paris: please send two desk lamps.",
    "Bo Chan, Lyon. I need 3 floor lamps for the new office, thanks!",
]
ORDERS = [json.dumps(ORDER), json.dumps({"name": "Bo Chan", "product": "floor lamp",
                                          "quantity": 3, "city": "Lyon"})]  # fmt: skip
ORDER_OUTPUTS = {
    "base_zero": ["Sure! Ann Lee wants two desk lamps sent to Paris.", '{"name": "Bo"'],
    "base_few": [json.dumps({**ORDER, "quantity": 3, "city": "Lyon"}), ORDERS[1]],
    "tuned": [ORDERS[0], json.dumps({"name": "Bo Chan", "product": "floor lamp", "quantity": 3})],
}
EXTRACTION = ScoringContext(None, "json_keys", "field accuracy")
FREE_TEXT = ScoringContext(None, "rouge_l", "ROUGE-L")


def write_run(
    run: Path,
    outputs: dict[str, list[str]],
    prompts: list[str],
    references: list[str],
    ctx: ScoringContext,
    system: str = "",
) -> None:
    """Stored rows of every system in `outputs` and their summary."""
    index = TrainAnswerIndex([])
    head = [{"role": "system", "content": system}] if system else []
    for name, answers in outputs.items():
        rows = [
            {
                "index": i, "line": 10 + i, "system": name, "prompt": prompts[i],
                "messages": [*head, {"role": "user", "content": prompts[i]}],
                "reference": references[i], "output": output,
                "metrics_version": METRICS_VERSION,
                "metrics": score_output(output, references[i], ctx, index),
            }
            for i, output in enumerate(answers)
        ]  # fmt: skip
        append_jsonl(system_file(run, name), rows)
    summary = build_summary(run, list(outputs), ctx, {}, None, {"examples": len(prompts)})
    write_summary(run, summary)


def new_run(tmp_path: Path) -> Path:
    run = tmp_path / RUN_ID
    run.mkdir()
    return run


async def table_cells(pilot: Any, rows: int) -> list[list[str]]:
    """The reference, base and fine-tuned cells of every row."""
    table = (await open_evaluate(pilot, rows)).query_one(EvalTableView)
    return [[str(c) for c in table.get_row_at(i)[3:6]] for i in range(table.row_count)]


def text(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def test_labelled_answers_show_the_label_and_whether_it_is_right(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    write_eval(run)
    async with evaluate_app(run).run_test(size=SIZE) as pilot:
        cells = await table_cells(pilot, 4)
    assert cells == [
        ["billing", "✓ billing", "✓ billing"],
        ["bug", "✓ bug", "✗ outage"],  # the better base here is zero-shot
        ["outage", "✗ bug", "✗json I do not…"],
        ["billing", "✗ how_to", "✓ billing"],
    ]


async def test_extraction_answers_show_the_fields_that_differ(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    write_run(run, ORDER_OUTPUTS, EMAILS, ORDERS, EXTRACTION, SYSTEM)
    async with evaluate_app(run).run_test(size=SIZE) as pilot:
        cells = await table_cells(pilot, 2)
    assert cells == [
        ['name="Ann Lee"…', "quantity=3 cit…", "✓ all fields"],
        ['name="Bo Chan"…', "✓ all fields", "no city"],
    ]


async def test_free_text_answers_read_as_before(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    references = ["Refund issued.", "Hello there"]
    outputs = {"base_few": ["We will  refund\nit today.", "Hi"], "tuned": ["Refunded.", "Hello"]}
    write_run(run, outputs, PROMPTS[:2], references, FREE_TEXT)
    async with evaluate_app(run).run_test(size=SIZE) as pilot:
        cells = await table_cells(pilot, 2)
    assert cells == [
        ["Refund issued.", "We will refund…", "Refunded."],
        ["Hello there", "Hi", "Hello"],
    ]
    assert cells[0][1] == one_line(outputs["base_few"][0], 15)  # the table's cut, as before


async def open_ab(pilot: Any, rows: int) -> AbReviewDialog:
    await open_evaluate(pilot, rows)
    await pilot.press("a")
    await pilot.pause()
    dialog = pilot.app.screen
    assert isinstance(dialog, AbReviewDialog)
    return dialog


async def test_ab_shows_the_prompt_and_the_reference_only_on_request(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    write_run(run, ORDER_OUTPUTS, EMAILS, ORDERS, EXTRACTION, SYSTEM)
    async with evaluate_app(run).run_test(size=SIZE) as pilot:
        dialog = await open_ab(pilot, 2)
        reference = dialog.query_one("#ab-reference", Static)
        assert EMAILS[0] in text(dialog, "#ab-prompt")
        system = dialog.query_one("#ab-system", Collapsible)
        assert system.collapsed and system.title.startswith("system prompt: You are the order")
        assert not reference.display and "r: show reference" in text(dialog, "#ab-keys")
        await pilot.press("r")  # the dialog's r, not the app's Runs list
        assert pilot.app.screen is dialog
        assert reference.display and ORDERS[0] in text(dialog, "#ab-reference")
        assert "r: hide reference" in text(dialog, "#ab-keys")
        await pilot.press("r")
        assert not reference.display
        await pilot.press("r", "1")  # the next pair starts blind again
        assert EMAILS[1] in text(dialog, "#ab-prompt") and not reference.display
        await pilot.press("r")
        assert ORDERS[1] in text(dialog, "#ab-reference")


def test_a_conversation_shows_its_earlier_turns_on_one_line_each(tmp_path: Path) -> None:
    run = new_run(tmp_path)
    write_run(run, ORDER_OUTPUTS, EMAILS, ORDERS, EXTRACTION, SYSTEM)
    row = load_table(run).rows[0]
    assert system_prompt(row) == SYSTEM and earlier_turns(row) == ""
    talk = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Do you ship\nto Lyon?"},
        {"role": "assistant", "content": "Yes, " + "we do. " * 30},
        {"role": "user", "content": EMAILS[1]},
    ]
    lines = earlier_turns(replace(row, messages=talk)).splitlines()
    assert lines[0] == "user: Do you ship to Lyon?"
    assert lines[1].startswith("assistant: Yes, we do.") and lines[1].endswith("…")
    assert len(lines) == 2 and len(lines[1]) == len("assistant: ") + TURN_CHARS


def long_prompt_run(tmp_path: Path) -> Path:
    run = new_run(tmp_path)
    prompts = [f"{EMAILS[0]}\n" + "\n".join(f"Line {n} of the email." for n in range(30))]
    write_run(run, {k: v[:1] for k, v in ORDER_OUTPUTS.items()}, prompts, ORDERS, EXTRACTION,
              SYSTEM)  # fmt: skip
    return run


async def test_ab_scrolls_to_the_answers_at_80x24(tmp_path: Path) -> None:
    run = long_prompt_run(tmp_path)
    async with evaluate_app(run).run_test(size=(80, 24)) as pilot:
        dialog = await open_ab(pilot, 1)
        scroll = dialog.query_one("#ab-scroll", VerticalScroll)
        keys = dialog.query_one("#ab-keys", Static)
        assert scroll.max_scroll_y > 0 and keys.region.bottom <= 24
        assert dialog.focused is scroll
        await pilot.press("end")
        await pilot.pause()
        assert scroll.scroll_y == scroll.max_scroll_y
        left = dialog.query_one("#ab-left", Static)
        assert left.region.height > 0 and left.region.bottom <= scroll.region.bottom


def test_snapshot_ab_review_80x24(snap_compare, tmp_path: Path) -> None:
    run = new_run(tmp_path)
    write_run(run, ORDER_OUTPUTS, EMAILS, ORDERS, EXTRACTION, SYSTEM)

    async def shown(pilot: Any) -> None:
        dialog = await open_ab(pilot, 2)
        tuned, few = ORDER_OUTPUTS["tuned"], ORDER_OUTPUTS["base_few"]
        # the sides are drawn at random: fixed here, so that the picture is stable
        dialog.pairs = [AbPair(i, "tuned", "base_few", tuned[i], few[i]) for i in range(2)]
        dialog._show()
        await pilot.press("r")
        await pilot.pause()

    assert snap_compare(evaluate_app(run), terminal_size=(80, 24), run_before=shown)
