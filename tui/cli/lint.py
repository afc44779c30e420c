"""`tunedeck lint PATH`: file:line findings with hints; exit 0 clean, 1 errors, 2 unusable."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.data.lint.linter import Finding, LintReport

PER_CODE = 20
"""Findings shown per code in the human report, unless --all."""
_SECTIONS = (("error", "errors"), ("warning", "warnings"), ("info", "info"))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `lint` to the CLI."""
    from engine.data.formats import FORMATS

    parser = subparsers.add_parser(
        "lint",
        help="check a dataset: every problem at its file:line, with a hint to fix it",
        description=(
            "Check a fine-tuning dataset (chat / ShareGPT / Alpaca / prompt-completion, as "
            "JSONL, JSON array, CSV or Parquet): broken records, duplicates and "
            "near-duplicates, contradictions, off-pattern answers and system prompts, "
            "examples too long for max_seq_len in the model's tokens, label imbalance. "
            "Exit code 0: no errors, 1: errors found, 2: the file cannot be used. PATH may "
            "be a Hugging Face Hub dataset, ORG/NAME[:CONFIG][@REVISION][[SPLIT]] (from the "
            "local cache, else downloaded; HF_HUB_OFFLINE=1: the cache only): findings then "
            "name the file and row, e.g. data/train-00000.parquet:row 812."
        ),
    )
    parser.add_argument(
        "path", metavar="PATH", help="the dataset file, or a hub dataset ORG/NAME[:CONFIG]"
        "[@REVISION][[SPLIT]]",
    )  # fmt: skip
    add_data_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--format", dest="fmt", choices=FORMATS, help="record format (default: detected)"
    )
    parser.add_argument(
        "--model",
        dest="tokenizer_model",
        metavar="MODEL",
        help="model whose tokenizer and chat template count tokens "
        "(default: smollm2-135m; a name, model directory or .gguf file)",
    )
    parser.add_argument(
        "--max-seq-len", type=int, metavar="N", help="training sequence length in tokens"
    )
    parser.add_argument("--no-tokens", action="store_true", help="skip token counting")
    parser.add_argument(
        "--exact-tokens",
        action="store_true",
        help="count every example's tokens (big files otherwise count a sample plus every "
        "example that could be too long)",
    )
    parser.add_argument(
        "--fix",
        metavar="OUT",
        help="also write a cleaned copy to OUT without error lines and exact duplicates "
        "(the input is never modified)",
    )
    parser.add_argument(
        "--all", action="store_true", help=f"show every finding (default: {PER_CODE} per code)"
    )
    parser.set_defaults(handler=run)


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """--limit and --columns: how many rows to read, and which columns hold what."""
    parser.add_argument(
        "--limit", type=int, metavar="N",
        help="read only the first N rows (a hub dataset's other rows are never read)",
    )  # fmt: skip
    parser.add_argument(
        "--columns", metavar="MAP",
        help="columns that hold the prompt and response when they are not a known format: "
        "prompt=question,response=answer[,system=COLUMN]",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Lint the file, print the report, optionally write the cleaned copy."""
    from engine.data.lint.linter import lint_file

    if args.max_seq_len is not None and args.max_seq_len < 1:
        print("error: --max-seq-len must be a positive number of tokens", file=sys.stderr)
        return 2
    if args.limit is not None and args.limit < 1:
        print("error: --limit must be a positive number of rows", file=sys.stderr)
        return 2
    tokenizer, note = (None, "--no-tokens given") if args.no_tokens else _tokenizer(args)
    report = lint_file(
        args.path,
        args.fmt,
        tokenizer=tokenizer,
        max_seq_len=args.max_seq_len,
        tokens_note=note,
        exact_tokens=args.exact_tokens,
        progress=_progress() if not args.json and sys.stderr.isatty() else None,
        limit=args.limit,
        columns=args.columns,
    )
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        print(render_report(report, show_all=args.all))
    if args.fix and report.unreadable:
        print(f"not writing {args.fix}: the input cannot be used", file=sys.stderr)
    elif args.fix:
        _fix(args, out=sys.stderr if args.json else sys.stdout)
    return report.exit_code


def _tokenizer(args: argparse.Namespace) -> tuple[Any, str]:
    """The model's tokenizer, or (None, why) so that lint runs on without token checks."""
    from engine.model.resolve import DEFAULT_MODEL, load_tokenizer

    name = args.tokenizer_model or DEFAULT_MODEL
    started = time.monotonic()

    def progress(stage: str, fraction: float) -> None:
        print(f"[{time.monotonic() - started:5.1f}s] {name}: {stage}", file=sys.stderr)

    try:
        return load_tokenizer(name, progress), ""
    except Exception as exc:  # a missing or broken model must not stop the lint itself
        reason = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        print(
            f"warning: cannot load the tokenizer of {name} ({reason}); "
            "linting without token checks",
            file=sys.stderr,
        )
        return None, f"the tokenizer of {name} could not be loaded"


def _progress() -> Any:
    last = [-1]

    def show(fraction: float) -> None:
        percent = int(fraction * 100)
        if percent != last[0]:
            last[0] = percent
            end = "\n" if percent >= 100 else ""
            print(f"\rlinting... {percent:3d}%", end=end, file=sys.stderr, flush=True)

    return show


def _fix(args: argparse.Namespace, out: Any) -> None:
    from engine.data.lint.linter import write_cleaned_copy

    result = write_cleaned_copy(
        args.path, args.fix, args.fmt, limit=args.limit, columns=args.columns
    )
    note = " (as normalised chat JSONL)" if result.normalised else ""
    print(
        f"\nwrote {result.out}{note}: kept {result.kept}, dropped {len(result.dropped)}", file=out
    )
    for line, reason in result.dropped[: PER_CODE * 5]:
        print(f"  dropped line {line}: {reason}", file=out)
    if len(result.dropped) > PER_CODE * 5:
        print(f"  ... and {len(result.dropped) - PER_CODE * 5} more", file=out)


def render_report(report: LintReport, show_all: bool = False) -> str:
    """The human report: findings grouped by severity as `file:line: code: message`."""
    path = str(report.path)
    stats = report.stats
    if report.unreadable and not stats.records:
        lines = [f"{path}: cannot be read as a dataset"]
    elif report.format == "pool":
        lines = [f"{path}: prompt pool ({stats.container}), {report.count} prompts of "
                 f"{stats.records} records"]  # fmt: skip
    else:
        lines = [
            f"{path}: {report.format} format ({stats.container}), {report.count} usable "
            f"example{'s' if report.count != 1 else ''} of {stats.records} records"
        ]
    for severity, title in _SECTIONS:
        found = [f for f in report.findings if f.severity == severity]
        if found:
            lines += ["", f"{title} ({len(found)})" if severity != "info" else title]
            lines += _section(path, found, show_all)
    errors, warnings = len(report.errors), len(report.warnings)
    verdict = "unusable input" if report.unreadable else "ok" if not errors else "fix the errors"
    lines += ["", f"{errors} error(s), {warnings} warning(s): {verdict}"]
    return "\n".join(lines)


def _section(path: str, findings: list[Finding], show_all: bool) -> list[str]:
    out: list[str] = []
    shown: dict[str, int] = {}
    last_hint: dict[str, str] = {}
    hidden: dict[str, int] = {}
    for item in findings:
        if not show_all and shown.get(item.code, 0) >= PER_CODE:
            hidden[item.code] = hidden.get(item.code, 0) + 1
            continue
        shown[item.code] = shown.get(item.code, 0) + 1
        where = item.place or (f"{path}:{item.line}" if item.line else path)
        out.append(f"  {where}: {item.code}: {item.message}")
        if item.hint and last_hint.get(item.code) != item.hint:
            out.append(f"      hint: {item.hint}")  # once per code while it repeats
            last_hint[item.code] = item.hint
    for code, count in hidden.items():
        out.append(f"  ... and {count} more {code} (--all shows every one)")
    return out
