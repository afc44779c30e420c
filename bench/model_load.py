"""Loading the default model: the first-use GGUF conversion, then the cached copy, against
transformers loading the GGUF itself, each in a fresh process, in one run.

In a fresh, empty $TUNEDECK_HOME: first `resolve_model` converts the embedded GGUF into a
safetensors directory (first use only); then `load_causal_lm` loads model and tokenizer
from that copy, as every later run, evaluation and export does. The peer is what one
would write without tunedeck: `AutoModelForCausalLM.from_pretrained(dir,
gguf_file=...)` (and the tokenizer likewise), which dequantises the GGUF on every load.
Cached loads and peer loads alternate (--rounds of each), so noise hits both alike; the
medians are compared. Imports of torch and transformers are timed apart (every process
that loads a model pays them, with or without tunedeck). The cached copy must not be
converted again: its marker file is compared before and after, and the weights of both
sides must agree (a checksum of the embeddings).

Usage: python bench/model_load.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

GOAL_S = 5.0
""""Loads in a few seconds": model and tokenizer from the cache, imports not counted."""


def _checksum(model: object) -> float:
    weights = model.get_input_embeddings().weight  # type: ignore[attr-defined]
    return float(weights.double().abs().sum())


def child(kind: str) -> dict:
    """Runs in a fresh process: import the stack, then convert / load; seconds of each."""
    started = time.perf_counter()
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from transformers.utils import logging as hf_logging

    from engine.model.load import load_causal_lm
    from engine.model.resolve import DEFAULT_MODEL, EMBEDDED, find_embedded_gguf, resolve_model

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    imported = time.perf_counter()
    result: dict = {"import_s": imported - started}
    if kind == "convert":
        result["path"] = str(resolve_model(DEFAULT_MODEL))
    elif kind == "cached":
        model, _tokenizer = load_causal_lm(DEFAULT_MODEL)
        result["checksum"] = _checksum(model)
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = find_embedded_gguf(EMBEDDED[DEFAULT_MODEL])
        assert gguf is not None, "the default model's package is not installed"
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        result["checksum"] = _checksum(model)
    result["seconds"] = time.perf_counter() - imported
    return result


def _run_child(kind: str, env: dict[str, str]) -> dict:
    process = subprocess.run([sys.executable, __file__, "--child", kind], capture_output=True,
                             text=True, cwd=ROOT, env=env)  # fmt: skip
    if process.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{process.stderr[-3000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="cached and peer loads each")
    parser.add_argument("--json", help="write the summary rows (bench/run_all.py) here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return 0
    with tempfile.TemporaryDirectory(prefix="tunedeck-bench-") as home:
        env = dict(os.environ, TUNEDECK_HOME=home, HF_HUB_OFFLINE="1")
        first = _run_child("convert", env)
        marker = Path(first["path"]) / "tunedeck-model.json"
        before = marker.read_text()
        print(f"first use, GGUF -> safetensors: {first['seconds']:.1f} s "
              f"(+ {first['import_s']:.1f} s imports)", flush=True)  # fmt: skip
        cached, peer = [], []
        for _ in range(args.rounds):
            cached.append(_run_child("cached", env))
            peer.append(_run_child("peer", env))
            for name, r in (("cached", cached[-1]), ("peer", peer[-1])):
                print(f"  {name:<6} load {r['seconds']:5.1f} s (+ {r['import_s']:.1f} s imports)",
                      flush=True)  # fmt: skip
        converted_once = marker.read_text() == before
    return report(first, cached, peer, converted_once, args.json)


def report(first: dict, cached: list[dict], peer: list[dict], once: bool, json_path) -> int:
    """Print the comparison and write the summary rows."""
    from bench.summary import Row, write_summary

    ours = statistics.median(r["seconds"] for r in cached)
    theirs = statistics.median(r["seconds"] for r in peer)
    same = len({round(r["checksum"], 3) for r in cached + peer}) == 1
    print(f"cached load {ours:.1f} s vs transformers from the GGUF {theirs:.1f} s: "
          f"{theirs / ours:.1f}x; goal: under {GOAL_S:.0f} s")  # fmt: skip
    print(f"converted once: {once}; same weights on both sides: {same}")
    rows = [
        Row("model load, cached default model", f"{ours:.1f} s",
            "from_pretrained(gguf_file=)", f"{theirs:.1f} s", theirs / ours,
            f"< {GOAL_S:.0f} s, same weights", ours < GOAL_S and same),
        Row("model conversion from GGUF (first use)", f"{first['seconds']:.1f} s, once",
            "-", "-", None, "once", once),
    ]  # fmt: skip
    write_summary(json_path, "model_load", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
