"""Training throughput: tunedeck's engine vs plain TRL SFTTrainer (defaults and tuned) vs
HF Trainer with a padding collator, on the same model, data and hyperparameters, in one run.

All sides train LoRA r=16, alpha=32 on all linear layers, lr 2e-4, micro-batch 4, max
length 512, on the bundled sample data given as conversational prompt/completion pairs
(so every side learns only the assistant's answer: the same loss). Reported per side:
trained (assistant) tokens per second over steps 2..N (step 1 warms up), the padding
fraction of what was computed, the loss at the last step, and achieved FLOP/s counted as
4 * N_forward per trained token (LoRA: forward plus the activation-gradient pass), against
this machine's fp32 matmul peak measured here.

    python bench/train_throughput.py [--steps N] [--model smollm2-135m]

Machines here are noisy: read the ratios (measured together), not the absolute figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "support_tickets.jsonl"
MICRO_BATCH, MAX_LEN, LR, R, ALPHA = 4, 512, 2e-4, 16, 32


def matmul_peak_flops(dtype_name: str = "float32") -> float:
    """Matmul FLOP/s of this machine in a dtype (best of a few 2048x2048 products)."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    a @ b  # warm up the kernels and thread pool
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * 2048**3 / best


class StepClock:
    """Times optimizer steps 2..N through a TrainerCallback."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.last_loss: float | None = None

    def callback(self) -> Any:
        from transformers import TrainerCallback

        clock = self

        class Clock(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                clock.starts.append(time.perf_counter())

            def on_step_end(self, args, state, control, **kwargs):
                clock.starts.append(time.perf_counter())

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    clock.last_loss = float(logs["loss"])

        return Clock()

    def seconds_after_warmup(self) -> float:
        # starts holds begin/end pairs; skip the first step's pair.
        pairs = list(zip(self.starts[0::2], self.starts[1::2], strict=False))[1:]
        return sum(end - begin for begin, end in pairs)


def conversations(n: int) -> list[list[dict[str, str]]]:
    rows = [json.loads(line)["messages"] for line in SAMPLE.read_text().splitlines()]
    return [rows[i % len(rows)] for i in range(n)]


def assistant_tokens(tokenizer: Any, convs: list[list[dict[str, str]]]) -> list[int]:
    from engine.model.tokenization import tokenize_conversation

    return [tokenize_conversation(tokenizer, c, MAX_LEN).trained_tokens for c in convs]


def lora_config() -> Any:
    from peft import LoraConfig

    return LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0, target_modules="all-linear",
                      task_type="CAUSAL_LM")  # fmt: skip


def common_args(out: str, steps: int) -> dict[str, Any]:
    return dict(output_dir=out, per_device_train_batch_size=MICRO_BATCH, learning_rate=LR,
                max_steps=steps, logging_steps=1, save_strategy="no", report_to=[],
                use_cpu=True, disable_tqdm=True, seed=0, data_seed=0,
                train_sampling_strategy="sequential")  # fmt: skip


def run_tunedeck(
    model_dir: Path, convs, steps: int, out: str, bf16: str = "auto"
) -> tuple[StepClock, int, int]:
    """The engine's own path: its dtype choice (`bf16` as the run config's field), its
    model loading (engine.train.worker.load_model: LoRA, per-example attention), ChatDataset +
    PackedCollator + the fast loss, in its Trainer."""
    import torch
    from transformers import AutoTokenizer, TrainingArguments

    from engine.config.build import LoraConfig, TrainConfig
    from engine.model.loss import PackedCollator
    from engine.train.dataset import ChatDataset
    from engine.train.model import load_model
    from engine.train.worker import TokenCounter, _trainer_class, pick_device

    device, dtype = pick_device(bf16)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    cfg = TrainConfig(model=str(model_dir), bf16=bf16,  # type: ignore[arg-type]
                      lora=LoraConfig(r=R, alpha=ALPHA, dropout=0.0))  # fmt: skip
    model = load_model(cfg, model_dir, device, dtype)  # adapters stay fp32 (peft's autocast)
    print(f"  tunedeck computes in {str(dtype).removeprefix('torch.')}, attention "
          f"{model.get_base_model().config._attn_implementation}", flush=True)  # fmt: skip
    examples = [_Example(c) for c in convs]
    counter, clock = TokenCounter(), StepClock()
    args = TrainingArguments(**common_args(out, steps), remove_unused_columns=False,
                             bf16=dtype == torch.bfloat16)  # fmt: skip
    trainer = _trainer_class()(
        model=model, args=args,
        train_dataset=ChatDataset(examples, tokenizer, MAX_LEN),
        data_collator=PackedCollator(counter), callbacks=[clock.callback()],
    )  # fmt: skip
    trainer.train()
    return clock, counter.total, counter.total  # packed rows carry no padding


class _Example:
    def __init__(self, messages: list[dict[str, str]]) -> None:
        self.messages = messages


def run_hf_padded(model_dir: Path, convs, steps: int, out: str) -> tuple[StepClock, int, int]:
    """Plain HF Trainer: padded batches, the model's own loss over all positions."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    from engine.train.dataset import ChatDataset, PaddingCollator

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), lora_config())
    data = ChatDataset([_Example(c) for c in convs], tokenizer, MAX_LEN)
    collator, clock, seen = PaddingCollator(tokenizer.pad_token_id), StepClock(), [0, 0]

    def counting(batch):
        out_batch = collator(batch)
        seen[0] += int(out_batch["attention_mask"].numel())
        seen[1] += int(out_batch["attention_mask"].sum())
        return out_batch

    trainer = Trainer(model=model, args=TrainingArguments(**common_args(out, steps),
                      remove_unused_columns=False), train_dataset=data,
                      data_collator=counting, callbacks=[clock.callback()])  # fmt: skip
    trainer.train()
    return clock, seen[0], seen[1]


