"""Memory and time estimate: parameter counts match real models, memory rules hold up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.config.build import TrainConfig, with_overrides
from engine.config.estimate import (
    GPU_FLOPS,
    GPU_UTILISATION,
    NF4_BYTES_PER_PARAM,
    detect_gpu_name,
    estimate_memory,
    estimate_run,
    format_estimate,
    gpu_flops_per_s,
    read_model_config,
)
from engine.core.errors import ModelLoadError
from engine.model.loss import CHUNK_LOGITS
from engine.model.shapes import (
    UnknownArchitectureError,
    lora_params,
    model_shape,
)
from tests.conftest import REPO_ROOT
from tests.tiny_model import SMOLLM2_135M_CONFIG

SMOLLM2_135M: dict[str, Any] = SMOLLM2_135M_CONFIG

GiB = 2**30


def build_model(config: dict[str, Any]) -> Any:
    """The real transformers model for a config dict, on the meta device (no memory)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    kwargs = {k: v for k, v in config.items() if k != "model_type"}
    hf_config = AutoConfig.for_model(config["model_type"], **kwargs)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(hf_config)


def numel(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------
# parameter counts
# ---------------------------------------------------------------------------


def test_tiny_model_count_matches_the_real_model(tiny_model_dir: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = read_model_config(tiny_model_dir)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(tiny_model_dir))
    assert model_shape(config).total_params == numel(model)


def test_smollm2_135m_count() -> None:
    total = model_shape(SMOLLM2_135M).total_params
    assert total == 134_515_008  # the "135M" of its name
    assert total == numel(build_model(SMOLLM2_135M))


SMALL = {
    "vocab_size": 300,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}


@pytest.mark.parametrize(
    "extra",
    [
        {"model_type": "llama", "tie_word_embeddings": False},
        {"model_type": "llama", "attention_bias": True, "mlp_bias": True},
        {"model_type": "mistral"},
        {"model_type": "qwen2"},
        {"model_type": "qwen3", "head_dim": 32},
        {"model_type": "gemma"},
        {"model_type": "gemma2"},
        {"model_type": "gemma3_text"},
        {"model_type": "smollm3"},
        {"model_type": "granite"},
    ],
    ids=lambda e: "-".join(str(v) for v in e.values()),
)
def test_count_matches_each_supported_architecture(extra: dict[str, Any]) -> None:
    config = {**SMALL, **extra}
    model = build_model(config)
    # what config.json holds is the full config, defaults included (head_dim, tie, ...)
    saved = model.config.to_dict()
    assert model_shape(saved).total_params == numel(model)
    assert model_shape(config).total_params == numel(model)  # and from the bare dict


def test_nested_text_config_is_read() -> None:
    assert model_shape({"text_config": SMOLLM2_135M}).total_params == 134_515_008


def test_unknown_architecture_is_refused_not_guessed() -> None:
    with pytest.raises(UnknownArchitectureError, match="unknown architecture 'phi3'"):
        model_shape({**SMOLLM2_135M, "model_type": "phi3"})
    with pytest.raises(UnknownArchitectureError, match="lacks a usable 'hidden_size'"):
        model_shape({k: v for k, v in SMOLLM2_135M.items() if k != "hidden_size"})


@pytest.mark.parametrize(
    "targets", ["all-linear", ["q_proj", "v_proj"], ["down_proj", "self_attn.o_proj"]]
)
def test_lora_count_matches_peft(tiny_model_dir: Path, targets: Any) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(tiny_model_dir))
    peft_model = get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, target_modules=targets, task_type="CAUSAL_LM")
    )
    trainable, _all = peft_model.get_nb_trainable_parameters()
    names = ("all-linear",) if targets == "all-linear" else tuple(targets)
    count, unmatched = lora_params(model_shape(read_model_config(tiny_model_dir)), 8, names)
    assert (count, unmatched) == (trainable, [])


