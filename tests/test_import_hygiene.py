"""The one-way dependency holds at run time: engine loads no UI, the TUI loads no torch.

import-linter checks the static imports (`make imports`); this checks what a real
`import` pulls into sys.modules, lazily imported modules included.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

UI_MODULES = {"textual", "rich", "plotext", "textual_plotext"}
TRAINING_MODULES = {"torch", "transformers", "peft", "bitsandbytes", "accelerate", "datasets"}


def _loaded_top_level_modules(statement: str) -> set[str]:
    code = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    return {name.split(".")[0] for name in json.loads(out.splitlines()[-1])}


@pytest.mark.parametrize(
    "statement",
    [
        "import engine",
        "import engine.model.resolve, engine.data.formats, engine.data.lint.linter",
        "import engine.data.split, engine.eval.launch, engine.eval.runner",
        "import engine.eval.review, engine.eval.judge.judging",
    ],
)
def test_engine_loads_no_ui_library(statement: str) -> None:
    loaded = _loaded_top_level_modules(statement)
    assert loaded & UI_MODULES == set()


def test_tui_app_loads_textual_but_no_training_stack() -> None:
    loaded = _loaded_top_level_modules("import tui.app")
    assert "textual" in loaded  # the import really reached the UI
    assert loaded & TRAINING_MODULES == set()


def test_cli_parser_loads_neither_ui_nor_training_stack() -> None:
    """`tunedeck lint ...` must not pay for Textual or torch just to parse arguments."""
    loaded = _loaded_top_level_modules("import tui.cli; tui.cli.build_parser()")
    assert loaded & (TRAINING_MODULES | UI_MODULES) == set()
