"""Pilot tests of step 7, Export: a scripted export for the UI (adapter, merged, GGUF with its
storage type, GGUF LoRA), and one real adapter export through the child process
(`tunedeck export RUN --json`) of a run made on disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Static

from engine.config.build import from_preset
from engine.export.exporter import ExportError, ExportKind, ExportResult
from engine.export.gguf.options import Quant
from engine.runs.store import create_run
from tests.tui.conftest import SAMPLE, SIZE, FakeBackend, notified, wait_until
from tui.app import TunedeckApp
from tui.backend_engine import EngineBackend
from tui.dialogs.error import ErrorDialog
from tui.screens.export import ExportScreen, human_size, next_quant, suggest_out

RUN_ID = "20250301-101500-c0ffee"
ADAPTER_FILES = {
    "adapter_config.json": b'{"r": 8, "lora_alpha": 16}\n',
    "adapter_model.safetensors": b"\0" * 4_096,
}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # exports/ lands in the test's directory


class ExportBackend(FakeBackend):
    """A FakeBackend whose exports write a fixed set of files; `merged` may lack space."""

    def __init__(self, adapter: bool = True, space_for_merge: bool = True) -> None:
        super().__init__()
        self.adapter = adapter
        self.space_for_merge = space_for_merge
        self.exports: list[tuple[Path, bool]] = []
        self.kinds: list[tuple[ExportKind, Quant]] = []

    def has_adapter(self, run_dir: Path) -> bool:
        return self.adapter

    def export_run(
        self,
        run_dir: Path,
        out: Path,
        kind: ExportKind,
        quant: Quant,
        progress: Callable[[str, float], None],
    ) -> ExportResult:
        merged = kind == "merged"
        self.exports.append((out, merged))
        self.kinds.append((kind, quant))
        if kind == "gguf":
            return self._gguf(out, quant, progress)
        if merged and not self.space_for_merge:
            raise ExportError(
                "not enough disk space for a merged export: about 0.6 GB needed, 0.1 GB free",
                hint="free some space, choose another --out, or export the adapter alone",
            )
        if out.exists():
            raise ExportError(f"{out} already exists", hint="choose a new directory")
        progress("copying the adapter", 0.0)
        files = {**ADAPTER_FILES, "README.md": b"# card\n", "REPORT.md": b"# report\n" * 40,
                 "tunedeck/config.toml": b"model = 'smollm2-135m'\n"}  # fmt: skip
        for name, data in files.items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(data)
        return ExportResult(out, kind, sorted(files), sum(len(d) for d in files.values()))

    def _gguf(
        self, out: Path, quant: Quant, progress: Callable[[str, float], None]
    ) -> ExportResult:
        progress("writing GGUF tensors (8/20)", 0.5)
        files = {f"model-{quant}.gguf": b"GGUF" + b"\0" * 2_000, "Modelfile": b"FROM x\n"}
        out.mkdir(parents=True)
        for name, data in files.items():
            (out / name).write_bytes(data)
        notes = (
            "read back: 20 tensors (5 F32, 15 Q8_0), 512 tokens, llama",
            "Ollama: cd into the export, then ollama create tunedeck-x -f Modelfile",
        )
        return ExportResult(out, "gguf", sorted(files), 2_011, notes)


def export_app(backend: FakeBackend, state: str = "completed") -> TunedeckApp:
    run = backend.add_run(RUN_ID, state)
    return TunedeckApp(backend, SAMPLE, "smollm2-135m", run=run.dir)


async def open_export(pilot: Any) -> ExportScreen:
    await pilot.app.switch_mode("export")
    screen = pilot.app.screen
    assert isinstance(screen, ExportScreen)
    await wait_until(pilot, lambda: RUN_ID in text(screen, "#export-intro"), timeout=10)
    return screen


def text(screen: Any, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def test_sizes_and_suggestions(tmp_path: Path) -> None:
    assert [human_size(n) for n in (812, 4_096, 538_200_000, 1_100_000_000)] == [
        "812 B", "4.1 KB", "538.2 MB", "1.1 GB",
    ]  # fmt: skip
    assert suggest_out(RUN_ID) == Path("exports") / RUN_ID
    (tmp_path / "exports" / RUN_ID).mkdir(parents=True)
    assert suggest_out(RUN_ID) == Path("exports") / f"{RUN_ID}-2"


async def test_a_exports_the_adapter_and_lists_the_files() -> None:
    backend = ExportBackend()
    async with export_app(backend).run_test(size=SIZE) as pilot:
        screen = await open_export(pilot)
        out = screen.query_one("#export-out", Input)
        assert out.value == f"exports/{RUN_ID}"
        await pilot.press("a")
        table = screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count == 5, timeout=10)
        assert backend.exports == [(Path.cwd() / "exports" / RUN_ID, False)]
        rows = [tuple(map(str, table.get_row_at(i))) for i in range(table.row_count)]
        assert ("adapter_model.safetensors", "4.1 KB") in rows and ("README.md", "7 B") in rows
        assert f"✓ Adapter exported to exports/{RUN_ID}: 5 files" in text(screen, "#export-status")
        assert "export" in pilot.app.steps_done
        assert out.value == f"exports/{RUN_ID}-2"  # the next export will not clash
        assert not screen.query_one("#export-progress").display


async def test_o_edits_the_output_directory_then_f_exports_the_merged_model() -> None:
    backend = ExportBackend()
    async with export_app(backend).run_test(size=SIZE) as pilot:
        screen = await open_export(pilot)
        await pilot.press("o")
        out = screen.query_one("#export-out", Input)
        assert out.has_focus
        out.value = ""
        await pilot.press(*"merged", "enter")
        assert not out.has_focus
        await pilot.press("f")
        await wait_until(pilot, lambda: screen.query_one(DataTable).row_count == 5, timeout=10)
        assert backend.exports == [(Path.cwd() / "merged", True)]
        assert "✓ Merged model exported to merged" in text(screen, "#export-status")


async def test_too_little_disk_space_is_a_dialog_and_nothing_is_exported() -> None:
    backend = ExportBackend(space_for_merge=False)
    async with export_app(backend).run_test(size=SIZE) as pilot:
        screen = await open_export(pilot)
        await pilot.press("f")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ErrorDialog), timeout=10)
        dialog = pilot.app.screen
        assert "not enough disk space" in dialog.message and "adapter alone" in dialog.hint
        await pilot.press("escape")
        assert "Nothing was exported" in text(screen, "#export-status")
        assert not screen.exporting and not screen.query_one("#export-progress").display
        assert "export" not in pilot.app.steps_done


async def test_without_an_adapter_the_keys_are_refused_with_a_message() -> None:
    backend = ExportBackend(adapter=False)
    async with export_app(backend, state="running").run_test(size=SIZE) as pilot:
        screen = await open_export(pilot)
        assert "has no adapter yet" in text(screen, "#export-intro")
        await pilot.press("a", "f")
        await pilot.pause()
        assert backend.exports == []
        assert notified(pilot.app, "no adapter yet")


async def test_no_run_says_to_train_first(make_app) -> None:
    async with make_app().run_test(size=SIZE) as pilot:
        await pilot.app.switch_mode("export")
        screen = pilot.app.screen
        assert "No run yet" in text(screen, "#export-intro")
        await pilot.press("a")
        await pilot.pause()
        assert notified(pilot.app, "No run to export")


async def test_a_real_adapter_export_through_the_child_process(
    tmp_path: Path, default_model_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the wizard opens on the Data step, which counts tokens with the default model: in the
    # session's converted home, not a fresh one that would convert it again (~25 s)
    monkeypatch.setenv("TUNEDECK_HOME", str(default_model_home))
    run = create_run(from_preset("quick", **{"data.source": str(SAMPLE)}))
    (run / "adapter").mkdir()
    for name, data in ADAPTER_FILES.items():
        (run / "adapter" / name).write_bytes(data)
    backend = EngineBackend()
    app = TunedeckApp(backend, SAMPLE, "smollm2-135m", run=run)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.app.switch_mode("export")
        screen = pilot.app.screen
        await wait_until(pilot, lambda: screen.has_adapter, timeout=10)
        await pilot.press("a")
        table = screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count > 0, timeout=120)
        names = {str(table.get_row_at(i)[0]) for i in range(table.row_count)}
        assert {*ADAPTER_FILES, "README.md", "REPORT.md", "tunedeck/config.toml"} <= names
        out = tmp_path / "exports" / run.name
        assert (out / "adapter_model.safetensors").read_bytes() == ADAPTER_FILES[
            "adapter_model.safetensors"
        ]
        # (the suggestion moving on to `-2` is checked with the scripted backend above:
        # a second real export here cost another child process, ~13 s of the suite)
        await pilot.press("o")
        screen.query_one("#export-out", Input).value = str(out)
        await pilot.press("enter", "a")  # an existing directory: the engine's refusal
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ErrorDialog), timeout=120)
        assert "already exists" in pilot.app.screen.message
        backend.shutdown()


def test_q_cycles_the_gguf_type() -> None:
    cycle = ("f16", "q8_0", "q4_0", "q4_k_m", "q5_k_m", "q6_k")
    assert [next_quant(q) for q in cycle] == [*cycle[1:], "f16"]


def test_a_k_quant_says_what_it_needs_when_llama_cpp_is_missing(monkeypatch) -> None:
    from tui.screens import export

    monkeypatch.setattr(export, "quantizer_available", lambda: False)
    line = export.quant_line("q4_k_m")
    assert "Q4_K_M" in line and "Not installed here: pip install 'tunedeck[gguf]'" in line
    assert "Not installed" not in export.quant_line("q4_0")
    monkeypatch.setattr(export, "quantizer_available", lambda: True)
    assert "Not installed" not in export.quant_line("q6_k")


async def test_g_exports_gguf_with_the_chosen_type_and_shows_the_ollama_hint() -> None:
    backend = ExportBackend()
    async with export_app(backend).run_test(size=SIZE) as pilot:
        screen = await open_export(pilot)
        assert "storage type q8_0" in text(screen, "#export-note")
        await pilot.press("q")
        assert "storage type q4_0" in text(screen, "#export-note")
        await pilot.press("g")
        table = screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count == 2, timeout=10)
        assert backend.kinds == [("gguf", "q4_0")]
        assert "✓ GGUF model exported to" in text(screen, "#export-status")
        notes = text(screen, "#export-notes")
        assert "read back: 20 tensors" in notes and "ollama create" in notes
        assert screen.query_one("#export-notes").display


async def test_l_exports_the_adapter_as_gguf_lora() -> None:
    backend = ExportBackend()
    async with export_app(backend).run_test(size=SIZE) as pilot:
        screen = await open_export(pilot)
        await pilot.press("l")
        await wait_until(pilot, lambda: screen.query_one(DataTable).row_count == 5, timeout=10)
        assert backend.kinds == [("gguf-adapter", "q8_0")]
        assert "✓ GGUF LoRA adapter exported to" in text(screen, "#export-status")
        assert not screen.query_one("#export-notes").display  # this fake wrote no notes
