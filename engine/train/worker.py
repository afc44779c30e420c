"""The training worker: `python -m engine.train.worker RUN_DIR` runs one run to its end.

Started detached (its own session) by engine.runs.store; everything it knows comes from the
run directory and everything it says goes back there (events.jsonl, status.json,
checkpoints/, adapter/). transformers' Trainer does the training; peft adds LoRA;
bitsandbytes quantises the base to NF4 for QLoRA (on CUDA and, slowly, on CPU).
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.config.build import TrainConfig, load_config
from engine.core import checkpoints
from engine.core.control import RunLockedError, worker_lock
from engine.core.errors import TunedeckError, is_out_of_memory
from engine.core.events import EventWriter, read_status
from engine.core.layout import CHECKPOINT_DIR, CONFIG_FILE
from engine.model.devices import GPU_NOTE_ENV
from engine.model.load import pick_device
from engine.model.loss import PackedCollator, PackedDataset, trained_positions_loss
from engine.model.tokenization import check_chat_template
from engine.train.callback import RunCallback, TokenCounter
from engine.train.dataset import ChatDataset, PaddingCollator, load_split
from engine.train.model import FSDP_CONFIG, load_model, parallel_mode, prepare_distributed

OOM_HINT = (
    "use a smaller micro-batch, a shorter max_seq_len, or enable gradient checkpointing "
    "(or set oom_retry to halve the micro-batch automatically)"
)

DISK_FULL_HINT = (
    "free some space, then `tunedeck resume RUN`: the last complete checkpoint is intact"
)


# ---------------------------------------------------------------------------
# Trainer
# ---------------------------------------------------------------------------


def training_arguments(
    cfg: TrainConfig,
    run_dir: Path,
    device: str,
    dtype: Any,
    has_val: bool = True,
    mode: str = "single",
) -> Any:
    """Map the run config onto transformers' TrainingArguments."""
    import torch
    from transformers import TrainingArguments

    sharding: dict[str, Any] = {}
    if mode == "fsdp":
        sharding = {"fsdp": True, "fsdp_config": dict(FSDP_CONFIG)}
    return TrainingArguments(
        **sharding,
        output_dir=str(run_dir / CHECKPOINT_DIR),
        per_device_train_batch_size=cfg.micro_batch_size,
        per_device_eval_batch_size=cfg.micro_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps if cfg.max_steps else -1,
        warmup_steps=cfg.warmup_ratio,  # a float in [0, 1) is a ratio in transformers 5
        lr_scheduler_type=cfg.scheduler,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        logging_steps=cfg.logging_steps,
        eval_strategy="steps" if has_val else "no",
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=3,
        seed=cfg.seed,
        report_to=[] if cfg.report_to == "none" else [cfg.report_to],
        bf16=dtype == torch.bfloat16,
        fp16=device == "cuda" and dtype == torch.float16,
        use_cpu=device == "cpu",
        remove_unused_columns=False,
        disable_tqdm=True,
        prediction_loss_only=True,  # evaluation needs the loss, not every logit
        logging_nan_inf_filter=False,  # report a NaN loss as NaN: the callback stops on it
        dataloader_num_workers=0,  # the collator counts tokens in this process
        ddp_find_unused_parameters=False,  # LoRA uses every adapter: skip the extra graph walk
    )


def _trainer_class() -> Any:
    """Trainer whose evaluation batches do not count as trained tokens."""
    from transformers import Trainer

    class RunTrainer(Trainer):
        eval_collator: Any = None

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            # Logits only where a token trains (engine.model.loss); same value as the
            # model's own loss. Normalised over the whole accumulated batch when the
            # Trainer counted it, else a per-micro-batch mean it divides by accumulation.
            loss, outputs = trained_positions_loss(model, inputs, num_items_in_batch)
            self.loss_is_scaled_for_ga = num_items_in_batch is not None
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # DDP averages the gradients
            return (loss, outputs) if return_outputs else loss

        def get_eval_dataloader(self, eval_dataset: Any = None) -> Any:
            # The loader keeps the collate function it was built with: swap it in briefly.
            train_collator, self.data_collator = self.data_collator, self.eval_collator
            try:
                return super().get_eval_dataloader(eval_dataset)
            finally:
                self.data_collator = train_collator

    return RunTrainer


