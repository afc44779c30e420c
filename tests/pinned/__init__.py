"""Pinned behaviour: exact outputs of the engine on fixed inputs, kept across refactors.

These tests pin what the engine computes today, before `engine/` is split into
subpackages (issue 15): the per-step losses of a seeded tiny training run
(test_pinned_losses.py) and the outputs of lint, split and evaluation scoring on fixed
files and answers (test_pinned_outputs.py). Moving code must leave every value here
unchanged; only import paths may follow the move.

If a value changes, the change must be intentional and explained in the commit that
updates it (what changed in behaviour, and why the new number is right). Never update a
pinned value just to make the test pass.
"""
