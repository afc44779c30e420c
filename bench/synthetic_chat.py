"""Synthetic-but-varied chat JSONL for benchmarks: realistic shape, deterministic by seed.

Each line is a support-style or question-answer conversation: a (mostly shared) system
prompt, one to three user/assistant rounds, answers that are prose or strict JSON, lengths
spread log-normally around ~1 KB a line, made-up product names, order numbers and e-mail
addresses so the tokenizer meets rare words, not only a small cached vocabulary. About 1 %
of lines are exact duplicates, 1 % near-duplicates and 0.1 % broken, so lint has real
work to report.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

_COMMON_TEXT = (
    "the a to and of I my is it in for you that on with this have was not but be can "
    "when are we your what do so if at or just get all there out up about how now one "
    "time please help account order invoice payment charged twice refund card app crash "
    "login password reset email phone update version screen error message again still "
    "working broken slow sync folder file share team plan upgrade cancel subscription "
    "price month year week today yesterday tried restart reinstall support ticket team "
    "customer thanks hello hi would like need know why does feature request export report "
    "dashboard settings notification mobile desktop browser chrome firefox safari windows "
    "linux mac android iphone tablet network wifi connection timeout server down outage "
    "since morning everyone colleagues meeting deadline important urgent issue problem"
)
_COMMON = _COMMON_TEXT.split()
_SYLLABLES_TEXT = "ka lo mi ne tor vex qua zin bri dal fen gro hul jas kip mun pra sel tiv wor"
_SYLLABLES = _SYLLABLES_TEXT.split()
_SYSTEMS = [
    "You are the support assistant of Nimbus Cloud. Classify each ticket and draft a reply.",
    "You are a concise, friendly assistant.",
    "Answer as a senior support engineer. Be precise and polite.",
]
_CATEGORIES = ["billing", "bug", "account", "feature_request", "how_to", "outage"]


def _made_up_word(rng: random.Random) -> str:
    word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
    return word.capitalize() if rng.random() < 0.3 else word


def _sentence(rng: random.Random, rare: list[str]) -> str:
    parts = []
    for _ in range(rng.randint(6, 18)):
        roll = rng.random()
        if roll < 0.82:
            parts.append(rng.choice(_COMMON))
        elif roll < 0.92:
            parts.append(rng.choice(rare))
        elif roll < 0.96:
            parts.append(f"#{rng.randint(1000, 999999)}")
        else:
            parts.append(f"{rng.choice(rare).lower()}@{rng.choice(rare).lower()}.com")
    text = " ".join(parts)
    return text[0].upper() + text[1:] + rng.choice([".", ".", "?", "!"])


def _text(rng: random.Random, rare: list[str], mean_chars: float) -> str:
    target = max(20, int(rng.lognormvariate(0, 0.6) * mean_chars))
    sentences: list[str] = []
    while sum(len(s) + 1 for s in sentences) < target:
        sentences.append(_sentence(rng, rare))
    return " ".join(sentences)


def _answer(rng: random.Random, rare: list[str]) -> str:
    if rng.random() < 0.3:
        reply = _text(rng, rare, 170)
        return json.dumps({"category": rng.choice(_CATEGORIES), "reply": reply})
    return _text(rng, rare, 230)


def _conversation(rng: random.Random, rare: list[str]) -> dict:
    messages = []
    if rng.random() < 0.9:
        messages.append({"role": "system", "content": rng.choices(_SYSTEMS, [8, 1, 1])[0]})
    for _ in range(rng.choices([1, 2, 3], [8, 1.5, 0.5])[0]):
        messages.append({"role": "user", "content": _text(rng, rare, 290)})
        messages.append({"role": "assistant", "content": _answer(rng, rare)})
    return {"messages": messages}


def write_dataset(path: Path, count: int, seed: int = 0) -> Path:
    """Write `count` lines of synthetic chat JSONL to `path`."""
    rng = random.Random(seed)
    rare = [_made_up_word(rng) for _ in range(5000)]
    recent: list[dict] = []
    with open(path, "w", encoding="utf-8") as out:
        for _ in range(count):
            roll = rng.random()
            if roll < 0.01 and recent:
                record = rng.choice(recent)  # exact duplicate
            elif roll < 0.02 and recent:
                record = json.loads(json.dumps(rng.choice(recent)))
                last_user = next(m for m in record["messages"] if m["role"] == "user")
                last_user["content"] = last_user["content"].replace(" the ", " a ", 1) + " Thanks"
            elif roll < 0.021:
                out.write('{"messages": [{"role": "user", "content": "broken\n')
                continue
            else:
                record = _conversation(rng, rare)
            recent = (recent + [record])[-200:]
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path
