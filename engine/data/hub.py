"""Hugging Face Hub datasets: `ORG/NAME[:CONFIG][@REVISION][[SPLIT]]` to local data files.

`parse_hub_id` reads the spelling; `resolve_hub_dataset` brings the dataset's data files
(never scripts: `HUB_DATA_PATTERNS`) into the Hugging Face cache with
`huggingface_hub.snapshot_download(repo_type="dataset")` — from the cache first, the hub
only where the network is allowed (`HF_HUB_OFFLINE=1`: cache only) — and picks the files
of one config and one split, as `datasets` would:

- a README.md whose YAML header lists `configs:` (`config_name`, `data_files`) decides;
- otherwise a config is a top-level folder, and a file's split is the word in its name
  or folders (train / validation / test and their usual spellings); a repository whose
  files name no split is all `train`.

The commit the snapshot belongs to (the snapshot folder's name) is what a run records, so
a rerun reads the same bytes. A gated dataset takes `HF_TOKEN` like a gated model, and
fails with the same wording. huggingface_hub is imported inside the functions: importing
this module costs nothing.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from engine.data.readers import DatasetError
from engine.model.resolve import hub_failure, is_offline

HUB_DATA_PATTERNS = [
    "*.parquet", "*.jsonl", "*.json", "*.csv", "*.tsv",
    "*.arrow", "*.jsonl.gz", "*.json.gz", "*.csv.gz", "README.md",
]  # fmt: skip
"""What a snapshot fetches: data files (and the card that may name the configs), never a
loading script."""
NATIVE_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv", ".tsv")
"""Files tunedeck's own readers take (with a place for every finding); other data files
(`.arrow`, compressed JSON / CSV) are read through `datasets`."""
_DATA_SUFFIXES = (*NATIVE_SUFFIXES, ".arrow", ".jsonl.gz", ".json.gz", ".csv.gz")
# JSON files of a dataset repository that hold metadata, not examples.
_METADATA_FILES = {"dataset_infos.json", "dataset_info.json", "dataset_dict.json", "state.json"}
# Split words in file and folder names, as datasets' default patterns spell them.
_SPLIT_WORDS = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test", "testing", "eval", "evaluation"),
}
_HUB_ID = re.compile(
    r"^(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*?)"
    r"(?::(?P<config>[\w.-]+))?(?:@(?P<revision>[\w./-]+?))?(?:\[(?P<split>[\w.-]+)\])?$"
)
SYNTAX = "ORG/NAME[:CONFIG][@REVISION][[SPLIT]]"
"""How a hub dataset is spelled, for help texts."""
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class HubDatasetError(DatasetError):
    """A hub dataset that cannot be had or read as asked: not cached, gated, no such
    repository, config or split."""

    exit_code = 2


@dataclass(frozen=True)
class HubDatasetId:
    """What the user asked for: a repository and, optionally, a config, revision, split."""

    repo_id: str
    config: str | None = None
    revision: str | None = None
    split: str | None = None

    def __str__(self) -> str:
        return (
            self.repo_id
            + (f":{self.config}" if self.config else "")
            + (f"@{self.revision}" if self.revision else "")
            + (f"[{self.split}]" if self.split else "")
        )

    @property
    def url(self) -> str:
        return f"https://huggingface.co/datasets/{self.repo_id}"


@dataclass(frozen=True)
class HubDataset:
    """One config and split of a hub dataset, resolved to files in a local snapshot."""

    asked: HubDatasetId
    commit: str
    """The commit of the snapshot read (40 hex digits)."""
    snapshot: Path
    config: str | None
    """The config read (None: the repository's only, unnamed one)."""
    split: str
    files: tuple[str, ...]
    """Paths of the split's files inside the repository, in reading order."""

    @property
    def pinned(self) -> HubDatasetId:
        """The id that reads exactly these files again: the revision is the commit."""
        return HubDatasetId(self.asked.repo_id, self.config, self.commit, self.split)

    @property
    def native(self) -> bool:
        """Every file is one tunedeck's readers take (else `datasets` reads them)."""
        return all(name.lower().endswith(NATIVE_SUFFIXES) for name in self.files)

    def to_json(self) -> dict[str, Any]:
        """What a run's manifest records about where its data came from."""
        return {
            "repo_id": self.asked.repo_id,
            "config": self.config,
            "split": self.split,
            "revision": self.asked.revision,
            "commit": self.commit,
            "files": list(self.files),
        }


def parse_hub_id(text: str) -> HubDatasetId | None:
    """The hub id `text` spells, or None when it is (or names) a local file.

    A path that exists is local; so is anything that starts like a path (`/`, `.`, `~`) or
    ends in a dataset file's suffix (`data/train.jsonl` is a missing file, not a dataset).
    """
    text = str(text).strip()
    if not text or text.startswith(("/", ".", "~")) or Path(text).expanduser().exists():
        return None
    match = _HUB_ID.match(text)
    if match is None or match["repo"].lower().endswith(_DATA_SUFFIXES):
        return None
    return HubDatasetId(match["repo"], match["config"], match["revision"], match["split"])


def is_hub_id(text: str | os.PathLike[str]) -> bool:
    """True when `text` is read from the hub rather than from a local file."""
    return parse_hub_id(str(text)) is not None


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (huggingface_hub reads it
    once, at import; tests and users may set HF_HOME / HF_HUB_CACHE later)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def resolve_hub_dataset(ref: HubDatasetId | str) -> HubDataset:
    """The files of one config and split of a hub dataset, in the local cache.

    Raises:
        HubDatasetError: not cached while offline, gated, no such repository or revision,
            no data files, an unknown config or split (the message lists the known ones).
    """
    asked = ref if isinstance(ref, HubDatasetId) else parse_hub_id(ref)
    if asked is None:
        raise HubDatasetError(f"{ref!r} is not a hub dataset id", hint=f"spell it {SYNTAX}")
    snapshot = _snapshot(asked)
    present = _data_files(snapshot)
    if not present:
        raise HubDatasetError(
            f"hub dataset {asked.repo_id!r} has no data files (parquet, jsonl, json, csv) "
            f"at commit {snapshot.name[:12]}",
            hint="tunedeck reads data files, never loading scripts; pick a dataset that has "
            "them (its Files tab on huggingface.co)",
        )
    configs, default = _configs(snapshot, present)
    config = _pick_config(asked, configs, default, present)
    splits = configs[config] if config in configs else _splits_of(_in_folder(present, config))
    split = _pick_split(asked, config, splits)
    return HubDataset(asked, snapshot.name, snapshot, config, split, tuple(splits[split]))


# ---------------------------------------------------------------------------
# The snapshot
# ---------------------------------------------------------------------------


def _snapshot(asked: HubDatasetId) -> Path:
    """The snapshot folder: from the cache, else downloaded unless offline."""
    from huggingface_hub import snapshot_download

    fetch: dict[str, Any] = {
        "repo_type": "dataset",
        "revision": asked.revision,
        "allow_patterns": HUB_DATA_PATTERNS,
        "cache_dir": str(hub_cache_dir()),
    }
    try:
        return Path(snapshot_download(asked.repo_id, local_files_only=True, **fetch))
    except Exception as exc:  # huggingface_hub raises several kinds for "not cached"
        if _is_gated(exc):
            raise _failure(asked, exc) from exc
        if is_offline():
            where = f"@{asked.revision}" if asked.revision else ""
            raise HubDatasetError(
                f"hub dataset {asked.repo_id!r}{where} is not in the local Hugging Face cache "
                f"({hub_cache_dir()}), and the hub is offline (HF_HUB_OFFLINE=1)",
                hint="unset HF_HUB_OFFLINE where there is network, or fetch it there first "
                f"(`hf download --repo-type dataset {asked.repo_id}`) and copy the cache here",
            ) from exc
    try:
        return Path(snapshot_download(asked.repo_id, **fetch))
    except Exception as exc:
        raise _failure(asked, exc) from exc


def _is_gated(exc: BaseException) -> bool:
    return type(exc).__name__ == "GatedRepoError"


def _failure(asked: HubDatasetId, exc: BaseException) -> HubDatasetError:
    """The cause a user can act on, worded as for hub models (engine.model.resolve)."""
    if type(exc).__name__ == "RevisionNotFoundError":
        return HubDatasetError(
            f"hub dataset {asked.repo_id!r} has no revision {asked.revision!r}",
            hint=f"a branch, tag or commit of {asked.url} (its Files tab lists them)",
        )
    message, hint = hub_failure(asked.repo_id, exc, kind="dataset")
    return HubDatasetError(message, hint=hint)


def _data_files(snapshot: Path) -> list[str]:
    """Repository paths of the data files in a snapshot, sorted."""
    found = []
    for path in snapshot.rglob("*"):
        rel = path.relative_to(snapshot).as_posix()
        if rel.startswith(".") or not path.is_file() or path.name in _METADATA_FILES:
            continue
        if rel.lower().endswith(_DATA_SUFFIXES):
            found.append(rel)
    return sorted(found)


# ---------------------------------------------------------------------------
# Configs and splits
# ---------------------------------------------------------------------------

Splits = dict[str, list[str]]
"""split name -> its files (repository paths)."""


def _configs(snapshot: Path, present: list[str]) -> tuple[dict[str, Splits], str | None]:
    """The configs the dataset card names (`configs:` in its YAML header), else {}; and
    the default one (`default: true`, else one named `default`)."""
    header = _card_header(snapshot / "README.md")
    out: dict[str, Splits] = {}
    default = None
    for entry in header.get("configs") or []:
        if isinstance(entry, dict) and entry.get("config_name"):
            name = str(entry["config_name"])
            out[name] = _card_splits(entry.get("data_files"), present)
            if entry.get("default"):
                default = name
    return out, default or ("default" if "default" in out else None)


def _card_header(readme: Path) -> dict[str, Any]:
    """The YAML front matter of a dataset card ({} when there is none or it is broken)."""
    import yaml  # lazy: only hub datasets need it (a dependency of datasets)

    try:
        text = readme.read_text(encoding="utf-8")
    except OSError:
        return {}
    match = re.match(r"^---\s*\n(.*?)\n---\s*$", text, re.DOTALL | re.MULTILINE)
    if match is None:
        return {}
    try:
        header = yaml.safe_load(match[1])
    except yaml.YAMLError:
        return {}
    return header if isinstance(header, dict) else {}


def _card_splits(data_files: Any, present: list[str]) -> Splits:
    """A card config's `data_files` (a pattern, a list of them, or split/path entries)."""
    entries: list[tuple[str, Any]]
    patterns_only = isinstance(data_files, list) and all(isinstance(e, str) for e in data_files)
    if isinstance(data_files, str) or patterns_only:
        entries = [("train", data_files)]
    elif isinstance(data_files, list):
        entries = [(str(e.get("split", "train")), e.get("path")) for e in data_files
                   if isinstance(e, dict)]  # fmt: skip
    else:
        entries = []
    out: Splits = {}
    for split, patterns in entries:
        wanted = [patterns] if isinstance(patterns, str) else list(patterns or [])
        out[split] = [f for f in present if any(_matches(f, str(p)) for p in wanted)]
    return {split: files for split, files in out.items() if files}


def _matches(path: str, pattern: str) -> bool:
    return fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern.removeprefix("./"))


