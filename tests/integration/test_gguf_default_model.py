"""Slow: GGUF export of a fine-tuned run of the real default model (smollm2-135m), read back
by transformers' own GGUF loader and compared with the merged safetensors model on the
run's validation prompts.

The merge is stored in float16 (the embedded model is fp32, dequantised from its 4-bit GGUF;
engine.export.merge), so the f16 GGUF holds the merged model's very weights. Both sides run
in fp32 here.

Greedy answers, NEW_TOKENS new tokens per prompt. Two agreements with the merged model:
- free-running (f16 only): implied by a greedy-token agreement of 1.0 on the merged
  model's own answers (each next token is the same, so each answer is), so not generated
  a second time;
- greedy tokens: each side's greedy choice at every position of the merged model's own
  answer (teacher-forced: one flipped near-tie does not send the rest of an answer its own
  way), which is what the quantised thresholds below are for.

The f16 file is loaded by transformers' from_pretrained (config, layout and weights read
independently of the exporter); the quantised files by the same loader's tensor reader
into the merged model's architecture, which skips rebuilding the 49k-token vocabulary
twice more (the test took ~3.7 min before, ~2.4 min after, on 2 cores).

Required:
- f16: the merged model's own logits (max gap <= F16_LOGIT_TOLERANCE, float rounding of
  the same weights) and exactly its greedy answers;
- q4_0: >= Q4_AGREEMENT (4-bit blocks move a 135M model's many near-ties).

q8_0 goes through the same writer with a finer quantiser; tests/integration/
test_gguf_export.py holds it to the merged model's logits and >= 90 % greedy tokens on the
tiny model, and the Modelfile test below exports it from this run. Reading it back here as
well cost ~30 s of the suite and told nothing the tiny model does not.

Seen here: f16 identical answers and a logit gap of 0 (the same weights); on the default
flow's real run (tickets, 3 epochs) 14 of 14 validation answers identical. Greedy tokens on
this test's 2-step run (5 prompts x 32 tokens): q8_0 0.99, q4_0 0.76; (4 x 24): see the
printed line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.config.build import from_preset, load_config, with_overrides
from engine.export.exporter import export_run
from engine.export.gguf.header import read_header
from engine.export.gguf.vocab import CHECK_TEXT, KNOWN_PRE_TOKENIZERS
from engine.model.resolve import DEFAULT_MODEL, EMBEDDED, find_embedded_gguf
from engine.runs.store import start_run
from tests.integration.serving import serve_line
from tests.integration.test_training import SAMPLE, wait_for_state

pytestmark = pytest.mark.slow

NEW_TOKENS = 24
MAX_PROMPTS = 4
F16_LOGIT_TOLERANCE = 1e-3
"""On logits of magnitude ~20: the same float16 weights, read by two loaders."""
Q4_AGREEMENT = 0.6


@pytest.fixture(scope="module")
def tuned_run(default_model_home) -> Path:
    """Two LoRA steps on the sample data: a fine-tuned run with a saved adapter."""
    import os

    os.environ["TUNEDECK_HOME"] = str(default_model_home)
    cfg = with_overrides(from_preset("quick"), **{
        "model": DEFAULT_MODEL, "method": "lora", "data.source": str(SAMPLE),
        "max_steps": 2, "micro_batch_size": 2, "gradient_accumulation": 1,
        "learning_rate": 2e-3, "max_seq_len": 512, "logging_steps": 1, "eval_steps": 2,
        "save_steps": 2,
    })  # fmt: skip
    info = start_run(cfg)
    wait_for_state(info.dir, ("completed",), timeout=600)
    return info.dir


def val_prompts(run: Path, tokenizer) -> list[list[int]]:
    prompts = []
    for line in (run / "data" / "val.jsonl").read_text().splitlines()[:MAX_PROMPTS]:
        messages = json.loads(line)["messages"][:-1]  # without the expected answer
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        prompts.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    return prompts


def answers(model, prompts: list[list[int]]) -> list[list[int]]:
    out = []
    with torch.no_grad():
        for prompt in prompts:
            ids = torch.tensor([prompt])
            generated = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False,
                                       min_new_tokens=NEW_TOKENS)  # fmt: skip
            out.append(generated[0, len(prompt) :].tolist())
    return out


def greedy_tokens(reference, model, prompts: list[list[int]], answers_: list[list[int]]) -> float:
    """Share of positions of the reference's answers where both models pick the same token."""
    same = total = 0
    with torch.no_grad():
        for prompt, answer in zip(prompts, answers_, strict=True):
            ids = torch.tensor([prompt + answer])
            window = slice(len(prompt) - 1, -1)
            a = reference(ids).logits[0, window].argmax(-1)
            b = model(ids).logits[0, window].argmax(-1)
            same, total = same + int((a == b).sum()), total + len(answer)
    return same / total


