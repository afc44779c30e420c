"""The shape of the code: layers, no import cycles, modules of a readable size.

docs/architecture.md describes the package map these tests hold the tree to.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from tests.conftest import REPO_ROOT

MAX_LINES = 400
"""A module longer than this says why at its top (a line starting "Longer than 400 lines")."""


def import_cycles(package: str) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others.

    Every import counts: module-level, inside functions and under TYPE_CHECKING.
    """
    graph = grimp.build_graph(package, include_external_packages=False)
    modules = sorted(graph.modules)
    imports = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in imports[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == module:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in modules:
        if module not in index:
            visit(module)
    return cycles


@pytest.mark.parametrize("package", ["engine", "tui"])
def test_no_import_cycles(package: str) -> None:
    assert import_cycles(package) == []


def test_a_cycle_is_found(tmp_path, monkeypatch) -> None:
    pkg = tmp_path / "looped"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from looped import b\n")
    (pkg / "b.py").write_text("from looped import c\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from looped import a\n")  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("looped") == [["looped.a", "looped.b", "looped.c"]]


def test_the_import_contracts_hold() -> None:
    """pyproject's import-linter contracts: engine's layers, tui over engine, no UI in engine."""
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint_imports)], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "broken" not in done.stdout.split("Contracts:")[-1].replace("0 broken", "")


def test_long_modules_say_why() -> None:
    unexplained = []
    for path in sorted((REPO_ROOT / "engine").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= MAX_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if "Longer than 400 lines" not in docstring:
            unexplained.append(f"{path.relative_to(REPO_ROOT)}: {text.count(chr(10))} lines")
    assert unexplained == []