def arguments_then_model(
    cfg: TrainConfig, run_dir: Path, device: str, dtype: Any, has_val: bool, mode: str
) -> tuple[Any, Any]:
    """TrainingArguments first, then the model: the order FSDP needs.

    Creating the arguments starts the process group and binds this rank to its GPU
    (accelerate's PartialState calls torch.cuda.set_device(LOCAL_RANK)); loading after
    that puts 4-bit weights on the rank's own GPU and lets cpu_ram_efficient_loading
    keep ranks other than 0 from reading the whole model.
    """
    from engine.model.resolve import resolve_model

    prepare_distributed(mode)
    args = training_arguments(cfg, run_dir, device, dtype, has_val, mode)
    model = load_model(cfg, resolve_model(cfg.model), device, dtype, mode)
    return args, model


def build_trainer(cfg: TrainConfig, run_dir: Path, callback: RunCallback, tokenizer: Any) -> Any:
    """Model, data and Trainer for one run; raises TunedeckError for unusable data."""
    device, dtype = pick_device(cfg.bf16)
    mode = parallel_mode(cfg, device)
    train: Any = ChatDataset(load_split(run_dir, "train"), tokenizer, cfg.max_seq_len)
    val = ChatDataset(load_split(run_dir, "val"), tokenizer, cfg.max_seq_len)
    if len(train) == 0:
        raise TunedeckError(
            "no training example has an assistant answer within max_seq_len",
            hint=f"raise max_seq_len (now {cfg.max_seq_len}) or check the data with "
            "`tunedeck lint`",
        )
    for name, data in (("train", train), ("val", val)):
        if data.dropped:
            callback.events.emit(
                "warning",
                code="truncated_away",
                message=f"{data.dropped} {name} examples dropped: their whole answer lies "
                f"beyond max_seq_len={cfg.max_seq_len}",
            )
    train_examples = len(train)  # the packed dataset below counts sequences instead
    if cfg.packing:  # whole examples back to back, up to max_seq_len tokens a sequence
        train = PackedDataset(train, cfg.max_seq_len, cfg.seed)
    from transformers import set_seed

    set_seed(cfg.seed)  # LoRA's initial weights are drawn before the Trainer seeds anything
    args, model = arguments_then_model(cfg, run_dir, device, dtype, len(val) > 0, mode)
    callback.events.emit(
        "runtime",
        device=device,
        dtype=str(dtype).removeprefix("torch."),
        method=cfg.method,
        processes=int(os.environ.get("WORLD_SIZE", "1")),
        parallel=mode,
        gpus=os.environ.get(GPU_NOTE_ENV, ""),
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES", ""),  # "" = all
        attention=model.get_base_model().config._attn_implementation,
        train_examples=train_examples,
        **({"packed_sequences": len(train)} if cfg.packing else {}),
        val_examples=len(val),
        trainable_parameters=model.get_nb_trainable_parameters()[0],
        total_parameters=model.get_nb_trainable_parameters()[1],
    )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    trainer = _trainer_class()(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=val if len(val) else None,
        data_collator=PackedCollator(callback.tokens),
        callbacks=[callback],
    )
    trainer.eval_collator = PaddingCollator(pad_id)
    if mode == "fsdp":  # every rank holds a shard: the best adapter is gathered first
        callback.gather_state = trainer.accelerator.get_state_dict
    return trainer


# ---------------------------------------------------------------------------
# The worker's life
# ---------------------------------------------------------------------------


def _rank() -> int:
    """This process's rank in a multi-process run (torchrun sets RANK), else 0."""
    return int(os.environ.get("RANK", "0"))


