"""Evaluation options the TUI's Eval settings produce: one saved checkpoint as a system,
options kept for the run (eval/options.json) without the judge's key, and the rows a
stopped evaluation leaves. No model, no torch."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from engine.core.checkpoints import mark_complete
from engine.eval.judge.config import JudgeConfig
from engine.eval.options import (
    EvalOptions,
    EvalOptionsError,
    add_arguments,
    from_args,
    is_checkpoint_system,
    load_options,
    save_options,
    to_argv,
)
from engine.eval.plan import NoAdapterError, model_groups, plan_systems
from engine.eval.store import append_jsonl, stored_rows, system_file

RUBRIC = "- valid JSON first\n- then the right category\n@ no extra keys"


def add_adapter(path: Path) -> None:
    """A PEFT-shaped adapter: its config and a (valid, empty) safetensors file."""
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text("{}")
    header = b"{}"
    (path / "adapter_model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run with its best adapter and complete checkpoints at steps 6 and 12."""
    run = tmp_path / "20250301-101500-c0ffee"
    add_adapter(run / "adapter")
    for step in (6, 12):
        add_adapter(run / "checkpoints" / f"checkpoint-{step}")
        mark_complete(run / "checkpoints" / f"checkpoint-{step}", step)
    add_adapter(run / "checkpoints" / "checkpoint-18")  # no marker: a save cut short
    return run


def test_a_saved_checkpoint_is_a_system() -> None:
    assert is_checkpoint_system("tuned@12") and not is_checkpoint_system("tuned@best")
    assert EvalOptions(systems=("base_zero", "tuned@12")).systems == ("base_zero", "tuned@12")
    with pytest.raises(EvalOptionsError, match="unknown system 'tuned@x'"):
        EvalOptions(systems=("tuned@x",))


def test_checkpoints_are_evaluated_one_by_one_or_all(run_dir: Path) -> None:
    systems, _ = plan_systems(run_dir, EvalOptions(systems=("tuned@12", "base_zero")))
    assert systems == ["base_zero", "tuned@12"]
    groups = model_groups(run_dir, systems)
    assert [(g.name, g.adapter) for g in groups] == [
        ("base", None),
        ("tuned@12", run_dir / "checkpoints" / "checkpoint-12"),
    ]
    every = EvalOptions(systems=("tuned", "tuned@12"), checkpoints=True)
    assert plan_systems(run_dir, every)[0] == ["tuned", "tuned@6", "tuned@12"]


def test_a_checkpoint_that_is_not_saved_is_refused_before_anything_starts(
    run_dir: Path,
) -> None:
    with pytest.raises(NoAdapterError, match=r"no complete checkpoint at step 18 \(saved: 6, 12\)"):
        plan_systems(run_dir, EvalOptions(systems=("tuned@18",)))


def test_options_kept_for_the_run_round_trip_without_the_key(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = "sk-planted-4d1e"
    monkeypatch.setenv("TUNEDECK_TEST_JUDGE_KEY", planted)
    options = EvalOptions(
        systems=("base_few", "tuned", "tuned@6"), few_shot=2, max_examples=5,
        max_new_tokens=40, temperature=0.7, top_p=0.9,
        judge=JudgeConfig(url="http://127.0.0.1:9/v1", model="judge",
                          key_env="TUNEDECK_TEST_JUDGE_KEY", rubric=RUBRIC, against="base_few"),
    )  # fmt: skip
    assert load_options(run_dir) is None
    path = save_options(run_dir, options)
    assert load_options(run_dir) == options
    assert planted not in path.read_text()
    local = EvalOptions(judge=JudgeConfig(local_model="/models/judge"))
    save_options(run_dir, local)
    assert load_options(run_dir) == local


def test_unreadable_saved_options_are_ignored(run_dir: Path) -> None:
    path = save_options(run_dir, EvalOptions())
    for text in ("{", json.dumps({"argv": ["--few-shot=-1"]}), json.dumps({"argv": ["--bogus"]}),
                 json.dumps({"argv": ["--few-shot=three"]}), json.dumps([1])):  # fmt: skip
        path.write_text(text)
        assert load_options(run_dir) is None, text


def test_a_rubric_that_starts_with_a_dash_reaches_the_detached_process() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = EvalOptions(judge=JudgeConfig(url="http://h/v1", model="m", rubric=RUBRIC))
    assert from_args(parser.parse_args(to_argv(options))) == options


def test_stored_rows_count_what_a_stop_keeps(tmp_path: Path) -> None:
    append_jsonl(system_file(tmp_path, "base_zero"), [{"index": i} for i in range(5)])
    append_jsonl(system_file(tmp_path, "tuned"), [{"index": 0}, {"index": 1}, {"index": 1}])
    assert stored_rows(tmp_path, ["base_zero", "base_few", "tuned"], 4) == 6
    assert stored_rows(tmp_path, ["base_zero"]) == 5


def test_a_test_file_reaches_the_detached_process_as_an_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = from_args(parser.parse_args(["--data", "tests/held out.jsonl"]))
    assert options.data == str(tmp_path / "tests" / "held out.jsonl")
    assert from_args(parser.parse_args(to_argv(options))) == options  # runs in the run dir
    save_options(tmp_path, options)
    assert load_options(tmp_path) == options
    assert from_args(parser.parse_args([])).data is None  # the validation split
