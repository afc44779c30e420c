"""Wizard step 7, Export: the run's best adapter, a merged model, or GGUF files for
llama.cpp and Ollama, ready to use elsewhere.

Every export also writes a model card (README.md), the run report (REPORT.md) and a
reproducibility bundle (tunedeck/: config, split manifest, package versions, the command
that repeats the run); engine.export.exporter does the work, and writes into a temporary
directory renamed into place last. A merge needs torch (the base model is reloaded in
16/32 bit and the adapter merged in), so every kind runs as
`tunedeck export RUN --out DIR --json [--merged | --gguf --quant Q | --gguf-adapter]` in a
child process (Backend.export_run) that reports its progress; the screen lists the written
files and their sizes, and for GGUF what the file read back as and the `ollama create`
command.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Input, ProgressBar, Static
from textual.worker import Worker, WorkerState

from engine.core.events import ACTIVE_STATES
from engine.export.exporter import KIND_TITLES, ExportKind, ExportResult
from engine.export.gguf.options import (
    DEFAULT_QUANT,
    GGUF_EXTRA,
    K_QUANTS,
    QUANT_NOTES,
    QUANTS,
    Quant,
    quantizer_available,
)
from tui.backend import ExportBackend, RunsBackend
from tui.paths import display_path, stylesheet
from tui.screens.base import WizardScreen
from tui.widgets.path_input import PathInput

EXPORTS_DIR = Path("exports")
"""Default parent of exports, under the current directory: `exports/<run-id>`."""
WHAT = (
    "a: the adapter (PEFT directory, a few MB, loads on top of the base model) · "
    "f: the full model with the adapter merged in (the base reloaded in 16/32 bit, even "
    "after QLoRA) · g: that merged model as one GGUF file for llama.cpp, Ollama, LM Studio, "
    "with an Ollama Modelfile (storage type {quant}; q cycles "
    + " · ".join(QUANTS)
    + f"; {', '.join(K_QUANTS)} by llama.cpp's quantizer) · "
    "l: the adapter alone as a GGUF LoRA (llama-cli --lora, Ollama ADAPTER). All add a model "
    "card (README.md), the run report (REPORT.md) and a reproducibility bundle (tunedeck/). "
    "o: change the output directory."
)


def next_quant(quant: Quant) -> Quant:
    """The storage type after `quant`, round the list."""
    return QUANTS[(QUANTS.index(quant) + 1) % len(QUANTS)]


def quant_line(quant: Quant) -> str:
    """What the chosen storage type is, and what it needs when that is missing."""
    line = f"GGUF storage type: {quant} ({QUANT_NOTES[quant]})"
    if quant in K_QUANTS and not quantizer_available():
        line += f". Not installed here: {GGUF_EXTRA}"
    return line


def suggest_out(run_id: str) -> Path:
    """`exports/<run-id>`, or the first `exports/<run-id>-N` that does not exist yet."""
    candidate, number = EXPORTS_DIR / run_id, 2
    while candidate.exists():
        candidate, number = EXPORTS_DIR / f"{run_id}-{number}", number + 1
    return candidate


def human_size(size: int) -> str:
    """`812 B`, `4.1 KB`, `538.2 MB`, `1.1 GB` (decimal units, as disk tools show them)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


