"""Pilot tests of the Evaluate step's controls: the Eval settings dialog (checkpoint
toggles, the engine's validation messages beside the fields, options kept for the run),
the stop key, and the judge and checkpoints in the summary. Scripted evaluations on real
run directories; no model, no torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Select, Static

from engine.eval.judge.config import JudgeConfig
from engine.eval.memorisation import TrainAnswerIndex
from engine.eval.metrics import METRICS_VERSION, scoring_context
from engine.eval.options import EvalOptions, load_options
from engine.eval.review import load_marks
from engine.eval.sets import prepare_test_set
from engine.eval.store import append_jsonl, system_file
from engine.eval.summary import build_summary, score_output, write_summary
from tests.conftest import REPO_ROOT
from tests.engine.test_review import OUTPUTS, PROMPTS, REFERENCES, TICKET
from tests.tui.conftest import SIZE, wait_until
from tests.tui.test_evaluate import RUN_ID, EvalBackend, evaluate_app, open_evaluate, write_eval
from tui.dialogs.eval_settings import EvalSettingsDialog
from tui.dialogs.file_browser import FileBrowserDialog
from tui.screens.evaluate import EvaluateScreen
from tui.widgets.eval_summary import aggregates_text, judge_text

ALL = ("base_zero", "base_few", "tuned")


class SettingsBackend(EvalBackend):
    """A run with its best adapter and checkpoints at steps 6 and 12."""

    def eval_adapters(self, run_dir: Path) -> tuple[bool, list[int]]:
        return True, [6, 12]


class StoppableBackend(SettingsBackend):
    """`start_eval` leaves an evaluation running with 5 of its 12 rows generated;
    `stop_eval` ends it the way the engine's SIGTERM handler does."""

    def __init__(self) -> None:
        super().__init__()
        self.running = False
        self.stops = 0

    def start_eval(self, run_dir: Path, options: EvalOptions | None = None) -> int:
        self.eval_starts += 1
        self.eval_options.append(options)
        self.running = True
        events = self.runs[run_dir].events
        events += [
            {"type": "eval_started", "systems": list(ALL), "examples": 4},
            {"type": "eval_progress", "phase": "generate", "system": "base_few", "done": 1,
             "total": 4},
        ]  # fmt: skip
        rows = [{"index": i, "system": s, "output": OUTPUTS[s][i], "prompt": "p", "reference": "r"}
                for s, n in (("base_zero", 4), ("base_few", 1)) for i in range(n)]  # fmt: skip
        for row in rows:
            append_jsonl(system_file(run_dir, row["system"]), [row])
        return 4321

    def eval_running(self, run_dir: Path) -> bool:
        return self.running

    def stop_eval(self, run_dir: Path) -> bool:
        self.stops += 1
        self.running = False
        self.runs[run_dir].events.append({"type": "eval_stopped", "reason": "interrupted"})
        return True


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / RUN_ID
    run.mkdir()
    write_eval(run)
    return run


async def open_settings(pilot: Any) -> EvalSettingsDialog:
    await pilot.press("E")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, EvalSettingsDialog), 10)
    await pilot.pause()
    return pilot.app.screen


def note(dialog: EvalSettingsDialog, name: str) -> str:
    return str(dialog.query_one(f"#note-{name}", Static).render())


async def type_into(pilot: Any, dialog: EvalSettingsDialog, name: str, text: str) -> None:
    field = dialog.query_one(f"#field-{name}", Input)
    field.value = text
    await pilot.pause()


async def test_settings_list_checkpoints_and_start_with_the_options(run_dir: Path) -> None:
    backend = SettingsBackend()
    async with evaluate_app(run_dir, backend).run_test(size=SIZE) as pilot:
        screen = await open_evaluate(pilot)
        dialog = await open_settings(pilot)
        assert list(dialog.boxes) == [*ALL, "tuned@6", "tuned@12"]
        assert [box.value for box in dialog.boxes.values()] == [True, True, True, False, False]
        await pilot.click("#sys-ckpt-12")
        await pilot.click("#sys-base_zero")
        await type_into(pilot, dialog, "few_shot", "5")
        await type_into(pilot, dialog, "max_examples", "3")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: backend.eval_starts == 1 and not screen.evaluating, 10)
        chosen = EvalOptions(systems=("base_few", "tuned", "tuned@12"), few_shot=5, max_examples=3)
        assert backend.eval_options == [chosen]
        assert load_options(run_dir) == chosen  # kept for the run
        await wait_until(pilot, lambda: screen.options == chosen, 10)
        await pilot.press("e")  # starting again reuses them
        await wait_until(pilot, lambda: backend.eval_starts == 2, 10)
        assert backend.eval_options[-1] == chosen
    async with evaluate_app(run_dir, SettingsBackend()).run_test(size=SIZE) as pilot:
        await open_evaluate(pilot)
        dialog = await open_settings(pilot)  # a new app shows the kept options
        assert [box.value for box in dialog.boxes.values()] == [False, True, True, False, True]
        assert dialog.query_one("#field-few_shot", Input).value == "5"


