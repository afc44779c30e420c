"""Pieces training and evaluation share: the end-of-turn token list and right padding."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from engine.eval.generate import stop_token_ids
from engine.model.batching import right_padded
from engine.model.tokenization import END_OF_TURN_TOKENS, IGNORE_INDEX, end_of_turn_texts


class VocabTokenizer:
    """A tokenizer reduced to what the two lists read: its vocabulary and its eos."""

    def __init__(self, tokens: list[str], eos: str) -> None:
        self.vocab = {token: i for i, token in enumerate(tokens)}
        self.eos_token = eos
        self.eos_token_id = self.vocab[eos]

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)


@pytest.mark.parametrize("token", END_OF_TURN_TOKENS)
def test_generation_stops_at_every_end_of_turn_token_that_training_teaches(token: str) -> None:
    # Llama-3.1's <|eom_id|>, Gemma's <eos> and Llama-3's <|end_of_text|> were trained as the
    # end of an answer but did not stop generation: one list now serves both.
    tokenizer = VocabTokenizer(["a", "b", "<|endoftext|>", token], eos="<|endoftext|>")
    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=None))
    stops = stop_token_ids(model, tokenizer)
    trained_ends = end_of_turn_texts(tokenizer)
    assert token in trained_ends
    assert {tokenizer.vocab[t] for t in trained_ends} <= set(stops)
    assert tokenizer.vocab[token] in stops


def test_right_padding_pads_inputs_labels_and_mask() -> None:
    ids, labels, mask = right_padded([([5, 6, 7], [-100, 6, 7]), ([8], [8])], pad=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert labels.tolist() == [[IGNORE_INDEX, 6, 7], [8, IGNORE_INDEX, IGNORE_INDEX]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert str(ids.dtype) == str(labels.dtype) == str(mask.dtype) == "torch.int64"


def test_training_batches_and_validation_loss_pad_alike() -> None:
    from engine.train.dataset import PaddingCollator

    rows = [{"input_ids": [1, 2], "labels": [IGNORE_INDEX, 2]}, {"input_ids": [3], "labels": [3]}]
    batch = PaddingCollator(pad_id=9)(rows)
    ids, labels, mask = right_padded([(r["input_ids"], r["labels"]) for r in rows], pad=9)
    assert batch["input_ids"].tolist() == ids.tolist()
    assert batch["labels"].tolist() == labels.tolist()
    assert batch["attention_mask"].tolist() == mask.tolist()
