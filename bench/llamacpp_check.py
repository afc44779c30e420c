"""The GGUF exports checked by llama.cpp itself: do they answer like the model tunedeck trained?

The default flow's run on the support tickets (trained here, or `--run DIR`) is exported
with `tunedeck export` as a merged GGUF in each storage type (f16, q8_0, q4_0 written by
tunedeck; q4_k_m quantised by llama.cpp's own quantizer) and as a GGUF LoRA adapter on the
embedded base GGUF. Each file is loaded by llama.cpp through llama-cpp-python with the
GGUF's own chat template (`chat_format="chat_template.default"`, as llama-server and
Ollama render a chat), and answers the test file's prompts greedily, one at a time, with
the evaluation's token limit. The answers are scored by tunedeck's own scorer against the
references, beside tunedeck's evaluation of the same run (`tunedeck eval RUN --data TEST`,
the adapter on the base in fp32, batched).

Two agreements:
- with tunedeck's evaluation: the share of answers identical to its stored ones;
- with the merged model: the f16 GGUF holds the merged model's very weights (a float16
  merge; transformers' GGUF loader gives its logits exactly, tests/integration/
  test_gguf_default_model.py), so llama.cpp's greedy answers should be the merged
  safetensors model's, generated here one prompt at a time by tunedeck's generation code.
  llama.cpp's CPU f16 matmul rounds the activations to f16, though, where torch computes
  in fp32: at a near-tie the two can pick different tokens. Where an answer parts, the
  merged model's logit margin between the two tokens is printed. Required (the exit
  code): the same label on every ticket, and every parting at a margin under NEAR_TIE.
  Identical answers on all tickets, the issue's wish, is a row of its own.

Needs the `tunedeck[gguf]` extra (llama-cpp-python). Without it the bench says so and
writes a row that judges nothing.

Usage: python bench/llamacpp_check.py [--run DIR | --quick] [--max-examples N]
       [--quants LIST] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from bench.outcome import bench_env, cli  # noqa: E402  (tunedeck subcommands, as outcome runs them)
from bench.summary import Row, write_summary  # noqa: E402

DATA = "sample_data/support_tickets.jsonl"
TEST = "sample_data/support_tickets_test.jsonl"
QUANTS = ("f16", "q8_0", "q4_0", "q4_k_m")
CONTEXT = 2048


@dataclass
class Side:
    """One way of running the model, its answers and their scores."""

    name: str
    answers: list[str]
    seconds: float
    primary: float = 0.0
    json_valid: float | None = None
    same_as_eval: float = 0.0
    size_mb: float | None = None
    labels: list[Any] = field(default_factory=list)
    """Each answer's label under the run's primary metric (None: not a label task)."""


def last_json(out: str) -> dict[str, Any]:
    return json.loads(out.strip().splitlines()[-1])


def trained_run(env: dict[str, str], quick: bool) -> Path:
    """The default flow on the tickets: `tunedeck train --data ... --follow`, no override
    (`quick`: 2 steps)."""
    args = ["train", "--data", DATA, "--json", "--follow"]
    out = cli(args + (["--max-steps", "2"] if quick else []), env)
    info = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    return Path(info["dir"])


def evaluation(run: Path, env: dict[str, str], limit: int | None) -> tuple[dict, list[dict]]:
    """tunedeck's evaluation of the run on the test file (made now if missing): its summary
    and the fine-tuned rows in example order."""
    from engine.eval.sets import set_name_for
    from engine.eval.summary import load_summary, system_rows

    name = set_name_for(run, str(ROOT / TEST))
    summary = load_summary(run, name)
    if summary is None or "tuned" not in summary.get("systems", {}):
        args = ["eval", run.name, "--data", str(ROOT / TEST), "--systems", "tuned",
                "--no-probes", "--json"]  # fmt: skip
        cli(args + (["--max-examples", str(limit)] if limit else []), env)
        summary = load_summary(run, name)
    assert summary is not None
    rows = system_rows(run, "tuned", limit, name)
    return summary, rows


def export(run: Path, out: Path, env: dict[str, str], *flags: str) -> dict[str, Any]:
    return last_json(cli(["export", run.name, "--out", str(out), "--json", *flags], env))


def llama_answers(model: Path, prompts: list[list[dict]], tokens: int, lora: Path | None) -> Side:
    """Greedy answers of llama.cpp, one prompt at a time, with the GGUF's chat template."""
    from llama_cpp import Llama

    started = time.perf_counter()
    llm = Llama(str(model), n_ctx=CONTEXT, n_threads=os.cpu_count() or 1, seed=0,
                chat_format="chat_template.default", lora_path=str(lora) if lora else None,
                verbose=False)  # fmt: skip
    answers = []
    for messages in prompts:
        reply = llm.create_chat_completion(messages=messages, temperature=0.0, max_tokens=tokens)
        answers.append((reply["choices"][0]["message"]["content"] or "").strip())
    del llm
    name = lora.name + " on " + model.name if lora else model.name
    return Side(name, answers, time.perf_counter() - started)


