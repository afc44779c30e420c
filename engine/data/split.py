"""Hold back a validation set without leakage: deterministic, grouped, stratified.

`plan_split` decides which examples go to validation; `split_dataset` reads a file, plans,
and writes `train.jsonl`, `val.jsonl` (normalised chat form) and `manifest.json` into a
directory. With a user-supplied validation file, nothing is held back: the two files are
checked for leakage instead.

No leakage means: exact duplicates, near-duplicates (the very groups lint reports, see
`engine.data.near_duplicates`) and, unless the group is a big share of the data, examples with
the same prompt all land on one side. When the answers look like labels
(`engine.data.labels`), each label is held back in the same proportion.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.core.errors import TunedeckError
from engine.core.files import replace_durably
from engine.core.layout import MANIFEST_FILE, TRAIN_FILE, VAL_FILE
from engine.data.formats import Example, LoadedDataset, load_examples, sha256_file, write_chat_jsonl
from engine.data.labels import LabelScheme, detect_labels
from engine.data.split_groups import LeakageReport, check_leakage, leakage_groups

DEFAULT_VAL_FRACTION = 0.1
RECOMMENDED = (0.1, 0.2)
"""Validation fractions outside this range get a warning."""
NO_LABEL = "(none)"


class SplitError(TunedeckError):
    """A split that cannot be made as asked (bad fraction, nothing to hold back)."""

    exit_code = 2


@dataclass(frozen=True)
class SplitPlan:
    """Which examples (indices into the input list) go where."""

    train: list[int]
    val: list[int]
    label_key: str | None
    """The JSON key (or "" for the whole answer) stratified on; None when not stratified."""
    labels: list[str] = field(repr=False)
    """Label of every input example (NO_LABEL when not stratified)."""
    groups: int
    """Groups of 2+ examples kept on one side."""
    warnings: list[str]


@dataclass(frozen=True)
class SplitResult:
    """What `split_dataset` wrote, for the TUI and the CLI to show."""

    out_dir: Path
    train_count: int
    val_count: int
    train_lines: list[int]
    val_lines: list[int]
    seed: int
    val_fraction: float
    label_key: str | None
    train_labels: dict[str, int]
    val_labels: dict[str, int]
    leakage: LeakageReport
    warnings: list[str]
    groups: int
    skipped_lines: list[int]
    """Source lines left out because they have errors (see `tunedeck lint`)."""

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / MANIFEST_FILE


def check_fraction(val_fraction: float, allow_no_val: bool) -> list[str]:
    """Validate a validation fraction; returns the warnings it deserves."""
    if not 0 <= val_fraction < 1:
        raise SplitError(
            f"validation fraction {val_fraction:g} is not between 0 and 1",
            hint="pass a fraction such as 0.1 (10 %), not a percentage",
        )
    if val_fraction == 0:
        if not allow_no_val:
            raise SplitError(
                "a validation fraction of 0 leaves no validation set",
                hint="without one nobody sees overfitting; if you really want that, "
                "add --allow-no-val",
            )
        return [
            "NO VALIDATION SET: validation loss cannot be measured, overfitting will go "
            "unnoticed and early stopping cannot work"
        ]
    low, high = RECOMMENDED
    if val_fraction < low:
        return [f"validation fraction {val_fraction:.0%} is under {low:.0%}: its loss is noisy"]
    if val_fraction > high:
        return [f"validation fraction {val_fraction:.0%} is over {high:.0%}: less data to learn"]
    return []


def plan_split(
    examples: Sequence[Example],
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    allow_no_val: bool = False,
) -> SplitPlan:
    """Choose validation examples: whole groups, per label, deterministic for `seed`.

    Raises:
        SplitError: the fraction is invalid, or every example is in one duplicate group.
    """
    warnings = check_fraction(val_fraction, allow_no_val)
    groups = leakage_groups(examples)
    scheme = detect_labels(e.answer for e in examples)
    labels = _labels(examples, scheme)
    if val_fraction == 0 or not examples:
        return SplitPlan(list(range(len(examples))), [], _key(scheme), labels, 0, warnings)
    if len(groups) < 2:
        raise SplitError(
            f"all {len(examples)} examples are duplicates or near-duplicates of each other: "
            "any validation example would also be in training",
            hint="add varied examples, or bring your own validation file (--val-file)",
        )
    chosen = _choose(groups, labels, val_fraction, seed)
    val = sorted(i for g in chosen for i in groups[g])
    train = sorted(set(range(len(examples))) - set(val))
    warnings += _size_warnings(len(val), len(examples))
    together = sum(1 for g in groups if len(g) > 1)
    return SplitPlan(train, val, _key(scheme), labels, together, warnings)


def _key(scheme: LabelScheme | None) -> str | None:
    return scheme.key if scheme else None


def _labels(examples: Sequence[Example], scheme: LabelScheme | None) -> list[str]:
    if scheme is None:
        return [NO_LABEL] * len(examples)
    return [scheme.label_of(e.answer) or NO_LABEL for e in examples]


def val_target(n: int, val_fraction: float) -> int:
    """Validation examples a split of `n` examples aims at (whole groups may leave it short)."""
    return min(n - 1, max(1, round(n * val_fraction)))


def _choose(
    groups: list[list[int]], labels: list[str], val_fraction: float, seed: int
) -> list[int]:
    """Group ids for validation: per-label quotas first, then fill to the overall target."""
    target = val_target(sum(len(g) for g in groups), val_fraction)
    # A group's label: its most common one (ties: alphabetical), so quotas stay honest.
    group_label = [
        min(Counter(labels[i] for i in g).most_common(), key=lambda lc: (-lc[1], lc[0]))[0]
        for g in groups
    ]
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    quotas = _quotas(Counter({lab: 0 for lab in group_label}), groups, group_label, target)
    chosen: list[int] = []
    taken: Counter[str] = Counter()
    for g in order:
        size, label = len(groups[g]), group_label[g]
        if taken[label] + size <= quotas[label]:
            chosen.append(g)
            taken[label] += size
    total = sum(taken.values())
    for g in order:  # whole groups can leave quotas short: top up from any label
        if g not in chosen and total + len(groups[g]) <= target:
            chosen.append(g)
            total += len(groups[g])
    if not chosen:  # every group is bigger than the target: hold back the smallest
        chosen.append(min(order, key=lambda g: len(groups[g])))
    return chosen


def _quotas(
    counts: Counter[str], groups: list[list[int]], group_label: list[str], target: int
) -> dict[str, int]:
    """Validation examples per label, proportional, summing to `target` (largest remainder)."""
    for g, label in enumerate(group_label):
        counts[label] += len(groups[g])
    n = sum(counts.values())
    exact = {label: count * target / n for label, count in counts.items()}
    quotas = {label: int(share) for label, share in exact.items()}
    short = target - sum(quotas.values())
    by_remainder = sorted(exact, key=lambda lab: (-(exact[lab] - quotas[lab]), lab))
    for label in by_remainder[:short]:
        quotas[label] += 1
    return quotas


def _size_warnings(val_count: int, n: int) -> list[str]:
    if val_count < 10:
        return [f"only {val_count} validation examples: validation loss will be noisy"]
    return []


def split_dataset(
    path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = 0,
    fmt: str | None = None,
    val_file: str | os.PathLike[str] | None = None,
    allow_no_val: bool = False,
    keep_val_lines: Sequence[int] | None = None,
    limit: int | None = None,
    columns: str | None = None,
) -> SplitResult:
    """Split a dataset file or hub dataset (or pair it with a validation one) and write
    `train.jsonl`, `val.jsonl` and `manifest.json` into `out_dir` (created). `limit` and
    `columns` are read as `engine.data.formats.iter_records` reads them.

    Raises:
        DatasetError / SplitError: unusable input or an impossible split.
    """
    _refuse_overwriting_inputs(Path(out_dir), [Path(path), *([Path(val_file)] if val_file else [])])
    source = load_examples(path, fmt, limit=limit, columns=columns)
    if not source.examples:
        raise SplitError(
            f"{source.path}: no usable examples to split",
            hint=f"run `tunedeck lint {source.path}` to see why",
        )
    if val_file is not None:
        val_set = load_examples(val_file, None, limit=limit, columns=columns)
        return _write_pair(source, val_set, Path(out_dir), seed)
    if keep_val_lines is not None:
        plan = pinned_plan(source.examples, keep_val_lines)
        val_fraction = round(len(plan.val) / max(1, len(source.examples)), 4)
    else:
        plan = plan_split(source.examples, val_fraction, seed, allow_no_val)
    train = [source.examples[i] for i in plan.train]
    val = [source.examples[i] for i in plan.val]
    result = SplitResult(
        out_dir=Path(out_dir),
        train_count=len(train),
        val_count=len(val),
        train_lines=[e.line for e in train],
        val_lines=[e.line for e in val],
        seed=seed,
        val_fraction=val_fraction,
        label_key=plan.label_key,
        train_labels=_tally(plan.labels[i] for i in plan.train),
        val_labels=_tally(plan.labels[i] for i in plan.val),
        leakage=check_leakage(train, val),
        warnings=plan.warnings + _skipped_warning(source),
        groups=plan.groups,
        skipped_lines=source.skipped_lines,
    )
    _write(result, train, val, _source_info(source), None)
    return result


def pinned_plan(examples: Sequence[Example], val_lines: Sequence[int]) -> SplitPlan:
    """The split another run made of the same file: the examples at `val_lines` (source
    lines) held back, the rest trained on; labels tallied as usual."""
    scheme = detect_labels(e.answer for e in examples)
    keep = set(val_lines)
    val = [i for i, e in enumerate(examples) if e.line in keep]
    train = [i for i, e in enumerate(examples) if e.line not in keep]
    note = f"split kept from an earlier run: {len(val)} validation examples at the same lines"
    return SplitPlan(train, val, _key(scheme), _labels(examples, scheme), 0, [note])


def _refuse_overwriting_inputs(out: Path, inputs: list[Path]) -> None:
    """`split data/train.jsonl --out data/` would replace its own input: refuse."""
    for name in (TRAIN_FILE, VAL_FILE, MANIFEST_FILE):
        target = out / name
        for source in inputs:
            if target.exists() and source.exists() and os.path.samefile(target, source):
                raise SplitError(
                    f"writing {target} would overwrite the input {source}",
                    hint="choose another --out directory",
                )


def _tally(labels: Iterable[str]) -> dict[str, int]:
    return dict(Counter(labels).most_common())


def _write_pair(source: LoadedDataset, val_set: LoadedDataset, out: Path, seed: int) -> SplitResult:
    if not val_set.examples:
        raise SplitError(
            f"{val_set.path}: no usable validation examples",
            hint=f"run `tunedeck lint {val_set.path}` to see why",
        )
    leakage = check_leakage(source.examples, val_set.examples)
    scheme = detect_labels(e.answer for e in [*source.examples, *val_set.examples])
    warnings = _skipped_warning(source) + _skipped_warning(val_set)
    if not leakage.is_clean:
        warnings.append(f"leakage between training and validation: {leakage.summary()}")
    n = len(source.examples) + len(val_set.examples)
    result = SplitResult(
        out,
        len(source.examples),
        len(val_set.examples),
        [e.line for e in source.examples],
        [e.line for e in val_set.examples],
        seed,
        round(len(val_set.examples) / n, 4),
        _key(scheme),
        _tally(_labels(source.examples, scheme)),
        _tally(_labels(val_set.examples, scheme)),
        leakage,
        warnings + _size_warnings(len(val_set.examples), n),
        0,
        source.skipped_lines,
    )
    _write(result, source.examples, val_set.examples, _source_info(source), _source_info(val_set))
    return result


def _skipped_warning(dataset: LoadedDataset) -> list[str]:
    if not dataset.skipped_lines:
        return []
    return [
        f"{len(dataset.skipped_lines)} lines of {dataset.path.name} left out because they have "
        f"errors (run `tunedeck lint {dataset.path}`)"
    ]


def _source_info(dataset: LoadedDataset) -> dict[str, Any]:
    """Where a side came from: the file and its sha256, or the hub dataset and commit."""
    where: dict[str, Any]
    if dataset.hub is not None:
        where = {"hub": dataset.hub.to_json()}
    else:
        where = {"path": str(dataset.path.resolve()), "sha256": sha256_file(dataset.path)}
    return {
        **where,
        "format": dataset.format,
        "container": dataset.container,
        "examples": len(dataset.examples),
        "skipped_lines": dataset.skipped_lines,
        "limit": dataset.limit,
        "columns": dataset.columns,
    }


def _write(
    result: SplitResult,
    train: list[Example],
    val: list[Example],
    source: dict[str, Any],
    val_source: dict[str, Any] | None,
) -> None:
    from engine import __version__

    out = result.out_dir
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_chat_jsonl(train, out / TRAIN_FILE)
        write_chat_jsonl(val, out / VAL_FILE)
        manifest = {
            "tool": f"tunedeck {__version__}",
            "source": source,
            "val_source": val_source,
            "seed": result.seed,
            "val_fraction": result.val_fraction,
            "stratified_by": result.label_key,
            "counts": {"train": result.train_count, "val": result.val_count},
            "train_lines": result.train_lines,
            "val_lines": result.val_lines,
            "labels": {"train": result.train_labels, "val": result.val_labels},
            "groups_kept_together": result.groups,
            "leakage": asdict(result.leakage),
            "warnings": result.warnings,
        }
        tmp = out / f".manifest.json.tmp-{os.getpid()}"
        tmp.write_text(_manifest_text(manifest), "utf-8")
        replace_durably(tmp, result.manifest_path)
    except OSError as exc:
        raise SplitError(
            f"cannot write the split into {out}: {exc.strerror or exc}",
            hint="check the directory is writable and the disk has space",
        ) from exc


def _manifest_text(manifest: dict[str, Any]) -> str:
    """Indented JSON, but lists of numbers on one line: 100k line numbers stay 100k wide."""
    text = json.dumps(manifest, indent=2, ensure_ascii=False)
    text = re.sub(
        r"\[\s*((?:-?\d+,\s*)*-?\d+)\s*\]",
        lambda m: "[" + ", ".join(m.group(1).replace(",", " ").split()) + "]",
        text,
    )
    return text + "\n"
