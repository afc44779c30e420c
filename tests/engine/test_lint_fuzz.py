"""Fuzz: whatever bytes or JSON a file holds, lint returns a report and never raises."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.data.formats import DatasetError
from engine.data.lint.linter import CODES, LintReport, lint_file, write_cleaned_copy

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
roles = st.sampled_from(["system", "user", "assistant", "human", "gpt", "tool", "", None, 3])
contents = st.one_of(st.text(max_size=30), st.none(), st.integers(), st.lists(st.text(max_size=5)))
messages = st.lists(
    st.fixed_dictionaries(
        {}, optional={"role": roles, "content": contents, "from": roles, "value": contents}
    ),
    max_size=5,
)
records = st.one_of(
    json_values,
    st.builds(lambda m: {"messages": m}, messages),
    st.builds(lambda m: {"conversations": m}, messages),
    st.fixed_dictionaries({}, optional=dict.fromkeys(["instruction", "input", "output"], contents)),
    st.fixed_dictionaries({}, optional=dict.fromkeys(["prompt", "completion"], contents)),
)


def check(report: LintReport) -> None:
    assert report.exit_code in (0, 1, 2)
    data = json.loads(json.dumps(report.to_json()))
    assert set(data) == {"format", "count", "findings"}
    assert all(item["code"] in CODES for item in data["findings"])
    assert all(isinstance(item["line"], int) and item["line"] >= 0 for item in data["findings"])


def lint_bytes(content: bytes, suffix: str, tokenizer: Any = None) -> LintReport:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data{suffix}"
        path.write_bytes(content)
        report = lint_file(path, tokenizer=tokenizer, max_seq_len=64)
        try:  # --fix must not crash either: it raises DatasetError or writes a copy
            write_cleaned_copy(path, Path(tmp) / "clean.jsonl")
        except DatasetError:
            assert report.unreadable
        return report


@FUZZ
@given(
    content=st.binary(max_size=400), suffix=st.sampled_from([".jsonl", ".json", ".csv", ".parquet"])
)
def test_random_bytes(content: bytes, suffix: str) -> None:
    check(lint_bytes(content, suffix))


@FUZZ
@given(lines=st.lists(json_values, min_size=1, max_size=8), crlf=st.booleans())
def test_random_json_lines(lines: list[Any], crlf: bool) -> None:
    text = ("\r\n" if crlf else "\n").join(json.dumps(v) for v in lines)
    check(lint_bytes(text.encode(), ".jsonl"))


@FUZZ
@given(items=st.lists(records, min_size=1, max_size=10), as_array=st.booleans())
def test_random_records(items: list[Any], as_array: bool) -> None:
    if as_array:
        content = json.dumps(items).encode()
        suffix = ".json"
    else:
        content = "\n".join(json.dumps(v) for v in items).encode()
        suffix = ".jsonl"
    check(lint_bytes(content, suffix))


@FUZZ
@given(text=st.text(max_size=300))
def test_random_text_as_csv_and_jsonl(text: str) -> None:
    check(lint_bytes(text.encode("utf-8", "surrogatepass"), ".csv"))
    check(lint_bytes(text.encode("utf-8", "surrogatepass"), ".jsonl"))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(items=st.lists(records, min_size=1, max_size=6))
def test_random_records_with_token_counting(tiny_tokenizer: Any, items: list[Any]) -> None:
    content = "\n".join(json.dumps(v) for v in items).encode()
    check(lint_bytes(content, ".jsonl", tiny_tokenizer))
