"""Turn conversations into token ids and labels that train on assistant tokens only.

The tokenizer's own chat template renders the conversation; no `{% generation %}`
markers are required. For each assistant turn we render the conversation up to that
turn with the generation prompt (where the answer starts) and up to the end of that turn
(where it ends), so the trained span is the answer plus its end-of-turn token. Trailing
whitespace the template adds after the end-of-turn token (ChatML's newline) is not
trained: the model never needs to produce it.

Templates that render a turn differently depending on what follows it (Mistral v0.3
prints the system prompt only in the last user turn; Qwen3 shows the empty think block
only after the last question) break that prefix arithmetic. Then the answer is located
in the full text and its span ends at the end-of-turn or eos token right after it, never
further: the next turn's header is never trained.

One policy for every renderer (training, lint, evaluation, the playground):

- a template that refuses a system turn (Gemma-2) gets the system text folded into the
  first user turn, as Gemma-3's own template does; `check_chat_template` says so;
- no template at all, or one that refuses a plain user/assistant exchange, is refused
  before training with the cause named;
- Qwen3-style thinking: `enable_thinking=False` unless the conversation itself carries
  `<think>` blocks; scores compare answers with think blocks removed (`strip_thinking`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.core.errors import TunedeckError

IGNORE_INDEX = -100
"""Label value that cross-entropy ignores (PyTorch's and transformers' convention)."""

END_OF_TURN_TOKENS = (
    "<|eot_id|>",  # Llama-3
    "<|im_end|>",  # ChatML: Qwen, SmolLM
    "<end_of_turn>",  # Gemma
    "<|end|>",  # Phi-3
    "<|eom_id|>",  # Llama-3.1 tool calls
    "</s>",  # Mistral, Llama-2
    "<eos>",
    "<|endoftext|>",
    "<|end_of_text|>",
)
"""Texts of tokens that end an assistant turn in the popular templates (with the eos)."""

_THINK_BLOCK = re.compile(r"<think>.*?</think>\s*", re.DOTALL)
_OPEN_THINK = re.compile(r"<think>.*\Z", re.DOTALL)


class ChatTemplateError(TunedeckError):
    """A tokenizer whose chat template cannot render the training conversations."""


@dataclass(frozen=True)
class TokenizedExample:
    """One conversation as model input, with labels only on assistant tokens."""

    input_ids: list[int]
    labels: list[int]
    trained_tokens: int
    """Number of labels that count (assistant tokens kept after truncation)."""
    cut_trained_tokens: int
    """Assistant tokens lost to truncation at max_seq_len."""


@dataclass(frozen=True)
class TemplateCheck:
    """What the chat template does with tunedeck's conversations."""

    folds_system: bool
    """The template refuses a system turn: its text goes into the first user turn."""
    note: str
    """A sentence for lint and the Hyperparameters step ("" when nothing is changed)."""


# ---------------------------------------------------------------------------
# Rendering (one policy for training, lint, evaluation and the playground)
# ---------------------------------------------------------------------------


def as_dicts(messages: Sequence[Any]) -> list[dict[str, str]]:
    """Accept engine.data.formats.Message objects or plain {"role", "content"} dicts."""
    return [m if isinstance(m, dict) else {"role": m.role, "content": m.content} for m in messages]


def has_thinking(messages: Sequence[dict[str, str]]) -> bool:
    """Whether an assistant turn carries a `<think>` block (then thinking stays on)."""
    return any(m["role"] == "assistant" and "<think>" in m["content"] for m in messages)


def fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The system text moved to the start of the first user turn (Gemma-3's own way)."""
    if not messages or messages[0]["role"] != "system":
        return messages
    system, rest = messages[0]["content"], messages[1:]
    for index, message in enumerate(rest):
        if message["role"] == "user":
            merged = {**message, "content": f"{system}\n\n{message['content']}"}
            return [*rest[:index], merged, *rest[index + 1 :]]
    return [{"role": "user", "content": system}, *rest]


def render_chat(
    tokenizer: Any,
    messages: Sequence[Any],
    generation_prompt: bool,
    thinking: bool | None = None,
) -> str:
    """The template's text for `messages`, under the policy in the module docstring.

    Args:
        thinking: keep Qwen3-style thinking on; None decides from the messages.

    Raises:
        ChatTemplateError: no template, or it refuses even with the system turn folded.
    """
    chat = as_dicts(messages)
    if not getattr(tokenizer, "chat_template", None):
        raise _no_template()
    thinking = has_thinking(chat) if thinking is None else thinking
    extra = {} if thinking else {"enable_thinking": False}
    try:
        return str(_apply(tokenizer, chat, generation_prompt, extra))
    except Exception as exc:  # jinja2 TemplateError or the template's raise_exception
        if not chat or chat[0]["role"] != "system":
            raise _refused(exc) from exc
        try:
            return str(_apply(tokenizer, fold_system(chat), generation_prompt, extra))
        except Exception as again:
            raise _refused(again) from again


def _apply(tokenizer: Any, chat: list[dict[str, str]], prompt: bool, extra: dict) -> Any:
    return tokenizer.apply_chat_template(
        chat, tokenize=False, add_generation_prompt=prompt, **extra
    )


def _no_template() -> ChatTemplateError:
    return ChatTemplateError(
        "the model's tokenizer has no chat template (a base model, not an instruct one)",
        hint="choose an instruct / chat version of the model, or add a chat_template to "
        "its tokenizer_config.json",
    )


def _refused(exc: BaseException) -> ChatTemplateError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ChatTemplateError(
        f"the model's chat template refuses the conversation: {reason}",
        hint="check the roles with `tunedeck lint --model ...` (most templates want "
        "user and assistant turns alternating, starting with the user)",
    )


def check_chat_template(tokenizer: Any) -> TemplateCheck:
    """Try the template on a small conversation before anything trains.

    Raises:
        ChatTemplateError: no template, or it refuses a user/assistant exchange.
    """
    exchange = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    render_chat(tokenizer, exchange, generation_prompt=False)  # raises with the cause
    try:
        _apply(tokenizer, [{"role": "system", "content": "Be brief."}, *exchange], False, {})
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return TemplateCheck(
            True,
            f"the chat template refuses a system turn ({reason}): the system text is put "
            "at the start of the first user turn, in training, evaluation and the playground",
        )
    return TemplateCheck(False, "")


def strip_thinking(text: str) -> str:
    """An answer without its `<think>…</think>` blocks (an unclosed one runs to the end);
    text without any is returned unchanged."""
    if "<think>" not in text:
        return text
    return _OPEN_THINK.sub("", _THINK_BLOCK.sub("", text)).strip()


# ---------------------------------------------------------------------------
# Assistant spans
# ---------------------------------------------------------------------------


def end_of_turn_texts(tokenizer: Any) -> tuple[str, ...]:
    """The end-of-turn token texts this tokenizer has (its eos first)."""
    vocab = tokenizer.get_vocab()
    eos = getattr(tokenizer, "eos_token", None)
    known = [token for token in END_OF_TURN_TOKENS if token in vocab]
    return tuple(dict.fromkeys([*([eos] if eos else []), *known]))


def assistant_char_spans(tokenizer: Any, messages: Sequence[Any]) -> tuple[str, list[range]]:
    """The rendered conversation and the character spans to train on.

    Returns:
        (text, spans): each span covers one assistant answer and its end-of-turn token.
    """
    chat = as_dicts(messages)
    thinking = has_thinking(chat)
    text = render_chat(tokenizer, chat, generation_prompt=False, thinking=thinking)
    text = _as_inference_sees_it(tokenizer, chat, text, thinking)
    spans: list[range] = []
    ends: tuple[str, ...] | None = None
    for index, message in enumerate(chat):
        if message["role"] != "assistant":
            continue
        prompt = render_chat(tokenizer, chat[:index], True, thinking) if index else ""
        upto = render_chat(tokenizer, chat[: index + 1], False, thinking)
        if text.startswith(prompt) and text.startswith(upto):
            span = range(len(prompt), len(upto.rstrip()))
        else:  # the template renders this turn differently later on: find the answer
            ends = end_of_turn_texts(tokenizer) if ends is None else ends
            after = spans[-1].stop if spans else 0
            found = _find_answer(text, chat, index, after, ends)
            if found is None:
                continue
            span = found
        if span.stop > span.start:
            spans.append(span)
    return text, spans


def _as_inference_sees_it(
    tokenizer: Any, chat: list[dict[str, str]], text: str, thinking: bool
) -> str:
    """The text with the last answer after the very prompt inference will use.

    Mistral v0.3 prints the system prompt only in the last user turn *when the
    conversation ends there*: rendered whole, a conversation that ends with the answer has
    no system prompt at all, and training would never see it. Then the text becomes the
    generation prompt followed by the answer as the template writes it.
    """
    last = len(chat) - 1
    if last < 1 or chat[last]["role"] != "assistant" or chat[last - 1]["role"] != "user":
        return text
    prompt = render_chat(tokenizer, chat[:last], True, thinking)
    if text.startswith(prompt):
        return text
    question = chat[last - 1]["content"].strip()
    upto = render_chat(tokenizer, chat, False, thinking)
    asked_p, asked_u = prompt.rfind(question), upto.rfind(question)
    if not question or asked_p < 0 or asked_u < 0:
        return text
    closing = prompt[asked_p + len(question) :]  # "[/INST]": the rest of the prompt
    after = upto[asked_u + len(question) :]
    if not after.startswith(closing):
        return text
    return prompt + after[len(closing) :]


def _find_answer(
    text: str, chat: list[dict[str, str]], index: int, after: int, ends: tuple[str, ...]
) -> range | None:
    """Where turn `index`'s answer lies in `text`, through its end-of-turn token.

    The search starts past the previous span and the question before this answer, so an
    answer that repeats words of the question is not matched inside the question.
    """
    question = next((m for m in reversed(chat[:index]) if m["role"] == "user"), None)
    if question is not None:
        asked = text.find(question["content"].strip(), after)
        after = asked + len(question["content"].strip()) if asked >= 0 else after
    content = message_content = chat[index]["content"]
    if "</think>" in message_content:  # earlier turns' reasoning may be left out
        content = message_content.split("</think>")[-1]
    for candidate in (message_content.strip(), content.strip()):
        start = text.find(candidate, after) if candidate else -1
        if start >= 0:
            end = start + len(candidate)
            return range(start, end + _end_token_length(text, end, ends))
    return None


def _end_token_length(text: str, end: int, ends: tuple[str, ...]) -> int:
    """Length of the end-of-turn token at `end` (after spaces the template may add)."""
    rest = text[end:]
    gap = len(rest) - len(rest.lstrip(" \t"))
    for token in ends:
        if rest[gap:].startswith(token):
            return gap + len(token)
    return 0


def tokenize_conversation(
    tokenizer: Any, messages: Sequence[Any], max_seq_len: int
) -> TokenizedExample:
    """Token ids and assistant-only labels for one conversation, truncated on the right."""
    text, spans = assistant_char_spans(tokenizer, messages)
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = encoding["input_ids"]
    labels = [IGNORE_INDEX] * len(ids)
    for position, (start, end) in enumerate(encoding["offset_mapping"]):
        # Overlap, not start: SentencePiece's "▁answer" begins at the template's space
        # before the answer, and is exactly the token the model must produce there.
        if any(start < span.stop and end > span.start for span in spans):
            labels[position] = ids[position]
    total_trained = sum(label != IGNORE_INDEX for label in labels)
    ids, labels = ids[:max_seq_len], labels[:max_seq_len]
    kept = sum(label != IGNORE_INDEX for label in labels)
    return TokenizedExample(ids, labels, kept, total_trained - kept)
