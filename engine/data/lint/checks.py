"""Dataset-level lint checks: findings that compare an example with the rest of the data.

Each check reads the compact `Features` that `engine.data.lint.collect` gathered while
streaming, so none of them needs the examples' texts again.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from statistics import median
from typing import TYPE_CHECKING

from engine.data.labels import WHOLE_ANSWER, LabelScheme
from engine.data.lint.collect import BROKEN_JSON, JSON_ARRAY, JSON_OBJECT, NO_SYSTEM, TEXT, Features
from engine.data.lint.findings import Finding, finding, line_list
from engine.data.near_duplicates import THRESHOLD, near_duplicate_groups, similarity

if TYPE_CHECKING:
    from engine.data.near_duplicates import Signatures

MIN_EXAMPLES = 50
"""Fewer usable examples than this gets a warning (100 clean ones beat 5,000 noisy ones)."""
PATTERN_SHARE = 0.8
"""An answer or system-prompt pattern counts as "most" when this share follows it."""
MIN_FOR_PATTERNS = 10
MIN_FOR_OUTLIERS = 20
IMBALANCE_RATIO = 10
OUTLIER_FACTOR = 8
"""A length outlier is at least this many times beyond the quartile (and 3 IQR, in logs)."""
_LINES_IN_FINDING = 20


def exact_duplicates(f: Features) -> list[Finding]:
    """Every later copy of an example, naming the first and the other copies."""
    first: dict[int, int] = {}
    copies: dict[int, list[int]] = {}
    for index, key in enumerate(f.exact):
        original = first.setdefault(key, index)
        if original != index:
            copies.setdefault(original, []).append(index)
    out = []
    for original, later in copies.items():
        group = [f.lines[original]] + [f.lines[i] for i in later]
        for index in later:
            line = f.lines[index]
            others = [n for n in group if n != line]
            also = [n for n in others if n != group[0]]
            extra = f" (also on lines {line_list(also)})" if also else ""
            out.append(
                finding(
                    "exact-duplicate",
                    line,
                    f"exact duplicate of line {group[0]}{extra}",
                    "keep one copy (`tunedeck lint --fix OUT` drops the others): copies "
                    "overweight an example and make validation loss look better than it is",
                    lines=tuple(others[:_LINES_IN_FINDING]),
                )
            )
    return out


def near_duplicates(f: Features, signatures: Signatures) -> list[Finding]:
    """Members of near-duplicate groups, exact copies excluded (reported above)."""
    out = []
    for group in near_duplicate_groups(signatures):
        distinct: dict[int, int] = {}
        for index in group:
            distinct.setdefault(f.exact[index], index)
        members = sorted(distinct.values())
        for position, index in enumerate(members[1:], start=1):
            nearest, (p, a) = max(
                ((j, similarity(signatures, j, index)) for j in members[:position][-20:]),
                key=lambda item: min(item[1]),
            )
            group_lines = [f.lines[j] for j in members if j != index]
            out.append(
                finding(
                    "near-duplicate",
                    f.lines[index],
                    f"near-duplicate of line {f.lines[nearest]} (prompt ~{p:.0%}, answer "
                    f"~{a:.0%} alike; threshold {THRESHOLD:.0%})",
                    "near-identical examples add little and inflate validation scores; "
                    "keep one, or vary them (split keeps each group on one side)",
                    lines=tuple(group_lines[:_LINES_IN_FINDING]),
                )
            )
    return out


def contradictions(f: Features) -> list[Finding]:
    """Examples whose prompt (lower-cased, spacing ignored) has a different answer elsewhere."""
    first: dict[int, int] = {}
    groups: dict[int, list[int]] = {}
    for index, key in enumerate(f.prompts):
        original = first.setdefault(key, index)
        if original != index:
            groups.setdefault(original, [original]).append(index)
    out = []
    for original, members in groups.items():
        if len({f.answers[i] for i in members}) < 2:
            continue
        for index in members[1:]:
            if f.answers[index] == f.answers[original]:
                continue
            out.append(
                finding(
                    "contradiction",
                    f.lines[index],
                    f"same prompt as line {f.lines[original]} but a different answer",
                    "decide which answer is right and fix or drop the other: the model "
                    "cannot learn two answers to one prompt",
                    lines=(f.lines[original],),
                )
            )
    return out


def off_pattern_answers(f: Features) -> list[Finding]:
    """Answers that break the JSON pattern most answers follow (not JSON, broken, other keys)."""
    n = f.count
    json_count = sum(1 for shape in f.shapes if shape in (JSON_OBJECT, JSON_ARRAY))
    if n < MIN_FOR_PATTERNS or json_count < PATTERN_SHARE * n:
        return []
    hint = "make every answer the same strict JSON shape, with no prose or code fences around it"
    out = []
    for index, shape in enumerate(f.shapes):
        if shape == BROKEN_JSON:
            why = f.broken_json.get(index, "")
            message = f"answer looks like JSON but does not parse ({why})"
        elif shape == TEXT:
            message = f"answer is not JSON, but {json_count} of {n} answers are"
        else:
            continue
        out.append(finding("off-pattern-answer", f.lines[index], message, hint))
    return out + _off_pattern_keys(f, hint)


def _off_pattern_keys(f: Features, hint: str) -> list[Finding]:
    objects = [k for k in f.keysets if k >= 0]
    if len(objects) < MIN_FOR_PATTERNS:
        return []
    common, count = Counter(objects).most_common(1)[0]
    if count < PATTERN_SHARE * len(objects) or count == len(objects):
        return []
    names = {ident: keys for keys, ident in f.keyset_ids.items()}
    expected = set(names[common])
    out = []
    for index, keyset in enumerate(f.keysets):
        if keyset < 0 or keyset == common:
            continue
        keys = set(names[keyset])
        parts = []
        if expected - keys:
            parts.append("missing " + ", ".join(sorted(expected - keys)))
        if keys - expected:
            parts.append("extra " + ", ".join(sorted(keys - expected)))
        message = (
            f"answer JSON has other keys than most answers ({'; '.join(parts)}); "
            f"{count} of {len(objects)} have {', '.join(sorted(expected))}"
        )
        out.append(finding("off-pattern-answer", f.lines[index], message, hint))
    return out


def off_pattern_system(f: Features) -> list[Finding]:
    """Examples without, or with another, system prompt when most share one."""
    n = f.count
    if n < MIN_FOR_PATTERNS:
        return []
    common, count = Counter(f.systems).most_common(1)[0]
    if common < 0 or count < PATTERN_SHARE * n or count == n:
        return []
    text = next(t for t, ident in f.system_texts.items() if ident == common)
    preview = text if len(text) <= 60 else text[:57] + "..."
    out = []
    for index, system in enumerate(f.systems):
        if system == common:
            continue
        what = "no system prompt" if system == NO_SYSTEM else "a different system prompt"
        out.append(
            finding(
                "off-pattern-system",
                f.lines[index],
                f"{what}; {count} of {n} examples share one: {preview!r}",
                "use the same system prompt everywhere (and at inference time), "
                "or the model learns two behaviours",
            )
        )
    return out


def length_outliers(f: Features) -> list[Finding]:
    """Examples far outside the usual length (log scale: 3 IQR and 8x beyond a quartile)."""
    if f.count < MIN_FOR_OUTLIERS:
        return []
    answer_fence = _fences(f.answer_chars)
    total_fence = _fences(f.total_chars)
    out = []
    for index in range(f.count):
        for what, values, (low, high, q1, q3) in (
            ("answer", f.answer_chars, answer_fence),
            ("example", f.total_chars, total_fence),
        ):
            size = math.log1p(values[index])
            if low <= size <= high:
                continue
            side = "longer" if size > high else "shorter"
            out.append(
                finding(
                    "length-outlier",
                    f.lines[index],
                    f"{what} is {values[index]:,} characters, far {side} than most "
                    f"({round(math.expm1(q1)):,}-{round(math.expm1(q3)):,} for the middle half)",
                    "check it is not a paste error or a truncated answer; very long "
                    "examples get truncated and dominate the loss",
                )
            )
            break  # one finding per example: the answer explains the example
    return out


def _fences(values: Iterable[int]) -> tuple[float, float, float, float]:
    logs = sorted(math.log1p(v) for v in values)
    q1 = logs[len(logs) // 4]
    q3 = logs[(3 * len(logs)) // 4]
    width = max(3 * (q3 - q1), math.log(OUTLIER_FACTOR))
    return q1 - width, q3 + width, q1, q3


def too_few(f: Features) -> list[Finding]:
    if f.count >= MIN_EXAMPLES:
        return []
    return [
        finding(
            "too-few-examples",
            0,
            f"only {f.count} usable examples; aim for at least {MIN_EXAMPLES}",
            "100 clean, varied examples beat 5,000 noisy ones: add examples that cover the "
            "cases you care about",
        )
    ]


def label_findings(f: Features, scheme: LabelScheme | None) -> list[Finding]:
    """Label distribution (info), strong imbalance, and labels outside the usual set."""
    if scheme is None:
        return []
    counts = scheme.counts
    shown = ", ".join(f"{label} {count}" for label, count in list(counts.items())[:12])
    out = [finding("label-distribution", 0, f"labels ({scheme.description}): {shown}")]
    (top, most), (rare, least) = next(iter(counts.items())), list(counts.items())[-1]
    if most >= IMBALANCE_RATIO * least:
        out.append(
            finding(
                "label-imbalance",
                0,
                f"label {top!r} has {most} examples, {rare!r} only {least} ({most // least}:1)",
                "add examples of the rare labels (or drop some of the common one); the model "
                "learns to favour what it sees most",
            )
        )
    return out + _unknown_labels(f, scheme)


def _unknown_labels(f: Features, scheme: LabelScheme) -> list[Finding]:
    counts = scheme.counts
    system = _common_system(f)
    listed = {
        label
        for label in counts
        if system and re.search(rf"(?<!\w){re.escape(label)}(?!\w)", system, re.IGNORECASE)
    }
    out: list[Finding] = []
    by_prompt = len(listed) >= max(2, 0.6 * len(counts))
    for label, count in counts.items():
        if by_prompt and label not in listed:
            why = f"label {label!r} is not among those the system prompt lists"
        elif (
            count == 1
            and f.count >= MIN_FOR_OUTLIERS
            and min((c for other, c in counts.items() if other != label), default=0) >= 3
        ):
            why = f"label {label!r} occurs once; every other label occurs 3 or more times"
        else:
            continue
        where = "the answer" if scheme.key == WHOLE_ANSWER else f"{scheme.key!r}"
        for line in f.labels.lines_of(scheme.key, label):
            out.append(
                finding(
                    "unknown-label",
                    line,
                    f"{why} ({count} example{'s' if count > 1 else ''})",
                    f"check {where}: a typo or a class the model is not meant to learn? "
                    f"known labels: {', '.join(sorted(listed or set(counts) - {label}))}",
                )
            )
    return out


def _common_system(f: Features) -> str | None:
    if not f.system_texts:
        return None
    common = Counter(s for s in f.systems if s >= 0).most_common(1)
    if not common:
        return None
    return next(t for t, ident in f.system_texts.items() if ident == common[0][0])


def knowledge_heavy(f: Features) -> list[Finding]:
    """Dataset advisory: most answers state specific facts (names, numbers) prompts lack."""
    sample = f.facts
    if len(sample) < MIN_FOR_OUTLIERS:
        return []
    frequency = Counter(token for _, tokens in sample for token in tokens)
    # Facts specific to an example; a product name in every answer is style, not knowledge.
    rare_cap = max(2, len(sample) // 100)
    per_example = [[t for t in tokens if frequency[t] <= rare_cap] for _, tokens in sample]
    heavy = [facts for facts in per_example if len(facts) >= 3]
    if len(heavy) < 0.5 * len(sample):
        return []
    typical = median(len(facts) for facts in per_example)
    examples = ", ".join(sorted(heavy[0])[:4])
    return [
        finding(
            "knowledge-heavy",
            0,
            f"answers carry many facts the prompts do not contain (median {typical:g} per "
            f"answer, e.g. {examples}): this looks like knowledge, not behaviour",
            "fine-tuning teaches style, format and behaviour; for facts, retrieval (RAG: "
            "put the facts in the prompt) is more reliable and easier to update",
        )
    ]
