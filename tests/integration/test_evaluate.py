"""Evaluation of real runs on the tiny model: all systems, resumable after an interrupt or a
kill -9, baseline before training, the judge over loopback, and `tunedeck eval`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config.build import from_preset, with_overrides
from engine.core.control import worker_lock
from engine.core.errors import TunedeckError
from engine.core.events import iter_all_events
from engine.core.paths import runs_dir
from engine.eval.launch import (
    EvalRunningError,
    eval_lock,
    eval_pid,
    eval_running,
    run_eval,
    start_eval,
    stop_eval,
)
from engine.eval.options import BASE_SYSTEMS, EvalOptions
from engine.eval.store import read_jsonl
from engine.eval.summary import run_scoring, score_output
from engine.runs.store import create_run, start_run
from tests.chat_server import ChatServer
from tests.integration.test_training import SAMPLE, tiny_config, wait_for_state
from tui.cli import main

FAST = {"max_examples": 4, "max_new_tokens": 8, "batch_size": 3}
"""Small enough for CPU tests: 4 held-out examples, 8-token answers."""


def copy_run(run_dir: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    target = into / run_dir.name
    shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns("*.lock"))
    return target


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "tickets.jsonl"
    path.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:60]))
    return path


@pytest.fixture(scope="module")
def trained_run(
    tiny_model_dir: Path, data_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """One completed tiny run for the module (tests work on copies of it)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNEDECK_HOME", str(tmp_path_factory.mktemp("home")))
        info = start_run(tiny_config(tiny_model_dir, data_file, max_steps=12))
        wait_for_state(info.dir, ("completed",))
    return info.dir


