"""Clients that answer judge chats: an OpenAI-compatible endpoint, or a local model.

Both are `Completer`s: a batch of chats in, one text per chat out. The endpoint client
uses only the standard library (urllib), sends `concurrency` requests at once (servers
such as vLLM batch them), reads the API key from the environment variable the config
names, and retries on overload, server errors and timeouts.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from engine.eval.judge.config import Completer, JudgeConfig, JudgeError


def completions_url(url: str) -> str:
    """The chat-completions URL for a base URL given with or without `/v1`."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


def http_completer(config: JudgeConfig) -> Completer:
    """Chats answered by an OpenAI-compatible endpoint, `concurrency` requests at a time."""
    assert config.url is not None and config.model is not None
    url, model = completions_url(config.url), config.model
    key = os.environ.get(config.key_env, "")

    def one(messages: list[dict[str, str]]) -> str:
        body = {"model": model, "messages": messages, "temperature": 0.0}
        body["max_tokens"] = config.max_tokens
        return _post_chat(url, body, key, config)

    def batch(chats: list[list[dict[str, str]]]) -> list[str]:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=config.concurrency) as pool:
            return list(pool.map(one, chats))

    return batch


def _post_chat(url: str, body: dict[str, Any], key: str, config: JudgeConfig) -> str:
    """One request, retried on overload, server errors and timeouts (1 s, 2 s, 4 s...)."""
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode("utf-8")
    attempts = config.retries + 1
    for attempt in range(attempts):
        last = attempt == attempts - 1
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=config.timeout_s) as response:
                return _content(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            if exc.code in (429, 500, 502, 503, 504) and not last:
                time.sleep(1.0 * 2**attempt)
                continue
            raise _http_error(url, exc, config) from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            if not last:
                time.sleep(1.0 * 2**attempt)
                continue
            raise JudgeError(
                f"judge endpoint {url} is unreachable: {getattr(exc, 'reason', exc)}",
                hint="check --judge-url (e.g. http://127.0.0.1:8000/v1) and that the server runs",
            ) from exc
        except ValueError as exc:
            raise JudgeError(f"judge endpoint {url} did not answer JSON: {exc}") from exc
    raise AssertionError("unreachable: the last attempt returns or raises")


def _http_error(url: str, exc: Any, config: JudgeConfig) -> JudgeError:
    """A JudgeError for an HTTP error answer (`exc` is a urllib.error.HTTPError)."""
    detail = exc.read(500).decode("utf-8", "replace").strip()
    hints = {
        401: f"set the API key in ${config.key_env} (or --judge-key-env NAME)",
        403: f"the key in ${config.key_env} is not allowed to use {config.model!r}",
        404: "give the server's base URL, e.g. http://host:8000/v1, and a model it serves",
    }
    return JudgeError(
        f"judge endpoint {url} answered HTTP {exc.code}: {detail[:200]}",
        hint=hints.get(exc.code, "see the server's log"),
    )


def _content(response: Any) -> str:
    try:
        content = response["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise JudgeError(
            f"judge response has no choices[0].message.content: {str(response)[:200]}",
            hint="the endpoint must speak the OpenAI chat-completions protocol",
        ) from exc
    return content if isinstance(content, str) else ""


def local_completer(config: JudgeConfig, batch_size: int = 4) -> Completer:
    """Chats answered greedily by a local model, with the evaluation's generation code."""
    from engine.eval.generate import generate, load_eval_tokenizer, render
    from engine.model.generation import Sampling
    from engine.model.load import load_base_model

    assert config.local_model is not None
    tokenizer = load_eval_tokenizer(config.local_model)
    model, device = load_base_model(config.local_model, "lora", "auto")
    sampling = Sampling(max_new_tokens=config.max_tokens)

    def batch(chats: list[list[dict[str, str]]]) -> list[str]:
        texts = [render(tokenizer, chat) for chat in chats]
        out: list[str] = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            out += [g.text for g in generate(model, tokenizer, chunk, sampling, device)]
        return out

    return batch
