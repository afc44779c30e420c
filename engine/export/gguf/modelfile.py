"""The Ollama `Modelfile` written beside a GGUF export.

Ollama does not run the Jinja chat template a GGUF carries; it needs a Go template of the
same format and the tokens that end a turn, or answers run on or come out garbled. The
format is recognised from the model's chat template:

- ChatML (`<|im_start|>`: SmolLM2, Qwen2/2.5), stops `<|im_start|>`, `<|im_end|>`;
- Llama 3 headers (`<|start_header_id|>`), stops `<|start_header_id|>`,
  `<|end_header_id|>`, `<|eot_id|>`;
- Mistral `[INST]`, stops `[INST]`, `[/INST]`.

SYSTEM is the training data's system prompt when every example had the same one; when
none had one and the chat template adds a default (SmolLM2's "You are a helpful AI
assistant named SmolLM..."), that default, so the model is prompted as it was trained.
`num_ctx` is the run's max_seq_len: the context the model was fine-tuned at.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ChatFormat:
    """An Ollama template and its stop tokens for one chat format."""

    name: str
    marker: str
    """Text in the Jinja chat template that identifies the format."""
    template: str
    stops: tuple[str, ...]
    default_system: str
    """Regex for the system block the Jinja template renders (group 1: its text)."""


CHATML = ChatFormat(
    "chatml",
    "<|im_start|>",
    "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n",
    ("<|im_start|>", "<|im_end|>"),
    r"<\|im_start\|>system\n(.*?)<\|im_end\|>",
)
LLAMA3 = ChatFormat(
    "llama3",
    "<|start_header_id|>",
    "{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>"
    "{{ end }}{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
    "{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n",
    ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
    r"<\|start_header_id\|>system<\|end_header_id\|>\n\n(.*?)<\|eot_id\|>",
)
MISTRAL = ChatFormat(
    "mistral",
    "[INST]",
    '{{- range $index, $_ := .Messages }}{{- if eq .Role "user" }}[INST] '
    "{{ if and (eq (len (slice $.Messages $index)) 1) $.System }}{{ $.System }}\n\n{{ end }}"
    '{{ .Content }}[/INST]{{- else if eq .Role "assistant" }} {{ .Content }}</s>'
    "{{- end }}{{- end }}",
    ("[INST]", "[/INST]"),
    r"(?!)(.)",  # never matches: Mistral's templates add no default system prompt
)
FORMATS = (LLAMA3, CHATML, MISTRAL)


def chat_format(chat_template: str | None) -> ChatFormat | None:
    """The format a Jinja chat template writes, or None when it is none of the three."""
    for fmt in FORMATS:
        if chat_template and fmt.marker in chat_template:
            return fmt
    return None


def data_system_prompts(train_jsonl: Path) -> set[str]:
    """The distinct system prompts of the training examples ('' for an example without)."""
    prompts: set[str] = set()
    if not train_jsonl.is_file():
        return prompts
    with open(train_jsonl, encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            messages = json.loads(line).get("messages", [])
            first = messages[0] if messages else {}
            prompts.add(first.get("content", "") if first.get("role") == "system" else "")
    return prompts


def default_system(fmt: ChatFormat, rendered_without_system: str) -> str | None:
    """The system prompt the chat template adds when a chat has none (None if it adds none)."""
    found = re.search(fmt.default_system, rendered_without_system, flags=re.DOTALL)
    return found.group(1) if found else None


def render_modelfile(
    gguf_name: str,
    fmt: ChatFormat | None,
    system: str | None,
    num_ctx: int,
    adapter: str | None = None,
    note: str | None = None,
) -> str:
    """The Modelfile text: FROM (and ADAPTER), TEMPLATE, stops, SYSTEM, num_ctx."""
    lines = ["# Ollama: ollama create NAME -f Modelfile, then ollama run NAME",
             f"FROM {gguf_name}"]  # fmt: skip
    if adapter:
        lines.append(f"ADAPTER {adapter}")
    if fmt is None:
        lines.append("# chat format not recognised: Ollama uses the template the GGUF carries")
    else:
        lines.append(f"TEMPLATE {_quoted(fmt.template)}")
        lines += [f'PARAMETER stop "{stop}"' for stop in fmt.stops]
    if system:
        lines.append(f"SYSTEM {_quoted(system)}")
    if note:
        lines.append(f"# {note}")
    lines.append(f"PARAMETER num_ctx {num_ctx}")
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    """Triple quotes keep newlines as they are; text holding them goes JSON-escaped."""
    return f'"""{text}"""' if '"""' not in text and not text.endswith('"') else json.dumps(text)
