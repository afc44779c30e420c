"""engine.data.token_lengths: spliced-template counts equal apply_chat_template; truncation
detail."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

import engine.data.token_lengths as token_lengths
from engine.data.formats import Example, Message
from engine.data.lint.linter import lint_file
from engine.data.token_lengths import TokenCounter, TokenSurvey, percentile
from tests.engine.dataset_factory import chat, varied, write_jsonl


def example(*turns: tuple[str, str], line: int = 1) -> Example:
    return Example(tuple(Message(role, content) for role, content in turns), line)  # type: ignore[arg-type]


def reference_tokens(tokenizer: Any, ex: Example) -> int:
    messages = [{"role": m.role, "content": m.content} for m in ex.messages]
    return len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))


SAMPLE = [
    example(("system", "Be brief."), ("user", "hello there"), ("assistant", "hi!")),
    example(("user", "no system prompt here"), ("assistant", "the template adds one")),
    example(
        ("user", "first turn"),
        ("assistant", "first answer"),
        ("user", "  second turn with spaces  "),
        ("assistant", "second\nanswer\n"),
    ),
    example(("user", "unicode: naïve café ☕ 日本"), ("assistant", '{"category": "bug"}')),
    example(("user", "<|im_end|> in content"), ("assistant", "ok")),
]


def test_spliced_counts_equal_apply_chat_template(tiny_tokenizer: Any) -> None:
    counter = TokenCounter(tiny_tokenizer, max_seq_len=4096)
    lengths = counter.count(SAMPLE * 3)  # repeats use the cached, verified scaffold
    assert [length.tokens for length in lengths] == [
        reference_tokens(tiny_tokenizer, ex) for ex in SAMPLE * 3
    ]
    assert counter.rendered_each == 0


def test_a_template_that_trims_contents_falls_back_to_rendering(tiny_tokenizer: Any) -> None:
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = tokenizer.chat_template.replace(
        "message['content']", "message['content'] | trim"
    )
    counter = TokenCounter(tokenizer, max_seq_len=4096)
    lengths = counter.count(SAMPLE)
    assert [length.tokens for length in lengths] == [
        reference_tokens(tokenizer, ex) for ex in SAMPLE
    ]
    assert counter.rendered_each > 0


def test_truncation_cut_matches_offsets(tiny_tokenizer: Any) -> None:
    long_user = "the app crashes when I open a shared folder " * 8
    answer = "thanks, please reset your password and try again " * 6
    ex = example(("user", long_user), ("assistant", answer))
    total = reference_tokens(tiny_tokenizer, ex)
    limit = total - 20  # the cut falls inside the answer
    length = TokenCounter(tiny_tokenizer, limit).count([ex])[0]
    assert length is not None and length.tokens == total
    # Independent count: tokens whose offsets start inside the answer, at index >= limit.
    text = tiny_tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in ex.messages], tokenize=False
    )
    start = text.rindex(answer)
    offsets = tiny_tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    inside = [i for i, (s, _e) in enumerate(offsets) if start <= s < start + len(answer)]
    assert length.assistant_tokens == len(inside)
    assert length.assistant_cut == sum(1 for i in inside if i >= limit)
    assert 0 < length.assistant_cut < length.assistant_tokens


def test_whole_answer_beyond_the_limit_is_all_cut(tiny_tokenizer: Any) -> None:
    ex = example(("user", "word " * 300), ("assistant", "short answer"))
    length = TokenCounter(tiny_tokenizer, 64).count([ex])[0]
    assert length is not None
    assert length.assistant_cut == length.assistant_tokens > 0


def test_template_rejecting_a_role_is_recorded(tiny_tokenizer: Any) -> None:
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = (
        "{% if messages | selectattr('role', 'equalto', 'user') | list | length > 1 %}"
        "{{ raise_exception('Only one user turn') }}{% endif %}" + tokenizer.chat_template
    )
    counter = TokenCounter(tokenizer, 4096)
    lengths = counter.count([SAMPLE[2], SAMPLE[1]])
    assert lengths[0] is None and lengths[1] is not None
    assert list(counter.rejected.values()) == [[1]]
    assert "Only one user turn" in next(iter(counter.rejected))


def test_a_template_without_system_turn_counts_it_folded(tiny_tokenizer: Any) -> None:
    """Training folds the system text into the first user turn; the count agrees."""
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = (
        "{% if messages[0]['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}" + tokenizer.chat_template
    )
    counter = TokenCounter(tokenizer, 4096)
    lengths = counter.count(SAMPLE[:2])
    folded = [{"role": "user", "content": "Be brief.\n\nhello there"},
              {"role": "assistant", "content": "hi!"}]  # fmt: skip
    assert lengths[0] is not None and not counter.rejected
    assert lengths[0].tokens == len(tokenizer.apply_chat_template(folded, return_dict=False))


def test_tokenizer_without_template_is_refused(tiny_tokenizer: Any) -> None:
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        TokenCounter(tokenizer, 1024)


def test_survey_counts_a_sample_and_every_possibly_long_example(
    tiny_tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(token_lengths, "EXACT_PREFIX", 16)
    monkeypatch.setattr(token_lengths, "SAMPLE_EVERY", 4)
    examples = [
        example(
            ("user", f"question {i} " + "about sync " * 5),
            ("assistant", "answer " * 5),
            line=i + 1,
        )
        for i in range(100)
    ]
    examples[89] = example(("user", "long " * 400), ("assistant", "answer"), line=90)
    survey = TokenSurvey(TokenCounter(tiny_tokenizer, 256))
    for start in range(0, 100, 10):
        survey.add(examples[start : start + 10])
    result = survey.finish()
    assert not result.exact
    assert [line for line, _ in result.too_long] == [90]
    assert len(result.sample) == 16 + sum(1 for i in range(16, 100) if i % 4 == 0)
    assert result.counted < 100 and result.seen == 100
    assert result.maximum == reference_tokens(tiny_tokenizer, examples[89])


def test_survey_exact_all_counts_everything(
    tiny_tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(token_lengths, "EXACT_PREFIX", 4)
    examples = [example(("user", f"q {i}"), ("assistant", "a"), line=i + 1) for i in range(30)]
    survey = TokenSurvey(TokenCounter(tiny_tokenizer, 256), exact_all=True)
    survey.add(examples)
    result = survey.finish()
    assert result.exact and result.counted == 30
    assert result.sample == sorted(reference_tokens(tiny_tokenizer, e) for e in examples)


def test_lint_token_findings(tiny_tokenizer: Any, tmp_path: Path) -> None:
    records = varied(60)
    records.append(chat("please explain " * 60, "first open settings " * 30))
    path = write_jsonl(tmp_path / "data.jsonl", records)
    report = lint_file(path, tokenizer=tiny_tokenizer, max_seq_len=256)
    too_long = [f for f in report.findings if f.code == "too-long"]
    assert [f.line for f in too_long] == [61]
    assert "assistant tokens" in too_long[0].message or "whole answer" in too_long[0].message
    stats = report.stats.tokens
    assert stats is not None and stats.exact and stats.over == 1
    examples = [example(*((m["role"], m["content"]) for m in r["messages"])) for r in records]
    reference = sorted(reference_tokens(tiny_tokenizer, e) for e in examples)
    assert stats.max == reference[-1]
    assert stats.p50 == percentile(reference, 0.5)
    info = next(f for f in report.findings if f.code == "token-lengths")
    assert f"max {reference[-1]:,}" in info.message
    assert not [f for f in report.findings if f.code == "tokens-skipped"]


def test_lint_says_a_system_turn_is_folded(tiny_tokenizer: Any, tmp_path: Path) -> None:
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = (
        "{% if messages[0]['role'] == 'system' %}"
        "{{ raise_exception('System role not supported') }}{% endif %}" + tokenizer.chat_template
    )
    records = varied(3, system=None) + varied(2, seed=1)
    report = lint_file(write_jsonl(tmp_path / "d.jsonl", records), tokenizer=tokenizer)
    assert not [f for f in report.findings if f.code == "template-error"]
    folded = [f for f in report.findings if f.code == "template-folds-system"]
    assert len(folded) == 1 and "System role not supported" in folded[0].message


def test_lint_template_error_finding(tiny_tokenizer: Any, tmp_path: Path) -> None:
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = (
        "{% for m in messages %}{% if 'terse' in m['content'] %}"
        "{{ raise_exception('no terse prompts') }}{% endif %}{% endfor %}" + tokenizer.chat_template
    )
    records = varied(3, system=None) + varied(2, seed=1, system="Be terse.")
    report = lint_file(write_jsonl(tmp_path / "d.jsonl", records), tokenizer=tokenizer)
    errors = [f for f in report.findings if f.code == "template-error"]
    assert [(f.line, f.lines) for f in errors] == [(4, (5,))]


def test_lint_without_template_says_training_would_stop(
    tiny_tokenizer: Any, tmp_path: Path
) -> None:
    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.chat_template = None
    report = lint_file(write_jsonl(tmp_path / "d.jsonl", varied(3)), tokenizer=tokenizer)
    errors = [f for f in report.findings if f.code == "template-error"]
    assert len(errors) == 1 and "no chat template" in errors[0].message
    assert "training would stop" in errors[0].message


def test_percentile_nearest_rank() -> None:
    assert percentile([], 0.5) == 0
    assert percentile([1, 2, 3, 4], 0.5) == 2
    assert percentile([1, 2, 3, 4], 0.95) == 4
    assert percentile(list(range(1, 101)), 0.99) == 99
