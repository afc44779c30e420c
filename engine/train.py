"""The training worker: `python -m engine.train RUN_DIR` runs one run to its end.

Started detached (its own session) by engine.runs; everything it knows comes from the
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

from engine import checkpoints
from engine.config import TrainConfig, load_config
from engine.control import RunLockedError, worker_lock
from engine.devices import GPU_NOTE_ENV
from engine.errors import TunedeckError, is_out_of_memory
from engine.events import EventWriter, read_status
from engine.fast_loss import PackedCollator, PackedDataset, trained_positions_loss
from engine.packed_attention import use_packed_attention
from engine.run_callback import RunCallback, TokenCounter
from engine.tokenization import IGNORE_INDEX, check_chat_template, tokenize_conversation

CHECKPOINT_DIR = "checkpoints"
OOM_HINT = (
    "use a smaller micro-batch, a shorter max_seq_len, or enable gradient checkpointing "
    "(or set oom_retry to halve the micro-batch automatically)"
)

DISK_FULL_HINT = (
    "free some space, then `tunedeck resume RUN`: the last complete checkpoint is intact"
)


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


class ChatDataset:
    """Tokenised conversations (a plain list: a few thousand examples fit anywhere)."""

    def __init__(self, examples: list[Any], tokenizer: Any, max_seq_len: int) -> None:
        self.items: list[dict[str, list[int]]] = []
        self.dropped = 0  # examples whose answer lies entirely past max_seq_len
        for example in examples:
            tokens = tokenize_conversation(tokenizer, example.messages, max_seq_len)
            if tokens.trained_tokens == 0:
                self.dropped += 1
                continue
            self.items.append({"input_ids": tokens.input_ids, "labels": tokens.labels})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.items[index]


class PaddingCollator:
    """Right-pads a batch to its longest member (evaluation batches)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(item["input_ids"]) for item in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, item in enumerate(batch):
            n = len(item["input_ids"])
            ids[row, :n] = torch.tensor(item["input_ids"])
            labels[row, :n] = torch.tensor(item["labels"])
            mask[row, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def load_split(run_dir: Path, name: str) -> list[Any]:
    """The run's own copy of a split (written by engine.runs when the run was created)."""
    from engine.formats import load_examples

    path = run_dir / "data" / f"{name}.jsonl"
    if name == "val" and path.stat().st_size == 0:
        return []  # a run without validation set (the user chose it, loudly warned)
    return load_examples(path).examples


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


def pick_device(bf16: str = "auto") -> tuple[str, Any]:
    """CUDA with bf16 where the GPU has it natively (fp16 otherwise), else CPU with fp32.

    `bf16 = "on"` forces bf16, also on CPU: on CPUs with AMX tiles (Intel Sapphire Rapids
    and later) that is about twice as fast, at a slightly higher loss after the same
    steps (bench/RESULTS.md), so "auto" keeps fp32 there. `"off"` keeps fp32 everywhere.
    """
    import torch

    if bf16 == "off":
        return ("cuda" if torch.cuda.is_available() else "cpu"), torch.float32
    if torch.cuda.is_available():
        # Real bf16 units only (Ampere and later): T4/V100 "support" it by emulation,
        # several times slower than fp16 with a loss scaler (the Trainer adds one).
        if bf16 == "on" or torch.cuda.is_bf16_supported(including_emulation=False):
            return "cuda", torch.bfloat16
        return "cuda", torch.float16
    return "cpu", torch.bfloat16 if bf16 == "on" else torch.float32


def parallel_mode(cfg: TrainConfig, device: str) -> str:
    """How the processes share the work: "single", "ddp" (a copy per GPU) or "fsdp"."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return "single"
    wants_fsdp = cfg.wants_fsdp(device)
    if wants_fsdp and device != "cuda":
        raise TunedeckError(
            "FSDP shards the model across GPUs and needs CUDA; this machine has none",
            hint='set distributed = "ddp" (or "auto") to train with several CPU processes',
        )
    return "fsdp" if wants_fsdp else "ddp"


def load_model(
    cfg: TrainConfig, model_path: Path, device: str, dtype: Any, mode: str = "single"
) -> Any:
    """The base model (NF4 for QLoRA) with LoRA adapters on the configured modules.

    Under FSDP (mode "fsdp") QLoRA follows peft's recipe: the 4-bit weights are stored
    in the compute dtype so FSDP can shard them, no device map (FSDP places the shards),
    and every parameter, adapters included, keeps that one dtype.
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    sharded = mode == "fsdp"
    kwargs: dict[str, Any] = {"dtype": dtype}
    if cfg.method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
            **({"bnb_4bit_quant_storage": dtype} if sharded else {}),
        )
    placement = model_device_map(cfg, device, mode)
    if placement is not None:
        kwargs["device_map"] = placement
    model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    if cfg.method == "qlora" and not sharded:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs=CHECKPOINTING_KWARGS,
        )
    elif cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=CHECKPOINTING_KWARGS)
        model.enable_input_require_grads()
    targets = list(cfg.lora.target_modules)
    lora = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules="all-linear" if targets == ["all-linear"] else targets,
        task_type="CAUSAL_LM",
    )
    adapted = get_peft_model(model, lora, autocast_adapter_dtype=not sharded)
    use_packed_attention(adapted)  # the training rows are padding-free (PackedCollator)
    return adapted


