"""`tunedeck export RUN`: write the adapter (or a merged model) and a reproducibility bundle.

With `--json` it prints JSON lines instead, as the wizard's Export step reads them from the
child process it runs this in (a merged export needs torch, which the TUI never imports):
`{"type": "progress", "stage", "fraction"}` per stage, then one `{"type": "result", ...}`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXPORT_STAGES = 2
"""export_run reports two stages: the weights (copy or merge), then card, report, bundle."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `export` to the CLI."""
    parser = subparsers.add_parser(
        "export",
        help="export a run's best adapter (or a merged model) with a model card and report",
        description=(
            "Write the run's best adapter as a PEFT directory, or with --merged a full "
            "model with the adapter merged in, plus a model card (README.md), a run report "
            "(REPORT.md) and a reproducibility bundle (tunedeck/: config, split manifest, "
            "package versions, the command to repeat the run). The directory appears only "
            "when complete."
        ),
    )
    parser.add_argument("run", metavar="RUN", help="run id (or a unique prefix of it)")
    parser.add_argument("--out", metavar="DIR", required=True, help="directory to create")
    parser.add_argument("--merged", action="store_true", help="merge the adapter into the base")
    parser.add_argument("--json", action="store_true", help="JSON lines: progress, then result")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Export one run."""
    from engine.export import export_run
    from engine.runs import find_run

    stages: list[str] = []

    def progress(message: str) -> None:
        if not args.json:
            print(message, file=sys.stderr, flush=True)
            return
        line = {"type": "progress", "stage": message, "fraction": len(stages) / EXPORT_STAGES}
        stages.append(message)
        print(json.dumps(line), flush=True)

    result = export_run(find_run(args.run), Path(args.out), merged=args.merged, progress=progress)
    if args.json:
        line = {"type": "result", "out": str(result.out), "merged": result.merged,
                "files": result.files, "bytes": result.bytes}  # fmt: skip
        print(json.dumps(line), flush=True)
        return 0
    kind = "merged model" if result.merged else "adapter"
    print(
        f"{kind} exported to {result.out} ({result.bytes / 1e6:.1f} MB, {len(result.files)} files)"
    )
    return 0
