"""Real detached runs on a tiny random model: complete, resume after kill -9, outlive the
process that started them, QLoRA on CPU, and an adapter that plain peft loads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.config.build import from_preset, with_overrides
from engine.core.events import iter_all_events, metric_history
from engine.runs.store import find_run, resume_run, run_info, start_run
from tests.conftest import REPO_ROOT

SAMPLE = REPO_ROOT / "sample_data" / "support_tickets.jsonl"
RUN_TIMEOUT_S = 240


@pytest.fixture
def small_data(tmp_path: Path) -> Path:
    """60 examples of the sample data: enough for a split and a few steps."""
    path = tmp_path / "tickets.jsonl"
    path.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:60]))
    return path


def tiny_config(model_dir: Path, data: Path, **changes):
    base = from_preset("quick")
    return with_overrides(
        base,
        **{
            "model": str(model_dir),
            "data.source": str(data),
            "data.val_fraction": 0.15,
            "max_steps": 24,
            "micro_batch_size": 4,
            "gradient_accumulation": 1,
            "learning_rate": 1e-2,
            "max_seq_len": 256,
            "logging_steps": 2,
            "eval_steps": 6,
            "save_steps": 6,
            "early_stopping_patience": None,
            "lora.dropout": 0.0,
            **changes,
        },
    )


def wait_for_state(run_dir: Path, states: tuple[str, ...], timeout: float = RUN_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = run_info(run_dir)
        if info.state in states:
            return info
        if info.state.startswith("failed") and not any(s.startswith("failed") for s in states):
            log = (run_dir / "worker.log").read_text()[-3000:]
            pytest.fail(f"run failed: {info.status}\n{log}")
        time.sleep(0.3)
    pytest.fail(f"run {run_dir.name} still {run_info(run_dir).state} after {timeout}s")


def train_losses(run_dir: Path) -> dict[int, float]:
    points = metric_history(list(iter_all_events(run_dir)))
    return {p["step"]: p["loss"] for p in points if p["split"] == "train"}


def test_run_completes_learns_and_leaves_a_loadable_adapter(tiny_model_dir, small_data) -> None:
    info = start_run(tiny_config(tiny_model_dir, small_data))
    done = wait_for_state(info.dir, ("completed",))
    assert done.status is not None and done.status.step == 24
    assert info.dir.stat().st_mode & 0o077 == 0  # the run directory is the user's alone

    events = list(iter_all_events(info.dir))
    losses = train_losses(info.dir)
    steps = sorted(losses)
    assert steps[0] == 2 and steps[-1] == 24
    last_three = sum(losses[s] for s in steps[-3:]) / 3
    assert last_three < losses[steps[0]] - 0.2, losses  # a random 2-layer model: ~6.2 -> ~5.9
    val = [e for e in events if e["type"] == "metric" and e["split"] == "val"]
    assert [e["step"] for e in val] == [0, 6, 12, 18, 24]
    runtime = next(e for e in events if e["type"] == "runtime")
    assert runtime["device"] == "cpu" and runtime["method"] == "lora"
    train_metric = next(e for e in events if e["type"] == "metric" and e["split"] == "train")
    for key in ("epoch", "lr", "grad_norm", "tokens_per_s", "trained_tokens", "eta_s"):
        assert key in train_metric
    assert [e["state"] for e in events if e["type"] == "state"] == [
        "queued", "running", "completed"
    ]  # fmt: skip
    # where the time went: steps, validation, checkpoints and kept adapters, within the whole
    timing = next(e for e in events if e["type"] == "timing")
    assert timing["step"] == 24 and timing["steps_s"] > 0 and timing["validation_s"] > 0
    assert timing["checkpoint_s"] > 0 and timing["adapter_s"] > 0
    parts = sum(timing[k] for k in ("steps_s", "validation_s", "checkpoint_s", "adapter_s"))
    assert parts <= timing["total_s"] + 0.05

    probe = f"""
