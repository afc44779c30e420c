"""The dialogs of "write a cleaned copy": where to write it, then whether to open it.

The copy leaves out records with errors and exact duplicates; the original file is never
modified. The screen writes the copy (in a worker) between the two dialogs.
"""

from __future__ import annotations

from pathlib import Path

from engine.data.lint.linter import FixResult, LintReport
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.prompt import PromptDialog
from tui.paths import display_path


def clean_copy_prompt(report: LintReport, path: Path) -> PromptDialog:
    """Ask where to write the cleaned copy of `path`, offering `<stem>.clean.jsonl` beside it.

    Dismisses with the target path as typed, or None when cancelled.
    """
    duplicates = sum(1 for f in report.findings if f.code == "exact-duplicate")
    out = path.with_name(f"{path.stem}.clean.jsonl")
    return PromptDialog(
        "Write a cleaned copy",
        f"Leaves out {report.stats.skipped} record(s) with errors and {duplicates} "
        "exact duplicate(s). The original file is never modified. Write to:",
        display_path(out),
        suffixes=(".jsonl",),
    )


def clean_copy_written(result: FixResult) -> ConfirmDialog:
    """Say what the copy kept and dropped; dismisses with True to open it as the dataset."""
    text = (
        f"Wrote {display_path(result.out)}: kept {result.kept}, dropped "
        f"{len(result.dropped)}. Use it as the dataset?"
    )
    return ConfirmDialog("Cleaned copy written", text, "Open it", "Stay")
