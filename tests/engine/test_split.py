"""engine.data.split: determinism, proportions, stratification, groups on one side, manifest."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.data.formats import Example, Message, load_examples, sha256_file
from engine.data.near_duplicates import exact_key, example_signatures, near_duplicate_groups
from engine.data.split import SplitError, check_fraction, plan_split, split_dataset
from engine.data.split_groups import check_leakage, leakage_groups
from tests.engine.dataset_factory import WORDS, chat, varied, write_jsonl


def examples_of(records: list[dict]) -> list[Example]:
    return [
        Example(tuple(Message(m["role"], m["content"]) for m in r["messages"]), i + 1)
        for i, r in enumerate(records)
    ]


def test_same_seed_same_split_other_seed_other_split() -> None:
    examples = examples_of(varied(200))
    first = plan_split(examples, 0.1, seed=7)
    assert plan_split(examples, 0.1, seed=7).val == first.val
    assert plan_split(examples, 0.1, seed=8).val != first.val


@pytest.mark.parametrize(("fraction", "expected"), [(0.1, 20), (0.15, 30), (0.2, 40), (0.05, 10)])
def test_proportions(fraction: float, expected: int) -> None:
    plan = plan_split(examples_of(varied(200)), fraction, seed=0)
    assert len(plan.val) == expected
    assert sorted(plan.train + plan.val) == list(range(200))


def test_fraction_rules() -> None:
    assert check_fraction(0.1, False) == [] and check_fraction(0.2, False) == []
    assert "under 10%" in check_fraction(0.05, False)[0]
    assert "over 20%" in check_fraction(0.3, False)[0]
    with pytest.raises(SplitError, match="no validation set") as error:
        check_fraction(0, False)
    assert "--allow-no-val" in error.value.hint
    assert check_fraction(0, True)[0].startswith("NO VALIDATION SET")
    for bad in (-0.1, 1.0, 10):
        with pytest.raises(SplitError, match="not between 0 and 1"):
            check_fraction(bad, False)


def test_zero_fraction_with_the_flag_keeps_everything_in_train() -> None:
    plan = plan_split(examples_of(varied(20)), 0, allow_no_val=True)
    assert plan.val == [] and len(plan.train) == 20
    assert plan.warnings[0].startswith("NO VALIDATION SET")


@pytest.mark.parametrize("n", [2, 3, 5])
def test_validation_never_empty_from_two_examples(n: int) -> None:
    plan = plan_split(examples_of(varied(n)), 0.1, seed=0)
    assert len(plan.val) == 1 and len(plan.train) == n - 1
    assert any("noisy" in w for w in plan.warnings)


def test_all_duplicates_cannot_be_split() -> None:
    record = varied(1)[0]
    with pytest.raises(SplitError, match="duplicates"):
        plan_split(examples_of([record] * 5), 0.2)


def test_stratified_by_json_label() -> None:
    labels = ["billing"] * 6 + ["bug"] * 3 + ["account"]
    records = varied(100, labels=labels)
    plan = plan_split(examples_of(records), 0.1, seed=3)
    assert plan.label_key == "category"
    val_labels = Counter(plan.labels[i] for i in plan.val)
    assert val_labels == {"billing": 6, "bug": 3, "account": 1}


def test_stratified_by_whole_answer_label() -> None:
    answers = ["yes", "no", "maybe"] * 30
    records = [
        chat(r["messages"][1]["content"], a) for r, a in zip(varied(90), answers, strict=True)
    ]
    plan = plan_split(examples_of(records), 0.2, seed=1)
    assert plan.label_key == ""
    assert Counter(plan.labels[i] for i in plan.val) == {"yes": 6, "no": 6, "maybe": 6}


def test_duplicates_near_duplicates_and_same_prompts_stay_together() -> None:
    records = varied(60)
    near = json.loads(json.dumps(records[1]))
    near["messages"][1]["content"] += " please"
    contradiction = chat(records[2]["messages"][1]["content"], "another answer entirely")
    records += [records[0], records[0], near, contradiction]
    examples = examples_of(records)
    for seed in range(15):
        val = set(plan_split(examples, 0.3, seed=seed).val)
        for group in ([0, 60, 61], [1, 62], [2, 63]):
            assert len({i in val for i in group}) == 1, (seed, group)


def _dataset(draw: st.DrawFn) -> list[Example]:
    pool = [" ".join(random.Random(i).choices(WORDS, k=10)) for i in range(12)]
    records = []
    for _ in range(draw(st.integers(2, 40))):
        kind = draw(st.sampled_from(["fresh", "copy", "near", "same-prompt"]))
        base = draw(st.integers(0, len(pool) - 1))
        user, answer = pool[base], pool[(base + 1) % len(pool)]
        if kind == "fresh" or not records:
            user = " ".join(draw(st.lists(st.sampled_from(WORDS), min_size=3, max_size=12)))
        elif kind == "near":
            user += " " + draw(st.sampled_from(WORDS))
        elif kind == "same-prompt":
            answer = " ".join(draw(st.lists(st.sampled_from(WORDS), min_size=3, max_size=8)))
        records.append(chat(user, answer))
    return examples_of(records)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), fraction=st.floats(0.05, 0.5), seed=st.integers(0, 2**16))
def test_no_leakage_property(data: st.DataObject, fraction: float, seed: int) -> None:
    examples = data.draw(st.composite(lambda draw: _dataset(draw))())
    try:
        plan = plan_split(examples, fraction, seed=seed)
    except SplitError:  # only when every example is in one leakage group
        assert len(leakage_groups(examples)) == 1
        return
    assert sorted(plan.train + plan.val) == list(range(len(examples)))
    assert plan.val and plan.train
    val = set(plan.val)
    for group in near_duplicate_groups(example_signatures(examples)):
        assert len({i in val for i in group}) == 1
    by_key: dict[bytes, set[bool]] = {}
    for index, ex in enumerate(examples):
        by_key.setdefault(exact_key(ex), set()).add(index in val)
    assert all(len(sides) == 1 for sides in by_key.values())
    report = check_leakage([examples[i] for i in plan.train], [examples[i] for i in plan.val])
    assert report.exact == 0 and report.near == 0


def test_split_dataset_writes_files_and_manifest(tmp_path: Path) -> None:
    records = varied(50, labels=["billing", "bug"])
    source = write_jsonl(tmp_path / "data.jsonl", [*records[:10], "{broken", *records[10:]])
    result = split_dataset(source, tmp_path / "out", val_fraction=0.2, seed=5)
    train = load_examples(tmp_path / "out" / "train.jsonl")
    val = load_examples(tmp_path / "out" / "val.jsonl")
    assert (
        (len(train.examples), len(val.examples))
        == (40, 10)
        == (result.train_count, result.val_count)
    )
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["source"]["sha256"] == sha256_file(source)
    assert manifest["source"]["skipped_lines"] == [11] == result.skipped_lines
    assert manifest["seed"] == 5 and manifest["val_fraction"] == 0.2
    assert manifest["counts"] == {"train": 40, "val": 10}
    assert sorted(manifest["train_lines"] + manifest["val_lines"]) == [
        n for n in range(1, 52) if n != 11
    ]
    source_examples = {e.line: e.messages for e in load_examples(source).examples}
    assert [e.messages for e in val.examples] == [source_examples[n] for n in manifest["val_lines"]]
    assert manifest["labels"]["val"] == {"billing": 5, "bug": 5}
    assert manifest["leakage"]["exact"] == 0 and manifest["stratified_by"] == "category"
    assert any("left out" in w for w in manifest["warnings"])


def test_split_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "data.jsonl", varied(40))
    split_dataset(source, tmp_path / "a", seed=11)
    split_dataset(source, tmp_path / "b", seed=11)
    for name in ("train.jsonl", "val.jsonl", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_alpaca_source_is_written_in_chat_form(tmp_path: Path) -> None:
    rows = [
        {"instruction": r["messages"][1]["content"], "output": r["messages"][2]["content"]}
        for r in varied(20)
    ]
    source = tmp_path / "alpaca.json"
    source.write_text(json.dumps(rows))
    split_dataset(source, tmp_path / "out")
    line = json.loads((tmp_path / "out" / "train.jsonl").read_text().splitlines()[0])
    assert [m["role"] for m in line["messages"]] == ["user", "assistant"]


def test_user_validation_file_with_leakage_report(tmp_path: Path) -> None:
    train_records = varied(30)
    near = json.loads(json.dumps(train_records[1]))
    near["messages"][1]["content"] += " please"
    same_prompt = chat(train_records[2]["messages"][1]["content"], "different answer here")
    val_records = [train_records[0], near, same_prompt, *varied(5, seed=9)]
    source = write_jsonl(tmp_path / "train.jsonl", train_records)
    val_file = write_jsonl(tmp_path / "val.jsonl", val_records)
    result = split_dataset(source, tmp_path / "out", val_file=val_file)
    assert (result.train_count, result.val_count) == (30, 8)
    leak = result.leakage
    assert (leak.exact, leak.near, leak.same_prompt) == (1, 1, 1)
    assert leak.exact_pairs == [(1, 1)] and leak.near_pairs == [(2, 2)]
    assert leak.same_prompt_pairs == [(3, 3)]
    assert any("leakage" in w for w in result.warnings)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["val_source"]["sha256"] == sha256_file(val_file)
    assert manifest["leakage"]["exact_pairs"] == [[1, 1]]
    clean = split_dataset(
        source, tmp_path / "out2", val_file=write_jsonl(tmp_path / "v2.jsonl", varied(5, seed=9))
    )
    assert clean.leakage.is_clean and clean.leakage.summary() == "none"


def test_empty_source_is_refused(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "bad.jsonl", [{"messages": [{"role": "user", "content": "x"}]}])
    with pytest.raises(SplitError, match="no usable examples"):
        split_dataset(source, tmp_path / "out")


def test_split_refuses_to_overwrite_its_input(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "train.jsonl", varied(20))
    before = source.read_bytes()
    with pytest.raises(SplitError, match="overwrite the input"):
        split_dataset(source, tmp_path)
    assert source.read_bytes() == before
