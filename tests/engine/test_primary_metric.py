"""The primary metric: one decision per task, stored with the run, the same in every
comparison; a class-label test that plurals and growing value sets do not fool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config.build import from_preset, save_config, with_overrides
from engine.core.events import EventWriter, RunStatus, write_status
from engine.data.formats import Example, Message, load_examples, write_chat_jsonl
from engine.data.labels import LabelScheme, class_label_check, label_inputs
from engine.data.primary import Primary, PrimaryError, decide_for_examples, decide_primary
from engine.eval.metrics import METRICS_VERSION, aggregate, context_for, score_example
from engine.eval.options import EvalOptions, EvalOptionsError
from engine.eval.primary import primary_options, run_primary, stored_primary
from engine.eval.rescore import summary_under
from engine.eval.store import append_jsonl, system_file
from engine.eval.summary import (
    build_scoring,
    build_summary,
    load_summary,
    score_output,
    system_rows,
    write_summary,
)
from engine.runs.compare import compare_runs, eval_rows
from tests.conftest import REPO_ROOT

SAMPLE = REPO_ROOT / "sample_data"
NEW_PRODUCTS = REPO_ROOT / "tests" / "data" / "order_emails_new_products.jsonl"
ORDER_SYSTEM = "Extract the order as JSON with customer, product, quantity and city."
PRODUCTS = [
    "desk lamp", "stapler", "extension lead", "whiteboard eraser", "box file", "monitor arm",
    "paper tray", "glue gun", "label maker", "pencil case", "battery pack", "torch",
]  # fmt: skip
NEW = ["coat hook", "tape dispenser", "safety helmet", "mouse mat", "letter tray"]
FIRST = ["Ana", "Ben", "Chloe", "Dev", "Ewa", "Femi", "Gus", "Hana", "Ivo", "Jia"]
LAST = ["Moreau", "Okafor", "Lindqvist", "Patel", "Novak", "Tanaka", "Rossi", "Byrne",
        "Haddad", "Kowalski", "Silva", "Brandt", "Nguyen", "Costa", "Ferreira", "Walsh",
        "Meyer", "Sato", "Dubois", "Khan"]  # fmt: skip
CITIES = ["Leeds", "Porto", "Graz", "Lyon", "Turku", "Bari", "Ghent", "Cork", "Brno", "Split",
          "Malmo", "Tartu", "Utrecht", "Bilbao", "Aarhus", "Nantes", "Lodz", "Basel"]  # fmt: skip
TEMPLATES = [
    "Hi, could you send {q} {items} to {city}? Thanks, {name}",
    "Please ship {q} {items} to our office in {city}.\n\nBest,\n{name}",
    "Order: {q} x {items}. Deliver to {city}. Regards, {name}",
    "We need {q} more {items} at the {city} site by Friday. - {name}",
    "{name} here. {q} {items} please, delivery to {city}.",
]


def plural(product: str) -> str:
    """`desk lamps`, `torches`, `battery packs`: how the emails write the products."""
    return product + ("es" if product.endswith(("ch", "sh", "x")) else "s")


def order_emails(products: list[str], count: int, start: int = 0) -> list[Example]:
    """Extraction examples whose emails name the product in the plural (answer singular):
    the user's data of the issue, where whole-word matching missed every copy."""
    examples = []
    for i in range(start, start + count):
        product = products[i % len(products)]
        name = f"{FIRST[i % len(FIRST)]} {LAST[(i // len(FIRST)) % len(LAST)]}"
        city, quantity = CITIES[(i * 7) % len(CITIES)], 2 + i % 9
        email = TEMPLATES[i % len(TEMPLATES)].format(
            q=quantity, items=plural(product), city=city, name=name
        )
        answer = json.dumps({"name": name, "product": product, "quantity": quantity,
                             "city": city})  # fmt: skip
        messages = (Message("system", ORDER_SYSTEM), Message("user", email),
                    Message("assistant", answer))  # fmt: skip
        examples.append(Example(messages, i + 1))
    return examples


# -- the decision ------------------------------------------------------------------------


def test_plural_products_in_the_email_are_copies_and_keep_field_accuracy() -> None:
    run_a = order_emails(PRODUCTS, 160)  # 12 products
    run_b = run_a + order_emails(PRODUCTS + NEW, 40, start=160)  # 17 products, 200 emails
    for examples in (run_a, run_b):
        primary = decide_for_examples(examples)
        assert primary.spec == "fields" and primary.name == "field accuracy"
        assert "copied from the prompt in 100 % of the examples" in primary.why