async def test_a_prompt_pool_is_answered_by_the_fine_tuned_model_unless_set_by_hand(
    run_dir: Path,
) -> None:
    pool = str(REPO_ROOT / "sample_data" / "support_tickets_pool.jsonl")
    test = str(REPO_ROOT / "sample_data" / "support_tickets_test.jsonl")
    backend = SettingsBackend()
    async with evaluate_app(run_dir, backend).run_test(size=SIZE) as pilot:
        await open_evaluate(pilot)
        dialog = await open_settings(pilot)
        checked = lambda: [s for s, box in dialog.boxes.items() if box.value]  # noqa: E731
        assert checked() == list(ALL)
        await type_into(pilot, dialog, "data", pool)
        assert checked() == ["tuned"] and "a prompt pool" in note(dialog, "data")
        await type_into(pilot, dialog, "data", test)  # a scored file: the toggles come back
        assert checked() == list(ALL) and "scored instead" in note(dialog, "data")
        await pilot.click("#sys-base_few")  # set by hand: a pool leaves them alone
        await type_into(pilot, dialog, "data", pool)
        assert checked() == ["base_zero", "tuned"]
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: backend.eval_starts == 1, 10)
        assert backend.eval_options[-1].systems == ("base_zero", "tuned")
        assert backend.eval_options[-1].data == pool


async def test_bad_values_show_the_engines_message_beside_the_field(run_dir: Path) -> None:
    backend = SettingsBackend()
    async with evaluate_app(run_dir, backend).run_test(size=SIZE) as pilot:
        await open_evaluate(pilot)
        dialog = await open_settings(pilot)
        await type_into(pilot, dialog, "few_shot", "99")
        assert "✗ --few-shot must be 0 to 64" in note(dialog, "few_shot")
        await type_into(pilot, dialog, "max_new_tokens", "lots")
        assert "✗ lots: a whole number is needed" in note(dialog, "max_new_tokens")
        dialog.query_one("#field-decoding", Select).value = "sample"
        await type_into(pilot, dialog, "temperature", "9")
        assert "✗ temperature must be between 0 and 5, not 9" in note(dialog, "temperature")
        for system in ALL:
            dialog.boxes[system].value = False
        await pilot.pause()
        assert "no system to evaluate" in note(dialog, "systems")
        dialog.query_one("#field-judge", Select).value = "url"
        await type_into(pilot, dialog, "url", "127.0.0.1:8000/v1")
        assert "http:// or https://" in note(dialog, "url")
        await type_into(pilot, dialog, "url", "http://127.0.0.1:8000/v1")
        assert "--judge-url needs --judge-model" in note(dialog, "model")
        await pilot.press("ctrl+s")  # refused: the dialog stays
        await pilot.pause()
        assert pilot.app.screen is dialog and "fix the 5 field(s)" in str(
            dialog.query_one("#settings-error", Static).render()
        )
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(pilot.app.screen, EvaluateScreen) and backend.eval_starts == 0


