"""Scores of one generated answer against its reference, and their aggregate per system.

Per example: exact match, token F1 and ROUGE-L against the reference; for JSON references
validity, same keys and per-key match; for labelled data the predicted label. The primary
score (what "better" means when two systems are compared on one example) is the task's
primary metric (engine.data.primary, decided once from the training data or named by the
user): the label's correctness when a field is a class label, field accuracy (the share of
the reference's fields matched exactly) when the answers are other JSON objects, exact
match, or ROUGE-L.

Text is compared after NFKC normalisation, case folding and whitespace collapsing; tokens
are runs of Unicode word characters, so punctuation and JSON syntax do not count as words.
ROUGE-L is computed by the `rouge-score` package (offline, Google's reimplementation of
ROUGE-1.5.5) with that same tokenizer, so non-English text scores too.

Pure Python, no torch: the TUI may recompute scores while the model is elsewhere.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from engine.data.labels import LabelScheme, parse_json_object
from engine.data.primary import Primary, PrimaryKind, decide_primary

METRICS_VERSION = 3
"""2: label accuracy only for class labels, JSON extraction scored by field accuracy.
3: a label is right when it matches the reference's, also one unseen in training; the
primary metric is the run's (engine.data.primary), `exact` among them.
Bumped when a per-example score changes meaning: stored rows are re-scored on load."""
FAIL_ROUGE = 0.5
"""Free-text answers below this ROUGE-L (and not exact) count as failures in review."""
POOL = "pool"
"""`scored_as` of a prompt pool's rows: answers without a reference, never re-scored."""
NO_LABEL = "(none)"
"""Predicted label of an answer that has none (invalid JSON, key missing)."""
OTHER_LABEL = "(other)"
"""Predicted label outside the label set seen in the data."""

_WORD = re.compile(r"\w+")


# ---------------------------------------------------------------------------
# Text scores
# ---------------------------------------------------------------------------


