"""Token lengths of examples after the model's chat template, fast enough for 100k examples.

Rendering the Jinja chat template once per example costs more than tokenizing it, so the
template is rendered once per *role sequence* (system-user-assistant, user-assistant-user-
assistant, ...) with placeholder contents. That gives the text around each message (the
scaffold); an example's text is its contents spliced into the scaffold, which is the same
string the template would render. The first examples of every role sequence are checked
against a real render; a template that changes contents (strips them, say) fails the check
and that role sequence falls back to rendering each example.

The spliced texts are tokenized in batches by the fast (Rust) tokenizer, which releases the
GIL and uses every core. `apply_chat_template(..., tokenize=True)` tokenizes the rendered
text with `add_special_tokens=False`; so do we, so the counts are the same.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.model.tokenization import ChatTemplateError, render_chat

DEFAULT_MAX_SEQ_LEN = 1024
"""Training's default sequence length (the config's max_seq_len), also lint's limit when no
config is given."""

if TYPE_CHECKING:
    from engine.data.formats import Example

_VERIFY_PER_SEQUENCE = 2  # real renders compared per role sequence before trusting splicing


@dataclass(frozen=True, slots=True)
class TokenLength:
    """Tokens of one example after the chat template; truncation detail when it is too long."""

    tokens: int
    assistant_tokens: int = 0
    """Tokens of assistant contents (counted only for examples longer than max_seq_len)."""
    assistant_cut: int = 0
    """Of those, how many lie beyond max_seq_len: what right-truncation would cut."""


@dataclass(frozen=True, slots=True)
class _Rendered:
    text: str
    assistant_spans: tuple[tuple[int, int], ...]


class TemplateRejected(Exception):
    """The chat template raised for a role sequence (e.g. it does not allow a system turn)."""


class TokenCounter:
    """Counts template tokens of examples; reuse one instance for a whole dataset."""

    def __init__(self, tokenizer: Any, max_seq_len: int) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("the tokenizer has no chat template")
        self.tokenizer = tokenizer
        self.max_seq_len = max_seq_len
        self.backend = getattr(tokenizer, "backend_tokenizer", None)
        self._scaffolds: dict[tuple[str, ...], list[str] | None] = {}
        self._verified: dict[tuple[str, ...], int] = {}
        self.rejected: dict[str, list[int]] = {}
        """Template error message -> lines of examples it refused."""
        self.rendered_each = 0
        """Examples rendered one by one (template changed their contents)."""

    def count(self, examples: Sequence[Example]) -> list[TokenLength | None]:
        """Token lengths of `examples`; None for an example the template refuses."""
        rendered: list[_Rendered | None] = []
        for example in examples:
            try:
                rendered.append(self._render_example(example))
            except TemplateRejected as exc:
                self.rejected.setdefault(str(exc), []).append(example.line)
                rendered.append(None)
        texts = [r.text for r in rendered if r is not None]
        lengths = iter(self._lengths(texts, [r for r in rendered if r is not None]))
        return [None if r is None else next(lengths) for r in rendered]

    # -- rendering -----------------------------------------------------------------------

    def _render(self, messages: list[dict[str, str]]) -> str:
        # Training's renderer: a template without system turn gets it folded in.
        try:
            text = render_chat(self.tokenizer, messages, generation_prompt=False)
        except ChatTemplateError as exc:  # the template's own reason is the cause
            cause = exc.__cause__ or exc
            raise TemplateRejected(
                str(cause).splitlines()[0] if str(cause) else type(cause).__name__
            ) from exc
        return text

    def _scaffold(self, roles: tuple[str, ...]) -> list[str] | None:
        """The text around each message for this role sequence, or None if not spliceable."""
        if roles not in self._scaffolds:
            markers = [f"\ue000{i}\ue001" for i in range(len(roles))]
            text = self._render(
                [{"role": r, "content": m} for r, m in zip(roles, markers, strict=True)]
            )
            pieces: list[str] | None = []
            position = 0
            for marker in markers:
                at = text.find(marker, position)
                if at < 0 or text.count(marker) != 1:
                    pieces = None  # the template drops, repeats or reorders contents
                    break
                assert pieces is not None
                pieces.append(text[position:at])
                position = at + len(marker)
            if pieces is not None:
                pieces.append(text[position:])
            self._scaffolds[roles] = pieces
        return self._scaffolds[roles]

    def _render_example(self, example: Example) -> _Rendered:
        roles = tuple(m.role for m in example.messages)
        scaffold = self._scaffold(roles)
        if scaffold is not None:
            spliced = _splice(scaffold, example)
            checked = self._verified.get(roles, 0)
            if checked >= _VERIFY_PER_SEQUENCE:
                return spliced
            if spliced.text == self._render(_as_dicts(example)):
                self._verified[roles] = checked + 1
                return spliced
            self._scaffolds[roles] = None  # contents are transformed: render each one
        self.rendered_each += 1
        return self._render_each(example)

    def _render_each(self, example: Example) -> _Rendered:
        text = self._render(_as_dicts(example))
        spans = []
        position = 0
        for message in example.messages:
            at = text.find(message.content, position)
            if at < 0:
                continue
            position = at + len(message.content)
            if message.role == "assistant":
                spans.append((at, position))
        return _Rendered(text, tuple(spans))

    # -- tokenizing ----------------------------------------------------------------------

    def _lengths(self, texts: list[str], rendered: list[_Rendered]) -> list[TokenLength]:
        if not texts:
            return []
        if self.backend is not None:
            encodings = self.backend.encode_batch(texts, add_special_tokens=False)
            return [
                self._with_cut(len(enc.ids), enc.offsets, r)
                for enc, r in zip(encodings, rendered, strict=True)
            ]
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [self._with_cut(len(i), None, r) for i, r in zip(ids, rendered, strict=True)]

    def _with_cut(self, tokens: int, offsets: Any, rendered: _Rendered) -> TokenLength:
        if tokens <= self.max_seq_len:
            return TokenLength(tokens)
        if offsets is not None:
            starts = [start for start, _end in offsets]
            ranges = [
                (bisect_left(starts, s), bisect_left(starts, e))
                for s, e in rendered.assistant_spans
            ]
        else:
            ranges = [
                self._token_range_by_prefix(rendered.text, s, e)
                for s, e in rendered.assistant_spans
            ]
        total = sum(last - first for first, last in ranges)
        cut = sum(max(0, last - max(first, self.max_seq_len)) for first, last in ranges)
        return TokenLength(tokens, total, cut)

    def _token_range_by_prefix(self, text: str, start: int, end: int) -> tuple[int, int]:
        """Slow tokenizers give no offsets: place a span by tokenizing the text up to it."""
        before = self.tokenizer(text[:start], add_special_tokens=False)["input_ids"]
        upto = self.tokenizer(text[:end], add_special_tokens=False)["input_ids"]
        return len(before), len(upto)


def _as_dicts(example: Example) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in example.messages]


def _splice(scaffold: list[str], example: Example) -> _Rendered:
    parts = [scaffold[0]]
    spans = []
    position = len(scaffold[0])
    for message, after in zip(example.messages, scaffold[1:], strict=True):
        if message.role == "assistant":
            spans.append((position, position + len(message.content)))
        parts.append(message.content)
        parts.append(after)
        position += len(message.content) + len(after)
    return _Rendered("".join(parts), tuple(spans))


def percentile(sorted_values: Sequence[int], fraction: float) -> int:
    """Nearest-rank percentile of an already sorted sequence (0 for an empty one)."""
    if not sorted_values:
        return 0
    rank = min(len(sorted_values), max(1, math.ceil(fraction * len(sorted_values))))
    return sorted_values[rank - 1]


EXACT_PREFIX = 4096
"""The first examples are all counted exactly: small files are exact, big ones calibrated."""
SAMPLE_EVERY = 16
"""After the prefix, every 16th example is counted for the length percentiles."""
SAFETY = 1.25
"""Screening margin over the highest tokens-per-byte ratio seen in the prefix."""
_MIN_CALIBRATION_BYTES = 256  # shorter examples are mostly template: their ratio says little
_MAX_IN_FLIGHT = 2  # batches queued in the worker thread: bounds memory, keeps it busy


@dataclass(frozen=True)
class TokenSurveyResult:
    """Token lengths of a dataset: a sample for percentiles, every long example exactly."""

    sample: list[int]
    """Sorted token lengths of the prefix and the systematic sample (unbiased)."""
    seen: int
    counted: int
    maximum: int
    too_long: list[tuple[int, TokenLength]]
    """(line, length) of every example longer than max_seq_len."""
    exact: bool
    """True when every example was counted, so `sample` holds them all."""


def utf8_size(example: Example) -> int:
    """Bytes of an example's contents plus a small allowance per message for the template."""
    return sum(
        (len(m.content) if m.content.isascii() else len(m.content.encode("utf-8"))) + 16
        for m in example.messages
    )


