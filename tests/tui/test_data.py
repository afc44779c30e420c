"""Pilot tests of step 1, Data: lint report, findings in context, tokens, cleaned copy."""

from __future__ import annotations

import shutil
from pathlib import Path

from textual.widgets import Input, OptionList, ProgressBar, TabbedContent

from engine.core.paths import sample_data_dir
from tests.tui.conftest import DEFECTS, SIZE, settle, wait_until
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.file_browser import FileBrowserDialog, FileTree
from tui.dialogs.prompt import PromptDialog
from tui.widgets.chat_view import PROBLEM_MARK
from tui.widgets.dataset_stats import DatasetStats
from tui.widgets.finding_view import FindingView, marked_source
from tui.widgets.length_histogram import LengthHistogram
from tui.widgets.lint_report import LintReportList
from tui.widgets.path_input import PathSuggester


def option_texts(options: OptionList) -> list[str]:
    return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]


async def choose_finding(pilot, code: str, line: int) -> None:
    """Move the lint list's cursor to a finding and press Enter on it."""
    report = pilot.app.screen.query_one(LintReportList)
    index = next(
        i
        for i in range(report.option_count)
        if (option := report.get_option_at_index(i)).id is not None
        and report.findings[int(option.id)].code == code
        and report.findings[int(option.id)].line == line
    )
    report.focus()
    report.highlighted = index
    await pilot.press("enter")
    await settle(pilot)