def test_lora_count_reports_names_matching_no_layer() -> None:
    count, unmatched = lora_params(model_shape(SMOLLM2_135M), 8, ("q_proj", "c_attn"))
    assert count == 30 * 8 * (576 + 576)
    assert unmatched == ["c_attn"]
    cfg = with_overrides(TrainConfig(), **{"lora.target_modules": ["c_attn"]})
    est = estimate_run(cfg, SMOLLM2_135M, 100, 100)
    assert any("'c_attn'" in note and "match no layer" in note for note in est.notes)


# ---------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------


def test_weight_bytes_by_method_and_device() -> None:
    shape = model_shape(SMOLLM2_135M)
    lora, qlora = TrainConfig(), with_overrides(TrainConfig(), method="qlora")
    cpu_lora = estimate_memory(lora, shape, 256, "cpu").weights
    gpu_lora = estimate_memory(lora, shape, 256, "cuda").weights
    gpu_qlora = estimate_memory(qlora, shape, 256, "cuda").weights
    assert cpu_lora == 4 * shape.total_params  # fp32 on CPU
    assert gpu_lora == 2 * shape.total_params  # bf16 on GPU
    assert gpu_qlora < gpu_lora
    # peft's prepare_model_for_kbit_training upcasts embeddings, head and norms to fp32.
    expected = shape.linear_params * NF4_BYTES_PER_PARAM + 4 * (
        shape.total_params - shape.linear_params
    )
    assert gpu_qlora == int(expected)
    fsdp = with_overrides(qlora, num_processes=2)  # FSDP skips the upcast: bf16, sharded
    sharded = shape.linear_params * NF4_BYTES_PER_PARAM + 2 * (
        shape.total_params - shape.linear_params
    )
    assert estimate_memory(fsdp, shape, 256, "cuda").weights == int(sharded) // 2
    off = with_overrides(TrainConfig(), bf16="off")
    assert estimate_memory(off, shape, 256, "cuda").weights == cpu_lora


def test_optimizer_state_per_trainable_parameter() -> None:
    shape = model_shape(SMOLLM2_135M)
    memory = estimate_memory(TrainConfig(), shape, 256, "cuda")
    trainable, _ = lora_params(shape, 16, ("all-linear",))
    assert (memory.adapter, memory.gradients, memory.optimizer) == (
        4 * trainable,
        4 * trainable,
        8 * trainable,
    )


def test_activations_scale_and_shrink_with_checkpointing() -> None:
    shape = model_shape(SMOLLM2_135M)
    base = estimate_memory(TrainConfig(), shape, 512, "cuda")
    double_batch = estimate_memory(
        with_overrides(TrainConfig(), micro_batch_size=8), shape, 512, "cuda"
    )
    checkpointed = estimate_memory(
        with_overrides(TrainConfig(), gradient_checkpointing=True), shape, 512, "cuda"
    )
    assert double_batch.activations == 2 * base.activations
    chunk = CHUNK_LOGITS * 8  # the loss's working set: one chunk, whatever the batch
    assert double_batch.logits - chunk == 2 * (base.logits - chunk)
    assert checkpointed.activations < base.activations / 5
    # bf16 logits, plus an fp32 copy and log-softmax of one chunk (the loss is chunked)
    assert base.logits == 4 * 512 * 49152 * 2 + CHUNK_LOGITS * 8
    small = estimate_memory(TrainConfig(), shape, 64, "cuda")
    assert small.logits == 4 * 64 * 49152 * 10  # under one chunk: all of it at once


