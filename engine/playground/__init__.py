"""The playground: chat with the base and the fine-tuned model, streamed.

- `server`: the model process (`python -m engine.playground`), JSON lines on stdin/stdout;
- `chat_stream`: loading the chat model and streaming its tokens.

The top layer, with engine.export.
"""

__all__ = ["chat_stream", "server"]
