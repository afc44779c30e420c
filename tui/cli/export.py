"""`tunedeck export RUN`: write the adapter, a merged model or GGUF files, with a model card,
run report and reproducibility bundle.

With `--json` it prints JSON lines instead, as the wizard's Export step reads them from the
child process it runs this in (a merge needs torch, which the TUI never imports):
`{"type": "progress", "stage", "fraction"}` per stage, then one `{"type": "result", ...}`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.export.gguf.options import DEFAULT_QUANT, QUANT_NOTES, QUANTS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `export` to the CLI."""
    parser = subparsers.add_parser(
        "export",
        help="export a run's kept adapter, a merged model or GGUF (llama.cpp, Ollama)",
        description=(
            "Write the run's kept adapter (adapter/: the best or the last, as keep_adapter "
            "says) as a PEFT directory; with --merged a full model "
            "with the adapter merged in; with --gguf that merged model as one GGUF file "
            "for llama.cpp, Ollama or LM Studio, plus an Ollama Modelfile; with "
            "--gguf-adapter the adapter alone as a GGUF LoRA (llama.cpp --lora, Ollama "
            "ADAPTER). Each adds a model card (README.md), a run report (REPORT.md) and a "
            "reproducibility bundle (tunedeck/: config, split manifest, package versions, "
            "the command to repeat the run). The directory appears only when complete."
        ),
    )
    parser.add_argument("run", metavar="RUN", help="run id (or a unique prefix of it)")
    parser.add_argument("--out", metavar="DIR", required=True, help="directory to create")
    kinds = parser.add_mutually_exclusive_group()
    kinds.add_argument("--merged", action="store_true", help="merge the adapter into the base")
    kinds.add_argument("--gguf", action="store_true",
                       help="the merged model as GGUF, with an Ollama Modelfile")  # fmt: skip
    kinds.add_argument("--gguf-adapter", action="store_true",
                       help="the adapter alone as a GGUF LoRA file (f16)")  # fmt: skip
    parser.add_argument(
        "--quant", choices=QUANTS, default=None,
        help=f"storage type of --gguf (default {DEFAULT_QUANT}): "
        + "; ".join(f"{name}: {note}" for name, note in QUANT_NOTES.items()),
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="JSON lines: progress, then result")
    parser.set_defaults(handler=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    """Export one run."""
    from engine.export.exporter import export_run
    from engine.runs.store import find_run

    if args.quant is not None and not args.gguf:
        args.parser.error("--quant applies to --gguf only (a GGUF adapter is always f16)")
    kind = ("merged" if args.merged else "gguf" if args.gguf
            else "gguf-adapter" if args.gguf_adapter else "adapter")  # fmt: skip

    def progress(stage: str, fraction: float) -> None:
        if args.json:
            line = {"type": "progress", "stage": stage, "fraction": round(fraction, 3)}
            print(json.dumps(line), flush=True)
        else:
            print(stage, file=sys.stderr, flush=True)

    result = export_run(find_run(args.run), Path(args.out), kind, progress,
                        args.quant or DEFAULT_QUANT)  # fmt: skip
    if args.json:
        line = {"type": "result", "out": str(result.out), "kind": result.kind,
                "files": result.files, "bytes": result.bytes,
                "notes": list(result.notes)}  # fmt: skip
        print(json.dumps(line), flush=True)
        return 0
    print(
        f"{result.title} exported to {result.out} ({result.bytes / 1e6:.1f} MB, "
        f"{len(result.files)} files)"
    )
    for note in result.notes:
        print(f"  {note}")
    return 0