@pytest.fixture(scope="module")
def evaluated_run(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained run, evaluated once with FAST settings."""
    run = copy_run(trained_run, tmp_path_factory.mktemp("evaluated"))
    run_eval(run, EvalOptions(**FAST))
    return run


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    server = ChatServer("prefer_json").start()
    yield server
    server.stop()


def test_eval_of_a_completed_run_writes_all_systems_and_metrics(evaluated_run: Path) -> None:
    run = evaluated_run
    ctx, index = run_scoring(run)
    assert ctx.primary_name == "category accuracy"
    for system in ("base_zero", "base_few", "tuned"):
        rows = read_jsonl(run / "eval" / f"{system}.jsonl")
        assert sorted(r["index"] for r in rows) == [0, 1, 2, 3]
        for row in rows:
            assert row["system"] == system and row["output_tokens"] <= 8
            assert row["metrics"] == score_output(row["output"], row["reference"], ctx, index)
            assert row["messages"][-1]["role"] == "user"
    summary = json.loads((run / "eval" / "summary.json").read_text())
    assert set(summary["systems"]) == {"base_zero", "base_few", "tuned"}
    assert all(s["n"] == 4 for s in summary["systems"].values())
    assert summary["examples"] == 4 and summary["settings"]["max_new_tokens"] == 8
    assert summary["against"] in BASE_SYSTEMS and summary["verdict"]

    # Validation loss agrees with the trainer's own: step 0 (LoRA starts as a no-op) for
    # the base model, the best step for the adapter.
    val = {e["step"]: e["loss"] for e in iter_all_events(run)
           if e["type"] == "metric" and e["split"] == "val"}  # fmt: skip
    best = min(val.values())
    assert summary["systems"]["base_zero"]["val_loss"] == pytest.approx(val[0], rel=1e-3)
    assert summary["systems"]["tuned"]["val_loss"] == pytest.approx(best, rel=1e-3)
    assert summary["systems"]["tuned"]["val_loss"] < summary["systems"]["base_zero"]["val_loss"]

    probes = read_jsonl(run / "eval" / "probes.jsonl")
    assert sorted((r["model"], r["index"]) for r in probes) == sorted(
        (m, i) for m in ("base", "tuned") for i in range(12)
    )
    assert summary["probes"]["probes"] == 12 and "general ability" in summary["probes"]["note"]
    kinds = [e["type"] for e in iter_all_events(run) if e["type"].startswith("eval_")]
    assert kinds[0] == "eval_started" and kinds[-1] == "eval_done"
    progress = [e for e in iter_all_events(run) if e["type"] == "eval_progress"]
    assert {"system": "tuned", "done": 4, "total": 4} in [
        {k: e[k] for k in ("system", "done", "total")} for e in progress
    ]


def test_an_interrupted_eval_resumes_without_regenerating(trained_run: Path, tmp_path) -> None:
    run = copy_run(trained_run, tmp_path)
    options = EvalOptions(**{**FAST, "batch_size": 2, "loss": False, "probes": False})

    def interrupt_after_first_tuned_batch(event: dict) -> None:
        if event["type"] == "eval_progress" and event["system"] == "tuned" and event["done"]:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_eval(run, options, on_event=interrupt_after_first_tuned_batch)
    tuned = run / "eval" / "tuned.jsonl"
    before = {name: (run / "eval" / name).read_bytes() for name in ("base_zero.jsonl",
              "base_few.jsonl", "tuned.jsonl")}  # fmt: skip
    assert len(read_jsonl(tuned)) == 2
    assert [e["type"] for e in iter_all_events(run)][-1] == "eval_stopped"

    seen: list[dict] = []
    run_eval(run, options, on_event=seen.append)
    generated = [e for e in seen if e["type"] == "eval_progress" and e["phase"] == "generate"]
    # the base systems were complete: not a single batch; tuned went on from 2 of 4
    assert [(e["system"], e["done"]) for e in generated] == [("tuned", 2), ("tuned", 4)]
    for name, data in before.items():
        assert (run / "eval" / name).read_bytes().startswith(data), name  # rows unchanged
    assert sorted(r["index"] for r in read_jsonl(tuned)) == [0, 1, 2, 3]
    assert (run / "eval" / "base_zero.jsonl").read_bytes() == before["base_zero.jsonl"]


class OutOfMemoryError(RuntimeError):
    """Named like torch's CUDA error (what the evaluator recognises), raised on CPU."""


def test_out_of_memory_halves_the_generation_batch(
    trained_run: Path, evaluated_run: Path, tmp_path: Path, monkeypatch
) -> None:
    import engine.eval.generate

    real = engine.eval.generate.generate
    sizes: list[int] = []

    def small_memory(model, tokenizer, texts, *args, **kwargs):
        sizes.append(len(texts))
        if len(texts) > 1:
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, tokenizer, texts, *args, **kwargs)

    monkeypatch.setattr(engine.eval.generate, "generate", small_memory)
    run = copy_run(trained_run, tmp_path)
    seen: list[dict] = []
    run_eval(run, EvalOptions(**{**FAST, "batch_size": 4}), on_event=seen.append)
    # 4 prompts: out of memory at 4, then at 2, then one at a time for good
    assert sizes[:6] == [4, 2, 1, 1, 1, 1] and set(sizes[6:]) == {1}
    notes = [e["message"] for e in seen if e["type"] == "eval_note"]
    assert notes[:2] == [
        "out of memory at a batch of 4 prompts: generating 2 at a time from here on",
        "out of memory at a batch of 2 prompts: generating 1 at a time from here on",
    ]
    for name in ("base_zero.jsonl", "base_few.jsonl", "tuned.jsonl"):
        rows = sorted(read_jsonl(run / "eval" / name), key=lambda r: r["index"])
        expected = sorted(read_jsonl(evaluated_run / "eval" / name), key=lambda r: r["index"])
        assert [r["output"] for r in rows] == [r["output"] for r in expected], name

    def no_memory(*args, **kwargs):
        raise OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(engine.eval.generate, "generate", no_memory)
    again = copy_run(trained_run, tmp_path / "again")
    with pytest.raises(TunedeckError, match="out of memory while generating a single answer"):
        run_eval(again, EvalOptions(**{**FAST, "batch_size": 2, "loss": False, "probes": False}))


def test_a_killed_detached_eval_resumes(trained_run: Path, tmp_path: Path) -> None:
    run = copy_run(trained_run, tmp_path)
    options = EvalOptions(systems=BASE_SYSTEMS, max_new_tokens=24, batch_size=1)
    pid = start_eval(run, options)
    rows_file = run / "eval" / "base_zero.jsonl"
    deadline = time.monotonic() + 120
    while not read_jsonl(rows_file) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # subprocess may have reaped it already
        os.waitpid(pid, 0)
    assert not eval_running(run)  # the kernel released the lock with the process
    survivors = read_jsonl(rows_file)
    assert 1 <= len(survivors) < 9, "the detached eval finished before it could be killed"

    run_eval(run, options)
    rows = read_jsonl(rows_file)
    assert sorted(r["index"] for r in rows) == list(range(9))  # the whole validation split
    assert rows[: len(survivors)] == survivors
    assert len(read_jsonl(run / "eval" / "base_few.jsonl")) == 9