def run_worker(run_dir: Path) -> int:
    """Train the run in `run_dir` until it completes, stops, pauses or fails."""
    is_main = _rank() == 0
    events = EventWriter(run_dir, enabled=is_main)
    previous = read_status(run_dir)
    ckpt_root = run_dir / CHECKPOINT_DIR
    if is_main:
        checkpoints.remove_incomplete(ckpt_root)
    resume_from = checkpoints.latest_valid(ckpt_root)
    resumed_step = checkpoints.step_of(resume_from)
    callback = RunCallback(
        run_dir, events, TokenCounter(), patience=None, resumed_from=resumed_step
    )
    if previous is not None:  # carry the best-so-far and the plan across a resume
        callback.status = replace(
            callback.status,
            max_steps=previous.max_steps,
            best_val_loss=previous.best_val_loss,
            best_step=previous.best_step,
        )
    signal.signal(signal.SIGTERM, lambda *_: callback.stop_signal.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal is not a reason to stop
    callback.update_status(state="running")
    events.emit("state", state="running", pid=os.getpid())
    if resume_from is not None:
        events.emit("resume", from_step=resumed_step, checkpoint=str(resume_from))
    callback.start_heartbeat()
    try:
        return _train(run_dir, callback, resume_from)
    finally:
        callback.stop_heartbeat()


def _train(run_dir: Path, callback: RunCallback, resume_from: Path | None) -> int:
    events = callback.events
    try:
        cfg = load_config(run_dir / CONFIG_FILE)
        callback.patience = cfg.early_stopping_patience
        callback.keep_adapter = cfg.keep_adapter
        from engine.model.resolve import load_tokenizer

        tokenizer = load_tokenizer(cfg.model)
        _check_template(tokenizer, events)
        trainer = None
        while True:
            try:
                trainer = build_trainer(cfg, run_dir, callback, tokenizer)
                trainer.args.eval_on_start = (
                    resume_from is None and trainer.eval_dataset is not None
                )
                trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
                break
            except Exception as exc:
                if not _can_retry_oom(exc, cfg):
                    raise
            # Out of the except block: the exception (and its traceback's frames, which
            # hold the trainer, model and optimizer) is gone, so the memory can be freed.
            trainer = None
            _free_memory()
            cfg = _halve_micro_batch(cfg, run_dir, events)
            resume_from = checkpoints.latest_valid(run_dir / CHECKPOINT_DIR)
            step = checkpoints.step_of(resume_from)
            events.emit("resume", from_step=step, checkpoint=str(resume_from or ""))
    except TunedeckError as exc:
        return _fail(callback, exc.message, exc.hint)
    except Exception as exc:
        traceback.print_exc()
        if is_out_of_memory(exc):
            return _fail(callback, f"out of memory: {exc}".splitlines()[0], OOM_HINT)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return _fail(callback, f"disk full while writing: {exc}", DISK_FULL_HINT)
        return _fail(callback, f"{type(exc).__name__}: {exc}", "see worker.log for details")
    if callback.failure is not None:
        return _fail(callback, *callback.failure)
    state = callback.exit_state or "completed"
    callback.update_status(state=state)
    reason = {"error": callback.status.error} if callback.status.error else {}
    events.emit("state", state=state, step=callback.status.step, **reason)
    return 0


def _check_template(tokenizer: Any, events: EventWriter) -> None:
    """Refuse a template that cannot render the data before any weight loads; say so
    when the system text is folded into the first user turn (lint says the same)."""
    check = check_chat_template(tokenizer)  # ChatTemplateError names the cause
    if check.folds_system:
        events.emit("warning", code="template_folds_system", message=check.note)


def _can_retry_oom(exc: BaseException, cfg: TrainConfig) -> bool:
    """Retry with a smaller micro-batch only when asked, possible, and single-process.

    With several processes one rank retrying alone would leave the others waiting in a
    collective forever, so multi-process runs fail with the advice instead.
    """
    single = int(os.environ.get("WORLD_SIZE", "1")) == 1
    return is_out_of_memory(exc) and cfg.oom_retry and cfg.micro_batch_size > 1 and single


def _halve_micro_batch(cfg: TrainConfig, run_dir: Path, events: EventWriter) -> TrainConfig:
    """Half the micro-batch, double the accumulation (same effective batch), record it."""
    from engine.config.build import save_config, with_overrides

    new = with_overrides(
        cfg,
        micro_batch_size=cfg.micro_batch_size // 2,
        gradient_accumulation=cfg.gradient_accumulation * 2,
    )
    save_config(new, run_dir / CONFIG_FILE)  # the frozen config says what really ran
    events.emit(
        "warning",
        code="oom_retry",
        message=f"out of memory: retrying with micro_batch_size {new.micro_batch_size} and "
        f"gradient_accumulation {new.gradient_accumulation}",
    )
    return new


def _free_memory() -> None:
    """Collect what the failed attempt left (reference cycles included), then hand the
    CUDA cache back so the smaller retry starts from an empty GPU."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _fail(callback: RunCallback, message: str, hint: str) -> int:
    """Record the failure; on a full disk even that may fail, and must not hide the cause."""
    for record in (
        lambda: callback.update_status(state="failed", error=message, hint=hint),
        lambda: callback.events.emit("state", state="failed", error=message, hint=hint),
    ):
        try:
            record()
        except OSError as exc:
            print(f"could not record the failure ({exc}): {message}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m engine.train.worker RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(args[0]).resolve()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if _rank() != 0:
        return run_worker(run_dir)  # rank 0 owns the run directory's lock and files
    try:
        with worker_lock(run_dir):
            return run_worker(run_dir)
    except RunLockedError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 3
