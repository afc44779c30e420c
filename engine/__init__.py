"""tunedeck's engine: everything that is not UI.

Data formats, lint, split, config, model resolution, the training worker, the run store,
evaluation and export. This package never imports textual, rich or plotext, and its
modules import torch / transformers lazily (inside functions) so that the TUI can use
the light parts without paying for the training stack at start-up.
"""

__version__ = "0.1.0"

# bitsandbytes warns, on import, that it did not fetch an optional CPU kernel from the hub
# ("kernels-community ... trust_remote_code"), which reads like a security problem in a
# worker log. Transformers imports it early (the worker, evaluation, the playground), so
# the explanation is installed here, before any of them: a logging filter, nothing more.
from engine.model.devices import explain_bitsandbytes_hub_kernel as _explain  # noqa: E402

_explain()
