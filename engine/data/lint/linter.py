"""Lint a dataset: every problem with its line, a stable code, and a hint on how to fix it.

`lint_file` streams the file once: per-record problems come from `engine.data.formats`, the
compact per-example features from `engine.data.lint.collect`, and the checks that compare
examples with each other from `engine.data.lint.checks`. It never raises on bad input: a file
that cannot be read at all gives a report with one `unreadable` error (exit code 2).

Token checks need the model's tokenizer (with its chat template); without one they are
skipped and one info finding says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.data import formats
from engine.data.formats import DatasetError, Record, RecordStream, iter_records
from engine.data.hub import is_hub_id
from engine.data.labels import LabelScheme
from engine.data.lint.checks import (
    contradictions,
    exact_duplicates,
    knowledge_heavy,
    label_findings,
    length_outliers,
    near_duplicates,
    off_pattern_answers,
    off_pattern_system,
    too_few,
)
from engine.data.lint.collect import Collector, Features
from engine.data.lint.findings import CODES, Finding, finding, line_list, sort_key
from engine.data.lint.fix import FixResult, write_cleaned_copy
from engine.data.pool import POOL_FORMAT, is_pool_file, pool_findings, read_pool
from engine.data.token_lengths import (
    DEFAULT_MAX_SEQ_LEN,
    TokenCounter,
    TokenLength,
    TokenSurvey,
    percentile,
)
from engine.model.tokenization import ChatTemplateError, check_chat_template

__all__ = [
    "CODES",
    "Finding",
    "FixResult",
    "LintReport",
    "LintStats",
    "TokenStats",
    "lint_file",
    "write_cleaned_copy",
]

ProgressFn = Callable[[float], None]
"""Called with the fraction of the file read (0..1), a few hundred times at most."""


@dataclass(frozen=True)
class TokenStats:
    """Token lengths after the chat template, over the examples it accepted."""

    counted: int
    """Examples tokenized."""
    sampled: int
    """Examples behind the percentiles (all of them when `exact`)."""
    exact: bool
    """Every example was counted; otherwise p50/p95/p99 come from a systematic sample and
    every example that could exceed max_seq_len was counted exactly (see TokenSurvey)."""
    p50: int
    p95: int
    p99: int
    max: int
    max_seq_len: int
    over: int
    """Examples longer than max_seq_len."""


@dataclass(frozen=True)
class LintStats:
    """Numbers behind the info findings, for the TUI's lint screen."""

    container: str
    records: int = 0
    """Non-blank records read."""
    examples: int = 0
    """Usable examples (no errors)."""
    skipped: int = 0
    """Records with errors."""
    blank_lines: int = 0
    turns: dict[int, int] = field(default_factory=dict)
    """Messages per example -> number of examples."""
    tokens: TokenStats | None = None
    labels: LabelScheme | None = None
    columns: tuple[str, ...] = ()
    """The columns seen when the records match no known format (to map them)."""


@dataclass(frozen=True)
class LintReport:
    """What lint found in one file."""

    path: Path
    format: str
    count: int
    """Usable examples."""
    findings: tuple[Finding, ...]
    stats: LintStats
    unreadable: bool = False

    def of_severity(self, severity: str) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    @property
    def errors(self) -> list[Finding]:
        return self.of_severity("error")

    @property
    def warnings(self) -> list[Finding]:
        return self.of_severity("warning")

    @property
    def exit_code(self) -> int:
        """0 no errors, 1 errors found, 2 the file is unusable."""
        return 2 if self.unreadable else 1 if self.errors else 0

    def to_json(self) -> dict[str, Any]:
        """The object `tunedeck lint --json` prints (the README's CLI contract)."""
        return {
            "format": self.format,
            "count": self.count,
            "findings": [f.to_dict() for f in self.findings],
        }


