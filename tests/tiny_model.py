"""Build a tiny random causal LM and its tokenizer locally, with no downloads.

The tokenizer is a byte-level BPE trained in memory on a few sentences, with the
ChatML special tokens and chat template that SmolLM2 uses, so chat formatting and
assistant-token masking behave as with the real default model. The model is a 2-layer
Llama with hidden size 64 (bitsandbytes' CPU 4-bit kernels need dimensions of at least
its block size, 64, so QLoRA works on it too): it builds in well under a second and
trains on CPU in tests.
"""

from __future__ import annotations

from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# The shape of SmolLM2-135M-Instruct (its config.json), for arithmetic that needs a real
# architecture without loading one: parameter counts, memory and time estimates.
SMOLLM2_135M_CONFIG: dict = {
    "model_type": "llama",
    "vocab_size": 49152,
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "tie_word_embeddings": True,
    "max_position_embeddings": 8192,
}

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = [
    "You are the support assistant. Classify the ticket into one category.",
    'The answer is {"category": "billing", "reply": "Thanks, we will check the invoice."}',
    "My invoice is wrong and I was charged twice this month, please help.",
    "The app crashes when I open a shared folder on my phone.",
    "How do I reset my password? What is the capital of France? Paris.",
    "system user assistant outage bug account feature_request how_to",
    "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?'\"{}[]()-_/",
]


def build_tiny_tokenizer(vocab_size: int = 512):
    """Train a byte-level BPE tokenizer in memory and wrap it for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_CORPUS * 4, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    tok.chat_template = CHATML_TEMPLATE
    return tok


def build_tiny_model(tokenizer, hidden_size: int = 64, layers: int = 2, seed: int = 0):
    """A randomly initialised 2-layer Llama sized to the tokenizer's vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config)


def save_tiny_model(directory: Path) -> Path:
    """Build the tiny tokenizer and model and save both as an HF model directory."""
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
