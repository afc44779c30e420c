"""An optional LLM judge of fine-tuned against base answers (both orders).

- `config`: `JudgeConfig`, the default rubric, `JudgeError`;
- `clients`: an OpenAI-compatible endpoint or a local model;
- `judging`: the verdicts, stored and summarised.
"""

__all__ = ["clients", "config", "judging"]
