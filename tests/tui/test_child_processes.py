"""Child processes (the token survey, model preparation, the playground's model) are
started and ended by the backend or a plain client class, never by a screen, a widget, a
dialog or the wizard's state: those only render, route keys and call the backend."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO_ROOT

PROCESS_MODULES = {"subprocess", "multiprocessing", "pty", "signal"}
PROCESS_CALLS = {"Popen", "fork", "spawnv", "spawnl", "system", "kill", "killpg", "execv"}
UI_MODULES = [
    *sorted((REPO_ROOT / "tui" / "screens").glob("*.py")),
    *sorted((REPO_ROOT / "tui" / "widgets").glob("*.py")),
    *sorted((REPO_ROOT / "tui" / "dialogs").glob("*.py")),
    REPO_ROOT / "tui" / "wizard.py",
]


def _is_process_call(node: ast.Attribute) -> bool:
    """`subprocess.Popen`, `os.kill` and the like."""
    owner = node.value
    return (
        node.attr in PROCESS_CALLS
        and isinstance(owner, ast.Name)
        and owner.id in {"os", "subprocess"}
    )


def process_handling(path: Path) -> list[str]:
    """Imports of process modules and calls of process functions in one source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in PROCESS_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in PROCESS_MODULES:
                found.append(node.module)
        elif isinstance(node, ast.Attribute) and _is_process_call(node):
            found.append(f"{ast.unparse(node.value)}.{node.attr}")
    return found


def test_the_ui_modules_are_found() -> None:
    names = {path.name for path in UI_MODULES}
    assert {"hparams.py", "data.py", "playground.py", "stats_pane.py", "wizard.py"} <= names


def test_no_screen_widget_dialog_or_wizard_state_handles_a_child_process() -> None:
    offenders = {
        str(path.relative_to(REPO_ROOT)): found
        for path in UI_MODULES
        if (found := process_handling(path))
    }
    assert offenders == {}


def test_the_check_sees_what_it_looks_for(tmp_path: Path) -> None:
    source = tmp_path / "screen.py"
    source.write_text(
        "import os\nimport subprocess\nfrom multiprocessing import Process\n"
        "def run():\n    subprocess.Popen(['x'])\n    os.kill(1, 9)\n"
    )
    assert process_handling(source) == [
        "subprocess",
        "multiprocessing",
        "subprocess.Popen",
        "os.kill",
    ]
