"""Batched generation that drops finished answers: the same answers as one at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

import engine.eval.generate as eval_generate
from engine.eval.generate import generate, load_eval_tokenizer, render
from engine.model.generation import Sampling

QUESTIONS = [
    "hi",
    "My invoice is wrong, please help.",
    "The app crashes when I open settings",
    "How do I reset my password?",
    "Can I export my data as CSV?",
]


def answers(result: list[eval_generate.Generated]) -> list[tuple[str, int, bool]]:
    return [(g.text, g.output_tokens, g.finished) for g in result]


def test_answers_that_stop_leave_the_batch_without_changing_any_answer(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = load_eval_tokenizer(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    torch.manual_seed(0)
    with torch.no_grad():  # the tiny model's small init says one token forever: vary it
        for weights in model.parameters():
            weights.normal_(0, 0.3)
    prompts = [render(tokenizer, [{"role": "user", "content": q}]) for q in QUESTIONS]
    sampling = Sampling(max_new_tokens=24)
    # A random model rarely says <|im_end|>: make a token that most but not all answers
    # say a stop token, so that answers end at different steps, and some run to the limit.
    stops = eval_generate.stop_token_ids(model, tokenizer)
    encoded = tokenizer(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
    said = model.generate(**encoded, max_new_tokens=24, do_sample=False, eos_token_id=stops,
                          pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    said = [ids[encoded["input_ids"].shape[1] :] for ids in said.tolist()]
    counts = {t: sum(t in ids for ids in said) for ids in said for t in ids[3:] if t not in stops}
    stop = max((t for t, n in counts.items() if n < len(prompts)), key=lambda t: (counts[t], t))
    model.generation_config.eos_token_id = [*stops, stop]

    monkeypatch.setattr(eval_generate, "EVICT_EVERY", 10_000)  # one uninterrupted call
    whole = generate(model, tokenizer, prompts, sampling, "cpu")
    monkeypatch.setattr(eval_generate, "EVICT_EVERY", 3)  # drop finished answers often
    evicting = generate(model, tokenizer, prompts, sampling, "cpu")
    alone = [generate(model, tokenizer, [p], sampling, "cpu")[0] for p in prompts]

    assert answers(evicting) == answers(whole) == answers(alone)
    finished = [g.finished for g in evicting]
    assert any(finished) and not all(finished)  # some left the batch early, some did not
    assert all(g.output_tokens <= 24 for g in evicting)
    assert {g.output_tokens for g in evicting if not g.finished} == {24}
