"""The loop with the CLI alone, on a tiny run: answer a prompt pool, review it (accept,
correct, import), grow the data (provenance, no leak, idempotent), train `--like`, fix a
wrong reference and keep the split."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from engine.data.formats import load_examples
from engine.eval.sets import read_split, set_name_for
from engine.runs.store import start_run
from tests.integration.test_training import SAMPLE, tiny_config, wait_for_state
from tui.cli import main

POOL = SAMPLE.parent / "support_tickets_pool.jsonl"
FAST = ["--max-new-tokens", "8", "--no-probes", "--batch-size", "4"]
RIGHT = '{"category": "billing", "reply": "Your invoice is under Settings > Billing."}'


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "tickets.jsonl"
    path.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:60]))
    return path


@pytest.fixture(scope="module")
def trained(tiny_model_dir: Path, data_file: Path, home: Path) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNEDECK_HOME", str(home))
        info = start_run(tiny_config(tiny_model_dir, data_file, max_steps=6))
        wait_for_state(info.dir, ("completed",))
    return info.dir


@pytest.fixture
def run(trained: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TUNEDECK_HOME", str(home))
    return trained


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory, trained: Path) -> Path:
    """Five pool tickets, then one that repeats a validation ticket of the run."""
    lines = POOL.read_text().splitlines()[:5]
    leaked = read_split(trained, "val")[0]
    turns = [{"role": m.role, "content": m.content} for m in leaked.messages]
    record = {"messages": [t for t in turns if t["role"] != "assistant"]}
    path = tmp_path_factory.mktemp("pool") / "pool.jsonl"
    path.write_text("\n".join([*lines, json.dumps(record)]) + "\n")
    return path


def test_the_loop_from_the_command_line(run: Path, pool: Path, tmp_path: Path, capsys) -> None:
    before = {p: sha(p) for p in (pool, SAMPLE)}
    assert main(["eval", run.name, "--data", str(pool), *FAST]) == 0
    out, err = capsys.readouterr()
    assert "no references: review to score" in out
    assert "a prompt pool: answered by the fine-tuned model" in err
    assert "line 6: the same prompt as line" in err and "of the validation split" in err

    # Review: accept 1, correct 2 (JSON, as the training answers are), refuse a bad one.
    assert main(["review", run.name, "--data", str(pool), "--accept", "1"]) == 0
    fix = ["review", run.name, "--data", str(pool), "--correct", "2", "--answer"]
    assert main([*fix, "billing, I think"]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    odd = '{"category": "billing", "reply": "ok", "tone": "calm"}'
    assert main([*fix, odd]) == 0
    assert "key 'tone' is in no training answer" in capsys.readouterr().err
    assert main([*fix, RIGHT]) == 0
    actions = tmp_path / "review.jsonl"
    actions.write_text('{"index": 3, "mark": "bad"}\n{"index": 99, "accept": true}\n')
    assert main(["review", run.name, "--data", str(pool), "--import", str(actions)]) == 2
    assert "line 2: no example #99" in capsys.readouterr().err  # nothing applied
    actions.write_text('{"index": 3, "mark": "bad", "note": "wrong"}\n{"index": 6, "accept": 1}\n')
    assert main(["review", run.name, "--data", str(pool), "--import", str(actions)]) == 0
    capsys.readouterr()
    assert main(["review", run.name, "--data", str(pool), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [item["verdict"] for item in listing] == ["accepted", "corrected", None, None, None,
                                                     "accepted"]  # fmt: skip
    assert listing[1]["corrected"] == RIGHT and listing[2]["mark"] == "bad"

    # Grow the data: the run's training data + 2 added, the leaked prompt refused.
    grown = tmp_path / "grown.jsonl"
    assert main(["data", "add", run.name, "--data", str(pool), "--out", str(grown)]) == 0
    out = capsys.readouterr().out
    train = read_split(run, "train")
    assert f"{len(train)} training examples of the run + 2 added (1 accepted, 1 corrected)" in out
    assert "refused #6 (line 6): the same prompt as line" in out and "leak" in out
    assert "lint: " in out and "next: tunedeck train --data" in out
    records = [json.loads(line) for line in grown.read_text().splitlines()]
    assert len(records) == len(train) + 2
    added = records[-2:]
    assert [r["meta"]["how"] for r in added] == ["accepted", "corrected"]
    assert added[1]["messages"][-1] == {"role": "assistant", "content": RIGHT}
    name = set_name_for(run, str(pool))
    assert added[0]["meta"] == {"run": run.name, "set": name, "source": str(pool.resolve()),
                                "line": 1, "index": 0, "how": "accepted"}  # fmt: skip
    assert load_examples(grown).examples[-1].meta["how"] == "corrected"  # read, not trained

    # Again: refused without --force; with it the same file (adding twice is a no-op).
    again = ["data", "add", run.name, "--data", str(pool), "--out", str(grown)]
    assert main(again) == 2 and "exists" in capsys.readouterr().err
    first = grown.read_bytes()
    assert main([*again, "--force"]) == 0
    assert grown.read_bytes() == first
    capsys.readouterr()
    assert main(["data", "add", run.name, "--data", str(SAMPLE), "--out", str(tmp_path / "x")]) == 2
    assert {p: sha(p) for p in (pool, SAMPLE)} == before  # inputs never written

    # The next run: the previous configuration, the new data.
    assert main(["train", "--data", str(grown), "--like", run.name, "--max-steps", "2",
                 "--json"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert captured.out, captured.err
    started = json.loads(captured.out)
    new_cfg = (Path(started["dir"]) / "config.toml").read_text()
    old_cfg = (run / "config.toml").read_text()
    assert str(grown) in new_cfg and "micro_batch_size = 4" in new_cfg
    assert old_cfg.count("learning_rate = 0.01") == new_cfg.count("learning_rate = 0.01") == 1
    wait_for_state(Path(started["dir"]), ("completed", "failed"))


def test_a_wrong_reference_is_fixed_in_a_copy_that_keeps_the_split(
    run: Path, data_file: Path, tmp_path: Path, capsys
) -> None:
    val = read_split(run, "val")
    wrong = json.loads(val[0].answer)
    new_category = "outage" if wrong["category"] != "outage" else "billing"
    right = json.dumps({"category": new_category, "reply": wrong["reply"]})
    assert main(["review", run.name, "--fix-reference", "1", "--answer", right]) == 0
    fixed = tmp_path / "fixed.jsonl"
    assert main(["data", "fix", run.name, "--out", str(fixed)]) == 0
    out = capsys.readouterr().out
    manifest = json.loads((run / "data" / "manifest.json").read_text())
    line = manifest["val_lines"][0]
    assert f"line(s) {line} corrected" in out
    old, new = data_file.read_text().splitlines(), fixed.read_text().splitlines()
    assert [i + 1 for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b] == [line]
    assert json.loads(new[line - 1])["messages"][-1]["content"] == right

    assert main(["train", "--data", str(fixed), "--like", run.name, "--max-steps", "2",
                 "--json"]) == 0  # fmt: skip
    out, err = capsys.readouterr()
    assert f"keeping run {run.name}'s split" in err
    again = Path(json.loads(out)["dir"])
    kept = json.loads((again / "data" / "manifest.json").read_text())
    assert kept["val_lines"] == manifest["val_lines"]  # every example on its old side
    assert kept["train_lines"] == manifest["train_lines"]
    assert read_split(again, "val")[0].answer == right
    wait_for_state(again, ("completed", "failed"))
