"""The shape of a run configuration: frozen dataclasses, one docstring under each field.

`TrainConfig` holds everything that decides a training run. Defaults live in these field
definitions and nowhere else (presets in `engine.config.build` are overrides on top). The
docstring under each field is its user-facing explanation: `field_help` returns it for the
TUI, and `engine.config.build.save_config` writes it as a comment above the key.

Validation happens at construction (`__post_init__`), so an invalid config cannot exist.
The only checks deferred to `validate_for_run` are about the data being there, because the
wizard builds a config step by step. Import these names from `engine.config.build`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, is_dataclass
from pathlib import Path
from typing import Literal

from engine.config.fields import (
    ConfigError,
    check_types,
    field_docs,
    field_types,
    require,
    suggest,
)
from engine.data.hub import is_hub_id
from engine.data.sources import ColumnError, ColumnMap
from engine.data.token_lengths import DEFAULT_MAX_SEQ_LEN
from engine.model.resolve import DEFAULT_MODEL

Method = Literal["qlora", "lora"]
Scheduler = Literal["cosine", "linear", "constant", "constant_with_warmup"]
ReportTo = Literal["none", "tensorboard", "mlflow", "wandb"]
Bf16Mode = Literal["auto", "on", "off"]
Distributed = Literal["auto", "ddp", "fsdp"]
KeepAdapter = Literal["best", "last"]

_MAX_SEED = 2**32 - 1  # numpy's seed range, which transformers' set_seed also feeds


@dataclass(frozen=True)
class LoraConfig:
    """The low-rank adapter trained on top of the frozen base model."""

    r: int = 16
    """Rank of the adapter matrices: capacity of the fine-tune (8-64 is typical)."""
    alpha: int = 32
    """Scaling numerator: the update is scaled by alpha / r (alpha = 2 * r is common)."""
    dropout: float = 0.05
    """Dropout on the adapter's input during training (0 disables it)."""
    target_modules: tuple[str, ...] = ("all-linear",)
    """Layers that get an adapter: "all-linear" (attention and MLP projections) or names
    such as q_proj, v_proj."""

    def __post_init__(self) -> None:
        check_types(self, "lora.")
        require(1 <= self.r <= 1024, "lora.r", "an integer from 1 to 1024", self.r)
        require(1 <= self.alpha <= 4096, "lora.alpha", "an integer from 1 to 4096", self.alpha)
        require(0 <= self.dropout < 1, "lora.dropout", ">= 0 and < 1", self.dropout)
        names = self.target_modules
        require(
            bool(names) and all(re.fullmatch(r"[\w.-]+", n) for n in names),
            "lora.target_modules",
            'a non-empty list of module names such as ["q_proj", "v_proj"]',
            list(names),
        )
        require(
            "all-linear" not in names or len(names) == 1,
            "lora.target_modules",
            '["all-linear"] alone or a list of module names, not both',
            list(names),
        )


