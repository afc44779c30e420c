"""One-permutation MinHash of texts, in numpy: the numeric core of near-duplicate search.

A text becomes the set of its word bigrams; each bigram is hashed once (one-permutation
hashing, Li, Owen & Zhang 2012) into one of BINS bins. Two texts' raw signatures estimate
their Jaccard similarity as (bins equal and filled) / (bins filled in either), which is
close to exact even for short texts. For locality-sensitive hashing the empty bins are
filled by rotation densification (Shrivastava & Li 2014) and grouped into bands.

Everything is deterministic (no per-process salts), so lint and split agree run to run.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

BINS = 64
"""Signature bins per text."""
ROWS_PER_BAND = 3
BANDS = BINS // ROWS_PER_BAND
EMPTY = 0xFFFFFFFF
"""A bin no bigram fell into (values are 31-bit, so this never collides)."""
_END = 0x9E3779B97F4A7C15  # stands for "end of text", so the last word forms a bigram too


def text_signatures(docs: list[str]) -> np.ndarray:
    """One-permutation MinHash of each text's word-bigram set: shape (len(docs), BINS).

    Each bigram is hashed once; its top 6 bits pick one of the 64 bins, the rest is a
    value, and each bin keeps its minimum (EMPTY when no bigram fell into it).

    Words are found and hashed with numpy over the UTF-8 bytes of the whole batch (a
    per-word Python loop costs ~4 s per 100k examples; this costs a fraction of that).
    A word is a run of [0-9a-z_] or non-ASCII bytes after lower-casing, so any other
    punctuation separates.
    """
    import numpy as np

    encoded = [doc.lower().encode("utf-8", "replace") for doc in docs]
    word_ids, word_doc = _word_hashes(encoded)
    # Texts without a single word ("!!!") stand for themselves: one token, the whole text.
    counts = np.bincount(word_doc, minlength=len(docs))
    blank = np.flatnonzero(counts == 0)
    if len(blank):
        extra = [zlib.crc32(encoded[i].strip()) for i in blank]
        word_ids = np.concatenate([word_ids, np.array(extra, dtype=np.uint64)])
        word_doc = np.concatenate([word_doc, blank])
    # Bigram (word, next word of the same text); the last word pairs with an end marker.
    following = np.full(len(word_ids), _END, dtype=np.uint64)
    same = word_doc[1:] == word_doc[:-1]
    following[:-1][same] = word_ids[1:][same]
    with np.errstate(over="ignore"):
        shingles = mix64(word_ids * np.uint64(0xC2B2AE3D27D4EB4F) + following)
    slot = (shingles >> np.uint64(58)).astype(np.int64)  # top 6 bits: one of 64 bins
    value = ((shingles & np.uint64(0xFFFFFFFF)) >> np.uint64(1)).astype(np.uint32)
    sig = np.full(len(docs) * BINS, EMPTY, dtype=np.uint32)
    np.minimum.at(sig, word_doc * BINS + slot, value)
    return sig.reshape(len(docs), BINS)


_WORD_BYTE = bytes(
    1 if (chr(b).isascii() and (chr(b).isalnum() or b == 0x5F)) or b >= 0x80 else 0
    for b in range(256)
)
# Masks keeping the low k bytes of a little-endian uint64, for k = 0..8.
_LOW_BYTES = [(1 << (8 * k)) - 1 for k in range(8)] + [0xFFFFFFFFFFFFFFFF]


def _word_hashes(encoded: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit hash, text index) of every word of the texts, in reading order.

    A word is hashed from its length, first 8 and last 8 bytes, read as unaligned uint64s
    straight from the buffer: O(words) work instead of O(bytes). Two different words
    collide only if they are longer than 16 bytes and agree on both ends and the length,
    which costs MinHash nothing measurable.
    """
    import numpy as np

    blob = b"\n".join(encoded)
    data = np.frombuffer(blob, dtype=np.uint8)
    is_word = np.frombuffer(_WORD_BYTE, dtype=np.uint8)[data].view(np.int8)
    edges = np.diff(is_word, prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    # Every offset of the buffer viewed as the start of a little-endian uint64.
    words64 = np.ndarray((len(blob) + 1,), dtype="<u8", buffer=blob + bytes(8), strides=(1,))
    length = (ends - starts).astype(np.uint64)
    masks = np.array(_LOW_BYTES, dtype=np.uint64)[np.minimum(length, 8).astype(np.int64)]
    head = words64[starts] & masks
    tail = np.where(length > 8, words64[np.maximum(ends - 8, 0)], np.uint64(0))
    with np.errstate(over="ignore"):
        mixed = head * np.uint64(0x9E3779B97F4A7C15) + mix64(tail + length)
    doc_starts = np.cumsum([0] + [len(e) + 1 for e in encoded[:-1]])
    word_doc = np.searchsorted(doc_starts, starts, side="right") - 1
    return mix64(mixed), word_doc.astype(np.int64)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads every input bit over the whole 64-bit word."""
    import numpy as np

    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def densify(sig: np.ndarray) -> np.ndarray:
    """Fill empty bins from the next non-empty bin to the right (circular), offset by distance.

    Rotation densification (Shrivastava & Li, 2014): short texts leave most of the 64 bins
    empty; without this, two unrelated short texts would agree on all their empty bins.
    """
    import numpy as np

    empty = sig == EMPTY
    if not empty.any():
        return sig
    n, k = sig.shape
    columns = np.arange(2 * k)
    present = np.concatenate([~empty, ~empty], axis=1)
    candidates = np.where(present, columns, 2 * k)
    following = np.minimum.accumulate(candidates[:, ::-1], axis=1)[:, ::-1][:, :k]
    distance = (following - columns[:k]).astype(np.uint32)
    source = np.take_along_axis(sig, following % k, axis=1)
    with np.errstate(over="ignore"):
        filled = (source + distance * np.uint32(0x9E3779B1)) & np.uint32(0x7FFFFFFF)
    return np.where(empty, filled, sig)


def band_keys(prompt: np.ndarray, answer: np.ndarray) -> np.ndarray:
    """LSH keys, shape (n, BANDS): band b hashes rows of band b of both densified sides.

    Two examples share a key only when their prompts and their answers agree on all rows
    of that band, so candidates are pairs similar on both sides.
    """
    import numpy as np

    both = np.concatenate([densify(prompt), densify(answer)], axis=1).astype(np.uint64)
    keys = np.zeros((len(both), BANDS), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band in range(BANDS):
            rows = [band * ROWS_PER_BAND + r for r in range(ROWS_PER_BAND)]
            key = np.zeros(len(both), dtype=np.uint64)
            for row in rows + [BINS + r for r in rows]:
                key = mix64(key + both[:, row])
            keys[:, band] = key
    return keys


def estimate(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of raw signatures a and b (broadcasting over rows)."""
    import numpy as np

    filled_a, filled_b = a != EMPTY, b != EMPTY
    equal = ((a == b) & filled_a).sum(axis=-1)
    either = (filled_a | filled_b).sum(axis=-1)
    return equal / np.maximum(either, 1)
