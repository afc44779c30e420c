"""LLM-as-judge: pairwise fine-tuned vs base, positions swapped to cancel position bias.

The judge is any OpenAI-compatible `/v1/chat/completions` endpoint (vLLM, llama.cpp's
server, Ollama, a hosted API; the key comes from an environment variable, never a file)
or a local Hugging Face model run with the evaluation's own generation code.

Each example is judged twice: once with the fine-tuned answer as A, once as B. A verdict
counts only when both calls agree on the same *system*; when they disagree the example is
a tie, and the share of agreeing pairs is reported as swap consistency. A judge that
always says "A" is thereby caught: every example becomes an inconsistent tie.

Verdicts and reasons go to `eval/judge.jsonl` as each example is judged (resumable).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.layout import JUDGE_FILE
from engine.eval.judge.clients import http_completer, local_completer
from engine.eval.judge.config import Completer, JudgeConfig, Verdict
from engine.eval.store import (
    VALIDATION,
    append_jsonl,
    fingerprint,
    keep_current,
    read_jsonl,
    set_dir,
    set_path,
)

# ---------------------------------------------------------------------------
# Prompt and verdict
# ---------------------------------------------------------------------------


def judge_messages(
    conversation: Sequence[dict[str, str]], reference: str, a: str, b: str, rubric: str
) -> list[dict[str, str]]:
    """The chat asking the judge to compare answer A and answer B to one conversation."""
    shown = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in conversation)
    user = (
        f"[Conversation]\n{shown}\n[End of conversation]\n\n"
        f"[Reference answer]\n{reference}\n[End of reference answer]\n\n"
        f"[Answer A]\n{a}\n[End of Answer A]\n\n"
        f"[Answer B]\n{b}\n[End of Answer B]\n\n"
        "Which answer is better? Reply with a first line that is exactly `VERDICT: A`, "
        "`VERDICT: B` or `VERDICT: TIE`, then one or two sentences saying why."
    )
    system = "You are a careful, impartial judge of AI assistants' answers.\n\n" + rubric
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


_VERDICT_LINE = re.compile(r"verdict\W{0,6}(a|b|tie|draw|equal)\b", re.IGNORECASE)
_BRACKETS = re.compile(r"\[\[\s*(a|b|c|tie)\s*\]\]", re.IGNORECASE)
_BARE = re.compile(r"^\W*(?:answer\s+)?(a|b|tie|draw)\W*$", re.IGNORECASE)
_WORDS = {"a": "A", "b": "B", "c": "tie", "tie": "tie", "draw": "tie", "equal": "tie"}


def parse_verdict(text: str) -> tuple[Verdict | None, str]:
    """The judge's verdict (None when none can be found) and its reason.

    Accepts `VERDICT: A` anywhere (any case, markdown around it), MT-Bench's `[[A]]`,
    a JSON object with a `verdict`/`winner` field, or a first line that is just the verdict.
    """
    verdict: str | None = None
    reason = text.strip()
    for pattern in (_VERDICT_LINE, _BRACKETS):
        match = pattern.search(text)
        if match:
            verdict = _WORDS[match.group(1).lower()]
            reason = (text[: match.start()] + text[match.end() :]).strip()
            break
    if verdict is None:
        verdict, reason = _verdict_from_json(text) or _verdict_from_first_line(text)
    reason = re.sub(r"^[\s*_:.\-`]+", "", reason).strip()[:600]
    return (verdict if verdict in ("A", "B", "tie") else None), reason  # type: ignore[return-value]


def _verdict_from_json(text: str) -> tuple[str | None, str] | None:
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if not match:
        return None
    try:
        obj = json.loads(match.group(0))
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    value = str(obj.get("verdict", obj.get("winner", ""))).strip().lower()
    value = value.removeprefix("answer").strip()
    return _WORDS.get(value), str(obj.get("reason", obj.get("explanation", "")))


def _verdict_from_first_line(text: str) -> tuple[str | None, str]:
    lines = text.strip().splitlines()
    if lines:
        match = _BARE.match(lines[0].strip())
        if match:
            return _WORDS[match.group(1).lower()], "\n".join(lines[1:])
    return None, text.strip()


# ---------------------------------------------------------------------------
# Judging a run
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeItem:
    """One example to judge: the conversation, the reference and the two answers."""

    index: int
    conversation: list[dict[str, str]]
    reference: str
    tuned: str
    other: str


def _winner(verdict: Verdict | None, a: str, b: str) -> str | None:
    return {"A": a, "B": b, "tie": "tie"}.get(verdict) if verdict else None


def _judge_row(item: JudgeItem, against: str, texts: tuple[str, str], settings: str) -> dict:
    """Combine the two calls (tuned as A, then as B) into one stored verdict."""
    calls = []
    for (a, b), text in zip((("tuned", against), (against, "tuned")), texts, strict=True):
        verdict, reason = parse_verdict(text)
        winner = _winner(verdict, a, b)
        calls.append({"a": a, "b": b, "verdict": verdict, "winner": winner, "reason": reason})
    first, second = calls[0]["winner"], calls[1]["winner"]
    parsed = first is not None and second is not None
    return {
        "index": item.index,
        "against": against,
        "settings": settings,
        "outputs": fingerprint([item.reference, item.tuned, item.other]),
        "calls": calls,
        "winner": (first if first == second else "tie") if parsed else None,
        "consistent": first == second if parsed else None,
        "time": time.time(),
    }


def _both_orders(item: JudgeItem, rubric: str) -> list[list[dict[str, str]]]:
    """The two judge chats of an example: fine-tuned as answer A, then as answer B."""
    return [
        judge_messages(item.conversation, item.reference, item.tuned, item.other, rubric),
        judge_messages(item.conversation, item.reference, item.other, item.tuned, rubric),
    ]


def judge_items(
    run_dir: Path,
    config: JudgeConfig,
    against: str,
    items: Sequence[JudgeItem],
    completer: Completer | None = None,
    progress: Callable[[int, int], None] | None = None,
    eval_set: str = VALIDATION,
) -> list[dict[str, Any]]:
    """Judge tuned vs `against` on `items`, reusing verdicts already in judge.jsonl.

    Returns the current judge rows for these items (index order).
    """
    path = set_dir(run_dir, eval_set) / JUDGE_FILE
    settings = config.settings()
    wanted = {item.index: fingerprint([item.reference, item.tuned, item.other]) for item in items}

    def current(row: dict[str, Any]) -> bool:
        if row.get("against") != against or row.get("index") not in wanted:
            return True  # another comparison's verdicts are kept as they are
        return row.get("settings") == settings and row.get("outputs") == wanted[row["index"]]

    kept = keep_current(path, current, key=lambda r: (r.get("against"), r.get("index")))
    done = {r["index"] for r in kept if r.get("against") == against and r["index"] in wanted}
    todo = [item for item in items if item.index not in done]
    if todo and completer is None:
        completer = http_completer(config) if config.url else local_completer(config)
    step = max(1, config.concurrency)
    for start in range(0, len(todo), step):
        chunk = todo[start : start + step]
        assert completer is not None
        texts = completer([chat for item in chunk for chat in _both_orders(item, config.rubric)])
        rows = [
            _judge_row(item, against, (texts[2 * i], texts[2 * i + 1]), settings)
            for i, item in enumerate(chunk)
        ]
        append_jsonl(path, rows)
        if progress:
            progress(len(done) + start + len(chunk), len(items))
    return judge_rows(run_dir, against, settings, wanted)


def judge_rows(
    run_dir: Path,
    against: str | None = None,
    settings: str | None = None,
    outputs: dict[int, str] | None = None,
    eval_set: str = VALIDATION,
) -> list[dict[str, Any]]:
    """Stored verdicts (of one eval set), optionally for one comparison / settings / outputs."""
    rows = read_jsonl(set_path(run_dir, eval_set) / JUDGE_FILE)
    rows = [
        r
        for r in rows
        if (against is None or r.get("against") == against)
        and (settings is None or r.get("settings") == settings)
        and (outputs is None or outputs.get(r.get("index", -1)) == r.get("outputs"))
    ]
    return sorted(rows, key=lambda r: r.get("index", 0))


@dataclass(frozen=True)
class JudgeStats:
    """The judge's view of tuned vs one base system."""

    against: str
    n: int
    wins: int
    losses: int
    ties: int
    unparsed: int
    win_rate: float | None
    """(wins + ties / 2) / judged examples."""
    consistency: float | None
    """Share of examples whose two calls (positions swapped) agreed."""
    first_position_rate: float | None
    """Share of parsed calls that preferred answer A: far from 0.5 means position bias."""


def judge_stats(rows: Sequence[dict[str, Any]], against: str) -> JudgeStats:
    """Win rate, swap consistency and position preference over judge rows."""
    judged = [r for r in rows if r.get("winner") is not None]
    wins = sum(r["winner"] == "tuned" for r in judged)
    ties = sum(r["winner"] == "tie" for r in judged)
    calls = [c for r in rows for c in r.get("calls", []) if c.get("verdict") in ("A", "B")]
    n = len(judged)
    return JudgeStats(
        against=against,
        n=n,
        wins=wins,
        losses=n - wins - ties,
        ties=ties,
        unparsed=len(rows) - n,
        win_rate=round((wins + ties / 2) / n, 6) if n else None,
        consistency=round(sum(bool(r["consistent"]) for r in judged) / n, 6) if n else None,
        first_position_rate=(
            round(sum(c["verdict"] == "A" for c in calls) / len(calls), 6) if calls else None
        ),
    )