def lint_file(
    path: str | os.PathLike[str],
    fmt: str | None = None,
    *,
    tokenizer: Any = None,
    max_seq_len: int | None = None,
    tokens_note: str = "",
    exact_tokens: bool = False,
    progress: ProgressFn | None = None,
    limit: int | None = None,
    columns: str | None = None,
) -> LintReport:
    """Lint one dataset file, or a hub dataset's split.

    Args:
        path: the dataset (JSONL, JSON array, CSV or Parquet), or a hub id
            (`ORG/NAME[:CONFIG][@REVISION][[SPLIT]]`: findings then carry a `place`).
        fmt: record format to assume instead of detecting it.
        tokenizer: a transformers tokenizer with a chat template, for token checks.
        max_seq_len: the training sequence length (default: the training config's).
        tokens_note: why there is no tokenizer, shown in the info finding.
        exact_tokens: count every example's tokens; by default big files count a sample
            plus every example that could exceed max_seq_len (see TokenSurvey).
        progress: receives the fraction of the file read; it may raise to cancel.
        limit, columns: the first `limit` records only; a column mapping (`prompt=q,response=a`).
    """
    source = Path(path)
    hub = is_hub_id(path)
    if fmt is None and columns is None and not hub and is_pool_file(source):
        return lint_pool(source)
    try:
        stream = iter_records(path, fmt, limit=limit, columns=columns)
    except DatasetError as exc:
        seen = tuple(exc.columns) if isinstance(exc, formats.UnknownFormatError) else ()
        return _unreadable(source, exc, LintStats(container="unknown", columns=seen))
    seq_len = max_seq_len or DEFAULT_MAX_SEQ_LEN
    counter, token_finding = _token_counter(tokenizer, seq_len, tokens_note)
    collector = Collector(TokenSurvey(counter, exact_tokens) if counter else None)
    findings: list[Finding] = [token_finding] if token_finding else []
    counts = {"records": 0, "skipped": 0}
    blank: list[int] = []
    try:
        for number, record in enumerate(stream, start=1):
            _take(record, collector, findings, counts, blank)
            if progress is not None and number % 2048 == 0:
                progress(stream.fraction_read)
    except DatasetError as exc:  # the file turned unreadable part-way (bad bytes in a CSV)
        collector.close()
        stats = LintStats(stream.container, counts["records"], skipped=counts["skipped"])
        return _unreadable(source, exc, stats, findings, stream.format)
    except BaseException:  # a progress callback cancelling, Ctrl-C: stop the workers too
        collector.close()
        raise
    features = collector.finish()
    if progress is not None:
        progress(1.0)
    stats = _stats(stream.container, features, counts, blank, seq_len if counter else None)
    findings += _dataset_findings(features, stats, stream.format, blank, counter)
    if hub:
        findings = _placed(findings, stream)
    return LintReport(source, stream.format, features.count, _sorted(findings), stats)


def _placed(findings: list[Finding], stream: RecordStream) -> list[Finding]:
    """Each finding of a record with its file and row (a hub dataset spans files)."""
    return [replace(f, place=stream.place(f.line)) if f.line else f for f in findings]


def lint_pool(path: Path) -> LintReport:
    """A prompt pool's lint: records that are no prompts, empty and duplicate prompts."""
    try:
        pool = read_pool(path)
    except DatasetError as exc:
        return _unreadable(path, exc, LintStats(container="unknown"), fmt=POOL_FORMAT)
    findings = [Finding(p.severity, p.code, line, p.message, p.hint, (), p.column)
                for line, p in pool.problems]  # fmt: skip
    findings += pool_findings(pool.prompts)
    count = len(pool.prompts)
    findings.append(finding("summary", 0, f"prompt pool ({pool.container}): {count} prompts "
                            "without answers; answer them with a run (tunedeck eval RUN "
                            "--data FILE), then review"))  # fmt: skip
    records = count + len({line for line, _ in pool.problems})
    stats = LintStats(pool.container, records, count, records - count)
    return LintReport(path, POOL_FORMAT, count, _sorted(findings), stats)


def _take(
    record: Record,
    collector: Collector,
    findings: list[Finding],
    counts: dict[str, int],
    blank: list[int],
) -> None:
    if record.blank:
        blank.append(record.line)
        return
    counts["records"] += 1
    for p in record.problems:
        findings.append(Finding(p.severity, p.code, record.line, p.message, p.hint, (), p.column))
    if record.example is None:
        counts["skipped"] += 1
    else:
        collector.add(record.example)


def _token_counter(
    tokenizer: Any, max_seq_len: int, note: str
) -> tuple[TokenCounter | None, Finding | None]:
    hint = "pass --model (a model name or directory) to count tokens with its chat template"
    if tokenizer is None:
        reason = note or "no tokenizer given"
        return None, finding("tokens-skipped", 0, f"token lengths not checked: {reason}", hint)
    try:  # the same check training makes before it starts (engine.model.tokenization)
        check = check_chat_template(tokenizer)
    except ChatTemplateError as exc:
        return None, finding("template-error", 0, f"{exc.message}: training would stop "
                             "before it starts", exc.hint)  # fmt: skip
    counter = TokenCounter(tokenizer, max_seq_len)
    if check.folds_system:
        return counter, finding("template-folds-system", 0, check.note)
    return counter, None


