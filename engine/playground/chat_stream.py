"""Streamed chat answers from one loaded model, with or without its LoRA adapter.

The playground's process (engine.playground.server) holds one `ChatModel`: the base model, and
when the run has an adapter, the same weights wrapped in PEFT. The fine-tuned side
answers with the adapter on, the base side inside `disable_adapter()`, so comparing the
two costs one copy of the weights. `generate_streamed` runs `generate` in a thread and
reads its text from a `TextIteratorStreamer` as it comes; a stopping criterion polls a
flag so a cancel ends the answer at the next token.

torch, transformers and peft are imported inside the functions: importing this module
stays cheap.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from engine.core.errors import ModelLoadError, TunedeckError
from engine.model.generation import Sampling

Side = Literal["base", "tuned"]
ProgressFn = Callable[[str, float], None]

MIN_PROMPT_ROOM = 16
"""Tokens a prompt needs at least, beside max_new_tokens, to be worth generating from."""


@dataclass(frozen=True)
class ChatRequest:
    """One answer to generate: a conversation, for one side, with its settings."""

    id: Any
    """Chosen by the caller, echoed back on every line about this answer."""
    side: Side
    system: str
    """System prompt ("" for none: the chat template may then add its own default)."""
    messages: tuple[dict[str, str], ...]
    """The turns after the system prompt, ending with the user's."""
    settings: Sampling


@dataclass(frozen=True)
class Answer:
    """A generated answer and what it cost."""

    text: str
    tokens: int
    seconds: float
    finished: bool
    """True when the model ended its turn; False when cut at max_new_tokens or cancelled."""
    cancelled: bool
    dropped: int
    """Earlier messages (questions and answers) left out to fit the model's context."""


@dataclass
class ChatModel:
    """A loaded model ready to chat: base weights, maybe with the run's adapter."""

    model: Any
    tokenizer: Any
    device: str
    has_adapter: bool
    context: int
    """Tokens the model attends to: prompt and answer together."""
    stops: list[int]

    def weights(self, side: Side) -> contextlib.AbstractContextManager[Any]:
        """The model as `side` needs it: the base side with the adapter switched off."""
        if side == "base" and self.has_adapter:
            return self.model.disable_adapter()
        return contextlib.nullcontext()


def load_chat_model(
    model_name: str, method: str, bf16: str, adapter: Path | None, progress: ProgressFn
) -> ChatModel:
    """Load the base model the way evaluation does (NF4 for qlora) and attach the adapter.

    Raises:
        ModelNotFoundError, ModelLoadError: the model or adapter cannot be used.
    """
    from engine.eval.generate import stop_token_ids
    from engine.model.load import attach_adapter, load_base_model
    from engine.model.resolve import load_tokenizer, resolve_model

    resolve_model(model_name, progress)  # converts an embedded GGUF once, with progress
    progress(f"loading {model_name}", 0.5)
    tokenizer = load_tokenizer(model_name)
    if not getattr(tokenizer, "chat_template", None):
        raise ModelLoadError(
            f"the tokenizer of {model_name} has no chat template",
            hint="the playground talks to instruct / chat models; choose one with a template",
        )
    model, device = load_base_model(model_name, method, bf16)
    if adapter is not None:
        progress("loading the fine-tuned adapter", 0.9)
        try:
            model = attach_adapter(model, adapter, "tuned")
        except Exception as exc:
            raise ModelLoadError(
                f"could not load the adapter {adapter}: {type(exc).__name__}: {exc}",
                hint="the run may still be writing it; reload the playground in a moment",
            ) from exc
    return ChatModel(
        model=model,
        tokenizer=tokenizer,
        device=device,
        has_adapter=adapter is not None,
        context=_context(model, tokenizer),
        stops=stop_token_ids(model, tokenizer),
    )


def _context(model: Any, tokenizer: Any) -> int:
    """The model's context length: its position embeddings, or the tokenizer's limit."""
    limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    usable = [n for n in limits if isinstance(n, int) and 0 < n < 1_000_000]
    return min(usable) if usable else 2048


