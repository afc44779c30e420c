"""What an evaluation does: eval set, systems, few-shot k, sampling, limits, judge; flags.

One set of flags for `tunedeck eval RUN` and `python -m engine.eval.launch RUN_DIR`, so the
TUI starts the detached process with exactly what the CLI would have run
(`to_argv(options)`). The same flags are the on-disk form of the options the TUI chose
for a run (`save_options` / `load_options`, `eval/options.json`): never the judge's key,
only the name of the environment variable that holds it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.core.errors import TunedeckError
from engine.core.events import write_json_atomic
from engine.core.layout import EVAL_DIR
from engine.data.primary import AUTO, parse_primary
from engine.eval.judge.config import DEFAULT_RUBRIC, JudgeConfig
from engine.eval.store import OPTIONS_FILE, eval_dir
from engine.model.generation import check_sampling

BASE_ZERO = "base_zero"
BASE_FEW = "base_few"
TUNED = "tuned"
BASE_SYSTEMS = (BASE_ZERO, BASE_FEW)
SYSTEMS = (BASE_ZERO, BASE_FEW, TUNED)
SYSTEM_TITLES = {BASE_ZERO: "base zero-shot", BASE_FEW: "base few-shot", TUNED: "fine-tuned"}


class EvalOptionsError(TunedeckError):
    """An evaluation option the user gave makes no sense."""


def checkpoint_system(step: int) -> str:
    """The system name of a saved checkpoint's adapter: `tuned@<step>`."""
    return f"{TUNED}@{step}"


def is_checkpoint_system(system: str) -> bool:
    """True for `tuned@<step>`: the adapter of one saved checkpoint."""
    prefix, _, step = system.partition("@")
    return prefix == TUNED and step.isdigit()


def system_title(system: str) -> str:
    """How a person reads a system name."""
    if system.startswith(f"{TUNED}@"):
        return f"fine-tuned at step {system.split('@', 1)[1]}"
    return SYSTEM_TITLES.get(system, system)


