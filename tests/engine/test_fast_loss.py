"""The fast loss path is the same mathematics: packed == padded == the model's own loss."""

from __future__ import annotations

import json

import torch

from engine.model.loss import PackedCollator, PackedDataset, trained_positions_loss
from engine.train.dataset import PaddingCollator
from tests.tiny_model import build_tiny_model


def grads(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def test_packed_and_padded_losses_and_gradients_equal_the_models_own(tiny_tokenizer, batch) -> None:
    model = build_tiny_model(tiny_tokenizer)
    padded = PaddingCollator(tiny_tokenizer.pad_token_id)(batch)
    packed = PackedCollator()(batch)
    assert packed["input_ids"].shape == (1, sum(len(i["input_ids"]) for i in batch))

    reference = model(**padded).loss
    reference.backward()
    expected = grads(model)
    model.zero_grad()
    for inputs in (padded, packed):
        loss, outputs = trained_positions_loss(model, inputs)
        torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-5)
        loss.backward()
        torch.testing.assert_close(grads(model), expected, rtol=1e-4, atol=1e-6)
        model.zero_grad()
    trained = int((packed["labels"][:, 1:] != -100).sum())
    assert outputs.logits.reshape(-1, outputs.logits.shape[-1]).shape[0] == trained


def test_examples_in_a_packed_row_do_not_see_each_other(tiny_tokenizer, batch) -> None:
    model = build_tiny_model(tiny_tokenizer).eval()
    packed = PackedCollator()(batch[:2])
    with torch.no_grad():
        together = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"],
                         use_cache=False).logits  # fmt: skip
        alone = model(input_ids=torch.tensor([batch[1]["input_ids"]])).logits
    first = len(batch[0]["input_ids"])
    torch.testing.assert_close(together[:, first:], alone, rtol=1e-4, atol=1e-5)


def test_num_items_normalises_over_the_accumulated_batch(tiny_tokenizer, batch) -> None:
    model = build_tiny_model(tiny_tokenizer)
    packed = PackedCollator()(batch)
    trained = int((packed["labels"][:, 1:] != -100).sum())
    mean, _ = trained_positions_loss(model, packed)
    over_double, _ = trained_positions_loss(model, packed, torch.tensor(2 * trained))
    torch.testing.assert_close(over_double, mean / 2)


def test_packing_fills_sequences_with_whole_examples_once_each(batch) -> None:
    examples = batch * 5  # 20 examples of varied lengths
    longest = max(len(item["input_ids"]) for item in examples)
    packed = PackedDataset(examples, max_len=2 * longest, seed=3)
    assert 1 < len(packed) < len(examples)
    lengths = [n for item in packed for n in item["lengths"]]
    assert sorted(lengths) == sorted(len(item["input_ids"]) for item in examples)
    for item in packed:
        assert len(item["input_ids"]) == len(item["labels"]) == sum(item["lengths"])
        assert len(item["input_ids"]) <= 2 * longest
    # the same seed packs the same way; another seed shuffles first
    assert PackedDataset(examples, 2 * longest, 3).items == packed.items
    assert PackedDataset(examples, 2 * longest, 4).items != packed.items


def test_a_packed_sequence_collates_like_its_examples_side_by_side(batch) -> None:
    packed = PackedDataset(batch, max_len=10_000, seed=0)
    assert len(packed) == 1  # all four in one sequence
    order = packed[0]["lengths"]
    by_length = {len(item["input_ids"]): item for item in batch}
    assert len(by_length) == len(batch)
    loose = PackedCollator()([by_length[n] for n in order])
    together = PackedCollator()([packed[0]])
    for key in ("input_ids", "labels", "position_ids", "cu_seq_lens"):
        assert torch.equal(together[key], loose[key]), key


def test_chunked_cross_entropy_has_the_same_value_and_gradient() -> None:
    from engine.model.loss import summed_cross_entropy

    torch.manual_seed(0)
    logits = torch.randn(37, 50, requires_grad=True)
    targets = torch.randint(0, 50, (37,))
    whole = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
    (expected,) = torch.autograd.grad(whole, logits)
    chunked = summed_cross_entropy(logits, targets, chunk_logits=50 * 8)  # 5 chunks
    (grad,) = torch.autograd.grad(chunked, logits)
    torch.testing.assert_close(chunked, whole)
    torch.testing.assert_close(grad, expected)


def test_validation_loss_projects_only_trained_positions(tiny_tokenizer, batch) -> None:
    """Same value as the model's full-logit loss; the LM head sees answer positions only."""
    from engine.eval.generate import validation_loss
    from tests.engine.conftest import SAMPLE

    model = build_tiny_model(tiny_tokenizer).eval()
    padded = PaddingCollator(tiny_tokenizer.pad_token_id)(batch)
    with torch.no_grad():
        reference = float(model(**padded).loss)
    projected: list[int] = []
    head = model.get_output_embeddings()
    head.register_forward_hook(lambda m, i, o: projected.append(i[0].shape[:-1].numel()))
    conversations = [json.loads(line)["messages"] for line in SAMPLE.read_text().splitlines()[:4]]
    loss, tokens = validation_loss(model, tiny_tokenizer, conversations, 512, 4, "cpu")
    assert tokens == int((padded["labels"][:, 1:] != -100).sum()) == sum(projected)
    assert abs(loss - reference) < 1e-5


def test_validation_loss_halves_a_batch_that_runs_out_of_memory(tiny_tokenizer) -> None:
    from engine.eval.generate import validation_loss
    from tests.engine.conftest import SAMPLE

    model = build_tiny_model(tiny_tokenizer).eval()
    sizes: list[int] = []

    def refuse_big_batches(module, args, kwargs):
        sizes.append(kwargs["input_ids"].shape[0])
        if sizes[-1] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    model.register_forward_pre_hook(refuse_big_batches, with_kwargs=True)
    conversations = [json.loads(line)["messages"] for line in SAMPLE.read_text().splitlines()[:3]]
    loss, tokens = validation_loss(model, tiny_tokenizer, conversations, 512, 4, "cpu")
    assert sizes == [3, 2, 1, 1, 1]  # 3 refused, then 2 refused, then one at a time
    assert loss is not None and tokens > 0