def test_copies_match_across_case_hyphens_and_plural_endings() -> None:
    scheme = LabelScheme("product", {"desk lamp": 1, "battery": 1, "box file": 1, "torch": 1})
    answers = [json.dumps({"product": p}) for p in ("desk lamp", "battery", "box file", "torch")]
    prompts = ["5 Desk-Lamps please", "two batteries", "3 BOX FILES", "four torches"]
    check = class_label_check(scheme, answers, prompts)
    assert not check.is_label and "copied from the prompt in 100 %" in check.reason
    unrelated = ["my lamp broke", "battery life is poor", "where are the files", "hello"]
    assert class_label_check(scheme, answers, unrelated).is_label is False  # grows: 4 of 4 once


def test_values_that_keep_growing_are_no_class_label() -> None:
    # 10 values seen three times, 10 seen once: half the data misses about half the rare ones.
    values = [f"team {chr(97 + i)}" for i in range(10)] * 3 + [f"guest {i}" for i in range(10)]
    answers = [json.dumps({"owner": v}) for v in values]
    primary = decide_primary(answers, ["which team owns this?"] * len(answers))
    assert primary.kind == "json_keys"
    assert "'owner' keeps taking new values as the data grows" in primary.why


@pytest.mark.parametrize("order", ["sorted", "cycling"])
def test_a_fixed_set_is_a_class_label_even_unnamed_and_in_any_order(order: str) -> None:
    colours = ["red", "green", "blue", "amber"]
    labels = sorted(colours * 10) if order == "sorted" else colours * 10
    answers = [json.dumps({"colour": c, "note": f"n{i}"}) for i, c in enumerate(labels)]
    primary = decide_primary(answers, [f"what colour is item {i}?" for i in range(40)])
    assert primary.spec == "label:colour" and primary.name == "colour accuracy"
    assert "stops growing" in primary.why


def test_the_tickets_keep_category_accuracy_with_or_without_the_named_values() -> None:
    examples = load_examples(SAMPLE / "support_tickets.jsonl").examples
    primary = decide_for_examples(examples)
    assert primary.spec == "label:category" and "named in the system prompt" in primary.why
    answers, prompts, _system = label_inputs(examples)
    unnamed = decide_primary(answers, prompts, "")  # no system prompt to name them
    assert unnamed.spec == "label:category" and "chosen (not copied from the prompt)" in unnamed.why


def test_sample_order_emails_grown_with_new_products_keep_field_accuracy() -> None:
    grown = [
        *load_examples(SAMPLE / "order_emails.jsonl").examples,
        *load_examples(NEW_PRODUCTS).examples,
    ]
    new = load_examples(NEW_PRODUCTS).examples
    assert len(new) >= 20  # hand-written, most with the product in the plural
    assert decide_for_examples(grown).spec == "fields"
    assert decide_for_examples(new).spec == "fields"  # even alone: every product copied


def test_label_accuracy_on_labels_unseen_in_training_counts_by_the_reference() -> None:
    train = [json.dumps({"product": p, "quantity": 1}) for p in PRODUCTS * 3]
    ctx = context_for(Primary("label", "product"), train)
    refs = [json.dumps({"product": p, "quantity": 2}) for p in NEW * 2]  # never in training
    outputs = [r if i < 7 else json.dumps({"product": "stapler", "quantity": 2})
               for i, r in enumerate(refs)]  # fmt: skip
    scores = [score_example(o, r, ctx) for o, r in zip(outputs, refs, strict=True)]
    result = aggregate(scores)
    assert result.label_accuracy == result.key_match["product"] == 0.7 == result.primary
    assert scores[0]["label"] == NEW[0]  # the reference's own label, not "(other)"
    assert result.confusion[NEW[2]] == {NEW[2]: 1, "stapler": 1}  # index 2 right, 7 wrong


# -- stored with the run ---------------------------------------------------------------------


def make_run(home: Path, run_id: str, train: list[Example], val: list[Example]) -> Path:
    """A finished run with its frozen split and config (no evaluation yet)."""
    run_dir = home / "runs" / run_id
    (run_dir / "data").mkdir(parents=True)
    write_chat_jsonl(train, run_dir / "data" / "train.jsonl")
    write_chat_jsonl(val, run_dir / "data" / "val.jsonl")
    cfg = with_overrides(from_preset("quick"), **{"data.source": "/data/x.jsonl"})
    save_config(cfg, run_dir / "config.toml")
    write_status(run_dir, RunStatus(state="completed", step=3))
    EventWriter(run_dir).emit("state", state="completed")
    return run_dir


