"""`tunedeck split PATH --out DIR`: train/validation split without leakage, with a manifest."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.data.split import SplitResult


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `split` to the CLI."""
    from engine.data.formats import FORMATS

    parser = subparsers.add_parser(
        "split",
        help="hold back a validation set: deterministic, no leakage, stratified by label",
        description=(
            "Split a dataset into train.jsonl and val.jsonl (normalised chat form) plus "
            "manifest.json (source sha256, source line numbers per side, seed). Duplicates, "
            "near-duplicates and same-prompt examples stay on one side; when answers look "
            "like labels, each label is held back in proportion. With --val-file, the "
            "given file is the validation set and any leakage into it is reported."
        ),
    )
    parser.add_argument("path", metavar="PATH", help="the dataset file")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory to write into")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        metavar="F",
        help="share held back for validation (default 0.1; 0.1-0.2 recommended)",
    )
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    parser.add_argument(
        "--val-file", metavar="V", help="use this file as the validation set instead"
    )
    parser.add_argument(
        "--allow-no-val",
        action="store_true",
        help="allow --val-fraction 0 (no validation set: overfitting goes unnoticed)",
    )
    parser.add_argument(
        "--format", dest="fmt", choices=FORMATS, help="record format (default: detected)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Split, write the files, print what went where (and advice on too few val examples)."""
    from engine.data.split import split_dataset
    from engine.data.split_advice import validation_advice

    result = split_dataset(
        args.path,
        args.out,
        val_fraction=args.val_fraction,
        seed=args.seed,
        fmt=args.fmt,
        val_file=args.val_file,
        allow_no_val=args.allow_no_val,
    )
    if args.json:
        data = asdict(result)
        data["out_dir"] = str(result.out_dir)
        print(json.dumps(data, ensure_ascii=False))
    else:
        print(render_result(result, args.path))
    for warning in result.warnings:
        loud = warning.isupper() or warning.startswith("NO VALIDATION")
        print(f"{'WARNING' if loud else 'warning'}: {warning}", file=sys.stderr)
    fraction = None if args.val_file else args.val_fraction
    advice = validation_advice(result.train_count + result.val_count, result.val_count, fraction)
    if advice is not None:
        print(f"note: {advice.message}", file=sys.stderr)
    return 0


def render_result(result: SplitResult, source: str) -> str:
    """What went where, label balance per side, and leakage."""
    out = result.out_dir
    lines = [
        f"split {source} -> {out}/",
        f"  train: {result.train_count:>6} examples  ({out / 'train.jsonl'})",
        f"  val:   {result.val_count:>6} examples  ({out / 'val.jsonl'})",
    ]
    if result.label_key is not None:
        what = (
            "the whole answer" if result.label_key == "" else f"the JSON key {result.label_key!r}"
        )
        lines.append(f"  labels ({what}):")
        labels = list(dict.fromkeys([*result.train_labels, *result.val_labels]))
        width = max(12, *(len(label) for label in labels))
        lines.append(f"    {'label':<{width}}  {'train':>6}  {'val':>5}")
        for label in labels:
            train, val = result.train_labels.get(label, 0), result.val_labels.get(label, 0)
            lines.append(f"    {label:<{width}}  {train:>6}  {val:>5}")
    if result.groups:
        lines.append(f"  kept together: {result.groups} groups of duplicates / near-duplicates")
    lines.append(f"  leakage: {result.leakage.summary()}")
    lines.append(f"  manifest: {result.manifest_path}")
    return "\n".join(lines)
