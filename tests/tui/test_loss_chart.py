"""The loss chart at scale: every point kept, a few drawn per column; history fed by batch."""

from __future__ import annotations

import math
import random

from textual.app import App, ComposeResult

from tests.tui.conftest import train_event, wait_until
from tui.run_history import RunHistory
from tui.widgets.loss_chart import DOTS_PER_CELL, LossChart, min_max_downsample


def noisy_curve(n: int, seed: int = 0) -> list[tuple[int, float]]:
    rng = random.Random(seed)
    return [(step, 2 * math.exp(-step / 3000) + rng.random() * 0.1) for step in range(1, n + 1)]


def test_short_series_are_drawn_whole() -> None:
    points = noisy_curve(100)
    assert min_max_downsample(points, 50) == points
    assert min_max_downsample(points, 200) == points


def test_downsampling_keeps_ends_extremes_and_step_order() -> None:
    points = noisy_curve(25_000)
    points[12_345] = (12_346, 9.5)  # a spike must survive
    points[20_000] = (20_001, -1.0)
    kept = min_max_downsample(points, 120)
    assert len(kept) <= 2 * 120 + 2
    assert kept[0] == points[0] and kept[-1] == points[-1]
    assert (12_346, 9.5) in kept and (20_001, -1.0) in kept
    assert [s for s, _ in kept] == sorted({s for s, _ in kept})  # step order, no repeats
    assert set(kept) <= set(points)


def test_each_column_keeps_its_lowest_and_highest_point() -> None:
    # A sawtooth: every run of 10 points goes from 0 up to 9.
    points = [(step, float(step % 10)) for step in range(1000)]
    kept = min_max_downsample(points, 100)
    assert [loss for _, loss in kept] == [0.0, 9.0] * 100


class ChartApp(App[None]):
    def compose(self) -> ComposeResult:
        yield LossChart(id="chart")


async def test_the_chart_holds_every_point_and_draws_a_few_per_column() -> None:
    train, val = noisy_curve(30_000), noisy_curve(30_000)[49::50]
    app = ChartApp()
    async with app.run_test(size=(100, 32)) as pilot:
        chart = app.query_one(LossChart)
        chart.set_series(train, val, val[3])
        await wait_until(pilot, lambda: chart.drawn != (0, 0))
        assert chart.train == train and chart.val == val  # nothing lost
        limit = 2 * chart.size.width * DOTS_PER_CELL + 2
        assert 0 < chart.drawn[0] <= limit and 0 < chart.drawn[1] <= limit


def test_history_fed_in_batches_equals_one_replay() -> None:
    events = [train_event(step, 3 - step / 100) for step in range(1, 200)]
    events[150:150] = [{"type": "resume", "from_step": 120}]
    events += [{"type": "metric", "split": "val", "step": s, "loss": 1.0} for s in (50, 100)]
    events.append(train_event(200, 0.0) | {"loss": "nan"})  # not a number: not on the curve
    whole = RunHistory()
    whole.ingest(events)
    batched = RunHistory()
    for start in range(0, len(events), 7):
        before = batched.train
        batched.ingest(events[start : start + 7])
        assert batched.train is not before  # a new list per batch: reactives see a change
    for history in (whole, batched):
        steps = [s for s, _ in history.train]
        assert steps == list(range(1, 121)) + list(range(151, 200))
    assert (batched.train, batched.val, batched.lr) == (whole.train, whole.val, whole.lr)
    assert batched.latest is whole.latest and batched.latest["step"] == 199
