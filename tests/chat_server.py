"""A tiny OpenAI-compatible chat-completions server on loopback, for judge tests.

A real HTTP server (threaded `http.server`) that speaks `POST /v1/chat/completions`, so
the judge client is tested over real sockets, not mocked. Its "model" reads the two
answers out of the judge prompt and decides deterministically:

- `prefer_json`: the answer that is a valid JSON object wins; if both or neither are,
  the shorter one; equal lengths tie. Consistent under position swaps.
- `always_a`: always answers A: a judge with pure position bias.
- `mt_bench`: like prefer_json, but in MT-Bench's `[[A]]` / `[[B]]` / `[[C]]` format.
- `garbage`: answers without any verdict.
- `error`: HTTP 500 to every request.

`require_key` makes it answer 401 unless the request carries `Authorization: Bearer KEY`.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ANSWER = {
    side: re.compile(rf"\[Answer {side}\]\n(.*?)\n\[End of Answer {side}\]", re.DOTALL)
    for side in ("A", "B")
}


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def prefer_json(a: str, b: str) -> str:
    """The fake judge's taste: valid JSON first, then brevity; "TIE" when nothing differs."""
    a_json, b_json = _is_json_object(a), _is_json_object(b)
    if a_json != b_json:
        return "A" if a_json else "B"
    if len(a) != len(b):
        return "A" if len(a) < len(b) else "B"
    return "TIE"


class ChatServer:
    """Start with `start()`, point the judge at `url`, read `requests` afterwards."""

    def __init__(self, mode: str = "prefer_json", require_key: str | None = None) -> None:
        self.mode = mode
        self.require_key = require_key
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> ChatServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def reply(self, messages: list[dict[str, str]]) -> str:
        """What the fake judge model says to one judge prompt."""
        prompt = messages[-1]["content"]
        found = [_ANSWER[side].search(prompt) for side in ("A", "B")]
        if self.mode == "garbage" or not all(found):
            return "Both answers have merits; hard to say."
        a, b = (m.group(1) for m in found if m is not None)
        if self.mode == "always_a":
            return "VERDICT: A\nAnswer A is better."
        verdict = prefer_json(a, b)
        reason = "valid JSON wins, then the shorter answer"
        if self.mode == "mt_bench":
            return f"{reason}. Final verdict: [[{'C' if verdict == 'TIE' else verdict}]]"
        return f"**VERDICT: {verdict}**\n{reason}."

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests read `requests`, not a log."""

            def do_POST(self) -> None:
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                if server.mode == "error":
                    self._send(500, {"error": {"message": "internal error"}})
                    return
                expected = f"Bearer {server.require_key}"
                if server.require_key and self.headers.get("Authorization") != expected:
                    self._send(401, {"error": {"message": "invalid api key"}})
                    return
                content = server.reply(body["messages"])
                self._send(200, _completion(body.get("model", ""), content))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _completion(model: str, content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }
