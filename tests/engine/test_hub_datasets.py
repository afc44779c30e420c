"""Hub datasets (`ORG/NAME[:CONFIG][@REVISION][[SPLIT]]`) read offline from a hand-made
Hugging Face cache: the id, lint with file:row places, a row limit that leaves the rest
unread, column mapping, a run's frozen rows and recorded commit, and each error."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from engine.config.build import from_preset, with_overrides
from engine.core.layout import CONFIG_FILE, DATA_DIR, MANIFEST_FILE, TRAIN_FILE, VAL_FILE
from engine.data.formats import UnknownFormatError, load_examples
from engine.data.hub import HubDatasetError, HubDatasetId, parse_hub_id, resolve_hub_dataset
from engine.data.lint.linter import lint_file
from engine.data.sources import ColumnError
from engine.runs.store import create_run
from tests.engine.hub_cache import (
    COMMIT,
    chat_rows,
    make_hub_dataset,
    offline_hf_home,
    qa_rows,
    write_jsonl,
    write_parquet,
)

QA = "prompt=question,response=answer"


@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache, offline."""
    return offline_hf_home(tmp_path, monkeypatch)


@pytest.fixture
def qa_hub(hf_home: Path) -> Path:
    """acme/qa: two train shards of 500 rows (question / answer) and a test shard."""
    snapshot = make_hub_dataset(hf_home, "acme/qa")
    write_parquet(snapshot / "data/train-00000-of-00002.parquet", qa_rows(500))
    write_parquet(snapshot / "data/train-00001-of-00002.parquet", qa_rows(500, 500))
    write_parquet(snapshot / "data/test-00000-of-00001.parquet", qa_rows(40, 1000))
    return snapshot


def test_ids_spell_config_revision_and_split_and_files_stay_files(tmp_path: Path) -> None:
    assert parse_hub_id("acme/qa") == HubDatasetId("acme/qa")
    assert parse_hub_id("acme/qa:fr@v1.0[test]") == HubDatasetId("acme/qa", "fr", "v1.0", "test")
    assert parse_hub_id("acme/qa@refs/convert/parquet") == HubDatasetId(
        "acme/qa", revision="refs/convert/parquet"
    )
    assert str(parse_hub_id("acme/qa.v2:fr[validation]")) == "acme/qa.v2:fr[validation]"
    local = tmp_path / "org" / "name"
    local.parent.mkdir()
    local.write_text("{}\n")
    for path in ("data/train.jsonl", "./acme/qa", "/abs/qa", "~/qa", str(local), "plain"):
        assert parse_hub_id(path) is None, path


def test_splits_and_configs_come_from_file_names_or_the_card(hf_home: Path, qa_hub: Path) -> None:
    train = resolve_hub_dataset("acme/qa")
    assert (train.split, train.commit) == ("train", COMMIT)
    assert train.files == (
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
    )
    assert resolve_hub_dataset("acme/qa[test]").files == ("data/test-00000-of-00001.parquet",)
    assert str(train.pinned) == f"acme/qa@{COMMIT}[train]"

    snapshot = make_hub_dataset(hf_home, "acme/multi")
    write_jsonl(snapshot / "en/part.jsonl", chat_rows(3))
    write_jsonl(snapshot / "fr/part.jsonl", chat_rows(4))
    (snapshot / "README.md").write_text(
        "---\nconfigs:\n- config_name: en\n  data_files: en/*.jsonl\n  default: true\n"
        "- config_name: fr\n  data_files:\n  - split: train\n    path: fr/*.jsonl\n---\n# Multi\n"
    )
    assert resolve_hub_dataset("acme/multi").config == "en"
    fr = resolve_hub_dataset("acme/multi:fr")
    assert (fr.config, fr.files) == ("fr", ("fr/part.jsonl",))
    assert len(load_examples("acme/multi:fr").examples) == 4


def test_lint_names_the_file_and_row_of_each_finding(qa_hub: Path) -> None:
    rows = qa_rows(500, 500)
    rows[311]["answer"] = ""  # row 312 of the second shard: record 812 of the split
    write_parquet(qa_hub / "data/train-00001-of-00002.parquet", rows)
    report = lint_file("acme/qa", columns=QA)
    [empty] = [f for f in report.findings if f.code == "empty-content"]
    assert (empty.line, empty.place) == (812, "data/train-00001-of-00002.parquet:row 312")
    assert empty.to_dict()["place"] == "data/train-00001-of-00002.parquet:row 312"
    assert report.count == 999


def test_a_limit_reads_the_first_rows_and_never_opens_the_rest(qa_hub: Path) -> None:
    # The second shard is garbage: a limit inside the first must not even open it.
    (qa_hub / "data/train-00001-of-00002.parquet").write_bytes(b"PAR1 not really")
    dataset = load_examples("acme/qa", columns=QA, limit=200)
    assert [e.line for e in dataset.examples] == list(range(1, 201))
    assert dataset.examples[-1].messages[0].content == "What is 199 plus 199?"
    assert lint_file("acme/qa", columns=QA, limit=200).count == 200
    assert lint_file("acme/qa", columns=QA).unreadable  # without the limit it is read


