"""Pilot tests of step 3, Hyperparameters: every field, validation, estimate, TOML."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from textual.widgets import Input, Select, Static

from engine.config.build import TrainConfig, field_help, load_config
from engine.data.lint.findings import finding
from engine.data.sources import ALL_ROWS
from tests.tui.conftest import SIZE, FakeBackend, settle, wait_until
from tui.dialogs.file_browser import FileBrowserDialog
from tui.dialogs.prompt import PromptDialog
from tui.screens.hparams import HyperparamsScreen
from tui.widgets.config_form import SECTIONS, ConfigForm, all_field_names, parse_field


async def open_hparams(app, pilot) -> HyperparamsScreen:
    await settle(pilot)
    await pilot.press("ctrl+n")
    await settle(pilot)
    await pilot.press("ctrl+n")
    await settle(pilot)
    assert isinstance(app.screen, HyperparamsScreen)
    return app.screen


async def edit(pilot, screen, name: str, value: str) -> None:
    widget = screen.query_one(ConfigForm).widgets[name]
    assert isinstance(widget, Input)
    widget.value = value
    await settle(pilot)


def side(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def test_every_config_field_has_a_place_in_the_wizard() -> None:
    in_form = [name for _, names in SECTIONS for name in names]
    elsewhere = {"model", "method"} | {n for n in all_field_names() if n.startswith("data.")}
    assert len(in_form) == len(set(in_form))
    assert set(in_form) | elsewhere == set(all_field_names(TrainConfig))
    assert not set(in_form) & elsewhere


async def test_fields_show_values_and_explanations_and_intervals_follow_the_data(
    make_app,
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hparams(app, pilot)
        form = screen.query_one(ConfigForm)
        helps = [str(s.render()) for s in form.query(".form-help")]
        assert helps[0] == field_help(TrainConfig, "epochs")
        assert field_help(TrainConfig, "lora.r") in helps
        # 124 training examples: the recipe's batch of 4 over 3 epochs gives 93 steps, a
        # 135M model's LoRA rate, 6 validation points (8 would take over 12 % of the run by
        # the estimate, with 14 validation examples), and one checkpoint at the end of a run
        # the estimate puts at a few minutes
        cfg = app.wizard.config
        assert (cfg.learning_rate, cfg.effective_batch_size, cfg.epochs) == (1.3e-3, 4, 3.0)
        assert (cfg.eval_steps, cfg.save_steps, cfg.logging_steps) == (15, 93, 3)
        assert form.widgets["eval_steps"].value == "15"
        assert form.widgets["learning_rate"].value == "0.0013"
        assert "auto → why" in str(form.query_one("#note-eval-steps").render())
        recipe = side(screen, "#hp-recipe")
        assert "learning_rate = 0.0013: LoRA's best rate for a Llama-like model 576" in recipe
        assert "gradient_accumulation = 1: effective batch 4: 124 examples" in recipe
        assert "epochs = 3: 93 optimizer steps in all" in recipe
        # the tickets' answers carry a category: the last adapter is kept, no early stop
        assert (cfg.keep_adapter, cfg.early_stopping_patience) == ("last", None)
        assert form.widgets["keep_adapter"].value == "last"
        assert "keep_adapter = last: the answers' 'category' is a label" in recipe
        assert "Validation loss every 15 steps: 8 points" in side(screen, "#hp-estimate")
        assert "Peak memory: about" in side(screen, "#hp-estimate")
        assert "Time: about" in side(screen, "#hp-estimate")
        assert "data.source = " in side(screen, "#hp-data")


async def test_an_invalid_value_is_marked_inline_and_blocks_the_next_step(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hparams(app, pilot)
        await edit(pilot, screen, "lora.r", "0")
        note = screen.query_one("#note-lora-r", Static)
        assert note.has_class("-error") and "lora.r must be an integer from 1 to 1024" in str(
            note.render()
        )
        assert "hparams" not in app.steps_done
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, HyperparamsScreen)
        assert app.wizard.config.lora.r == 16  # the last valid value stays
        await edit(pilot, screen, "lora.r", "8")
        assert not note.has_class("-error") and app.wizard.config.lora.r == 8
        assert "hparams" in app.steps_done


async def test_risky_values_get_the_guides_warnings(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hparams(app, pilot)
        assert "no warnings" in side(screen, "#hp-warnings")
        await edit(pilot, screen, "epochs", "5")
        await edit(pilot, screen, "learning_rate", "0.02")
        warnings = side(screen, "#hp-warnings")
        assert "epochs = 5: more than 3 passes risk overfitting" in warnings
        assert "learning_rate = 0.02 is very high for LORA on a model 576 wide" in warnings
        # more epochs, more steps: the automatic interval follows (155 steps)
        assert app.wizard.config.eval_steps == 19
        # the user's values are theirs: the side panel no longer claims them
        recipe = side(screen, "#hp-recipe")
        assert "learning_rate =" not in recipe and "epochs =" not in recipe


async def test_the_old_fixed_recipe_on_the_tickets_is_warned(make_app) -> None:
    """lr 2e-4, 16 examples a step, 2 epochs: 16 steps, which did not learn the task."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hparams(app, pilot)
        await edit(pilot, screen, "learning_rate", "0.0002")
        await edit(pilot, screen, "gradient_accumulation", "4")
        # the recipe keeps the effective batch of 4 by lowering the micro-batch...
        assert app.wizard.config.micro_batch_size == 1
        await edit(pilot, screen, "micro_batch_size", "4")  # ...until the user sets it too
        await edit(pilot, screen, "epochs", "2")
        assert app.wizard.config.effective_batch_size == 16
        warnings = side(screen, "#hp-warnings")
        assert "learning_rate = 0.0002 is low for LORA on a model 576 wide" in warnings
        assert "only 8 steps an epoch, and LoRA learns worse with large batches" in warnings
        assert "the run takes only 16 optimizer steps: too few" in warnings


