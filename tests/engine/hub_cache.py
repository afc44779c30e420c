"""A hand-made Hugging Face cache holding hub datasets, laid out as huggingface_hub lays
it out (`hub/datasets--ORG--NAME/refs/main` + `snapshots/<commit>/...`), so that
`snapshot_download(..., local_files_only=True)` resolves it with no network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def offline_hf_home(tmp_path: Path, monkeypatch: Any) -> Path:
    """An empty Hugging Face cache under `tmp_path`, as HF_HOME, offline."""
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


def qa_rows(count: int, start: int = 0) -> list[dict[str, Any]]:
    """Question/answer rows in no format tunedeck knows (columns need mapping)."""
    return [
        {"question": f"What is {i} plus {i}?", "answer": f"{i} plus {i} is {2 * i}.", "id": i}
        for i in range(start, start + count)
    ]


def chat_rows(count: int, start: int = 0) -> list[dict[str, Any]]:
    """Chat records with distinct prompts and answers."""
    return [
        {
            "messages": [
                {"role": "user", "content": f"Ticket {i}: order {i * 7} arrived broken."},
                {"role": "assistant", "content": f"Sorry about order {i * 7}; refund {i}."},
            ]
        }
        for i in range(start, start + count)
    ]


def write_parquet(path: Path, rows: list[dict[str, Any]], row_group_size: int = 100) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def make_hub_dataset(hf_home: Path, repo_id: str, commit: str = COMMIT, ref: str = "main") -> Path:
    """An empty snapshot folder of `repo_id` in the cache under `hf_home`; write files into
    the returned folder. `refs/<ref>` names the commit (no newline, as huggingface_hub
    writes it)."""
    org, name = repo_id.split("/")
    storage = hf_home / "hub" / f"datasets--{org}--{name}"
    snapshot = storage / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (storage / "refs").mkdir(exist_ok=True)
    (storage / "refs" / ref).write_text(commit)
    return snapshot
