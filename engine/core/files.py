"""Writing files so that a crash or a power cut never leaves a torn one behind.

- `write_text_atomic`: temp file beside the target, fsync, rename: readers see the old
  file or the new one, whole;
- `fsync_path` / `fsync_tree`: flush what is already written before a marker says
  "complete" (checkpoints, exports);
- `read_complete_lines`: the complete lines of a file from a byte offset, for followers of
  files that another process is appending to.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush one file's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file under `root` to disk (in a stable order)."""
    for path in sorted(root.rglob("*")):
        if path.is_file():
            fsync_path(path)


def replace_durably(tmp: Path, target: Path) -> None:
    """Rename a finished temp file or folder over `target` so that both its contents and
    the rename survive a power cut: fsync what was written, rename, fsync the folder."""
    if tmp.is_dir():
        fsync_tree(tmp)
    else:
        fsync_path(tmp)
    os.replace(tmp, target)
    fsync_path(target.parent)


def write_text_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace `path` with `text`: temp file in the same folder, fsync, rename, fsync the
    folder (the rename itself then survives a power cut, as checkpoints do).

    `mode`: the new file's permissions (a temp file starts private, 0600).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def read_complete_lines(path: Path, offset: int, tail_bytes: int = 0) -> tuple[bytes, int]:
    """The bytes of the complete lines from `offset` on, and the offset to continue from.

    A last line without its newline (still being written) is left for the next call.
    With `tail_bytes` and `offset` 0, reading starts that many bytes before the end (a
    long log's recent part). A missing file reads as nothing yet.
    """
    try:
        with open(path, "rb") as handle:
            if offset == 0 and tail_bytes:
                size = handle.seek(0, os.SEEK_END)
                offset = max(0, size - tail_bytes)
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return b"", offset
    end = data.rfind(b"\n") + 1
    return data[:end], offset + end
