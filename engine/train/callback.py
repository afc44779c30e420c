"""The bridge from transformers' Trainer to the run directory.

A `TrainerCallback` that turns Trainer logs into events, keeps status.json and its
heartbeat current, obeys control requests at step boundaries, keeps the best adapter,
stops early when validation loss stops improving, and refuses to checkpoint NaN weights.
"""

from __future__ import annotations

import math
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from engine.core import checkpoints
from engine.core.control import ACTIONS, ControlReader
from engine.core.events import EventWriter, RunStatus, write_status
from engine.core.files import replace_durably
from engine.core.layout import ADAPTER_DIR

DISK_FULL = "disk_full"  # internal request: pause without saving
MIN_FREE_BYTES = 64 * 1024 * 1024  # events, status and logs need room too
HEARTBEAT_S = 10.0
# Validation loss above its best by this fraction for two evaluations in a row, while
# training loss keeps falling, is the classic picture of overfitting.
OVERFIT_MARGIN = 0.02


class TokenCounter:
    """Counts trained and total tokens as the collator builds batches (same process)."""

    def __init__(self) -> None:
        self.trained = 0
        self.total = 0


@dataclass
class TimeSpent:
    """Seconds of one training process: in optimizer steps, validation, checkpoints, kept
    adapters, and in all (the rest: data loading, logging, the Trainer's own work)."""

    steps_s: float = 0.0
    validation_s: float = 0.0
    checkpoint_s: float = 0.0
    adapter_s: float = 0.0
    total_s: float = 0.0

    def rounded(self) -> dict[str, float]:
        return {name: round(value, 2) for name, value in asdict(self).items()}


