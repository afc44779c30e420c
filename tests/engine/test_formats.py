"""engine.data.formats: detection, normalisation and line numbers for every format and container."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from engine.data.formats import (
    DatasetError,
    Example,
    Message,
    detect_container,
    detect_format,
    iter_records,
    load_examples,
    sha256_file,
    write_chat_jsonl,
)
from tests.engine.dataset_factory import chat, write_jsonl

CHAT = chat("How do I reset my password?", "Use the reset link.", system="Be brief.")
EXPECTED = (
    Message("system", "Be brief."),
    Message("user", "How do I reset my password?"),
    Message("assistant", "Use the reset link."),
)
SHAREGPT = {
    "conversations": [
        {"from": "system", "value": "Be brief."},
        {"from": "human", "value": "How do I reset my password?"},
        {"from": "gpt", "value": "Use the reset link."},
    ]
}
ALPACA = {
    "system": "Be brief.",
    "instruction": "How do I reset my password?",
    "input": "",
    "output": "Use the reset link.",
}
PROMPT_COMPLETION = {
    "system": "Be brief.",
    "prompt": "How do I reset my password?",
    "completion": "Use the reset link.",
}


@pytest.mark.parametrize(
    ("record", "fmt"),
    [
        (CHAT, "chat"),
        (SHAREGPT, "sharegpt"),
        (ALPACA, "alpaca"),
        (PROMPT_COMPLETION, "prompt_completion"),
    ],
)
def test_each_jsonl_format_is_detected_and_normalised(tmp_path: Path, record, fmt: str) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", [record, record])
    assert detect_format(path) == fmt
    assert detect_container(path) == "jsonl"
    loaded = load_examples(path)
    assert loaded.format == fmt
    assert [e.messages for e in loaded.examples] == [EXPECTED, EXPECTED]
    assert [e.line for e in loaded.examples] == [1, 2]


def test_alpaca_input_is_appended_to_the_instruction(tmp_path: Path) -> None:
    record = {"instruction": "Translate to French.", "input": "good morning", "output": "bonjour"}
    example = load_examples(write_jsonl(tmp_path / "a.jsonl", [record])).examples[0]
    assert example.messages == (
        Message("user", "Translate to French.\n\ngood morning"),
        Message("assistant", "bonjour"),
    )


def test_sharegpt_with_role_content_spelling_and_multi_turn(tmp_path: Path) -> None:
    record = {
        "conversations": [
            {"role": "user", "content": "hi"},
            {"from": "gpt", "value": "hello"},
            {"from": "human", "value": "bye"},
            {"from": "gpt", "value": "see you"},
        ]
    }
    example = load_examples(write_jsonl(tmp_path / "s.jsonl", [record])).examples[0]
    assert [m.role for m in example.messages] == ["user", "assistant", "user", "assistant"]
    assert example.answer == "see you"


def test_json_array_alpaca_uses_element_index_as_line(tmp_path: Path) -> None:
    records = [ALPACA, {**ALPACA, "output": "Open settings."}, ALPACA]
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    assert detect_container(path) == "json"
    assert detect_format(path) == "alpaca"
    loaded = load_examples(path)
    assert [e.line for e in loaded.examples] == [1, 2, 3]
    assert loaded.examples[1].answer == "Open settings."


def test_json_array_syntax_error_is_reported_at_its_element(tmp_path: Path) -> None:
    good = json.dumps(ALPACA)
    path = tmp_path / "broken.json"
    path.write_text(f'[{good},\n {good},\n {{"instruction": "x" "output": "y"}}]')
    records = list(iter_records(path))
    assert [r.line for r in records] == [1, 2, 3]
    assert records[0].example is not None and records[1].example is not None
    assert records[2].problems[0].code == "invalid-json"
    assert "element 3" in records[2].problems[0].message


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_csv_prompt_completion_with_multiline_cell_keeps_file_lines(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "data.csv",
        ["prompt", "completion"],
        [["first\nquestion", "answer one"], ["second question", "answer two"]],
    )
    assert detect_container(path) == "csv"
    assert detect_format(path) == "prompt_completion"
    loaded = load_examples(path)
    # Header is line 1; the first row spans lines 2-3, so the second row starts on line 4.
    assert [e.line for e in loaded.examples] == [2, 4]
    assert loaded.examples[0].messages[0] == Message("user", "first\nquestion")


def test_csv_alpaca_and_chat_with_json_cell(tmp_path: Path) -> None:
    alpaca = _write_csv(
        tmp_path / "a.csv", ["instruction", "input", "output"], [["say hi", "", "hi"]]
    )
    assert load_examples(alpaca).examples[0].messages == (
        Message("user", "say hi"),
        Message("assistant", "hi"),
    )
    messages = json.dumps(CHAT["messages"])
    chat_csv = _write_csv(tmp_path / "c.csv", ["messages"], [[messages]])
    assert load_examples(chat_csv).format == "chat"
    assert load_examples(chat_csv).examples[0].messages == EXPECTED


def test_csv_row_with_wrong_field_count_is_a_record_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("prompt,completion\nq1,a1\nq2,a2,extra\n", encoding="utf-8")
    records = list(iter_records(path))
    assert records[0].example is not None
    assert records[1].line == 3 and records[1].problems[0].code == "bad-csv-row"


def test_parquet_chat_and_alpaca(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    chat_path = tmp_path / "chat.parquet"
    pq.write_table(pa.Table.from_pylist([CHAT, CHAT, CHAT]), chat_path)
    assert detect_container(chat_path) == "parquet"
    assert detect_format(chat_path) == "chat"
    loaded = load_examples(chat_path)
    assert [e.line for e in loaded.examples] == [1, 2, 3]
    assert loaded.examples[0].messages == EXPECTED
    alpaca_path = tmp_path / "alpaca.parquet"
    pq.write_table(pa.Table.from_pylist([ALPACA]), alpaca_path)
    assert load_examples(alpaca_path).examples[0].messages == EXPECTED


def test_bom_and_crlf_read_like_plain_lines(tmp_path: Path) -> None:
    plain = write_jsonl(tmp_path / "plain.jsonl", [CHAT, CHAT])
    crlf = write_jsonl(tmp_path / "crlf.jsonl", [CHAT, CHAT], newline="\r\n")
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + crlf.read_bytes())
    expected = load_examples(plain).examples
    for path in (crlf, bom):
        loaded = load_examples(path)
        assert loaded.examples == expected
        assert not loaded.problems and not loaded.skipped_lines


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "b.jsonl", [CHAT, "", "   ", CHAT])
    loaded = load_examples(path)
    assert [e.line for e in loaded.examples] == [1, 4]
    assert loaded.blank_lines == [2, 3]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "empty"),
        (b"\n\n  \n", "only blank lines"),
        (b"\x00\x01\x02binary\x00", "binary"),
        (b"\xff\xfe{\x00}\x00", "UTF-16"),
        ('{"messages": "caf\xe9"}\n'.encode("latin-1"), "not UTF-8"),
        (b'{"text": "no known keys"}\n', "not a dataset format"),
    ],
)
def test_unusable_files_raise_one_clear_error(
    tmp_path: Path, content: bytes, fragment: str
) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    with pytest.raises(DatasetError) as error:
        iter_records(path)
    assert fragment in error.value.message
    assert error.value.hint
    assert error.value.exit_code == 2


def test_missing_path_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        load_examples(tmp_path / "nope.jsonl")
    with pytest.raises(DatasetError, match="is a directory"):
        load_examples(tmp_path)


def test_a_late_non_utf8_line_is_a_line_problem(tmp_path: Path) -> None:
    good = json.dumps(CHAT).encode()
    path = tmp_path / "late.jsonl"
    # Past the first 64 KiB the reader meets the bad byte while streaming.
    path.write_bytes(good + b"\n" + (good + b"\n") * 400 + b'{"messages": "\xff"}\n')
    records = list(iter_records(path))
    assert records[-1].problems[0].code == "not-utf8"
    assert records[-1].line == 402


def test_format_override_alias_and_unknown_name(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [PROMPT_COMPLETION])
    assert iter_records(path, "prompt-completion").format == "prompt_completion"
    with pytest.raises(DatasetError, match="unknown dataset format"):
        iter_records(path, "yaml")
    forced = list(iter_records(path, "chat"))
    assert forced[0].problems[0].code == "no-format-keys"
    assert "looks like prompt_completion" in forced[0].problems[0].message


def test_majority_format_wins_and_the_odd_record_is_flagged(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mixed.jsonl", [CHAT, ALPACA, CHAT])
    stream = iter_records(path)
    assert stream.format == "chat"
    records = list(stream)
    assert records[1].example is None and records[1].problems[0].code == "no-format-keys"


def test_write_chat_jsonl_round_trips(tmp_path: Path) -> None:
    examples = [
        Example(EXPECTED, 1),
        Example((Message("user", "naïve ☕"), Message("assistant", "ok")), 7),
    ]
    out = tmp_path / "out.jsonl"
    assert write_chat_jsonl(examples, out) == 2
    lines = out.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[1]) == {
        "messages": [
            {"role": "user", "content": "naïve ☕"},
            {"role": "assistant", "content": "ok"},
        ]
    }
    assert [e.messages for e in load_examples(out).examples] == [e.messages for e in examples]
    assert not list(tmp_path.glob(".out.jsonl.tmp-*"))


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc" * 1000)
    assert sha256_file(path) == hashlib.sha256(b"abc" * 1000).hexdigest()