class TokenSurvey:
    """Streams examples to a TokenCounter in a worker thread, counting only what is needed.

    Tokenizing ~100 MB takes longer than everything else lint does, so beyond the first
    EXACT_PREFIX examples only two kinds are counted: a systematic 1-in-16 sample (for
    p50/p95) and every example whose size could reach max_seq_len at SAFETY times the
    highest tokens-per-byte ratio of the prefix (for too-long findings and the maximum).
    `exact_all=True` counts everything.
    """

    def __init__(self, counter: TokenCounter, exact_all: bool = False) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.counter = counter
        self.exact_all = exact_all
        self._executor = ThreadPoolExecutor(1, "tunedeck-tokens")
        self._in_flight: list[tuple[list[tuple[int, bool, int]], Any]] = []
        self._seen = self._counted = self._maximum = 0
        self._sample: list[int] = []
        self._ratios: list[float] = []
        self._ratio: float | None = None
        self._too_long: list[tuple[int, TokenLength]] = []

    def add(self, batch: Sequence[Example]) -> None:
        """Queue a batch; blocks only to keep at most two batches in flight."""
        chosen: list[Example] = []
        meta: list[tuple[int, bool, int]] = []  # (line, in the unbiased sample, size)
        for example in batch:
            index = self._seen
            self._seen += 1
            size = utf8_size(example)
            sampled = self.exact_all or index < EXACT_PREFIX or index % SAMPLE_EVERY == 0
            if sampled or size * self._screen_ratio() * SAFETY >= self.counter.max_seq_len:
                chosen.append(example)
                meta.append((example.line, sampled, size))
        if chosen:
            if len(self._in_flight) >= _MAX_IN_FLIGHT:
                self._collect(*self._in_flight.pop(0))
            self._in_flight.append((meta, self._executor.submit(self.counter.count, chosen)))

    def finish(self) -> TokenSurveyResult:
        while self._in_flight:
            self._collect(*self._in_flight.pop(0))
        self._executor.shutdown()
        return TokenSurveyResult(
            sorted(self._sample),
            self._seen,
            self._counted,
            self._maximum,
            sorted(self._too_long, key=lambda item: item[0]),
            self.exact_all or self._seen <= EXACT_PREFIX,
        )

    def close(self) -> None:
        """Stop the worker after an early end, without waiting for queued batches."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _screen_ratio(self) -> float:
        if self._ratio is None and self._seen > EXACT_PREFIX:
            while self._in_flight:  # calibrate on the whole prefix, once
                self._collect(*self._in_flight.pop(0))
            self._ratio = max(self._ratios, default=1.0)
        return self._ratio if self._ratio is not None else 1.0

    def _collect(self, meta: list[tuple[int, bool, int]], future: Any) -> None:
        for (line, sampled, size), length in zip(meta, future.result(), strict=True):
            if length is None:
                continue  # the template refused it: the counter keeps the reason
            self._counted += 1
            self._maximum = max(self._maximum, length.tokens)
            if sampled:
                self._sample.append(length.tokens)
            if self._ratio is None and size >= _MIN_CALIBRATION_BYTES:
                self._ratios.append(length.tokens / size)
            if length.tokens > self.counter.max_seq_len:
                self._too_long.append((line, length))