def test_activation_rule_of_thumb_matches_saved_tensors() -> None:
    """Bytes autograd really saves for backward, against the estimate (within 30%).

    The estimate's logits term counts the logits and the loss's log-softmax; autograd saves
    only the log-softmax, so half of it is compared.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = {**SMALL, "model_type": "llama", "vocab_size": 2000, "hidden_size": 128}
    config["intermediate_size"] = 384
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in config.items() if k != "model_type"}))
    model = get_peft_model(
        model,
        LoraConfig(r=16, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    model.train()
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: Any) -> Any:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    ids = torch.randint(0, 2000, (4, 128))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, labels=ids)
    cfg = with_overrides(TrainConfig(), micro_batch_size=4)
    memory = estimate_memory(cfg, model_shape(config), 128, "cpu")
    estimated = memory.activations + memory.logits / 2
    assert 0.7 < sum(saved.values()) / estimated < 1.3


# ---------------------------------------------------------------------------
# the whole estimate
# ---------------------------------------------------------------------------


def test_fits_and_does_not_fit() -> None:
    big = with_overrides(TrainConfig(), micro_batch_size=16, max_seq_len=2048)
    est = estimate_run(big, SMOLLM2_135M, 1000, 1500, device="cuda", free_gpu_bytes=4 * GiB)
    assert est.memory is not None and est.memory.total > 4 * GiB
    assert est.fits is False
    assert any(a.startswith("gradient_checkpointing = true:") for a in est.advice)
    assert any(a.startswith("method = qlora:") for a in est.advice)
    assert any("micro_batch_size = 8, gradient_accumulation = 8" in a for a in est.advice)
    assert any("does NOT fit in 4.0 GB free" in line for line in format_estimate(est))
    roomy = estimate_run(big, SMOLLM2_135M, 1000, 1500, device="cuda", free_gpu_bytes=80 * GiB)
    assert roomy.fits is True and roomy.advice == ()
    assert estimate_run(big, SMOLLM2_135M, 1000, 1500, device="cuda").fits is None


def test_p99_length_bounds_the_peak_unless_packing() -> None:
    cfg = with_overrides(TrainConfig(), max_seq_len=1024)
    est = estimate_run(cfg, SMOLLM2_135M, 500, 120, p99_tokens=300)
    assert est.peak_seq_len == 300
    assert any("p99 length (300 tokens)" in n for n in est.notes)
    assert estimate_run(cfg, SMOLLM2_135M, 500, 120).peak_seq_len == 1024
    packed = with_overrides(cfg, packing=True)
    assert estimate_run(packed, SMOLLM2_135M, 500, 120, p99_tokens=300).peak_seq_len == 1024


def test_steps_and_tokens() -> None:
    cfg = TrainConfig()  # micro-batch 4 x accumulation 4, 2 epochs
    est = estimate_run(cfg, SMOLLM2_135M, n_train_examples=100, mean_tokens=150)
    assert (est.steps_per_epoch, est.total_steps) == (7, 14)  # ceil(ceil(100/4) / 4)
    assert est.train_tokens == 2 * 100 * 150
    capped = estimate_run(with_overrides(cfg, max_steps=3), SMOLLM2_135M, 100, 150)
    assert capped.total_steps == 3
    assert capped.train_tokens == int(100 * 150 * 3 / 7)
    truncated = estimate_run(with_overrides(cfg, max_seq_len=128), SMOLLM2_135M, 100, 150)
    assert truncated.train_tokens == 2 * 100 * 128
    # packing: 100 x 150 tokens fill ceil(15000 / 1024) = 15 sequences -> 1 step per epoch
    packed = estimate_run(with_overrides(cfg, packing=True), SMOLLM2_135M, 100, 150)
    assert (packed.steps_per_epoch, packed.total_steps) == (1, 2)
    two_gpus = estimate_run(with_overrides(cfg, num_processes=2), SMOLLM2_135M, 100, 150)
    assert two_gpus.steps_per_epoch == 4  # ceil(ceil(100 / 8) / 4)


def test_time_follows_flops_and_throughput() -> None:
    cfg = TrainConfig()
    est = estimate_run(cfg, SMOLLM2_135M, 100, 150, flops_per_s=1e11)
    shape = model_shape(SMOLLM2_135M)
    assert est.flops is not None and est.seconds is not None
    # ~4N per token (N = matmul weights), a little more for attention and the adapter
    assert 4 * shape.matmul_params * est.train_tokens < est.flops
    assert est.flops < 4.6 * shape.matmul_params * est.train_tokens
    # training FLOPs at the throughput, plus writing the checkpoints and kept adapters
    assert est.checkpoint_seconds is not None and est.validation_seconds is None
    assert est.seconds == pytest.approx(est.flops / 1e11 + est.checkpoint_seconds)
    slower = estimate_run(with_overrides(cfg, gradient_checkpointing=True), SMOLLM2_135M, 100, 150)
    assert slower.flops is not None and slower.flops > 1.4 * est.flops
    with_eval = estimate_run(cfg, SMOLLM2_135M, 100, 150, n_val_examples=20)
    assert with_eval.validation_seconds is not None and with_eval.validation_seconds > 0
    assert with_eval.seconds is not None and with_eval.seconds > est.seconds
    gpu = estimate_run(cfg, SMOLLM2_135M, 100, 150, device="cuda")
    assert gpu.flops_per_s == gpu_flops_per_s(detect_gpu_name())


@pytest.mark.parametrize(
    ("name", "tflops"),
    [
        ("NVIDIA H100 80GB HBM3", 989),
        ("NVIDIA H200", 989),
        ("NVIDIA A100-SXM4-80GB", 312),
        ("NVIDIA L40S", 362),
        ("NVIDIA A10G", 70),
        ("NVIDIA A10", 125),
        ("NVIDIA GeForce RTX 4090", 165),
        ("Tesla T4", 65),
        ("NVIDIA L4", 121),
    ],
)
def test_gpu_throughput_comes_from_the_gpus_name(name, tflops) -> None:
    assert gpu_flops_per_s(name) == pytest.approx(tflops * 1e12 * GPU_UTILISATION)


def test_an_unknown_gpu_gets_the_generic_figure() -> None:
    assert gpu_flops_per_s("Some Future Accelerator") == GPU_FLOPS
    assert gpu_flops_per_s(None) == GPU_FLOPS


def test_unknown_architecture_still_counts_steps() -> None:
    est = estimate_run(TrainConfig(), {"model_type": "mamba"}, 100, 150, free_gpu_bytes=GiB)
    assert est.total_params is None and est.memory is None and est.seconds is None
    assert est.fits is None
    assert est.total_steps == 14
    assert "unknown architecture 'mamba'" in est.notes[0]
    lines = format_estimate(est)
    assert any(line.startswith("Steps: 7 per epoch, 14 in total") for line in lines)


def test_format_estimate_reads_like_a_summary() -> None:
    est = estimate_run(TrainConfig(), SMOLLM2_135M, 124, 150, p99_tokens=256, flops_per_s=8e10)
    lines = format_estimate(est)
    assert lines[0].startswith("Parameters: 134.5 M in the base model, 4.9 M trained")
    assert lines[1] == "Weights (lora on cpu): 513 MB"
    assert any(line.startswith("Peak memory: about") for line in lines)
    assert any(line.startswith("Time: about ") and "estimate" in line for line in lines)


def test_read_model_config(tmp_path: Path, tiny_model_dir: Path) -> None:
    config = read_model_config(tiny_model_dir)
    assert config == json.loads((tiny_model_dir / "config.json").read_text())
    assert config["model_type"] == "llama"
    assert read_model_config(tiny_model_dir / "config.json") == config
    with pytest.raises(ModelLoadError, match="no model config"):
        read_model_config(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ModelLoadError, match="not a JSON object"):
        read_model_config(tmp_path)
    (tmp_path / "config.json").write_text("{oops")
    with pytest.raises(ModelLoadError, match="cannot read the model config"):
        read_model_config(tmp_path)


def test_config_and_estimate_import_no_training_stack() -> None:
    code = (
        "import engine.config.build, engine.config.estimate, json, sys\n"
        "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(out.stdout))
    assert loaded & {"torch", "transformers", "peft", "textual", "rich"} == set()
