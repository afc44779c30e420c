"""Faults inside the worker, injected in-process: NaN loss and out-of-memory."""

from __future__ import annotations

import signal

import pytest
import torch

from engine.config.build import load_config
from engine.core import checkpoints
from engine.core.events import iter_all_events, read_status
from engine.runs.store import create_run
from engine.train import worker as train
from tests.integration.test_training import small_data, tiny_config  # noqa: F401


@pytest.fixture(autouse=True)
def keep_signal_handlers():
    """run_worker installs SIGTERM/SIGHUP handlers; give pytest its own back."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def inject_into_head(monkeypatch: pytest.MonkeyPatch, failure, module: str = "output") -> None:
    """Wrap model loading so a layer's training forward passes go through `failure`.

    `module`: "output" (the LM head) or "input" (the token embeddings).
    """
    original = train.load_model

    def load_with_fault(*args, **kwargs):
        model = original(*args, **kwargs)
        calls = {"training": 0}

        def hook(module, inputs, output):
            if not module.training:
                return None
            calls["training"] += 1
            return failure(calls["training"], output)

        layer = (
            model.get_output_embeddings() if module == "output" else model.get_input_embeddings()
        )
        layer.register_forward_hook(hook)
        return model

    monkeypatch.setattr(train, "load_model", load_with_fault)


def test_nan_loss_fails_the_run_and_keeps_the_last_good_checkpoint(
    monkeypatch,
    tiny_model_dir,
    small_data,  # noqa: F811
) -> None:
    run_dir = create_run(tiny_config(tiny_model_dir, small_data, logging_steps=1,
                                     save_steps=2, eval_steps=2, max_steps=12))  # fmt: skip
    inject_into_head(monkeypatch, lambda n, out: out * float("nan") if n >= 5 else None)
    assert train.run_worker(run_dir) == 1

    status = read_status(run_dir)
    assert status.state == "failed" and "nan" in status.error and status.step == 5
    assert "learning rate" in status.hint
    warning = next(e for e in iter_all_events(run_dir) if e.get("code") == "nan_loss")
    assert warning["step"] == 5 and warning["loss"] == "nan"
    latest = checkpoints.latest_valid(run_dir / "checkpoints")
    assert latest is not None and latest.name == "checkpoint-4"
    assert not (run_dir / "checkpoints" / "checkpoint-6").exists()
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


def test_out_of_memory_fails_with_advice(monkeypatch, tiny_model_dir, small_data) -> None:  # noqa: F811
    run_dir = create_run(tiny_config(tiny_model_dir, small_data, max_steps=6))

    def oom(n, out):
        if n >= 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    inject_into_head(monkeypatch, oom)
    assert train.run_worker(run_dir) == 1
    status = read_status(run_dir)
    assert status.state == "failed" and status.error.startswith("out of memory")
    assert "micro-batch" in status.hint and "gradient checkpointing" in status.hint


def test_oom_retry_halves_the_micro_batch_and_finishes(
    monkeypatch,
    tiny_model_dir,
    small_data,  # noqa: F811
) -> None:
    run_dir = create_run(tiny_config(tiny_model_dir, small_data, max_steps=6, oom_retry=True,
                                     micro_batch_size=4, gradient_accumulation=1))  # fmt: skip

    def oom_on_long_rows(n, out):
        # A padding-free micro-batch is one row: 4 examples of >=130 tokens exceed 520,
        # 2 examples of at most max_seq_len=256 tokens never do.
        if out.shape[1] > 520:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    inject_into_head(monkeypatch, oom_on_long_rows, module="input")
    assert train.run_worker(run_dir) == 0
    assert read_status(run_dir).state == "completed"
    cfg = load_config(run_dir / "config.toml")
    assert (cfg.micro_batch_size, cfg.gradient_accumulation) == (2, 2)
    codes = [e.get("code") for e in iter_all_events(run_dir) if e["type"] == "warning"]
    assert "oom_retry" in codes


def test_oom_retry_frees_the_first_trainer_and_model_before_the_retry_loads(
    monkeypatch,
    tiny_model_dir,
    small_data,  # noqa: F811
) -> None:
    """The exception's traceback holds the failed attempt's frames. The worker's cleanup
    (gc.collect, then torch.cuda.empty_cache) must run once they are gone: inside the
    `except` block the trainer and model are still reachable, and emptying the CUDA cache
    then hands nothing back before the smaller retry loads."""
    import gc
    import sys
    import weakref

    run_dir = create_run(tiny_config(tiny_model_dir, small_data, max_steps=2, oom_retry=True,
                                     micro_batch_size=4, gradient_accumulation=1))  # fmt: skip
    built: list[weakref.ref] = []
    alive_after_cleanup: list[int] = []
    original_build, original_collect = train.build_trainer, gc.collect

    def build_and_track(*args, **kwargs):
        trainer = original_build(*args, **kwargs)
        built.extend([weakref.ref(trainer), weakref.ref(trainer.model)])
        return trainer

    def collect_and_look(*args, **kwargs):
        result = original_collect(*args, **kwargs)
        caller = sys._getframe(1).f_globals.get("__name__")
        if built and caller == "engine.train.worker":  # the worker's cleanup, not transformers'
            alive_after_cleanup.append(sum(ref() is not None for ref in built[:2]))
        return result

    def oom_once(n, out):
        if len(built) == 2:  # the first attempt only
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(train, "build_trainer", build_and_track)
    monkeypatch.setattr(gc, "collect", collect_and_look)
    inject_into_head(monkeypatch, oom_once, module="input")
    assert train.run_worker(run_dir) == 0
    assert len(built) == 4  # one retry
    assert alive_after_cleanup[0] == 0  # the cleanup found the first attempt unreachable


def test_low_disk_space_pauses_without_a_half_checkpoint_then_resumes(
    monkeypatch,
    tiny_model_dir,
    small_data,  # noqa: F811
) -> None:
    import shutil as real_shutil

    from engine.train import callback as run_callback

    run_dir = create_run(tiny_config(tiny_model_dir, small_data, save_steps=2, eval_steps=2,
                                     max_steps=8))  # fmt: skip
    real_usage = real_shutil.disk_usage
    checks = {"n": 0}

    class Usage:
        def __init__(self, free: int) -> None:
            self.free = free

    def usage(path):
        checks["n"] += 1  # one check per save step: steps 2, 4, then "full" at 6
        return Usage(1_000_000) if checks["n"] >= 3 else real_usage(path)

    monkeypatch.setattr(run_callback.shutil, "disk_usage", usage)
    assert train.run_worker(run_dir) == 0
    status = read_status(run_dir)
    assert status.state == "paused" and status.step == 6
    assert status.error.startswith("disk almost full") and "resume" in status.hint
    assert checkpoints.latest_valid(run_dir / "checkpoints").name == "checkpoint-4"
    assert not (run_dir / "checkpoints" / "checkpoint-6").exists()

    monkeypatch.setattr(run_callback.shutil, "disk_usage", real_usage)  # space freed
    assert train.run_worker(run_dir) == 0
    status = read_status(run_dir)
    assert status.state == "completed" and status.step == 8 and status.error is None


def test_enospc_while_writing_a_checkpoint_fails_clearly_and_resume_works(
    monkeypatch,
    tiny_model_dir,
    small_data,  # noqa: F811
) -> None:
    import errno

    run_dir = create_run(tiny_config(tiny_model_dir, small_data, save_steps=2, eval_steps=2,
                                     max_steps=6))  # fmt: skip
    real_mark = checkpoints.mark_complete

    def mark(path, step):
        if step == 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_mark(path, step)

    monkeypatch.setattr(checkpoints, "mark_complete", mark)
    assert train.run_worker(run_dir) == 1
    status = read_status(run_dir)
    assert status.state == "failed" and status.error.startswith("disk full while writing")
    assert "resume" in status.hint
    assert checkpoints.latest_valid(run_dir / "checkpoints").name == "checkpoint-2"

    monkeypatch.setattr(checkpoints, "mark_complete", real_mark)
    assert train.run_worker(run_dir) == 0
    assert read_status(run_dir).state == "completed"
    resume = [e for e in iter_all_events(run_dir) if e["type"] == "resume"]
    assert resume and resume[-1]["from_step"] == 2


def test_a_hand_broken_config_fails_the_worker_with_file_and_line(
    tiny_model_dir,
    small_data,  # noqa: F811
) -> None:
    run_dir = create_run(tiny_config(tiny_model_dir, small_data, max_steps=2))
    (run_dir / "config.toml").write_text("learning_rate = 2e-4\nepochs = = 3\n")
    assert train.run_worker(run_dir) == 1
    status = read_status(run_dir)
    assert status.state == "failed" and "config.toml:2:" in status.error
    assert "epochs = = 3" in status.hint