async def test_judge_settings_name_the_key_variable_and_say_whether_it_is_set(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNEDECK_TEST_KEY", "sk-secret-value")
    monkeypatch.delenv("TUNEDECK_TEST_UNSET", raising=False)
    backend = SettingsBackend()
    async with evaluate_app(run_dir, backend).run_test(size=SIZE) as pilot:
        await open_evaluate(pilot)
        dialog = await open_settings(pilot)
        assert not dialog.query_one("#judge-fields").display
        dialog.query_one("#field-judge", Select).value = "url"
        await pilot.pause()
        await type_into(pilot, dialog, "url", "http://127.0.0.1:9/v1")
        await type_into(pilot, dialog, "model", "judge-7b")
        await type_into(pilot, dialog, "key_env", "TUNEDECK_TEST_UNSET")
        assert note(dialog, "key_env") == "not set: no key is sent"
        await type_into(pilot, dialog, "key_env", "TUNEDECK_TEST_KEY")
        assert note(dialog, "key_env") == "✓ set in this environment"
        assert "sk-secret-value" not in str(dialog.query_one("#judge-fields").render())
        dialog.query_one("#field-against", Select).value = "base_zero"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: backend.eval_starts == 1, 10)
    judge = backend.eval_options[0].judge  # type: ignore[union-attr]
    assert judge == JudgeConfig(url="http://127.0.0.1:9/v1", model="judge-7b",
                                key_env="TUNEDECK_TEST_KEY", against="base_zero")  # fmt: skip
    assert "sk-secret-value" not in (run_dir / "eval" / "options.json").read_text()


async def test_stop_key_stops_and_e_continues(tmp_path: Path) -> None:
    run = tmp_path / RUN_ID
    run.mkdir()
    backend = StoppableBackend()
    async with evaluate_app(run, backend).run_test(size=SIZE) as pilot:
        screen = await open_evaluate(pilot, rows=0)
        assert screen.check_action("stop_eval", ()) is False  # nothing runs: the key is hidden
        await pilot.press("ctrl+x")
        assert backend.stops == 0
        await pilot.press("e")
        await wait_until(pilot, lambda: screen.evaluating, 10)
        assert screen.check_action("stop_eval", ()) and screen.check_action("evaluate", ()) is None
        await pilot.press("ctrl+x")
        status = screen.query_one("#eval-status", Static)
        await wait_until(pilot, lambda: "rows kept" in str(status.render()), 10)
        assert str(status.render()) == "Evaluation stopped — 5/12 rows kept; press e to continue."
        assert backend.stops == 1 and not screen.evaluating
        await pilot.press("e")
        await wait_until(pilot, lambda: backend.eval_starts == 2, 10)
        assert backend.eval_options == [None, None]  # the same (default) options


def test_summary_shows_checkpoints_and_the_judge() -> None:
    summary = {
        "systems": {s: {"primary": 0.5, "val_loss": 1.0} for s in (*ALL, "tuned@6", "tuned@12")},
    }
    text = aggregates_text(summary, [*ALL, "tuned@6", "tuned@12"], "category accuracy")
    assert text.splitlines()[0].split() == ["base", "zero-shot", "base", "few-shot",
                                            "fine-tuned", "ckpt", "6", "ckpt", "12"]  # fmt: skip
    assert max(len(line) for line in text.splitlines()) <= 96
    judged = {"against": "base_few", "n": 4, "wins": 3, "losses": 1, "ties": 0,
              "win_rate": 0.75, "consistency": 1.0}  # fmt: skip
    assert judge_text(judged) == (
        "judge vs base few-shot: fine-tuned won 75% of 4 (3 won · 1 lost · 0 tied) "
        "· swap-consistent 100%"
    )
    assert judge_text({"error": "judge endpoint refused"}) == "judge failed: judge endpoint refused"
    assert judge_text(None) is None


