"""GGUF export of the default model: seconds and peak memory, against the size of one merged
copy and against writing the file without streaming, each in a fresh process.

A run of smollm2-135m with a fresh LoRA (random, nonzero B: merging changes every adapted
matrix) is exported with `export_run(kind="gguf")` per storage type, each in a fresh
process. Measured: wall seconds; the process's RSS right after the merge (imports + the
one merged copy in memory, every weight read once so that none is still only mapped from
the safetensors file); the peak RSS from then on, while the GGUF is written (Linux
VmHWM, reset after the merge through /proc/self/clear_refs); and the peak of the whole
process (ru_maxrss: loading the base from safetensors briefly holds more than the merge
does, so it is the same for every side and says little about the writing).

The peer, measured in the same run: "convert all, then write", every tensor converted
first (gguf's `GGUFWriter.add_tensor`, the usual way to use it), then the file written: it
holds the merged model and the converted one together.

Seconds are the whole process: tunedeck's also reads the file back, loads the tokenizer
again for the Modelfile and writes the card, report and bundle; the peer writes the file
alone.

The target: the peak while writing within 1.2x of the RSS after the merge ("peak memory
stays near one copy of the merged model").

Usage: python bench/gguf_export.py [--quants f16,q8_0,q4_0] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from bench.summary import Row, write_summary  # noqa: E402

TARGET = 1.2
"""Peak RSS of an export over that of the merge alone."""


def make_run() -> Path:
    """A run of the default model with a fresh, nonzero LoRA as its adapter."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from engine.config.build import from_preset, with_overrides
    from engine.model.resolve import DEFAULT_MODEL, resolve_model
    from engine.runs.store import create_run

    sample = ROOT / "sample_data" / "support_tickets.jsonl"
    run = create_run(with_overrides(from_preset("quick"), model=DEFAULT_MODEL,
                                    **{"data.source": str(sample)}))  # fmt: skip
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(resolve_model(DEFAULT_MODEL))
    model = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    model.save_pretrained(run / "adapter")
    return run


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} in /proc/self/status")


def child(mode: str, run: Path, quant: str, out: Path) -> None:
    """In a fresh process: tunedeck's export, or the peer's write; prints its RSS figures."""
    from engine.export.gguf import run as gguf_run
    from engine.export.merge import merged_model

    after_merge: list[float] = []

    def merge_then_mark(*args, **kwargs):
        model = merged_model(*args, **kwargs)
        for tensor in model.state_dict().values():  # weights the merge left untouched are
            tensor.sum()  # still lazily mapped from safetensors: bring all of them in first
        after_merge.append(_status_mb("VmRSS"))
        Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) restarts here
        return model

    if mode == "tunedeck":
        from engine.export.exporter import export_run

        gguf_run.merged_model = merge_then_mark  # type: ignore[assignment]
        export_run(run, out, kind="gguf", quant=quant)  # type: ignore[arg-type]
    else:
        from engine.config.build import load_config

        cfg = load_config(run / "config.toml")
        peer_write(lambda: merge_then_mark(cfg, run / "adapter"), run,
                   out / f"model-{quant}.gguf", quant)  # fmt: skip
    print("RSS " + json.dumps({"after_merge": after_merge[0], "writing": _status_mb("VmHWM")}))


def peer_write(merge, run: Path, path: Path, quant: str) -> None:
    """Every tensor converted first (add_tensor keeps them), then the file written; the
    metadata is gathered before the merge, as tunedeck does, so only that differs."""
    import gguf

    from engine.config.build import load_config
    from engine.export.gguf.run import base_config
    from engine.export.gguf.tensors import add_hyperparameters, encode_tensor, plan_tensors
    from engine.export.gguf.vocab import add_vocabulary

    base, config = base_config(load_config(run / "config.toml"))
    path.parent.mkdir(parents=True)
    writer = gguf.GGUFWriter(path, "llama")
    add_hyperparameters(writer, config, "llama", quant)  # type: ignore[arg-type]
    add_vocabulary(writer, base, int(config["vocab_size"]))
    state = merge().state_dict()
    shapes = {key: tuple(tensor.shape) for key, tensor in state.items()}
    plans = plan_tensors(shapes, config, "llama", quant)  # type: ignore[arg-type]
    for plan in plans:
        data = encode_tensor(plan, state[plan.source].float().numpy())
        writer.add_tensor(plan.name, data, raw_dtype=plan.qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def measure(mode: str, run: Path, quant: str, home: Path, work: Path) -> dict[str, float]:
    """Seconds, RSS after the merge, peak while writing, peak of the process (MB)."""
    out = work / f"{mode}-{quant}"
    env = {**os.environ, "TUNEDECK_HOME": str(home), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_VERBOSITY": "error"}  # fmt: skip
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
            "from bench.gguf_export import child; "
            "child(sys.argv[2], Path(sys.argv[3]), sys.argv[4], Path(sys.argv[5]))")  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code, str(ROOT), mode, str(run), quant,
                                str(out)], env=env, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout is not None
    lines = process.stdout.read().splitlines()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{mode} {quant} failed (status {status})")
    rss = json.loads(next(line for line in lines if line.startswith("RSS "))[4:])
    return {"s": seconds, **rss, "process": usage.ru_maxrss / 1024}  # Linux: KiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quants", default="f16,q8_0,q4_0")
    parser.add_argument("--json", help="write the summary rows here (bench/run_all.py)")
    args = parser.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-gguf-") as tmp:
        home, work = Path(tmp) / "home", Path(tmp) / "work"
        os.environ["TUNEDECK_HOME"] = str(home)
        work.mkdir()
        run = make_run()
        params = _merged_params(run)
        print(f"default model: {params / 1e6:.0f}M parameters, one merged fp32 copy "
              f"{params * 4 / 1e6:.0f} MB")  # fmt: skip
        for quant in args.quants.split(","):
            ours, peer = (measure(side, run, quant, home, work) for side in ("tunedeck", "peer"))
            size = (work / f"tunedeck-{quant}" / f"model-{quant}.gguf").stat().st_size
            for side, m in (("tunedeck", ours), ("convert all, then write", peer)):
                print(f"{quant} {side}: {m['s']:.1f} s; RSS after the merge {m['after_merge']:.0f}"
                      f" MB, peak while writing {m['writing']:.0f} MB "
                      f"({m['writing'] / m['after_merge']:.2f}x), process peak "
                      f"{m['process']:.0f} MB")  # fmt: skip
            print(f"{quant}: file {size / 1e6:.0f} MB")
            ratio = ours["writing"] / ours["after_merge"]
            rows.append(Row(f"gguf export {quant}: peak RSS writing", f"{ours['writing']:.0f} MB "
                            f"({ratio:.2f}x merged)", "convert all, then write",
                            f"{peer['writing']:.0f} MB", peer["writing"] / ours["writing"],
                            f"<= {TARGET}x merged in memory", ratio <= TARGET))  # fmt: skip
            rows.append(Row(f"gguf export {quant}: seconds (whole export)", f"{ours['s']:.1f} s",
                            "the GGUF file alone", f"{peer['s']:.1f} s", peer["s"] / ours["s"],
                            "-", None))  # fmt: skip
    write_summary(args.json, "gguf_export", rows)
    return 0


def _merged_params(run: Path) -> int:
    from engine.config.estimate import read_model_config
    from engine.model.resolve import DEFAULT_MODEL, resolve_model
    from engine.model.shapes import model_shape

    return int(model_shape(read_model_config(resolve_model(DEFAULT_MODEL))).total_params)


if __name__ == "__main__":
    raise SystemExit(main())
