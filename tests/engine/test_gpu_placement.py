"""GPU placement and load order for CUDA boxes, shown on a CPU with a faked device count.

- one process on a machine with several GPUs is pinned to one (CUDA_VISIBLE_DEVICES),
  and the runtime event carries the sentence that says so;
- the training arguments (process group, rank's device) exist before the model loads,
  FSDP's environment is set first, and weights go straight to the rank's GPU;
- bf16 "auto" needs real bf16 units, not emulation.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.config.build import from_preset, with_overrides
from engine.model.devices import GPU_NOTE_ENV, count_nvidia_gpus, place_worker, visible_gpu_ids
from engine.train import worker as train
from engine.train.model import model_device_map


def config(**changes):
    return with_overrides(from_preset("balanced"), **changes)


def test_one_process_on_four_gpus_is_pinned_to_the_first_and_says_so() -> None:
    placement = place_worker(1, env={}, gpu_count=4)
    assert placement.env["CUDA_VISIBLE_DEVICES"] == "0"
    assert "pinned: 4 GPUs visible" in placement.note
    assert "num_processes = 4" in placement.note
    assert placement.env[GPU_NOTE_ENV] == placement.note


def test_pinning_respects_the_users_own_visible_list() -> None:
    placement = place_worker(1, env={"CUDA_VISIBLE_DEVICES": "2,3"}, gpu_count=4)
    assert placement.env["CUDA_VISIBLE_DEVICES"] == "2"
    assert "GPU 2 only" in placement.note


def test_one_gpu_or_none_changes_nothing() -> None:
    assert "CUDA_VISIBLE_DEVICES" not in place_worker(1, env={}, gpu_count=1).env
    assert place_worker(1, env={}, gpu_count=1).note == "GPU 0"
    none = place_worker(1, env={}, gpu_count=0)
    assert none.env == {} and none.note == ""


def test_several_processes_keep_every_gpu_one_process_each() -> None:
    placement = place_worker(4, env={}, gpu_count=4)
    assert "CUDA_VISIBLE_DEVICES" not in placement.env
    assert placement.note == "GPUs 0,1,2,3, one process each"
    assert "more than one a GPU" in place_worker(4, env={}, gpu_count=2).note


def test_visible_ids_and_driver_count(tmp_path: Path) -> None:
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": " 1, 3 ,"}, 8) == ["1", "3"]
    assert visible_gpu_ids({}, 2) == ["0", "1"]
    assert count_nvidia_gpus(tmp_path / "absent") == 0
    for name in ("0000:01:00.0", "0000:02:00.0"):
        (tmp_path / name).mkdir()
    assert count_nvidia_gpus(tmp_path) == 2


def test_start_worker_pins_the_worker_environment(monkeypatch, tmp_path: Path) -> None:
    """engine.runs.store hands the placement to the worker it spawns (the spawn is faked:
    engine.core.process starts every detached process)."""
    from engine.core import process
    from engine.model import devices
    from engine.runs import store as runs

    seen: dict[str, str] = {}

    class FakeProcess:
        pid = 4242

        def __init__(self, command, env, **_kwargs) -> None:
            seen.update(env)

    from engine.config.build import save_config

    save_config(config(), tmp_path / runs.CONFIG_FILE)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(devices, "count_nvidia_gpus", lambda *_: 8)
    monkeypatch.setattr(process.subprocess, "Popen", FakeProcess)
    assert runs.start_worker(tmp_path) == 4242
    assert seen["CUDA_VISIBLE_DEVICES"] == "0"
    assert "8 GPUs visible" in seen[GPU_NOTE_ENV]


def test_arguments_are_built_before_the_model_loads(monkeypatch, tmp_path: Path) -> None:
    calls: list[str] = []
    for name in ("ACCELERATE_USE_FSDP", "FSDP_CPU_RAM_EFFICIENT_LOADING"):
        monkeypatch.setenv(name, "false")  # restored (removed) after the test

    def fake_arguments(*_args, **_kwargs):
        calls.append(f"arguments fsdp_env={os.environ.get('ACCELERATE_USE_FSDP')}")
        return "args"

    def fake_load(cfg, path, device, dtype, mode):
        calls.append(f"model {mode}")
        return "model"

    monkeypatch.setattr(train, "training_arguments", fake_arguments)
    monkeypatch.setattr(train, "load_model", fake_load)
    monkeypatch.setattr("engine.model.resolve.resolve_model", lambda name: tmp_path)
    result = train.arguments_then_model(config(), tmp_path, "cuda", None, True, "fsdp")
    assert result == ("args", "model")
    assert calls == ["arguments fsdp_env=true", "model fsdp"]
    assert os.environ["FSDP_CPU_RAM_EFFICIENT_LOADING"] == "true"


@pytest.mark.parametrize(
    ("method", "device", "mode", "rank", "expected"),
    [
        ("qlora", "cuda", "fsdp", "1", None),  # FSDP places the shards
        ("lora", "cuda", "fsdp", "1", None),
        ("lora", "cuda", "ddp", "3", {"": 3}),  # straight onto the rank's GPU
        ("qlora", "cuda", "single", "0", {"": 0}),
        ("qlora", "cpu", "single", "0", {"": "cpu"}),
        ("lora", "cpu", "ddp", "1", None),
    ],
)
def test_weights_load_onto_the_ranks_device(
    monkeypatch, method, device, mode, rank, expected
) -> None:
    monkeypatch.setenv("LOCAL_RANK", rank)
    assert model_device_map(config(method=method), device, mode) == expected


def test_bf16_auto_needs_real_bf16_units(monkeypatch) -> None:
    import torch

    asked: list[bool] = []

    def supported(including_emulation: bool = True) -> bool:
        asked.append(including_emulation)
        return including_emulation  # a T4: bf16 only by emulation

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    assert train.pick_device("auto") == ("cuda", torch.float16)
    assert asked == [False]
    assert train.pick_device("on") == ("cuda", torch.bfloat16)


def _training_run(home: Path, run_id: str, visible: str, device: str = "cuda") -> Path:
    from engine.core.events import EventWriter
    from engine.core.paths import runs_dir

    run_dir = runs_dir() / run_id
    run_dir.mkdir(parents=True)
    EventWriter(run_dir).emit("runtime", device=device, cuda_visible_devices=visible)
    return run_dir


def test_evaluation_is_refused_beside_training_on_the_same_gpu(tunedeck_home: Path) -> None:
    from engine.core.control import worker_lock
    from engine.core.errors import TunedeckError
    from engine.eval.runner import Evaluation
    from engine.model.devices import training_on_same_gpu

    run_dir = _training_run(tunedeck_home, "20260101-000000-aaaaaa", "0")
    _training_run(tunedeck_home, "20260101-000000-bbbbbb", "", device="cpu")
    assert training_on_same_gpu("0") is None  # no worker holds the run: nothing trains
    with worker_lock(run_dir):
        assert training_on_same_gpu("0") == run_dir.name
        assert training_on_same_gpu("") == run_dir.name  # the eval would see every GPU
        assert training_on_same_gpu("1,2") is None  # another GPU is fine

        class Runner:  # what _share_cpu_with_training reads of an Evaluation
            emit = None

        Runner.run_dir = run_dir
        import torch

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(torch.cuda, "is_available", lambda: True)
            patch.setenv("CUDA_VISIBLE_DEVICES", "0")
            with pytest.raises(TunedeckError) as caught:
                Evaluation._share_cpu_with_training(Runner())
    assert f"run {run_dir.name} is training on this GPU" in caught.value.message
    assert "tunedeck pause" in caught.value.hint and "CUDA_VISIBLE_DEVICES" in caught.value.hint


def test_the_bitsandbytes_hub_kernel_warning_is_explained(caplog) -> None:
    import logging

    from engine.model.devices import BNB_CPU_LOGGER, explain_bitsandbytes_hub_kernel

    explain_bitsandbytes_hub_kernel()
    explain_bitsandbytes_hub_kernel()  # once is enough
    logger = logging.getLogger(BNB_CPU_LOGGER)
    assert len(logger.filters) == 1
    with caplog.at_level(logging.INFO, logger=BNB_CPU_LOGGER):
        logger.warning(
            "Failed to load CPU gemm_4bit_forward from kernels-community: %s.",
            "Set trust_remote_code=True or add the repository ID to the allowlist",
        )
        logger.warning("something else")
    assert [r.levelname for r in caplog.records] == ["INFO", "WARNING"]
    assert "never runs remote code" in caplog.records[0].getMessage()
    assert "trust_remote_code" not in caplog.text