def _unreadable(
    path: Path,
    exc: DatasetError,
    stats: LintStats,
    findings: list[Finding] | None = None,
    fmt: str = "unknown",
) -> LintReport:
    problem = finding("unreadable", 0, exc.message, exc.hint)
    return LintReport(path, fmt, 0, _sorted([*(findings or []), problem]), stats, unreadable=True)


def _sorted(findings: list[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(findings, key=sort_key))


def _stats(
    container: str,
    f: Features,
    counts: dict[str, int],
    blank: list[int],
    max_seq_len: int | None,
) -> LintStats:
    tokens = None
    survey = f.tokens
    if max_seq_len is not None and survey is not None and survey.sample:
        ordered = survey.sample
        tokens = TokenStats(
            counted=survey.counted,
            sampled=len(ordered),
            exact=survey.exact,
            p50=percentile(ordered, 0.5),
            p95=percentile(ordered, 0.95),
            p99=percentile(ordered, 0.99),
            max=survey.maximum,
            max_seq_len=max_seq_len,
            over=len(survey.too_long),
        )
    return LintStats(
        container=container,
        records=counts["records"],
        examples=f.count,
        skipped=counts["skipped"],
        blank_lines=len(blank),
        turns=dict(sorted(f.turns.items())),
        tokens=tokens,
        labels=f.labels.scheme(),
    )


def _dataset_findings(
    f: Features, stats: LintStats, fmt: str, blank: list[int], counter: TokenCounter | None
) -> list[Finding]:
    assert f.signatures is not None
    out = exact_duplicates(f) + near_duplicates(f, f.signatures) + contradictions(f)
    out += off_pattern_answers(f) + off_pattern_system(f) + length_outliers(f)
    out += label_findings(f, stats.labels) + knowledge_heavy(f) + too_few(f)
    out += _token_findings(f, stats, counter)
    out.append(_summary(stats, fmt))
    if blank:
        out.append(
            finding(
                "blank-lines",
                blank[0],
                f"{len(blank)} blank line{'s' if len(blank) > 1 else ''} (lines "
                f"{line_list(blank)}), skipped",
            )
        )
    return out


def _summary(stats: LintStats, fmt: str) -> Finding:
    turns = ", ".join(f"{n} messages: {count}" for n, count in stats.turns.items())
    skipped = f", {stats.skipped} skipped (errors)" if stats.skipped else ""
    return finding(
        "summary",
        0,
        f"{fmt} format ({stats.container}): {stats.records} records, {stats.examples} "
        f"usable{skipped}" + (f"; {turns}" if turns else ""),
    )


def _token_findings(f: Features, stats: LintStats, counter: TokenCounter | None) -> list[Finding]:
    if counter is None or f.tokens is None:
        return []
    out = [_template_error(reason, lines) for reason, lines in counter.rejected.items()]
    out += [_too_long(line, length, counter.max_seq_len) for line, length in f.tokens.too_long]
    if stats.tokens is not None:
        t = stats.tokens
        sample = "" if t.exact else f" (percentiles from a sample of {t.sampled:,})"
        out.append(
            finding(
                "token-lengths",
                0,
                f"tokens after the chat template: p50 {t.p50:,}, p95 {t.p95:,}, max {t.max:,}"
                f"{sample}; max_seq_len {t.max_seq_len:,}: {t.over} longer",
            )
        )
    if counter.rendered_each:
        out.append(
            finding(
                "token-lengths",
                0,
                f"{counter.rendered_each} examples rendered one by one: the chat template "
                "changes message contents (slower, still exact)",
            )
        )
    return out


def _template_error(reason: str, lines: list[int]) -> Finding:
    return finding(
        "template-error",
        lines[0],
        f"the model's chat template refuses {len(lines)} example(s): {reason}",
        "this model cannot be trained on these conversations as they are (e.g. it has no "
        "system role: fold the system prompt into the first user turn)",
        lines=tuple(lines[1:21]),
    )


def _too_long(line: int, length: TokenLength, max_seq_len: int) -> Finding:
    head = f"{length.tokens:,} tokens after the chat template, over max_seq_len {max_seq_len:,}"
    if not length.assistant_cut:
        message = f"{head} (truncation cuts no assistant tokens)"
    elif length.assistant_cut >= length.assistant_tokens:
        message = f"{head}: truncation would cut the whole answer, the example teaches nothing"
    else:
        message = (
            f"{head}: truncation would cut {length.assistant_cut:,} of "
            f"{length.assistant_tokens:,} assistant tokens"
        )
    return finding(
        "too-long",
        line,
        message,
        "shorten or split the example, or raise max_seq_len (costs memory)",
    )
