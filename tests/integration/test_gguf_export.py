"""GGUF export on tiny models, checked by independent readers: gguf's reader for the file's
structure, transformers' own GGUF loader (separate code that un-permutes and dequantises)
for the weights, the tokenizer and the chat template.

The run's adapter is a fresh LoRA with random, nonzero B matrices (a trained one would only
be slower to make): merging it changes every adapted matrix, so a wrong permutation or
pairing shows in the logits.

Tolerances, on logits of magnitude ~1 (the tiny random model):
- f16: max |difference| <= 2e-3 against the merged fp32 model, and identical greedy tokens;
- q8_0: <= 3e-2, and >= 90 % identical greedy tokens;
- q4_0: <= 0.2 (4-bit blocks; the tiny model's near-flat logits make greedy tokens a
  coin toss there, so q4_0's greedy agreement is measured on the default model instead).
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGUFReader, dequantize

from engine.config.build import from_preset, with_overrides
from engine.export.exporter import export_run
from engine.export.gguf import writer as gguf_export
from engine.export.gguf.options import quantizer_available
from engine.export.gguf.tensors import UnsupportedModelError, permute_rotary
from engine.runs.store import create_run
from tests.conftest import REPO_ROOT
from tests.integration.serving import serve_line
from tests.integration.test_training import SAMPLE

PROMPTS = ([1, 5, 9], [1, 77, 3, 200, 4], [1, 300, 301, 302, 303, 304], [1, 40, 41, 42])
LOGIT_TOLERANCE = {"f16": 2e-3, "q8_0": 3e-2, "q4_0": 0.2}
NEW_TOKENS = 12
LORA_R, LORA_ALPHA = 8, 16


def make_run(model_dir: Path, data: Path | None = None, **changes) -> Path:
    """A run on `model_dir` (split, config) with a random nonzero LoRA as its best adapter."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    cfg = with_overrides(from_preset("quick"), **{
        "model": str(model_dir), "data.source": str(data or SAMPLE), "data.val_fraction": 0.15,
        "max_seq_len": 256, "lora.r": LORA_R, "lora.alpha": LORA_ALPHA, **changes,
    })  # fmt: skip
    run = create_run(cfg)
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    lora = LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, target_modules="all-linear")
    model = get_peft_model(base, lora)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
    model.save_pretrained(run / "adapter")
    return run


def merged(model_dir: Path, run: Path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir)
    return PeftModel.from_pretrained(base, run / "adapter").merge_and_unload().eval()


def load_gguf(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name).eval()


def greedy(model, prompt: list[int]) -> list[int]:
    ids = torch.tensor([prompt])
    out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False, min_new_tokens=NEW_TOKENS)
    return out[0, len(prompt) :].tolist()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir) -> Path:
    home = tmp_path_factory.mktemp("gguf_home")
    saved = os.environ.get("TUNEDECK_HOME")
    os.environ["TUNEDECK_HOME"] = str(home)
    try:
        return make_run(tiny_model_dir)
    finally:
        if saved is None:
            del os.environ["TUNEDECK_HOME"]
        else:
            os.environ["TUNEDECK_HOME"] = saved


@pytest.mark.parametrize("quant", ["f16", "q8_0", "q4_0"])
def test_gguf_reads_back_and_answers_like_the_merged_model(
    tiny_run, tiny_model_dir, tmp_path, quant
) -> None:
    result = export_run(tiny_run, tmp_path / "out", kind="gguf", quant=quant)
    path = result.out / f"model-{quant}.gguf"
    assert {path.name, "Modelfile", "README.md", "REPORT.md", "tunedeck/config.toml"} <= set(
        result.files
    )
    reader = GGUFReader(path)
    assert len(reader.tensors) == 2 * 9 + 2  # 9 per layer, embedding, final norm (tied output)
    assert len(reader.get_field("tokenizer.ggml.tokens").data) == 512
    assert reader.get_field("tokenizer.ggml.pre").contents() == "gpt-2"
    assert "read back: 20 tensors" in result.notes[0] and "512 tokens" in result.notes[0]

    reference, exported = merged(tiny_model_dir, tiny_run), load_gguf(path)
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = torch.tensor([prompt])
            gap = (reference(ids).logits - exported(ids).logits).abs().max().item()
            assert gap <= LOGIT_TOLERANCE[quant], (prompt, gap)
    if quant == "q4_0":
        return
    pairs = [zip(greedy(reference, p), greedy(exported, p), strict=True) for p in PROMPTS]
    same = [a == b for pair in pairs for a, b in pair]
    assert sum(same) / len(same) >= (1.0 if quant == "f16" else 0.9)


