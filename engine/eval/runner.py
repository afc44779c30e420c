"""One evaluation, step by step: prompts, generation, loss, probes, judge, summary.

Work is grouped by the weights it needs (engine.eval.launch.ModelGroup): the base model is
loaded once, adapters are attached beside it, and nothing is loaded at all when every row
is already there. Each step first keeps the stored rows that are still current (same
fingerprint) and does only the rest, appending as it goes.

Longer than 400 lines: one class, `Evaluation`, whose steps (generate, losses, probes,
the judge, the summary) share its loaded model and its resume bookkeeping; split into
modules they would pass that state back and forth.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.core.errors import TunedeckError, is_out_of_memory
from engine.core.layout import CONFIG_FILE, LOSS_FILE
from engine.data.primary import answers_are_json, decide_for_examples
from engine.eval.generate import (
    choose_shots,
    count_tokens,
    data_thinks,
    fit_few_shot,
    last_user_text,
    max_new_tokens_for,
    prompt_messages,
    render,
)
from engine.eval.metrics import (
    METRICS_VERSION,
    POOL,
    context_for,
    pool_scores,
)
from engine.eval.options import BASE_FEW, BASE_SYSTEMS, TUNED, EvalOptions
from engine.eval.plan import ModelGroup, adapter_digest, model_groups
from engine.eval.pool_summary import pool_summary
from engine.eval.primary import run_primary
from engine.eval.probes import pending_probes, probe_settings
from engine.eval.sets import EvalSet, prepare_test_set, validation_set
from engine.eval.store import (
    append_jsonl,
    fingerprint,
    keep_current,
    read_jsonl,
    set_dir,
    system_file,
)
from engine.eval.summary import (
    build_scoring,
    build_summary,
    read_split,
    score_output,
    stronger_base,
    system_rows,
    write_summary,
)
from engine.model.generation import Sampling

Emit = Callable[..., None]


@dataclass(frozen=True)
class SystemPlan:
    """The prompts of one system for the examples evaluated, and their fingerprint."""

    system: str
    settings: str
    texts: list[str]
    lengths: list[int]
    shots: list[int]


class Evaluation:
    """The state one evaluation shares across its steps."""

    def __init__(
        self, run_dir: Path, options: EvalOptions, systems: list[str], notes: list[str], emit: Emit
    ) -> None:
        from engine.config.build import load_config
        from engine.eval.generate import load_eval_tokenizer

        self.run_dir, self.options, self.systems, self.notes = run_dir, options, systems, notes
        self.emit = emit
        self.cfg = load_config(run_dir / CONFIG_FILE)
        self.eval_set: EvalSet = (
            prepare_test_set(run_dir, options.data) if options.data else validation_set(run_dir)
        )
        self.set_name = self.eval_set.name
        self.val = self.eval_set.examples
        """The examples scored: the validation split, or the test file's."""
        self.train = read_split(run_dir, "train")
        self.thinking = data_thinks(self.train) or None
        """Thinking on when the training answers think (None: decided per prompt, i.e. off)."""
        self.count = min(len(self.val), options.max_examples or len(self.val))
        self.lines = self.eval_set.lines
        self.primary = run_primary(run_dir, options.primary)
        """The run's primary metric (stored; the option, when given, replaces it)."""
        self.ctx, self.index = build_scoring(self.train, [e.answer for e in self.val], self.primary)
        self.label_scheme = self.ctx.scheme
        """The data's own class label (few-shot shots, probe drift): never the user's choice
        of metric, which must not change what is generated."""
        if self.primary is not None and self.primary.source == "user":
            answers = [e.answer for e in self.train]
            self.label_scheme = context_for(decide_for_examples(self.train), answers).scheme
        self.pool = self.eval_set.pool
        """A prompt pool: answers to review, nothing to score them against."""
        if self.pool:
            self.notes = [*notes, *pool_notes(run_dir, self.train, self.eval_set)]
        elif self.eval_set.is_test:
            self.notes = [*notes, *_leakage_notes(self.train, self.eval_set)]
        self.tokenizer = load_eval_tokenizer(self.cfg.model)
        sized_on = self.train if self.pool else self.val  # a pool has no answers to size on
        limit = options.max_new_tokens or max_new_tokens_for(
            self.tokenizer, [e.answer for e in sized_on], options.max_new_tokens_cap
        )
        self.json_task = answers_are_json([e.answer for e in self.train])
        self.sampling = Sampling(
            limit,
            options.temperature,
            options.top_p,
            options.seed if options.seed is not None else self.cfg.seed,
        )
        self.model: Any = None
        self.device = "cpu"
        self.loss_settings: dict[str, str] = {}  # model group -> fingerprint of its weights
        self.batch_limit: int | None = None
        """Largest generation batch that fit in memory, once one did not."""
        self.probe_settings: dict[str, str] = {}

    # -- the whole run ------------------------------------------------------

    def run(self) -> dict[str, Any]:
        for note in self.notes:
            self.emit("eval_note", message=note)
        self.emit(
            "eval_started",
            systems=self.systems,
            examples=self.count,
            eval_set=self.set_name,
            scored=self.eval_set.describe(self.count),
        )
        for group in model_groups(self.run_dir, self.systems):
            self._group(group)
        judge, judge_error = None, None
        if self.options.judge and TUNED in self.systems and self.pool:
            self.emit("eval_note", message="judge skipped: a prompt pool has no references")
        elif self.options.judge and TUNED in self.systems:
            try:
                judge = self._judge()
            except TunedeckError as exc:  # keep the rest of the summary; fail afterwards
                judge, judge_error = {"error": exc.message, "hint": exc.hint}, exc
        make_summary = pool_summary if self.pool else build_summary
        summary = make_summary(
            self.run_dir,
            self.systems,
            self.ctx,
            self._system_losses(),
            self.count,
            {
                "examples": self.count,
                "val_examples": len(self.val),
                "eval_set": self.eval_set.to_json(self.count),
                "settings": {"few_shot": self.options.few_shot, **asdict(self.sampling)},
                "notes": self.notes,
                "probes": self._drift(),
                "judge": judge,
            },
            self.set_name,
        )
        write_summary(self.run_dir, summary, self.set_name)
        if judge_error is not None:
            raise judge_error
        self.emit(
            "eval_done", verdict=summary["verdict"], systems=self.systems, eval_set=self.set_name
        )
        return summary

    def _group(self, group: ModelGroup) -> None:
        """Generation, loss and probes for the systems sharing one set of weights."""
        for _attempt in range(3):
            digest = adapter_digest(group.adapter) if group.adapter else None
            weights = fingerprint([self.cfg.model, self.cfg.method, self.cfg.bf16, digest])
            self.loss_settings[group.name] = self._loss_settings(weights)
            self.probe_settings[group.name] = probe_settings(weights)
            plans = [self._plan(system, weights) for system in group.systems]
            pending = [(plan, self._pending(plan)) for plan in plans]
            loss_todo = (
                self.options.loss and not self.pool and not self._loss_done(group.name, weights)
            )
            probes_todo = self.options.probes and group.name in ("base", TUNED)
            if (
                not any(todo for _, todo in pending)
                and not loss_todo
                and not (
                    probes_todo
                    and pending_probes(self.run_dir, group.name, self.probe_settings[group.name])
                )
            ):
                return
            self._activate(group)
            if group.adapter is None or adapter_digest(group.adapter) == digest:
                break  # the adapter did not change while it was loaded
        else:
            raise TunedeckError(
                "the adapter kept changing while it was loaded (training saves new bests)",
                hint="evaluate again once training completes, or with --baseline meanwhile",
            )
        for plan, todo in pending:
            self._generate(plan, todo)
        if loss_todo:
            self._loss(group.name, weights)
        if probes_todo:
            self._probes(group.name, weights)

    # -- models -------------------------------------------------------------

    def _activate(self, group: ModelGroup) -> None:
        """Load the base model once; attach (or re-attach) the group's adapter."""
        from engine.model.load import attach_adapter, load_base_model

        if self.model is None:
            self._share_cpu_with_training()
            self.emit("eval_progress", phase="load", system=group.name, done=0, total=1)
            self.model, self.device = load_base_model(
                self.cfg.model, self.cfg.method, self.cfg.bf16
            )
        if group.adapter is not None:
            name = group.name.replace("@", "_at_")  # adapter names become module keys
            self.model = attach_adapter(self.model, group.adapter, name)

    def _share_cpu_with_training(self) -> None:
        import torch

        from engine.core.control import worker_alive

        if torch.cuda.is_available():  # a second model beside training: both would OOM
            from engine.model.devices import training_on_same_gpu

            busy = training_on_same_gpu()
            if busy is not None:
                raise TunedeckError(
                    f"run {busy} is training on this GPU: evaluating now would load a "
                    "second model beside it",
                    hint=f"evaluate when it has finished or paused (`tunedeck pause {busy}`), "
                    "or on another GPU: CUDA_VISIBLE_DEVICES=<free gpu> tunedeck eval ...",
                )
            return
        if worker_alive(self.run_dir):
            threads = max(1, torch.get_num_threads() // 2)
            torch.set_num_threads(threads)
            self.emit(
                "eval_note",
                message=f"training runs beside: evaluating on {threads} "
                "CPU threads, both will be slower",
            )

    def _weights(self, group_name: str) -> Any:
        """The model in the state a group needs: the base with adapters switched off."""
        import contextlib

        if group_name == "base" and hasattr(self.model, "disable_adapter"):
            return self.model.disable_adapter()
        return contextlib.nullcontext()

    # -- generation ---------------------------------------------------------

    def _plan(self, system: str, weights: str) -> SystemPlan:
        examples = self.val[: self.count]
        if system == BASE_FEW:
            shots = choose_shots(
                self.train, self.options.few_shot, self.cfg.seed, self.label_scheme
            )
            budget = self.cfg.max_seq_len - self.sampling.max_new_tokens
            fitted = [fit_few_shot(self.tokenizer, e, shots, budget) for e in examples]
            texts, used = [t for t, _ in fitted], [n for _, n in fitted]
            kind: Any = ["few", self.options.few_shot, [s.line for s in shots]]
        else:
            texts = [render(self.tokenizer, prompt_messages(e), self.thinking) for e in examples]
            used, kind = [0] * len(texts), ["zero"]
        sampling = asdict(self.sampling)
        if self.sampling.greedy:
            sampling = {"max_new_tokens": self.sampling.max_new_tokens, "greedy": True}
        settings = fingerprint([weights, kind, sampling])
        lengths = [count_tokens(self.tokenizer, t) for t in texts]
        return SystemPlan(system, settings, texts, lengths, used)

    def _pending(self, plan: SystemPlan) -> list[int]:
        """Indices still to generate; stale rows (other settings or prompt) are dropped."""
        shas = [fingerprint(t) for t in plan.texts]

        def current(row: dict[str, Any]) -> bool:
            index = row.get("index", -1)
            if not isinstance(index, int) or row.get("settings") != plan.settings:
                return False
            return index >= len(shas) or row.get("prompt_sha") == shas[index]

        rows = keep_current(system_file(self.run_dir, plan.system, self.set_name), current)
        done = {row["index"] for row in rows}
        return [i for i in range(self.count) if i not in done]

    def _generate(self, plan: SystemPlan, todo: list[int]) -> None:
        from engine.eval.generate import generation_batches

        path, total = system_file(self.run_dir, plan.system, self.set_name), self.count
        done = total - len(todo)
        weights = "base" if plan.system in BASE_SYSTEMS else plan.system
        self.emit("eval_progress", phase="generate", system=plan.system, done=done, total=total)
        for batch in generation_batches(plan.lengths, todo, self.options.batch_size):
            answers = self._answers(weights, [plan.texts[i] for i in batch], self.sampling)
            append_jsonl(path, [self._row(plan, i, g) for i, g in zip(batch, answers, strict=True)])
            done += len(batch)
            self.emit("eval_progress", phase="generate", system=plan.system, done=done, total=total)

    def _answers(self, weights: str, texts: list[str], sampling: Sampling) -> list[Any]:
        """Answers to `texts` with `weights` active. Out of (GPU) memory, the halves one
        after the other, and no larger batches from then on: greedy answers do not depend
        on the batch they were generated in."""
        from engine.eval.generate import generate

        limit = self.batch_limit or len(texts)
        if len(texts) > limit:
            chunks = [texts[i : i + limit] for i in range(0, len(texts), limit)]
            return [a for chunk in chunks for a in self._answers(weights, chunk, sampling)]
        try:
            with self._weights(weights):
                return list(generate(self.model, self.tokenizer, texts, sampling, self.device))
        except Exception as exc:  # only running out of memory is handled here
            if not is_out_of_memory(exc):
                raise
        # Out of the except block: the failed attempt's tensors are free to go now.
        if len(texts) == 1:
            raise TunedeckError(
                "out of memory while generating a single answer",
                hint="lower max new tokens in the eval settings, or free GPU memory "
                "(another process may be using it)",
            )
        _release_cached_memory()
        self.batch_limit = half = (len(texts) + 1) // 2
        self.emit(
            "eval_note",
            message=f"out of memory at a batch of {len(texts)} prompts: generating {half} "
            "at a time from here on",
        )
        return self._answers(weights, texts, sampling)

    def _row(self, plan: SystemPlan, index: int, answer: Any) -> dict[str, Any]:
        example = self.val[index]
        return {
            "index": index,
            "line": self.lines[index],
            "system": plan.system,
            "settings": plan.settings,
            "prompt_sha": fingerprint(plan.texts[index]),
            "shots": plan.shots[index],
            "prompt": last_user_text(example),
            "messages": prompt_messages(example),
            "reference": example.answer,
            "output": answer.text,
            "prompt_tokens": answer.prompt_tokens,
            "output_tokens": answer.output_tokens,
            "finished": answer.finished,
            "metrics_version": METRICS_VERSION,
            "scored_as": POOL if self.pool else self.ctx.spec,
            "metrics": pool_scores(answer.text, self.json_task)
            if self.pool
            else score_output(answer.text, example.answer, self.ctx, self.index),
            "time": time.time(),
        }

    # -- validation loss ----------------------------------------------------

    def _loss_settings(self, weights: str) -> str:
        return fingerprint([weights, self.cfg.max_seq_len, len(self.val)])

    def _loss_done(self, name: str, weights: str) -> bool:
        settings = self._loss_settings(weights)
        rows = keep_current(
            set_dir(self.run_dir, self.set_name) / LOSS_FILE,
            lambda r: r.get("model") != name or r.get("settings") == settings,
            key=lambda r: r.get("model"),
        )
        return any(r.get("model") == name for r in rows)

    def _loss(self, name: str, weights: str) -> None:
        from engine.eval.generate import validation_loss

        self.emit("eval_progress", phase="loss", system=name, done=0, total=len(self.val))
        # The run's micro-batch, not the generation batch: the loss holds logits for every
        # position (batch x length x vocabulary), and training fit such batches in memory.
        with self._weights(name):
            loss, tokens = validation_loss(
                self.model,
                self.tokenizer,
                [e.messages for e in self.val],
                self.cfg.max_seq_len,
                self.cfg.micro_batch_size,
                self.device,
            )
        row = {
            "model": name,
            "settings": self._loss_settings(weights),
            "loss": loss,
            "tokens": tokens,
            "time": time.time(),
        }
        append_jsonl(set_dir(self.run_dir, self.set_name) / LOSS_FILE, [row])
        self.emit(
            "eval_progress", phase="loss", system=name, done=len(self.val), total=len(self.val)
        )

    def _system_losses(self) -> dict[str, float | None]:
        rows = read_jsonl(set_dir(self.run_dir, self.set_name) / LOSS_FILE)
        by_model = {
            r.get("model"): r.get("loss")
            for r in rows
            if self.loss_settings.get(str(r.get("model"))) == r.get("settings")
        }
        return {s: by_model.get("base" if s in BASE_SYSTEMS else s) for s in self.systems}

    # -- probes, judge --------------------------------------------------------

    def _probes(self, name: str, weights: str) -> None:
        from engine.eval.probes import (
            MAX_NEW_TOKENS,
            PROBES,
            pending_probes,
            probe_messages,
            store_probe_answers,
        )

        settings = probe_settings(weights)
        todo = pending_probes(self.run_dir, name, settings)
        if not todo:
            return
        total = len(PROBES)
        self.emit("eval_progress", phase="probes", system=name, done=total - len(todo), total=total)
        texts = [render(self.tokenizer, probe_messages(PROBES[i])) for i in todo]
        answers = self._answers(name, texts, Sampling(MAX_NEW_TOKENS))
        store_probe_answers(self.run_dir, name, settings, todo, [a.text for a in answers])
        self.emit("eval_progress", phase="probes", system=name, done=total, total=total)

    def _drift(self) -> dict[str, Any] | None:
        from engine.eval.probes import stored_drift

        if TUNED not in self.systems or not self.options.probes:
            return None
        result = stored_drift(self.run_dir, self.probe_settings, self.label_scheme)
        return {**asdict(result), "note": result.note()} if result else None

    def _judge(self) -> dict[str, Any] | None:
        from engine.eval.judge.judging import JudgeItem, judge_items, judge_stats

        config = self.options.judge
        assert config is not None
        rows = {
            s: system_rows(self.run_dir, s, self.count, self.set_name)
            for s in self.systems
            if s in (*BASE_SYSTEMS, TUNED)
        }
        means = {s: {"primary": _mean_primary(r)} for s, r in rows.items()}
        against = config.against or stronger_base(means)
        if against is None or against not in rows:
            self.emit("eval_note", message="judge skipped: no base system evaluated to compare")
            return None
        theirs = {r["index"]: r for r in rows[against]}
        items = [
            JudgeItem(
                r["index"], r["messages"], r["reference"], r["output"], theirs[r["index"]]["output"]
            )
            for r in rows[TUNED]
            if r["index"] in theirs
        ]

        def progress(done: int, total: int) -> None:
            self.emit("eval_progress", phase="judge", system=TUNED, done=done, total=total)

        verdicts = judge_items(
            self.run_dir, config, against, items, progress=progress, eval_set=self.set_name
        )
        return asdict(judge_stats(verdicts, against))


def _leakage_notes(train: list[Any], eval_set: EvalSet) -> list[str]:
    """A note when test examples repeat (or nearly repeat) training examples."""
    from engine.data.split_groups import check_leakage

    leakage = check_leakage(train, eval_set.examples)
    if leakage.is_clean:
        return []
    return [f"{eval_set.title} overlaps the training data: {leakage.summary()}"]


def pool_notes(run_dir: Path, train: list[Any], eval_set: EvalSet) -> list[str]:
    """Notes on a pool's prompts that repeat the run's training data, its validation split
    or a test file it was scored on (engine.data.pool's lint)."""
    from engine.data.pool import pool_findings
    from engine.eval.sets import read_split, stored_test_set
    from engine.eval.store import stored_sets

    others: dict[str, list[Any]] = {
        "the training data": train,
        "the validation split": read_split(run_dir, "val"),
    }
    for name in stored_sets(run_dir)[1:]:
        found = stored_test_set(run_dir, name)
        if found is not None and not found.pool and name != eval_set.name:
            others[found.title] = found.examples
    findings = pool_findings(eval_set.examples, others)
    return [f"{eval_set.title} line {f.line}: {f.message}" for f in findings]


def _mean_primary(rows: list[dict[str, Any]]) -> float | None:
    values = [r["metrics"]["primary"] for r in rows]
    return sum(values) / len(values) if values else None


def _release_cached_memory() -> None:
    """Hand the CUDA caching allocator's free blocks back before a smaller retry."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