@dataclass(frozen=True)
class EvalOptions:
    """Everything that decides one evaluation of a run."""

    systems: tuple[str, ...] | None = None
    """base_zero, base_few, tuned, tuned@<step> (one saved checkpoint); None: the first
    three (tuned once the run has an adapter)."""
    checkpoints: bool = False
    """Also evaluate every complete saved checkpoint, as `tuned@<step>`."""
    few_shot: int = 3
    """Training examples shown to the base model in few-shot prompts."""
    max_examples: int | None = None
    """Evaluate only the first N validation examples (None: all)."""
    max_new_tokens: int | None = None
    """Answer length limit; None: 1.5 x the longest reference + 16, at most the cap."""
    max_new_tokens_cap: int = 512
    temperature: float = 0.0
    """0: greedy decoding (the default: reproducible)."""
    top_p: float = 1.0
    seed: int | None = None
    """Sampling seed; None: the run's seed."""
    batch_size: int = 16
    """Prompts per generate call. A batch decodes until its longest answer ends, so fewer,
    fuller batches waste fewer steps: on a 2-core CPU, 16 generated the sample data's
    answers ~1.3x faster than 8 (bench/eval_generation.py). Each prompt holds a KV
    cache: lower it when a large model runs out of GPU memory."""
    loss: bool = True
    """Compute validation loss / perplexity of the base and fine-tuned models."""
    probes: bool = True
    """Ask the general-ability probes (base and fine-tuned)."""
    judge: JudgeConfig | None = None
    data: str | None = None
    """A test file to score instead of the validation split (an absolute path: the
    detached process runs in the run directory); None: the validation split."""
    primary: str | None = None
    """The primary metric to score by, stored with the run for every later evaluation
    (`label:KEY`, `label`, `fields`, `exact`, `rouge`; `auto`: the data's decision);
    None: the one stored with the run (decided from its training data on first use)."""

    def __post_init__(self) -> None:
        for system in self.systems or ():
            if system not in SYSTEMS and not is_checkpoint_system(system):
                raise EvalOptionsError(
                    f"unknown system {system!r}",
                    hint=f"systems are {', '.join(SYSTEMS)} and tuned@STEP (a saved "
                    "checkpoint; all of them: --checkpoints)",
                )
        if self.systems is not None and not self.systems:
            raise EvalOptionsError("no system to evaluate", hint=f"choose from {SYSTEMS}")
        checks = (
            (0 <= self.few_shot <= 64, "--few-shot must be 0 to 64"),
            (self.max_examples is None or self.max_examples >= 1, "--max-examples must be >= 1"),
            (self.max_new_tokens is None or self.max_new_tokens >= 1, "--max-new-tokens >= 1"),
            (self.max_new_tokens_cap >= 1, "the max-new-tokens cap must be >= 1"),
            (1 <= self.batch_size <= 1024, "--batch-size must be 1 to 1024"),
        )
        for ok, message in checks:
            if not ok:
                raise EvalOptionsError(message)
        if self.primary is not None and self.primary.strip().lower() != AUTO:
            try:
                parse_primary(self.primary)
            except TunedeckError as exc:
                raise EvalOptionsError(exc.message, exc.hint, field="primary") from None
        try:  # the one range check every sampler shares (engine.model.generation)
            check_sampling(self.max_new_tokens, self.temperature, self.top_p, self.seed)
        except TunedeckError as exc:
            raise EvalOptionsError(exc.message, exc.hint, field=exc.field) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The evaluation flags (shared by `tunedeck eval` and `python -m engine.eval.launch`)."""
    add = parser.add_argument
    add("--data", metavar="FILE", help="score this test file instead of the validation split")
    add(
        "--primary",
        metavar="METRIC",
        help="score by this primary metric from now on: label:KEY (label: the whole answer), "
        "fields, exact, rouge; auto: the one decided from the training data (default: the "
        "one stored with the run)",
    )
    add("--systems", metavar="LIST", help=f"comma-separated: {','.join(SYSTEMS)},tuned@STEP")
    add("--baseline", action="store_true", help="base systems only (before training ends)")
    add("--checkpoints", action="store_true", help="also each saved checkpoint (tuned@STEP)")
    add("--few-shot", type=int, default=3, metavar="K", help="few-shot examples (default 3)")
    add("--max-examples", type=int, metavar="N", help="only the first N examples of the set")
    add("--max-new-tokens", type=int, metavar="N", help="answer length limit (default: auto)")
    add("--max-new-tokens-cap", type=int, default=512, metavar="N", help="auto limit's cap")
    add("--temperature", type=float, default=0.0, metavar="T", help="0 = greedy (default)")
    add("--top-p", type=float, default=1.0, metavar="P", help="nucleus sampling (with -T)")
    add("--seed", type=int, metavar="S", help="sampling seed (default: the run's seed)")
    batch = EvalOptions.batch_size
    add("--batch-size", type=int, default=batch, metavar="B", help=f"prompts per batch ({batch})")
    add("--no-loss", action="store_true", help="skip validation loss / perplexity")
    add("--no-probes", action="store_true", help="skip the general-ability probes")
    add("--judge-url", metavar="URL", help="OpenAI-compatible endpoint, e.g. http://host:8000/v1")
    add("--judge-model", metavar="NAME", help="model name the judge endpoint serves")
    add("--judge-key-env", default="OPENAI_API_KEY", metavar="VAR", help="env var with the key")
    add("--judge-local", metavar="MODEL", help="judge with a local model instead of a URL")
    add("--judge-rubric", metavar="TEXT|@FILE", help="judging criteria (default: built in)")
    add("--judge-against", choices=BASE_SYSTEMS, help="base system the judge compares with")


def _rubric(value: str | None) -> str:
    if not value:
        return DEFAULT_RUBRIC
    if value.startswith("@@"):
        return value[1:]  # an escaped literal "@"
    if value.startswith("@"):
        try:
            return Path(value[1:]).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise EvalOptionsError(f"cannot read the rubric file {value[1:]}: {exc}") from exc
    return value


def from_args(args: argparse.Namespace) -> EvalOptions:
    """Options from parsed flags (see add_arguments)."""
    systems: tuple[str, ...] | None = None
    if args.systems:
        systems = tuple(s.strip() for s in args.systems.split(",") if s.strip())
    if args.baseline:
        if systems and any(s not in (BASE_ZERO, BASE_FEW) for s in systems):
            raise EvalOptionsError("--baseline evaluates base systems only; drop 'tuned'")
        systems = systems or (BASE_ZERO, BASE_FEW)
    judge = None
    if args.judge_url or args.judge_local or args.judge_model:
        judge = JudgeConfig(
            url=args.judge_url,
            model=args.judge_model,
            key_env=args.judge_key_env,
            local_model=args.judge_local,
            rubric=_rubric(args.judge_rubric),
            against=args.judge_against,
        )
    data = str(Path(args.data).expanduser().resolve()) if args.data else None
    return EvalOptions(
        data=data,
        primary=args.primary,
        systems=systems,
        checkpoints=args.checkpoints,
        few_shot=args.few_shot,
        max_examples=args.max_examples,
        max_new_tokens=args.max_new_tokens,
        max_new_tokens_cap=args.max_new_tokens_cap,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        batch_size=args.batch_size,
        loss=not args.no_loss,
        probes=not args.no_probes,
        judge=judge,
    )


def _escape_rubric(rubric: str) -> str | None:
    if rubric == DEFAULT_RUBRIC:
        return None
    return "@" + rubric if rubric.startswith("@") else rubric


def to_argv(options: EvalOptions) -> list[str]:
    """Flags that `from_args` turns back into `options` (for the detached process)."""
    argv: list[str] = []
    pairs: list[tuple[str, Any]] = [
        ("--data", options.data),
        ("--primary", options.primary),
        ("--systems", ",".join(options.systems) if options.systems else None),
        ("--few-shot", options.few_shot),
        ("--max-examples", options.max_examples),
        ("--max-new-tokens", options.max_new_tokens),
        ("--max-new-tokens-cap", options.max_new_tokens_cap),
        ("--temperature", options.temperature),
        ("--top-p", options.top_p),
        ("--seed", options.seed),
        ("--batch-size", options.batch_size),
    ]
    judge = options.judge
    if judge is not None:
        pairs += [
            ("--judge-url", judge.url),
            ("--judge-model", judge.model),
            ("--judge-key-env", judge.key_env),
            ("--judge-local", judge.local_model),
            ("--judge-rubric", _escape_rubric(judge.rubric)),
            ("--judge-against", judge.against),
        ]
    for flag, value in pairs:
        if value is not None:
            argv.append(f"{flag}={value}")  # one word: a rubric may start with "-"
    for flag, on in (
        ("--checkpoints", options.checkpoints),
        ("--no-loss", not options.loss),
        ("--no-probes", not options.probes),
    ):
        if on:
            argv.append(flag)
    return argv


def save_options(run_dir: Path, options: EvalOptions) -> Path:
    """Keep the options chosen for a run (`eval/options.json`, as flags) for next time."""
    path = eval_dir(run_dir) / OPTIONS_FILE
    write_json_atomic(path, {"argv": to_argv(options)})
    return path


def load_options(run_dir: Path) -> EvalOptions | None:
    """The options saved for a run; None when none were saved or they no longer parse."""
    try:
        data = json.loads((run_dir / EVAL_DIR / OPTIONS_FILE).read_text(encoding="utf-8"))
        argv = [str(word) for word in data["argv"]]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    parser = argparse.ArgumentParser(exit_on_error=False, add_help=False)
    add_arguments(parser)
    try:
        args, unknown = parser.parse_known_args(argv)
        return None if unknown else from_args(args)
    except (argparse.ArgumentError, TunedeckError):
        return None