@dataclass(frozen=True)
class DataConfig:
    """Where the examples come from: a file already split, or one file to split."""

    train: str | None = None
    """Training file, already separated from the validation data."""
    val: str | None = None
    """Validation file that goes with data.train (held out, never trained on)."""
    source: str | None = None
    """A single file that tunedeck splits into training and validation data. Any of the
    three may be a Hugging Face Hub dataset, ORG/NAME[:CONFIG][@REVISION][[SPLIT]]; a run
    records it at the commit it read (@<commit>), so repeating the run reads the same rows."""
    val_fraction: float = 0.1
    """Share of data.source held out for validation (0.1-0.2 is typical)."""
    split_seed: int = 42
    """Seed of the split of data.source: the same seed gives the same split."""
    format: str | None = None
    """Format of the data files; detected from the content when unset."""
    split_like: str | None = None
    """Run id whose split data.source keeps: each record goes to the side the record at
    the same line was on in that run (for a corrected copy from `tunedeck data fix`, so a
    fixed validation example never slides into training); unset: split as usual."""

    limit: int | None = None
    """Read only the first N rows of each dataset (the rest is never read); unset: all."""
    columns: str | None = None
    """Columns holding the prompt, the response and optionally the system prompt, for data
    in no known format: "prompt=question,response=answer[,system=COLUMN]"; unset: detected."""

    def __post_init__(self) -> None:
        check_types(self, "data.")
        require(self.limit is None or self.limit >= 1, "data.limit", "a number of rows >= 1",
                self.limit)  # fmt: skip
        if self.columns is not None:
            try:
                ColumnMap.parse(self.columns)
            except ColumnError as exc:
                raise ConfigError(f"data.columns: {exc.message}", exc.hint) from None
        for name in ("train", "val", "source", "format", "split_like", "columns"):
            value = getattr(self, name)
            require(value is None or value.strip() != "", f"data.{name}", "non-empty", value)
        require(
            0 < self.val_fraction <= 0.5, "data.val_fraction", "> 0 and <= 0.5", self.val_fraction
        )
        require(
            0 <= self.split_seed <= _MAX_SEED,
            "data.split_seed",
            f"an integer from 0 to {_MAX_SEED}",
            self.split_seed,
        )
        if self.source is not None and (self.train is not None or self.val is not None):
            raise ConfigError(
                "data.source cannot be combined with data.train / data.val",
                hint="set data.source (one file tunedeck splits) or data.train and data.val "
                "(files already split), not both",
            )


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a fine-tuning run."""

    model: str = DEFAULT_MODEL
    """Base model: an embedded name, a local model directory or .gguf file, or a hub id."""
    method: Method = "lora"
    """How the frozen base model is held: lora keeps it in 16-bit (GPU) or 32-bit (CPU);
    qlora stores it in 4-bit NF4 with double quantisation, ~4x less weight memory, for
    models that do not fit otherwise. Default lora: the default model is small, and on a
    CPU 4-bit weights are dequantised at every matmul, which makes QLoRA slower there."""
    data: DataConfig = field(default_factory=DataConfig)
    """The training and validation data."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """The adapter's shape."""
    learning_rate: float = 2e-4
    """Peak learning rate. LoRA's best rate falls with the model's width: ~1e-3 for a 135M
    model, ~3e-4 for an 8B one (preset runs choose it); far above that training diverges."""
    epochs: float = 2.0
    """Passes over the training data (preset runs choose enough for ~90 optimizer steps);
    more than 3 risks memorising the examples."""
    max_steps: int | None = None
    """Stop after this many optimizer steps, overriding epochs when set."""
    micro_batch_size: int = 4
    """Examples per forward pass on each device: the main lever on memory."""
    gradient_accumulation: int = 4
    """Micro-batches summed per optimizer step (effective batch = micro-batch x this x
    processes)."""
    max_seq_len: int = DEFAULT_MAX_SEQ_LEN
    """Longest example in tokens; longer ones are truncated (suggested: the p99 length)."""
    warmup_ratio: float = 0.03
    """Share of the steps over which the learning rate ramps up from 0."""
    scheduler: Scheduler = "cosine"
    """How the learning rate decays after warmup."""
    weight_decay: float = 0.0
    """AdamW weight decay on the adapter weights."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this norm (0 disables clipping)."""
    eval_steps: int = 20
    """Optimizer steps between validation-loss evaluations."""
    save_steps: int = 20
    """Optimizer steps between checkpoints to resume from (the last step always saves; the
    kept adapter is saved on its own at each better validation)."""
    logging_steps: int = 5
    """Optimizer steps between training-loss events."""
    early_stopping_patience: int | None = 3
    """Stop after this many evaluations without a better validation loss (unset or false in
    TOML: never stop early)."""
    keep_adapter: KeepAdapter = "best"
    """Which adapter the run keeps in adapter/ (what evaluation and export use): "best" has
    the lowest validation loss; "last" is the final one, after the learning rate has decayed
    (for labels: validation loss follows the rest of the answer, not the label)."""
    packing: bool = False
    """Pack whole examples into sequences of up to max_seq_len tokens; a micro-batch is then
    micro_batch_size such sequences (fewer, fuller steps). Examples never see each other.
    Off: a micro-batch is micro_batch_size examples (also without padding)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: much less memory, ~30% slower."""
    bf16: Bf16Mode = "auto"
    """bfloat16 compute: "auto" uses it on GPUs that support it and fp32 on CPU."""
    seed: int = 42
    """Seed of initialisation, shuffling and dropout: the same seed repeats a run."""
    report_to: ReportTo = "none"
    """Also send metrics to this tracker (tunedeck's own events are always written)."""
    num_processes: int = 1
    """Training processes (one per GPU); more than 1 runs data-parallel."""
    distributed: Distributed = "auto"
    """With several processes: "ddp" copies the model to every GPU, "fsdp" shards it
    across them (for models too big for one GPU); "auto" shards QLoRA, copies LoRA."""
    oom_retry: bool = False
    """On out-of-memory, retry with half the micro-batch and double the accumulation."""
    run_name: str | None = None
    """A label for the run in lists (the run id stays generated)."""

    def __post_init__(self) -> None:
        check_types(self)
        require(self.model.strip() != "", "model", "a model name or path", self.model)
        require(0 < self.learning_rate <= 1, "learning_rate", "> 0 and <= 1", self.learning_rate)
        require(0 < self.epochs <= 1000, "epochs", "> 0 and <= 1000", self.epochs)
        for name, limit in (
            ("micro_batch_size", 4096),
            ("gradient_accumulation", 4096),
            ("num_processes", 1024),
            ("eval_steps", None),
            ("save_steps", None),
            ("logging_steps", None),
            ("max_steps", None),
            ("early_stopping_patience", None),
        ):
            value = getattr(self, name)
            rule = f"an integer from 1 to {limit}" if limit else "an integer >= 1"
            ok = value is None or (value >= 1 and (limit is None or value <= limit))
            require(ok, name, rule, value)
        require(
            16 <= self.max_seq_len <= 1_048_576,
            "max_seq_len",
            "an integer from 16 to 1048576",
            self.max_seq_len,
        )
        require(0 <= self.warmup_ratio < 1, "warmup_ratio", ">= 0 and < 1", self.warmup_ratio)
        require(0 <= self.weight_decay <= 1, "weight_decay", ">= 0 and <= 1", self.weight_decay)
        require(self.max_grad_norm >= 0, "max_grad_norm", ">= 0", self.max_grad_norm)
        require(0 <= self.seed <= _MAX_SEED, "seed", f"an integer from 0 to {_MAX_SEED}", self.seed)
        label = self.run_name
        ok = label is None or (0 < len(label) <= 100 and label.isprintable() and label.strip())
        require(bool(ok), "run_name", "1 to 100 printable characters", label)

    @property
    def effective_batch_size(self) -> int:
        """Examples per optimizer step, all processes together."""
        return self.micro_batch_size * self.gradient_accumulation * self.num_processes

    def wants_fsdp(self, device: str) -> bool:
        """Whether several processes would shard the model (FSDP) rather than copy it."""
        if self.num_processes <= 1:
            return False
        return self.distributed == "fsdp" or (
            self.distributed == "auto" and self.method == "qlora" and device == "cuda"
        )

    def validate_for_run(self, *, check_files: bool = True) -> TrainConfig:
        """Check what a run needs beyond a valid config: data, and that its files exist.

        Returns the config itself, so `cfg = from_dict(...).validate_for_run()` reads well.

        Raises:
            ConfigError: no data, a validation file without a training file, or (with
                `check_files`) a data file that does not exist.
        """
        data = self.data
        if data.val is not None and data.train is None:
            raise ConfigError("data.val is set without data.train", hint="set data.train too")
        if data.train is None and data.source is None:
            raise ConfigError(
                "no training data: set data.source or data.train",
                hint="data.source = one file to split into train/val; "
                "data.train (+ data.val) = files already split",
            )
        if check_files:
            for name in ("train", "val", "source"):
                path = getattr(data, name)
                if path is None or is_hub_id(path):
                    continue  # a hub dataset is checked when it is read
                if not Path(path).expanduser().is_file():
                    raise ConfigError(
                        f"data.{name}: file not found: {path}",
                        hint="relative paths are relative to the current directory",
                    )
        return self


def field_help(cls: type | object, name: str) -> str:
    """The one-paragraph explanation of a config field; dotted names reach nested ones.

    `field_help(TrainConfig, "lora.r")` is the docstring under `LoraConfig.r`; a config
    instance works in place of its class.
    """
    if not isinstance(cls, type):
        cls = type(cls)
    head, _, rest = name.partition(".")
    docs = field_docs(cls)
    if head not in docs:
        raise ConfigError(f"{cls.__name__} has no field {head!r}{suggest(head, docs)}")
    if rest:
        nested = field_types(cls)[head]
        if not (isinstance(nested, type) and is_dataclass(nested)):
            raise ConfigError(f"{cls.__name__}.{head} has no fields (asked for {name!r})")
        return field_help(nested, rest)
    return docs[head]