CHECKPOINTING_KWARGS = {"use_reentrant": False}
"""Non-reentrant checkpointing: works with frozen inputs and FSDP, and is what PyTorch
recommends (the reentrant default of peft's kbit preparation warns and recomputes more)."""


def model_device_map(cfg: TrainConfig, device: str, mode: str) -> dict[str, Any] | None:
    """Where from_pretrained puts the weights: straight onto this rank's GPU.

    Under FSDP none (FSDP places the shards; with cpu_ram_efficient_loading only rank 0
    reads the weights, the others start empty). On CUDA otherwise the local rank's GPU,
    so no process first holds a full copy in host RAM. On CPU a 4-bit model needs the
    explicit "cpu" map (bitsandbytes would pick a GPU), a plain one loads there anyway.
    """
    if mode == "fsdp":
        return None
    if device == "cuda":
        return {"": _local_cuda_device()}
    return {"": "cpu"} if cfg.method == "qlora" else None


def _local_cuda_device() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def prepare_distributed(mode: str) -> None:
    """Environment that must exist before the model loads (FSDP).

    peft's FSDP-QLoRA recipe starts through `accelerate launch`, whose config sets
    ACCELERATE_USE_FSDP and FSDP_CPU_RAM_EFFICIENT_LOADING; under torchrun tunedeck sets
    them itself. transformers reads them while loading: ranks other than 0 then skip
    reading the weights (rank 0's are broadcast when FSDP wraps the model).
    """
    if mode == "fsdp":
        os.environ["ACCELERATE_USE_FSDP"] = "true"
        os.environ["FSDP_CPU_RAM_EFFICIENT_LOADING"] = str(
            FSDP_CONFIG["cpu_ram_efficient_loading"]
        ).lower()


# ---------------------------------------------------------------------------
# Trainer
# ---------------------------------------------------------------------------


FSDP_CONFIG: dict[str, Any] = {
    "version": 2,
    "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
    "cpu_ram_efficient_loading": True,
    "state_dict_type": "FULL_STATE_DICT",
}
"""FSDP settings after peft's FSDP guide (FSDP2, one unit per decoder layer, rank 0 loads
the weights). Checkpoints gather the full state so adapters stay plain PEFT files."""


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
            # Logits only where a token trains (engine.fast_loss); same value as the
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
    from engine.models import resolve_model

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
        cfg = load_config(run_dir / "config.toml")
        callback.patience = cfg.early_stopping_patience
        from engine.models import load_tokenizer

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
    from engine.config import save_config, with_overrides

    new = with_overrides(
        cfg,
        micro_batch_size=cfg.micro_batch_size // 2,
        gradient_accumulation=cfg.gradient_accumulation * 2,
    )
    save_config(new, run_dir / "config.toml")  # the frozen config says what really ran
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
        print("usage: python -m engine.train RUN_DIR", file=sys.stderr)
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


if __name__ == "__main__":
    sys.exit(main())
