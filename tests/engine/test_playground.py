"""The playground process on the tiny model: streamed answers from the base and the
fine-tuned side, cancel, bad requests, long conversations, and what it loads for a run."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.core.errors import TunedeckError
from engine.core.events import RunStatus, write_status
from engine.model.generation import Sampling
from engine.playground.server import PlaygroundTarget, parse_request, target_for_run
from engine.runs.store import create_run
from tests.conftest import REPO_ROOT
from tests.integration.test_training import SAMPLE, tiny_config

EVENT_TIMEOUT_S = 120.0
SYSTEM = "You are the support assistant. Classify the ticket into one category."
"""Not the sample data's: the tiny tokenizer keeps it short, and the tests send it."""


def make_adapter_run(model_dir: Path, root: Path, adapter: bool = True) -> Path:
    """A completed run of the tiny model (no training) with a random LoRA adapter.

    The adapter's B matrices are random (`init_lora_weights=False`), so unlike a freshly
    initialised adapter it changes what the model says: enough to tell the sides apart.
    """
    data = root / "tickets.jsonl"
    data.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:40]))
    run_dir = create_run(tiny_config(model_dir, data))
    write_status(run_dir, RunStatus(state="completed"))
    if adapter:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        torch.manual_seed(1)
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        lora = LoraConfig(
            r=8,
            lora_alpha=16,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"],
            init_lora_weights=False,
        )
        get_peft_model(model, lora).save_pretrained(run_dir / "adapter")
    return run_dir


