"""The playground's model process: chat with the base and the fine-tuned model, streamed.

`python -m engine.playground.server --run RUN_DIR` (or `--model NAME [--adapter DIR]`) loads the
base model once, with the run's adapter beside it when there is one (engine.playground.chat_stream),
then answers requests read line by line on stdin, writing JSON lines on stdout:

    stdin   {"type": "generate", "id": any, "side": "base" | "tuned", "system": str,
             "messages": [{"role", "content"}, ...], "settings": {"max_new_tokens",
             "temperature", "top_p", "seed"}}        ("type" may be left out)
            {"type": "cancel"}      end the answer being written, drop the queued ones
    stdout  {"type": "progress", "stage", "fraction"}     while the model loads
            {"type": "ready", "model", "device", "tuned", "context", "seconds"}
            {"type": "token", "id", "side", "text"}
            {"type": "done", "id", "side", "text", "tokens", "seconds", "finished",
             "cancelled", "dropped"}
            {"type": "error", "message", "hint"}  (+ "id", "side" about a request;
             + "fatal": true when the model could not be loaded: the process then exits)

Requests are answered one after the other in the order they came: on two CPU cores two
generations at once would each run at half speed. A bad request gets an error line and
the process goes on; the end of stdin ends it. No network (the hub is switched off before
transformers loads), no remote code, safetensors adapters only.

Importing this module is cheap (the TUI reads targets from it): torch and transformers
load in the child only.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, Any

from engine.core.errors import TunedeckError
from engine.core.layout import CONFIG_FILE, DATA_DIR, TRAIN_FILE
from engine.data.formats import Example
from engine.eval.plan import ADAPTER_DIR
from engine.model.generation import PLAYGROUND, Sampling
from engine.playground.chat_stream import Answer, ChatModel, ChatRequest, Side

SIDES: tuple[Side, ...] = ("base", "tuned")
SYSTEM_SAMPLE = 500
"""Examples read to find a dataset's usual system prompt."""


@dataclass(frozen=True)
class PlaygroundTarget:
    """What the playground loads: a base model as it was trained, maybe with an adapter."""

    model: str
    method: str = "lora"
    """"qlora" loads the base in NF4, as the adapter was trained on it."""
    bf16: str = "auto"
    adapter: Path | None = None
    """A PEFT adapter directory with safetensors weights (None: base model only)."""
    run_dir: Path | None = None
    system: str = ""
    """The usual system prompt of the run's (or the dataset's) examples, "" if none."""

    def argv(self) -> list[str]:
        """The command line of the playground process for this target."""
        command = [sys.executable, "-m", "engine.playground"]
        if self.run_dir is not None:
            return command + ["--run", str(self.run_dir)]
        command += ["--model", self.model, "--method", self.method, "--bf16", self.bf16]
        return command + (["--adapter", str(self.adapter)] if self.adapter else [])


def has_safe_adapter(path: Path) -> bool:
    """A PEFT adapter directory whose weights are safetensors (never a pickle)."""
    return (path / "adapter_config.json").is_file() and (
        path / "adapter_model.safetensors"
    ).is_file()


def default_system_prompt(examples: Iterable[Example]) -> str:
    """The most common system prompt of the first SYSTEM_SAMPLE examples ("" if none)."""
    counts: Counter[str] = Counter()
    for index, example in enumerate(examples):
        if index >= SYSTEM_SAMPLE:
            break
        system = next((m.content for m in example.messages if m.role == "system"), "")
        if system:
            counts[system] += 1
    return counts.most_common(1)[0][0] if counts else ""


def _run_examples(run_dir: Path) -> Iterable[Example]:
    from engine.data.formats import iter_records

    path = run_dir / DATA_DIR / TRAIN_FILE
    if not path.is_file() or path.stat().st_size == 0:
        return
    for record in iter_records(path):
        if record.example is not None:
            yield record.example


def target_for_run(run_dir: Path) -> PlaygroundTarget:
    """The run's base model, training method, adapter (if saved yet) and system prompt.

    Raises:
        ConfigError: the run's config.toml is missing or unreadable.
    """
    from engine.config.build import load_config

    cfg = load_config(run_dir / CONFIG_FILE)
    adapter = run_dir / ADAPTER_DIR
    return PlaygroundTarget(
        model=cfg.model,
        method=cfg.method,
        bf16=cfg.bf16,
        adapter=adapter if has_safe_adapter(adapter) else None,
        run_dir=run_dir,
        system=default_system_prompt(_run_examples(run_dir)),
    )


# ---------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------


def _settings(data: Any) -> Sampling:
    if not isinstance(data, dict):
        raise TunedeckError("settings must be a JSON object")
    known = [f.name for f in fields(Sampling)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise TunedeckError(
            f"unknown setting(s): {', '.join(unknown)}", hint=f"known: {', '.join(known)}"
        )
    seed = data.get("seed")
    try:
        return Sampling(
            max_new_tokens=int(data.get("max_new_tokens", PLAYGROUND.max_new_tokens)),
            temperature=float(data.get("temperature", PLAYGROUND.temperature)),
            top_p=float(data.get("top_p", PLAYGROUND.top_p)),
            seed=None if seed is None else int(seed),
        )
    except (TypeError, ValueError) as exc:
        raise TunedeckError(f"a setting is not a number: {exc}") from exc


def parse_request(data: Any) -> ChatRequest:
    """A generate request from its JSON form.

    Raises:
        TunedeckError: a field is missing or wrong; the message says which.
    """
    if not isinstance(data, dict):
        raise TunedeckError("a request must be a JSON object")
    side = data.get("side")
    if side not in SIDES:
        raise TunedeckError(f"side must be one of {', '.join(SIDES)}, not {side!r}")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise TunedeckError("messages must be a non-empty list of {role, content} objects")
    turns = []
    for message in messages:
        if not (
            isinstance(message, dict)
            and message.get("role") in ("user", "assistant")
            and isinstance(message.get("content"), str)
        ):
            raise TunedeckError(
                f"not a chat message: {json.dumps(message)[:80]}",
                hint='each message is {"role": "user" | "assistant", "content": "..."}',
            )
        turns.append({"role": message["role"], "content": message["content"]})
    if turns[-1]["role"] != "user":
        raise TunedeckError("the last message must be the user's")
    system = data.get("system") or ""
    if not isinstance(system, str):
        raise TunedeckError("system must be a string")
    settings = _settings(data.get("settings") or {})
    return ChatRequest(data.get("id"), side, system, tuple(turns), settings)


# ---------------------------------------------------------------------------
# The process
# ---------------------------------------------------------------------------


class Server:
    """Reads requests on one thread, answers them in order on another, writes JSON lines.

    Cancelling is by sequence number: every request gets the next one as it arrives, and
    a cancel marks every request up to the newest as cancelled. No flag is ever reset,
    so a cancel cannot be lost to a request that starts at the same moment.
    """

    def __init__(self, out: IO[str]) -> None:
        self.chat: ChatModel | None = None
        self._out = out
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[int, ChatRequest] | None] = queue.Queue()
        self._received = 0
        self._cancelled_upto = 0

    def emit(self, type_: str, **fields: Any) -> None:
        """Write one event line (from either thread)."""
        line = json.dumps({"type": type_, **fields}, ensure_ascii=False)
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    def read_requests(self, lines: Iterable[str]) -> None:
        """Queue the requests of `lines` (stdin) until it ends, then end the server."""
        try:
            for line in lines:
                if line.strip():
                    self.handle(line)
        finally:
            self._queue.put(None)

    def handle(self, line: str) -> None:
        """Queue one request line, act on a cancel, or answer a bad line with an error."""
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            self.emit("error", message=f"a request is not JSON: {exc}", hint="")
            return
        if isinstance(data, dict) and data.get("type") == "cancel":
            self._cancelled_upto = self._received
            return
        ids = {"id": data.get("id")} if isinstance(data, dict) else {}
        try:
            if isinstance(data, dict) and data.get("type", "generate") != "generate":
                raise TunedeckError(f"unknown request type {data.get('type')!r}")
            request = parse_request(data)
            if request.side == "tuned" and self.chat is not None and not self.chat.has_adapter:
                raise TunedeckError(
                    "there is no fine-tuned adapter to answer with",
                    hint="the run saves one at its first validation step",
                )
        except TunedeckError as exc:
            self.emit("error", message=exc.message, hint=exc.hint, **ids)
            return
        self._received += 1
        self._queue.put((self._received, request))

    def serve(self) -> None:
        """Answer queued requests in order until the input ends."""
        while (item := self._queue.get()) is not None:
            self.answer(*item)

    def answer(self, number: int, request: ChatRequest) -> None:
        """Stream one answer, then its `done` line (or an `error` line)."""
        from engine.playground.chat_stream import generate_streamed

        assert self.chat is not None, "serve() starts once the model is loaded"
        about = {"id": request.id, "side": request.side}
        if number <= self._cancelled_upto:  # cancelled while it waited in the queue
            self._done(Answer("", 0, 0.0, finished=False, cancelled=True, dropped=0), about)
            return
        try:
            answer = generate_streamed(
                self.chat,
                request,
                should_stop=lambda: number <= self._cancelled_upto,
                on_text=lambda text: self.emit("token", text=text, **about),
            )
        except TunedeckError as exc:
            self.emit("error", message=exc.message, hint=exc.hint, **about)
        except Exception as exc:  # one failed answer must not end the playground
            self.emit(
                "error",
                message=f"generation failed: {type(exc).__name__}: {exc}",
                hint="try other settings or a shorter conversation",
                **about,
            )
        else:
            self._done(answer, about)

    def _done(self, answer: Answer, about: dict[str, Any]) -> None:
        self.emit(
            "done",
            text=answer.text,
            tokens=answer.tokens,
            seconds=round(answer.seconds, 3),
            finished=answer.finished,
            cancelled=answer.cancelled,
            dropped=answer.dropped,
            **about,
        )


