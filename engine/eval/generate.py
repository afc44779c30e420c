"""Prompts, models and generation for evaluation: base zero-shot, base few-shot, fine-tuned.

- A prompt is the conversation up to its last assistant turn, system prompt kept.
- Few-shot prompts put k training examples before it as earlier user/assistant turns,
  the same k for every prompt (chosen once, deterministically), dropping shots from the
  end where a prompt would not fit in max_seq_len with room for the answer.
- Generation is batched with left padding (the answers start in the same column) and the
  KV cache, greedy unless a temperature is set; on CUDA when there is one.
- Validation loss is the training loss on assistant tokens only (engine.model.tokenization), so
  it is comparable with the run's own validation curve.

torch, transformers and peft are imported inside the functions: importing this module
stays cheap for the TUI.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.data.formats import Example
from engine.data.labels import LabelScheme, parse_json_object
from engine.model.generation import Sampling
from engine.model.tokenization import END_OF_TURN_TOKENS


@dataclass(frozen=True)
class Generated:
    """One generated answer."""

    text: str
    prompt_tokens: int
    output_tokens: int
    finished: bool
    """False when the answer was cut at max_new_tokens."""


# ---------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------


def as_dicts(messages: Sequence[Any]) -> list[dict[str, str]]:
    """Chat messages as plain {"role", "content"} dicts."""
    return [{"role": m.role, "content": m.content} for m in messages]


def prompt_messages(example: Example) -> list[dict[str, str]]:
    """The conversation before the example's last assistant turn (system prompt kept)."""
    for index in range(len(example.messages) - 1, -1, -1):
        if example.messages[index].role == "assistant":
            return as_dicts(example.messages[:index])
    return as_dicts(example.messages)


def last_user_text(example: Example) -> str:
    """What the user asked last: the prompt as a person reads it in a table."""
    for message in reversed(prompt_messages(example)):
        if message["role"] == "user":
            return message["content"]
    return ""


def choose_shots(
    train: Sequence[Example], k: int, seed: int, scheme: LabelScheme | None
) -> list[Example]:
    """k training examples for few-shot prompts, the same every time for the same data.

    Shorter examples come first (they leave room for the prompt), in a seeded random
    order; with labelled data the shots take different labels in turn, most common first,
    so the base model sees more than one class.
    """
    if k <= 0 or not train:
        return []
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    sizes = [sum(len(m.content) for m in example.messages) for example in train]
    median = sorted(sizes)[len(sizes) // 2]
    pool = [i for i in order if sizes[i] <= median] + [i for i in order if sizes[i] > median]
    if scheme is None:
        return [train[i] for i in pool[:k]]
    by_label: dict[str, list[int]] = {}
    for i in pool:
        answer = train[i].answer
        label = scheme.label_of(answer, parse_json_object(answer))
        by_label.setdefault(label or "", []).append(i)
    labels = [label for label in scheme.counts if label in by_label]
    labels += [label for label in by_label if label not in labels]
    picks: list[int] = []
    while len(picks) < min(k, len(train)):
        for label in labels:
            if by_label[label] and len(picks) < k:
                picks.append(by_label[label].pop(0))
    return [train[i] for i in picks]


def few_shot_messages(example: Example, shots: Sequence[Example]) -> list[dict[str, str]]:
    """The prompt with the shots' turns (without their system prompts) after the system."""
    prompt = prompt_messages(example)
    system = [m for m in prompt if m["role"] == "system"]
    rest = [m for m in prompt if m["role"] != "system"]
    shot_turns = [m for shot in shots for m in as_dicts(shot.messages) if m["role"] != "system"]
    return system + shot_turns + rest


def data_thinks(examples: Sequence[Example]) -> bool:
    """Whether the data's answers carry `<think>` blocks. Prompts of such data render with
    thinking on, as training rendered them; a prompt alone has no assistant turn to tell."""
    return any("<think>" in example.answer for example in examples)


def render(tokenizer: Any, messages: list[dict[str, str]], thinking: bool | None = None) -> str:
    """The chat template's text for a prompt, ending where the assistant's answer starts.

    Rendered as training renders (engine.model.tokenization.render_chat): the system text folded
    into the first user turn where the template has no system role, Qwen3-style thinking
    off (its empty think block in the prompt) unless `thinking` is True.
    """
    from engine.model.tokenization import render_chat

    return render_chat(tokenizer, messages, generation_prompt=True, thinking=thinking)


def count_tokens(tokenizer: Any, text: str) -> int:
    """Tokens of already-rendered text (the template carries its own special tokens)."""
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def fit_few_shot(
    tokenizer: Any, example: Example, shots: Sequence[Example], budget: int
) -> tuple[str, int]:
    """The few-shot prompt text with as many shots as fit in `budget` tokens, and that number."""
    for used in range(len(shots), -1, -1):
        text = render(tokenizer, few_shot_messages(example, shots[:used]))
        if used == 0 or count_tokens(tokenizer, text) <= budget:
            return text, used
    raise AssertionError("unreachable: zero shots always returns")


def max_new_tokens_for(tokenizer: Any, references: Sequence[str], cap: int) -> int:
    """Room for the longest reference and then some: 1.5 x its tokens + 16, at most `cap`."""
    longest = max((count_tokens(tokenizer, r) for r in references), default=0)
    return max(8, min(cap, int(longest * 1.5) + 16))


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


def load_eval_tokenizer(model_name: str) -> Any:
    """The model's tokenizer set up for batched generation (left padding, a pad token)."""
    from engine.model.resolve import load_tokenizer

    tokenizer = load_tokenizer(model_name)
    tokenizer.padding_side = "left"  # answers then start in the same column
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """EOS of tokenizer and model, plus the chat template's end-of-turn tokens."""
    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(v for v in value if isinstance(v, int))
    vocab = tokenizer.get_vocab()
    ids.update(vocab[token] for token in END_OF_TURN_TOKENS if token in vocab)
    return sorted(ids)


# ---------------------------------------------------------------------------
# Generation and loss
# ---------------------------------------------------------------------------


EVICT_EVERY = 16
"""Decoding steps between drops of finished answers from a batch (see `generate`)."""


def generate(
    model: Any, tokenizer: Any, texts: list[str], sampling: Sampling, device: str
) -> list[Generated]:
    """Answers to a batch of rendered prompts (left-padded, KV cache).

    A batch decodes until its longest answer ends, and an answer that ended early costs
    as much per step as one still going. So a batch decodes in rounds of EVICT_EVERY
    steps; after each round the answers that reached a stop token leave it, with their
    rows of the KV cache, and the rest continue from the cache: no step is recomputed,
    and each answer is decoded exactly as in one uninterrupted `model.generate`. (The
    base model stops early on half the sample data's prompts: a batch of 14 decoded
    ~1.2x faster on a 2-core CPU; bench/eval_generation.py.)
    """
    import torch

    stops = stop_token_ids(model, tokenizer)
    encoded = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    ids, mask = encoded["input_ids"].to(device), encoded["attention_mask"].to(device)
    prompt_lengths = mask.sum(dim=1).tolist()
    # return_dict_in_generate: the KV cache comes back, so decoding continues from it
    config = generation_config(model, tokenizer, sampling, stops, return_dict_in_generate=True)
    cache_field = _cache_field()
    answers: list[list[int]] = [[] for _ in texts]
    finished = [False] * len(texts)
    live, cache = list(range(len(texts))), None
    if not sampling.greedy and sampling.seed is not None:
        torch.manual_seed(sampling.seed)
    while live:
        done = len(answers[live[0]])  # every live answer is as long: none has stopped
        # One prompt has nothing to drop: one call, exactly what a user would run.
        step = EVICT_EVERY if len(live) > 1 else sampling.max_new_tokens
        config.max_new_tokens = min(step, sampling.max_new_tokens - done)
        cached: dict[str, Any] = {cache_field: cache} if cache is not None else {}
        with torch.inference_mode():
            output = model.generate(
                input_ids=ids, attention_mask=mask, generation_config=config, **cached
            )
        cache, ids = getattr(output, cache_field), output.sequences
        going = []
        for row, new in enumerate(ids[:, mask.shape[1] :].tolist()):
            cut = next((i for i, token in enumerate(new) if token in stops), None)
            answers[live[row]] += new if cut is None else new[:cut]
            finished[live[row]] = cut is not None
            if cut is None and done + len(new) < sampling.max_new_tokens:
                going.append(row)
        mask = torch.cat([mask, mask.new_ones((len(live), ids.shape[1] - mask.shape[1]))], 1)
        if going and len(going) < len(live):
            keep = torch.tensor(going, device=ids.device)
            cache.batch_select_indices(keep)
            ids, mask = ids[keep], mask[keep]
        live = [live[row] for row in going]
    return [
        Generated(tokenizer.decode(tokens, skip_special_tokens=True).strip(),
                  int(prompt_lengths[i]), len(tokens), finished[i])
        for i, tokens in enumerate(answers)
    ]  # fmt: skip


def generation_config(
    model: Any, tokenizer: Any, sampling: Sampling, stops: list[int], **extra: Any
) -> Any:
    """The model's generation config with our sampling, stop tokens and padding (the
    tokenizer's pad token, else the first stop token), plus `extra` settings."""
    config = copy.deepcopy(model.generation_config)
    pad = tokenizer.pad_token_id
    config.update(
        max_new_tokens=sampling.max_new_tokens,
        do_sample=not sampling.greedy,
        temperature=sampling.temperature if not sampling.greedy else 1.0,
        top_p=sampling.top_p if not sampling.greedy else 1.0,
        pad_token_id=pad if pad is not None else stops[0] if stops else None,
        eos_token_id=stops,
        use_cache=True,
        **extra,
    )
    return config


def _cache_field() -> str:
    """What transformers calls the KV cache in generate's output and keyword arguments.

    transformers 5.x renamed `past_key_values` to `cache` (the old name still works,
    with a warning); the output's field tells which name this version uses.
    """
    from transformers.generation.utils import GenerateDecoderOnlyOutput

    fields = GenerateDecoderOnlyOutput.__dataclass_fields__
    return "cache" if "cache" in fields else "past_key_values"


def generation_batches(lengths: Sequence[int], todo: Sequence[int], size: int) -> list[list[int]]:
    """The indices in `todo` as batches of at most `size` prompts, longest prompts first.

    Prompts of similar length share a batch (little left padding to compute), and the
    longest batch comes first, so running out of memory shows at once, not at the end.
    """
    order = sorted(todo, key=lambda i: -lengths[i])
    return [order[start : start + size] for start in range(0, len(order), size)]


def validation_loss(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Sequence[Any]],
    max_seq_len: int,
    batch_size: int,
    device: str,
) -> tuple[float | None, int]:
    """Token-weighted mean loss on the assistant tokens of `conversations`, and the count.

    Returns (None, 0) when no conversation keeps an answer token within max_seq_len.
    """
    import torch

    from engine.core.errors import is_out_of_memory
    from engine.model.batching import right_padded
    from engine.model.loss import trained_loss_sum
    from engine.model.tokenization import tokenize_conversation

    items = [tokenize_conversation(tokenizer, c, max_seq_len) for c in conversations]
    items = [item for item in items if item.trained_tokens > 0]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total, counted, start = 0.0, 0, 0
    while start < len(items):
        batch = [(item.input_ids, item.labels) for item in items[start : start + batch_size]]
        ids, labels, mask = right_padded(batch, pad)
        try:  # logits only where an answer token is predicted (engine.model.loss)
            with torch.inference_mode():
                summed, count = trained_loss_sum(
                    model, ids.to(device), mask.to(device), labels.to(device)
                )
        except Exception as exc:
            if not is_out_of_memory(exc) or batch_size == 1:
                raise
            batch_size //= 2  # this batch again, and the later ones, at half the size
            continue
        total, counted, start = total + summed, counted + count, start + batch_size
    return (total / counted if counted else None), counted
