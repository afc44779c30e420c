"""tunedeck's engine: everything that is not UI.

Data formats, lint, split, config, model resolution, the training worker, the run store,
evaluation and export. This package never imports textual, rich or plotext, and its
modules import torch / transformers lazily (inside functions) so that the TUI can use
the light parts without paying for the training stack at start-up.
"""

__version__ = "0.1.0"