import sys, torch
from transformers import AutoModelForCausalLM
from peft import PeftModel
base = AutoModelForCausalLM.from_pretrained({str(tiny_model_dir)!r})
ids = torch.tensor([[1, 5, 9, 13, 2]])
before = base(input_ids=ids).logits
tuned = PeftModel.from_pretrained(base, {str(info.dir / "adapter")!r})
after = tuned(input_ids=ids).logits
print((after - before).abs().max().item())
"""
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip().splitlines()[-1]) > 1e-4


def test_keep_adapter_last_keeps_the_final_weights(tiny_model_dir, small_data) -> None:
    """The final step (12) falls between validations (every 5): adapter/ still holds it."""
    from safetensors.torch import load_file

    cfg = tiny_config(tiny_model_dir, small_data, keep_adapter="last", max_steps=12,
                      eval_steps=5, save_steps=12)  # fmt: skip
    info = start_run(cfg)
    wait_for_state(info.dir, ("completed",))
    events = list(iter_all_events(info.dir))
    kept = [(e["step"], e["rule"]) for e in events if e["type"] == "kept"]
    assert kept == [(0, "last"), (5, "last"), (10, "last"), (12, "last")]
    assert any(e["type"] == "best" for e in events)  # the best loss is still reported
    final = load_file(info.dir / "checkpoints" / "checkpoint-12" / "adapter_model.safetensors")
    adapter = load_file(info.dir / "adapter" / "adapter_model.safetensors")
    assert final.keys() == adapter.keys()
    assert all(bool((final[k] == adapter[k]).all()) for k in final)


def test_kill_9_then_resume_continues_the_same_curve(tiny_model_dir, small_data) -> None:
    reference = start_run(tiny_config(tiny_model_dir, small_data))
    wait_for_state(reference.dir, ("completed",))
    expected = train_losses(reference.dir)

    crashed = start_run(tiny_config(tiny_model_dir, small_data))
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        marks = list((crashed.dir / "checkpoints").glob("checkpoint-12/tunedeck-complete.json"))
        if marks:
            break
        time.sleep(0.05)
    pid = run_info(crashed.dir).status.pid
    os.kill(pid, signal.SIGKILL)
    assert wait_for_state(crashed.dir, ("failed (worker died)", "completed")).state != (
        "completed"
    ), "the run finished before it could be killed; make it longer"

    resume_run(crashed.dir)
    wait_for_state(crashed.dir, ("completed",))
    events = list(iter_all_events(crashed.dir))
    resume = next(e for e in events if e["type"] == "resume")
    assert resume["from_step"] >= 12
    got = train_losses(crashed.dir)
    assert sorted(got) == sorted(expected)
    for step, loss in expected.items():
        assert got[step] == pytest.approx(loss, rel=1e-3, abs=1e-4), step


def test_a_run_outlives_the_process_that_started_it(tiny_model_dir, small_data, tmp_path):
    cfg_path = tmp_path / "run.toml"
    from engine.config.build import save_config

    save_config(tiny_config(tiny_model_dir, small_data, max_steps=8), cfg_path)
    starter = subprocess.run(
        [sys.executable, "-m", "tui.cli", "train", str(cfg_path), "--json"],
        capture_output=True, text=True, cwd=REPO_ROOT, env=os.environ, timeout=120,
    )  # fmt: skip
    assert starter.returncode == 0, starter.stderr
    run_id = json.loads(starter.stdout)["id"]  # the starter has exited by now
    info = wait_for_state(find_run(run_id), ("completed",))
    assert info.status.step == 8


def test_qlora_trains_on_cpu(tiny_model_dir, small_data) -> None:
    info = start_run(tiny_config(tiny_model_dir, small_data, method="qlora", max_steps=8))
    wait_for_state(info.dir, ("completed",))
    runtime = next(e for e in iter_all_events(info.dir) if e["type"] == "runtime")
    assert runtime["method"] == "qlora"
    losses = train_losses(info.dir)
    assert losses[8] < losses[2]
    assert (info.dir / "adapter" / "adapter_model.safetensors").is_file()


def test_packing_trains_whole_examples_in_fewer_fuller_steps(tiny_model_dir, small_data) -> None:
    cfg = tiny_config(tiny_model_dir, small_data, packing=True, max_steps=None, epochs=1.0,
                      micro_batch_size=1, max_seq_len=1024)  # fmt: skip
    info = start_run(cfg)
    done = wait_for_state(info.dir, ("completed",))
    runtime = next(e for e in iter_all_events(info.dir) if e["type"] == "runtime")
    sequences, examples = runtime["packed_sequences"], runtime["train_examples"]
    # the tiny tokenizer spends ~300 tokens on a ticket: 2-3 fit in 1,024
    assert 1 <= sequences <= examples / 2
    assert done.status is not None and done.status.step == sequences  # 1 a step, 1 epoch
    losses = train_losses(info.dir)
    assert losses and all(loss == loss for loss in losses.values())  # no NaN
    assert (info.dir / "adapter" / "adapter_model.safetensors").is_file()


def test_stop_request_checkpoints_then_stops(tiny_model_dir, small_data) -> None:
    from engine.runs.store import request

    info = start_run(tiny_config(tiny_model_dir, small_data, max_steps=400, eval_steps=100,
                                 save_steps=100))  # fmt: skip
    wait_for_state(info.dir, ("running",))
    while run_info(info.dir).status.step < 3:
        time.sleep(0.1)
    request(info.dir, "stop")
    stopped = wait_for_state(info.dir, ("stopped",))
    step = stopped.status.step
    assert 3 <= step < 400
    assert (info.dir / "checkpoints" / f"checkpoint-{step}" / "tunedeck-complete.json").is_file()


def test_two_processes_train_with_ddp_on_cpu(tiny_model_dir, small_data) -> None:
    """num_processes=2 goes through torchrun (gloo on CPU): the multi-GPU path, proven here."""
    info = start_run(tiny_config(tiny_model_dir, small_data, num_processes=2, max_steps=6,
                                 eval_steps=3, save_steps=3))  # fmt: skip
    done = wait_for_state(info.dir, ("completed",))
    assert done.status.step == 6
    events = list(iter_all_events(info.dir))
    # Only rank 0 speaks: one "running" state, one runtime record, one metric per step.
    assert [e["state"] for e in events if e["type"] == "state"] == [
        "queued", "running", "completed"
    ]  # fmt: skip
    runtimes = [e for e in events if e["type"] == "runtime"]
    assert len(runtimes) == 1 and runtimes[0]["processes"] == 2
    assert sorted(train_losses(info.dir)) == [2, 4, 6]
    assert (info.dir / "checkpoints" / "checkpoint-6" / "tunedeck-complete.json").is_file()


def test_a_run_without_validation_set_trains_and_says_so(tiny_model_dir, small_data) -> None:
    cfg = tiny_config(
        tiny_model_dir,
        small_data,
        max_steps=4,
        **{"data.source": None, "data.train": str(small_data)},
    )
    info = start_run(cfg)
    wait_for_state(info.dir, ("completed",))
    events = list(iter_all_events(info.dir))
    data = next(e for e in events if e["type"] == "data")
    assert data["val_examples"] == 0 and any("NO VALIDATION" in w for w in data["warnings"])
    assert not [e for e in events if e["type"] == "metric" and e["split"] == "val"]
    assert sorted(train_losses(info.dir)) == [2, 4]