def test_a_bf16_base_merges_to_bf16_and_its_f16_gguf_answers_exactly_alike(
    tiny_model_dir, tmp_path, monkeypatch
) -> None:
    """Most hub models are stored in bf16: the merge keeps that type (not an fp32 file twice
    the size), and f16 holds every bf16 weight of these magnitudes exactly, so the f16 GGUF
    gives the merged safetensors model's own logits and greedy answers."""
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("TUNEDECK_HOME", str(tmp_path / "home"))
    bf16_dir = tmp_path / "bf16"
    AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).save_pretrained(
        bf16_dir
    )
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(bf16_dir)
    run = make_run(bf16_dir)
    merged_dir = export_run(run, tmp_path / "merged", kind="merged").out
    with safe_open(merged_dir / "model.safetensors", "pt") as handle:
        dtypes = {handle.get_tensor(k).dtype for k in handle.keys()}  # noqa: SIM118
        assert dtypes == {torch.bfloat16}
    gguf = export_run(run, tmp_path / "gguf", kind="gguf", quant="f16").out / "model-f16.gguf"
    reference = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    exported = load_gguf(gguf)
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = torch.tensor([prompt])
            torch.testing.assert_close(exported(ids).logits, reference(ids).logits)
            assert greedy(exported, prompt) == greedy(reference, prompt)


