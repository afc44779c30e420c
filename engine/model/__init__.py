"""Models: find them, convert them, load them, and what they are made of.

- `resolve`: a model name (embedded, local, hub id) -> a local model directory; listing;
- `convert`: a GGUF file -> a Hugging Face directory (the embedded default model);
- `load`: the device, the one NF4 quantisation config, the base model, the adapter;
- `shapes`: config.json arithmetic (parameters, layers) without loading weights;
- `tokenization`: chat templates, trained spans, token counts;
- `loss`: the loss over trained positions (chunked over large vocabularies), packing;
- `devices`: GPUs, their memory, and pinning a process to one.

Stands on engine.core only.
"""

__all__ = ["convert", "devices", "load", "loss", "resolve", "shapes", "tokenization"]