def evaluate(run_dir: Path, outputs: dict[str, list[str]]) -> dict:
    """Store rows as an evaluation would (scored under the run's metric) and the summary."""
    primary = run_primary(run_dir)
    train = load_examples(run_dir / "data" / "train.jsonl").examples
    val = load_examples(run_dir / "data" / "val.jsonl").examples
    ctx, index = build_scoring(train, [e.answer for e in val], primary)
    for system, answers in outputs.items():
        rows = [
            {"index": i, "system": system, "output": out, "reference": val[i].answer,
             "prompt": "p", "messages": [], "metrics_version": METRICS_VERSION,
             "scored_as": ctx.spec, "metrics": score_output(out, val[i].answer, ctx, index)}
            for i, out in enumerate(answers)
        ]  # fmt: skip
        append_jsonl(system_file(run_dir, system), rows)
    summary = build_summary(run_dir, list(outputs), ctx, {}, None, {"examples": len(val)})
    write_summary(run_dir, summary)
    return summary


TICKETS = load_examples(SAMPLE / "support_tickets.jsonl").examples
VAL = TICKETS[:10]


def ticket_outputs(right: int) -> list[str]:
    """Answers to VAL: the first `right` with the right category, a wrong reply in all."""
    outs = []
    for i, example in enumerate(VAL):
        category = json.loads(example.answer)["category"]
        category = category if i < right else ("bug" if category != "bug" else "billing")
        outs.append(json.dumps({"category": category, "reply": "Thanks, we are on it."}))
    return outs


def test_the_run_stores_its_metric_and_a_users_choice_wins(tunedeck_home: Path) -> None:
    run_dir = make_run(tunedeck_home, "20260101-000000-aaaaaa", TICKETS[10:], VAL)
    assert stored_primary(run_dir) is None
    decided = run_primary(run_dir)
    assert decided is not None and decided.spec == "label:category" and decided.source == "data"
    assert stored_primary(run_dir) == decided  # eval/primary.json
    evaluate(run_dir, {"tuned": ticket_outputs(7), "base_few": ticket_outputs(2)})
    assert load_summary(run_dir)["primary"]["why"].startswith("'category' takes one of 6")

    chosen = run_primary(run_dir, "fields")
    assert chosen.source == "user" and run_primary(run_dir) == chosen  # stored, it wins
    rows = system_rows(run_dir, "tuned")  # scored as label:category: re-scored as fields
    assert {row["scored_as"] for row in rows} == {"fields"}
    assert rows[0]["metrics"]["primary"] == 0.5  # category right, reply wrong
    assert run_primary(run_dir, "auto") == decided  # back to the data's decision

    with pytest.raises(PrimaryError, match="no training answer has the key 'sentiment'") as bad:
        run_primary(run_dir, "label:sentiment")
    assert "category, reply" in bad.value.hint
    with pytest.raises(EvalOptionsError, match="unknown primary metric 'accuracy'"):
        EvalOptions(primary="accuracy")
    offered = primary_options(run_dir).choices()
    assert offered[0] == ("auto: category accuracy", "auto")
    assert ("category accuracy (label:category)", "label:category") in offered


def test_two_runs_of_one_task_are_compared_on_one_metric(tunedeck_home: Path) -> None:
    a = make_run(tunedeck_home, "20260101-000000-aaaaaa", TICKETS[10:], VAL)
    b = make_run(tunedeck_home, "20260102-000000-bbbbbb", TICKETS[10:], VAL)
    evaluate(a, {"tuned": ticket_outputs(6), "base_few": ticket_outputs(1)})
    run_primary(b, "fields")  # B was scored by another metric
    evaluate(b, {"tuned": ticket_outputs(9), "base_few": ticket_outputs(1)})
    assert load_summary(b)["primary"]["name"] == "field accuracy"

    comparison = compare_runs([a, b])
    assert comparison.primary is not None and comparison.primary["name"] == "category accuracy"
    assert comparison.primary["of"] == f"run {a.name}'s"
    rows = dict(eval_rows(comparison))
    assert rows["fine-tuned · primary"] == ["0.6", "0.9"]  # B re-scored by category
    assert "category accuracy" in (comparison.runs[1].verdict or "")
    assert load_summary(b)["primary"]["name"] == "field accuracy"  # nothing was written
    assert summary_under(b, run_primary(a))["primary"]["spec"] == "label:category"

    on_fields = compare_runs([a, b], "fields")
    assert (
        on_fields.primary["name"] == "field accuracy" and on_fields.primary["of"] == "chosen by you"
    )
    assert dict(eval_rows(on_fields))["fine-tuned · primary"] == ["0.3", "0.45"]  # replies wrong
    with pytest.raises(PrimaryError):
        compare_runs([a, b], "label:sentiment")


def test_no_training_data_decides_from_the_references(tmp_path: Path) -> None:
    assert run_primary(tmp_path) is None and stored_primary(tmp_path) is None
    ctx, _ = build_scoring([], ['{"category": "billing"}', '{"category": "outage"}'] * 3)
    assert ctx.primary == "label"
