"""Evaluation prompts (zero-/few-shot), answer length, batched generation, and options."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from engine.data.formats import Example, Message, load_examples
from engine.data.labels import detect_labels
from engine.eval.generate import (
    choose_shots,
    count_tokens,
    few_shot_messages,
    fit_few_shot,
    generate,
    last_user_text,
    max_new_tokens_for,
    prompt_messages,
    render,
    stop_token_ids,
)
from engine.eval.judge.config import JudgeConfig
from engine.eval.options import (
    EvalOptions,
    EvalOptionsError,
    add_arguments,
    from_args,
    to_argv,
)
from engine.model.generation import Sampling
from tests.conftest import REPO_ROOT

SAMPLE = REPO_ROOT / "sample_data" / "support_tickets.jsonl"


def chat(*turns: tuple[str, str], line: int = 1) -> Example:
    return Example(tuple(Message(role, text) for role, text in turns), line)  # type: ignore[arg-type]


def test_prompt_is_the_conversation_before_the_last_answer() -> None:
    example = chat(("system", "Be brief."), ("user", "hi"), ("assistant", "hello"),
                   ("user", "2+2?"), ("assistant", "4"))  # fmt: skip
    assert prompt_messages(example) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "2+2?"},
    ]
    assert last_user_text(example) == "2+2?"


def test_shots_are_deterministic_short_and_cover_several_labels() -> None:
    train = load_examples(SAMPLE).examples
    scheme = detect_labels(e.answer for e in train)
    assert scheme is not None and scheme.key == "category"
    shots = choose_shots(train, 3, seed=42, scheme=scheme)
    assert shots == choose_shots(train, 3, seed=42, scheme=scheme)
    labels = [scheme.label_of(s.answer) for s in shots]
    assert len(set(labels)) == 3  # one per label, most common labels first
    median = sorted(sum(len(m.content) for m in e.messages) for e in train)[len(train) // 2]
    assert all(sum(len(m.content) for m in s.messages) <= median for s in shots)
    assert choose_shots(train, 0, 42, scheme) == []
    assert len(choose_shots(train[:2], 5, 42, None)) == 2


def test_few_shot_messages_put_shots_between_system_and_question() -> None:
    shot = chat(("system", "S"), ("user", "q1"), ("assistant", "a1"))
    example = chat(("system", "S"), ("user", "q2"), ("assistant", "a2"))
    assert [(m["role"], m["content"]) for m in few_shot_messages(example, [shot, shot])] == [
        ("system", "S"), ("user", "q1"), ("assistant", "a1"), ("user", "q1"),
        ("assistant", "a1"), ("user", "q2"),
    ]  # fmt: skip


def test_few_shot_prompts_drop_shots_to_fit_the_budget(tiny_tokenizer) -> None:
    train = load_examples(SAMPLE).examples
    shots, example = train[:3], train[3]
    lengths = [
        count_tokens(tiny_tokenizer, render(tiny_tokenizer, few_shot_messages(example, shots[:k])))
        for k in range(4)
    ]
    assert lengths == sorted(lengths) and len(set(lengths)) == 4
    assert fit_few_shot(tiny_tokenizer, example, shots, lengths[3])[1] == 3
    assert fit_few_shot(tiny_tokenizer, example, shots, lengths[3] - 1)[1] == 2
    text, used = fit_few_shot(tiny_tokenizer, example, shots, lengths[1])
    assert used == 1 and count_tokens(tiny_tokenizer, text) == lengths[1]
    assert fit_few_shot(tiny_tokenizer, example, shots, 10)[1] == 0  # zero shots always fit


def test_answer_length_follows_the_references(tiny_tokenizer) -> None:
    refs = ["short", "a somewhat longer reference answer"]
    longest = max(count_tokens(tiny_tokenizer, r) for r in refs)
    assert max_new_tokens_for(tiny_tokenizer, refs, cap=512) == int(longest * 1.5) + 16
    assert max_new_tokens_for(tiny_tokenizer, refs, cap=20) == 20
    assert max_new_tokens_for(tiny_tokenizer, [], cap=512) == 16


def test_batched_left_padded_generation_matches_one_by_one(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    from engine.eval.generate import load_eval_tokenizer

    tokenizer = load_eval_tokenizer(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    prompts = [
        render(tokenizer, [{"role": "user", "content": "hi"}]),
        render(tokenizer, [{"role": "user", "content": "My invoice is wrong, please help."}]),
    ]
    sampling = Sampling(max_new_tokens=6)
    batched = generate(model, tokenizer, prompts, sampling, "cpu")
    alone = [generate(model, tokenizer, [p], sampling, "cpu")[0] for p in prompts]
    assert [g.text for g in batched] == [g.text for g in alone]
    assert [g.prompt_tokens for g in batched] == [count_tokens(tokenizer, p) for p in prompts]
    assert all(g.output_tokens <= 6 for g in batched)
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in stop_token_ids(model, tokenizer)


def test_options_round_trip_through_flags() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = EvalOptions(
        systems=("base_zero", "tuned"), checkpoints=True, few_shot=5, max_examples=7,
        max_new_tokens=33, temperature=0.7, top_p=0.9, seed=3, batch_size=2, probes=False,
        judge=JudgeConfig(url="http://127.0.0.1:9/v1", model="m", key_env="K",
                          rubric="@literal rubric", against="base_few"),
    )  # fmt: skip
    assert from_args(parser.parse_args(to_argv(options))) == options
    assert from_args(parser.parse_args(to_argv(EvalOptions()))) == EvalOptions()
    baseline = from_args(parser.parse_args(["--baseline"]))
    assert baseline.systems == ("base_zero", "base_few")


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(EvalOptionsError, match="unknown system"):
        EvalOptions(systems=("base", "tuned"))
    with pytest.raises(EvalOptionsError, match="top_p must be above 0") as refused:
        EvalOptions(top_p=0)
    assert refused.value.field == "top_p"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(EvalOptionsError, match="--baseline"):
        from_args(parser.parse_args(["--baseline", "--systems", "tuned"]))
    rubric = tmp_path / "rubric.txt"
    rubric.write_text("Prefer the polite answer.\n")
    args = parser.parse_args(["--judge-url", "http://h", "--judge-model", "m",
                              "--judge-rubric", f"@{rubric}"])  # fmt: skip
    judge = from_args(args).judge
    assert judge is not None and judge.rubric == "Prefer the polite answer."
