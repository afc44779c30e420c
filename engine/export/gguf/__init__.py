"""GGUF files for llama.cpp and Ollama, written with the gguf package.

- `run`: the export step (merge in memory, write, read back, Modelfile);
- `writer`, `tensors`, `vocab`: the file, its tensors (names, permutation, quantisation),
  its tokenizer;
- `modelfile`: the Ollama Modelfile; `options`: the storage types.
"""

__all__ = ["modelfile", "options", "run", "tensors", "vocab", "writer"]
