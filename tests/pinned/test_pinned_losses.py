"""Per-step losses of a seeded tiny LoRA run, pinned the way torchtune's recipe tests do.

A real run (`create_run`, then the worker's `run_worker` in this process) of the suite's
tiny random Llama on the first 40 sample tickets: 8 optimizer steps of 2 x 2 examples,
a loss logged every step and a validation loss at steps 0, 4 and 8, read back from the
run's events.jsonl. Once as is, once with packing (15 sequences of up to 1,024 tokens).

Tolerance: rtol = atol = 1e-5 (about 7e-5 on a loss of 6.1). On this CPU the values
repeat bit for bit, run to run and with 1 or 2 torch threads; the margin is for other
CPUs' float32 kernels. torchtune's rtol of 1e-4 would be too loose here: the tiny
model's losses move only ~3 % in 8 steps, so a 1 % change of the learning rate moves
them by at most 8.8e-5 relative (measured), which 1e-4 lets through and 1e-5 catches.

Pinned on CPU in float32: CUDA kernels give other numbers, so the test skips there.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch

from engine.config.build import TrainConfig, with_overrides
from engine.core.events import iter_all_events, metric_history
from engine.runs.store import create_run
from engine.train.worker import run_worker
from tests.conftest import REPO_ROOT

SAMPLE = REPO_ROOT / "sample_data" / "support_tickets.jsonl"
RTOL = ATOL = 1e-5
STEPS = list(range(1, 9))
VAL_STEPS = [0, 4, 8]

# Loss after each optimizer step 1..8, and validation loss at steps 0, 4, 8.
EXPECTED: dict[str, dict[str, list[float]]] = {
    "lora": {
        "train": [6.2626376, 6.2439556, 6.1940317, 6.1120100,
                  6.0832806, 6.0818887, 6.0771890, 6.0910563],
        "val": [6.2495079, 6.0986338, 6.0876675],
    },
    "lora-packed": {
        "train": [6.2416372, 6.2558155, 6.1916652, 6.1119270,
                  6.0947294, 6.0784883, 6.0811853, 6.0708003],
        "val": [6.2495079, 6.0961294, 6.0860262],
    },
}  # fmt: skip

# What the worker reports about the data and the model (its `runtime` event).
EXPECTED_RUNTIME = {
    "lora": {"train_examples": 32, "packed_sequences": None, "val_examples": 8},
    "lora-packed": {"train_examples": 32, "packed_sequences": 15, "val_examples": 8},
}

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available(), reason="losses are pinned on CPU in float32"
)


@pytest.fixture(autouse=True)
def worker_in_this_process():
    """run_worker installs SIGTERM/SIGHUP handlers: give pytest its own back.

    One torch thread meanwhile: the values are the same with 1 or 2 (checked), and the
    tiny matrices gain nothing from a second thread on a CPU other jobs share.
    """
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def pinned_config(model_dir: Path, data: Path, packing: bool) -> TrainConfig:
    """Every field that decides the losses, set here (not taken from a default or preset)."""
    return with_overrides(
        TrainConfig(),
        **{
            "model": str(model_dir),
            "method": "lora",
            "data.source": str(data),
            "data.val_fraction": 0.2,
            "data.split_seed": 42,
            "lora.r": 8,
            "lora.alpha": 16,
            "lora.dropout": 0.0,
            "lora.target_modules": ["all-linear"],
            "learning_rate": 1e-2,
            "epochs": 1.0,
            "max_steps": 8,
            "micro_batch_size": 2,
            "gradient_accumulation": 2,  # pins the loss normalisation across micro-batches
            "max_seq_len": 1024,  # examples are 300-430 tiny-tokenizer tokens: 2-3 per pack
            "warmup_ratio": 0.03,
            "scheduler": "cosine",
            "weight_decay": 0.0,
            "max_grad_norm": 1.0,
            "logging_steps": 1,
            "eval_steps": 4,
            "save_steps": 100,  # no checkpoint: not needed, and it costs time
            "early_stopping_patience": None,
            "packing": packing,
            "gradient_checkpointing": False,
            "bf16": "off",
            "seed": 42,
        },
    )


@pytest.mark.parametrize("name", list(EXPECTED))
def test_seeded_tiny_run_repeats_its_losses(tiny_model_dir: Path, tmp_path: Path, name: str):
    data = tmp_path / "tickets.jsonl"
    data.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:40]))
    run_dir = create_run(pinned_config(tiny_model_dir, data, packing=name.endswith("packed")))
    assert run_worker(run_dir) == 0

    events = list(iter_all_events(run_dir))
    runtime = next(e for e in events if e["type"] == "runtime")
    assert (runtime["device"], runtime["dtype"], runtime["method"]) == ("cpu", "float32", "lora")
    assert {key: runtime.get(key) for key in EXPECTED_RUNTIME[name]} == EXPECTED_RUNTIME[name]
    assert runtime["trainable_parameters"] == 16384  # r=8 on every linear layer, 2 layers

    points = metric_history(events)
    train = {p["step"]: p["loss"] for p in points if p["split"] == "train"}
    val = {p["step"]: p["loss"] for p in points if p["split"] == "val"}
    assert (sorted(train), sorted(val)) == (STEPS, VAL_STEPS)
    got = torch.tensor([train[s] for s in STEPS] + [val[s] for s in VAL_STEPS], dtype=torch.float64)
    want = torch.tensor(EXPECTED[name]["train"] + EXPECTED[name]["val"], dtype=torch.float64)
    torch.testing.assert_close(
        got, want, rtol=RTOL, atol=ATOL, msg=lambda m: f"{m}\ngot {got.tolist()}"
    )