def test_the_tokenizer_and_chat_template_travel_with_the_gguf(tiny_run, tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    result = export_run(tiny_run, tmp_path / "out", kind="gguf", quant="f16")
    original = AutoTokenizer.from_pretrained(tiny_model_dir)
    exported = AutoTokenizer.from_pretrained(result.out, gguf_file="model-f16.gguf")
    chat = [{"role": "user", "content": 'My invoice is wrong, 123 {"a": 1}'}]
    assert exported.apply_chat_template(chat, tokenize=False) == original.apply_chat_template(
        chat, tokenize=False
    )
    for text in ("The app crashes!  Twice\n\tnow.", "<|im_start|>user\nhi<|im_end|>"):
        assert exported(text)["input_ids"] == original(text)["input_ids"]
    assert (exported.bos_token, exported.eos_token) == ("<|im_start|>", "<|im_end|>")


def test_the_modelfile_speaks_chatml_with_the_data_s_system_prompt(tiny_run, tmp_path) -> None:
    result = export_run(tiny_run, tmp_path / "out", kind="gguf", quant="q8_0")
    modelfile = (result.out / "Modelfile").read_text()
    first = json.loads(SAMPLE.read_text().splitlines()[0])["messages"][0]
    assert first["role"] == "system"  # every sample example has this one system prompt
    assert "FROM ./model-q8_0.gguf\n" in modelfile
    assert "<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>" in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile
    assert f'SYSTEM """{first["content"]}"""' in modelfile
    assert "PARAMETER num_ctx 256" in modelfile  # the run's max_seq_len
    card = (result.out / "README.md").read_text()
    assert "llama-cli -m model-q8_0.gguf" in card and "ollama create" in card
    assert any("ollama create" in note for note in result.notes)
    words = serve_line(result.notes, "llama.cpp: llama-server ")
    assert words == ["-m", str(result.out / "model-q8_0.gguf")]


def test_without_a_system_prompt_the_modelfile_uses_the_template_s_default(
    tiny_model_dir, tmp_path, tunedeck_home
) -> None:
    data = tmp_path / "no_system.jsonl"
    rows = [json.loads(line)["messages"] for line in SAMPLE.read_text().splitlines()[:40]]
    data.write_text("".join(json.dumps({"messages": [m for m in r if m["role"] != "system"]})
                            + "\n" for r in rows))  # fmt: skip
    run = make_run(tiny_model_dir, data, max_seq_len=384)
    result = export_run(run, tmp_path / "out", kind="gguf", quant="f16")
    modelfile = (result.out / "Modelfile").read_text()
    # the tiny ChatML template adds this system prompt to a chat without one, as in training
    assert 'SYSTEM """You are a helpful assistant."""' in modelfile
    assert "PARAMETER num_ctx 384" in modelfile


def test_the_adapter_gguf_holds_its_pairs_and_alpha(tiny_run, tiny_model_dir, tmp_path) -> None:
    result = export_run(tiny_run, tmp_path / "lora", kind="gguf-adapter")
    reader = GGUFReader(result.out / "lora-adapter-f16.gguf")
    assert reader.get_field("general.type").contents() == "adapter"
    assert reader.get_field("adapter.type").contents() == "lora"
    assert reader.get_field("adapter.lora.alpha").contents() == LORA_ALPHA
    tensors = {t.name: t for t in reader.tensors}
    assert len(tensors) == 2 * 2 * 7  # 2 layers x 7 linear modules x (lora_a, lora_b)
    a, b = tensors["blk.1.attn_q.weight.lora_a"], tensors["blk.1.attn_q.weight.lora_b"]
    assert a.shape.tolist() == [64, LORA_R] and b.shape.tolist() == [LORA_R, 64]  # ne order
    assert "read back: 14 LoRA pairs" in result.notes[0] and "alpha 16" in result.notes[0]

    # base GGUF + (alpha / r) * lora_b @ lora_a == merged GGUF, in llama.cpp's row order
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    gguf_export.write_model_gguf(base.state_dict, config, tiny_model_dir,
                                 tmp_path / "base.gguf", "f16", "base")  # fmt: skip
    full = export_run(tiny_run, tmp_path / "full", kind="gguf", quant="f16")
    base_t = {t.name: t for t in GGUFReader(tmp_path / "base.gguf").tensors}
    full_t = {t.name: t for t in GGUFReader(full.out / "model-f16.gguf").tensors}
    for name in ("blk.0.attn_q.weight", "blk.1.attn_k.weight", "blk.0.ffn_down.weight"):
        lora_a = tensors[f"{name}.lora_a"].data.astype(np.float32)
        lora_b = tensors[f"{name}.lora_b"].data.astype(np.float32)
        rebuilt = base_t[name].data.astype(np.float32) + LORA_ALPHA / LORA_R * lora_b @ lora_a
        np.testing.assert_allclose(rebuilt, full_t[name].data.astype(np.float32), atol=2e-3)


def test_permutation_is_what_transformers_undoes() -> None:
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    rows = np.arange(12 * 4 * 5, dtype=np.float32).reshape(12 * 4, 5)
    undo = LlamaTensorProcessor(config={"num_attention_heads": 12, "num_key_value_heads": 4})
    permuted = permute_rotary(rows, 4)
    assert not np.array_equal(permuted, rows)
    np.testing.assert_array_equal(undo.process(permuted, "blk.0.attn_k.weight").weights, rows)


def test_qwen2_is_written_without_permutation_and_loads(tmp_path, tiny_model_dir) -> None:
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(2)
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )).eval()  # fmt: skip
    model_dir = tmp_path / "qwen"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    summary = gguf_export.write_model_gguf(model.state_dict, config, model_dir,
                                           tmp_path / "q.gguf", "f16", "qwen")  # fmt: skip
    assert summary.architecture == "qwen2" and summary.types["F32"] == 2 * 5 + 1  # norms, biases
    reader = {t.name: t for t in GGUFReader(tmp_path / "q.gguf").tensors}
    q = model.state_dict()["model.layers.0.self_attn.q_proj.weight"].numpy()
    stored = dequantize(
        reader["blk.0.attn_q.weight"].data, reader["blk.0.attn_q.weight"].tensor_type
    )
    np.testing.assert_allclose(stored, q, atol=1e-3)  # rows as they are
    exported = load_gguf(tmp_path / "q.gguf")
    ids = torch.tensor([PROMPTS[1]])
    with torch.no_grad():
        gap = (model(ids).logits - exported(ids).logits).abs().max().item()
    assert gap <= LOGIT_TOLERANCE["f16"]


def test_an_unsupported_architecture_is_refused_before_any_work(
    tmp_path, monkeypatch, tunedeck_home
) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    from tests.tiny_model import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    model_dir = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=64, n_layer=2, n_head=4)
                    ).save_pretrained(model_dir)  # fmt: skip
    tokenizer.save_pretrained(model_dir)
    run = make_run(model_dir)

    def no_merge(*args, **kwargs):
        raise AssertionError("the export merged before refusing")

    monkeypatch.setattr("engine.export.gguf.run.merged_model", no_merge)
    for kind in ("gguf", "gguf-adapter"):
        with pytest.raises(UnsupportedModelError) as info:
            export_run(run, tmp_path / "out", kind=kind)  # type: ignore[arg-type]
        assert "'gpt2' architecture" in info.value.message
        assert "llama" in info.value.hint and "qwen2" in info.value.hint
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_an_interrupted_gguf_export_leaves_nothing_complete_looking(
    tiny_run, tmp_path, monkeypatch
) -> None:
    calls = []

    def crash_midway(plan, data):
        calls.append(plan.name)
        if len(calls) == 5:
            raise OSError(28, "No space left on device")
        return real(plan, data)

    real = gguf_export.encode_tensor
    monkeypatch.setattr(gguf_export, "encode_tensor", crash_midway)
    with pytest.raises(OSError):
        export_run(tiny_run, tmp_path / "out", kind="gguf", quant="q8_0")
    assert list(tmp_path.iterdir()) == []  # neither the export nor its partial directory


