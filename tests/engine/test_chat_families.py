"""Assistant-only masking, token by token, with templates of the popular model families.

Each tokenizer (tests/engine/chat_templates.py) is tiny and local, but renders turns the
way its family does: Llama-3 trims, Qwen2.5 adds a default system prompt, Qwen3 shows an
empty think block only after the last question, Mistral v0.3 prints the system prompt only
when the last message is the user's, Gemma-2 refuses a system turn, Gemma-3 folds it.
A trained span always ends at the family's end-of-turn token, never in the next turn.
"""

from __future__ import annotations

import pytest

from engine.model.tokenization import (
    IGNORE_INDEX,
    ChatTemplateError,
    check_chat_template,
    render_chat,
    strip_thinking,
    tokenize_conversation,
)
from tests.engine.chat_templates import FAMILIES, family_tokenizer

SYSTEM = {"role": "system", "content": "Classify the ticket."}
TWO_TURNS = [
    SYSTEM,
    {"role": "user", "content": "I was charged twice"},
    {"role": "assistant", "content": "billing"},
    {"role": "user", "content": "And the reset link?"},
    {"role": "assistant", "content": "Use the reset link."},
]


def trained_segments(tokenizer, tokenized) -> list[str]:
    """Decode each contiguous run of trained labels."""
    segments, current = [], []
    for token, label in zip(tokenized.input_ids, tokenized.labels, strict=True):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            segments.append(tokenizer.decode(current))
            current = []
    if current:
        segments.append(tokenizer.decode(current))
    return segments


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_answer_trains_through_its_end_of_turn_token_and_no_further(family) -> None:
    tokenizer = family_tokenizer(family)
    end = FAMILIES[family]["turn_end"]
    tokenized = tokenize_conversation(tokenizer, TWO_TURNS, max_seq_len=1024)
    segments = [s.strip() for s in trained_segments(tokenizer, tokenized)]
    assert segments == [f"billing{end}", f"Use the reset link.{end}"]
    # Token by token: the last trained token of each span is the end-of-turn token.
    end_id = tokenizer.convert_tokens_to_ids(end)
    last_trained = [
        tokenized.input_ids[i]
        for i, label in enumerate(tokenized.labels)
        if label != IGNORE_INDEX
        and (i + 1 == len(tokenized.labels) or tokenized.labels[i + 1] == IGNORE_INDEX)
    ]
    assert last_trained == [end_id, end_id]


def test_mistral_v03_never_trains_the_next_instruction() -> None:
    """The case the old "to the end of the line" fallback got wrong: `</s>[INST] ...`."""
    tokenizer = family_tokenizer("mistral-v0.3")
    tokenized = tokenize_conversation(tokenizer, TWO_TURNS, max_seq_len=1024)
    trained = tokenizer.decode([t for t in tokenized.labels if t != IGNORE_INDEX])
    assert "[INST]" not in trained and "reset link?" not in trained


def test_an_answer_that_repeats_the_question_is_found_after_it() -> None:
    tokenizer = family_tokenizer("mistral-v0.3")
    messages = [
        SYSTEM,
        {"role": "user", "content": "Say billing"},
        {"role": "assistant", "content": "billing"},
        {"role": "user", "content": "Again"},
        {"role": "assistant", "content": "billing"},
    ]
    tokenized = tokenize_conversation(tokenizer, messages, max_seq_len=1024)
    assert [s.strip() for s in trained_segments(tokenizer, tokenized)] == ["billing</s>"] * 2
    text = tokenizer.decode(tokenized.input_ids)
    first = next(i for i, label in enumerate(tokenized.labels) if label != IGNORE_INDEX)
    assert "Say billing" in tokenizer.decode(tokenized.input_ids[:first])  # question untrained
    assert text.count("billing") == 3


def test_gemma2_folds_the_system_prompt_and_says_so() -> None:
    tokenizer = family_tokenizer("gemma2")
    check = check_chat_template(tokenizer)
    assert check.folds_system
    assert "refuses a system turn (System role not supported)" in check.note
    assert "first user turn" in check.note
    text = render_chat(tokenizer, TWO_TURNS, generation_prompt=False)
    assert "<start_of_turn>user\nClassify the ticket.\n\nI was charged twice" in text
    # Gemma-3 does the same folding itself: both render the same conversation alike.
    assert text == render_chat(family_tokenizer("gemma3"), TWO_TURNS, generation_prompt=False)
    assert not check_chat_template(family_tokenizer("gemma3")).folds_system


def test_a_tokenizer_without_template_is_refused_with_the_cause() -> None:
    from tests.tiny_model import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    tokenizer.chat_template = None
    with pytest.raises(ChatTemplateError) as caught:
        check_chat_template(tokenizer)
    assert "has no chat template" in caught.value.message
    assert "instruct" in caught.value.hint
    with pytest.raises(ChatTemplateError):
        tokenize_conversation(tokenizer, TWO_TURNS, max_seq_len=64)


def test_a_template_refusing_the_roles_names_its_reason() -> None:
    tokenizer = family_tokenizer("mistral-v0.3")
    backwards = [{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "Hello"}]
    with pytest.raises(ChatTemplateError, match="roles must alternate"):
        render_chat(tokenizer, backwards, generation_prompt=False)


