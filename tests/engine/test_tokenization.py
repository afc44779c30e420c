"""Assistant-only loss: decode the label masks and check exactly which tokens train."""

from __future__ import annotations

import pytest

from engine.model.tokenization import IGNORE_INDEX, assistant_char_spans, tokenize_conversation

SYSTEM = {"role": "system", "content": "Classify the ticket."}


def trained_segments(tokenizer, tokenized) -> list[str]:
    """Decode each contiguous run of trained labels."""
    segments, current = [], []
    for token, label in zip(tokenized.input_ids, tokenized.labels, strict=True):
        if label != IGNORE_INDEX:
            assert label == token  # a label is the token itself, never shifted here
            current.append(token)
        elif current:
            segments.append(tokenizer.decode(current))
            current = []
    if current:
        segments.append(tokenizer.decode(current))
    return segments


def test_single_turn_trains_the_answer_and_its_end_of_turn(tiny_tokenizer) -> None:
    messages = [
        SYSTEM,
        {"role": "user", "content": "I was charged twice"},
        {"role": "assistant", "content": '{"category": "billing"}'},
    ]
    tokenized = tokenize_conversation(tiny_tokenizer, messages, max_seq_len=512)
    assert trained_segments(tiny_tokenizer, tokenized) == ['{"category": "billing"}<|im_end|>']
    assert tokenized.trained_tokens == sum(1 for x in tokenized.labels if x != IGNORE_INDEX)
    assert tokenized.cut_trained_tokens == 0
    # The prompt (system, user, the assistant header) never trains.
    prompt = tiny_tokenizer.decode(
        tokenized.input_ids[
            : tokenized.labels.index(next(x for x in tokenized.labels if x != IGNORE_INDEX))
        ]
    )
    assert prompt.endswith("<|im_start|>assistant\n") and "charged twice" in prompt


def test_multi_turn_trains_every_assistant_turn_and_nothing_else(tiny_tokenizer) -> None:
    messages = [
        SYSTEM,
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Reset my password"},
        {"role": "assistant", "content": "Use the reset link."},
    ]
    tokenized = tokenize_conversation(tiny_tokenizer, messages, max_seq_len=512)
    assert trained_segments(tiny_tokenizer, tokenized) == [
        "Hello! How can I help?<|im_end|>",
        "Use the reset link.<|im_end|>",
    ]


def test_conversation_without_system_prompt_uses_the_template_default(tiny_tokenizer) -> None:
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}]
    text, spans = assistant_char_spans(tiny_tokenizer, messages)
    assert text.startswith("<|im_start|>system\n")  # the template inserted its default
    assert [text[s.start : s.stop] for s in spans] == ["Hey<|im_end|>"]


def test_truncation_counts_the_cut_answer_tokens(tiny_tokenizer) -> None:
    long_answer = "word " * 200
    messages = [SYSTEM, {"role": "user", "content": "Tell me"},
                {"role": "assistant", "content": long_answer}]  # fmt: skip
    full = tokenize_conversation(tiny_tokenizer, messages, max_seq_len=10_000)
    cut = tokenize_conversation(tiny_tokenizer, messages, max_seq_len=64)
    assert len(cut.input_ids) == len(cut.labels) == 64
    assert cut.trained_tokens + cut.cut_trained_tokens == full.trained_tokens
    assert cut.cut_trained_tokens > 0


@pytest.mark.parametrize("content", ["ok", "Paris.", '{"a": 1}', "ünïcödé — ✓"])
def test_labels_align_with_ids_for_varied_answers(tiny_tokenizer, content: str) -> None:
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": content}]
    tokenized = tokenize_conversation(tiny_tokenizer, messages, max_seq_len=512)
    assert trained_segments(tiny_tokenizer, tokenized) == [content + "<|im_end|>"]


@pytest.mark.parametrize(
    ("name", "record"),
    [
        ("chat.jsonl", {"messages": [{"role": "user", "content": "Charged twice"},
                                     {"role": "assistant", "content": "ANSWER"}]}),
        ("sharegpt.jsonl", {"conversations": [{"from": "human", "value": "Charged twice"},
                                              {"from": "gpt", "value": "ANSWER"}]}),
        ("alpaca.jsonl", {"instruction": "Classify", "input": "Charged twice",
                          "output": "ANSWER"}),
        ("pc.jsonl", {"prompt": "Charged twice", "completion": "ANSWER"}),
    ],
)  # fmt: skip
def test_every_format_trains_only_its_answer(tiny_tokenizer, tmp_path, name, record) -> None:
    import json

    from engine.data.formats import load_examples

    path = tmp_path / name
    path.write_text(json.dumps(record) + "\n")
    (example,) = load_examples(path).examples
    tokenized = tokenize_conversation(tiny_tokenizer, example.messages, max_seq_len=512)
    assert trained_segments(tiny_tokenizer, tokenized) == ["ANSWER<|im_end|>"]
