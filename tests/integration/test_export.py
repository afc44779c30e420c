"""Export: adapter round trip through plain peft, merged-model equality, the bundle repeats
the run, and an interrupted export never looks complete."""

from __future__ import annotations

import os
import re
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
from tests.integration.serving import serve_line
from tests.integration.test_training import SAMPLE, tiny_config, train_losses, wait_for_state

MERGE_LOGIT_TOLERANCE = 1e-2
"""float16 weights against the fp32 adapter, on the tiny model's logits."""


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
    assert re.search(r"\| adapter \| step \d+ \(lowest validation loss\) \|", card), card
    report = (result.out / "REPORT.md").read_text()
    assert "## Loss" in report and "* train loss" in report and "validation loss" in report
    assert "## Config" in report and "## Data" in report
    # vLLM serves the adapter on its base (the paths it names exist)
    words = serve_line(result.notes, "vLLM: ")
    assert words[:3] == ["vllm", "serve", str(tiny_model_dir.resolve())]
    lora = f"tunedeck-{completed_run.name}={result.out}"
    assert words[3:] == ["--enable-lora", "--lora-modules", lora]


def test_merged_model_is_the_adapter_merged_at_16_bits(
    completed_run, tiny_model_dir, tmp_path
) -> None:
    """The tiny base is fp32, so the merge is stored in float16 (half the size): exactly the
    adapter's merge rounded to float16, answering as the adapter does within that rounding."""
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    result = export_run(completed_run, tmp_path / "merged", kind="merged")
    assert (result.out / "tokenizer.json").is_file() and (result.out / "config.json").is_file()
    assert serve_line(result.notes, "vLLM: ") == ["vllm", "serve", str(result.out)]
    with safe_open(result.out / "model.safetensors", "pt") as handle:
        assert {handle.get_tensor(k).dtype for k in handle.keys()} == {torch.float16}  # noqa: SIM118
    merged = AutoModelForCausalLM.from_pretrained(result.out, dtype=torch.float32).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, completed_run / "adapter").eval()
    expected = {
        name: value.half().float()
        for name, value in adapted.merge_and_unload().state_dict().items()
    }
    adapted = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32),
        completed_run / "adapter",
    ).eval()
    for name, value in merged.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=0, msg=name)
    with torch.no_grad():
        for prompt in ([1, 5, 9], [1, 77, 3, 200, 4], [1, 300, 301, 302, 303, 304]):
            ids = torch.tensor([prompt])
            torch.testing.assert_close(
                merged(ids).logits,
                adapted(input_ids=ids).logits,
                rtol=0,
                atol=MERGE_LOGIT_TOLERANCE,
            )


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
