"""engine.data.lint.linter: every finding code with a minimal failing input and a passing twin."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from engine.data.formats import DatasetError
from engine.data.lint.linter import CODES, LintReport, lint_file, write_cleaned_copy
from tests.engine.dataset_factory import chat, varied, write_jsonl

GOOD = chat("where do i find my invoice", "open settings then billing")


def lint_records(tmp_path: Path, records: list[Any], **kwargs: Any) -> LintReport:
    return lint_file(write_jsonl(tmp_path / "data.jsonl", records), **kwargs)


def lines_of(report: LintReport, code: str) -> list[int]:
    return [f.line for f in report.findings if f.code == code]


def message_of(report: LintReport, code: str) -> str:
    return next(f.message for f in report.findings if f.code == code)


def msg(*turns: tuple[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": role, "content": content} for role, content in turns]}


# One bad record per code, and its corrected twin. The record is line 2 of a file whose
# line 1 is GOOD, so detection always sees a chat file.
OK = msg(("user", "hi"), ("assistant", "x"))
RECORD_CASES: dict[str, tuple[Any, Any]] = {
    "invalid-json": ('{"messages": [}', GOOD),
    "not-an-object": ("[1, 2]", GOOD),
    "no-format-keys": ({"text": "hello"}, GOOD),
    "messages-not-list": ({"messages": "hello"}, GOOD),
    "message-not-object": ({"messages": ["hello", {"role": "assistant", "content": "x"}]}, OK),
    "missing-role": ({"messages": [{"content": "hi"}, {"role": "assistant", "content": "x"}]}, OK),
    "missing-content": (
        {"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]},
        OK,
    ),
    "unknown-role": (msg(("user", "hi"), ("agent", "x")), OK),
    "non-string-content": (msg(("user", ["hi"]), ("assistant", "x")), OK),
    "empty-content": (msg(("user", "  "), ("assistant", "x")), OK),
    "no-assistant": (msg(("system", "s"), ("user", "hi")), OK),
    "ends-with-user": (msg(("user", "hi"), ("assistant", "x"), ("user", "and?")), OK),
    "not-utf8": (
        '{"messages": [{"role": "user", "content": "\\ud800"}, '
        '{"role": "assistant", "content": "x"}]}',
        OK,
    ),
}
ROLE_ORDER_CASES = [
    msg(("user", "a"), ("system", "s"), ("assistant", "b")),  # system not first
    msg(("user", "a"), ("user", "b"), ("assistant", "c")),  # two users in a row
    msg(("user", "a"), ("assistant", "b"), ("assistant", "c")),  # two assistants in a row
    msg(("system", "s"), ("assistant", "b"), ("user", "c"), ("assistant", "d")),  # before user
]


@pytest.mark.parametrize("code", sorted(RECORD_CASES))
def test_record_code_fails_on_its_line_and_not_on_the_twin(tmp_path: Path, code: str) -> None:
    bad, good = RECORD_CASES[code]
    failing = lint_records(tmp_path, [GOOD, bad])
    assert lines_of(failing, code) == [2]
    assert CODES[code][0] == next(f.severity for f in failing.findings if f.code == code)
    assert all(f.hint for f in failing.findings if f.code == code)
    passing = lint_records(tmp_path, [GOOD, good])
    assert lines_of(passing, code) == []
    assert passing.exit_code == 0


@pytest.mark.parametrize("record", ROLE_ORDER_CASES)
def test_role_order_variants(tmp_path: Path, record: dict[str, Any]) -> None:
    report = lint_records(tmp_path, [GOOD, record])
    assert lines_of(report, "role-order") == [2]
    assert report.exit_code == 1


def test_invalid_json_names_the_column(tmp_path: Path) -> None:
    report = lint_records(tmp_path, [GOOD, '{"messages": [] "x": 1}'])
    item = next(f for f in report.findings if f.code == "invalid-json")
    assert item.column == 17 and "column 17" in item.message


def test_not_utf8_line_bytes(tmp_path: Path) -> None:
    path = tmp_path / "bytes.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b'\n{"messages": "caf\xe9"}\n')
    report = lint_file(path)
    assert lines_of(report, "not-utf8") == [2]


def test_bad_csv_row_and_its_twin(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,completion\nq,a\nq2,a2,oops\n", encoding="utf-8")
    assert lines_of(lint_file(bad), "bad-csv-row") == [3]
    good = tmp_path / "good.csv"
    good.write_text('prompt,completion\nq,a\nq2,"a2,fine"\n', encoding="utf-8")
    assert lines_of(lint_file(good), "bad-csv-row") == []


@pytest.mark.parametrize(
    "content", [b"", b"\x00\x00binary", b"\xff\xfe\x00\x00", b'{"text": "x"}\n', b"caf\xe9\n"]
)
def test_unreadable_file_is_one_error_and_exit_2(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    report = lint_file(path)
    assert [f.code for f in report.findings] == ["unreadable"]
    assert report.exit_code == 2 and report.unreadable
    assert report.to_json() == {
        "format": "unknown",
        "count": 0,
        "findings": [report.findings[0].to_dict()],
    }


def test_blank_lines_bom_and_crlf_are_not_warnings(tmp_path: Path) -> None:
    path = tmp_path / "crlf.jsonl"
    body = "\r\n".join(json.dumps(r) for r in varied(60)) + "\r\n\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    report = lint_file(path)
    assert [f.code for f in report.findings if f.severity != "info"] == []
    assert lines_of(report, "blank-lines") == [61]


def test_clean_dataset_has_only_info(tmp_path: Path) -> None:
    report = lint_records(tmp_path, varied(80))
    assert {f.severity for f in report.findings} == {"info"}
    assert report.count == 80 and report.exit_code == 0
    assert "80 usable" in message_of(report, "summary")
    assert lines_of(report, "tokens-skipped") == [0]


def test_exact_duplicate_names_the_original(tmp_path: Path) -> None:
    records = varied(60)
    report = lint_records(tmp_path, [*records, records[3], records[3]])
    assert lines_of(report, "exact-duplicate") == [61, 62]
    assert "line 4" in message_of(report, "exact-duplicate")
    assert lines_of(lint_records(tmp_path, records), "exact-duplicate") == []


def test_near_duplicate(tmp_path: Path) -> None:
    records = varied(60)
    near = json.loads(json.dumps(records[10]))
    near["messages"][1]["content"] = near["messages"][1]["content"].upper() + " please"
    report = lint_records(tmp_path, [*records, near])
    assert lines_of(report, "near-duplicate") == [61]
    assert "line 11" in message_of(report, "near-duplicate")
    assert lines_of(report, "exact-duplicate") == []


def test_contradiction_same_prompt_different_answer(tmp_path: Path) -> None:
    records = varied(60)
    user = records[5]["messages"][1]["content"]
    twin = chat("  " + user.upper() + " ", "a completely different answer here")
    report = lint_records(tmp_path, [*records, twin])
    assert lines_of(report, "contradiction") == [61]
    assert next(f.lines for f in report.findings if f.code == "contradiction") == (6,)
    same = chat(user, records[5]["messages"][2]["content"])
    assert lines_of(lint_records(tmp_path, [*records, same]), "contradiction") == []


def test_off_pattern_answers_not_json_broken_json_other_keys(tmp_path: Path) -> None:
    records = varied(60, labels=["billing", "bug"])
    prose = chat("my card was declined at checkout", "sorry, please try another card")
    broken = chat("the export button is missing", '{"category": "bug", "reply": "we are on it"')
    keys = chat("the app logs me out", json.dumps({"category": "bug", "answer": "we will look"}))
    report = lint_records(tmp_path, [*records, prose, broken, keys])
    assert lines_of(report, "off-pattern-answer") == [61, 62, 63]
    texts = [f.message for f in report.findings if f.code == "off-pattern-answer"]
    assert "not JSON" in texts[0] and "does not parse" in texts[1]
    assert "missing reply" in texts[2] and "extra answer" in texts[2]
    assert lines_of(lint_records(tmp_path, records), "off-pattern-answer") == []


def test_off_pattern_system(tmp_path: Path) -> None:
    records = varied(60)
    reply = records[0]["messages"][2]["content"]
    other = chat("where are my old invoices kept", reply + " ahoy", system="Be a pirate.")
    none = chat("can i change my email address", reply + " yes", system=None)
    report = lint_records(tmp_path, [*records, other, none])
    assert lines_of(report, "off-pattern-system") == [61, 62]
    assert "no system prompt" in [f for f in report.findings if f.line == 62][0].message
    assert lines_of(lint_records(tmp_path, records), "off-pattern-system") == []


def test_length_outlier(tmp_path: Path) -> None:
    records = varied(60)
    long = chat("please explain sharing", "share the folder " * 300)
    report = lint_records(tmp_path, [*records, long])
    assert lines_of(report, "length-outlier") == [61]
    assert "longer" in message_of(report, "length-outlier")
    assert lines_of(lint_records(tmp_path, records), "length-outlier") == []


def test_too_few_examples(tmp_path: Path) -> None:
    assert lines_of(lint_records(tmp_path, varied(49)), "too-few-examples") == [0]
    assert lines_of(lint_records(tmp_path, varied(50)), "too-few-examples") == []


def test_label_distribution_and_imbalance(tmp_path: Path) -> None:
    balanced = varied(60, labels=["billing", "bug", "account"])
    report = lint_records(tmp_path, balanced)
    assert "billing 20, bug 20, account 20" in message_of(report, "label-distribution")
    assert lines_of(report, "label-imbalance") == []
    skewed = varied(66, labels=["billing"] * 10 + ["bug"])
    report = lint_records(tmp_path, skewed)
    assert lines_of(report, "label-imbalance") == [0]
    assert "'billing' has 60" in message_of(report, "label-imbalance")


def test_whole_answer_labels(tmp_path: Path) -> None:
    records = [
        chat(r["messages"][1]["content"], lab)
        for r, lab in zip(varied(60), ["yes", "no"] * 30, strict=True)
    ]
    report = lint_records(tmp_path, records)
    assert "the whole answer" in message_of(report, "label-distribution")


def test_unknown_label_not_listed_in_system_prompt(tmp_path: Path) -> None:
    system = "Classify the ticket as billing, bug or account and reply in JSON."
    records = varied(60, labels=["billing", "bug", "account"], system=system)
    odd = chat("i want my money back", json.dumps({"category": "refund", "reply": "ok"}), system)
    report = lint_records(tmp_path, [*records, odd])
    assert lines_of(report, "unknown-label") == [61]
    assert "'refund'" in message_of(report, "unknown-label")
    assert lines_of(lint_records(tmp_path, records), "unknown-label") == []


def test_unknown_label_singleton_without_a_listing_prompt(tmp_path: Path) -> None:
    records = varied(60, labels=["billing", "bug", "account"])
    odd = chat("i want my money back", json.dumps({"category": "biling", "reply": "ok"}))
    report = lint_records(tmp_path, [*records, odd])
    assert lines_of(report, "unknown-label") == [61]
    assert "occurs once" in message_of(report, "unknown-label")


def test_knowledge_heavy_advisory(tmp_path: Path) -> None:
    rng = random.Random(3)

    def name() -> str:
        return "".join(rng.choice(["ka", "lo", "mi", "ne", "tor", "vex", "qua"]) for _ in range(3))

    records = [
        chat(
            f"who signed treaty {i} and where",
            f"The treaty was signed by {name().title()} {name().title()} in "
            f"{name().title()} in {1500 + i}, witnessed by {name().title()}.",
        )
        for i in range(60)
    ]
    report = lint_records(tmp_path, records)
    assert lines_of(report, "knowledge-heavy") == [0]
    assert "retrieval" in next(f.hint for f in report.findings if f.code == "knowledge-heavy")
    assert lines_of(lint_records(tmp_path, varied(60)), "knowledge-heavy") == []


def test_report_json_contract(tmp_path: Path) -> None:
    report = lint_records(tmp_path, [GOOD, "{bad"])
    data = json.loads(json.dumps(report.to_json()))
    assert set(data) == {"format", "count", "findings"}
    assert data["format"] == "chat" and data["count"] == 1
    for item in data["findings"]:
        assert {"severity", "code", "line", "message", "hint"} <= set(item)
        assert item["severity"] in {"error", "warning", "info"} and item["code"] in CODES
    assert report.exit_code == 1


def test_progress_reaches_one(tmp_path: Path) -> None:
    seen: list[float] = []
    lint_records(tmp_path, varied(60), progress=seen.append)
    assert seen and seen[-1] == 1.0


def test_every_catalogued_code_is_known_to_the_report_codes() -> None:
    assert set(RECORD_CASES) | {"role-order"} <= set(CODES)
    assert all(severity in {"error", "warning", "info"} for severity, _ in CODES.values())


def test_fix_drops_error_lines_and_duplicates_and_keeps_the_input(tmp_path: Path) -> None:
    records = varied(5)
    source = write_jsonl(tmp_path / "in.jsonl", [records[0], "{bad", records[1], records[0], ""])
    before = source.read_bytes()
    result = write_cleaned_copy(source, tmp_path / "out.jsonl")
    assert source.read_bytes() == before
    assert result.kept == 2 and result.dropped == ((2, "invalid-json"), (4, "exact-duplicate"))
    assert result.blank_lines == 1 and not result.normalised
    kept = (tmp_path / "out.jsonl").read_text().splitlines()
    assert kept == [json.dumps(records[0]), json.dumps(records[1])]
    assert lint_file(tmp_path / "out.jsonl").exit_code == 0


def test_fix_refuses_to_overwrite_the_input(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [GOOD])
    with pytest.raises(DatasetError, match="refusing"):
        write_cleaned_copy(source, source)


def test_fix_of_a_json_array_writes_normalised_chat(tmp_path: Path) -> None:
    source = tmp_path / "a.json"
    row = {"instruction": "say hi", "output": "hi"}
    source.write_text(json.dumps([row, row, {"instruction": "x"}]))
    result = write_cleaned_copy(source, tmp_path / "out.jsonl")
    assert result.normalised and result.kept == 1
    assert [code for _, code in result.dropped] == ["exact-duplicate", "no-format-keys"]
    line = json.loads((tmp_path / "out.jsonl").read_text())
    assert line["messages"][1] == {"role": "assistant", "content": "hi"}


def test_progress_callback_can_cancel(tmp_path: Path) -> None:
    class Cancelled(Exception):
        pass

    def cancel(fraction: float) -> None:
        raise Cancelled

    path = write_jsonl(tmp_path / "big.jsonl", varied(2100))
    with pytest.raises(Cancelled):
        lint_file(path, progress=cancel)
