"""GGUF export pieces without a model: storage types, refusals, Llama-3 rope factors (checked
against transformers' own), the Ollama Modelfile, and the LoRA alpha llama.cpp needs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T

from engine.export.gguf.modelfile import (
    CHATML,
    LLAMA3,
    MISTRAL,
    chat_format,
    data_system_prompts,
    default_system,
    render_modelfile,
)
from engine.export.gguf.tensors import (
    UnsupportedModelError,
    gguf_architecture,
    llama3_rope_factors,
    plan_tensors,
    tensor_type,
)
from engine.export.gguf.writer import adapter_alpha

LLAMA = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
         "num_key_value_heads": 2, "num_hidden_layers": 1, "intermediate_size": 96,
         "max_position_embeddings": 512, "vocab_size": 100,
         "tie_word_embeddings": True}  # fmt: skip


def test_storage_types_follow_llama_cpp() -> None:
    assert tensor_type("blk.0.attn_norm.weight", (64,), "q4_0") == T.F32
    assert tensor_type("blk.0.attn_q.bias", (64,), "q8_0") == T.F32
    assert tensor_type("blk.0.attn_q.weight", (64, 64), "f16") == T.F16
    assert tensor_type("blk.0.attn_q.weight", (64, 64), "q8_0") == T.Q8_0
    assert tensor_type("blk.0.ffn_down.weight", (64, 96), "q4_0") == T.Q4_0
    assert tensor_type("blk.0.ffn_down.weight", (64, 100), "q4_0") == T.F16  # 100 % 32 != 0
    assert tensor_type("token_embd.weight", (100, 64), "q4_0") == T.Q8_0  # output stays 8-bit


def test_tied_output_is_not_written_and_qk_are_permuted_for_llama_only() -> None:
    shapes = {"model.embed_tokens.weight": (100, 64), "lm_head.weight": (100, 64),
              "model.layers.0.self_attn.q_proj.weight": (64, 64),
              "model.layers.0.self_attn.k_proj.weight": (32, 64),
              "model.layers.0.self_attn.v_proj.weight": (32, 64)}  # fmt: skip
    plans = {p.name: p for p in plan_tensors(shapes, LLAMA, "llama", "f16")}
    assert set(plans) == {"token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight",
                          "blk.0.attn_v.weight"}  # fmt: skip
    assert (plans["blk.0.attn_q.weight"].heads, plans["blk.0.attn_k.weight"].heads) == (4, 2)
    assert plans["blk.0.attn_v.weight"].heads is None
    qwen = plan_tensors(shapes, {**LLAMA, "model_type": "qwen2"}, "qwen2", "f16")
    assert all(p.heads is None for p in qwen)
    with pytest.raises(UnsupportedModelError, match="does not know: model.extra.weight"):
        plan_tensors({"model.extra.weight": (4, 4)}, LLAMA, "llama", "f16")


@pytest.mark.parametrize("model_type", ["gpt2", "phi3", "gemma2"])
def test_other_architectures_are_refused_naming_the_supported_ones(model_type) -> None:
    with pytest.raises(UnsupportedModelError) as info:
        gguf_architecture({"model_type": model_type})
    assert f"{model_type!r} architecture" in info.value.message
    assert "llama (SmolLM2, Llama-3.x), mistral, qwen2 (Qwen2, Qwen2.5)" in info.value.hint


def test_architectures_and_rope_scalings() -> None:
    assert gguf_architecture({"model_type": "mistral"}) == "llama"
    assert gguf_architecture({"model_type": "qwen2"}) == "qwen2"
    with pytest.raises(UnsupportedModelError, match="'yarn' rope scaling"):
        gguf_architecture({"model_type": "qwen2", "rope_scaling": {"rope_type": "yarn"}})


def test_llama3_rope_factors_match_transformers() -> None:
    import torch
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}  # fmt: skip
    config = {**LLAMA, "hidden_size": 2048, "num_attention_heads": 32, "rope_parameters": rope}
    factors = llama3_rope_factors(config)
    hf = LlamaConfig(hidden_size=2048, num_attention_heads=32, rope_parameters=rope)
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](hf, torch.device("cpu"))
    plain = 1.0 / (500000.0 ** (torch.arange(0, 64, 2, dtype=torch.float32) / 64))
    np.testing.assert_allclose(factors, (plain / scaled).numpy(), rtol=1e-4)
    assert factors[0] == 1.0 and factors[-1] == 32.0


def test_chat_formats_are_recognised() -> None:
    assert chat_format("{{ '<|im_start|>' + message['role'] }}") is CHATML
    assert chat_format("{{ '<|start_header_id|>' + message['role'] }}") is LLAMA3
    assert chat_format("{{ '[INST] ' + message['content'] + ' [/INST]' }}") is MISTRAL
    assert chat_format("{{ message['content'] }}") is None and chat_format(None) is None
    rendered = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    assert default_system(CHATML, rendered) == "Be brief."
    assert default_system(CHATML, "<|im_start|>user\nHi<|im_end|>\n") is None
    assert default_system(MISTRAL, "[INST] Hi [/INST]\n") is None


def test_modelfile_text() -> None:
    text = render_modelfile("./model-q8_0.gguf", LLAMA3, 'Say "hi"', 2048)
    assert text.startswith("# Ollama: ollama create NAME -f Modelfile")
    assert 'FROM ./model-q8_0.gguf\nTEMPLATE """{{- if .System }}' in text
    assert [line for line in text.splitlines() if line.startswith("PARAMETER stop")] == [
        'PARAMETER stop "<|start_header_id|>"', 'PARAMETER stop "<|end_header_id|>"',
        'PARAMETER stop "<|eot_id|>"',
    ]  # fmt: skip
    assert 'SYSTEM "Say \\"hi\\""' in text  # a closing quote cannot sit inside """..."""
    assert text.endswith("PARAMETER num_ctx 2048\n")
    lora = render_modelfile("/models/base.gguf", CHATML, None, 512, "./lora.gguf", "a note")
    assert "FROM /models/base.gguf\nADAPTER ./lora.gguf\n" in lora and "# a note\n" in lora
    assert "SYSTEM" not in lora


