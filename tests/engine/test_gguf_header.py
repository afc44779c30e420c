"""engine.export.gguf.header against gguf's own GGUFReader on files GGUFWriter wrote."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter, quantize

from engine.export.gguf.header import SMALL_ARRAY, GgufHeaderError, read_header

TOKENS = [f"tok{i}" if i % 7 else f"ĠÃ©{i}" for i in range(1000)]


def write_sample(path: Path) -> None:
    writer = GGUFWriter(path, "llama")
    writer.add_string("tokenizer.ggml.model", "gpt2")
    writer.add_string("tokenizer.ggml.pre", "smollm")
    writer.add_token_list(TOKENS)
    writer.add_token_scores([float(i) for i in range(1000)])
    writer.add_uint32("llama.context_length", 2048)
    writer.add_int32("some.int", -5)
    writer.add_float32("adapter.lora.alpha", 16.0)
    writer.add_float64("some.double", 0.25)
    writer.add_bool("some.flag", True)
    writer.add_uint64("some.big", 2**40)
    writer.add_int8("some.i8", -3)
    writer.add_uint16("some.u16", 65000)
    writer.add_array("some.small", [1, 2, 3])
    writer.add_array("some.names", ["a", "bé"])
    writer.add_key_value("some.u8", 7, GGUFValueType.UINT8)
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((64, 96)).astype(np.float32)
    writer.add_tensor("token_embd.weight", weight.astype(np.float16))
    writer.add_tensor("blk.0.attn_q.weight", weight)
    q8 = quantize(weight, GGMLQuantizationType.Q8_0)
    writer.add_tensor("blk.0.attn_k.weight", q8, raw_dtype=GGMLQuantizationType.Q8_0)
    writer.add_tensor("output_norm.weight", np.ones(96, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_the_header_reads_as_gguf_s_own_reader_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "sample.gguf"
    write_sample(path)
    header, reader = read_header(path), GGUFReader(path)
    assert header.version == 3
    assert [(t.name, t.dims, t.ggml_type) for t in header.tensors] == [
        (t.name, tuple(int(d) for d in t.shape), int(t.tensor_type)) for t in reader.tensors
    ]
    assert header.tensors[2].shape == (64, 96)
    for name, found in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        if found.types[0] == GGUFValueType.ARRAY:
            assert header.array_lengths[name] == len(found.data), name
            if len(found.data) > SMALL_ARRAY:
                assert name not in header.fields
                continue
        expected = found.contents()
        got = header.fields[name]
        if isinstance(expected, float):
            assert got == pytest.approx(expected), name
        else:
            assert got == expected, name
    assert header.array_lengths["tokenizer.ggml.tokens"] == len(TOKENS)
    assert header.fields["some.flag"] is True and header.fields["some.big"] == 2**40


def test_what_is_not_a_whole_gguf_is_named(tmp_path: Path) -> None:
    path = tmp_path / "sample.gguf"
    write_sample(path)
    data = path.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[:2000])  # inside the vocabulary
    with pytest.raises(GgufHeaderError, match="cut.gguf: the GGUF header is cut short"):
        read_header(cut)
    other = tmp_path / "model.safetensors"
    other.write_bytes(b"\x00" * 64)
    with pytest.raises(GgufHeaderError, match="model.safetensors is not a GGUF file"):
        read_header(other)
    tiny = tmp_path / "tiny.gguf"
    tiny.write_bytes(b"GGUF")
    with pytest.raises(GgufHeaderError, match="too short"):
        read_header(tiny)
