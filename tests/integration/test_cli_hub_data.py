"""`tunedeck lint` and `tunedeck train` on a hub dataset (a hand-made offline cache): the
syntax in --help, file:row findings, a clear error without a traceback, and a run that
freezes its first rows and records the dataset's commit."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from engine.core.layout import CONFIG_FILE, DATA_DIR, MANIFEST_FILE
from tests.engine.hub_cache import COMMIT, make_hub_dataset, offline_hf_home, qa_rows, write_parquet
from tui.cli import main

QA = "prompt=question,response=answer"
SHARD = "data/train-00001-of-00002.parquet"


@pytest.fixture
def qa_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = offline_hf_home(tmp_path, monkeypatch)
    snapshot = make_hub_dataset(home, "acme/qa")
    write_parquet(snapshot / "data/train-00000-of-00002.parquet", qa_rows(500))
    rows = qa_rows(500, 500)
    rows[311]["answer"] = ""
    write_parquet(snapshot / SHARD, rows)
    return snapshot


def test_help_spells_the_hub_syntax(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["lint"], ["train"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "ORG/NAME[:CONFIG][@REVISION][[SPLIT]]" in out
        assert "--limit N" in out and "--columns MAP" in out


def test_lint_a_hub_dataset_names_file_and_row(
    qa_hub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lint", "acme/qa", "--columns", QA, "--no-tokens"]) == 1
    out = capsys.readouterr().out
    assert f"  {SHARD}:row 312: empty-content: " in out
    assert main(["lint", "acme/qa", "--columns", QA, "--no-tokens", "--json"]) == 1
    findings = json.loads(capsys.readouterr().out)["findings"]
    [empty] = [f for f in findings if f["code"] == "empty-content"]
    assert (empty["line"], empty["place"]) == (812, f"{SHARD}:row 312")
    assert main(["lint", "acme/qa", "--columns", QA, "--no-tokens", "--limit", "300"]) == 0


def test_errors_are_messages_not_tracebacks(
    qa_hub: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lint", "acme/elsewhere", "--no-tokens"]) == 2
    out = capsys.readouterr().out
    assert "hub dataset 'acme/elsewhere' is not in the local Hugging Face cache" in out
    assert main(["lint", "acme/qa", "--no-tokens", "--columns", "prompt=q,response=answer"]) == 2
    assert "no column 'q' (columns: question, answer, id)" in capsys.readouterr().out
    assert main(["train", "--data", "acme/qa[test]", "--columns", QA]) == 2
    err = capsys.readouterr().err
    assert "no split 'test' (splits: train)" in err and "Traceback" not in err


def test_train_freezes_the_first_rows_and_records_the_commit(
    qa_hub: Path,
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("engine.runs.store.start_worker", lambda run_dir: 0)  # no training
    args = ["--data", "acme/qa", "--limit", "200", "--columns", QA, "--model", str(tiny_model_dir)]
    assert main(["train", *args, "--json"]) == 0
    run_dir = Path(json.loads(capsys.readouterr().out)["dir"])
    data = tomllib.loads((run_dir / CONFIG_FILE).read_text())["data"]
    assert data["source"] == f"acme/qa@{COMMIT}[train]"
    assert (data["limit"], data["columns"]) == (200, QA)
    manifest = json.loads((run_dir / DATA_DIR / MANIFEST_FILE).read_text())
    assert manifest["counts"]["train"] + manifest["counts"]["val"] == 200
    assert manifest["source"]["hub"]["commit"] == COMMIT
    # The frozen config repeats the run: the same commit, the same 200 rows.
    assert main(["train", str(run_dir / CONFIG_FILE), "--json"]) == 0
    again = Path(json.loads(capsys.readouterr().out)["dir"])
    assert (again / DATA_DIR / "train.jsonl").read_text() == (
        run_dir / DATA_DIR / "train.jsonl"
    ).read_text()