def write_test_file(path: Path) -> Path:
    """The review tests' four tickets as a chat JSONL test file."""
    lines = [
        json.dumps({"messages": [{"role": "user", "content": prompt},
                                 {"role": "assistant", "content": reference}]})
        for prompt, reference in zip(PROMPTS, REFERENCES, strict=True)
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


class FileSetBackend(SettingsBackend):
    """`start_eval` with a test file leaves its rows in the test set, as the engine does."""

    def start_eval(self, run_dir: Path, options: EvalOptions | None = None) -> int:
        if options is None or options.data is None:
            return super().start_eval(run_dir, options)
        self.eval_starts += 1
        self.eval_options.append(options)
        eval_set = prepare_test_set(run_dir, options.data)
        labels = [TICKET % (c, "x") for c in ("billing", "bug", "outage") * 4]
        ctx, index = scoring_context(REFERENCES, labels), TrainAnswerIndex([])
        for system, outputs in OUTPUTS.items():
            rows = [{"index": i, "line": i + 1, "system": system, "prompt": PROMPTS[i],
                     "messages": [{"role": "user", "content": PROMPTS[i]}],
                     "reference": REFERENCES[i], "output": output,
                     "metrics_version": METRICS_VERSION,
                     "metrics": score_output(output, REFERENCES[i], ctx, index)}
                    for i, output in enumerate(outputs)]  # fmt: skip
            append_jsonl(system_file(run_dir, system, eval_set.name), rows)
        extra = {"examples": 4, "eval_set": eval_set.to_json(4)}
        summary = build_summary(run_dir, list(OUTPUTS), ctx, {}, None, extra, eval_set.name)
        write_summary(run_dir, summary, eval_set.name)
        self.runs[run_dir].events += [
            {"type": "eval_started", "systems": list(OUTPUTS), "examples": 4,
             "eval_set": eval_set.name},
            {"type": "eval_done", "verdict": summary["verdict"]},
        ]  # fmt: skip
        return 1234


async def test_settings_choose_a_test_file_and_the_screen_shows_that_set(
    run_dir: Path, tmp_path: Path
) -> None:
    test_file = write_test_file(tmp_path / "tickets_test.jsonl")
    backend = FileSetBackend()
    async with evaluate_app(run_dir, backend).run_test(size=SIZE) as pilot:
        screen = await open_evaluate(pilot)
        status = screen.query_one("#eval-status", Static)
        assert str(status.render()).startswith("validation split: 4 of 4 examples")
        dialog = await open_settings(pilot)
        assert note(dialog, "data") == "blank: the run's validation split"
        await type_into(pilot, dialog, "data", str(tmp_path / "nowhere.jsonl"))
        assert note(dialog, "data") == "✗ no such file"
        await pilot.press("ctrl+o")  # the file browser fills the field
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, FileBrowserDialog), 10)
        pilot.app.screen.dismiss(test_file)
        await pilot.pause()
        assert dialog.query_one("#field-data", Input).value == str(test_file)
        assert note(dialog, "data") == "✓ scored instead of the validation split"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: backend.eval_starts == 1 and not screen.evaluating, 10)
        assert backend.eval_options == [EvalOptions(systems=ALL, data=str(test_file))]
        await wait_until(pilot, lambda: str(status.render()).startswith("test file"), 10)
        assert str(status.render()).startswith("test file tickets_test.jsonl: 4 of 4 examples")
        summary = str(screen.query_one("#eval-summary").render())
        assert "95% interval" in summary and "(test file tickets_test.jsonl, 4 examples)" in summary
        await pilot.press("g")  # a mark on the test set stays with the test set
        name = backend.chosen_eval_set(run_dir)
        assert name.startswith("test-tickets_test-")
        assert load_marks(run_dir, name)[0]["mark"] == "good" and not load_marks(run_dir)
        await open_settings(pilot)  # back to the validation split: its table again
        await type_into(pilot, pilot.app.screen, "data", "")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: str(status.render()).startswith("validation split"), 10)
        assert backend.eval_options[-1] == EvalOptions(systems=ALL)


async def test_settings_choose_the_primary_metric_and_name_the_datas_reason(
    run_dir: Path,
) -> None:
    from engine.data.formats import load_examples, write_chat_jsonl
    from engine.eval.primary import run_primary

    (run_dir / "data").mkdir(exist_ok=True)
    tickets = load_examples(REPO_ROOT / "sample_data" / "support_tickets.jsonl").examples
    write_chat_jsonl(tickets[:40], run_dir / "data" / "train.jsonl")
    backend = SettingsBackend()
    async with evaluate_app(run_dir, backend).run_test(size=SIZE) as pilot:
        await open_evaluate(pilot)
        dialog = await open_settings(pilot)
        field = dialog.query_one("#field-primary", Select)
        assert field.value == "auto"
        assert "category accuracy: 'category' takes one of 6 values" in note(dialog, "primary")
        offered = [value for _title, value in field._options]
        assert offered[:2] == ["auto", "label:category"] and "fields" in offered
        field.value = "fields"
        await pilot.pause()
        assert "stored with the run" in note(dialog, "primary")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: backend.eval_starts == 1, 10)
        assert backend.eval_options[-1].primary == "fields"
    run_primary(run_dir, "fields")  # what the evaluation process stores
    async with evaluate_app(run_dir, SettingsBackend()).run_test(size=SIZE) as pilot:
        await open_evaluate(pilot)
        dialog = await open_settings(pilot)
        field = dialog.query_one("#field-primary", Select)
        assert field.value == "fields"  # the user's stored choice
        field.value = "auto"
        await pilot.pause()
        assert dialog.options().primary == "auto"  # undoes it (the data decides again)
