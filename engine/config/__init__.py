"""The run configuration and the choices made for it.

- `schema`, `fields`: the `TrainConfig` dataclasses and their validated fields;
- `build`: build, override, save and load a config (commented TOML); presets;
- `advice`: the rules (learning rate for the model's width, batch for the data, epochs for
  enough steps) and the warnings;
- `recipe`: the data- and model-aware defaults, each with its reason;
- `estimate`: memory, time and warnings for a config on this machine;
- `estimate_report`: the token figures (counted or guessed) and the estimate's lines as the
  wizard shows them.

Stands on engine.data, engine.model and engine.core.
"""

__all__ = ["advice", "build", "estimate", "estimate_report", "fields", "recipe", "schema"]
