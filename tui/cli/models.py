"""`tunedeck models`: what models are available offline, and preparing one for use."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `models` to the CLI."""
    parser = subparsers.add_parser(
        "models",
        help="list the models available offline and where they live",
        description=(
            "List the embedded default model, converted models under "
            "$TUNEDECK_HOME/models and models in the local Hugging Face cache. "
            "--prepare NAME converts or checks one now (the embedded default converts "
            "from its GGUF on first use, about 20 s), so later loads take seconds."
        ),
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--prepare",
        metavar="MODEL",
        help="resolve MODEL now (convert a GGUF once), printing progress; exit 0 when ready",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """List the models, or prepare one."""
    if args.prepare:
        return _prepare(args.prepare, as_json=args.json)
    from engine.model.resolve import DEFAULT_MODEL, list_models

    infos = list_models()
    if args.json:
        print(json.dumps({"default": DEFAULT_MODEL, "models": [asdict(i) for i in infos]}))
        return 0
    width = max(len(i.name) for i in infos)
    for info in infos:
        default = " (default)" if info.name == DEFAULT_MODEL else ""
        print(f"{info.name:<{width}}  {info.kind:<9}  {info.status}{default}")
        print(f"{'':<{width}}  {'':<9}  {info.location}")
    return 0


def _prepare(name: str, as_json: bool) -> int:
    from engine.model.resolve import resolve_model

    started = time.monotonic()

    def progress(stage: str, fraction: float) -> None:
        elapsed = time.monotonic() - started
        if as_json:
            line = {"type": "progress", "stage": stage, "fraction": fraction, "elapsed": elapsed}
            print(json.dumps(line), flush=True)
        else:
            print(f"[{elapsed:5.1f}s] {fraction:4.0%}  {stage}", file=sys.stderr, flush=True)

    path = resolve_model(name, progress)
    if as_json:
        print(json.dumps({"type": "ready", "name": name, "path": str(path)}), flush=True)
    else:
        print(f"{name}: ready at {path} ({time.monotonic() - started:.1f}s)")
    return 0