def merged_answers(merged: Path, prompts: list[list[dict]], tokens: int) -> Side:
    """Greedy answers of the merged safetensors model through tunedeck's generation code,
    one prompt at a time (no padding), as llama.cpp answers."""
    import torch
    from transformers import AutoModelForCausalLM

    from engine.eval.generate import generate, load_eval_tokenizer, render
    from engine.model.generation import Sampling

    started = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    tokenizer = load_eval_tokenizer(str(merged))
    sampling = Sampling(max_new_tokens=tokens)
    answers = [generate(model, tokenizer, [render(tokenizer, m)], sampling, "cpu")[0].text
               for m in prompts]  # fmt: skip
    return Side("merged model (transformers, fp32)", answers, time.perf_counter() - started)


def parting_margins(merged: Path, prompts: list[list[dict]], ours: list[str],
                    theirs: list[str]) -> list[tuple[int, float]]:  # fmt: skip
    """For each pair of different answers: the token where they part, and the merged
    model's logit margin there between its own token and llama.cpp's (small: a near-tie,
    which a different order or precision of arithmetic can flip)."""
    import torch
    from transformers import AutoModelForCausalLM

    from engine.eval.generate import load_eval_tokenizer, render

    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    tokenizer = load_eval_tokenizer(str(merged))
    out = []
    for index, (messages, a, b) in enumerate(zip(prompts, ours, theirs, strict=True)):
        if a == b:
            continue
        prompt = tokenizer(render(tokenizer, messages), add_special_tokens=False)["input_ids"]
        mine = tokenizer(a, add_special_tokens=False)["input_ids"]
        other = tokenizer(b, add_special_tokens=False)["input_ids"]
        at = next((i for i, (x, y) in enumerate(zip(mine, other, strict=False)) if x != y),
                  min(len(mine), len(other)))  # fmt: skip
        if at >= len(mine) or at >= len(other):
            out.append((index, float("nan")))  # one answer is the other cut short
            continue
        with torch.no_grad():
            logits = model(torch.tensor([prompt + mine[:at]])).logits[0, -1]
        out.append((index, float(logits[mine[at]] - logits[other[at]])))
    return out


def score(side: Side, rows: list[dict], run: Path, primary: Any) -> None:
    from engine.eval.sets import read_split
    from engine.eval.summary import build_scoring, score_output

    references = [row["reference"] for row in rows]
    ctx, index = build_scoring(read_split(run, "train"), references, primary)
    metrics = [
        score_output(a, r, ctx, index) for a, r in zip(side.answers, references, strict=True)
    ]
    side.primary = sum(m["primary"] for m in metrics) / len(metrics)
    side.labels = [m.get("label") for m in metrics]
    valid = [m["json_valid"] for m in metrics if "json_valid" in m]
    side.json_valid = sum(valid) / len(valid) if valid else None
    same = [a == row["output"] for a, row in zip(side.answers, rows, strict=True)]
    side.same_as_eval = sum(same) / len(same)


