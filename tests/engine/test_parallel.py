"""How several training processes share the work: DDP copies, FSDP shards (CUDA only).

Accelerate turns FSDP on only for GPUs, so on this CPU machine the FSDP path is checked
as far as it can be: the choice, the refusal on CPU, the Trainer's FSDP plugin settings
(peft's FSDP guide) and the per-GPU memory estimate. DDP itself runs for real in
tests/integration/test_training.py (two CPU processes through torchrun).
"""

from __future__ import annotations

import pytest

from engine.config.build import ConfigError, from_preset, with_overrides
from engine.config.estimate import estimate_memory
from engine.core.errors import TunedeckError
from engine.model.shapes import model_shape
from engine.train.model import FSDP_CONFIG, parallel_mode
from engine.train.worker import training_arguments
from tests.tiny_model import SMOLLM2_135M_CONFIG


def config(**changes):
    return with_overrides(from_preset("balanced"), **changes)


@pytest.mark.parametrize(
    ("world", "changes", "device", "expected"),
    [
        ("1", {"num_processes": 1, "method": "qlora"}, "cuda", "single"),
        ("2", {"num_processes": 2, "method": "lora"}, "cuda", "ddp"),
        ("2", {"num_processes": 2, "method": "qlora"}, "cuda", "fsdp"),
        ("2", {"num_processes": 2, "method": "qlora"}, "cpu", "ddp"),
        ("2", {"num_processes": 2, "method": "qlora", "distributed": "ddp"}, "cuda", "ddp"),
        ("2", {"num_processes": 2, "method": "lora", "distributed": "fsdp"}, "cuda", "fsdp"),
    ],
)
def test_auto_shards_qlora_on_gpus_and_copies_otherwise(
    monkeypatch, world, changes, device, expected
) -> None:
    monkeypatch.setenv("WORLD_SIZE", world)
    assert parallel_mode(config(**changes), device) == expected


def test_fsdp_on_cpu_is_refused_with_the_way_out(monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(TunedeckError) as caught:
        parallel_mode(config(num_processes=2, distributed="fsdp"), "cpu")
    assert "needs CUDA" in caught.value.message
    assert 'distributed = "ddp"' in caught.value.hint


def test_an_unknown_strategy_names_the_allowed_ones() -> None:
    with pytest.raises(ConfigError, match="distributed must be one of 'auto', 'ddp', 'fsdp'"):
        config(distributed="zero3")


def test_fsdp_arguments_follow_peft_guide(tmp_path) -> None:
    import torch

    args = training_arguments(config(), tmp_path, "cpu", torch.float32, True, "fsdp")
    plugin = args.fsdp_plugin_args
    assert args.fsdp is True
    assert plugin["fsdp_version"] == 2
    assert plugin["auto_wrap_policy"] == FSDP_CONFIG["auto_wrap_policy"]
    assert plugin["cpu_ram_efficient_loading"] is True
    assert plugin["state_dict_type"] == "FULL_STATE_DICT"  # adapters stay plain PEFT files
    plain = training_arguments(config(), tmp_path, "cpu", torch.float32, True, "ddp")
    assert plain.fsdp_plugin_args is None


def test_fsdp_estimate_splits_weights_and_optimizer_across_gpus() -> None:
    shape = model_shape(SMOLLM2_135M_CONFIG)
    copied = estimate_memory(config(num_processes=2, distributed="ddp"), shape, 512, "cuda")
    sharded = estimate_memory(config(num_processes=2, distributed="fsdp"), shape, 512, "cuda")
    assert sharded.weights == copied.weights // 2
    assert sharded.optimizer == copied.optimizer // 2
    assert sharded.activations == copied.activations  # each GPU still runs its micro-batch