def test_system_prompts_of_the_data(tmp_path: Path) -> None:
    rows = [[{"role": "system", "content": "A"}, {"role": "user", "content": "x"}],
            [{"role": "user", "content": "y"}]]  # fmt: skip
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"messages": r}) + "\n" for r in rows))
    assert data_system_prompts(path) == {"A", ""}
    assert data_system_prompts(tmp_path / "missing.jsonl") == set()


def test_lora_alpha_for_llama_cpp() -> None:
    assert adapter_alpha({"r": 16, "lora_alpha": 32}) == 32.0
    assert adapter_alpha({"r": 16, "lora_alpha": 32, "use_rslora": True}) == 128.0  # 32*sqrt(16)
    for key in ("use_dora", "rank_pattern", "modules_to_save"):
        with pytest.raises(UnsupportedModelError, match="cannot hold"):
            adapter_alpha({"r": 8, "lora_alpha": 16, key: True if key == "use_dora" else ["x"]})


@pytest.mark.parametrize("qtype", [T.F16, T.Q8_0, T.Q4_0])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_large_matrices_are_converted_a_block_of_rows_at_a_time(qtype, dtype, monkeypatch):
    """A 16-bit merge is converted to float32 in blocks of rows, never whole; the bytes
    are those of the whole matrix converted at once."""
    import torch

    from engine.export.gguf import writer
    from engine.export.gguf.tensors import TensorPlan, encode_tensor

    torch.manual_seed(0)
    matrix = torch.randn(100, 64).to(getattr(torch, dtype))
    plan = TensorPlan("model.embed_tokens.weight", "token_embd.weight", (100, 64), qtype)
    whole = encode_tensor(plan, matrix.float().numpy())
    converted: list[int] = []
    real = writer._float32
    monkeypatch.setattr(writer, "_float32", lambda t: converted.append(len(t)) or real(t))
    monkeypatch.setattr(writer, "CHUNK_ELEMENTS", 64 * 30)
    chunked = writer._encode(plan, matrix)
    assert converted == [30, 30, 30, 10]
    assert chunked.dtype == whole.dtype and np.array_equal(chunked, whole)
