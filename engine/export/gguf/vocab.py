"""The tokenizer of a GGUF: vocabulary, token types, merges, special tokens, chat template.

Follows llama.cpp's converter (convert_hf_to_gguf.py):

- a byte-level BPE (SmolLM2, Llama-3.x, Qwen2) is written as tokenizer model `gpt2` with
  every token, its type (normal, control for special added tokens, user-defined, unused
  for holes padded as `[PADn]` up to the model's vocab_size) and the merges;
- a SentencePiece-style BPE with byte fallback (Mistral's tokenizer.json) is written as
  tokenizer model `llama` with scores, through gguf's own `LlamaHfVocab`;
- the pre-tokenizer type (`tokenizer.ggml.pre`), which selects llama.cpp's split regex:
  taken from the source GGUF when the base model was converted from one (the embedded
  SmolLM2 says `smollm`), else recognised the way llama.cpp does it, by the sha256 of the
  token ids of a fixed test text (`llama-bpe`, `qwen2`, `smollm`, ...), else `gpt-2` for a
  plain GPT-2 byte-level pre-tokenizer; anything else is refused rather than guessed;
- special token ids, add-BOS and the chat template through gguf's `SpecialVocab`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

from gguf import GGUFWriter, LlamaHfVocab, SpecialVocab, TokenType

from engine.core.errors import TunedeckError
from engine.export.gguf.header import GgufHeaderError, read_header

CHECK_TEXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis "
    "concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 "
    "កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български "
    "''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? "
    "'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"
)
"""llama.cpp's test text: its token ids identify a pre-tokenizer (chktxt)."""

KNOWN_PRE_TOKENIZERS = {
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",
    "c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d": "smaug-bpe",
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",
    "b3f499bb4255f8ca19fccd664443283318f2fd2414d5e0b040fbdd0cc195d6c5": "deepseek-r1-qwen",
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",
    "63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e": "tekken",
    "0e9433cbbb161f89e264eb32e8e64bfe69e834973ffca5d41d3948a604a3e2a3": "pixtral",
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",
}
"""sha256 of str(token ids of CHECK_TEXT) -> llama.cpp pre-tokenizer, for the families
GGUF export supports (from convert_hf_to_gguf.py's get_vocab_base_pre)."""

SOURCE_MARKER = "tunedeck-model.json"
"""engine.model.resolve writes it into a model converted from a GGUF; `source` is that file."""


@dataclass(frozen=True)
class VocabInfo:
    """What was written, for the read-back check and the Modelfile."""

    size: int
    model: str
    """`gpt2` (byte-level BPE) or `llama` (SentencePiece-style)."""
    pre: str


def add_vocabulary(writer: GGUFWriter, model_dir: Path, vocab_size: int) -> VocabInfo:
    """Write the tokenizer of the model directory into the GGUF's metadata.

    Raises:
        TunedeckError: a tokenizer llama.cpp would read differently (refused, not guessed).
    """
    from transformers import AutoTokenizer

    spec = _tokenizer_json(model_dir)
    if spec.get("model", {}).get("byte_fallback"):
        return _add_sentencepiece_style(writer, model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    pre = pre_tokenizer_type(tokenizer, model_dir, spec)
    tokens, types = _tokens_and_types(tokenizer, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = SpecialVocab(model_dir, load_merges=True, n_vocab=vocab_size)
    _say_whether_bos_is_added(special, tokenizer)
    special.add_to_gguf(writer, quiet=True)
    return VocabInfo(len(tokens), "gpt2", pre)


def _say_whether_bos_is_added(special: SpecialVocab, tokenizer: Any) -> None:
    """Write add_bos_token as the tokenizer behaves, where its files do not say: llama.cpp's
    default differs by tokenizer model (a SentencePiece vocabulary gets BOS)."""
    if "bos" not in special.add_special_token and tokenizer.bos_token_id is not None:
        ids = tokenizer("a")["input_ids"]
        special.add_special_token["bos"] = bool(ids) and ids[0] == tokenizer.bos_token_id


def _tokenizer_json(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise TunedeckError(
            f"{model_dir} has no tokenizer.json: GGUF export needs a fast tokenizer",
            hint="save the model's tokenizer with transformers (tokenizer.save_pretrained)",
        )
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _add_sentencepiece_style(writer: GGUFWriter, model_dir: Path) -> VocabInfo:
    vocab = LlamaHfVocab(model_dir)
    tokens, scores, types = [], [], []
    for text, score, kind in vocab.all_tokens():
        tokens.append(text)
        scores.append(score)
        types.append(kind)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    special = SpecialVocab(model_dir, n_vocab=len(tokens))
    _say_whether_bos_is_added(special, vocab.tokenizer)
    special.add_to_gguf(writer, quiet=True)
    return VocabInfo(len(tokens), "llama", "default")


def _tokens_and_types(tokenizer: Any, vocab_size: int) -> tuple[list[str], list[int]]:
    """Every id up to vocab_size: its token and type (llama.cpp's get_vocab_base)."""
    vocab = tokenizer.get_vocab()
    if max(vocab.values()) >= vocab_size:
        raise TunedeckError(
            f"the tokenizer has ids up to {max(vocab.values())}, past the model's "
            f"vocab_size {vocab_size}",
            hint="the tokenizer does not belong to this model",
        )
    reverse = {index: token for token, index in vocab.items()}
    added = tokenizer.get_added_vocab()
    decoders = tokenizer.added_tokens_decoder
    tokens: list[str] = []
    types: list[int] = []
    for index in range(vocab_size):
        token = reverse.get(index)
        if token is None:
            tokens.append(f"[PAD{index}]")
            types.append(TokenType.UNUSED)
            continue
        if token in added:
            special = decoders[index].special or _looks_special(token)
            types.append(TokenType.CONTROL if special else TokenType.USER_DEFINED)
        else:
            types.append(TokenType.NORMAL)
        tokens.append(token)
    return tokens, types


def _looks_special(token: str) -> bool:
    return (token.startswith("<|") and token.endswith("|>")) or token in ("<s>", "</s>")


def pre_tokenizer_type(tokenizer: Any, model_dir: Path, spec: dict[str, Any]) -> str:
    """`tokenizer.ggml.pre` for a byte-level BPE tokenizer (see the module docstring)."""
    from_source = _source_gguf_pre(model_dir)
    if from_source:
        return from_source
    digest = sha256(str(tokenizer.encode(CHECK_TEXT)).encode()).hexdigest()
    if digest in KNOWN_PRE_TOKENIZERS:
        return KNOWN_PRE_TOKENIZERS[digest]
    pre = spec.get("pre_tokenizer") or {}
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"  # GPT-2's own split regex, which llama.cpp's `gpt-2` type applies
    raise TunedeckError(
        "the tokenizer's pre-tokenizer is not one llama.cpp knows "
        f"(sha256 of its test encoding: {digest[:16]}...)",
        hint="llama.cpp would split text differently from training; GGUF export supports "
        "the tokenizers of SmolLM2, Llama-3.x, Mistral and Qwen2/2.5",
    )


def _source_gguf_pre(model_dir: Path) -> str | None:
    """The pre-tokenizer type recorded in the GGUF this model was converted from."""
    try:
        marker = json.loads((model_dir / SOURCE_MARKER).read_text())
        fields = read_header(Path(marker["source"])).fields
    except (OSError, ValueError, KeyError, TypeError, GgufHeaderError):
        return None
    if fields.get("tokenizer.ggml.model") != "gpt2":
        return None
    value = fields.get("tokenizer.ggml.pre")
    return value if isinstance(value, str) and value else None
