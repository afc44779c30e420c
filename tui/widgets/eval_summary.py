"""The summary panel of an evaluation: per-system aggregates side by side (saved
checkpoints too) with the primary score's 95 % interval, the verdict, the LLM judge's win
rate, and the human review so far (marks, blind A/B win rate)."""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

from engine.eval.options import is_checkpoint_system, system_title
from engine.eval.summary import primary_reason

ROWS = (("primary", None), ("primary_ci", "  95% interval"), ("rouge_l", "ROUGE-L"),
        ("json_valid", "valid JSON"), ("failures", "failures"),
        ("val_loss", "val loss"))  # fmt: skip
"""Aggregates shown, in order (None: the primary metric's own name)."""
LABEL_WIDTH = 20
COLUMN_WIDTH = 16
MIN_COLUMN_WIDTH = 9
TABLE_WIDTH = 96
"""Cells the aggregates may take (100 columns less the panel's padding): more systems
(saved checkpoints) share it in narrower columns."""


def interval_text(ci: dict[str, Any], width: int) -> str:
    """`0.81–0.98`, or `.81–.98` where a column is narrower than that."""
    full = f"{ci['low']:.2f}–{ci['high']:.2f}"
    return full if len(full) < width else full.replace("0.", ".").replace("1.00", "1")


def _number(value: Any, width: int = 99) -> str:
    if value is None:
        return "—"
    if isinstance(value, dict) and "low" in value and "high" in value:
        return interval_text(value, width)
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def column_title(system: str) -> str:
    """A system's column heading: `ckpt 12` for the checkpoint saved at step 12."""
    if is_checkpoint_system(system):
        return f"ckpt {system.split('@', 1)[1]}"
    return system_title(system)


def aggregates_text(summary: dict[str, Any], systems: list[str], primary: str) -> str:
    """A plain-text table: one line per aggregate, one column per system."""
    stats = summary.get("systems", {})
    shown = [s for s in systems if s in stats]
    fit = (TABLE_WIDTH - LABEL_WIDTH) // max(1, len(shown))
    width = max(MIN_COLUMN_WIDTH, min(COLUMN_WIDTH, fit))

    def cell(text: str) -> str:
        return text[: width - 1].ljust(width)

    lines = ["".ljust(LABEL_WIDTH) + "".join(cell(column_title(s)) for s in shown)]
    tested = (summary.get("eval_set") or {}).get("name", "validation") != "validation"
    for key, label in ROWS:
        if key == "val_loss" and tested:
            label = "test loss"
        values = [stats[s].get(key) for s in shown]
        if all(v is None for v in values):
            continue
        cells = "".join(cell(_number(v, width)) for v in values)
        lines.append((label or primary)[: LABEL_WIDTH - 1].ljust(LABEL_WIDTH) + cells)
    return "\n".join(line.rstrip() for line in lines)


def judge_text(judge: dict[str, Any] | None) -> str | None:
    """`judge vs base few-shot: fine-tuned won 62% of 8 (5 won · 2 lost · 1 tied) …`.

    None when the evaluation had no judge.
    """
    if not judge:
        return None
    if judge.get("error"):
        return f"judge failed: {judge['error']}"
    against = system_title(str(judge.get("against", "")))
    if not judge.get("n"):
        return f"judge vs {against}: no verdict could be read from its answers"
    rate, consistency = judge.get("win_rate") or 0.0, judge.get("consistency") or 0.0
    return (
        f"judge vs {against}: fine-tuned won {rate:.0%} of {judge['n']} ({judge['wins']} won"
        f" · {judge['losses']} lost · {judge['ties']} tied) · swap-consistent {consistency:.0%}"
    )


def review_text(review: dict[str, Any]) -> str:
    """`review: 2 good · 1 bad · 0 skip · 1 note · 3 accepted · 1 corrected (D: ...)   A/B
    vs base few-shot: 3 rated, 67% won`."""
    marks = review.get("marks", {})
    counts = " · ".join(f"{marks.get(m, 0)} {m}" for m in ("good", "bad", "skip"))
    notes = review.get("notes", 0)
    text = f"review: {counts} · {notes} note{'s' if notes != 1 else ''}"
    verdicts = review.get("verdicts") or {}
    accepted, corrected = verdicts.get("accepted", 0), verdicts.get("corrected", 0)
    if accepted or corrected:
        text += f" · {accepted} accepted · {corrected} corrected (D: to a new dataset)"
    fixed = review.get("fixed_references", 0)
    if fixed:
        text += f" · {fixed} reference{'s' if fixed != 1 else ''} fixed"
    ab = review.get("ab") or {}
    if ab.get("n"):
        rate = ab.get("win_rate")
        won = "—" if rate is None else f"{rate:.0%}"
        text += f"   A/B vs {system_title(ab['against'])}: {ab['n']} rated, fine-tuned won {won}"
    else:
        text += "   A/B: none yet (a)"
    return text


def primary_line(summary: dict[str, Any]) -> str:
    """`primary: category accuracy: 'category' takes one of 6 values named in …`: the metric
    and why, on one line of the panel (the CLI prints it whole)."""
    reason = primary_reason(summary)
    if not reason:
        return ""
    line = f"primary: {reason}"
    return line if len(line) <= TABLE_WIDTH else line[: TABLE_WIDTH - 1] + "…"


class EvalSummary(Static):
    """Aggregates, verdict and review counts; `show` replaces all three."""

    def show(
        self,
        summary: dict[str, Any] | None,
        systems: list[str],
        primary: str,
        review: dict[str, Any] | None,
        verdict: str | None = None,
    ) -> None:
        """Render the panel (summary None: the evaluation has not finished yet).

        Args:
            review: review counts, or None for no review line (the Baseline step).
            verdict: the sentence under the table (default: the summary's own verdict).
        """
        if summary is None:
            body = "No summary yet: the evaluation has not finished (e evaluates)."
        else:
            verdict = verdict or summary.get("verdict") or "no verdict"
            why = primary_line(summary)
            why = f"\n{why}" if why else ""
            body = f"{aggregates_text(summary, systems, primary)}{why}\n{verdict}"
            judged = judge_text(summary.get("judge"))
            body += f"\n{judged}" if judged else ""
        self.update(body if review is None else f"{body}\n{review_text(review)}")
