"""General-ability probes: does the fine-tuned model still answer ordinary questions?

A dozen everyday prompts, asked without the dataset's system prompt, answered by the base
model and by the fine-tuned one. Three measures of drift (the guide's "lose general
ability"):

- facts kept: probes with a known answer (Paris, 19, ...) that each model gets right;
- similarity: ROUGE-L between the base and the fine-tuned answer to the same probe
  (1 = unchanged behaviour; low values are expected for sampled or creative answers, so
  this is context, not a verdict on its own);
- format collapse: probes that the fine-tuned model answers in the fine-tuning format
  (a JSON object, or one of the dataset's labels) where the base model did not, which is
  what over-trained adapters do to every prompt.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.layout import PROBES_FILE
from engine.data.labels import LabelScheme
from engine.eval.metrics import normalise, parse_json, rouge_l
from engine.eval.store import append_jsonl, eval_dir, fingerprint, keep_current


@dataclass(frozen=True)
class Probe:
    """One ordinary prompt and, where there is one, what a right answer must mention."""

    prompt: str
    expected: tuple[str, ...] = ()
    """Any of these words in the answer makes it right; empty: open-ended, not scored."""


PROBES: tuple[Probe, ...] = (
    Probe("What is 12 + 7? Answer with the number.", ("19", "nineteen")),
    Probe("What is the capital of France?", ("paris",)),
    Probe("What is the capital of Japan?", ("tokyo",)),
    Probe("Translate 'good morning' into French.", ("bonjour",)),
    Probe("How many days are there in a week?", ("7", "seven")),
    Probe("Which planet is the largest in our solar system?", ("jupiter",)),
    Probe("What colour do you get when you mix blue and yellow?", ("green",)),
    Probe("What is the opposite of 'cold'?", ("hot", "warm")),
    Probe("How many legs does a spider have?", ("8", "eight")),
    Probe("Write a haiku about autumn leaves."),
    Probe("Give me one tip for sleeping better."),
    Probe("Explain in one sentence what a CPU does."),
)

MAX_NEW_TOKENS = 64
"""Probe answers are short; the first sentence shows whether the model is still itself."""


def probe_messages(probe: Probe) -> list[dict[str, str]]:
    """The chat a probe is asked in: one user turn, the template's default system prompt."""
    return [{"role": "user", "content": probe.prompt}]


def is_right(probe: Probe, answer: str) -> bool | None:
    """Whether an answer mentions an expected word (as a whole word); None when open-ended."""
    if not probe.expected:
        return None
    text = normalise(answer)
    return any(re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text) for word in probe.expected)


def in_task_format(answer: str, scheme: LabelScheme | None) -> bool:
    """The answer looks like a fine-tuning answer: a JSON value, or exactly one of the labels."""
    if parse_json(answer) is not None:
        return True
    if scheme is None:
        return False
    labels = {normalise(label) for label in scheme.counts}
    return normalise(answer).rstrip(".!") in labels


@dataclass(frozen=True)
class Drift:
    """How far the fine-tuned model's answers to PROBES moved from the base model's."""

    probes: int
    facts: int
    """Probes with a known answer."""
    base_right: int
    tuned_right: int
    similarity: float | None
    """Mean ROUGE-L between the base and the fine-tuned answer to each probe."""
    format_collapse: int
    """Probes answered in the fine-tuning format by the fine-tuned model only."""
    collapsed_probes: tuple[int, ...]

    def note(self) -> str:
        """One plain sentence about general ability."""
        text = (
            f"general ability: fine-tuned gets {self.tuned_right}/{self.facts} probe facts "
            f"right (base {self.base_right}/{self.facts})"
        )
        if self.format_collapse:
            text += (
                f"; {self.format_collapse}/{self.probes} ordinary prompts answered in the "
                "fine-tuning format"
            )
        return text


def drift(base: Sequence[str], tuned: Sequence[str], scheme: LabelScheme | None) -> Drift:
    """The drift measures for answers given to PROBES, in order, by the two models."""
    pairs = list(zip(PROBES, base, tuned, strict=True))
    scored = [(p, b, t) for p, b, t in pairs if p.expected]
    similarity = [rouge_l(t, b) for _, b, t in pairs]
    collapsed = tuple(
        i
        for i, (_, b, t) in enumerate(pairs)
        if in_task_format(t, scheme) and not in_task_format(b, scheme)
    )
    return Drift(
        probes=len(pairs),
        facts=len(scored),
        base_right=sum(bool(is_right(p, b)) for p, b, _ in scored),
        tuned_right=sum(bool(is_right(p, t)) for p, _, t in scored),
        similarity=round(sum(similarity) / len(similarity), 6) if similarity else None,
        format_collapse=len(collapsed),
        collapsed_probes=collapsed,
    )


# ---------------------------------------------------------------------------
# Stored answers: eval/probes.jsonl, one row per model ("base", "tuned") and probe
# ---------------------------------------------------------------------------


def probe_settings(weights: str) -> str:
    """Fingerprint of probe answers from the model whose weights fingerprint is `weights`."""
    return fingerprint([weights, [p.prompt for p in PROBES], MAX_NEW_TOKENS])


def _current_rows(run_dir: Path, model: str, settings: str) -> list[dict[str, Any]]:
    rows = keep_current(
        eval_dir(run_dir) / PROBES_FILE,
        lambda r: r.get("model") != model or r.get("settings") == settings,
        key=lambda r: (r.get("model"), r.get("index")),
    )
    return [r for r in rows if r.get("model") == model]


def pending_probes(run_dir: Path, model: str, settings: str) -> list[int]:
    """Probes the model has no current answer to (stale answers are dropped)."""
    done = {r.get("index") for r in _current_rows(run_dir, model, settings)}
    return [i for i in range(len(PROBES)) if i not in done]


def store_probe_answers(
    run_dir: Path, model: str, settings: str, indices: Sequence[int], answers: Sequence[str]
) -> None:
    """Append the model's answers to the probes at `indices`."""
    rows = [
        {
            "model": model,
            "index": i,
            "settings": settings,
            "prompt": PROBES[i].prompt,
            "output": answer,
            "time": time.time(),
        }
        for i, answer in zip(indices, answers, strict=True)
    ]
    append_jsonl(eval_dir(run_dir) / PROBES_FILE, rows)


def stored_drift(
    run_dir: Path, settings: dict[str, str], scheme: LabelScheme | None
) -> Drift | None:
    """Drift between the stored base and fine-tuned answers, if both are complete.

    Args:
        settings: the current probe fingerprint of "base" and "tuned"; other rows are stale.
    """
    from engine.eval.store import read_jsonl

    answers = {
        (r.get("model"), r.get("index")): str(r.get("output", ""))
        for r in read_jsonl(eval_dir(run_dir) / PROBES_FILE)
        if settings.get(str(r.get("model"))) == r.get("settings")
    }
    base = [answers.get(("base", i)) for i in range(len(PROBES))]
    tuned = [answers.get(("tuned", i)) for i in range(len(PROBES))]
    if None in base or None in tuned:
        return None
    return drift([str(a) for a in base], [str(a) for a in tuned], scheme)
