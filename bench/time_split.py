"""Where a small run's time goes: tunedeck's default flow on 32 examples against a plain TRL
script that trains the same split with the same recipe and validates nothing.

tunedeck side: `tunedeck train --data FIRST_32_TICKETS --follow` (the default model, the
recipe as chosen), in a temporary TUNEDECK_HOME. The worker's `timing` event says how its
time split between optimizer steps, validation, checkpoints and kept adapters. Peer: TRL's
SFTTrainer on the run's own frozen train split (data/train.jsonl), with the run's learning
rate, batch, epochs, LoRA settings and max length, no validation and one save at the end,
timed around trainer.train() the same way (the worker's `total_s` is its train() call).

Targets (issue 24): time outside optimizer steps <= 15 % of tunedeck's train() time, and
the whole train() call not slower than the peer's.

    python bench/time_split.py [--examples 32] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.summary import Row, write_summary  # noqa: E402

SAMPLE = ROOT / "sample_data" / "support_tickets.jsonl"
TARGET_OUTSIDE = 0.15


def tunedeck_run(data: Path, home: Path) -> tuple[Path, dict[str, Any], float]:
    """Train the default flow; (run dir, its timing event, wall seconds of the command)."""
    env = {**os.environ, "TUNEDECK_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    tunedeck = Path(sys.executable).parent / "tunedeck"
    started = time.perf_counter()
    subprocess.run([str(tunedeck), "train", "--data", str(data), "--follow"], env=env,
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    wall = time.perf_counter() - started
    runs = sorted((home / "runs").iterdir())
    run_dir = runs[-1]
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    timing = [e for e in events if e.get("type") == "timing"]
    if not timing:
        raise SystemExit(f"the run in {run_dir} wrote no timing event")
    return run_dir, timing[-1], wall


def trl_run(run_dir: Path, out: Path) -> float:
    """TRL SFTTrainer on the run's train split and settings; seconds of trainer.train()."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from engine.model.resolve import resolve_model

    cfg = tomllib.loads((run_dir / "config.toml").read_text())
    lora = cfg.get("lora", {})
    model_dir = resolve_model(cfg["model"])
    rows = []
    for line in (run_dir / "data" / "train.jsonl").read_text().splitlines():
        messages = json.loads(line)["messages"]
        rows.append({"prompt": messages[:-1], "completion": messages[-1:]})
    config = SFTConfig(
        output_dir=str(out), per_device_train_batch_size=cfg["micro_batch_size"],
        gradient_accumulation_steps=cfg["gradient_accumulation"],
        learning_rate=cfg["learning_rate"], num_train_epochs=cfg["epochs"],
        lr_scheduler_type=cfg.get("scheduler", "cosine"), logging_steps=cfg["logging_steps"],
        save_strategy="no", eval_strategy="no", report_to=[], use_cpu=True,
        disable_tqdm=True, seed=cfg.get("seed", 0), max_length=None,  # padding-free: none cut
        padding_free=True, gradient_checkpointing=False, bf16=False,
    )  # fmt: skip
    targets = lora.get("target_modules", ["all-linear"])
    peft_config = LoraConfig(r=lora.get("r", 16), lora_alpha=lora.get("alpha", 32),
                             lora_dropout=lora.get("dropout", 0.0),
                             target_modules="all-linear" if targets == ["all-linear"] else targets,
                             task_type="CAUSAL_LM")  # fmt: skip
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
        args=config, train_dataset=Dataset.from_list(rows),
        processing_class=AutoTokenizer.from_pretrained(model_dir), peft_config=peft_config,
    )  # fmt: skip
    started = time.perf_counter()
    trainer.train()
    trainer.save_model(str(out / "final"))  # the peer's one save, counted like ours
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--json", help="write the summary rows here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tunedeck-time-split-") as tmp:
        data = Path(tmp) / "tickets.jsonl"
        lines = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[: args.examples]
        data.write_text("".join(lines), encoding="utf-8")
        run_dir, timing, wall = tunedeck_run(data, Path(tmp) / "home")
        cfg = tomllib.loads((run_dir / "config.toml").read_text())
        total = timing["total_s"]
        outside = 1 - timing["steps_s"] / total
        print(f"tunedeck default flow on {args.examples} examples: {timing['step']} steps, "
              f"eval_steps {cfg['eval_steps']}, save_steps {cfg['save_steps']}; "
              f"command {wall:.1f} s")  # fmt: skip
        for key in ("steps_s", "validation_s", "checkpoint_s", "adapter_s"):
            print(f"  {key:<13} {timing[key]:7.2f} s  {100 * timing[key] / total:5.1f} %")
        print(f"  train() total {total:7.2f} s; outside optimizer steps {100 * outside:.1f} % "
              f"(target <= {100 * TARGET_OUTSIDE:.0f} %)", flush=True)  # fmt: skip
        peer_s = trl_run(run_dir, Path(tmp) / "trl")
    print(f"TRL SFTTrainer, same split and recipe, no validation: train() {peer_s:.2f} s; "
          f"ratio {peer_s / total:.2f}x")  # fmt: skip
    rows = [
        Row("time outside optimizer steps (32-example default flow)",
            f"{100 * outside:.1f} %", "-", "-", None, f"<= {100 * TARGET_OUTSIDE:.0f} %",
            outside <= TARGET_OUTSIDE),
        Row("32-example run end to end (train() s)", f"{total:.1f} s",
            "TRL SFTTrainer, no validation", f"{peer_s:.1f} s", round(peer_s / total, 2),
            "-", None),
    ]  # fmt: skip
    write_summary(args.json, "time_split", rows)
    return 0 if outside <= TARGET_OUTSIDE else 1


if __name__ == "__main__":
    sys.exit(main())
