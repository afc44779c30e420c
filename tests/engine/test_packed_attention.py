"""Per-example attention in padding-free rows computes what the masked `sdpa` path does."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, Qwen2Config

from engine.model.loss import PackedCollator, trained_positions_loss
from engine.train.dataset import PaddingCollator
from engine.train.packed_attention import (
    NAME,
    sequence_starts,
    supports_packed_attention,
    use_packed_attention,
)
from tests.tiny_model import build_tiny_model


def pair(tokenizer):
    """The same weights twice: transformers' sdpa, and the packed attention."""
    masked, packed = build_tiny_model(tokenizer), build_tiny_model(tokenizer)
    assert masked.config._attn_implementation == "sdpa"
    assert use_packed_attention(packed)
    assert packed.config._attn_implementation == NAME
    return masked, packed


def grads(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("bounds_from", ["cu_seq_lens", "position_ids"])
def test_packed_row_loss_and_gradients_equal_the_masked_path(
    tiny_tokenizer, batch, bounds_from, monkeypatch
) -> None:
    masked, packed = pair(tiny_tokenizer)
    row = PackedCollator()(batch)
    assert row["cu_seq_lens"].tolist()[-1] == row["input_ids"].shape[1]
    if bounds_from == "position_ids":
        row = {k: v for k, v in row.items() if k != "cu_seq_lens"}
    expected, _ = trained_positions_loss(masked, row)
    expected.backward()
    lengths = []
    attend = torch.nn.functional.scaled_dot_product_attention

    def counting(query, *args, **kwargs):
        lengths.append(query.shape[2])
        return attend(query, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting)
    loss, _ = trained_positions_loss(packed, row)
    monkeypatch.undo()
    loss.backward()
    # one call per example and layer, each over that example's tokens only
    assert lengths == [len(item["input_ids"]) for item in batch] * packed.config.num_hidden_layers
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads(packed), grads(masked), rtol=1e-4, atol=1e-6)
    # and both equal the model's own loss on the padded batch
    padded = PaddingCollator(tiny_tokenizer.pad_token_id)(batch)
    with torch.no_grad():
        torch.testing.assert_close(masked(**padded).loss, expected, rtol=1e-5, atol=1e-6)


def test_examples_in_a_row_do_not_see_each_other(tiny_tokenizer, batch) -> None:
    _, packed = pair(tiny_tokenizer)
    packed.eval()
    row = PackedCollator()(batch[:2])
    with torch.no_grad():
        together = packed(input_ids=row["input_ids"], position_ids=row["position_ids"],
                          cu_seq_lens_q=row["cu_seq_lens"], use_cache=False).logits  # fmt: skip
        alone = packed(input_ids=torch.tensor([batch[1]["input_ids"]])).logits
    first = len(batch[0]["input_ids"])
    torch.testing.assert_close(together[:, first:], alone, rtol=1e-4, atol=1e-5)


def test_padded_batches_and_generation_take_the_sdpa_path(tiny_tokenizer, batch) -> None:
    masked, packed = pair(tiny_tokenizer)
    masked.eval(), packed.eval()
    padded = PaddingCollator(tiny_tokenizer.pad_token_id)(batch)
    with torch.no_grad():
        torch.testing.assert_close(packed(**padded).logits, masked(**padded).logits)
    prompt = torch.tensor([batch[0]["input_ids"][:20]])
    settings = {"max_new_tokens": 8, "do_sample": False, "pad_token_id": 0}
    assert torch.equal(packed.generate(prompt, **settings), masked.generate(prompt, **settings))


def test_bf16_rows_attend_in_fp32_on_cpu_and_return_bf16(tiny_tokenizer, batch) -> None:
    masked, packed = pair(tiny_tokenizer)
    masked.to(torch.bfloat16), packed.to(torch.bfloat16)
    row = PackedCollator()(batch)
    with torch.no_grad():
        ours, _ = trained_positions_loss(packed, row)
        theirs, _ = trained_positions_loss(masked, row)
    assert ours.dtype == torch.float32  # the loss is taken over upcast logits
    torch.testing.assert_close(ours, theirs, rtol=2e-2, atol=2e-2)


def test_sequence_starts_from_restarting_positions() -> None:
    positions = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]])
    assert sequence_starts(positions) == [0, 3, 5, 9]
    assert sequence_starts(torch.arange(5)[None]) == [0, 5]


def test_only_plain_causal_models_switch() -> None:
    def config(cls, **kwargs):
        made = cls(num_hidden_layers=2, **kwargs)
        made._attn_implementation = "sdpa"
        return made

    assert supports_packed_attention(config(LlamaConfig))
    assert supports_packed_attention(config(Qwen2Config, use_sliding_window=False))
    assert not supports_packed_attention(
        config(Qwen2Config, use_sliding_window=True, sliding_window=64, max_window_layers=0)
    )
    eager = config(LlamaConfig)
    eager._attn_implementation = "eager"
    assert not supports_packed_attention(eager)


def test_bounds_come_from_the_cpu_ints_before_any_tensor_is_read() -> None:
    """On a GPU `cu_seq_lens_q.tolist()` in every layer waits for the device each time."""
    from engine.train.packed_attention import row_bounds

    class OnTheGpu:
        def tolist(self):
            raise AssertionError("read the device tensor: a host sync per layer")

    kwargs = {"seq_bounds": (0, 5, 9), "cu_seq_lens_q": OnTheGpu()}
    assert row_bounds(kwargs, 9) == [0, 5, 9]
    assert row_bounds({"cu_seq_lens_q": torch.tensor([0, 4, 9])}, 9) == [0, 4, 9]
    assert row_bounds({}, 7) == [0, 7]


def test_the_collator_hands_cpu_bounds_and_the_longest_example(batch) -> None:
    row = PackedCollator()(batch)
    lengths = [len(item["input_ids"]) for item in batch]
    assert row["seq_bounds"] == tuple(row["cu_seq_lens"].tolist())
    assert row["max_length"] == max(lengths)