# ---------------------------------------------------------------------------
# Prompts that fit
# ---------------------------------------------------------------------------


def fit_prompt(chat: ChatModel, request: ChatRequest) -> tuple[str, int]:
    """The rendered prompt, leaving out the oldest turns until it fits; and how many went.

    The answer needs `max_new_tokens` of the context; the system prompt and the last user
    turn always stay.

    Raises:
        TunedeckError: even the last turn alone does not fit.
    """
    from engine.eval.generate import count_tokens, render

    budget = chat.context - request.settings.max_new_tokens
    if budget < MIN_PROMPT_ROOM:
        raise TunedeckError(
            f"max new tokens ({request.settings.max_new_tokens}) leaves no room for the "
            f"prompt in the model's context of {chat.context} tokens",
            hint=f"lower max new tokens below {chat.context - MIN_PROMPT_ROOM}",
        )
    system = [{"role": "system", "content": request.system}] if request.system.strip() else []
    turns = list(request.messages)
    dropped = 0
    while True:
        text = render(chat.tokenizer, system + turns)
        length = count_tokens(chat.tokenizer, text)
        if length <= budget:
            return text, dropped
        later_user = [i for i, m in enumerate(turns) if m["role"] == "user" and i > 0]
        if not later_user:
            raise TunedeckError(
                f"the prompt has {length} tokens: with {request.settings.max_new_tokens} new "
                f"tokens it does not fit in the model's context of {chat.context}",
                hint="shorten the prompt or the system prompt, or lower max new tokens",
            )
        dropped += later_user[0]
        turns = turns[later_user[0] :]


# ---------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------


def _generation_config(chat: ChatModel, settings: Sampling) -> Any:
    from engine.eval.generate import generation_config

    return generation_config(chat.model, chat.tokenizer, settings, chat.stops, top_k=None)


def _stop_when(should_stop: Callable[[], bool]) -> Any:
    """A StoppingCriteria that ends generation once `should_stop()` is true."""
    import torch
    from transformers import StoppingCriteria

    class _Flag(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            stop = should_stop()
            return torch.full(
                (input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device
            )

    return _Flag()


def generate_streamed(
    chat: ChatModel,
    request: ChatRequest,
    should_stop: Callable[[], bool],
    on_text: Callable[[str], None],
) -> Answer:
    """Generate one answer, handing each piece of text to `on_text` as soon as it decodes.

    `generate` runs in a thread and feeds a TextIteratorStreamer, which this thread reads:
    pieces are whole words where the tokenizer allows (the streamer holds back a partial
    character). `should_stop` is polled after every token.

    Raises:
        TunedeckError: the conversation does not fit in the context.
        Exception: whatever generate raised (re-raised here, in the caller's thread).
    """
    import torch
    from transformers import StoppingCriteriaList, TextIteratorStreamer

    text, dropped = fit_prompt(chat, request)
    ids = chat.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    ids = ids.to(chat.device)
    streamer = TextIteratorStreamer(chat.tokenizer, skip_prompt=True, skip_special_tokens=True)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            if not request.settings.greedy and request.settings.seed is not None:
                torch.manual_seed(request.settings.seed)
            with torch.inference_mode(), chat.weights(request.side):
                outcome["output"] = chat.model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    generation_config=_generation_config(chat, request.settings),
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_stop_when(should_stop)]),
                )
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc
            streamer.end()  # unblocks the reader; a no-op flush when nothing is cached

    started = time.monotonic()
    worker = threading.Thread(target=run, name="playground-generate", daemon=True)
    worker.start()
    pieces = []
    for piece in streamer:
        if piece:
            pieces.append(piece)
            on_text(piece)
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    new = outcome["output"][0, ids.shape[1] :].tolist()
    cut = next((i for i, token in enumerate(new) if token in chat.stops), None)
    return Answer(
        text="".join(pieces),
        tokens=len(new) if cut is None else cut,
        seconds=time.monotonic() - started,
        finished=cut is not None,
        cancelled=cut is None and should_stop(),
        dropped=dropped,
    )
