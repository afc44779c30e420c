"""The run configuration: validation messages, TOML round trips, overrides, presets, advice."""

from __future__ import annotations

import contextlib
import dataclasses
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config.build import (
    PRESET_DESCRIPTIONS,
    PRESETS,
    ConfigError,
    DataConfig,
    LoraConfig,
    TrainConfig,
    config_warnings,
    field_help,
    from_dict,
    from_preset,
    load_config,
    parse_assignment,
    save_config,
    suggest_max_seq_len,
    to_dict,
    with_overrides,
)
from engine.core.errors import TunedeckError
from engine.model.resolve import DEFAULT_MODEL


def test_defaults_are_the_documented_ones() -> None:
    cfg = TrainConfig()
    assert cfg.model == DEFAULT_MODEL
    assert cfg.method == "lora"
    assert cfg.learning_rate == 2e-4
    assert cfg.epochs == 2
    assert cfg.lora == LoraConfig(r=16, alpha=32, dropout=0.05, target_modules=("all-linear",))
    assert cfg.data == DataConfig()
    assert cfg.effective_batch_size == 16
    assert issubclass(ConfigError, TunedeckError)


def test_config_is_frozen_and_hashable() -> None:
    cfg = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 3  # type: ignore[misc]
    assert hash(cfg) == hash(TrainConfig())


# ---------------------------------------------------------------------------
# validation: every rule refuses with a message saying what is allowed
# ---------------------------------------------------------------------------

REFUSED = [
    ({"learning_rate": -1}, "learning_rate must be > 0 and <= 1 (got -1.0)"),
    ({"learning_rate": 0}, "learning_rate must be > 0 and <= 1"),
    ({"learning_rate": 2}, "learning_rate must be > 0 and <= 1 (got 2.0)"),
    ({"method": "qlroa"}, "method must be one of 'qlora', 'lora' (got 'qlroa')"),
    ({"scheduler": "cosin"}, "scheduler must be one of 'cosine', 'linear', 'constant', "),
    ({"report_to": "comet"}, "report_to must be one of 'none', 'tensorboard', 'mlflow', 'wandb'"),
    ({"bf16": True}, "bf16 must be one of 'auto', 'on', 'off' (got True)"),
    ({"epochs": 0}, "epochs must be > 0 and <= 1000 (got 0.0)"),
    ({"epochs": "two"}, "epochs must be a number (got 'two')"),
    ({"epochs": float("nan")}, "epochs must be a finite number (got nan)"),
    ({"max_steps": 0}, "max_steps must be an integer >= 1 (got 0)"),
    ({"max_steps": 2.5}, "max_steps must be an integer or left unset (got 2.5)"),
    ({"micro_batch_size": 0}, "micro_batch_size must be an integer from 1 to 4096 (got 0)"),
    ({"micro_batch_size": 4.0}, "micro_batch_size must be an integer (got 4.0)"),
    ({"gradient_accumulation": -2}, "gradient_accumulation must be an integer from 1 to 4096"),
    ({"num_processes": 0}, "num_processes must be an integer from 1 to 1024 (got 0)"),
    ({"max_seq_len": 8}, "max_seq_len must be an integer from 16 to 1048576 (got 8)"),
    ({"warmup_ratio": 1.0}, "warmup_ratio must be >= 0 and < 1 (got 1.0)"),
    ({"weight_decay": -0.1}, "weight_decay must be >= 0 and <= 1 (got -0.1)"),
    ({"max_grad_norm": -1}, "max_grad_norm must be >= 0 (got -1.0)"),
    ({"eval_steps": 0}, "eval_steps must be an integer >= 1 (got 0)"),
    ({"save_steps": 0}, "save_steps must be an integer >= 1 (got 0)"),
    ({"logging_steps": 0}, "logging_steps must be an integer >= 1 (got 0)"),
    ({"early_stopping_patience": 0}, "early_stopping_patience must be an integer >= 1 (got 0)"),
    ({"packing": "yes"}, "packing must be true or false (got 'yes')"),
    ({"gradient_checkpointing": 1}, "gradient_checkpointing must be true or false (got 1)"),
    ({"oom_retry": None}, "oom_retry must be true or false (got None)"),
    ({"seed": -1}, "seed must be an integer from 0 to 4294967295 (got -1)"),
    ({"model": ""}, "model must be a model name or path (got '')"),
    ({"model": None}, "model must be a string (got None)"),
    ({"run_name": "a\nb"}, "run_name must be 1 to 100 printable characters"),
    ({"lora.r": 0}, "lora.r must be an integer from 1 to 1024 (got 0)"),
    ({"lora.alpha": 0}, "lora.alpha must be an integer from 1 to 4096 (got 0)"),
    ({"lora.dropout": 1.0}, "lora.dropout must be >= 0 and < 1 (got 1.0)"),
    ({"lora.target_modules": []}, "lora.target_modules must be a non-empty list of module names"),
    ({"lora.target_modules": "q_proj"}, "lora.target_modules must be a list of strings"),
    ({"lora.target_modules": ["all-linear", "q_proj"]}, '["all-linear"] alone'),
    ({"data.val_fraction": 0}, "data.val_fraction must be > 0 and <= 0.5 (got 0.0)"),
    ({"data.val_fraction": 0.9}, "data.val_fraction must be > 0 and <= 0.5 (got 0.9)"),
    ({"data.split_seed": -5}, "data.split_seed must be an integer from 0 to 4294967295"),
    ({"data.train": " "}, "data.train must be non-empty (got ' ')"),
    ({"data.format": 3}, "data.format must be a string or left unset (got 3)"),
    ({"data.train": "a.jsonl", "data.source": "b.jsonl"}, "data.source cannot be combined"),
    ({"lora": 3}, "lora must be a table of key = value pairs (got 3)"),
    ({"epochs.x": 1}, "'epochs' is not a table"),
]