class ExportScreen(WizardScreen):
    """Export the wizard's run: its adapter, the merged model, or GGUF files.

    BINDINGS:
        a: export the adapter (PEFT) with model card, run report and reproducibility bundle
        f: export the full model with the adapter merged in (same extras)
        g: export the merged model as GGUF with an Ollama Modelfile (same extras)
        l: export the adapter alone as a GGUF LoRA file (same extras)
        q: cycle the GGUF storage type (f16, q8_0, q4_0)
        o: edit the output directory (enter or escape returns to the keys)
        escape: leave the output directory field
    """

    MODE = "export"
    CSS_PATH = stylesheet("export")
    AUTO_FOCUS = "#export-files"
    BINDINGS = [
        Binding("a", "export('adapter')", "Export adapter"),
        Binding("f", "export('merged')", "Export merged"),
        Binding("g", "export('gguf')", "GGUF"),
        Binding("l", "export('gguf-adapter')", "GGUF LoRA"),
        Binding("q", "cycle_quant", "GGUF type"),
        Binding("o", "edit_out", "Output dir"),
        Binding("escape", "leave_out", "Back to the keys", show=False),
    ]

    @dataclass
    class Checked(Message):
        """Whether the run has an adapter to export, and its state."""

        run_dir: Path
        has_adapter: bool
        state: str

    @dataclass
    class Progressed(Message):
        """A stage of the export; only the latest matters."""

        stage: str
        fraction: float

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, ExportScreen.Progressed)

    @dataclass
    class Exported(Message):
        """The export is complete: what was written, each file with its size."""

        result: ExportResult
        sizes: list[tuple[str, int]]

    def __init__(self) -> None:
        super().__init__()
        self.run_dir: Path | None = None
        self.has_adapter = False
        self.exporting = False
        self.quant: Quant = DEFAULT_QUANT

    def compose_body(self) -> ComposeResult:
        yield Static("", id="export-intro", markup=False)
        with Horizontal(id="export-out-row"):
            yield Static("Output directory ", classes="export-label")
            yield PathInput(placeholder="directory to create (→ completes)", id="export-out")
        yield Static("", id="export-status", markup=False)
        yield ProgressBar(id="export-progress", total=1.0, show_eta=False)
        yield Static("", id="export-notes", markup=False)
        yield DataTable(id="export-files", cursor_type="row", zebra_stripes=True)
        yield Static(WHAT.format(quant=self.quant), id="export-note", markup=False)

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("File", "Size")
        self.query_one("#export-progress").display = False
        self.query_one("#export-notes").display = False

    def sync(self) -> None:
        run_dir = self.wizard.run_dir
        if run_dir is None:
            self.run_dir, self.has_adapter = None, False
            self._intro("No run yet: train one first (ctrl+p), or open one from Runs (r).")
            return
        if run_dir != self.run_dir:
            self.run_dir = run_dir
            self.query_one("#export-out", Input).value = str(suggest_out(run_dir.name))
            self.query_one(DataTable).clear()
            self._status("")
        self.check(run_dir)

    def _intro(self, text: str) -> None:
        self.query_one("#export-intro", Static).update(text)

    def _status(self, text: str) -> None:
        self.query_one("#export-status", Static).update(text)

    @work(thread=True, exclusive=True, group="check", exit_on_error=False)
    def check(self, run_dir: Path) -> None:
        """Does the run have an adapter yet (training may have saved one since)?"""
        exports: ExportBackend = self.backend
        runs: RunsBackend = self.backend
        state = runs.run_info(run_dir).state
        self.post_message(self.Checked(run_dir, exports.has_adapter(run_dir), state))

    @on(Checked)
    def checked(self, message: Checked) -> None:
        if message.run_dir != self.run_dir:
            return
        self.has_adapter = message.has_adapter
        run_id = message.run_dir.name
        if not message.has_adapter:
            text = (f"Run {run_id} ({message.state}) has no adapter yet: one is saved at its "
                    "first validation step. Train it first (ctrl+p).")  # fmt: skip
        else:
            text = f"Run {run_id} ({message.state}): its kept adapter is ready to export."
            if message.state in ACTIVE_STATES:
                text += " The run is still training: this exports the adapter kept so far."
        self._intro(text)

    # -- exporting -----------------------------------------------------------------------

    def action_edit_out(self) -> None:
        self.query_one("#export-out", Input).focus()

    def action_leave_out(self) -> None:
        """Leave the output directory field: the keys (a, f) work again."""
        self.query_one(DataTable).focus()

    @on(Input.Submitted, "#export-out")
    def out_entered(self) -> None:
        self.action_leave_out()

    def action_cycle_quant(self) -> None:
        """Next GGUF storage type; the note under the table says which is chosen."""
        self.quant = next_quant(self.quant)
        self.query_one("#export-note", Static).update(WHAT.format(quant=self.quant))
        self.notify(quant_line(self.quant), timeout=3)

    def action_export(self, kind: ExportKind) -> None:
        out = self.query_one("#export-out", Input).value.strip()
        if self.run_dir is None:
            self.notify("No run to export: train one first.", severity="warning")
        elif not self.has_adapter:
            self.notify(f"Run {self.run_dir.name} has no adapter yet: nothing to export.",
                        severity="warning")  # fmt: skip
        elif self.exporting:
            self.notify("An export is running already.", severity="warning")
        elif not out:
            self.notify("Type the output directory first (o).", severity="warning")
        else:
            self.exporting = True
            what = f"GGUF model ({self.quant})" if kind == "gguf" else KIND_TITLES[kind]
            self._status(f"Exporting the {what} to {out}…")
            self.query_one(ProgressBar).update(progress=0.0)
            self.query_one("#export-progress").display = True
            self.query_one("#export-notes").display = False
            self.export(self.run_dir, Path(out).expanduser().absolute(), kind, self.quant)

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def export(self, run_dir: Path, out: Path, kind: ExportKind, quant: Quant) -> None:
        """Export in a child process (torch for a merge); errors become the error dialog."""

        def progress(stage: str, fraction: float) -> None:
            self.post_message(self.Progressed(stage, fraction))

        backend: ExportBackend = self.backend
        result = backend.export_run(run_dir, out, kind, quant, progress)
        self.post_message(self.Exported(result, result.file_sizes()))

    @on(Progressed)
    def progressed(self, message: Progressed) -> None:
        if self.exporting:
            self.query_one(ProgressBar).update(progress=message.fraction)
            self._status(f"Exporting: {message.stage}…")

    @on(Exported)
    def exported(self, message: Exported) -> None:
        self._done_exporting()
        result = message.result
        table = self.query_one(DataTable)
        table.clear()
        for name, size in message.sizes:
            table.add_row(name, human_size(size))
        title = result.title[0].upper() + result.title[1:]
        self._status(f"✓ {title} exported to {display_path(result.out)}: {len(result.files)} "
                     f"files, {human_size(result.bytes)}")  # fmt: skip
        notes = self.query_one("#export-notes", Static)
        notes.update("\n".join(result.notes))
        notes.display = bool(result.notes)
        self.tunedeck.set_step_done(self.MODE, True)
        if self.run_dir is not None:
            self.query_one("#export-out", Input).value = str(suggest_out(self.run_dir.name))

    @on(Worker.StateChanged)
    def _export_failed(self, event: Worker.StateChanged) -> None:
        """The error dialog comes from the base class; here the progress goes away."""
        if event.worker.group == "export" and event.state == WorkerState.ERROR:
            self._done_exporting()
            self._status("✗ Nothing was exported (the error says why).")

    def _done_exporting(self) -> None:
        self.exporting = False
        self.query_one("#export-progress").display = False