async def test_defects_open_on_the_lint_report_grouped_by_severity(make_app) -> None:
    app = make_app(data=DEFECTS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert screen.query_one(TabbedContent).active == "lint"
        texts = option_texts(screen.query_one(LintReportList))
        headers = [t for t in texts if t.isupper() or t.split(" (")[0].isupper()]
        assert [h.split(" (")[0] for h in headers] == ["ERRORS", "WARNINGS", "INFO"]
        errors = texts[1 : texts.index(headers[1])]
        assert [t.split()[1] for t in errors] == ["7", "9", "20", "22"]
        assert all(t.startswith("✗") for t in errors)
        assert any("exact-duplicate" in t and t.startswith("!") for t in texts)
        assert "data" in app.steps_done  # errors are reported, the usable examples go on


async def test_enter_on_a_finding_shows_the_example_with_the_problem_marked(make_app) -> None:
    app = make_app(data=DEFECTS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await choose_finding(pilot, "unknown-role", 20)
        view = app.screen.query_one(FindingView)
        assert app.focused is view
        turns = list(view.query(".turn"))
        assert [t.border_title.split()[0] for t in turns] == ["system", "user", "agent"]
        marked = [t for t in turns if t.has_class("-problem")]
        assert len(marked) == 1 and PROBLEM_MARK in marked[0].border_title
        assert marked[0].border_title.startswith("agent")

        await choose_finding(pilot, "no-assistant", 9)
        missing = [t for t in view.query(".turn") if t.has_class("-missing")]
        assert len(missing) == 1 and missing[0].has_class("-problem")

        await choose_finding(pilot, "contradiction", 16)
        texts = [str(s.render()) for s in view.query(".finding-sub")]
        assert "line 16:" in texts and "line 10, which it refers to:" in texts
        marked_roles = [t.border_title.split()[0] for t in view.query(".-problem")]
        assert marked_roles == ["user", "assistant"]


async def test_a_line_that_is_not_json_is_shown_with_its_column_marked(make_app) -> None:
    app = make_app(data=DEFECTS)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await choose_finding(pilot, "invalid-json", 7)
        raw = app.screen.query_one(FindingView).query_one(".finding-raw")
        assert "◀ column 522" in str(raw.render())
    line = DEFECTS.read_text().splitlines()[6]
    text = marked_source(line, 522)
    (marked,) = [span for span in text.spans if "reverse" in str(span.style)]
    assert text.plain[marked.start : marked.end] == line[521] == '"'
    assert text.plain.startswith("…")  # a long line is cut around the column


async def test_tokens_fill_the_histogram_and_the_stats(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await pilot.pause()
        screen = app.screen
        assert screen.query_one(TabbedContent).active == "stats"
        histogram = screen.query_one(LengthHistogram)
        tokens = app.wizard.tokens
        assert tokens is not None and len(tokens.lengths) == 138
        assert histogram.lengths == sorted(tokens.lengths.values())
        assert histogram.max_seq_len == app.wizard.config.max_seq_len
        stats = dict(screen.query_one(DatasetStats).rows)
        assert stats["usable"] == "138" and "how_to 23" in stats["labels (category)"]
        assert stats["tokens"].startswith(f"p50 {tokens.percentile(0.5):,} · p95")


async def test_a_cleaned_copy_is_written_beside_and_can_be_opened(make_app, tmp_path) -> None:
    data = tmp_path / "tickets.jsonl"
    shutil.copy(DEFECTS, data)
    original = data.read_bytes()
    app = make_app(data=data)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("w")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, PromptDialog)
        assert "4 record(s) with errors and 1 exact duplicate(s)" in dialog.label
        assert dialog.query_one(Input).value.endswith("tickets.clean.jsonl")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog)
        assert "kept 25, dropped 5" in app.screen.message
        await pilot.press("y")
        await settle(pilot)
        assert app.wizard.data_path == tmp_path / "tickets.clean.jsonl"
        assert app.wizard.report is not None and not app.wizard.report.errors
    assert data.read_bytes() == original  # the original is never modified


async def test_the_browser_starts_in_sample_data_and_opens_a_file(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+o")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, FileBrowserDialog)
        tree = dialog.query_one(FileTree)
        assert Path(tree.path) == sample_data_dir()
        # DirectoryTree's loader worker runs as long as the tree: wait for the rows instead.
        await wait_until(pilot, lambda: len(tree.root.children) > 0)
        names = [str(node.label) for node in tree.root.children]
        assert "support_tickets_defects.jsonl" in names
        assert not any(name.endswith((".md", ".py")) for name in names)  # datasets only
        dialog.dismiss(sample_data_dir() / "support_tickets_defects.jsonl")
        await settle(pilot)
        assert app.wizard.data_path.name == "support_tickets_defects.jsonl"
        assert app.wizard.report is not None and len(app.wizard.report.errors) == 4


async def test_typing_a_path_completes_it_and_enter_opens_it(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        field = app.screen.query_one("#data-path", Input)
        field.focus()
        field.value = str(sample_data_dir() / "support_tickets_d")
        await pilot.pause(0.2)
        await pilot.press("right")  # accepts the completion
        assert field.value == str(DEFECTS.resolve())
        await pilot.press("enter")
        await settle(pilot)
        assert app.wizard.data_path == DEFECTS.resolve()
        assert app.wizard.dataset is not None and len(app.wizard.dataset.examples) == 26


async def test_path_suggester_completes_directories_and_dataset_files(tmp_path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("")
    (tmp_path / "data" / "notes.txt").write_text("")
    suggester = PathSuggester((".jsonl",))
    assert await suggester.get_suggestion(f"{tmp_path}/da") == f"{tmp_path}/data/"
    assert await suggester.get_suggestion(f"{tmp_path}/data/t") == f"{tmp_path}/data/train.jsonl"
    assert await suggester.get_suggestion(f"{tmp_path}/data/n") is None
    assert await suggester.get_suggestion(f"{tmp_path}/nowhere/x") is None


async def test_a_big_file_is_linted_in_a_worker_with_progress(make_app, tmp_path) -> None:
    lines = DEFECTS.read_text().splitlines()[:7]  # line 7 is broken
    big = tmp_path / "big.jsonl"
    big.write_text("\n".join(lines * 1000) + "\n")
    app = make_app(data=big)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        bar = screen.query_one("#data-progress", ProgressBar)
        assert bar.display  # shown while the worker lints; the screen is already up
        await settle(pilot)
        assert bar.progress == 1.0 and not bar.display
        assert app.wizard.report is not None and app.wizard.report.stats.records == 7000
        assert len(app.wizard.report.errors) == 1000  # line 7's truncated JSON, 1000 times