def normalise(text: str) -> str:
    """NFKC, case-folded, whitespace-collapsed text: what "the same answer" means."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def words(text: str) -> list[str]:
    """The normalised word tokens of a text (punctuation and JSON syntax dropped)."""
    return _WORD.findall(normalise(text))


class _WordTokenizer:
    """The tokenizer object rouge-score expects (a `tokenize(text)` method)."""

    def tokenize(self, text: str) -> list[str]:
        return words(text)


@lru_cache(maxsize=1)
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_WordTokenizer())


def exact_match(output: str, reference: str) -> bool:
    """Equal after normalisation; two JSON texts are equal when their values are."""
    if normalise(output) == normalise(reference):
        return True
    ref_json, out_json = parse_json(reference), parse_json(output)
    return ref_json is not None and out_json is not None and ref_json == out_json


def token_f1(output: str, reference: str) -> float:
    """Harmonic mean of word precision and recall (SQuAD's F1 over word multisets)."""
    out, ref = words(output), words(reference)
    if not out or not ref:
        return float(out == ref)
    common = sum((Counter(out) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(out), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def rouge_l(output: str, reference: str) -> float:
    """ROUGE-L F-measure (longest common word subsequence), 0 when either side is empty."""
    return float(_rouge_scorer().score(reference, output)["rougeL"].fmeasure)


# ---------------------------------------------------------------------------
# JSON and labels
# ---------------------------------------------------------------------------


def parse_json(text: str) -> Any:
    """The text as a JSON object or array, or None (scalars do not count as JSON answers)."""
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict | list) else None


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return normalise(a) == normalise(b)
    return bool(a == b)


def json_scores(output: str, reference: str) -> dict[str, Any] | None:
    """Validity, same keys and per-key match of a JSON answer; None if the reference isn't JSON.

    Per-key match is exact (normalised text for strings); string values also get a
    ROUGE-L, since a free-text field ("reply") rarely matches exactly.
    """
    ref = parse_json(reference)
    if ref is None:
        return None
    out = parse_json(output)
    valid = out is not None and type(out) is type(ref)
    scores: dict[str, Any] = {"json_valid": valid}
    if isinstance(ref, dict):
        out_obj = out if valid and isinstance(out, dict) else {}
        scores["same_keys"] = valid and set(out_obj) == set(ref)
        scores["key_match"] = {
            k: k in out_obj and _same_value(out_obj[k], v) for k, v in ref.items()
        }
        scores["key_rouge"] = {
            k: rouge_l(str(out_obj.get(k, "")), v) for k, v in ref.items() if isinstance(v, str)
        }
    return scores


def _label_norm(label: str) -> str:
    return normalise(label).rstrip(".!")


def predicted_label(scheme: LabelScheme, output: str, reference_label: str | None = None) -> str:
    """The label an answer gives under the data's scheme, mapped onto the known labels.

    Matching ignores case and a trailing full stop ("Positive." is "positive"). A label
    outside the data's label set is OTHER_LABEL, unless it is the reference's own label
    (a test set may hold labels that training never saw: the answer is still right); no
    label at all is NO_LABEL.
    """
    label = scheme.label_of(output, parse_json_object(output))
    if label is None or not label.strip():
        return NO_LABEL
    known = {_label_norm(k): k for k in scheme.counts}
    if reference_label is not None:
        known.setdefault(_label_norm(reference_label), reference_label)
    return known.get(_label_norm(label), OTHER_LABEL)


# ---------------------------------------------------------------------------
# One example
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoringContext:
    """What scoring needs besides the two texts: the data's label scheme and primary score."""

    scheme: LabelScheme | None
    primary: PrimaryKind
    primary_name: str
    """How the summary names the primary score, e.g. "category accuracy"."""
    choice: Primary | None = None
    """The primary metric with its reason and source (None: made by hand in a test)."""

    @property
    def spec(self) -> str:
        """The primary metric as a user spells it (`label:category`, `fields`, ...)."""
        return self.choice.spec if self.choice is not None else self.primary


def scoring_context(
    references: Sequence[str],
    train_answers: Iterable[str],
    train_prompts: Sequence[str] | None = None,
    instructions: str = "",
    primary: Primary | None = None,
) -> ScoringContext:
    """The label scheme and primary score of a task.

    Args:
        references: the scored set's reference answers; read only when there are no
            training answers to decide from.
        train_prompts: the user message of each training answer, in the same order (None:
            the copied-from-the-prompt check is skipped).
        instructions: the data's system prompt text(s).
        primary: the run's primary metric (engine.eval.primary); None: decided here from
            the training answers (engine.data.primary.decide_primary).
    """
    answers = list(train_answers)
    if primary is None:
        if answers:
            primary = decide_primary(answers, train_prompts, instructions)
        else:
            primary = decide_primary(list(references))
    return context_for(primary, answers)


def context_for(primary: Primary, train_answers: Sequence[str]) -> ScoringContext:
    """The scoring context of a primary metric: for a label, its scheme with the training
    answers' label counts (the known labels that predictions are mapped onto)."""
    scheme = None
    if primary.kind == "label":
        scheme = LabelScheme(primary.key or "", {})
        counts: dict[str, int] = {}
        for answer in train_answers:
            label = scheme.label_of(answer)
            if label is not None:
                counts[label] = counts.get(label, 0) + 1
        scheme = LabelScheme(scheme.key, dict(sorted(counts.items(), key=lambda kv: -kv[1])))
    return ScoringContext(scheme, primary.kind, primary.name, primary)


def score_example(output: str, reference: str, ctx: ScoringContext) -> dict[str, Any]:
    """Every per-example score of one answer (JSON-safe dict, stored in the row)."""
    scores: dict[str, Any] = {
        "exact": exact_match(output, reference),
        "f1": round(token_f1(output, reference), 6),
        "rouge_l": round(rouge_l(output, reference), 6),
    }
    json_part = json_scores(output, reference)
    if json_part is not None:
        scores.update(json_part)
    if ctx.scheme is not None:
        ref_label = ctx.scheme.label_of(reference, parse_json_object(reference))
        scores["label"] = predicted_label(ctx.scheme, output, ref_label)
        scores["ref_label"] = ref_label
        scores["label_correct"] = ref_label is not None and (
            _label_norm(scores["label"]) == _label_norm(ref_label)
        )
    scores["primary"] = primary_score(scores, ctx)
    scores["failed"] = is_failure(scores, ctx)
    return scores


def pool_scores(output: str, json_task: bool) -> dict[str, Any]:
    """What can be told of an answer to a prompt without a reference: whether it is JSON
    when the training answers are. No primary score: a person reviews it."""
    if not json_task:
        return {"failed": False}
    valid = parse_json(output) is not None
    return {"json_valid": valid, "failed": not valid}


def primary_score(scores: dict[str, Any], ctx: ScoringContext) -> float:
    """The one number two systems are compared on, per example (0..1)."""
    if ctx.primary == "label" and "label_correct" in scores:
        return float(scores["label_correct"])
    if ctx.primary == "json_keys" and "key_match" in scores:
        matches = scores["key_match"]
        return sum(matches.values()) / len(matches) if matches else float(scores["json_valid"])
    if ctx.primary == "exact":
        return float(scores["exact"])
    return float(scores["rouge_l"])


def is_failure(scores: dict[str, Any], ctx: ScoringContext) -> bool:
    """Wrong label, invalid JSON or wrong keys, or (free text) far from the reference."""
    if ctx.primary == "label" and "label_correct" in scores:
        return not scores["label_correct"]
    if ctx.primary == "exact":
        return not scores["exact"]
    if "json_valid" in scores:
        return not scores["json_valid"] or not scores.get("same_keys", True)
    return not scores["exact"] and scores["rouge_l"] < FAIL_ROUGE


# ---------------------------------------------------------------------------
# Aggregates
# ---------------------------------------------------------------------------


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 6) if values else None


def _key_means(rows: list[dict[str, Any]], field_name: str) -> dict[str, float]:
    per_key: dict[str, list[float]] = {}
    for scores in rows:
        for key, value in scores.get(field_name, {}).items():
            per_key.setdefault(key, []).append(float(value))
    return {k: round(sum(v) / len(v), 6) for k, v in per_key.items()}


@dataclass(frozen=True)
class Aggregate:
    """A system's scores over the examples it answered."""

    n: int
    exact: float | None
    f1: float | None
    rouge_l: float | None
    primary: float | None
    json_valid: float | None = None
    same_keys: float | None = None
    key_match: dict[str, float] = field(default_factory=dict)
    key_rouge: dict[str, float] = field(default_factory=dict)
    label_accuracy: float | None = None
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: int = 0


def aggregate(scores: list[dict[str, Any]]) -> Aggregate:
    """Means (and the label confusion table) over per-example scores."""
    json_rows = [s for s in scores if "json_valid" in s]
    obj_rows = [s for s in json_rows if "same_keys" in s]
    labelled = [s for s in scores if s.get("ref_label") is not None]
    confusion: dict[str, dict[str, int]] = {}
    for s in labelled:
        row = confusion.setdefault(s["ref_label"], {})
        row[s["label"]] = row.get(s["label"], 0) + 1
    return Aggregate(
        n=len(scores),
        exact=_mean([float(s["exact"]) for s in scores]),
        f1=_mean([s["f1"] for s in scores]),
        rouge_l=_mean([s["rouge_l"] for s in scores]),
        primary=_mean([s["primary"] for s in scores]),
        json_valid=_mean([float(s["json_valid"]) for s in json_rows]),
        same_keys=_mean([float(s["same_keys"]) for s in obj_rows]),
        key_match=_key_means(obj_rows, "key_match"),
        key_rouge=_key_means(obj_rows, "key_rouge"),
        label_accuracy=_mean([float(s["label_correct"]) for s in labelled]),
        confusion={k: dict(sorted(v.items())) for k, v in sorted(confusion.items())},
        failures=sum(bool(s.get("failed")) for s in scores),
    )


def perplexity(loss: float | None) -> float | None:
    """exp(loss), or None when the loss is unknown or too large to exponentiate."""
    if loss is None or not math.isfinite(loss) or loss > 700:
        return None
    return math.exp(loss)
