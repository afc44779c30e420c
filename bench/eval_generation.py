"""Eval generation: the engine's batched greedy generation against one prompt at a time.

The default model (smollm2-135m, loaded as the evaluator loads it: engine.eval.generate)
answers the sample data's validation prompts (the split's own validation examples,
rendered by the engine's prompt building) greedily, with the engine's answer length
limit (1.5 x the longest reference + 16 tokens). tunedeck: `generate` on the batches the
evaluator makes (`generation_batches`: longest prompts first, --batch-size prompts, left
padding, KV cache). Peer: the same `generate` on one prompt at a time, same settings.
To share the machine's noise fairly, the two alternate batch by batch, in the order
batched, one by one, one by one, batched (with --rounds 2; drifts in load cancel), and
each side's time is its total over the rounds. Outputs must be identical, prompt by
prompt, in every round.

Usage: python bench/eval_generation.py [--batch-size B] [--max-examples N] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

SAMPLE = ROOT / "sample_data" / "support_tickets.jsonl"
GOAL = 3.0


def validation_prompts(tokenizer: Any, limit: int | None) -> tuple[list[str], list[str]]:
    """(rendered prompts, reference answers) of the sample data's validation split."""
    from engine.data.formats import load_examples
    from engine.data.split import plan_split
    from engine.eval.generate import prompt_messages, render

    examples = load_examples(SAMPLE).examples
    val = [examples[i] for i in plan_split(examples).val][:limit]
    return [render(tokenizer, prompt_messages(e)) for e in val], [e.answer for e in val]


def main() -> int:
    from engine.eval.options import EvalOptions

    defaults = EvalOptions()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--batch-size", type=int, default=defaults.batch_size,
        help=f"prompts per batch (the evaluator's: {defaults.batch_size})")  # fmt: skip
    add("--max-examples", type=int, help="only the first N validation prompts")
    add("--rounds", type=int, default=2, help="2: batched, alone, alone, batched per batch")
    add("--json", help="write the summary rows (bench/run_all.py) here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from engine.eval.generate import (
        count_tokens,
        generate,
        generation_batches,
        load_eval_tokenizer,
        max_new_tokens_for,
    )
    from engine.model.generation import Sampling
    from engine.model.load import load_base_model
    from engine.model.resolve import DEFAULT_MODEL

    tokenizer = load_eval_tokenizer(DEFAULT_MODEL)
    model, device = load_base_model(DEFAULT_MODEL, "lora", "auto")
    texts, references = validation_prompts(tokenizer, args.max_examples)
    lengths = [count_tokens(tokenizer, t) for t in texts]
    sampling = Sampling(max_new_tokens_for(tokenizer, references, defaults.max_new_tokens_cap))
    print(f"{DEFAULT_MODEL} on {device} ({torch.get_num_threads()} threads): {len(texts)} "
          f"validation prompts of {min(lengths)}-{max(lengths)} tokens, greedy, at most "
          f"{sampling.max_new_tokens} new tokens, batches of {args.batch_size}")  # fmt: skip
    generate(model, tokenizer, texts[:2], Sampling(4), device)  # warm up kernels and caches

    batches = generation_batches(lengths, range(len(texts)), args.batch_size)
    outputs, seconds = measure(
        lambda some: generate(model, tokenizer, some, sampling, device), texts, batches, args.rounds
    )
    return report(texts, outputs, seconds, args.json)


ORDER = ("batched", "alone", "alone", "batched")
"""A round runs each side once; the second round runs them in reverse order."""


def measure(generate_fn: Any, texts: list[str], batches: list[list[int]], rounds: int):
    """Each side's answers (prompt -> one per round) and its total seconds."""
    outputs: dict[str, dict[int, list[Any]]] = {"batched": {}, "alone": {}}
    seconds = {"batched": 0.0, "alone": 0.0}
    for batch in batches:
        for side in ORDER[: 2 * rounds]:
            started = time.perf_counter()
            if side == "batched":
                answers = generate_fn([texts[i] for i in batch])
            else:
                answers = [generate_fn([texts[i]])[0] for i in batch]
            seconds[side] += time.perf_counter() - started
            for i, answer in zip(batch, answers, strict=True):
                outputs[side].setdefault(i, []).append(answer)
        tokens = sorted(outputs["batched"][i][0].output_tokens for i in batch)
        print(f"  batch of {len(batch):>2}: answers of {tokens} tokens", flush=True)
    return outputs, seconds


def report(texts, outputs, seconds, json_path) -> int:
    """Print the comparison and write the summary rows."""
    from bench.summary import Row, write_summary

    reference = {i: answers[0].text for i, answers in outputs["alone"].items()}
    mismatches = sorted({i for answers in outputs.values() for i, tried in answers.items()
                         for answer in tried if answer.text != reference[i]})  # fmt: skip
    rounds = len(outputs["batched"][0])
    rates = {side: rounds * len(texts) / s for side, s in seconds.items()}
    ratio = rates["batched"] / rates["alone"]
    for side, rate in rates.items():
        tokens = sum(a.output_tokens for tried in outputs[side].values() for a in tried)
        print(f"  {side:<8} {seconds[side]:7.1f} s  {rate:6.3f} prompts/s  "
              f"{tokens / seconds[side]:6.1f} answer tokens/s")  # fmt: skip
    print(f"  batched / one at a time: {ratio:.2f}x (goal {GOAL:.0f}x)")
    for i in mismatches:
        print(f"  MISMATCH prompt {i}:\n    batched: {outputs['batched'][i][0].text[:200]!r}\n"
              f"    alone:   {reference[i][:200]!r}")  # fmt: skip
    same = len(texts) - len(mismatches)
    print(f"  identical greedy outputs: {same}/{len(texts)}")
    rows = [
        Row("eval generation, batched (prompts/s)", f"{rates['batched']:.3f}/s",
            "one prompt at a time", f"{rates['alone']:.3f}/s", ratio,
            f">= {GOAL:.0f}x", ratio >= GOAL),
        Row("eval generation, identical greedy outputs", f"{same}/{len(texts)}",
            "one prompt at a time", f"{len(texts)}/{len(texts)}", None, "all", not mismatches),
    ]  # fmt: skip
    write_summary(json_path, "eval_generation", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