def test_one_evaluation_per_run(tmp_path: Path) -> None:
    assert not eval_running(tmp_path) and not stop_eval(tmp_path)
    with eval_lock(tmp_path):
        assert eval_pid(tmp_path) == os.getpid()
        with pytest.raises(EvalRunningError):
            start_eval(tmp_path, EvalOptions())
        with pytest.raises(EvalRunningError):
            run_eval(tmp_path, EvalOptions())
    assert eval_pid(tmp_path) is None


def test_baseline_before_training_beside_a_live_worker(
    tiny_model_dir: Path, data_file: Path
) -> None:
    import torch

    run = create_run(tiny_config(tiny_model_dir, data_file))  # no worker, no adapter yet
    notes: list[str] = []
    threads = torch.get_num_threads()
    try:
        with worker_lock(run):  # what a training worker holds while it trains
            summary = run_eval(
                run,
                EvalOptions(max_examples=2, max_new_tokens=4, loss=False, probes=False),
                on_event=lambda e: notes.append(e.get("message", "")),
            )
    finally:
        torch.set_num_threads(threads)
    assert set(summary["systems"]) == {"base_zero", "base_few"}
    assert summary["verdict"].startswith("baseline only")
    assert any("no fine-tuned adapter yet" in n for n in notes)
    assert any("training runs beside" in n for n in notes)


def test_cli_eval_prints_the_summary_and_judges_over_loopback(
    evaluated_run: Path, chat_server: ChatServer, capsys
) -> None:
    run = copy_run(evaluated_run, runs_dir())  # the CLI finds runs in $TUNEDECK_HOME
    args = ["eval", run.name[:15], "--max-examples", "4", "--max-new-tokens", "8"]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "verdict: " in out and "fine-tuned" in out and "base few-shot" in out
    assert "loading the model" not in err  # every row was there: nothing regenerated

    judge = ["--judge-url", chat_server.url, "--judge-model", "judge", "--json"]
    assert main([*args, *judge]) == 0
    summary = json.loads(capsys.readouterr().out)
    stats = summary["judge"]
    assert stats["n"] == 4 and stats["consistency"] == 1.0  # the test judge has no bias
    assert len(chat_server.requests) == 8
    assert len(read_jsonl(run / "eval" / "judge.jsonl")) == 4
    assert summary["review"]["ab"]["n"] == 0 and summary["dir"] == str(run / "eval")

    wrong = ["--judge-url", chat_server.url + "/nowhere", "--judge-model", "judge"]
    assert main([*args, *wrong]) == 2
    assert "HTTP 404" in capsys.readouterr().err
    saved = json.loads((run / "eval" / "summary.json").read_text())
    assert "HTTP 404" in saved["judge"]["error"] and saved["verdict"]  # the rest is kept


def test_cli_eval_errors(tiny_model_dir: Path, data_file: Path, capsys) -> None:
    assert main(["eval", "no-such-run"]) == 2
    assert "no run matches" in capsys.readouterr().err

    fresh = create_run(tiny_config(tiny_model_dir, data_file))
    assert main(["eval", fresh.name, "--systems", "tuned"]) == 2
    err = capsys.readouterr().err
    assert "no fine-tuned adapter yet" in err and "--baseline" in err

    cfg = tiny_config(tiny_model_dir, data_file)
    no_val = create_run(with_overrides(cfg, **{"data.source": None, "data.train": str(data_file)}))
    assert main(["eval", no_val.name]) == 2
    err = capsys.readouterr().err
    assert "no validation examples" in err and "val_fraction" in err


@pytest.mark.slow
def test_the_default_model_answers_sample_prompts(default_model_home, monkeypatch) -> None:
    """The real SmolLM2-135M, zero-shot, on three held-out tickets of the sample data."""
    monkeypatch.setenv("TUNEDECK_HOME", str(default_model_home))
    run = create_run(from_preset("quick", **{"data.source": str(SAMPLE)}))
    options = EvalOptions(systems=("base_zero",), max_examples=3, max_new_tokens=48,
                          loss=False, probes=False)  # fmt: skip
    summary = run_eval(run, options)
    rows = read_jsonl(run / "eval" / "base_zero.jsonl")
    assert sorted(r["index"] for r in rows) == [0, 1, 2]
    assert all(len(r["output"].split()) >= 3 for r in rows), [r["output"] for r in rows]
    stats = summary["systems"]["base_zero"]
    assert stats["n"] == 3 and 0.0 <= stats["json_valid"] <= 1.0
    assert summary["verdict"].startswith("baseline only")


