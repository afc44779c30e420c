"""bench/gpu_check.sh --cpu-smoke: the prepared GPU check runs end to end on this CPU."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import REPO_ROOT


def test_gpu_check_cpu_smoke_writes_the_table(tmp_path: Path) -> None:
    out = tmp_path / "table.md"
    result = subprocess.run(
        ["bash", "bench/gpu_check.sh", "--cpu-smoke", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    table = out.read_text()
    assert table.startswith("Device: CPU (smoke)")
    rows = [
        "| train trained tokens/s | tiny | lora |",
        "| train trained tokens/s | tiny | qlora |",
        "| attention fwd+bwd | tiny | tunedeck_packed |",
        "| attention fwd+bwd | tiny | sdpa |",
        "| eval generation | tiny | batch 2 |",
    ]
    for row in rows:
        assert row in table
    # the packed attention and transformers' sdpa compute the same loss
    sdpa = next(line for line in table.splitlines() if "| sdpa |" in line)
    assert float(sdpa.split("diff ")[1].split()[0].rstrip("|")) < 1e-4
    assert "trust_remote_code" not in result.stderr


def test_gpu_check_without_a_gpu_says_so() -> None:
    result = subprocess.run(
        ["bash", "bench/gpu_check.sh"], cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "no CUDA GPU visible" in result.stderr and "--cpu-smoke" in result.stderr