class RunCallback(TrainerCallback):
    """Writes events/status for one run and applies its control requests."""

    def __init__(
        self,
        run_dir: Path,
        events: EventWriter,
        tokens: TokenCounter,
        patience: int | None,
        resumed_from: int = 0,
    ) -> None:
        self.run_dir = run_dir
        self.events = events
        self.is_main = events.enabled  # rank 0 of a multi-process run, or the only process
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.tokens = tokens
        self.patience = patience
        self.keep_adapter = "best"  # adapter/ holds: the lowest validation loss, or "last"
        self.kept_step: int | None = None
        self.control_reader = ControlReader(run_dir)
        self.status = RunStatus(state="running", pid=os.getpid(), step=resumed_from)
        self.exit_state: str | None = None  # "stopped" / "paused" when a viewer asked
        self.failure: tuple[str, str] | None = None
        self.evals_without_gain = 0
        self.rising_evals = 0
        self.last_train_loss: float | None = None
        self._status_lock = threading.Lock()
        self._t0 = time.monotonic()
        self._step0 = resumed_from
        self._last_log = (time.monotonic(), 0)
        self.checkpoint_bytes = 0  # size of the last checkpoint (or an estimate)
        self.gather_state: Callable[[Any], dict[str, Any]] | None = None
        """Set under FSDP: collects the sharded weights (a collective: every rank calls)."""
        self._stop_heartbeat = threading.Event()
        self.stop_signal = threading.Event()  # set by the SIGTERM handler
        self.time = TimeSpent()
        """Where this process's training time went (emitted as a `timing` event at the end)."""
        self._step_began = self._mark = time.monotonic()

    # -- status & heartbeat -------------------------------------------------

    def update_status(self, **changes: Any) -> None:
        with self._status_lock:
            self.status = replace(self.status, heartbeat=time.time(), **changes)
            if self.is_main:
                write_status(self.run_dir, self.status)

    def start_heartbeat(self) -> None:
        """Keep the heartbeat fresh during long steps and evaluations."""

        def beat() -> None:
            while not self._stop_heartbeat.wait(HEARTBEAT_S):
                self.update_status()

        threading.Thread(target=beat, name="heartbeat", daemon=True).start()

    def stop_heartbeat(self) -> None:
        self._stop_heartbeat.set()

    # -- Trainer hooks ------------------------------------------------------

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0 = self._mark = time.monotonic()
        self._step0 = state.global_step
        self._last_log = (self._t0, self.tokens.trained)
        self.update_status(max_steps=state.max_steps, step=state.global_step)
        model = kwargs.get("model")
        if model is not None and not self.checkpoint_bytes:
            # Adapter weights + AdamW's two moments, fp32, before the first real checkpoint.
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            self.checkpoint_bytes = trainable * 4 * 3

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_began = time.monotonic()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        self._mark = time.monotonic()
        self.time.steps_s += self._mark - self._step_began
        self.update_status(step=state.global_step, epoch=round(state.epoch or 0.0, 4))
        requests: list[str] = list(self.control_reader.poll()) if self.is_main else []
        if self.stop_signal.is_set():
            requests.append("stop")
        if control.should_save and self.is_main and not self._space_for_checkpoint():
            requests.append(DISK_FULL)
        if self.world_size > 1:
            requests = _agree_across_ranks(requests)
        if DISK_FULL in requests:
            # Pause without saving: a checkpoint that cannot be completed is worse than
            # none, and the previous one stays intact for `tunedeck resume`.
            self.exit_state = "paused"
            control.should_save = False
            control.should_training_stop = True
            return control
        for action in requests:
            self.events.emit("control", action=action, step=state.global_step)
            if action in ("stop", "pause"):
                self.exit_state = "stopped" if action == "stop" else "paused"
                self.update_status(state="stopping" if action == "stop" else "running")
                control.should_save = True
                control.should_training_stop = True
            elif action == "checkpoint":
                control.should_save = True
            elif action == "evaluate":
                control.should_evaluate = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs:
            return control
        loss = float(logs["loss"])
        grad_norm = float(logs.get("grad_norm", 0.0))
        if not math.isfinite(loss) or not math.isfinite(grad_norm):
            what = (
                f"loss became {loss}"
                if not math.isfinite(loss)
                else f"gradient norm became {grad_norm}"
            )
            self.failure = (
                f"training {what} at step {state.global_step}",
                "lower the learning rate or enable warmup; the last good checkpoint is kept",
            )
            control.should_save = False  # never checkpoint NaN weights
            control.should_evaluate = False
            control.should_training_stop = True
            self.events.emit("warning", code="nan_loss", step=state.global_step, loss=loss)
            return control
        self.last_train_loss = loss
        self.events.emit("metric", split="train", **self._train_metric(state, logs, loss))
        return control

    def _train_metric(self, state, logs: dict[str, Any], loss: float) -> dict[str, Any]:
        now = time.monotonic()
        then, tokens_then = self._last_log
        self._last_log = (now, self.tokens.trained)
        # Each rank counts its own batches; rank 0's count times the world size is close
        # (length-random batches) without a collective in the logging path.
        rate = (self.tokens.trained - tokens_then) * self.world_size / max(now - then, 1e-9)
        done = state.global_step - self._step0
        elapsed = now - self._t0
        eta = elapsed / done * (state.max_steps - state.global_step) if done else None
        return {
            "step": state.global_step,
            "epoch": round(state.epoch or 0.0, 4),
            "loss": loss,
            "lr": logs.get("learning_rate"),
            "grad_norm": logs.get("grad_norm"),
            "tokens_per_s": round(rate, 1),
            "trained_tokens": self.tokens.trained * self.world_size,
            "elapsed_s": round(elapsed, 1),
            "eta_s": round(eta, 1) if eta is not None else None,
            "memory": _memory_bytes(),
        }

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.time.validation_s += self._since_mark()
        try:
            return self._evaluated(state, control, metrics, kwargs)
        finally:
            self._mark = time.monotonic()  # a kept adapter counts on its own

    def _since_mark(self) -> float:
        """Seconds since the end of the last step (or of the last timed piece after it)."""
        now = time.monotonic()
        spent, self._mark = now - self._mark, now
        return spent

    def _evaluated(self, state, control, metrics, kwargs):
        val_loss = (metrics or {}).get("eval_loss")
        if val_loss is None:
            return control
        val_loss = float(val_loss)
        self.events.emit("metric", split="val", step=state.global_step, loss=val_loss)
        best = self.status.best_val_loss
        if self.keep_adapter == "last":  # the latest weights, so a stopped run has them too
            self._save_adapter(kwargs["model"], state.global_step)
        if best is None or val_loss < best:
            self.update_status(best_val_loss=val_loss, best_step=state.global_step)
            if self.keep_adapter == "best":
                self._save_adapter(kwargs["model"], state.global_step)
            self.events.emit("best", step=state.global_step, val_loss=val_loss)
            self.evals_without_gain = self.rising_evals = 0
            return control
        self.evals_without_gain += 1
        self._watch_overfitting(state.global_step, val_loss, best)
        if self.patience is not None and self.evals_without_gain >= self.patience:
            self.events.emit(
                "early_stop",
                step=state.global_step,
                best_step=self.status.best_step,
                best_val_loss=best,
                patience=self.patience,
                kept=self.keep_adapter,
            )
            control.should_training_stop = True
        return control

    def _watch_overfitting(self, step: int, val_loss: float, best: float) -> None:
        if val_loss > best * (1 + OVERFIT_MARGIN):
            self.rising_evals += 1
        if self.rising_evals == 2:  # warn once per rise, not at every evaluation
            self.events.emit(
                "warning",
                code="overfitting",
                step=step,
                message=f"validation loss rose from {best:.4f} to {val_loss:.4f} "
                f"while training loss is {_loss_text(self.last_train_loss)}",
            )

    def on_train_end(self, args, state, control, **kwargs):
        """keep_adapter = "last": the final weights, unless the last evaluation saved them,
        training failed (NaN weights are never kept) or the run is pausing (a full disk
        pauses it too; it resumes from its checkpoint). Then: where the time went."""
        try:
            return self._keep_last(state, control, kwargs.get("model"))
        finally:
            self.time.total_s = time.monotonic() - self._t0
            self.events.emit("timing", step=state.global_step, **self.time.rounded())

    def _keep_last(self, state, control, model):
        if self.keep_adapter != "last" or self.failure is not None or model is None:
            return control
        if self.exit_state == "paused":
            return control
        if self.kept_step != state.global_step:
            self._save_adapter(model, state.global_step)
        return control

    def _save_adapter(self, model: Any, step: int) -> None:
        """Keep this adapter in adapter/, swapped in whole (temp dir, then rename)."""
        began = time.monotonic()
        try:
            self._write_adapter(model, step)
        finally:
            self.time.adapter_s += time.monotonic() - began

    def _write_adapter(self, model: Any, step: int) -> None:
        state = self.gather_state(model) if self.gather_state else None  # all ranks gather
        self.kept_step = step
        if not self.is_main:
            return
        target = self.run_dir / ADAPTER_DIR
        tmp = self.run_dir / f".{ADAPTER_DIR}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp, **({"state_dict": state} if state is not None else {}))
        old = self.run_dir / f".{ADAPTER_DIR}.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            os.replace(target, old)
        replace_durably(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
        self.events.emit("kept", step=step, rule=self.keep_adapter)

    def on_save(self, args, state, control, **kwargs):
        self.time.checkpoint_s += self._since_mark()
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if self.is_main and path.is_dir():
            checkpoints.mark_complete(path, state.global_step)
            self.checkpoint_bytes = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            self.events.emit("checkpoint", step=state.global_step, path=str(path))
        return control

    def _space_for_checkpoint(self) -> bool:
        """Free space for the next checkpoint (with margin); says why not in the status."""
        free = shutil.disk_usage(self.run_dir).free
        need = int(self.checkpoint_bytes * 1.5) + MIN_FREE_BYTES
        if free >= need:
            return True
        message = (
            f"disk almost full: {free / 1e6:.0f} MB free under {self.run_dir.parent}, "
            f"the next checkpoint needs about {need / 1e6:.0f} MB"
        )
        hint = "free some space, then `tunedeck resume RUN`; the last checkpoint is intact"
        self.status = replace(self.status, error=message, hint=hint)
        self.events.emit("warning", code="disk_full", message=message)
        return False


def _agree_across_ranks(local: list[str]) -> list[str]:
    """Every rank acts on the same requests at the same step, or DDP would hang.

    Rank 0 reads the control file; a SIGTERM may reach any rank. One tiny all-reduce per
    step (max over ranks of a flag per action) costs far less than the step itself.
    """
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return local
    names = (*ACTIONS, DISK_FULL)
    flags = torch.tensor([float(a in local) for a in names])
    if dist.get_backend() == "nccl":
        flags = flags.cuda()
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return [a for a, flag in zip(names, flags.tolist(), strict=True) if flag > 0]


def _memory_bytes() -> int | None:
    """Peak memory of the run so far: CUDA's peak allocation on a GPU, else the process's
    peak resident set (both peaks, so the Train step's figure means the same on each)."""
    try:
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.max_memory_allocated())
        return peak_rss_bytes()
    except (OSError, ValueError):
        return None


def peak_rss_bytes() -> int:
    """The process's peak resident set size (ru_maxrss: kibibytes on Linux, bytes on macOS)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def _loss_text(loss: float | None) -> str:
    return f"{loss:.4f}" if loss is not None else "not logged yet"