def _in_folder(present: list[str], config: str | None) -> list[str]:
    if config is None:
        return present
    return [f for f in present if f.startswith(f"{config}/")]


def _folders(present: list[str]) -> list[str]:
    """Top-level folders holding data files, which serve as configs without a card."""
    return sorted({f.split("/", 1)[0] for f in present if "/" in f} - {"data"})


def _splits_of(files: list[str]) -> Splits:
    """Files by the split word in their name (else their folders); none named: all train."""
    out: Splits = {}
    for name in files:
        split = _split_word(PurePosixPath(name).name) or _split_word(
            str(PurePosixPath(name).parent)
        )
        if split is not None:
            out.setdefault(split, []).append(name)
    return out or ({"train": list(files)} if files else {})


def _split_word(text: str) -> str | None:
    lowered = text.lower()
    for split, words in _SPLIT_WORDS.items():
        if re.search(rf"(^|[^a-z0-9])({'|'.join(words)})([^a-z]|$)", lowered):
            return split
    return None


def _pick_config(
    asked: HubDatasetId, configs: dict[str, Splits], default: str | None, present: list[str]
) -> str | None:
    named = sorted(configs) or _folders(present)
    if asked.config is None:
        if not configs:
            return None  # the whole repository, splits by file name
        if default is not None or len(configs) == 1:
            return default or named[0]
        raise HubDatasetError(
            f"hub dataset {asked.repo_id!r} has several configs and no default: {', '.join(named)}",
            hint=f"name one: {asked.repo_id}:{named[0]}",
        )
    if asked.config in configs or (not configs and _in_folder(present, asked.config)):
        return asked.config
    known = ", ".join(named) or "none: the repository has one unnamed config"
    raise HubDatasetError(
        f"hub dataset {asked.repo_id!r} has no config {asked.config!r} (configs: {known})",
        hint=f"spell it {SYNTAX}, with a config from the list, or leave :CONFIG out",
    )


def _pick_split(asked: HubDatasetId, config: str | None, splits: Splits) -> str:
    where = asked.repo_id + (f":{config}" if config else "")
    known = ", ".join(splits) or "none"
    if asked.split is not None:
        if asked.split in splits:
            return asked.split
        raise HubDatasetError(
            f"hub dataset {where!r} has no split {asked.split!r} (splits: {known})",
            hint=f"name one of them in brackets: {where}[{next(iter(splits), 'train')}]",
        )
    if "train" in splits:
        return "train"
    if len(splits) == 1:
        return next(iter(splits))
    raise HubDatasetError(
        f"hub dataset {where!r} has no train split; name one (splits: {known})",
        hint=f"for example {where}[{next(iter(splits), 'test')}]",
    )


def is_commit(revision: str | None) -> bool:
    """A full commit hash (what a run records), not a branch or tag."""
    return bool(revision and _COMMIT.match(revision))
