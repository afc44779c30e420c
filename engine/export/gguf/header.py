"""Read a GGUF file's header (metadata and tensor table) without its vocabulary's cost.

gguf's `GGUFReader` builds numpy views for every element of every array field: for a
49 152-token vocabulary that is ~500 000 small views and ~12 s on two cores, paid twice per
export (the source model's pre-tokenizer name, then the read-back check). The export needs
a handful of scalars, the vocabulary's length and the tensor table, so this reader walks
the header with `struct`, keeps scalars and small arrays, and only counts large ones.

Layout (GGUF v2/v3, https://github.com/ggml-org/ggml/blob/master/docs/gguf.md): magic
`GGUF`, uint32 version, uint64 tensor count, uint64 key/value count; each key/value is a
string key, a uint32 type and the value (an array is a uint32 item type, a uint64 count
and the items); then each tensor's string name, uint32 dimension count, uint64 dimensions
(innermost first), uint32 ggml type and uint64 data offset. Strings are a uint64 length
and UTF-8 bytes. Files are little-endian unless the version reads byte-swapped.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.core.errors import TunedeckError

SMALL_ARRAY = 64
"""Arrays up to this many items are kept whole; longer ones only counted."""

# GGUF value types -> struct format of one item (strings and arrays are handled apart).
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
            12: "d"}  # fmt: skip
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class TensorInfo:
    """One row of the tensor table: `dims` innermost first, as the file stores them."""

    name: str
    dims: tuple[int, ...]
    ggml_type: int

    @property
    def shape(self) -> tuple[int, ...]:
        """The PyTorch-order shape (outermost first)."""
        return tuple(reversed(self.dims))


@dataclass
class GgufHeader:
    """A GGUF file's metadata and tensor table.

    `fields` holds scalars, strings and arrays of at most SMALL_ARRAY items;
    `array_lengths` the length of every array field, kept or not.
    """

    version: int
    fields: dict[str, Any] = field(default_factory=dict)
    array_lengths: dict[str, int] = field(default_factory=dict)
    tensors: list[TensorInfo] = field(default_factory=list)


class GgufHeaderError(TunedeckError):
    """The file is not a GGUF this reader understands, or its header is cut short."""


def read_header(path: Path) -> GgufHeader:
    """Parse the header of the GGUF at `path`.

    Raises:
        GgufHeaderError: not a GGUF, an unknown version or value type, or a header that
            runs past the end of the file.
        OSError: the file cannot be opened.
    """
    with path.open("rb") as handle:
        if path.stat().st_size < 24:
            raise GgufHeaderError(f"{path.name} is too short to be a GGUF file")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                return _Parser(data, path.name).header()
            except struct.error as exc:
                raise GgufHeaderError(f"{path.name}: the GGUF header is cut short") from exc


class _Parser:
    def __init__(self, data: mmap.mmap, name: str) -> None:
        self.data, self.name, self.pos, self.order = data, name, 0, "<"

    def header(self) -> GgufHeader:
        if self.data[:4] != b"GGUF":
            raise GgufHeaderError(f"{self.name} is not a GGUF file (no GGUF magic)")
        self.pos = 4
        version = self._unpack("I")
        if version & 0xFFFF == 0:  # written big-endian
            self.order, self.pos = ">", 4
            version = self._unpack("I")
        if version not in (2, 3):
            raise GgufHeaderError(f"{self.name}: GGUF version {version} is not supported")
        n_tensors, n_fields = self._unpack("Q"), self._unpack("Q")
        header = GgufHeader(version)
        for _ in range(n_fields):
            key = self._string()
            kind = self._unpack("I")
            if kind == _ARRAY:
                item, count = self._unpack("I"), self._unpack("Q")
                header.array_lengths[key] = count
                if count <= SMALL_ARRAY:
                    header.fields[key] = [self._value(item) for _ in range(count)]
                else:
                    self._skip_items(item, count)
            else:
                header.fields[key] = self._value(kind)
        for _ in range(n_tensors):
            name = self._string()
            n_dims = self._unpack("I")
            dims = tuple(self._unpack("Q") for _ in range(n_dims))
            ggml_type = self._unpack("I")
            self._unpack("Q")  # data offset
            header.tensors.append(TensorInfo(name, dims, ggml_type))
        return header

    def _unpack(self, fmt: str) -> Any:
        full = self.order + fmt
        (value,) = struct.unpack_from(full, self.data, self.pos)
        self.pos += struct.calcsize(full)
        return value

    def _string(self) -> str:
        length = self._unpack("Q")
        end = self.pos + length
        if end > len(self.data):
            raise struct.error("string past the end")
        raw = self.data[self.pos : end]
        self.pos = end
        return raw.decode("utf-8", errors="replace")

    def _value(self, kind: int) -> Any:
        if kind == _STRING:
            return self._string()
        if kind in _SCALARS:
            return self._unpack(_SCALARS[kind])
        raise GgufHeaderError(f"{self.name}: unknown GGUF value type {kind}")

    def _skip_items(self, item: int, count: int) -> None:
        if item in _SCALARS:
            self.pos += struct.calcsize(self.order + _SCALARS[item]) * count
        elif item == _STRING:
            length = struct.Struct(self.order + "Q")
            for _ in range(count):
                (size,) = length.unpack_from(self.data, self.pos)
                self.pos += 8 + size
        else:  # nested arrays do not occur in the files this app reads or writes
            raise GgufHeaderError(f"{self.name}: array of GGUF value type {item}")
        if self.pos > len(self.data):
            raise struct.error("array past the end")