def test_the_judge_key_never_reaches_the_run_directory_or_output(
    evaluated_run: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = "sk-tunedeck-planted-7f3a9c1e"
    server = ChatServer("prefer_json", require_key=planted).start()
    try:
        monkeypatch.setenv("TUNEDECK_JUDGE_KEY", planted)
        run = copy_run(evaluated_run, runs_dir())
        args = ["eval", run.name, "--max-examples", "4", "--max-new-tokens", "8",
                "--judge-url", server.url, "--judge-model", "judge",
                "--judge-key-env", "TUNEDECK_JUDGE_KEY"]  # fmt: skip
        assert main(args) == 0
        assert server.headers[-1]["Authorization"] == f"Bearer {planted}"  # it was used
    finally:
        server.stop()
    out, err = capsys.readouterr()
    assert planted not in out and planted not in err
    for path in run.rglob("*"):
        if path.is_file():
            assert planted.encode() not in path.read_bytes(), path


@pytest.fixture(scope="module")
def test_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five tickets the tiny run never saw, as one JSON array (another container)."""
    lines = SAMPLE.read_text().splitlines()[60:65]
    path = tmp_path_factory.mktemp("test-data") / "tickets_test.json"
    path.write_text("[\n" + ",\n".join(lines) + "\n]\n")
    return path


def test_cli_eval_scores_a_separate_test_file_kept_apart(
    evaluated_run: Path, test_file: Path, capsys
) -> None:
    run = copy_run(evaluated_run, runs_dir())
    validation = {p.name: p.read_bytes() for p in (run / "eval").glob("*.json*")}
    args = ["eval", run.name, "--data", str(test_file), "--max-new-tokens", "8",
            "--batch-size", "5", "--no-probes"]  # fmt: skip
    assert main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    scored = "test file tickets_test.json, 5 examples"
    assert summary["eval_set"]["description"] == scored and summary["examples"] == 5
    assert summary["verdict"].endswith(f"({scored})")
    assert summary["primary"]["name"] == "category accuracy"
    for stats in summary["systems"].values():
        ci = stats["primary_ci"]
        assert ci["method"] == "wilson" and ci["low"] <= stats["primary"] <= ci["high"]
    assert all(0 < c["p_value"] <= 1 for c in summary["comparisons"])

    where = Path(summary["dir"])
    assert where.parent == run / "eval" and where.name.startswith("test-tickets_test-")
    for system in ("base_zero", "base_few", "tuned"):
        rows = sorted(read_jsonl(where / f"{system}.jsonl"), key=lambda r: r["index"])
        assert [r["line"] for r in rows] == [1, 2, 3, 4, 5]  # the array's own elements
        assert all("memorised" in r["metrics"] for r in rows)  # vs the training answers
    assert (where / "examples.jsonl").is_file() and (where / "loss.jsonl").is_file()
    # the validation results are untouched
    assert {p.name: p.read_bytes() for p in (run / "eval").glob("*.json*")} == validation

    assert main(args) == 0  # again, as text: every row is there, nothing regenerated
    out, err = capsys.readouterr()
    assert "loading the model" not in err and "on the test file tickets_test.json" in err
    assert "run " in out and "test file tickets_test.json, 5 examples scored" in out
    assert "95% interval" in out and "test loss" in out and f"results: {where}" in out
    assert "primary metric: category accuracy: 'category' takes one of 6 values" in out

    assert main([*args, "--primary", "fields", "--json"]) == 0  # the user's choice wins
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert "loading the model" not in err  # the answers are re-scored, not regenerated
    assert summary["primary"]["name"] == "field accuracy" and summary["primary"]["source"] == "user"
    assert json.loads((run / "eval" / "primary.json").read_text())["spec"] == "fields"
    assert main(["eval", run.name, "--primary", "label:sentiment"]) == 2
    assert "no training answer has the key 'sentiment'" in capsys.readouterr().err


def test_cli_eval_refuses_a_bad_test_file_naming_its_line(
    evaluated_run: Path, tmp_path: Path, capsys
) -> None:
    run = copy_run(evaluated_run, runs_dir())
    bad = tmp_path / "tickets_bad.jsonl"
    lines = SAMPLE.read_text().splitlines()[60:63]
    bad.write_text("\n".join([lines[0], lines[1], '{"messages": [}', lines[2]]) + "\n")
    assert main(["eval", run.name, "--data", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "test file tickets_bad.jsonl line 3:" in err and "tunedeck lint" in err
    assert main(["eval", run.name, "--data", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: no such file" in capsys.readouterr().err
    assert not list((run / "eval").glob("test-*"))  # nothing kept of either
