"""Turn conversations into token ids and labels that train on assistant tokens only.

The tokenizer's own chat template renders the conversation; no `{% generation %}`
markers are required. For each assistant turn we render the conversation up to that
turn with the generation prompt (where the answer starts) and up to the end of that turn
(where it ends), so the trained span is the answer plus its end-of-turn token. Trailing
whitespace the template adds after the end-of-turn token (ChatML's newline) is not
trained: the model never needs to produce it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100
"""Label value that cross-entropy ignores (PyTorch's and transformers' convention)."""


@dataclass(frozen=True)
class TokenizedExample:
    """One conversation as model input, with labels only on assistant tokens."""

    input_ids: list[int]
    labels: list[int]
    trained_tokens: int
    """Number of labels that count (assistant tokens kept after truncation)."""
    cut_trained_tokens: int
    """Assistant tokens lost to truncation at max_seq_len."""


def _as_dicts(messages: Sequence[Any]) -> list[dict[str, str]]:
    """Accept engine.formats.Message objects or plain {"role", "content"} dicts."""
    return [m if isinstance(m, dict) else {"role": m.role, "content": m.content} for m in messages]


def _render(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )


def assistant_char_spans(tokenizer: Any, messages: Sequence[Any]) -> tuple[str, list[range]]:
    """The rendered conversation and the character spans to train on.

    Returns:
        (text, spans): each span covers one assistant answer and its end-of-turn token.
    """
    chat = _as_dicts(messages)
    text = _render(tokenizer, chat, generation_prompt=False)
    spans: list[range] = []
    for index, message in enumerate(chat):
        if message["role"] != "assistant":
            continue
        prompt = _render(tokenizer, chat[:index], generation_prompt=True) if index else ""
        upto = _render(tokenizer, chat[: index + 1], generation_prompt=False)
        if text.startswith(prompt) and text.startswith(upto):
            start, end = len(prompt), len(upto.rstrip())
        else:
            # A template that rewrites earlier turns (rare): locate the answer itself.
            search_from = spans[-1].stop if spans else 0
            start = text.find(message["content"], search_from)
            if start < 0:
                continue
            end = start + len(message["content"])
            end += len(text[end:].split("\n", 1)[0].rstrip())
        if end > start:
            spans.append(range(start, end))
    return text, spans


def tokenize_conversation(
    tokenizer: Any, messages: Sequence[Any], max_seq_len: int
) -> TokenizedExample:
    """Token ids and assistant-only labels for one conversation, truncated on the right."""
    text, spans = assistant_char_spans(tokenizer, messages)
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = encoding["input_ids"]
    labels = [IGNORE_INDEX] * len(ids)
    for position, (start, _end) in enumerate(encoding["offset_mapping"]):
        if any(start in span for span in spans):
            labels[position] = ids[position]
    total_trained = sum(label != IGNORE_INDEX for label in labels)
    ids, labels = ids[:max_seq_len], labels[:max_seq_len]
    kept = sum(label != IGNORE_INDEX for label in labels)
    return TokenizedExample(ids, labels, kept, total_trained - kept)
