"""The wizard's steps, in order. Adding a step is one line here (plus its screen).

Each step is an app mode whose base screen is the step's Screen; the step bar, the
next / previous step keys and the help screen all read this tuple.

Still to come, from the evaluation and export work:
    Step("baseline", "Baseline", BaselineScreen)  -> between "hparams" and "train"
    Step("export", "Export", ExportScreen)        -> after "evaluate"
"""

from __future__ import annotations

from dataclasses import dataclass

from tui.screens.base import WizardScreen
from tui.screens.data import DataScreen
from tui.screens.evaluate import EvaluateScreen
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
    Step("train", "Train", TrainScreen),
    Step("evaluate", "Evaluate", EvaluateScreen),
)
