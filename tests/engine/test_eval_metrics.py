"""Evaluation metrics against values computed by hand on fixed strings."""

from __future__ import annotations

import json
import random

import pytest

from engine.data.labels import WHOLE_ANSWER, LabelScheme
from engine.eval.memorisation import TrainAnswerIndex, memorisation_scores
from engine.eval.metrics import (
    NO_LABEL,
    OTHER_LABEL,
    aggregate,
    exact_match,
    json_scores,
    perplexity,
    predicted_label,
    rouge_l,
    score_example,
    scoring_context,
    token_f1,
    words,
)
from engine.eval.probes import PROBES, drift, in_task_format, is_right

TICKET = '{"category": "%s", "reply": "%s"}'
REF = TICKET % ("billing", "We will refund the duplicate charge today.")


# ---------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------


def test_words_are_normalised_unicode_word_runs() -> None:
    assert words("  The CAT,  sat!\n") == ["the", "cat", "sat"]
    assert words("Ｆｕｌｌ-width ÉTÉ") == ["full", "width", "été"]  # NFKC and case folding
    assert words('{"a": 1}') == ["a", "1"]


def test_exact_match_normalises_case_space_and_json_formatting() -> None:
    assert exact_match("  Paris\n", "paris")
    assert not exact_match("Paris.", "Paris")
    assert exact_match('{"b": 2,"a":1}', '{"a": 1, "b": 2}')  # same JSON value
    assert not exact_match('{"a": 1}', '{"a": 2}')