def test_cli_gguf_export(tiny_run, tmp_path) -> None:
    home = tiny_run.parent.parent
    env = {**os.environ, "TUNEDECK_HOME": str(home)}
    command = [sys.executable, "-m", "tui.cli", "export", tiny_run.name, "--out"]
    result = subprocess.run([*command, str(tmp_path / "g"), "--gguf", "--quant", "q4_0"],
                            capture_output=True, text=True, cwd=REPO_ROOT, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "GGUF model exported to" in result.stdout and "read back: 20 tensors" in result.stdout
    assert f"ollama create tunedeck-{tiny_run.name}" in result.stdout
    assert (tmp_path / "g" / "model-q4_0.gguf").is_file()
    refused = subprocess.run([*command, str(tmp_path / "x"), "--quant", "f16"],
                             capture_output=True, text=True, cwd=REPO_ROOT, env=env)  # fmt: skip
    assert refused.returncode == 2 and "--quant applies to --gguf only" in refused.stderr


def sentencepiece_style_tokenizer():
    """A Mistral-style tokenizer.json: BPE with byte fallback over `▁`-joined words."""
    from tokenizers import Tokenizer, decoders, models, normalizers, trainers
    from transformers import PreTrainedTokenizerFast

    from tests.tiny_model import _CORPUS

    core = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    core.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                            normalizers.Replace(" ", "▁")])  # fmt: skip
    core.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                      decoders.Fuse(), decoders.Strip(" ", 1, 0)])  # fmt: skip
    specials = ["<unk>", "<s>", "</s>", *(f"<0x{i:02X}>" for i in range(256))]
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials, show_progress=False)
    core.train_from_iterator([t.replace(" ", "▁") for t in _CORPUS * 4], trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")  # fmt: skip


def test_a_mistral_style_tokenizer_is_written_as_a_sentencepiece_vocabulary(tmp_path) -> None:
    from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM

    tokenizer = sentencepiece_style_tokenizer()
    torch.manual_seed(3)
    model = MistralForCausalLM(MistralConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, sliding_window=None,
        bos_token_id=1, eos_token_id=2,
    )).eval()  # fmt: skip
    model.save_pretrained(tmp_path / "mistral")
    tokenizer.save_pretrained(tmp_path / "mistral")
    config = json.loads((tmp_path / "mistral" / "config.json").read_text())
    summary = gguf_export.write_model_gguf(model.state_dict, config, tmp_path / "mistral",
                                           tmp_path / "m.gguf", "f16", "tiny")  # fmt: skip
    assert summary.architecture == "llama" and summary.vocab_size == len(tokenizer)
    reader = GGUFReader(tmp_path / "m.gguf")
    assert reader.get_field("tokenizer.ggml.model").contents() == "llama"
    exported = AutoTokenizer.from_pretrained(tmp_path, gguf_file="m.gguf")
    for text in ("My invoice is wrong and I was charged twice", "Hello wörld 😀"):  # byte fallback
        assert exported(text)["input_ids"] == tokenizer(text)["input_ids"]
    ids = torch.tensor([[1, 50, 60, 70, 80]])
    with torch.no_grad():
        gap = (model(ids).logits - load_gguf(tmp_path / "m.gguf")(ids).logits).abs().max().item()
    assert gap <= LOGIT_TOLERANCE["f16"]


# ---------------------------------------------------------------------------
# K-quants: llama.cpp's own quantizer (the optional tunedeck[gguf] extra)
# ---------------------------------------------------------------------------


def test_a_k_quant_without_llama_cpp_is_refused_before_any_work(
    tiny_run, tmp_path, monkeypatch
) -> None:
    from engine.export.gguf import kquant
    from engine.export.gguf.options import GGUF_EXTRA

    monkeypatch.setattr(kquant, "quantizer_available", lambda: False)
    monkeypatch.setattr("engine.export.gguf.run.merged_model", no_merge_allowed)
    with pytest.raises(kquant.QuantizerError) as info:
        export_run(tiny_run, tmp_path / "out", kind="gguf", quant="q4_k_m")
    assert "q4_k_m" in info.value.message and "not installed" in info.value.message
    assert GGUF_EXTRA in info.value.hint and "f16, q8_0 and q4_0" in info.value.hint
    assert list(tmp_path.iterdir()) == []
    # the types tunedeck writes itself need nothing more
    export_run(tiny_run, tmp_path / "q4", kind="gguf-adapter")


