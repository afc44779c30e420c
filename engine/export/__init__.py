"""Export: the result leaves the box.

- `exporter`: `export_run` (adapter, merged model or GGUF), the model card, the bundle;
- `merge`: the adapter merged into the base, stored in 16 bits (the base's own type, else float16);
- `gguf/`: the merged model or the adapter as GGUF files for llama.cpp and Ollama
  (`run`, `writer`, `tensors`, `vocab`, `modelfile`, `options`).

The top layer, with engine.playground.
"""

__all__ = ["exporter", "merge", "gguf"]