def test_token_f1_by_hand() -> None:
    # common words: the x2, cat, on, mat = 5 of 6 on each side: P = R = 5/6
    assert token_f1("the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)
    # P = 2/2, R = 2/4 -> 2PR/(P+R) = 2/3
    assert token_f1("refund today", "we refund you today") == pytest.approx(2 / 3)
    assert token_f1("", "") == 1.0
    assert token_f1("", "x") == 0.0
    assert token_f1("a b", "b a") == 1.0  # bags ignore order


def test_rouge_l_by_hand() -> None:
    # LCS("the cat on the mat", "the cat sat on the mat") = 5: P = 5/5, R = 5/6, F = 10/11
    assert rouge_l("the cat on the mat", "the cat sat on the mat") == pytest.approx(10 / 11)
    # order matters: LCS("b a", "a b") = 1, F = 2*1/(2+2) = 0.5, while token F1 is 1
    assert rouge_l("b a", "a b") == pytest.approx(0.5)
    assert rouge_l("Ça va très bien", "ça va bien") == pytest.approx(2 * 3 / (4 + 3))
    assert rouge_l("", "anything") == 0.0


# ---------------------------------------------------------------------------
# JSON and labels
# ---------------------------------------------------------------------------


def test_json_scores_validity_keys_and_per_key_match() -> None:
    right_label = json_scores(TICKET % ("Billing", "Refund is coming."), REF)
    assert right_label is not None
    assert right_label["json_valid"] and right_label["same_keys"]
    assert right_label["key_match"] == {"category": True, "reply": False}
    # reply: LCS("refund is coming", "we will refund the duplicate charge today") = 1
    assert right_label["key_rouge"]["reply"] == pytest.approx(2 * 1 / (3 + 7))

    extra_key = json_scores('{"category": "billing", "reply": "x", "mood": "sad"}', REF)
    assert extra_key is not None and extra_key["json_valid"] and not extra_key["same_keys"]

    prose = json_scores("This is a billing question.", REF)
    assert prose is not None
    assert not prose["json_valid"] and not prose["same_keys"]
    assert prose["key_match"] == {"category": False, "reply": False}
    assert json_scores("anything", "plain reference") is None


SCHEME = LabelScheme("category", {"billing": 3, "bug": 2, "outage": 1})


def test_predicted_label_maps_onto_the_known_labels() -> None:
    assert predicted_label(SCHEME, TICKET % ("BUG", "x")) == "bug"
    assert predicted_label(SCHEME, TICKET % ("weather", "x")) == OTHER_LABEL
    assert predicted_label(SCHEME, "not json") == NO_LABEL
    whole = LabelScheme(WHOLE_ANSWER, {"positive": 2, "negative": 2})
    assert predicted_label(whole, " Positive. ") == "positive"
    assert predicted_label(whole, "I think it is positive") == OTHER_LABEL


def test_scoring_context_picks_the_primary_score() -> None:
    tickets = [TICKET % (c, "ok") for c in ("billing", "bug", "outage") * 4]
    labelled = scoring_context(tickets, tickets)
    assert labelled.primary == "label" and labelled.primary_name == "category accuracy"
    free_json = [json.dumps({"name": n, "city": n * 2}) for n in "abcdefghij"]
    json_ctx = scoring_context(free_json, free_json)
    assert (json_ctx.primary, json_ctx.primary_name) == ("json_keys", "field accuracy")
    prose = [f"A long answer number {i} about things." for i in range(10)]
    assert scoring_context(prose, prose).primary == "rouge_l"


def test_label_accuracy_and_confusion_table_by_hand() -> None:
    ctx = scoring_context([], [TICKET % (c, "r") for c in ("billing", "bug", "outage") * 2])
    cases = [
        (TICKET % ("billing", "a"), TICKET % ("billing", "b")),  # right
        (TICKET % ("bug", "a"), TICKET % ("billing", "b")),  # wrong label
        ("Sorry, I can't help.", TICKET % ("billing", "b")),  # no JSON, no label
        (TICKET % ("outage", "a"), TICKET % ("outage", "b")),  # right
    ]
    scores = [score_example(out, ref, ctx) for out, ref in cases]
    assert [s["primary"] for s in scores] == [1.0, 0.0, 0.0, 1.0]
    assert [s["failed"] for s in scores] == [False, True, True, False]
    agg = aggregate(scores)
    assert agg.n == 4
    assert agg.label_accuracy == 0.5 and agg.primary == 0.5
    assert agg.json_valid == 0.75 and agg.same_keys == 0.75
    assert agg.key_match == {"category": 0.5, "reply": 0.0}
    assert agg.confusion == {
        "billing": {"(none)": 1, "billing": 1, "bug": 1},
        "outage": {"outage": 1},
    }
    assert agg.failures == 2


def test_json_primary_is_the_share_of_matched_keys() -> None:
    refs = ['{"name": "ann", "city": "oslo"}'] * 10
    ctx = scoring_context(refs, refs)
    half = score_example('{"name": "ann", "city": "rome"}', refs[0], ctx)
    assert half["primary"] == 0.5 and not half["failed"]  # valid, same keys
    invalid = score_example("ann from oslo", refs[0], ctx)
    assert invalid["primary"] == 0.0 and invalid["failed"]


def test_free_text_primary_is_rouge_l() -> None:
    ctx = scoring_context(["x"], ["a b c", "d e f", "g h i", "j k l"])
    assert ctx.primary == "rouge_l"
    scores = score_example("the cat on the mat", "the cat sat on the mat", ctx)
    assert scores["primary"] == pytest.approx(10 / 11) and not scores["failed"]
    assert score_example("dogs bark", "the cat sat on the mat", ctx)["failed"]


def test_perplexity() -> None:
    assert perplexity(0.0) == 1.0
    assert perplexity(2.0) == pytest.approx(7.389056, rel=1e-6)
    assert perplexity(None) is None and perplexity(float("nan")) is None


# ---------------------------------------------------------------------------
# Memorisation
# ---------------------------------------------------------------------------

TRAIN = [
    (10, "Open Settings, then Billing, then Invoices and download the PDF for the month you need."),
    (11, "Please restart the app and send us the crash log from the Help menu so we can look."),
    (12, "billing"),
]


def test_near_copy_of_a_training_answer_is_found() -> None:
    index = TrainAnswerIndex(TRAIN)
    # one of 15 words changed: LCS 14, F = 2*14/(15+15) = 14/15 >= 0.9
    copy = "Open Settings, then Billing, then Invoices and download the PDF for the year you need."
    match = index.nearest(copy)
    assert match is not None and match.line == 10
    assert match.similarity == pytest.approx(14 / 15, abs=1e-6)
    assert (
        index.nearest("Restart your router and wait a minute before trying again please.") is None
    )


def test_memorised_means_closer_to_a_training_answer_than_to_the_reference() -> None:
    index = TrainAnswerIndex(TRAIN)
    copied = TRAIN[1][1]
    parrot = memorisation_scores(index, copied, reference_similarity=0.2)
    assert parrot == {"train_copy": {"line": 11, "similarity": 1.0}, "memorised": True}
    # the right answer happens to be a training answer: not parroting
    assert memorisation_scores(index, copied, reference_similarity=1.0)["memorised"] is False
    # short answers are not judged
    assert memorisation_scores(index, "billing", 0.0) == {"train_copy": None, "memorised": None}


def test_prefix_filtered_search_equals_brute_force() -> None:
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(12)]
    train = [(i, " ".join(rng.choices(vocab, k=rng.randint(8, 14)))) for i in range(120)]
    index = TrainAnswerIndex(train)
    for _ in range(60):
        line, text = rng.choice(train)
        tokens = text.split()
        for _ in range(rng.randint(0, 2)):  # perturb a copy a little
            tokens[rng.randrange(len(tokens))] = rng.choice(vocab)
        query = " ".join(tokens)
        best = max(rouge_l(query, t) for _, t in train)
        found = index.nearest(query, threshold=0.8)
        if best >= 0.8:
            assert found is not None and found.similarity == pytest.approx(best, abs=1e-6)
        else:
            assert found is None


# ---------------------------------------------------------------------------
# General-ability probes
# ---------------------------------------------------------------------------


def test_probe_answers_are_checked_as_whole_words() -> None:
    capital = next(p for p in PROBES if "France" in p.prompt)
    assert is_right(capital, "The capital of France is Paris.")
    assert not is_right(capital, "Parisian food is great")
    haiku = next(p for p in PROBES if "haiku" in p.prompt)
    assert is_right(haiku, "anything") is None


def test_drift_counts_facts_and_format_collapse() -> None:
    scheme = LabelScheme("category", {"billing": 1, "bug": 1})
    base = ["placeholder"] * len(PROBES)
    tuned = list(base)
    base[1], tuned[1] = "Paris is the capital.", '{"category": "billing", "reply": "Paris"}'
    base[2], tuned[2] = "Tokyo.", "Tokyo."
    tuned[3] = "bug"  # a bare label where the base answered in prose
    result = drift(base, tuned, scheme)
    assert (result.probes, result.facts) == (len(PROBES), 9)
    assert (result.base_right, result.tuned_right) == (2, 2)  # the JSON still says Paris
    assert result.collapsed_probes == (1, 3) and result.format_collapse == 2
    assert "2/12 ordinary prompts answered in the fine-tuning format" in result.note()
    assert in_task_format("[1, 2]", None) and not in_task_format("bug", None)
