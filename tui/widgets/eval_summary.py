"""The summary panel of an evaluation: per-system aggregates side by side, the verdict,
and the human review so far (marks, blind A/B win rate)."""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

from engine.eval_options import system_title

ROWS = (("primary", None), ("rouge_l", "ROUGE-L"), ("json_valid", "valid JSON"),
        ("failures", "failures"), ("val_loss", "val loss"))  # fmt: skip
"""Aggregates shown, in order (None: the primary metric's own name)."""
LABEL_WIDTH = 20
COLUMN_WIDTH = 16


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def aggregates_text(summary: dict[str, Any], systems: list[str], primary: str) -> str:
    """A plain-text table: one line per aggregate, one column per system."""
    stats = summary.get("systems", {})
    shown = [s for s in systems if s in stats]
    lines = ["".ljust(LABEL_WIDTH) + "".join(system_title(s).ljust(COLUMN_WIDTH) for s in shown)]
    for key, label in ROWS:
        values = [stats[s].get(key) for s in shown]
        if all(v is None for v in values):
            continue
        cells = "".join(_number(v).ljust(COLUMN_WIDTH) for v in values)
        lines.append((label or primary)[: LABEL_WIDTH - 1].ljust(LABEL_WIDTH) + cells)
    return "\n".join(line.rstrip() for line in lines)


def review_text(review: dict[str, Any]) -> str:
    """`review: 2 good · 1 bad · 0 skip · 1 note   A/B vs base few-shot: 3 rated, 67% won`."""
    marks = review.get("marks", {})
    counts = " · ".join(f"{marks.get(m, 0)} {m}" for m in ("good", "bad", "skip"))
    notes = review.get("notes", 0)
    text = f"review: {counts} · {notes} note{'s' if notes != 1 else ''}"
    ab = review.get("ab") or {}
    if ab.get("n"):
        rate = ab.get("win_rate")
        won = "—" if rate is None else f"{rate:.0%}"
        text += f"   A/B vs {system_title(ab['against'])}: {ab['n']} rated, fine-tuned won {won}"
    else:
        text += "   A/B: none yet (a)"
    return text


class EvalSummary(Static):
    """Aggregates, verdict and review counts; `show` replaces all three."""

    def show(
        self,
        summary: dict[str, Any] | None,
        systems: list[str],
        primary: str,
        review: dict[str, Any],
    ) -> None:
        """Render the panel (summary None: the evaluation has not finished yet)."""
        if summary is None:
            body = "No summary yet: the evaluation has not finished (e evaluates)."
        else:
            verdict = summary.get("verdict") or "no verdict"
            body = f"{aggregates_text(summary, systems, primary)}\n{verdict}"
        self.update(f"{body}\n{review_text(review)}")