def test_qwen3_without_thinking_data_puts_the_empty_think_block_in_the_prompt() -> None:
    tokenizer = family_tokenizer("qwen3")
    prompt = render_chat(tokenizer, TWO_TURNS[:4], generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    tokenized = tokenize_conversation(tokenizer, TWO_TURNS, max_seq_len=1024)
    trained = tokenizer.decode([t for t in tokenized.labels if t != IGNORE_INDEX])
    assert "<think>" not in trained  # the empty block is prompt, as at inference


def test_qwen3_with_thinking_data_trains_the_reasoning() -> None:
    tokenizer = family_tokenizer("qwen3")
    answer = "<think>\nThe invoice shows two charges.\n</think>\n\nbilling"
    messages = [SYSTEM, {"role": "user", "content": "I was charged twice"},
                {"role": "assistant", "content": answer}]  # fmt: skip
    # The whole conversation decides (tokenization passes it for each partial render).
    prompt = render_chat(tokenizer, messages[:2], generation_prompt=True, thinking=True)
    assert prompt.endswith("<|im_start|>assistant\n")  # thinking stays on
    tokenized = tokenize_conversation(tokenizer, messages, max_seq_len=1024)
    assert trained_segments(tokenizer, tokenized) == [
        "<think>\nThe invoice shows two charges.\n</think>\n\nbilling<|im_end|>"
    ]


def test_strip_thinking_scores_the_answer_only() -> None:
    assert strip_thinking("<think>\nsteps\n</think>\n\nbilling") == "billing"
    assert strip_thinking("<think></think>billing") == "billing"
    assert strip_thinking("billing<think>cut off mid-thought") == "billing"
    assert strip_thinking("plain answer") == "plain answer"


def test_the_worker_checks_the_template_before_loading_weights(tmp_path) -> None:
    """The check in engine.train.worker: a refusal is the run's failure, a fold is a warning."""
    from engine.core.events import EventWriter, iter_all_events
    from engine.train.worker import _check_template
    from tests.tiny_model import build_tiny_tokenizer

    events = EventWriter(tmp_path)
    _check_template(family_tokenizer("gemma2"), events)
    warnings = [e for e in iter_all_events(tmp_path) if e["type"] == "warning"]
    assert [w["code"] for w in warnings] == ["template_folds_system"]
    bare = build_tiny_tokenizer()
    bare.chat_template = None
    with pytest.raises(ChatTemplateError, match="no chat template"):
        _check_template(bare, events)


def test_evaluation_and_the_playground_render_prompts_as_training_does() -> None:
    from engine.eval.generate import render

    qwen3 = family_tokenizer("qwen3")
    prompt = TWO_TURNS[:4]
    assert render(qwen3, prompt) == render_chat(qwen3, prompt, generation_prompt=True)
    assert render(qwen3, prompt).endswith("<think>\n\n</think>\n\n")
    assert render(qwen3, prompt, thinking=True).endswith("<|im_start|>assistant\n")
    gemma2 = family_tokenizer("gemma2")  # no system role: folded, not a crash
    assert "Classify the ticket.\n\nI was charged twice" in render(gemma2, prompt)


def test_scores_compare_answers_without_their_think_blocks() -> None:
    from engine.eval.summary import build_scoring, score_output

    ctx, index = build_scoring([], ["billing", "outage"])
    assert strip_thinking("  spaced  ") == "  spaced  "  # untouched without think blocks
    plain = score_output("billing", "billing", ctx, index)
    thought = score_output("<think>\nsteps\n</think>\n\nbilling", "billing", ctx, index)
    assert thought == plain


def test_mistral_v03_trains_after_the_prompt_inference_uses() -> None:
    """Rendered whole, a Mistral v0.3 conversation ending with the answer has no system
    prompt; training must see the prompt the model is later given, system included."""
    tokenizer = family_tokenizer("mistral-v0.3")
    for messages in (TWO_TURNS[:3], TWO_TURNS):
        tokenized = tokenize_conversation(tokenizer, messages, max_seq_len=1024)
        text = tokenizer.decode(tokenized.input_ids)
        prompt = render_chat(tokenizer, messages[:-1], generation_prompt=True)
        assert text.startswith(prompt) and "Classify the ticket." in text
        first = next(i for i, label in enumerate(tokenized.labels) if label != IGNORE_INDEX)
        segments = [s.strip() for s in trained_segments(tokenizer, tokenized)]
        assert segments[-1] == f"{messages[-1]['content']}</s>"
        assert "Classify" not in tokenizer.decode(
            [t for t in tokenized.labels[first:] if t != IGNORE_INDEX]
        )


def test_evaluation_prompts_think_when_the_training_answers_do() -> None:
    """A prompt has no assistant turn to tell: the data decides, as it did for training."""
    from engine.data.formats import Example, Message
    from engine.eval.generate import data_thinks, render

    tokenizer = family_tokenizer("qwen3")
    prompt = [{"role": "user", "content": "Classify: refund please"}]

    def answer(text: str) -> Example:
        return Example(messages=(Message("user", "q"), Message("assistant", text)), line=1)

    assert not data_thinks([answer('{"category": "billing"}')])
    assert data_thinks([answer('<think>refund</think>{"category": "billing"}')])
    off = render(tokenizer, prompt)  # the empty think block closes thinking
    on = render(tokenizer, prompt, thinking=True)
    assert off.rstrip().endswith("</think>") and not on.rstrip().endswith("</think>")