class Child:
    """The playground process, its event lines read by a thread into a queue."""

    def __init__(self, argv: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "engine.playground", *argv],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.events.put(json.loads(line))  # every stdout line must be JSON
        self.events.put(None)

    def send(self, request: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()

    def next(self) -> dict[str, Any]:
        event = self.events.get(timeout=EVENT_TIMEOUT_S)
        assert event is not None, "the playground process ended"
        return event

    def until(self, kind: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Events before the first of type `kind`, and that one."""
        before = []
        while (event := self.next())["type"] != kind:
            before.append(event)
        return before, event

    def answer(self, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Send a request; its streamed text and its `done` line."""
        self.send(request)
        tokens, done = self.until("done")
        assert all(t["type"] == "token" and t["id"] == request["id"] for t in tokens), tokens
        return "".join(t["text"] for t in tokens), done

    def close(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()  # end of input ends the process
        return self.process.wait(timeout=EVENT_TIMEOUT_S)


def ask(id_: Any, side: str, text: str, **settings: Any) -> dict[str, Any]:
    settings = {"max_new_tokens": 16, **settings}
    messages = [{"role": "user", "content": text}]
    return {"id": id_, "side": side, "system": SYSTEM, "messages": messages, "settings": settings}


@pytest.fixture(scope="module")
def adapter_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNEDECK_HOME", str(tmp_path_factory.mktemp("home")))
        return make_adapter_run(tiny_model_dir, tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def child(adapter_run: Path) -> Iterator[Child]:
    """One playground process on the run for the module's tests (loading costs seconds)."""
    process = Child(["--run", str(adapter_run)])
    _, ready = process.until("ready")
    assert ready["tuned"] is True and ready["device"] == "cpu" and ready["context"] == 512
    yield process
    assert process.close() == 0


# -- requests and targets (no model) ----------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"side": "left", "messages": [{"role": "user", "content": "hi"}]}, "side must be"),
        ({"side": "base", "messages": []}, "non-empty list"),
        ({"side": "base", "messages": [{"role": "system", "content": "x"}]}, "not a chat"),
        ({"side": "base", "messages": [{"role": "assistant", "content": "x"}]}, "the user's"),
        (ask(1, "base", "hi", max_new_tokens=0), "between 1 and 32768"),
        (ask(1, "base", "hi", top_p=1.5), "top_p"),
        (ask(1, "base", "hi", temperature="warm"), "not a number"),
        (ask(1, "base", "hi", beams=4), "unknown setting"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(request_: dict[str, Any], message: str) -> None:
    with pytest.raises(TunedeckError, match=message):
        parse_request(request_)


def test_settings_read_as_a_line() -> None:
    assert Sampling().describe() == "max 256 tokens · greedy"
    assert Sampling(64, 0.7, 0.9, seed=3).describe() == (
        "max 64 tokens · temperature 0.7 · top_p 0.9 · seed 3"
    )


def test_a_runs_target_is_its_model_adapter_and_usual_system_prompt(
    adapter_run: Path, tiny_model_dir: Path
) -> None:
    target = target_for_run(adapter_run)
    assert target.model == str(tiny_model_dir) and target.method == "lora"
    assert target.adapter == adapter_run / "adapter"
    assert target.system.startswith("You are the support assistant for Northwind Cloud.")
    assert target.argv()[-2:] == ["--run", str(adapter_run)]


def test_a_pickled_adapter_is_never_loaded(tiny_model_dir: Path, tmp_path: Path) -> None:
    run_dir = make_adapter_run(tiny_model_dir, tmp_path, adapter=False)
    (run_dir / "adapter").mkdir()
    (run_dir / "adapter" / "adapter_config.json").write_text("{}")
    (run_dir / "adapter" / "adapter_model.bin").write_bytes(b"pickle")
    assert target_for_run(run_dir).adapter is None


# -- the process -----------------------------------------------------------------------


def test_streamed_answers_are_the_plain_greedy_generation_of_each_side(
    child: Child, tiny_model_dir: Path, adapter_run: Path
) -> None:
    from engine.eval.generate import generate, render
    from engine.model.generation import Sampling
    from engine.model.load import attach_adapter, load_base_model
    from engine.model.resolve import load_tokenizer

    prompt = "My invoice is wrong and I was charged twice."
    streamed = {side: child.answer(ask(side, side, prompt, max_new_tokens=24)) for side in
                ("base", "tuned")}  # fmt: skip

    tokenizer = load_tokenizer(str(tiny_model_dir))
    model, _ = load_base_model(str(tiny_model_dir), "lora", "auto")
    model = attach_adapter(model, adapter_run / "adapter", "tuned")
    text = render(tokenizer, [{"role": "system", "content": SYSTEM}, {"role": "user",
                  "content": prompt}])  # fmt: skip
    with model.disable_adapter():
        base = generate(model, tokenizer, [text], Sampling(24), "cpu")[0]
    tuned = generate(model, tokenizer, [text], Sampling(24), "cpu")[0]

    for side, reference in (("base", base), ("tuned", tuned)):
        stream, done = streamed[side]
        assert stream.strip() == reference.text and done["text"] == stream
        assert done["tokens"] == reference.output_tokens and done["finished"] is False
        assert done["side"] == side and not done["cancelled"] and done["dropped"] == 0
    assert streamed["base"][0] != streamed["tuned"][0]  # the adapter changes the answer


def test_cancel_ends_the_answer_and_drops_the_queued_ones(child: Child) -> None:
    child.send(ask("long", "tuned", "hello", max_new_tokens=400))
    child.send(ask("queued", "base", "hello", max_new_tokens=400))
    first = child.next()
    assert first["type"] == "token" and first["id"] == "long"
    child.send({"type": "cancel"})
    _, done = child.until("done")
    assert done["id"] == "long" and done["cancelled"] is True and done["tokens"] < 400
    _, dropped = child.until("done")
    assert dropped["id"] == "queued" and dropped["cancelled"] and dropped["tokens"] == 0
    _, after = child.answer(ask("after", "base", "hello", max_new_tokens=4))
    assert after["cancelled"] is False and after["tokens"] == 4  # a cancel is not sticky


def test_a_bad_request_gets_an_error_line_and_the_process_goes_on(child: Child) -> None:
    assert child.process.stdin is not None
    child.process.stdin.write("this is not json\n")
    child.send({"id": 7, "side": "tuned", "messages": "hi"})
    child.send({"id": 8, "type": "explode"})
    errors = [child.next() for _ in range(3)]
    assert [e["type"] for e in errors] == ["error"] * 3
    assert "not JSON" in errors[0]["message"] and errors[1]["id"] == 7
    assert "unknown request type" in errors[2]["message"]
    _, done = child.answer(ask(9, "tuned", "still there?", max_new_tokens=3))
    assert done["tokens"] == 3


def test_a_long_conversation_leaves_out_its_oldest_turns(child: Child) -> None:
    line = "My invoice is wrong and I was charged twice this month, please help. "
    turns = []
    for n in range(4):
        turns += [
            {"role": "user", "content": f"{n} {line}"},
            {"role": "assistant", "content": "ok"},
        ]
    request = ask("long-chat", "base", "", max_new_tokens=440)
    request["messages"] = turns + [{"role": "user", "content": "and now?"}]
    child.send(request)
    assert child.next()["type"] == "token"
    child.send({"type": "cancel"})  # 440 tokens would take a while; the count is known
    _, done = child.until("done")
    assert done["dropped"] >= 2 and done["dropped"] % 2 == 0
    too_long = ask("too-long", "base", line * 20, max_new_tokens=440)
    child.send(too_long)
    _, error = child.until("error")
    assert error["id"] == "too-long" and "does not fit" in error["message"] and error["hint"]


def test_a_base_model_alone_answers_only_as_the_base(tiny_model_dir: Path) -> None:
    process = Child(PlaygroundTarget(str(tiny_model_dir)).argv()[3:])
    _, ready = process.until("ready")
    assert ready["tuned"] is False
    process.send(ask(1, "tuned", "hi"))
    _, error = process.until("error")
    assert error["id"] == 1 and "no fine-tuned adapter" in error["message"]
    _, done = process.answer(ask(2, "base", "hi", max_new_tokens=2))
    assert done["tokens"] == 2
    assert process.close() == 0


def test_a_model_that_does_not_load_is_a_fatal_error_line(tmp_path: Path) -> None:
    process = Child(["--model", str(tmp_path / "missing")])
    _, error = process.until("error")
    assert error["fatal"] is True and "unknown model" in error["message"] and error["hint"]
    assert process.process.wait(timeout=EVENT_TIMEOUT_S) == 1


def test_one_settings_type_and_one_validator_for_every_caller() -> None:
    """The playground, evaluation and the judge share engine.model.generation.Sampling; its
    one validator names the setting that is wrong (the TUI marks that field)."""
    from engine.core.errors import TunedeckError
    from engine.eval.options import EvalOptions
    from engine.model.generation import Sampling

    for bad, field in (({"temperature": 9.0}, "temperature"), ({"top_p": 0.0}, "top_p")):
        with pytest.raises(TunedeckError) as direct:
            Sampling(**bad)
        with pytest.raises(TunedeckError) as via_eval:
            EvalOptions(**bad)
        assert direct.value.field == via_eval.value.field == field
        assert direct.value.message == via_eval.value.message
