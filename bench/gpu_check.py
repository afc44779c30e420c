"""The prepared GPU check (run through bench/gpu_check.sh): one table, no network.

Random-initialised models shaped like Llama-3.2-1B and Llama-3.1-8B (no download) go
through tunedeck's own training pieces: engine.train.worker.load_model (LoRA in bf16, QLoRA in
NF4, packed attention on), padding-free micro-batches from engine.model.loss, the
trained-positions loss, AdamW on the adapter. Measured:

- trained tokens/s and all tokens/s of LoRA and QLoRA, after warm-up steps;
- peak GPU memory against engine.config.estimate's figure for the same config;
- tunedeck's packed attention against transformers' own paths on the same row
  (sdpa with restarting position_ids, and flash_attention_2 where flash-attn is
  installed): time per forward+backward and the loss difference;
- batched generation as evaluation runs it (left-padded prompts, greedy), tokens/s.

`--cpu-smoke` runs every step on a tiny shape on the CPU in seconds (the test suite does).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SHAPES: dict[str, dict[str, Any]] = {
    "llama-3.2-1b": {
        "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
        "tie_word_embeddings": True, "rope_theta": 500000.0, "max_position_embeddings": 8192,
    },
    "llama-3.1-8b": {
        "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
        "tie_word_embeddings": False, "rope_theta": 500000.0, "max_position_embeddings": 8192,
    },
    "tiny": {
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512,
        "tie_word_embeddings": True, "max_position_embeddings": 512,
    },
}  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """How big and how long each measurement is."""

    shapes: tuple[str, ...]
    seq_len: int
    example_len: int
    micro_batch: int
    steps: int
    warmup: int
    gen_prompts: int
    gen_tokens: int


GPU_PLAN = Plan(("llama-3.2-1b", "llama-3.1-8b"), 2048, 256, 2, 8, 3, 16, 64)
SMOKE_PLAN = Plan(("tiny",), 64, 16, 2, 2, 1, 2, 4)


class Table:
    """The one table: rows of (check, shape, method, value, unit, note)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, ...]] = []

    def add(self, check: str, shape: str, method: str, value: float | str, unit: str,
            note: str = "") -> None:  # fmt: skip
        text = f"{value:,.1f}" if isinstance(value, float) else str(value)
        self.rows.append((check, shape, method, text, unit, note))
        print(f"  {check} {shape} {method}: {text} {unit} {note}", file=sys.stderr, flush=True)

    def markdown(self, device: str) -> str:
        head = "| check | shape | method | value | unit | note |\n|---|---|---|---:|---|---|\n"
        body = "".join("| " + " | ".join(row) + " |\n" for row in self.rows)
        return f"Device: {device}\n\n{head}{body}"


