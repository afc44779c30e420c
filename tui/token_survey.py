"""Token lengths of a dataset with a model's tokenizer, counted in a child process.

Counting tokens needs transformers (the tokenizer and its chat template), which the TUI
process must never import: it would cost seconds of start-up and gigabytes with torch.
So the wizard runs `python -m tui.token_survey PATH MODEL MAX_SEQ_LEN`, which prints JSON
lines: `{"type": "progress", ...}` while it works and one `{"type": "result", ...}` with
the full lint report (token checks included) and every example's length. Errors go to
stderr as `error:` / `hint:` lines, like the CLI's.

Importing this module is cheap: only `main` touches transformers (through engine.model.resolve).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.core.errors import TunedeckError
from engine.data.labels import LabelScheme
from engine.data.lint.linter import Finding, LintReport, LintStats, TokenStats
from engine.data.token_lengths import percentile

MAX_COUNTED = 50_000
"""Examples whose length feeds the histogram; bigger files count a systematic sample."""
_BATCH = 512


@dataclass(frozen=True)
class TokenSurvey:
    """A lint report with token checks, and token lengths per example, for one model."""

    model: str
    max_seq_len: int
    lengths: dict[int, int]
    """Source line -> tokens after the chat template (every example, or a sample)."""
    sampled: bool
    """True when `lengths` holds a systematic sample of a big file."""
    report: LintReport

    @property
    def sorted_lengths(self) -> list[int]:
        return sorted(self.lengths.values())

    @property
    def mean(self) -> float:
        return sum(self.lengths.values()) / len(self.lengths) if self.lengths else 0.0

    def percentile(self, fraction: float) -> int:
        """Nearest-rank percentile of the lengths (0 when there are none)."""
        return percentile(self.sorted_lengths, fraction)

    def longer_than(self, limit: int) -> int:
        """Examples (of those counted) longer than `limit` tokens."""
        return sum(1 for n in self.lengths.values() if n > limit)


# ---------------------------------------------------------------------------
# JSON both ways (the child writes, the TUI reads)
# ---------------------------------------------------------------------------


def report_to_json(report: LintReport) -> dict[str, Any]:
    """Everything of a LintReport, as plain data (the CLI's JSON plus path and stats)."""
    return {
        **report.to_json(),
        "path": str(report.path),
        "unreadable": report.unreadable,
        "stats": asdict(report.stats),
    }  # a finding's `place` (hub datasets) is in report.to_json() already


def report_from_json(data: dict[str, Any]) -> LintReport:
    """The inverse of `report_to_json`."""
    findings = tuple(
        Finding(
            f["severity"],
            f["code"],
            int(f["line"]),
            f["message"],
            f.get("hint", ""),
            tuple(f.get("lines", ())),
            f.get("column"),
            f.get("place"),
        )
        for f in data["findings"]
    )
    s = data["stats"]
    stats = LintStats(
        container=s["container"],
        records=s["records"],
        examples=s["examples"],
        skipped=s["skipped"],
        blank_lines=s["blank_lines"],
        turns={int(k): v for k, v in s["turns"].items()},
        tokens=TokenStats(**s["tokens"]) if s.get("tokens") else None,
        labels=LabelScheme(**s["labels"]) if s.get("labels") else None,
        columns=tuple(s.get("columns", ())),
    )
    return LintReport(
        Path(data["path"]), data["format"], data["count"], findings, stats, data["unreadable"]
    )


def survey_from_json(event: dict[str, Any]) -> TokenSurvey:
    """The TokenSurvey of the child's result line."""
    return TokenSurvey(
        model=event["model"],
        max_seq_len=event["max_seq_len"],
        lengths={int(line): int(n) for line, n in event["lengths"]},
        sampled=bool(event["sampled"]),
        report=report_from_json(event["report"]),
    )


# ---------------------------------------------------------------------------
# The child process
# ---------------------------------------------------------------------------


def _emit(event: dict[str, Any]) -> None:
    print(json.dumps(event, ensure_ascii=False), flush=True)


def _progress(stage: str, start: float, span: float):
    def report(fraction: float, detail: str = stage) -> None:
        _emit({"type": "progress", "stage": detail, "fraction": start + span * fraction})

    return report


def survey(
    path: Path, model: str, max_seq_len: int, limit: int | None = None, columns: str | None = None
) -> dict[str, Any]:
    """Lint with token checks and count lengths; the result line's fields."""
    from engine.data.formats import load_examples
    from engine.data.lint.linter import lint_file
    from engine.data.token_lengths import TokenCounter
    from engine.model.resolve import load_tokenizer

    loading = _progress(f"loading the tokenizer of {model}", 0.0, 0.3)
    tokenizer = load_tokenizer(model, lambda stage, f: loading(f, f"{model}: {stage}"))
    linting = _progress("linting with token checks", 0.3, 0.4)
    report = lint_file(
        path,
        tokenizer=tokenizer,
        max_seq_len=max_seq_len,
        progress=linting,
        limit=limit,
        columns=columns,
    )
    examples = load_examples(path, limit=limit, columns=columns).examples
    step = max(1, math.ceil(len(examples) / MAX_COUNTED))
    chosen = examples[::step]
    counter = TokenCounter(tokenizer, max_seq_len)
    counting = _progress("counting tokens per example", 0.7, 0.3)
    lengths: list[tuple[int, int]] = []
    for start in range(0, len(chosen), _BATCH):
        batch = chosen[start : start + _BATCH]
        counted = counter.count(batch)
        lengths += [(e.line, n.tokens) for e, n in zip(batch, counted, strict=True) if n]
        counting(min(1.0, (start + _BATCH) / max(len(chosen), 1)))
    return {
        "type": "result",
        "model": model,
        "max_seq_len": max_seq_len,
        "lengths": lengths,
        "sampled": step > 1,
        "report": report_to_json(report),
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m tui.token_survey PATH MODEL MAX_SEQ_LEN [LIMIT COLUMNS]`; exit 0 with a
    result line (LIMIT 0: every row; COLUMNS "": no mapping)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (3, 5) or not args[2].isdigit() or not (args[3:4] or ["0"])[0].isdigit():
        print("usage: python -m tui.token_survey PATH MODEL MAX_SEQ_LEN [LIMIT COLUMNS]",
              file=sys.stderr)  # fmt: skip
        return 2
    limit = int(args[3]) if len(args) == 5 and int(args[3]) > 0 else None
    columns = args[4] if len(args) == 5 and args[4] else None
    try:
        _emit(survey(Path(args[0]), args[1], int(args[2]), limit, columns))
    except TunedeckError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 2
    except Exception as exc:  # a broken tokenizer must become a message, not a traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
