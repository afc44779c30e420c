"""Export: adapter round trip through plain peft, merged-model equality, the bundle repeats
the run, and an interrupted export never looks complete."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.config.build import load_config
from engine.export import exporter as export_module
from engine.export.exporter import ExportError, export_run
from engine.runs.store import start_run
from tests.conftest import REPO_ROOT
from tests.integration.test_training import SAMPLE, tiny_config, train_losses, wait_for_state


@pytest.fixture(scope="module")
def completed_run(tmp_path_factory, tiny_model_dir) -> Path:
    """One finished tiny run for the module (its own home; run paths are absolute)."""
    home = tmp_path_factory.mktemp("export_home")
    data = home / "tickets.jsonl"
    data.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:60]))
    saved = os.environ.get("TUNEDECK_HOME")
    os.environ["TUNEDECK_HOME"] = str(home)
    try:
        info = start_run(tiny_config(tiny_model_dir, data, max_steps=12))
        wait_for_state(info.dir, ("completed",))
    finally:
        if saved is None:
            del os.environ["TUNEDECK_HOME"]
        else:
            os.environ["TUNEDECK_HOME"] = saved
    return info.dir


PROBE = """
import sys, torch
from transformers import AutoModelForCausalLM
from peft import PeftModel
base = AutoModelForCausalLM.from_pretrained(sys.argv[1])
model = PeftModel.from_pretrained(base, sys.argv[2])
ids = torch.tensor([[1, 5, 9, 13, 2, 40, 41]])
print(repr(model(input_ids=ids).logits[0, -1, :6].tolist()))
"""


def peft_logits(model_dir: Path, adapter: Path) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE, str(model_dir), str(adapter)],
                         capture_output=True, text=True, cwd=REPO_ROOT)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def test_adapter_export_loads_in_plain_peft(completed_run, tiny_model_dir, tmp_path) -> None:
    result = export_run(completed_run, tmp_path / "out")
    files = set(result.files)
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "REPORT.md",
            "tunedeck/config.toml", "tunedeck/manifest.json", "tunedeck/versions.json",
            "tunedeck/RERUN.md"} <= files  # fmt: skip
    assert peft_logits(tiny_model_dir, result.out) == peft_logits(
        tiny_model_dir, completed_run / "adapter"
    )
    card = (result.out / "README.md").read_text()
    assert "LORA" in card and "best validation loss" in card and "sha256" in card
    report = (result.out / "REPORT.md").read_text()
    assert "## Loss" in report and "* train loss" in report and "validation loss" in report
    assert "## Config" in report and "## Data" in report


def test_merged_model_generates_what_the_adapter_does(
    completed_run, tiny_model_dir, tmp_path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    result = export_run(completed_run, tmp_path / "merged", kind="merged")
    assert (result.out / "tokenizer.json").is_file() and (result.out / "config.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(result.out)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    adapted = PeftModel.from_pretrained(base, completed_run / "adapter")
    for prompt in ([1, 5, 9], [1, 77, 3, 200, 4], [1, 300, 301, 302, 303, 304]):
        ids = torch.tensor([prompt])
        a = merged.generate(ids, max_new_tokens=12, do_sample=False)
        b = adapted.generate(input_ids=ids, max_new_tokens=12, do_sample=False)
        assert a.tolist() == b.tolist()


def test_the_bundle_repeats_the_run(completed_run, tmp_path) -> None:
    result = export_run(completed_run, tmp_path / "bundle")
    again = start_run(load_config(result.out / "tunedeck" / "config.toml"))
    wait_for_state(again.dir, ("completed",))
    original, repeated = train_losses(completed_run), train_losses(again.dir)
    assert sorted(original) == sorted(repeated)
    for step in sorted(original)[:3]:
        assert repeated[step] == pytest.approx(original[step], rel=1e-5), step


def test_an_interrupted_export_leaves_nothing_complete_looking(
    completed_run, tmp_path, monkeypatch
) -> None:
    def crash(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_module, "render_report", crash)
    with pytest.raises(OSError):
        export_run(completed_run, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []  # the partial directory is gone too


def test_refusals_are_clear(completed_run, tmp_path, monkeypatch) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(ExportError, match="already exists"):
        export_run(completed_run, tmp_path / "taken")

    class Tiny:
        free = 1024

    monkeypatch.setattr(export_module.shutil, "disk_usage", lambda path: Tiny())
    with pytest.raises(ExportError, match="not enough disk space") as info:
        export_run(completed_run, tmp_path / "merged", kind="merged")
    assert "without --merged" in info.value.hint
    assert not (tmp_path / "merged").exists()


def test_cli_export(completed_run, tmp_path) -> None:
    home = completed_run.parent.parent  # the module's own $TUNEDECK_HOME
    result = subprocess.run(
        [sys.executable, "-m", "tui.cli", "export", completed_run.name[:15], "--out",
         str(tmp_path / "cli")], capture_output=True, text=True, cwd=REPO_ROOT,
        env={**os.environ, "TUNEDECK_HOME": str(home)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "adapter exported to" in result.stdout
    assert (tmp_path / "cli" / "adapter_model.safetensors").is_file()