def _private_stdout() -> IO[str]:
    """Our own copy of stdout for event lines; fd 1 then points at stderr.

    Libraries print to stdout now and then (warnings, progress bars): any such line would
    break the JSON protocol, so everything but our events goes to stderr.
    """
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    return out


def _target_from_args(args: argparse.Namespace) -> PlaygroundTarget:
    if args.run:
        return target_for_run(Path(args.run).resolve())
    adapter = Path(args.adapter) if args.adapter else None
    if adapter is not None and not has_safe_adapter(adapter):
        raise TunedeckError(
            f"{adapter} is not an adapter directory with safetensors weights",
            hint="it needs adapter_config.json and adapter_model.safetensors",
        )
    return PlaygroundTarget(args.model, args.method, args.bf16, adapter)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the playground process (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m engine.playground.server")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", metavar="RUN_DIR", help="a run: its model and adapter")
    which.add_argument("--model", help="a model name, directory or .gguf file")
    parser.add_argument("--method", choices=("lora", "qlora"), default="lora")
    parser.add_argument("--bf16", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--adapter", metavar="DIR", help="a PEFT adapter for the tuned side")
    args = parser.parse_args(argv)
    # No HF_HUB_OFFLINE here: a hub model not yet cached downloads once where there is a
    # network (engine.model.resolve); a cached one, or a local directory, never asks the hub.
    server = Server(_private_stdout())
    started = time.monotonic()
    try:
        from engine.playground.chat_stream import load_chat_model

        target = _target_from_args(args)
        server.chat = load_chat_model(
            target.model,
            target.method,
            target.bf16,
            target.adapter,
            lambda stage, fraction: server.emit("progress", stage=stage, fraction=fraction),
        )
    except TunedeckError as exc:
        server.emit("error", message=exc.message, hint=exc.hint, fatal=True)
        return 1
    except Exception as exc:
        message = f"could not start the playground: {type(exc).__name__}: {exc}"
        server.emit("error", message=message, hint="see the log", fatal=True)
        return 1
    chat = server.chat
    server.emit(
        "ready",
        model=target.model,
        device=chat.device,
        tuned=chat.has_adapter,
        context=chat.context,
        seconds=round(time.monotonic() - started, 2),
    )
    reader = threading.Thread(
        target=server.read_requests, args=(sys.stdin,), name="requests", daemon=True
    )
    reader.start()
    server.serve()
    return 0
