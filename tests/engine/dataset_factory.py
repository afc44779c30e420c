"""Small, varied, valid datasets for lint and split tests, plus file writers.

`varied(n)` gives n chat records that trip no dataset-level check: distinct prompts and
answers of similar length, lower-case words only (no fact-like names or numbers), one
shared system prompt. Tests add one defect to it and check lint finds exactly that.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

SYSTEM = "You are a helpful support assistant. Answer briefly."
WORDS_TEXT = (
    "account app backup billing browser cache calendar card change charge check cloud "
    "column comment connect copy crash data delete device download draft edit email error "
    "export feature field file filter folder format group help history import invite "
    "invoice item label language layout link list login mail member menu message mobile "
    "note notice order owner page password payment phone photo plan preview print profile "
    "project receipt record refund reminder report request reset restore role rule screen "
    "search seat setting share sheet sign space status storage summary sync table tag task "
    "team theme ticket timer token update upload user view window workspace zone"
)
WORDS = WORDS_TEXT.split()


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def chat(user: str, assistant: str, system: str | None = SYSTEM) -> dict[str, Any]:
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {"messages": messages}


def varied(
    n: int,
    seed: int = 0,
    labels: list[str] | None = None,
    system: str | None = SYSTEM,
) -> list[dict[str, Any]]:
    """n distinct valid chat records; with `labels`, answers are {"category", "reply"} JSON."""
    rng = random.Random(seed)
    records = []
    for index in range(n):
        user = sentence(rng, rng.randint(12, 18))
        reply = sentence(rng, rng.randint(12, 18))
        if labels:
            reply = json.dumps({"category": labels[index % len(labels)], "reply": reply})
        records.append(chat(user, reply, system))
    return records


def write_jsonl(path: Path, records: list[Any], newline: str = "\n") -> Path:
    """Records as JSONL; a str record is written as-is (for broken lines)."""
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    path.write_bytes((newline.join(lines) + newline).encode("utf-8"))
    return path
