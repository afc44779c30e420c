"""`tunedeck lint` and `tunedeck split` end to end: exit codes, output, files written."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.engine.dataset_factory import varied, write_jsonl
from tui.cli import main

SAMPLES = REPO_ROOT / "sample_data"
DEFECTS = SAMPLES / "support_tickets_defects.jsonl"
CLEAN = SAMPLES / "support_tickets.jsonl"


def planted_lines() -> list[int]:
    """Line numbers from the table in support_tickets_defects.md (`| 7  | ... |`)."""
    table = (SAMPLES / "support_tickets_defects.md").read_text(encoding="utf-8")
    return [int(n) for n in re.findall(r"^\|\s*(\d+)\s*\|", table, flags=re.MULTILINE)]


def lint_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(["lint", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_defect_file_every_planted_defect_at_its_line(capsys: pytest.CaptureFixture[str]) -> None:
    expected = planted_lines()
    assert len(expected) == 10
    code = main(["lint", str(DEFECTS), "--no-tokens"])
    out = capsys.readouterr().out
    assert code == 1
    for line in expected:
        assert f"{DEFECTS}:{line}: " in out, f"no finding at planted line {line}"
    code, data = lint_json(capsys, str(DEFECTS), "--no-tokens")
    found = {f["line"] for f in data["findings"] if f["severity"] != "info"}
    assert set(expected) <= found
    by_line = {f["line"]: f["code"] for f in data["findings"] if f["line"] in expected}
    assert by_line == {
        7: "invalid-json",
        9: "no-assistant",
        12: "exact-duplicate",
        14: "off-pattern-answer",
        16: "contradiction",
        18: "length-outlier",
        20: "unknown-role",
        22: "empty-content",
        24: "off-pattern-system",
        26: "unknown-label",
    }


def test_defect_file_long_answer_is_too_long_in_tokens(
    capsys: pytest.CaptureFixture[str], tiny_model_dir: Path
) -> None:
    code, data = lint_json(
        capsys, str(DEFECTS), "--model", str(tiny_model_dir), "--max-seq-len", "2048"
    )
    assert code == 1
    too_long = [f for f in data["findings"] if f["code"] == "too-long"]
    assert [f["line"] for f in too_long] == [18]
    assert "assistant tokens" in too_long[0]["message"]


def test_clean_sample_lints_without_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = lint_json(capsys, str(CLEAN), "--no-tokens")
    assert code == 0
    assert data["format"] == "chat" and data["count"] > 100
    assert [f for f in data["findings"] if f["severity"] == "error"] == []


def test_json_output_shape(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [*varied(3), "{oops"])
    code, data = lint_json(capsys, str(path), "--no-tokens")
    assert code == 1
    assert set(data) == {"format", "count", "findings"}
    assert (data["format"], data["count"]) == ("chat", 3)
    for item in data["findings"]:
        assert {"severity", "code", "line", "message"} <= set(item)
        assert item["severity"] in {"error", "warning", "info"}
    assert {
        k: v for k, v in next(f for f in data["findings"] if f["line"] == 4).items()
        if k in ("severity", "code", "line")
    } == {"severity": "error", "code": "invalid-json", "line": 4}  # fmt: skip


@pytest.mark.parametrize("content", [b"", b"\x00\x01\x02", b"\xff\xfe\x00x"])
def test_unusable_input_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(content)
    code, data = lint_json(capsys, str(path), "--no-tokens")
    assert code == 2
    assert [f["code"] for f in data["findings"]] == ["unreadable"]


def test_missing_file_exits_2_with_a_human_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", "/nonexistent/data.jsonl", "--no-tokens"]) == 2
    out = capsys.readouterr().out
    assert "unreadable: /nonexistent/data.jsonl: no such file" in out
    assert "hint:" in out


def test_fix_writes_a_clean_copy_and_leaves_the_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "defects.jsonl"
    source.write_bytes(DEFECTS.read_bytes())
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    out = tmp_path / "clean.jsonl"
    code = main(["lint", str(source), "--no-tokens", "--fix", str(out)])
    printed = capsys.readouterr().out
    assert code == 1  # the input still has its errors
    assert hashlib.sha256(source.read_bytes()).hexdigest() == digest
    assert "kept 25, dropped 5" in printed
    for line, reason in [(7, "invalid-json"), (12, "exact-duplicate"), (20, "unknown-role")]:
        assert f"dropped line {line}: {reason}" in printed
    code, data = lint_json(capsys, str(out), "--no-tokens")
    assert code == 0
    assert not [f for f in data["findings"] if f["code"] == "exact-duplicate"]


def test_fix_refuses_the_input_as_output(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "d.jsonl", varied(3))
    assert main(["lint", str(source), "--no-tokens", "--fix", str(source)]) == 2
    assert "refusing" in capsys.readouterr().err


def test_unloadable_model_warns_and_lints_on(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", varied(60))
    code = main(["lint", str(path), "--model", str(tmp_path / "no-such-model"), "--json"])
    captured = capsys.readouterr()
    assert code == 0
    assert "warning: cannot load the tokenizer" in captured.err
    codes = [f["code"] for f in json.loads(captured.out)["findings"]]
    assert "tokens-skipped" in codes


def test_split_command_writes_the_split(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "split"
    assert main(["split", str(CLEAN), "--out", str(out), "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "train:" in printed and "leakage: none" in printed and "category" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    total = len(CLEAN.read_text().splitlines())
    assert manifest["counts"]["train"] + manifest["counts"]["val"] == total
    assert manifest["counts"]["val"] == round(total * 0.1)
    assert len((out / "val.jsonl").read_text().splitlines()) == manifest["counts"]["val"]


def test_split_command_advises_on_too_few_validation_examples(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["split", str(CLEAN), "--out", str(tmp_path / "s")]) == 0
    err = capsys.readouterr().err
    assert "note: only 14 validation examples: too few to tell models apart; hold out 0.2" in err
    assert main(["split", str(CLEAN), "--out", str(tmp_path / "t"), "--val-fraction", "0.25"]) == 0
    assert "note:" not in capsys.readouterr().err  # 34 validation examples


def test_split_zero_needs_the_flag_and_warns_loudly(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "d.jsonl", varied(20))
    assert main(["split", str(source), "--out", str(tmp_path / "a"), "--val-fraction", "0"]) == 2
    assert "--allow-no-val" in capsys.readouterr().err
    argv = ["split", str(source), "--out", str(tmp_path / "b"), "--val-fraction", "0"]
    assert main([*argv, "--allow-no-val", "--json"]) == 0
    captured = capsys.readouterr()
    assert "WARNING: NO VALIDATION SET" in captured.err
    assert json.loads(captured.out)["val_count"] == 0


def test_split_with_a_validation_file_reports_leakage(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    train = varied(30)
    source = write_jsonl(tmp_path / "train.jsonl", train)
    val = write_jsonl(tmp_path / "val.jsonl", [train[4], *varied(4, seed=5)])
    argv = ["split", str(source), "--out", str(tmp_path / "o"), "--val-file", str(val), "--json"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["leakage"]["exact"] == 1 and data["leakage"]["exact_pairs"] == [[1, 5]]


def test_lint_in_a_real_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tui.cli", "lint", str(DEFECTS), "--json", "--no-tokens"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["count"] == 26