def build_model_dir(shape: str, root: Path, dtype: Any) -> Path:
    """A random-initialised Llama of the shape, saved as a local model directory."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**SHAPES[shape], bos_token_id=1, eos_token_id=2, pad_token_id=0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # initialise in the compute dtype: 16 GB, not 32, for 8B
    try:
        with torch.device(device):
            torch.manual_seed(0)
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    target = root / shape
    model.save_pretrained(target, safe_serialization=True)
    del model
    _free()
    return target


def _free() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def synthetic_batches(plan: Plan, vocab: int, count: int, seed: int) -> list[dict[str, Any]]:
    """Padding-free micro-batches of examples whose second half is the trained answer."""
    import random

    from engine.model.loss import PackedCollator, PackedDataset
    from engine.model.tokenization import IGNORE_INDEX

    rng = random.Random(seed)
    examples = []
    for _ in range(count * plan.micro_batch * max(1, plan.seq_len // plan.example_len)):
        n = rng.randint(plan.example_len // 2, plan.example_len)
        ids = [rng.randrange(3, vocab) for _ in range(n)]
        labels = [IGNORE_INDEX] * (n // 2) + ids[n // 2 :]
        examples.append({"input_ids": ids, "labels": labels})
    packed = PackedDataset(examples, plan.seq_len, seed)
    collate = PackedCollator()
    return [
        collate([packed[(i * plan.micro_batch + j) % len(packed)] for j in range(plan.micro_batch)])
        for i in range(count)
    ]


def _to(batch: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


def train_rows(table: Table, plan: Plan, shape: str, model_dir: Path, method: str) -> None:
    """Tokens/s and peak memory of `steps` optimizer steps after `warmup` ones."""
    import torch

    from engine.config.build import TrainConfig
    from engine.config.estimate import estimate_memory
    from engine.model.loss import trained_positions_loss
    from engine.model.shapes import model_shape, read_model_config
    from engine.train.model import load_model
    from engine.train.worker import pick_device

    device, dtype = pick_device("auto")
    cfg = TrainConfig(model=str(model_dir), method=method, micro_batch_size=plan.micro_batch,
                      max_seq_len=plan.seq_len, packing=True)  # fmt: skip
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model = load_model(cfg, model_dir, device, dtype)
    if device != "cuda" or method == "lora":
        model.to(device)
    model.train()
    attention = model.get_base_model().config._attn_implementation
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    vocab = SHAPES[shape]["vocab_size"]
    batches = synthetic_batches(plan, vocab, plan.warmup + plan.steps, seed=1)
    trained = total = 0
    started = 0.0
    for index, batch in enumerate(batches):
        if index == plan.warmup:
            _sync()
            started = time.perf_counter()
        autocast = torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32)
        with autocast:
            loss, _ = trained_positions_loss(model, _to(batch, device))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if index >= plan.warmup:
            trained += int((batch["labels"][:, 1:] != -100).sum())
            total += batch["input_ids"].numel()
    _sync()
    seconds = time.perf_counter() - started
    table.add("train trained tokens/s", shape, method, trained / seconds, "tok/s",
              f"{attention}, {total / seconds:,.0f} tok/s all")  # fmt: skip
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated()
        estimate = estimate_memory(cfg, model_shape(read_model_config(model_dir)),
                                   plan.seq_len, "cuda").total  # fmt: skip
        table.add("peak memory", shape, method, peak / 2**30, "GiB",
                  f"estimate {estimate / 2**30:.1f} GiB ({peak / estimate:.2f}x)")  # fmt: skip
    del model, optimizer
    _free()


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def attention_rows(table: Table, plan: Plan, shape: str, model_dir: Path) -> None:
    """tunedeck's packed attention against transformers' own paths, same row and weights."""
    import importlib.util

    from transformers import AutoModelForCausalLM

    from engine.model.load import pick_device
    from engine.model.loss import trained_positions_loss
    from engine.train.packed_attention import use_packed_attention

    device, dtype = pick_device("auto")
    batch = _to(synthetic_batches(plan, SHAPES[shape]["vocab_size"], 1, seed=2)[0], device)
    paths = ["tunedeck_packed", "sdpa"]
    if device == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        paths.append("flash_attention_2")
    losses: dict[str, float] = {}
    for path in paths:
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=dtype, attn_implementation="sdpa" if path != "flash_attention_2"
            else path,
        ).to(device)  # fmt: skip
        if path == "tunedeck_packed":
            assert use_packed_attention(model)
        inputs = batch if path == "tunedeck_packed" else {
            k: v for k, v in batch.items() if k not in ("seq_bounds", "max_length", "cu_seq_lens")
        }  # fmt: skip
        times = []
        for _ in range(1 + max(1, plan.steps // 2)):
            _sync()
            start = time.perf_counter()
            loss, _ = trained_positions_loss(model, inputs)
            loss.backward()
            _sync()
            times.append(time.perf_counter() - start)
            model.zero_grad(set_to_none=True)
        losses[path] = float(loss.detach())
        diff = abs(losses[path] - losses[paths[0]])
        table.add("attention fwd+bwd", shape, path, 1000 * min(times[1:]), "ms",
                  f"loss {losses[path]:.4f}, diff {diff:.1e}")  # fmt: skip
        del model
        _free()


def generation_rows(table: Table, plan: Plan, shape: str, model_dir: Path) -> None:
    """Batched greedy generation as evaluation runs it: left-padded prompts, one batch."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    from engine.model.load import pick_device

    device, dtype = pick_device("auto")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    generator = torch.Generator().manual_seed(3)
    vocab = SHAPES[shape]["vocab_size"]
    width = plan.example_len
    ids = torch.randint(3, vocab, (plan.gen_prompts, width), generator=generator)
    mask = torch.ones_like(ids)
    for row in range(plan.gen_prompts):  # prompts of different lengths: left padding
        pad = row * width // (2 * plan.gen_prompts)
        ids[row, :pad], mask[row, :pad] = 0, 0
    config = GenerationConfig(max_new_tokens=plan.gen_tokens, min_new_tokens=plan.gen_tokens,
                              do_sample=False, pad_token_id=0, eos_token_id=None)  # fmt: skip
    with torch.inference_mode():
        model.generate(input_ids=ids[:, -8:].to(device), attention_mask=mask[:, -8:].to(device),
                       generation_config=GenerationConfig(max_new_tokens=2, do_sample=False,
                                                          pad_token_id=0))  # fmt: skip
        _sync()
        start = time.perf_counter()
        out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                             generation_config=config)  # fmt: skip
        _sync()
    seconds = time.perf_counter() - start
    new = (out.shape[1] - width) * plan.gen_prompts
    table.add("eval generation", shape, f"batch {plan.gen_prompts}", new / seconds, "tok/s",
              f"{plan.gen_tokens} new tokens after {width}-token prompts")  # fmt: skip
    del model
    _free()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny shapes on the CPU")
    parser.add_argument("--shapes", help="comma-separated subset of " + ", ".join(SHAPES))
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = parser.parse_args(argv)
    import importlib.util

    import torch

    from engine.model.load import pick_device

    plan = SMOKE_PLAN if args.cpu_smoke else GPU_PLAN
    shapes = tuple(args.shapes.split(",")) if args.shapes else plan.shapes
    if not args.cpu_smoke and not torch.cuda.is_available():
        print("error: no CUDA GPU visible (use --cpu-smoke to try the script on a CPU)",
              file=sys.stderr)  # fmt: skip
        return 2
    device, dtype = pick_device("auto")
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (smoke)"
    methods = ["lora"]
    if importlib.util.find_spec("bitsandbytes") is not None:
        methods.append("qlora")
    table = Table()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tunedeck-gpu-check-") as tmp:
        for shape in shapes:
            model_dir = build_model_dir(shape, Path(tmp), dtype)
            for method in methods:
                train_rows(table, plan, shape, model_dir, method)
            if shape == shapes[0]:
                attention_rows(table, plan, shape, model_dir)
                generation_rows(table, plan, shape, model_dir)
            for file in model_dir.glob("*.safetensors"):
                file.unlink()  # the next shape needs the disk
    if "qlora" not in methods:
        table.add("qlora", "-", "-", "skipped", "", "bitsandbytes is not installed")
    versions = {"torch": torch.__version__, "seconds": round(time.perf_counter() - started)}
    text = table.markdown(f"{name}, {json.dumps(versions)}")
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