@pytest.mark.parametrize(("changes", "message"), REFUSED, ids=[str(c) for c, _ in REFUSED])
def test_invalid_values_are_refused_with_what_is_allowed(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        with_overrides(TrainConfig(), **changes)
    assert message in info.value.message


def test_direct_construction_validates_too() -> None:
    with pytest.raises(ConfigError, match=r"^learning_rate must be > 0 and <= 1 \(got -1.0\)$"):
        TrainConfig(learning_rate=-1)
    with pytest.raises(ConfigError, match="lora.r must be an integer"):
        LoraConfig(r=True)  # a bool is not an integer here
    with pytest.raises(ConfigError, match="lora must be a table"):
        TrainConfig(lora={"r": 8})  # type: ignore[arg-type]


def test_misspelt_choice_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'qlora'\?"):
        with_overrides(TrainConfig(), method="qlroa")


def test_ints_become_floats_and_lists_become_tuples() -> None:
    cfg = TrainConfig(epochs=3, lora=LoraConfig(target_modules=["q_proj"]))  # type: ignore[arg-type]
    assert isinstance(cfg.epochs, float)
    assert cfg.lora.target_modules == ("q_proj",)


def test_validate_for_run_needs_exactly_one_data_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no training data"):
        TrainConfig().validate_for_run()
    with pytest.raises(ConfigError, match="data.val is set without data.train"):
        with_overrides(TrainConfig(), **{"data.val": "v.jsonl"}).validate_for_run()
    missing = with_overrides(TrainConfig(), **{"data.source": str(tmp_path / "nope.jsonl")})
    with pytest.raises(ConfigError, match="data.source: file not found"):
        missing.validate_for_run()
    assert missing.validate_for_run(check_files=False) is missing
    source = tmp_path / "all.jsonl"
    source.write_text("{}\n")
    cfg = with_overrides(TrainConfig(), **{"data.source": str(source)})
    assert cfg.validate_for_run() is cfg


# ---------------------------------------------------------------------------
# dicts and TOML files
# ---------------------------------------------------------------------------


def full_config(tmp_path: Path) -> TrainConfig:
    return with_overrides(
        from_preset("thorough"),
        **{
            "data.train": str(tmp_path / "train.jsonl"),
            "data.val": str(tmp_path / "val.jsonl"),
            "data.format": "chatml",
            "lora.target_modules": ["q_proj", "v_proj"],
            "max_steps": 100,
            "run_name": "tickets v2",
            "report_to": "tensorboard",
            "bf16": "off",
        },
    )


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    cfg = full_config(tmp_path)
    path = tmp_path / "config.toml"
    save_config(cfg, path)
    assert load_config(path) == cfg
    assert from_dict(to_dict(cfg)) == cfg
    assert list(tmp_path.glob(".config.toml.*")) == []  # the temp file was renamed away
    assert path.stat().st_mode & 0o777 == 0o644


def test_saved_file_omits_unset_fields_and_explains_each_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    save_config(TrainConfig(), path)
    text = path.read_text()
    data = tomllib.loads(text)
    assert "max_steps" not in data and "run_name" not in data
    assert "source" not in data["data"] and "train" not in data["data"]
    assert data["lora"]["target_modules"] == ["all-linear"]
    wrapped = textwrap.wrap(field_help(TrainConfig, "learning_rate"), 88)
    assert "".join(f"# {line}\n" for line in wrapped) + "learning_rate = 0.0002" in text
    assert all(len(line) <= 100 for line in text.splitlines())


def test_unset_field_with_a_set_default_is_written_as_false(tmp_path: Path) -> None:
    cfg = with_overrides(TrainConfig(), early_stopping_patience=None)
    path = tmp_path / "config.toml"
    save_config(cfg, path)
    assert "\nearly_stopping_patience = false\n" in path.read_text()
    assert load_config(path) == cfg
    assert from_dict({"max_steps": False}).max_steps is None


def test_save_is_atomic_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.toml"
    save_config(TrainConfig(), path)
    before = path.read_text()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("engine.core.files.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_config(with_overrides(TrainConfig(), epochs=1), path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]


def test_partial_file_takes_defaults(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('method = "qlora"\n[lora]\nr = 8\n')
    cfg = load_config(path)
    assert cfg == with_overrides(TrainConfig(), method="qlora", **{"lora.r": 8})


def test_unknown_key_names_the_closest_valid_one(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text("lerning_rate = 1e-4\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    expected = f"{path}: unknown key 'lerning_rate' (did you mean 'learning_rate'?)"
    assert info.value.message == expected
    assert "valid keys: model, method" in info.value.hint


def test_unknown_nested_key_and_misplaced_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'lora.alpah' \(did you mean 'lora.alpha'"):
        from_dict({"lora": {"alpah": 16}})
    with pytest.raises(ConfigError, match=r"unknown key 'r': it belongs in the \[lora\] table"):
        from_dict({"r": 16})


def test_wrong_type_in_file_names_key_type_and_value(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('micro_batch_size = "4"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.message == f"{path}: micro_batch_size must be an integer (got '4')"


def test_toml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('model = "x"\nepochs = = 2\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.message.startswith(f"{path}:2:")
    assert "invalid TOML" in info.value.message
    assert info.value.hint == "line 2: epochs = = 2"


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path)  # a directory
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(binary)


def test_from_dict_names_where_the_data_came_from() -> None:
    with pytest.raises(ConfigError, match=r"^cli: epochs must be"):
        from_dict({"epochs": -1}, where="cli")
    with pytest.raises(ConfigError, match="the configuration must be a table"):
        from_dict(["epochs", 1])


# ---------------------------------------------------------------------------
# overrides and presets
# ---------------------------------------------------------------------------


def test_overrides_with_dotted_keys_nested_dicts_and_dataclasses() -> None:
    base = TrainConfig()
    cfg = with_overrides(base, **{"lora.r": 8, "data.val_fraction": 0.2}, epochs=1)
    assert (cfg.lora.r, cfg.lora.alpha, cfg.data.val_fraction, cfg.epochs) == (8, 32, 0.2, 1.0)
    assert base.lora.r == 16  # the original is untouched
    merged = with_overrides(base, lora={"r": 4})
    assert merged.lora == LoraConfig(r=4)  # a dict merges: alpha, dropout kept
    replaced = with_overrides(base, lora=LoraConfig(r=64, alpha=64))
    assert replaced.lora == LoraConfig(r=64, alpha=64)
    switched = with_overrides(
        with_overrides(base, **{"data.source": "all.jsonl"}),
        data={"source": None, "train": "t.jsonl", "val": "v.jsonl"},
    )
    assert switched.data == DataConfig(train="t.jsonl", val="v.jsonl")


def test_override_with_unknown_dotted_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'lora.rank'"):
        with_overrides(TrainConfig(), **{"lora.rank": 8})


def test_parse_assignment_reads_toml_values() -> None:
    assert parse_assignment("lora.r=8") == ("lora.r", 8)
    assert parse_assignment("packing = true") == ("packing", True)
    assert parse_assignment("learning_rate=1e-4") == ("learning_rate", 1e-4)
    assert parse_assignment("model=HuggingFaceTB/SmolLM2") == ("model", "HuggingFaceTB/SmolLM2")
    assert parse_assignment('lora.target_modules=["q_proj"]') == (
        "lora.target_modules",
        ["q_proj"],
    )
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_assignment("epochs")


def test_presets_are_valid_and_differ_as_described() -> None:
    assert set(PRESETS) == set(PRESET_DESCRIPTIONS) == {"quick", "balanced", "thorough"}
    quick, balanced, thorough = (from_preset(n) for n in ("quick", "balanced", "thorough"))
    assert balanced == TrainConfig()
    assert (quick.epochs, quick.lora.r, quick.max_steps) == (1, 8, None)
    assert (thorough.epochs, thorough.lora.r, thorough.early_stopping_patience) == (3, 32, 4)
    # the recipe chooses what a preset leaves alone: no preset fixes the learning rate
    assert all("learning_rate" not in overrides for overrides in PRESETS.values())
    for cfg in (quick, balanced, thorough):
        assert config_warnings(cfg) == []  # presets do not trip our own advice


def test_preset_with_overrides_and_unknown_preset() -> None:
    cfg = from_preset("quick", epochs=2, **{"lora.r": 4})
    assert (cfg.epochs, cfg.lora.r, cfg.lora.alpha) == (2, 4, 16)
    with pytest.raises(ConfigError, match=r"unknown preset 'quik' \(did you mean 'quick'\?\)"):
        from_preset("quik")


# ---------------------------------------------------------------------------
# field help
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [TrainConfig, DataConfig, LoraConfig])
def test_every_field_has_help(cls: type) -> None:
    for f in dataclasses.fields(cls):
        text = field_help(cls, f.name)
        assert text and "\n" not in text and "  " not in text, f.name


def test_field_help_reaches_nested_fields() -> None:
    assert field_help(TrainConfig, "lora.r") == field_help(LoraConfig, "r")
    assert "Rank" in field_help(TrainConfig, "lora.r")
    assert field_help(TrainConfig(), "lora.r") == field_help(LoraConfig, "r")
    method_help = field_help(TrainConfig, "method")
    assert "qlora stores it in 4-bit NF4" in method_help and "CPU" in method_help
    with pytest.raises(ConfigError, match=r"no field 'lerning_rate' \(did you mean"):
        field_help(TrainConfig, "lerning_rate")
    with pytest.raises(ConfigError, match="has no fields"):
        field_help(TrainConfig, "epochs.x")


# ---------------------------------------------------------------------------
# warnings and suggestions
# ---------------------------------------------------------------------------


def _warned(cfg: TrainConfig, needle: str, **kwargs: Any) -> bool:
    return any(needle in w for w in config_warnings(cfg, **kwargs))


@pytest.mark.parametrize(
    ("changes", "kwargs", "needle"),
    [
        ({"epochs": 5}, {}, "risk overfitting"),
        ({"learning_rate": 7e-4}, {}, "high for LoRA and may be unstable"),
        ({"learning_rate": 3e-3}, {}, "will likely diverge"),
        ({"learning_rate": 1e-6}, {}, "very low"),
        ({"lora.alpha": 200}, {}, "scaled unusually"),
        ({"warmup_ratio": 0.5}, {}, "long warmup"),
        ({"data.source": "x.jsonl", "data.val_fraction": 0.05}, {}, "noisy validation loss"),
        ({"data.source": "x.jsonl", "data.val_fraction": 0.4}, {}, "holds back"),
        ({"data.train": "t.jsonl"}, {}, "data.train without data.val"),
        ({}, {"n_examples": 30}, "only 30 training examples"),
        ({"lora.r": 64}, {"n_examples": 500}, "large adapter for 500 examples"),
        ({}, {"n_examples": 10}, "an optimizer step takes 16 examples"),
        ({"eval_steps": 100}, {"n_examples": 200}, "no validation loss until the end"),
        ({"max_seq_len": 4096}, {"device": "cpu"}, "on CPU: long sequences are slow"),
        ({"method": "qlora"}, {"device": "cpu"}, "QLoRA on CPU"),
    ],
)
def test_warnings_fire(changes: dict[str, Any], kwargs: dict[str, Any], needle: str) -> None:
    assert _warned(with_overrides(TrainConfig(), **changes), needle, **kwargs)


def test_warnings_stay_quiet_for_sane_settings() -> None:
    cfg = with_overrides(TrainConfig(), **{"data.source": "x.jsonl", "data.val_fraction": 0.15})
    assert config_warnings(cfg, n_examples=2000, device="cpu") == []
    gpu = with_overrides(cfg, method="qlora", max_seq_len=4096)
    assert config_warnings(gpu, device="cuda") == []
    # max_steps bounds the run, so many epochs are not a risk by themselves
    assert not _warned(with_overrides(cfg, epochs=10, max_steps=50), "overfitting")
    # checkpoints need not line up with evaluations: the kept adapter is saved on its own
    assert not _warned(with_overrides(cfg, save_steps=30), "multiple of eval_steps")


def test_suggest_max_seq_len() -> None:
    assert suggest_max_seq_len([10, 20, 30]) == 64  # at least 64
    lengths = list(range(1, 1001))  # p99 (nearest rank) = 990 -> 1024
    assert suggest_max_seq_len(lengths) == 1024
    assert suggest_max_seq_len([100] * 99 + [5000]) == 128  # one outlier is truncated
    assert suggest_max_seq_len([129] * 10) == 192
    assert suggest_max_seq_len(lengths, max_position_embeddings=512) == 512
    with pytest.raises(ConfigError, match="no examples"):
        suggest_max_seq_len([])


# ---------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------

_paths = st.none() | st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1)
_paths = _paths.filter(lambda p: p is None or p.strip() != "")

valid_configs = st.builds(
    TrainConfig,
    model=st.sampled_from([DEFAULT_MODEL, "org/model", "/models/x y"]),
    method=st.sampled_from(["lora", "qlora"]),
    data=st.builds(
        DataConfig,
        train=_paths,
        val=_paths,
        val_fraction=st.floats(0.01, 0.5),
        split_seed=st.integers(0, 2**32 - 1),
        format=st.none() | st.sampled_from(["chatml", "alpaca"]),
    ),
    lora=st.builds(
        LoraConfig,
        r=st.integers(1, 1024),
        alpha=st.integers(1, 4096),
        dropout=st.floats(0, 0.99),
        target_modules=st.sampled_from([("all-linear",), ("q_proj", "v_proj"), ("down_proj",)]),
    ),
    learning_rate=st.floats(1e-8, 1.0),
    epochs=st.floats(0.01, 1000),
    max_steps=st.none() | st.integers(1, 10**9),
    micro_batch_size=st.integers(1, 4096),
    max_seq_len=st.integers(16, 1_048_576),
    warmup_ratio=st.floats(0, 0.99),
    scheduler=st.sampled_from(["cosine", "linear", "constant", "constant_with_warmup"]),
    early_stopping_patience=st.none() | st.integers(1, 100),
    packing=st.booleans(),
    bf16=st.sampled_from(["auto", "on", "off"]),
    report_to=st.sampled_from(["none", "tensorboard", "mlflow", "wandb"]),
    run_name=st.none() | st.text("abc xyz-_", min_size=1, max_size=100).filter(str.strip),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cfg=valid_configs)
def test_any_valid_config_round_trips(cfg: TrainConfig, tmp_path: Path) -> None:
    assert from_dict(to_dict(cfg)) == cfg
    path = tmp_path / "config.toml"
    save_config(cfg, path)
    assert load_config(path) == cfg


FIELD_KEYS = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("data", "lora")]
FIELD_KEYS += [f"data.{f.name}" for f in dataclasses.fields(DataConfig)]
FIELD_KEYS += [f"lora.{f.name}" for f in dataclasses.fields(LoraConfig)]

garbage = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(FIELD_KEYS + ["data", "lora", "bogus", "lora.x.y"]), value=garbage)
def test_garbage_values_raise_config_error_only(key: str, value: Any) -> None:
    try:
        cfg = with_overrides(TrainConfig(), **{key: value})
    except ConfigError:
        return
    assert from_dict(to_dict(cfg)) == cfg  # whatever was accepted is a valid config


@settings(max_examples=200, deadline=None)
@given(d=st.dictionaries(st.sampled_from(FIELD_KEYS[:12] + ["lora", "data", "x"]), garbage))
def test_garbage_dicts_raise_config_error_only(d: dict[str, Any]) -> None:
    with contextlib.suppress(ConfigError):
        from_dict(d)