def test_columns_map_to_prompt_response_and_system(hf_home: Path) -> None:
    snapshot = make_hub_dataset(hf_home, "acme/sys")
    rows = [{"q": f"Hi {i}", "a": f"Hello {i}", "persona": "Be brief."} for i in range(3)]
    write_jsonl(snapshot / "train.jsonl", rows)
    with pytest.raises(UnknownFormatError) as unknown:
        load_examples("acme/sys")
    assert unknown.value.columns == ["q", "a", "persona"]
    [first, *_] = load_examples("acme/sys", columns="prompt=q,response=a,system=persona").examples
    assert [(m.role, m.content) for m in first.messages] == [
        ("system", "Be brief."),
        ("user", "Hi 0"),
        ("assistant", "Hello 0"),
    ]
    with pytest.raises(ColumnError, match=r"no column 'question' \(columns: q, a, persona\)"):
        load_examples("acme/sys", columns="prompt=question,response=a")


def test_a_run_freezes_the_rows_and_records_the_dataset_and_commit(qa_hub: Path) -> None:
    cfg = with_overrides(
        from_preset("quick"), **{"data.source": "acme/qa", "data.limit": 200, "data.columns": QA}
    )
    run_dir = create_run(cfg)
    data = tomllib.loads((run_dir / CONFIG_FILE).read_text())["data"]
    assert data["source"] == f"acme/qa@{COMMIT}[train]"
    assert (data["limit"], data["columns"]) == (200, QA)
    frozen = [
        (run_dir / DATA_DIR / name).read_text().splitlines() for name in (TRAIN_FILE, VAL_FILE)
    ]
    assert sum(len(lines) for lines in frozen) == 200
    manifest = json.loads((run_dir / DATA_DIR / MANIFEST_FILE).read_text())
    assert manifest["source"]["hub"]["commit"] == COMMIT
    assert manifest["source"]["hub"]["repo_id"] == "acme/qa"
    assert manifest["source"]["limit"] == 200

    from engine.export.exporter import _write_bundle, model_card

    card = model_card(run_dir, cfg)
    assert "hub dataset `acme/qa` (split train, first 200 rows)" in card
    assert f"| dataset commit | `{COMMIT}` |" in card
    _write_bundle(run_dir, cfg, run_dir / "bundle")
    assert COMMIT in (run_dir / "bundle" / "RERUN.md").read_text()
    assert f"acme/qa@{COMMIT}[train]" in (run_dir / "bundle" / CONFIG_FILE).read_text()


def test_a_separate_hub_validation_split(qa_hub: Path) -> None:
    data = {"data.train": "acme/qa", "data.val": "acme/qa[test]", "data.columns": QA}
    run_dir = create_run(with_overrides(from_preset("quick"), **{**data, "data.limit": 100}))
    manifest = json.loads((run_dir / DATA_DIR / MANIFEST_FILE).read_text())
    assert manifest["counts"] == {"train": 100, "val": 40}
    assert manifest["val_source"]["hub"]["split"] == "test"


def test_not_cached_while_offline_says_so(hf_home: Path) -> None:
    with pytest.raises(HubDatasetError, match="not in the local Hugging Face cache") as error:
        resolve_hub_dataset("acme/missing")
    assert "HF_HUB_OFFLINE" in error.value.hint
    report = lint_file("acme/missing")
    assert report.unreadable and "not in the local" in report.errors[-1].message


def test_a_gated_dataset_is_worded_as_a_gated_model(
    hf_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from httpx2 import Request, Response
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError

    url = "https://huggingface.co/api/datasets/meta/secret"
    denied = Response(401, request=Request("GET", url))
    calls: list[dict] = []

    def snapshot_download(repo_id: str, **kwargs):
        calls.append(kwargs)
        if kwargs.get("local_files_only"):
            raise LocalEntryNotFoundError("not cached")
        raise GatedRepoError("401: access to this dataset is restricted", response=denied)

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.snapshot_download", snapshot_download)
    with pytest.raises(HubDatasetError) as error:
        resolve_hub_dataset("meta/secret")
    assert (
        error.value.message
        == "hub dataset 'meta/secret' is gated: its licence must be accepted first"
    )
    assert error.value.hint.startswith(
        "gated: accept the licence on https://huggingface.co/datasets/meta/secret and set HF_TOKEN"
    )
    assert [c.get("local_files_only", False) for c in calls] == [True, False]
    assert all(c["repo_type"] == "dataset" and "*.parquet" in c["allow_patterns"] for c in calls)
    assert not any("*.py" in c["allow_patterns"] for c in calls)


def test_unknown_split_and_config_name_the_known_ones(qa_hub: Path) -> None:
    with pytest.raises(HubDatasetError, match=r"no split 'dev' \(splits: test, train\)"):
        resolve_hub_dataset("acme/qa[dev]")
    with pytest.raises(HubDatasetError, match=r"no config 'fr'"):
        resolve_hub_dataset("acme/qa:fr")


def test_other_data_files_are_read_through_datasets(hf_home: Path) -> None:
    import gzip

    snapshot = make_hub_dataset(hf_home, "acme/packed")
    (snapshot / "data").mkdir()
    text = "".join(json.dumps(r) + "\n" for r in chat_rows(30))
    (snapshot / "data" / "train.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    report = lint_file("acme/packed", limit=12)
    assert (report.format, report.stats.container, report.count) == ("chat", "datasets", 12)
    dataset = load_examples("acme/packed")
    assert len(dataset.examples) == 30
    assert dataset.examples[4].messages[0].content == "Ticket 4: order 28 arrived broken."