def run_trl(model_dir: Path, convs, steps: int, out: str, tuned: bool, bf16: bool = False):
    """TRL SFTTrainer on conversational prompt/completion pairs (completion-only loss);
    `bf16`: the tuned peer also given tunedeck's bf16 weights and autocast."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = [{"prompt": c[:-1], "completion": c[-1:]} for c in convs]
    # Tuned: no gradient checkpointing, padding-free batches (TRL then wants max_length
    # None: every sample data example is far below 512 tokens, so nothing is cut anyway).
    # Defaults: TRL's own, which include bf16 mixed precision (autocast over the fp32
    # weights TRL loads by default) wherever fp16 is not asked for, CPUs included.
    extra = {"padding_free": True, "gradient_checkpointing": False, "max_length": None,
             "bf16": bf16}  # fmt: skip
    config = SFTConfig(**common_args(out, steps), **(extra if tuned else {"max_length": MAX_LEN}))
    clock = StepClock()
    dtype = torch.bfloat16 if bf16 else torch.float32
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype), args=config,
        train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
        peft_config=lora_config(), callbacks=[clock.callback()],
    )  # fmt: skip
    trainer.train()
    return clock, None, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument(
        "--sides", default="tunedeck,hf_padded,trl_tuned,trl_defaults,tunedeck_bf16,trl_tuned_bf16"
    )
    parser.add_argument("--json", help="write the summary rows (bench/run_all.py) here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from engine.model.resolve import resolve_model
    from engine.model.shapes import model_shape, read_model_config

    hf_logging.set_verbosity_error()
    model_dir = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    convs = conversations(args.steps * MICRO_BATCH)
    per_example = assistant_tokens(tokenizer, convs)
    trained_after_warmup = sum(per_example[MICRO_BATCH:])
    n_forward = model_shape(read_model_config(model_dir)).matmul_params
    peak, peak_bf16 = matmul_peak_flops(), matmul_peak_flops("bfloat16")
    print(f"model {args.model}: {n_forward / 1e6:.1f}M matmul parameters; matmul peak "
          f"fp32 {peak / 1e9:.0f} GFLOP/s, bf16 {peak_bf16 / 1e9:.0f} GFLOP/s; "
          f"{args.steps} steps x {MICRO_BATCH} examples")  # fmt: skip
    runners = {
        "tunedeck": lambda out: run_tunedeck(model_dir, convs, args.steps, out),
        "tunedeck_bf16": lambda out: run_tunedeck(model_dir, convs, args.steps, out, "on"),
        "hf_padded": lambda out: run_hf_padded(model_dir, convs, args.steps, out),
        "trl_tuned": lambda out: run_trl(model_dir, convs, args.steps, out, tuned=True),
        "trl_defaults": lambda out: run_trl(model_dir, convs, args.steps, out, tuned=False),
        "trl_tuned_bf16": lambda out: run_trl(model_dir, convs, args.steps, out, True, True),
    }
    results: dict[str, dict[str, Any]] = {}
    for side in args.sides.split(","):
        with tempfile.TemporaryDirectory() as out:
            clock, computed, real = runners[side](out)
        seconds = clock.seconds_after_warmup()
        rate = trained_after_warmup / seconds
        padding = 1 - real / computed if computed else None
        results[side] = {"tokens_per_s": rate, "loss": clock.last_loss, "padding": padding,
                         "flops": 4 * n_forward * rate}  # fmt: skip
        print(f"  {side:<13} {rate:8.1f} trained tok/s  loss {clock.last_loss:.4f}  "
              f"padding {'-' if padding is None else f'{padding:.0%}'}  "
              f"{4 * n_forward * rate / 1e9:6.1f} GFLOP/s ({4 * n_forward * rate / peak:.0%} "
              f"of peak)", flush=True)  # fmt: skip
    for ours, peer, _ in PAIRS:
        if ours in results and peer in results:
            ratio = results[ours]["tokens_per_s"] / results[peer]["tokens_per_s"]
            print(f"{ours} / {peer}: {ratio:.2f}x")
    write_throughput_summary(args.json, results, peak, peak_bf16)
    return 0


PAIRS = (
    ("tunedeck", "trl_defaults", 3.0),
    ("tunedeck", "trl_tuned", 2.0),
    ("tunedeck", "hf_padded", None),
    ("tunedeck_bf16", "trl_tuned_bf16", None),
)
"""(ours, peer, target ratio): fp32 against the issue's peers, bf16 against bf16 TRL."""


