"""Pilot test: the Data step's file browser offers every bundled sample file and opens one.

The app opens on support_tickets.jsonl (as `make run` does); ctrl+o starts the browser in
sample_data/, where the order-email scenario and the two held-out test files sit beside it.
"""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Static

from engine.core.paths import sample_data_dir
from tests.tui.conftest import SAMPLE, SIZE, settle, wait_until
from tui.dialogs.file_browser import FileBrowserDialog, FileTree

SHIPPED = {
    "support_tickets.jsonl",
    "support_tickets_test.jsonl",
    "support_tickets_defects.jsonl",
    "order_emails.jsonl",
    "order_emails_test.jsonl",
}


async def test_the_browser_lists_the_sample_files_and_opens_the_order_emails(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.wizard.data_path.resolve() == SAMPLE.resolve()
        await pilot.press("ctrl+o")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, FileBrowserDialog)
        tree = dialog.query_one(FileTree)
        assert Path(tree.path) == sample_data_dir()
        await wait_until(pilot, lambda: len(tree.root.children) > 0)
        names = [str(node.label) for node in tree.root.children]
        assert set(names) >= SHIPPED
        # Pick the file with the keyboard, as a user would: cursor onto its row, then enter.
        tree.move_cursor(tree.root.children[names.index("order_emails.jsonl")])
        await pilot.press("enter")
        await settle(pilot)
        assert app.wizard.data_path == sample_data_dir() / "order_emails.jsonl"
        report = app.wizard.report
        assert report is not None and not report.errors
        assert len(app.wizard.dataset.examples) == report.count == 187
        assert not [f for f in report.findings if f.code == "label-distribution"]
        summary = str(app.screen.query_one("#data-summary", Static).render())
        assert "187 usable" in summary
