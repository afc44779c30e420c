"""How sure an evaluation is, and what it calls primary: the 95 % intervals, the exact
sign test on known values, the choice of the primary metric (class labels vs extracted
fields, the issue's order-extraction case), and the verdict's wording."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.data.labels import class_label_scheme, detect_labels, is_word_like
from engine.eval.memorisation import TrainAnswerIndex
from engine.eval.metrics import METRICS_VERSION, ScoringContext, scoring_context
from engine.eval.stats import (
    bootstrap_interval,
    clear_difference,
    format_p,
    mean_interval,
    paired_test,
    sign_test_p,
    wilson_interval,
)
from engine.eval.store import append_jsonl, system_file
from engine.eval.summary import build_summary, score_output

# ---------------------------------------------------------------------------
# Intervals and the paired test
# ---------------------------------------------------------------------------


def test_wilson_interval_matches_published_values() -> None:
    # Newcombe (1998), Table I: 0/10 -> 0 to 0.2775; 5/10 -> 0.2366 to 0.7634
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_mean_interval_uses_wilson_for_proportions_and_bootstrap_otherwise() -> None:
    binary = mean_interval([1.0] * 13 + [0.0])
    assert binary is not None and binary.method == "wilson"
    assert (binary.low, binary.high) == pytest.approx(wilson_interval(13, 14), abs=1e-6)
    scores = [0.2, 0.5, 0.7, 0.9, 0.4, 0.6, 0.8, 0.3, 0.55, 0.65]
    continuous = mean_interval(scores)
    assert continuous is not None and continuous.method == "bootstrap"
    mean = sum(scores) / len(scores)
    assert continuous.low < mean < continuous.high
    assert continuous.low >= 0.0 and continuous.high <= 1.0
    assert mean_interval(scores) == continuous  # seeded: the same rows, the same interval
    wider = bootstrap_interval(scores[:4])
    assert wider[1] - wider[0] > continuous.high - continuous.low
    assert mean_interval([]) is None


def test_sign_test_known_values() -> None:
    assert sign_test_p(12, 0) == pytest.approx(2 / 2**12)  # exact McNemar, 12 discordant
    assert sign_test_p(0, 12) == sign_test_p(12, 0)
    assert sign_test_p(6, 0) == pytest.approx(0.03125)
    assert sign_test_p(5, 0) == pytest.approx(0.0625)  # five alone can never decide
    assert sign_test_p(8, 2) == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert sign_test_p(3, 3) == 1.0 and sign_test_p(0, 0) == 1.0
    # ties carry no information: the paired test leaves them out
    test = paired_test([1, 1, 1, 0.5, 0.2], [0, 0, 1, 0.5, 0.3])
    assert (test.wins, test.losses, test.ties) == (2, 1, 2)
    assert test.p_value == 1.0 and not test.significant


def test_clear_difference_and_p_formatting() -> None:
    twelve = paired_test([1.0] * 12, [0.0] * 12)
    assert twelve.significant and clear_difference(twelve, 1.0, 0.0)
    # no significant test, but a 0.25 gap over 16 examples is clear on its face
    gap = paired_test([1.0] * 4 + [0.0] * 12, [1.0] * 8 + [0.0] * 8)
    assert not gap.significant and clear_difference(gap, 0.25, 0.5)
    assert not clear_difference(paired_test([1.0, 0.0], [0.0, 0.0]), 0.5, 0.0)  # 2 examples
    assert format_p(0.000488) == "p < 0.001"
    assert format_p(0.03125) == "p = 0.031" and format_p(0.375) == "p = 0.38"
    assert format_p(0.0499) == "p < 0.05" and format_p(0.0625) == "p = 0.062"


# ---------------------------------------------------------------------------
# The primary metric
# ---------------------------------------------------------------------------

TICKET = '{"category": "%s", "reply": "%s"}'
TICKET_SYSTEM = "Classify the ticket into one category: billing, bug, outage. Reply in JSON."
TICKET_PROMPTS = {
    "billing": "I was charged twice this month, please refund one payment.",
    "bug": "The export button crashes the app every time I press it.",
    "outage": "Nothing loads since this morning, is the service down?",
}
NAMES = ["Ana Ruiz", "Ben Okafor", "Chloe Martin", "Dev Patel", "Eva Novak", "Finn Berg",
         "Gia Rossi", "Hugo Lund", "Ines Sousa", "Jon Park", "Kai Weber", "Lea Moreau",
         "Max Stein", "Nora Blom", "Omar Haddad", "Pia Lind"]  # fmt: skip
PRODUCTS = ["standing desk", "monitor arm", "desk lamp"]
CITIES = ["Lyon", "Porto", "Graz"]


def order(i: int) -> tuple[str, str]:
    """An order email and its JSON extraction (the issue's task: name, product, qty, city)."""
    name, product, city = NAMES[i], PRODUCTS[i % 3], CITIES[(i // 3) % 3]
    quantity = 1 + i % 4
    prompt = f"Hi, this is {name}. Please send {quantity} x {product} to our office in {city}."
    answer = json.dumps({"name": name, "product": product, "quantity": quantity, "city": city})
    return prompt, answer


def test_a_ticket_category_is_a_class_label() -> None:
    labels = ["billing", "bug", "outage"] * 4
    answers = [TICKET % (c, "Thanks, we are on it.") for c in labels]
    prompts = [TICKET_PROMPTS[c] for c in labels]
    ctx = scoring_context(answers, answers, prompts, TICKET_SYSTEM)
    assert (ctx.primary, ctx.primary_name) == ("label", "category accuracy")
    # without a system prompt naming them, still a class: chosen, not copied from the text
    assert scoring_context(answers, answers, prompts).primary_name == "category accuracy"


def test_extraction_is_scored_field_by_field_not_by_a_few_valued_field() -> None:
    prompts, answers = zip(*(order(i) for i in range(16)), strict=True)
    # the old rule: the key with the fewest values (quantity, or product) was "the label"
    assert detect_labels(answers) is not None
    assert class_label_scheme(list(answers), list(prompts)) is None
    ctx = scoring_context(list(answers), answers, list(prompts), "Extract the order as JSON.")
    assert (ctx.primary, ctx.primary_name) == ("json_keys", "field accuracy")


def test_numbers_and_free_text_are_never_class_labels() -> None:
    assert not is_word_like("3") and not is_word_like("12.5") and not is_word_like("-4")
    assert not is_word_like("a reply that runs on for far too many words")
    assert is_word_like("feature_request") and is_word_like("how to")
    ratings = [json.dumps({"stars": n, "text": f"review {i}"}) for i, n in enumerate([1, 2, 3] * 4)]
    assert class_label_scheme(ratings) is None
    plain = ["positive", "negative"] * 5
    scheme = class_label_scheme(plain, ["great stuff", "awful"] * 5)
    assert scheme is not None and scheme.key == ""


# ---------------------------------------------------------------------------
# The verdict
# ---------------------------------------------------------------------------


def write_rows(run: Path, system: str, outputs: list[str], refs: list[str], ctx: Any) -> None:
    index = TrainAnswerIndex([])
    rows = [
        {"index": i, "system": system, "prompt": f"p{i}", "reference": ref, "output": out,
         "metrics_version": METRICS_VERSION, "metrics": score_output(out, ref, ctx, index)}
        for i, (out, ref) in enumerate(zip(outputs, refs, strict=True))
    ]  # fmt: skip
    append_jsonl(system_file(run, system), rows)


def summary_of(
    run: Path, outputs: dict[str, list[str]], refs: list[str], ctx: ScoringContext, scored: str
) -> dict[str, Any]:
    for system, texts in outputs.items():
        write_rows(run, system, texts, refs, ctx)
    extra = {"examples": len(refs), "eval_set": {"description": scored}}
    return build_summary(run, list(outputs), ctx, {}, None, extra)


def tickets_ctx() -> ScoringContext:
    answers = [TICKET % (c, "ok") for c in ("billing", "bug", "outage") * 4]
    return scoring_context(answers, answers)


def test_verdict_beats_with_intervals_and_p(tmp_path: Path) -> None:
    labels = (["billing", "bug", "outage"] * 5)[:14]
    refs = [TICKET % (c, "Thanks.") for c in labels]
    tuned = list(refs)
    tuned[13] = TICKET % ("bug" if labels[13] != "bug" else "billing", "Thanks.")
    few = [TICKET % ("account", "Hm.")] * 13 + [refs[13]]
    zero = ["I cannot help with that."] * 14
    summary = summary_of(tmp_path, {"base_zero": zero, "base_few": few, "tuned": tuned}, refs,
                         tickets_ctx(), "validation split, 14 examples")  # fmt: skip
    assert summary["verdict"] == (
        "fine-tuned beats few-shot base on category accuracy: 0.93 [0.69, 0.99] vs "
        "0.07 [0.01, 0.31], 13 wins / 1 loss, p = 0.002 (validation split, 14 examples)"
    )
    stats = summary["systems"]["tuned"]
    assert stats["primary_ci"]["method"] == "wilson"
    assert (stats["primary_ci"]["low"], stats["primary_ci"]["high"]) == pytest.approx(
        wilson_interval(13, 14), abs=1e-6
    )
    main = next(c for c in summary["comparisons"] if c["against"] == "base_few")
    assert main["p_value"] == pytest.approx(sign_test_p(13, 1), abs=1e-6) and main["significant"]


def test_verdict_says_too_few_examples_to_tell(tmp_path: Path) -> None:
    refs = [TICKET % (c, "Thanks.") for c in ("billing", "bug", "outage", "billing")]
    tuned = refs[:3] + [TICKET % ("bug", "Thanks.")]
    few = [refs[0], TICKET % ("outage", "x"), TICKET % ("bug", "x"), refs[3]]
    summary = summary_of(tmp_path, {"base_few": few, "tuned": tuned}, refs, tickets_ctx(),
                         "test file tickets_test.jsonl, 4 examples")  # fmt: skip
    verdict = summary["verdict"]
    assert verdict.startswith(
        "too few examples to tell fine-tuned from few-shot base on category accuracy: "
        "0.75 [0.30, 0.95] vs 0.50 [0.15, 0.85], 2 wins / 1 loss, p = 1.00"
    )
    assert verdict.endswith("(test file tickets_test.jsonl, 4 examples)")


def test_the_issues_order_case_is_not_called_tied(tmp_path: Path) -> None:
    """Every field right for both (field accuracy level on 16/16), but fine-tuned adds a
    stray key more often: exact match 0.25 vs 0.50. The verdict must say so."""
    prompts, refs = (list(t) for t in zip(*(order(i) for i in range(16)), strict=True))
    ctx = scoring_context(refs, refs, prompts, "Extract the order as JSON.")
    assert ctx.primary_name == "field accuracy"

    def extra_key(answer: str) -> str:
        return json.dumps({**json.loads(answer), "note": "thanks"})

    few = refs[:8] + [extra_key(r) for r in refs[8:]]
    tuned = refs[:4] + [extra_key(r) for r in refs[4:]]
    summary = summary_of(tmp_path, {"base_few": few, "tuned": tuned}, refs, ctx,
                         "test file order_emails_test.jsonl, 16 examples")  # fmt: skip
    stats = summary["systems"]
    assert stats["tuned"]["exact"] == 0.25 and stats["base_few"]["exact"] == 0.5
    verdict = summary["verdict"]
    assert verdict.startswith(
        "fine-tuned and few-shot base score the same on every example's field accuracy"
    )
    assert (
        "but few-shot base is clearly better on exact match: fine-tuned 0.25 vs 0.50 "
        "(0 wins / 4 losses, p = 0.12)" in verdict
    )
    assert "tied" not in verdict
    main = next(c for c in summary["comparisons"] if c["against"] == "base_few")
    assert [s["metric"] for s in main["secondary"]] == ["exact", "same_keys"]


def test_a_significant_win_still_names_a_metric_that_went_the_other_way(tmp_path: Path) -> None:
    labels = ["billing", "bug", "outage"] * 4
    refs = [TICKET % (c, "Thanks.") for c in labels]
    tuned = [TICKET % (c, "We will look.") for c in labels]  # right label, another reply
    few = refs[:3] + [TICKET % ("account", "Thanks.")] * 9  # 3 exact, 9 wrong labels
    summary = summary_of(tmp_path, {"base_few": few, "tuned": tuned}, refs, tickets_ctx(), "")
    verdict = summary["verdict"]
    assert verdict.startswith(
        "fine-tuned beats few-shot base on category accuracy: 1.00 [0.76, 1.00] vs "
        "0.25 [0.09, 0.53], 9 wins / 0 losses, p = 0.004; but few-shot base is clearly "
        "better on exact match: fine-tuned 0.00 vs 0.25 (0 wins / 3 losses, p = 0.25)"
    )
    assert "few-shot base is clearly better on ROUGE-L" in verdict


@pytest.mark.parametrize(
    ("name", "primary"),
    [("support_tickets.jsonl", "category accuracy"), ("order_emails.jsonl", "field accuracy")],
)
def test_the_sample_datasets_get_the_primary_metric_of_their_task(name: str, primary: str) -> None:
    from engine.core.paths import sample_data_dir
    from engine.data.formats import load_examples
    from engine.eval.summary import build_scoring

    examples = load_examples(sample_data_dir() / name).examples
    ctx, _ = build_scoring(examples, [e.answer for e in examples])
    assert ctx.primary_name == primary