def test_f16_and_q4_exports_answer_like_the_merged_model(tuned_run, tmp_path, monkeypatch) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("TUNEDECK_HOME", str(tuned_run.parent.parent))
    merged_dir = export_run(tuned_run, tmp_path / "merged", kind="merged").out
    reference = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    prompts = val_prompts(tuned_run, tokenizer)
    expected = answers(reference, prompts)
    measured, gap = {}, None
    for quant in ("f16", "q4_0"):
        result = export_run(tuned_run, tmp_path / quant, kind="gguf", quant=quant)
        path = result.out / f"model-{quant}.gguf"
        header = read_header(path)
        assert len(header.tensors) == 30 * 9 + 2  # tied embedding: no output.weight
        assert header.array_lengths["tokenizer.ggml.tokens"] == 49152
        assert header.fields["tokenizer.ggml.pre"] == "smollm"
        assert (result.out / "Modelfile").is_file()
        if quant == "f16":
            # transformers' own GGUF loader, config and all: the same weights, so the
            # same logits, and the same greedy token at every position of the merged
            # model's answers (measured below), hence the same free-running answers
            exported = AutoModelForCausalLM.from_pretrained(
                result.out, gguf_file=path.name, dtype=torch.float32
            ).eval()
            with torch.no_grad():
                ids = torch.tensor([prompts[0]])
                gap = (reference(ids).logits - exported(ids).logits).abs().max().item()
        else:
            # the same loader's tensors (dequantised, Q/K un-permuted) in the reference's
            # architecture: the f16 file above already proved the config and the layout
            exported = quantised_copy(reference, path)
        measured[quant] = greedy_tokens(reference, exported, prompts, expected)
        del exported
    print(f"greedy tokens: {measured}; f16 logit gap {gap}")
    assert measured["f16"] == 1.0, measured
    assert gap is not None and gap <= F16_LOGIT_TOLERANCE, gap
    assert measured["q4_0"] >= Q4_AGREEMENT, measured


def quantised_copy(reference, path: Path):
    """`reference` with the weights of the GGUF at `path`, as transformers reads them."""
    import copy

    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    tensors = load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=reference)
    model = copy.deepcopy(reference)
    result = model.load_state_dict(tensors["tensors"], strict=False)
    assert not result.unexpected_keys and result.missing_keys == ["lm_head.weight"], result
    model.tie_weights()
    return model.eval()


def test_modelfile_and_adapter_gguf_of_the_default_model(tuned_run, tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    monkeypatch.setenv("TUNEDECK_HOME", str(tuned_run.parent.parent))
    result = export_run(tuned_run, tmp_path / "q8", kind="gguf", quant="q8_0")
    header = read_header(result.out / "model-q8_0.gguf")
    assert len(header.tensors) == 30 * 9 + 2 and header.fields["general.file_type"] == 7
    modelfile = (result.out / "Modelfile").read_text()
    system = json.loads(SAMPLE.read_text().splitlines()[0])["messages"][0]["content"]
    assert f'SYSTEM """{system}"""' in modelfile and "PARAMETER num_ctx 512" in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile

    lora = export_run(tuned_run, tmp_path / "lora", kind="gguf-adapter")
    header = read_header(lora.out / "lora-adapter-f16.gguf")
    assert header.fields["adapter.lora.alpha"] == load_config(tuned_run / "config.toml").lora.alpha
    assert len(header.tensors) == 30 * 7 * 2  # all-linear: 7 modules a layer, a and b
    base_gguf = find_embedded_gguf(EMBEDDED[DEFAULT_MODEL])
    lora_modelfile = (lora.out / "Modelfile").read_text()
    assert f"FROM {base_gguf}\nADAPTER ./lora-adapter-f16.gguf" in lora_modelfile
    words = serve_line(lora.notes, "llama.cpp: llama-server ")
    assert words == ["-m", str(base_gguf), "--lora", str(lora.out / "lora-adapter-f16.gguf")]

    # llama.cpp's own recognition (sha256 of the test text's ids) agrees with the source GGUF
    from engine.model.resolve import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(DEFAULT_MODEL))
    from hashlib import sha256

    digest = sha256(str(tokenizer.encode(CHECK_TEXT)).encode()).hexdigest()
    assert KNOWN_PRE_TOKENIZERS[digest] == "smollm"