async def test_a_user_set_interval_is_left_alone(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hparams(app, pilot)
        await edit(pilot, screen, "eval_steps", "4")
        await edit(pilot, screen, "epochs", "3")
        assert app.wizard.config.eval_steps == 4
        assert "eval_steps" in app.wizard.edited


async def test_a_preset_resets_the_fields(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hparams(app, pilot)
        screen.query_one("#hp-preset", Select).value = "thorough"
        await settle(pilot)
        cfg = app.wizard.config
        assert (cfg.epochs, cfg.lora.r, cfg.learning_rate) == (3.0, 32, 1.3e-3)
        assert screen.query_one(ConfigForm).widgets["lora.r"].value == "32"
        assert "preset thorough" in side(screen, "#hp-model-note")


async def test_tiny_dataset_is_warned(make_app, tmp_path: Path) -> None:
    from tests.tui.conftest import SAMPLE

    small = tmp_path / "small.jsonl"
    small.write_text("".join(SAMPLE.read_text().splitlines(keepends=True)[:30]))
    app = make_app(data=small)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hparams(app, pilot)
        assert "only 27 training examples" in side(screen, "#hp-warnings")


async def test_config_saves_as_toml_and_loads_back(make_app, tmp_path: Path) -> None:
    target = tmp_path / "run.toml"
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hparams(app, pilot)
        await edit(pilot, screen, "lora.r", "4")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, PromptDialog)
        app.screen.query_one(Input).value = str(target)
        await pilot.press("enter")
        await settle(pilot)
        saved = load_config(target)
        assert saved.lora.r == 4 and saved.data.source is not None
        assert saved == app.wizard.run_config()

        await edit(pilot, screen, "lora.r", "12")
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, FileBrowserDialog)
        app.screen.dismiss(target)
        await pilot.pause()
        await settle(pilot)
        assert app.wizard.config.lora.r == 4
        assert screen.query_one(ConfigForm).widgets["lora.r"].value == "4"


async def test_a_broken_toml_is_an_error_dialog_with_the_line(make_app, tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("epochs = 2\nlora.r = = 8\n")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hparams(app, pilot)
        screen._load(broken)
        await pilot.pause()
        assert "broken.toml:2" in app.screen.message  # the ErrorDialog


def test_parse_field_reads_what_a_user_types() -> None:
    assert parse_field("lora.r", "8") == 8
    assert parse_field("learning_rate", "2e-4") == 2e-4
    assert parse_field("max_steps", "") is None
    assert parse_field("lora.target_modules", "q_proj, v_proj") == ["q_proj", "v_proj"]
    assert parse_field("run_name", "first try") == "first try"


class TemplateBackend(FakeBackend):
    """A token survey that reports what lint says about the model's chat template."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__()
        self.template = finding(code, 0, message)

    def survey_tokens(self, path, model, max_seq_len, progress, reading=ALL_ROWS):
        survey = super().survey_tokens(path, model, max_seq_len, progress, reading)
        findings = (*survey.report.findings, self.template)
        return replace(survey, report=replace(survey.report, findings=findings))


async def test_a_template_without_a_system_turn_is_said(make_app) -> None:
    folds = "the chat template has no system turn: the system text goes into the first user turn"
    app = make_app(backend=TemplateBackend("template-folds-system", folds))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hparams(app, pilot)
        assert f"chat template: {folds}" in side(screen, "#hp-warnings")
        assert screen.leave_blocker() is None


async def test_a_template_that_refuses_the_data_blocks_the_step(make_app) -> None:
    refused = "the chat template raised: roles must alternate: training would stop before it starts"
    app = make_app(backend=TemplateBackend("template-error", refused))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hparams(app, pilot)
        assert f"chat template: {refused}" in side(screen, "#hp-warnings")
        blocker = screen.leave_blocker()
        assert blocker is not None and "cannot train on this data: the chat template" in blocker


class UnpreparedModelBackend(FakeBackend):
    """The model's config.json is not on disk until `prepared` (as before a conversion)."""

    prepared_config = False

    def model_config(self, model):
        return super().model_config(model) if self.prepared_config else None


async def test_the_learning_rate_follows_the_model_once_it_is_prepared(make_app) -> None:
    backend = UnpreparedModelBackend()
    app = make_app(backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_hparams(app, pilot)
        assert app.wizard.config.learning_rate == 2e-4  # the usual LoRA rate, said so
        assert "size is unknown until it is prepared" in side(screen, "#hp-recipe")
        backend.prepared_config = True  # e.g. the token survey converted the model
        await wait_until(pilot, lambda: app.wizard.config.learning_rate == 1.3e-3, timeout=10)
        assert "576 wide" in side(screen, "#hp-recipe")
