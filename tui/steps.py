"""The wizard's steps, in order. Adding a step is one line here (plus its screen).

Each step is an app mode whose base screen is the step's Screen; the step bar, the
next / previous step keys and the help screen all read this tuple.

Data -> Split -> Hyperparameters -> Baseline (the base model before training, or
skipped) -> Train -> Evaluate -> Export.
"""

from __future__ import annotations

from dataclasses import dataclass

from tui.screens.base import WizardScreen
from tui.screens.baseline import BaselineScreen
from tui.screens.data import DataScreen
from tui.screens.evaluate import EvaluateScreen
from tui.screens.export import ExportScreen
from tui.screens.hparams import HyperparamsScreen
from tui.screens.split import SplitScreen
from tui.screens.train import TrainScreen


@dataclass(frozen=True)
class Step:
    """One wizard step: its mode name, its title in the step bar, its screen."""

    mode: str
    title: str
    screen: type[WizardScreen]


STEPS: tuple[Step, ...] = (
    Step("data", "Data", DataScreen),
    Step("split", "Split", SplitScreen),
    Step("hparams", "Hyperparameters", HyperparamsScreen),
    Step("baseline", "Baseline", BaselineScreen),
    Step("train", "Train", TrainScreen),
    Step("evaluate", "Evaluate", EvaluateScreen),
    Step("export", "Export", ExportScreen),
)
