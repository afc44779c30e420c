"""Pilot tests of step 2, Split: fraction, seed, separate file, leakage, label balance."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input, Static

from tests.tui.conftest import SAMPLE, SIZE, settle
from tui.screens.split import SplitScreen, parse_fraction


async def open_split(app, pilot) -> SplitScreen:
    await settle(pilot)
    await pilot.press("ctrl+n")
    await settle(pilot)
    assert isinstance(app.screen, SplitScreen)
    return app.screen


def text(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def test_default_split_holds_out_10_percent_stratified_without_leakage(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_split(app, pilot)
        result = app.wizard.split_result
        assert (result.train_count, result.val_count) == (124, 14)
        assert "Training 124 · validation 14 (10%)" in text(screen, "#split-summary")
        assert "stratified by 'category'" in text(screen, "#split-summary")
        assert "No leakage" in text(screen, "#leakage")
        assert "within the usual 10%-20%" in text(screen, "#split-warnings")
        table = screen.query_one(DataTable)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert sorted(r[0] for r in rows) == sorted(result.train_labels)
        assert sum(int(r[1]) for r in rows) == 124 and sum(int(r[2]) for r in rows) == 14
        assert "split" in app.steps_done


async def test_too_few_validation_examples_get_a_larger_share_suggested(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_split(app, pilot)
        advice = screen.query_one("#split-advice", Static)
        assert advice.display
        assert text(screen, "#split-advice").startswith(
            "! only 14 validation examples: too few to tell models apart; hold out 0.2 "
            "(28 examples, still under 30) and score a separate test file"
        )
        assert "tunedeck eval RUN --data FILE" in text(screen, "#split-advice")
        screen.query_one("#val-fraction", Input).value = "0.2"
        await settle(pilot)
        assert app.wizard.split_result.val_count == 28  # what the advice said
        assert "hold out" not in text(screen, "#split-advice")
        screen.query_one("#val-fraction", Input).value = "0.25"
        await settle(pilot)
        assert app.wizard.split_result.val_count == 34 and not advice.display


async def test_a_fraction_outside_10_to_20_percent_is_warned(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_split(app, pilot)
        screen.query_one("#val-fraction", Input).value = "30%"
        await settle(pilot)
        assert app.wizard.split.val_fraction == 0.3
        assert app.wizard.split_result.val_count == 41
        assert "over 20%" in text(screen, "#split-warnings")
        # out of the field, + and - are keys again
        screen.query_one(DataTable).focus()
        await pilot.press("minus")
        await settle(pilot)
        assert app.wizard.split.val_fraction == 0.25


async def test_invalid_fields_are_marked_and_block_the_next_step(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_split(app, pilot)
        screen.query_one("#split-seed", Input).value = "-3"
        await settle(pilot)
        error = screen.query_one("#split-field-error", Static)
        assert "Seed" in str(error.render()) and error.has_class("-error")
        assert "split" not in app.steps_done
        screen.query_one("#split-seed", Input).value = "7"
        await settle(pilot)
        assert "split" in app.steps_done and app.wizard.split_result.seed == 7


async def test_a_separate_validation_file_is_checked_for_leakage(make_app, tmp_path) -> None:
    val = tmp_path / "val.jsonl"
    val.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:10]))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_split(app, pilot)
        field = screen.query_one("#val-file", Input)
        field.value = str(val)
        field.focus()
        await pilot.press("enter")
        await settle(pilot)
        result = app.wizard.split_result
        assert (result.train_count, result.val_count) == (138, 10)
        assert "Leakage: 10 exact duplicate(s)" in text(screen, "#leakage")
        assert app.wizard.data_config().val == str(val)


@pytest.mark.parametrize(
    ("typed", "expected"), [("0.15", 0.15), ("15", 0.15), ("15 %", 0.15), ("0.5", 0.5)]
)
def test_parse_fraction_accepts_fractions_and_percentages(typed: str, expected: float) -> None:
    assert parse_fraction(typed) == expected


@pytest.mark.parametrize("typed", ["0", "0.6", "abc", "60%"])
def test_parse_fraction_refuses_what_a_run_cannot_use(typed: str) -> None:
    with pytest.raises(ValueError):
        parse_fraction(typed)