def no_merge_allowed(*args, **kwargs):
    raise AssertionError("the export merged before refusing")


class FakeQuantizeParams(ctypes.Structure):
    _fields_ = [("nthread", ctypes.c_int32), ("ftype", ctypes.c_int)]


class FakeLlamaCpp:
    """Stands in for llama-cpp-python's C quantizer (not installed in CI): records what
    tunedeck asks of it, logs like llama.cpp, and writes its input's bytes as output (or
    fails with `code`). What llama.cpp itself makes of the file is checked where the
    extra is installed (the test below, bench/llamacpp_check.py)."""

    def __init__(self, code: int = 0) -> None:
        import importlib.machinery
        import types

        self.code, self.calls, self.log_set = code, [], []
        module = types.ModuleType("llama_cpp")
        module.__spec__ = importlib.machinery.ModuleSpec("llama_cpp", None)
        module.llama_log_callback = ctypes.CFUNCTYPE(
            None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p
        )
        module.llama_backend_init = lambda: None
        module.llama_model_quantize_default_params = FakeQuantizeParams
        module.llama_log_set = lambda callback, user: self.log_set.append(callback)
        module.llama_model_quantize = self.quantize
        logger = types.ModuleType("llama_cpp._logger")
        logger.llama_log_callback = "llama-cpp-python's own"
        self.modules = {"llama_cpp": module, "llama_cpp._logger": logger}

    def quantize(self, source: bytes, target: bytes, params) -> int:
        params = params._obj  # ctypes.byref(params)
        self.calls.append((Path(source.decode()), Path(target.decode()), params.ftype))
        self.log_set[-1](2, b"llama_model_quantize_impl: model size = 1.2 MB\n", None)
        if self.code == 0:
            Path(target.decode()).write_bytes(Path(source.decode()).read_bytes())
        else:
            self.log_set[-1](3, b"llama_model_quantize: failed to quantize: bad tensor\n", None)
        return self.code


def test_a_k_quant_is_llama_cpp_s_quantisation_of_tunedeck_s_f16_file(
    tiny_run, tmp_path, monkeypatch
) -> None:
    fake = FakeLlamaCpp()
    for name, module in fake.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    result = export_run(tiny_run, tmp_path / "out", kind="gguf", quant="q5_k_m")
    [(source, target, ftype)] = fake.calls
    assert ftype == 17  # LLAMA_FTYPE_MOSTLY_Q5_K_M
    assert source.name == ".f16-for-llama-quantize.gguf" and target.name == "model-q5_k_m.gguf"
    assert "model-q5_k_m.gguf" in result.files
    assert not [name for name in result.files if "f16" in name]  # the f16 input is gone
    assert "read back: 20 tensors" in result.notes[0]
    # llama.cpp's log went to tunedeck while quantising, then back to llama-cpp-python's logger
    assert fake.log_set[-1] == "llama-cpp-python's own"
    assert "FROM ./model-q5_k_m.gguf\n" in (result.out / "Modelfile").read_text()
    card = (result.out / "README.md").read_text()
    assert "(q5_k_m)" in card and "llama-cli -m model-q5_k_m.gguf" in card
    assert serve_line(result.notes, "llama.cpp: llama-server ") == [
        "-m", str(result.out / "model-q5_k_m.gguf")
    ]  # fmt: skip

    failing = FakeLlamaCpp(code=1)
    for name, module in failing.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    from engine.export.gguf.kquant import QuantizerError

    with pytest.raises(QuantizerError) as info:
        export_run(tiny_run, tmp_path / "bad", kind="gguf", quant="q6_k")
    assert "could not quantise" in info.value.message and "(code 1)" in info.value.message
    assert "failed to quantize: bad tensor" in info.value.message
    assert not (tmp_path / "bad").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bad")]


@pytest.mark.skipif(
    not quantizer_available(),
    reason="llama-cpp-python (the tunedeck[gguf] extra) is not installed",
)
def test_a_q4_k_m_export_loads_and_answers_in_llama_cpp(tiny_run, tmp_path) -> None:
    from llama_cpp import Llama

    result = export_run(tiny_run, tmp_path / "out", kind="gguf", quant="q4_k_m")
    path = result.out / "model-q4_k_m.gguf"
    reader = GGUFReader(path)
    assert int(reader.get_field("general.file_type").contents()) == 15  # MOSTLY_Q4_K_M
    llm = Llama(str(path), n_ctx=128, verbose=False)
    out = llm.create_completion("The app crashes", max_tokens=8, temperature=0.0)
    assert out["usage"]["completion_tokens"] > 0
