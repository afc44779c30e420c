"""`tunedeck train --model <hub id>` that cannot be had fails at once, not in the worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.paths import runs_dir
from tests.integration.test_training import SAMPLE
from tui.cli import main


def test_train_with_an_unreachable_hub_model_fails_before_a_run_starts(
    capsys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # as on this machine: no hub
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty"))
    code = main(["train", "--data", str(SAMPLE), "--model", "Qwen/Qwen2.5-0.5B-Instruct"])
    err = capsys.readouterr().err
    assert code == 2
    assert "not in the local Hugging Face cache" in err and "offline" in err
    assert "started in the background" not in err and "Traceback" not in err
    assert not runs_dir().exists() or not any(runs_dir().iterdir())  # no run was created