def table(sides: list[Side], primary_name: str, n: int) -> str:
    lines = [f"| answered by ({n} test tickets) | {primary_name} | valid JSON | "
             "identical to tunedeck eval | file MB | seconds |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for s in sides:
        valid = "-" if s.json_valid is None else f"{s.json_valid:.2f}"
        size = "-" if s.size_mb is None else f"{s.size_mb:.0f}"
        lines.append(f"| {s.name} | {s.primary:.3f} | {valid} | {s.same_as_eval:.2f} | {size} "
                     f"| {s.seconds:.0f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", help="a trained run's directory (default: train the default flow)")
    parser.add_argument("--max-examples", type=int, help="only the first N test tickets")
    parser.add_argument("--quants", default=",".join(QUANTS))
    parser.add_argument("--quick", action="store_true", help="train 2 steps (a smoke test)")
    parser.add_argument("--json", help="write the make-bench rows here")
    args = parser.parse_args()
    from engine.export.gguf.options import GGUF_EXTRA, quantizer_available

    if not quantizer_available():
        print(f"llama-cpp-python is not installed: {GGUF_EXTRA} (compiles llama.cpp, "
              "~15 min on 2 cores); nothing checked")  # fmt: skip
        write_summary(args.json, "llamacpp_check", [Row(
            "llama.cpp answers (GGUF exports)", "not run: needs tunedeck[gguf]", "-", "-",
            None, "f16 = merged model", None)])  # fmt: skip
        return 0

    if args.run:
        run = Path(args.run).resolve()
        home = str(run.parent.parent)
    else:
        home = tempfile.mkdtemp(prefix="tunedeck-llamacpp-")
    env = bench_env(Path(home))
    os.environ["TUNEDECK_HOME"] = home
    if not args.run:
        print("== training the default flow on the tickets", file=sys.stderr, flush=True)
        run = trained_run(env, args.quick)
    print(f"== run {run.name}: tunedeck's evaluation on {TEST}", file=sys.stderr, flush=True)
    summary, rows = evaluation(run, env, args.max_examples)
    tokens = int(summary["settings"]["max_new_tokens"])
    prompts = [[m for m in row["messages"] if m["role"] != "assistant"] for row in rows]
    from engine.eval.primary import stored_primary

    primary = stored_primary(run)  # the metric the stored evaluation was scored by
    tuned = summary["systems"]["tuned"]
    eval_side = Side("tunedeck eval (adapter on fp32 base, batched)",
                     [row["output"] for row in rows], 0.0)  # fmt: skip

    out = Path(tempfile.mkdtemp(prefix="tunedeck-llamacpp-exports-"))
    print("== exports", file=sys.stderr, flush=True)
    merged_dir = Path(export(run, out / "merged", env, "--merged")["out"])
    files: dict[str, Path] = {}
    for quant in args.quants.split(","):
        result = export(run, out / quant, env, "--gguf", "--quant", quant)
        files[quant] = Path(result["out"]) / f"model-{quant}.gguf"
    adapter = Path(export(run, out / "lora", env, "--gguf-adapter")["out"])
    from engine.config.build import load_config
    from engine.export.gguf.run import ADAPTER_FILE, source_gguf
    from engine.model.resolve import resolve_model

    base_gguf = source_gguf(resolve_model(load_config(run / "config.toml").model))

    print("== merged model (transformers)", file=sys.stderr, flush=True)
    merged = merged_answers(merged_dir, prompts, tokens)
    sides = [eval_side, merged]
    for path in files.values():
        print(f"== llama.cpp: {path.name}", file=sys.stderr, flush=True)
        side = llama_answers(path, prompts, tokens, None)
        side.size_mb = path.stat().st_size / 1e6
        sides.append(side)
    if base_gguf is not None:
        print(f"== llama.cpp: {ADAPTER_FILE} on {base_gguf.name}", file=sys.stderr, flush=True)
        side = llama_answers(base_gguf, prompts, tokens, adapter / ADAPTER_FILE)
        side.size_mb = (adapter / ADAPTER_FILE).stat().st_size / 1e6
        sides.append(side)
    for side in sides:
        score(side, rows, run, primary)

    print(table(sides, summary["primary"]["name"], len(rows)))
    print(
        f"tunedeck's stored evaluation: {tuned['primary']:.3f} "
        f"(valid JSON {tuned.get('json_valid')})"
    )
    result_rows = [
        Row(f"llama.cpp: {s.name} ({summary['primary']['name']})", f"{s.primary:.3f}",
            "tunedeck eval", f"{tuned['primary']:.3f}",
            s.primary / tuned["primary"] if tuned["primary"] else None, "-", None)
        for s in sides[2:]
    ]  # fmt: skip
    f16 = next((s for s in sides if s.name == "model-f16.gguf"), None)
    ok = True
    if f16 is not None:
        checks = compare_f16(f16, merged, merged_dir, prompts, rows)
        result_rows += checks
        ok = checks[0].met is True  # the same labels, partings only at near-ties
    write_summary(args.json, "llamacpp_check", result_rows)
    return 0 if ok else 1


NEAR_TIE = 0.5
"""A logit margin under which greedy decoding may flip with the order or precision of the
arithmetic (llama.cpp's CPU f16 matmul rounds the activations to f16; torch's fp32 does not)."""


def compare_f16(
    f16: Side, merged: Side, merged_dir: Path, prompts: list[list[dict]], rows: list[dict]
) -> list[Row]:
    """The f16 GGUF in llama.cpp against the merged model: identical answers, the same
    labels, and where an answer parts, how close the merged model was to a tie there."""
    n = len(rows)
    same = sum(a == b for a, b in zip(f16.answers, merged.answers, strict=True))
    same_labels = sum(a == b for a, b in zip(f16.labels, merged.labels, strict=True))
    print(f"f16 GGUF in llama.cpp vs merged model: {same}/{n} answers identical, "
          f"the same label in {same_labels}/{n}")  # fmt: skip
    margins = parting_margins(merged_dir, prompts, merged.answers, f16.answers)
    for i, margin in margins:
        print(f"  parts at test line {rows[i]['line']} (merged model's logit margin there: "
              f"{margin:.3f}):\n    llama.cpp: {f16.answers[i]!r}\n"
              f"    merged:    {merged.answers[i]!r}")  # fmt: skip
    worst = max((m for _, m in margins if m == m), default=0.0)  # m == m: not NaN
    labels_ok = same_labels == n and worst < NEAR_TIE
    return [
        Row("llama.cpp f16 vs merged model: same label, partings at near-ties",
            f"{same_labels}/{n}, largest margin {worst:.2f}", "-", "-", None,
            f"{n}/{n}, < {NEAR_TIE}", labels_ok),
        Row("llama.cpp f16 vs merged model: identical answers", f"{same}/{n}", "-", "-",
            None, f"{n}/{n} (issue 24)", same == n),
    ]  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
