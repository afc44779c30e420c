"""`tunedeck train / runs / attach / stop / pause / resume` as a user types them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.integration.test_training import SAMPLE, wait_for_state
from tui.cli import main


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_no_runs_yet(capsys) -> None:
    assert main(["runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["runs"]) == 0
    assert "no runs yet" in capsys.readouterr().out


def test_train_without_data_is_a_clear_error() -> None:
    result = cli("train", "--max-steps", "2")
    assert result.returncode == 2
    assert "error: no training data" in result.stderr and "Traceback" not in result.stderr


def test_train_with_a_bad_option_value_names_the_field() -> None:
    result = cli("train", "--data", str(SAMPLE), "--set", "lora.r=-4")
    assert result.returncode == 2
    assert "lora.r" in result.stderr and "Traceback" not in result.stderr


def test_headless_train_follow_then_list_attach_and_refuse_stop(tiny_model_dir: Path) -> None:
    result = cli(
        "train", "--data", str(SAMPLE), "--model", str(tiny_model_dir), "--max-steps", "4",
        "--set", "logging_steps=1", "--set", "eval_steps=2", "--set", "save_steps=2",
        "--set", "max_seq_len=256", "--follow",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.splitlines()[0]
    assert "step 4" in result.stdout and "val_loss" in result.stdout
    assert result.stdout.rstrip().endswith("[completed]")

    listing = json.loads(cli("runs", "--json").stdout)
    assert [r["id"] for r in listing] == [run_id]
    run = listing[0]
    assert run["state"] == "completed" and run["step"] == 4 and run["max_steps"] == 4
    assert Path(run["dir"], "config.toml").is_file()

    table = cli("runs").stdout
    assert run_id in table and "completed" in table and "4/4" in table

    attach = cli("attach", run_id[:15])
    assert attach.returncode == 0 and "[completed]" in attach.stdout

    stop = cli("stop", run_id)
    assert stop.returncode == 2 and "needs a running worker" in stop.stderr
    resume = cli("resume", run_id)
    assert resume.returncode == 2 and "completed" in resume.stderr


def test_pause_then_resume_finishes_the_run(tiny_model_dir: Path) -> None:
    started = cli(
        "train", "--data", str(SAMPLE), "--model", str(tiny_model_dir), "--max-steps", "120",
        "--set", "eval_steps=100", "--set", "save_steps=100", "--set", "max_seq_len=256",
        "--set", "micro_batch_size=2", "--json",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    info = json.loads(started.stdout)
    run_dir = Path(info["dir"])
    wait_for_state(run_dir, ("running",))
    assert cli("pause", info["id"]).returncode == 0
    paused = wait_for_state(run_dir, ("paused",))
    step = paused.status.step
    assert step < 120
    assert (run_dir / "checkpoints" / f"checkpoint-{step}" / "tunedeck-complete.json").is_file()

    resumed = cli("resume", info["id"], "--follow", timeout=400)
    assert resumed.returncode == 0, resumed.stderr
    assert f"from_step={step}" in resumed.stdout and "[completed]" in resumed.stdout


def test_preset_intervals_are_sized_to_the_data(tiny_model_dir: Path) -> None:
    """A small dataset with the preset's fixed intervals would see no validation point."""
    result = cli(
        "train", "--data", str(SAMPLE), "--model", str(tiny_model_dir), "--max-steps", "8",
        "--set", "max_seq_len=256", "--follow",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    val_lines = [
        line
        for line in result.stdout.splitlines()
        if line.startswith("step ") and "val_loss" in line
    ]
    assert len(val_lines) == 3  # before step 1, at 4 and at 8 (below)
    assert "[data] 124 train / 14 validation examples" in result.stdout
    from engine.config.build import load_config
    from engine.runs.store import find_run

    run_dir = find_run(result.stdout.splitlines()[0])
    cfg = load_config(run_dir / "config.toml")
    # 14 validation examples at each of 8 four-example steps would take most of the run:
    # validation every 4 steps; one checkpoint, at the last (a short run: the kept adapter
    # is saved on its own at each better validation)
    assert (cfg.eval_steps, cfg.save_steps) == (4, 8)
    assert "eval_steps = 4  (2 validation points over the run: more would take over 12%" in (
        result.stdout
    )
    assert "save_steps = 8  (the last step only: the run is short" in result.stdout
    assert any(line.startswith("[time] ") and "% in optimizer steps" in line
               for line in result.stdout.splitlines())  # fmt: skip
    # the rest of the recipe too: a small batch for 124 examples, each value with its reason
    assert (cfg.micro_batch_size, cfg.gradient_accumulation) == (4, 1)
    assert "[recipe] chosen for this data and model" in result.stdout
    assert "gradient_accumulation = 1  (effective batch 4: 124 examples" in result.stdout
    text = (run_dir / "config.toml").read_text()
    assert "# chosen for this data and model: effective batch 4" in text
    assert "max_steps" not in [line.split(" = ")[0] for line in result.stdout.splitlines()]
