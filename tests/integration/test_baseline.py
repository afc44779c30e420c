"""The wizard's Baseline step on the engine, with the tiny model: the base systems are
evaluated on a created run before it trains, the run then trains with hyperparameters
changed meanwhile, and the evaluation after training reuses every base answer."""

from __future__ import annotations

from pathlib import Path

from engine.config.build import load_config, with_overrides
from engine.eval.baseline import BASELINE_OPTIONS
from engine.eval.launch import run_eval
from engine.eval.options import BASE_SYSTEMS, EvalOptions
from engine.runs.store import CREATED, create_run, run_info, start_created_run
from tests.integration.test_evaluate import data_file  # noqa: F401
from tests.integration.test_training import tiny_config, wait_for_state


def test_the_evaluation_after_training_reuses_the_baseline(
    tiny_model_dir: Path,
    data_file: Path,  # noqa: F811
) -> None:
    cfg = tiny_config(tiny_model_dir, data_file, max_steps=4, eval_steps=2, save_steps=2)
    run = create_run(cfg)
    baseline = run_eval(run, BASELINE_OPTIONS)
    assert set(baseline["systems"]) == set(BASE_SYSTEMS) and run_info(run).state == CREATED
    rows = {s: (run / "eval" / f"{s}.jsonl").read_bytes() for s in BASE_SYSTEMS}

    start_created_run(run, with_overrides(cfg, learning_rate=5e-3))  # edited after the baseline
    wait_for_state(run, ("completed",))
    assert load_config(run / "config.toml").learning_rate == 5e-3

    seen: list[dict] = []
    summary = run_eval(run, EvalOptions(), on_event=seen.append)
    generated = {e["system"] for e in seen if e["type"] == "eval_progress"
                 and e["phase"] == "generate"}  # fmt: skip
    assert generated == {"tuned"}  # not one base answer generated again
    for system in BASE_SYSTEMS:
        assert (run / "eval" / f"{system}.jsonl").read_bytes() == rows[system], system
    assert set(summary["systems"]) == {*BASE_SYSTEMS, "tuned"}
    assert summary["against"] in BASE_SYSTEMS and "fine-tuned" in summary["verdict"]