def write_throughput_summary(
    path: str | None, results: dict[str, dict[str, Any]], peak: float, peak_bf16: float
):
    """The rows of `make bench`'s table (bench/run_all.py): tunedeck against each peer,
    the loss at the last step beside each figure (learning less does not count)."""
    from bench.summary import Row, write_summary

    def figure(side: str) -> str:
        return f"{results[side]['tokens_per_s']:.1f} tok/s, loss {results[side]['loss']:.3f}"

    rows = []
    for ours, peer, goal in PAIRS:
        if ours not in results or peer not in results:
            continue
        ratio = results[ours]["tokens_per_s"] / results[peer]["tokens_per_s"]
        target, met = (f">= {goal:.0f}x", ratio >= goal) if goal else ("-", None)
        rows.append(Row(f"training {ours} (trained tok/s)", figure(ours), peer, figure(peer),
                        ratio, target, met))  # fmt: skip
    for side, dtype_peak, name in (
        ("tunedeck", peak, "fp32"),
        ("tunedeck_bf16", peak_bf16, "bf16"),
    ):
        if side in results:
            share = results[side]["flops"] / dtype_peak
            rows.append(Row(f"training {side}, share of {name} matmul peak", f"{share:.0%}",
                            "matmul peak", f"{dtype_peak / 1e9:.0f} GFLOP/s", None, ">= 50 %",
                            share >= 0.5))  # fmt: skip
    write_summary(path, "train_throughput", rows)


if __name__ == "__main__":
    sys.exit(main())
